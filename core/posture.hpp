// NetBird's posture checks (management/server/posture) evaluated against a peer's meta and
// location: NB version, OS version, geo location, peer network range and process checks, read from
// the check's stored JSON (NetBird's Checks struct). Pure C++.
#pragma once

#include "core/model.hpp"

namespace nbm::core {

// Whether `p` passes every check of `c` (NetBird's peerPassesPostureChecks). A check NetBird would
// fail with an error (an unparsable version, no location, an unknown action or OS) fails; JSON
// that is not NetBird's Checks object fails every peer.
bool passes_posture(const posture_check& c, const peer& p);

} // namespace nbm::core
