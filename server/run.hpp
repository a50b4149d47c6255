// The `management` command: builds the store and the actor system from the options and the config,
// serves until SIGINT/SIGTERM, shuts down cleanly.
#pragma once

#include "config/config.hpp"
#include "server/cli.hpp"
#include "storage/database.hpp"

namespace nbm::server {

// Applies the command line over the config file as NetBird does (flags win).
void apply_flags(const management_options& opts, config::management_config& cfg);

// The store NetBird would open for `cfg` (engine and target per config::resolve_store).
storage::db_options store_options(const config::management_config& cfg);

// SIGINT and SIGTERM must already be blocked in every thread (main does it first). Returns the exit
// code.
int run_management(const management_options& opts, config::management_config cfg);

} // namespace nbm::server
