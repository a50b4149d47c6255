// The records the wire layer hands to the actors, in a header with no CAF in it: api/grpc decodes
// into them in a pure unit (api/grpc/wire_request) that fuzz targets drive without an actor system.
#pragma once

#include "core/model.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace nbm::actors {

// A Login as the api layer decoded it (no protobuf types past api/).
struct login_request {
  std::string wg_key; // base64, as in the envelope
  std::string setup_key;
  std::string jwt;
  std::string jwt_user; // the user id of `jwt`, verified by the wire layer ("" = none)
  // The verified JWT's list claims by name (the account's JWT groups claim is one of them).
  std::map<std::string, std::vector<std::string>> jwt_lists;
  bool has_meta = false;
  core::peer_meta meta;
  std::string ssh_key;
  std::vector<std::string> extra_dns_labels;
  std::string remote_addr;
};

// A peer as the wire layer needs it, or the gRPC status NetBird answers with (code != 0).
struct peer_view {
  int code = 0; // a grpc::StatusCode; 0 = OK
  std::string message;
  core::peer peer;
  std::string network; // the account network, e.g. "100.64.0.0/16"
  std::uint64_t serial = 0;
  bool registered = false;         // Login registered this peer just now
  bool relogged = false;           // an SSO login renewed this peer's login (serial moved)
  std::vector<std::string> groups; // the groups a registered peer joined
  // NetBird's Checks of the LoginResponse: per posture check the peer is subject to, the process
  // paths it must report (core::client_checks).
  std::vector<std::vector<std::string>> checks;
};

// A Sync stream (or a SyncMeta) as the api layer decoded it: the peer's key and the meta it
// brought.
struct sync_open {
  std::string wg_key; // base64, as in the envelope
  bool has_meta = false;
  core::peer_meta meta;
};

// Who holds a WireGuard key, as the store knows it (all empty: nobody).
struct peer_ref {
  std::string account_id, peer_id, user_id;
};

} // namespace nbm::actors
