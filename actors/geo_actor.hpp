// geo_actor: the session observer that records a peer's location after a landed connect (detached:
// it reads the GeoLite2 file and writes the store). Same IP as stored: no lookup, no write.
#pragma once

#include "actors/interfaces.hpp"
#include "storage/database.hpp"

#include <caf/fwd.hpp>

#include <memory>

namespace nbm::geo {
class database;
}

namespace nbm::actors {

session_observer spawn_geo_actor(caf::actor_system& sys, storage::db_options db,
                                 std::shared_ptr<const geo::database> geo);

} // namespace nbm::actors
