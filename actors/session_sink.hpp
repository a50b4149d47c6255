// What a Sync stream's far end sees of the actors: the map updates the account actors produce and
// the sink a peer actor holds. No CAF here: api/grpc includes this header (and requests.hpp,
// wire_facade.hpp), never actors/interfaces.hpp.
#pragma once

#include "core/model.hpp"
#include "core/network_map.hpp"

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace nbm::actors {

// What one change of an account produced, shared by every peer's update: the immutable account with
// its indexes, and a slot for the encodings of remote peers that every receiver shares (filled
// once, by whichever encoder gets there first; the wire format is the api layer's business).
struct account_change {
  std::shared_ptr<const core::account_view> view;
  std::once_flag rendered_once;
  std::vector<std::string> rendered_peers; // per peer index, an encoded remote-peer entry
  std::once_flag records_once;
  std::vector<std::string> rendered_records; // per peer index, its encoded peers-zone records
};

// One peer's map from one change.
struct map_update {
  std::shared_ptr<account_change> change;
  std::uint32_t peer = 0; // index of the receiving peer in change->view->acc().peers
  core::network_map map;
};
using map_update_ptr = std::shared_ptr<const map_update>;

// The far end of a peer's Sync stream, as the actors see it. Implementations (the gRPC reactor
// bridge, test sinks) are thread-safe and never block the caller. A sink belongs to exactly one
// session token.
class session_sink {
public:
  virtual ~session_sink() = default;
  // Ends the stream; `reason` says why (a newer session took over, the connect was refused, ...).
  virtual void close(const std::string& reason) = 0;
  // A map for the peer. The first one of a session is `initial` (it carries the server config
  // too); a sink that cannot keep up sends only the newest (an unsent initial stays initial).
  // Encoding and encryption happen in the sink, off the caller's thread where it can.
  virtual void deliver(map_update_ptr update, bool initial) = 0;
  // The address the stream comes from ("" when unknown), for geolocation.
  virtual std::string remote_ip() const { return {}; }
};
using sink_ptr = std::shared_ptr<session_sink>;

} // namespace nbm::actors
