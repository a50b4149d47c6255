// `netbird-mgmt admin ...`: account and setup-key bootstrap on the configured store.
#pragma once

#include "config/config.hpp"
#include "server/cli.hpp"

namespace nbm::server {

// Prints the result on stdout as "name: value" lines; returns the exit code (errors on stderr).
int run_admin(const admin_command& cmd, config::management_config cfg);

} // namespace nbm::server
