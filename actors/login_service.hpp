// login_service: the store lookups of the wire RPCs that memory cannot answer, on a detached actor
// (see interfaces.hpp).
#pragma once

#include "actors/interfaces.hpp"
#include "storage/database.hpp"

#include <caf/fwd.hpp>

namespace nbm::actors {

struct login_service_config {
  storage::db_options db;
  std::string dns_domain = "netbird.selfhosted"; // for FQDNs (--dns-domain)
  // On a thread of its own (the server); tests on CAF's deterministic scheduler spawn it as an
  // ordinary actor.
  bool detached = true;
};

login_service spawn_login_service(caf::actor_system& sys, login_service_config cfg);

} // namespace nbm::actors
