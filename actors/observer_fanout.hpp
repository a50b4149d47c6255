// observer_fanout: one session observer that forwards each landed session event to several (geo,
// expiry, ...), so the peer actors keep reporting to one handle.
#pragma once

#include "actors/interfaces.hpp"

#include <caf/fwd.hpp>

#include <vector>

namespace nbm::actors {

// Invalid handles in `to` are left out; with none left the result is an invalid handle.
session_observer spawn_observer_fanout(caf::actor_system& sys, std::vector<session_observer> to);

} // namespace nbm::actors
