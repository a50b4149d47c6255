// login_service: Login and Sync-lookup store work, on a detached actor (see interfaces.hpp).
#pragma once

#include "actors/interfaces.hpp"
#include "storage/database.hpp"

#include <caf/fwd.hpp>

namespace nbm::actors {

struct login_service_config {
  storage::db_options db;
  std::string dns_domain = "netbird.selfhosted"; // for FQDNs (--dns-domain)
  peer_directory directory;                      // registrations go to the account actor it finds
};

login_service spawn_login_service(caf::actor_system& sys, login_service_config cfg);

} // namespace nbm::actors
