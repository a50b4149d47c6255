// The /api/posture-checks body (NetBird's api.PostureCheckUpdate) -> core's posture definition;
// pure decoding, total over any input as decode.hpp's functions are (a value or decode_error).
#pragma once

#include "api/http/decode.hpp"
#include "core/posture.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace nbm::api::http::decode {

struct posture_check_spec {
  std::string name, description;
  // The checks the body names; a network range check's ranges are left empty here (see
  // posture_ranges), since NetBird reads them only after the geolocation databases' check.
  core::posture_definition checks;
  std::vector<std::string> raw_ranges; // the range check's "ranges" as sent
};

// Go's json.Decoder into api.PostureCheckUpdate: a member of the wrong type is a 400, null leaves
// a member unset, unknown members are ignored. No checks object decodes as no checks (NetBird's
// Validate then refuses it).
posture_check_spec posture_check(std::string_view body);

// NetBird's toPeerNetworkRangeCheck: each raw range as Go's netip.ParsePrefix reads it and
// Prefix.String prints it (IPv4 or IPv6), into checks.network_range; the first that does not parse
// is a 422 "invalid network prefix".
void posture_ranges(posture_check_spec& spec);

} // namespace nbm::api::http::decode
