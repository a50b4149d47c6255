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

// `arg` as a POSIX shell reads it back (single-quoted when it holds anything but safe characters).
std::string shell_quoted(const std::string& arg);

// The exact admin command that creates the first account on the store this run serves (its
// --config, its --datadir when given, the single-account-mode domain).
std::string first_account_command(const management_options& opts);

// SIGINT and SIGTERM must already be blocked in every thread (main does it first). Returns the exit
// code.
int run_management(const management_options& opts, config::management_config cfg);

} // namespace nbm::server
