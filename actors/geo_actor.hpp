// geo_actor: the session observer that records a peer's location after a landed connect. The
// GeoLite2 lookup and the store's read and write run as one job on a store worker of its own
// (actors/store_worker, id "geo"), so the actor itself never blocks and answers status at once.
// Same IP as stored: no lookup, no write.
#pragma once

#include "actors/interfaces.hpp"
#include "actors/store_worker.hpp"
#include "storage/database.hpp"

#include <caf/fwd.hpp>

#include <cstdint>
#include <memory>
#include <optional>

namespace nbm::geo {
class database;
}

namespace nbm::actors {

// Its state (actors/geo_actor.cpp has the behavior).
struct geo_state {
  std::shared_ptr<const geo::database> geo;
  std::optional<store_worker> worker;
  std::uint64_t events = 0, written = 0, errors = 0;
  std::uint64_t busy = 0; // jobs handed to the worker, not answered yet
  static inline const char* name = "geo_actor";
};

// `detached`: its worker on a thread of its own (the server); tests on CAF's deterministic
// scheduler pass false.
session_observer spawn_geo_actor(caf::actor_system& sys, storage::db_options db,
                                 std::shared_ptr<const geo::database> geo, bool detached = true);

} // namespace nbm::actors
