// login_service: the store lookups of the wire RPCs that memory cannot answer (see interfaces.hpp),
// run as jobs on a store worker of its own (actors/store_worker); the service itself never blocks.
#pragma once

#include "actors/interfaces.hpp"
#include "actors/store_worker.hpp"
#include "storage/database.hpp"

#include <caf/fwd.hpp>

#include <cstdint>
#include <string>

namespace nbm::actors {

struct login_service_config {
  storage::db_options db;
  std::string dns_domain = "netbird.selfhosted"; // for FQDNs (--dns-domain)
  // Its store worker on a thread of its own (the server); tests on CAF's deterministic scheduler
  // spawn it as an ordinary actor.
  bool detached = true;
};

// Its state (actors/login_service.cpp has the behavior).
struct login_service_state {
  login_service_config cfg;
  store_worker worker;
  std::uint64_t logins = 0, lookups = 0, failed = 0, in_flight = 0;
  static inline const char* name = "login_service";
};

login_service spawn_login_service(caf::actor_system& sys, login_service_config cfg);

} // namespace nbm::actors
