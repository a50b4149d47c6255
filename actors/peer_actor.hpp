// peer_actor: one per peer; serializes its connects and disconnects (the in-memory fence), persists
// them through the status_writer (the database fence), and reports landed writes to the session
// observer.
#pragma once

#include "actors/interfaces.hpp"

#include <caf/fwd.hpp>

namespace nbm::actors {

// `observer` may be an invalid handle (no side effects wired).
peer_actor spawn_peer_actor(caf::actor_system& sys, std::string account_id, std::string peer_id,
                            status_writer writer, session_observer observer);

// Spawns the directory that finds or spawns peer actors.
peer_directory spawn_peer_directory(caf::actor_system& sys, status_writer writer,
                                    session_observer observer);

} // namespace nbm::actors
