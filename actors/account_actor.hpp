// account_actor: one per account in use; owns the in-memory account and fans out network maps
// (see interfaces.hpp). account_loader: the blocking store reads behind it, plus a poll of the
// accounts' serials that notices changes made by another process or replica.
#pragma once

#include "actors/interfaces.hpp"
#include "storage/database.hpp"

#include <caf/fwd.hpp>

#include <chrono>

namespace nbm::actors {

// `dir` (may be invalid) is told which WireGuard keys the account holds (see key_update).
account_actor spawn_account_actor(caf::actor_system& sys, std::string account_id,
                                  account_loader loader, core::map_context maps,
                                  peer_directory dir = {});

struct loader_config {
  storage::db_options db;
  // How often the serials of the loaded accounts are compared with the store's (0 = never).
  std::chrono::milliseconds poll_interval{1000};
  // On a thread of its own (the server). Tests on CAF's deterministic scheduler spawn it as an
  // ordinary actor, so its blocking store work runs when the test runs the scheduler.
  bool detached = true;
};

account_loader spawn_account_loader(caf::actor_system& sys, loader_config cfg);

} // namespace nbm::actors
