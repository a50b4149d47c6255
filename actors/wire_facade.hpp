// wire_facade: the one door of the wire RPCs into the actors. The gRPC layer decodes and
// authenticates a request and hands one typed record here; the facade asks the directory (which
// routes it to the account actor that owns the peer) and answers exactly once, within a deadline.
// No CAF in this header (the transport neither spawns actors nor waits on them): the facade is
// made by make_wire_facade (actors/wire_facade_make.hpp) where the actor system lives.
#pragma once

#include "actors/requests.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace nbm::actors {

class session_sink;

// gRPC status codes the facade answers with itself (kept numeric: no gRPC in actors/).
inline constexpr int wire_unavailable = 14; // a deadline passed, the store cannot be reached
inline constexpr int wire_aborted = 10;     // a newer session of the peer owns it
inline constexpr int wire_internal = 13;

// How a Sync stream's opening ended: `code` 0 with `owns` once its fenced connect landed (its
// maps follow through the sink); otherwise a gRPC status code and NetBird's message.
struct sync_answer {
  int code = 0;
  std::string message;
  bool owns = false;
};

// One Sync stream's session, as the facade tracks it: created by sync(), ended by stream_end().
// Opaque to the transport.
class sync_session;
using sync_session_ptr = std::shared_ptr<sync_session>;

class wire_facade {
public:
  struct impl;
  explicit wire_facade(std::unique_ptr<impl> p); // see make_wire_facade
  ~wire_facade();
  wire_facade(const wire_facade&) = delete;
  wire_facade& operator=(const wire_facade&) = delete;

  // Every callback below is called exactly once, on an actor thread (never the caller's): it must
  // not block. A passed deadline answers code wire_unavailable with a clear message.

  // Login: a known key is answered by its account actor from memory; a new one is registered.
  void login(login_request req, std::function<void(peer_view)> done);
  // A Sync stream opened with `token`, its far end `sink`: decided by the peer's account actor
  // from memory, then fenced by the peer actor (connect). `done` tells how that ended.
  sync_session_ptr sync(sync_open req, std::int64_t token, std::shared_ptr<session_sink> sink,
                        std::function<void(sync_answer)> done);
  // The stream of `s` ended (any reason, any time, also before sync() answered): its session
  // ends, fenced on its token. Safe to call more than once.
  void stream_end(const sync_session_ptr& s);
  // SyncMeta: the peer's new meta; code 0 or a refusal.
  void sync_meta(sync_open req, std::function<void(int code, std::string message)> done);
  // Logout: the peer is deleted; its stream ends, the other peers' maps lose it.
  void logout(std::string wg_key, std::function<void(peer_view)> done);

  std::chrono::milliseconds deadline() const;

private:
  std::unique_ptr<impl> impl_;
};

} // namespace nbm::actors
