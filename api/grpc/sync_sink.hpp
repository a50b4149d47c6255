// The far end of a Sync stream: the session_sink the peer actor holds (sync_stream), which writes
// its messages to the stream's call (api/grpc/h2_server), and the encoder threads that turn a map
// update into a sealed SyncResponse off the actors' threads (encoder_pool). The RPC orchestration
// (which actors a Sync asks, in what order) lives in api/grpc/server.cpp.
#pragma once

#include "actors/session_sink.hpp"
#include "actors/wire_facade.hpp"
#include "api/grpc/h2_server.hpp"
#include "api/grpc/server.hpp"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace nbm::api {

// A few threads that serialize and encrypt maps for the streams (never on CAF's scheduler).
class encoder_pool {
public:
  explicit encoder_pool(unsigned n);
  ~encoder_pool();
  encoder_pool(const encoder_pool&) = delete;
  encoder_pool& operator=(const encoder_pool&) = delete;
  void post(std::function<void()> job);

private:
  void run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  bool stop_ = false;
};

// What the peer actor holds: the stream of exactly one session token. Outlives the reactor.
struct sync_stream : actors::session_sink, std::enable_shared_from_this<sync_stream> {
  const grpc_deps* deps = nullptr;
  encoder_pool* encoders = nullptr;
  std::string wg_key_b64, wg_key_raw;
  std::string box_key; // precomputed for this peer and the server key: one scalar mult per stream
  std::mutex mu;
  std::shared_ptr<rpc_call> call;   // null once the stream ended
  actors::sync_session_ptr session; // the facade's: ended when the stream ends
  core::session_token token = 0;

  std::string ip; // the stream's remote address
  // The newest map not yet encoded (a newer one replaces it; an initial one stays initial).
  actors::map_update_ptr pending;
  bool pending_initial = false;
  bool encoding = false; // an encoder job owns the pending map: one at a time, in order
  const std::chrono::steady_clock::time_point opened = std::chrono::steady_clock::now();
  bool first_map_sent = false;

  void close(const std::string& reason) override;
  void deliver(actors::map_update_ptr update, bool initial) override;
  void encode_pending();
  std::string remote_ip() const override { return ip; }
  void fail(rpc_status s);
};

} // namespace nbm::api
