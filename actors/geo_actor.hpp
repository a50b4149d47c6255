// geo_actor: the session observer that records a peer's location after a landed connect (detached:
// it reads the GeoLite2 file and writes the store). Same IP as stored: no lookup, no write.
#pragma once

#include "actors/interfaces.hpp"
#include "storage/database.hpp"

#include <caf/fwd.hpp>

#include <cstdint>
#include <memory>

namespace nbm::geo {
class database;
}

namespace nbm::actors {

// Its state (actors/geo_actor.cpp has the behavior).
struct geo_state {
  storage::db_options db;
  std::shared_ptr<const geo::database> geo;
  std::unique_ptr<storage::worker_session> sql;
  std::uint64_t events = 0, written = 0, errors = 0;
  static inline const char* name = "geo_actor";
};

session_observer spawn_geo_actor(caf::actor_system& sys, storage::db_options db,
                                 std::shared_ptr<const geo::database> geo);

} // namespace nbm::actors
