// login_service: the store lookups of the wire RPCs that memory cannot answer (see interfaces.hpp),
// run as jobs on store workers of its own (actors/store_worker); the service itself never blocks.
#pragma once

#include "actors/interfaces.hpp"
#include "actors/store_worker.hpp"
#include "storage/database.hpp"

#include <caf/fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace nbm::actors {

struct login_service_config {
  storage::db_options db;
  std::string dns_domain = "netbird.selfhosted"; // for FQDNs (--dns-domain)
  // Its store workers on threads of their own (the server); tests on CAF's deterministic scheduler
  // spawn them as ordinary actors.
  bool detached = true;
  // How many store workers (each its own session); a key's lookups always go to the same one
  // (store_worker_index), so two Logins of one key keep their order.
  std::size_t workers = 2;
};

// Its state (actors/login_service.cpp has the behavior).
struct login_service_state {
  login_service_config cfg;
  std::vector<store_worker> workers; // "login_0" ..
  std::uint64_t logins = 0, lookups = 0, failed = 0, in_flight = 0;
  static inline const char* name = "login_service";
};

login_service spawn_login_service(caf::actor_system& sys, login_service_config cfg);

} // namespace nbm::actors
