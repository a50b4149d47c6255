// account_actor: one per account in use; owns the in-memory account and fans out network maps
// (see interfaces.hpp). Its store work goes through the account loader (actors/account_loader).
#pragma once

#include "actors/account_loader.hpp"
#include "actors/interfaces.hpp"

#include <caf/fwd.hpp>

namespace nbm::actors {

// `dir` (may be invalid) is told which WireGuard keys the account holds (see key_update);
// `cluster` (may be invalid) publishes what the actor commits to the other replicas.
account_actor spawn_account_actor(caf::actor_system& sys, std::string account_id,
                                  account_loader loader, core::map_context maps,
                                  peer_directory dir = {}, cluster_actor cluster = {});

} // namespace nbm::actors
