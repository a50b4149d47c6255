// observer_fanout: one session observer that forwards each landed session event to several (geo,
// expiry, ...), so the peer actors keep reporting to one handle.
#pragma once

#include "actors/interfaces.hpp"

#include <caf/fwd.hpp>

#include <cstdint>
#include <vector>

namespace nbm::actors {

// Its state (actors/observer_fanout.cpp has the behavior).
struct fanout_state {
  std::vector<session_observer> to;
  std::uint64_t forwarded = 0;
  static inline const char* name = "observer_fanout";
};

// Invalid handles in `to` are left out; with none left the result is an invalid handle.
session_observer spawn_observer_fanout(caf::actor_system& sys, std::vector<session_observer> to);

} // namespace nbm::actors
