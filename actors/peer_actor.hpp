// peer_actor: one per peer; serializes its connects and disconnects (the in-memory fence), persists
// them through the status_writer (the database fence), reports landed writes to the session
// observer, and attaches a landed session to its account actor, which sends it maps.
#pragma once

#include "actors/interfaces.hpp"

#include <caf/fwd.hpp>

namespace nbm::actors {

// `observer` and `account` may be invalid handles (no side effects, no maps).
peer_actor spawn_peer_actor(caf::actor_system& sys, std::string account_id, std::string peer_id,
                            status_writer writer, session_observer observer,
                            account_actor account = {});

struct directory_config {
  status_writer writer;
  session_observer observer; // may be invalid
  account_loader loader;     // invalid: no account actors (sessions get no maps)
  core::map_context maps;    // the server-side inputs of maps (DNS domain)
  login_service login;       // store lookups of keys it does not know (invalid: refused)
  cluster_actor cluster;     // the other replicas (PostgreSQL; invalid: none)
};

// Spawns the directory that finds or spawns peer and account actors.
peer_directory spawn_peer_directory(caf::actor_system& sys, directory_config cfg);

} // namespace nbm::actors
