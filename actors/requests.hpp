// The records the wire layer hands to the actors, in a header with no CAF in it: api/grpc decodes
// into them in a pure unit (api/grpc/wire_request) that fuzz targets drive without an actor system.
#pragma once

#include "core/model.hpp"

#include <string>
#include <vector>

namespace nbm::actors {

// A Login as the api layer decoded it (no protobuf types past api/).
struct login_request {
  std::string wg_key; // base64, as in the envelope
  std::string setup_key;
  std::string jwt;
  std::string jwt_user; // the user id of `jwt`, verified by the wire layer ("" = none)
  bool has_meta = false;
  core::peer_meta meta;
  std::string ssh_key;
  std::vector<std::string> extra_dns_labels;
  std::string remote_addr;
};

} // namespace nbm::actors
