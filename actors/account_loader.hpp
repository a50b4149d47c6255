// account_loader: the store work of the account actors, routed to N store workers (actors/
// store_worker) by a hash of the account id, so an account's SQL waits only for the accounts that
// share its worker; plus a poll of the loaded accounts' serials that notices changes made by
// another process or replica. The loader itself never blocks: it hands jobs to the workers and
// answers when they are done.
#pragma once

#include "actors/interfaces.hpp"
#include "actors/store_worker.hpp"
#include "storage/database.hpp"

#include <caf/fwd.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace nbm::actors {

struct loader_config {
  storage::db_options db;
  // How often the serials of the loaded accounts are compared with the store's (0 = never).
  std::chrono::milliseconds poll_interval{1000};
  // Store workers (threads, one session each); accounts are hashed onto them.
  std::size_t workers = 4;
  // Workers on threads of their own (the server). Tests on CAF's deterministic scheduler spawn
  // them as ordinary actors, so their blocking store work runs when the test runs the scheduler.
  bool detached = true;
  // NetBird's single-account mode (decided at start-up: --single-account-mode-domain set and at
  // most one account in the store): a new IdP user joins the one account (as a user with role
  // "user") instead of getting one of its own. "" = off.
  std::string single_account_domain{};
  // NetBird's activity store (storage/event_store): committed changes, registrations and first
  // logins are recorded there, in order, by one store worker of its own. None: nothing recorded.
  std::optional<storage::db_options> events_db{};
  // DataStoreEncryptionKey: deleted users' names and emails kept encrypted, as NetBird keeps them.
  std::string events_key{};
  std::string dns_domain = "netbird.selfhosted"; // --dns-domain, for the events' fqdn metas
};

// Its state (actors/account_loader.cpp has the behavior and the jobs).
struct loader_state {
  loader_config cfg;
  std::vector<store_worker> workers;
  std::optional<store_worker> events; // the activity log's database (none: not recorded)
  loader_state_record rec;
  std::unordered_map<std::string, std::vector<account_actor>> watched; // by account id
  bool ticking = false;
  bool polling = false;
  bool poll_again = false;
  std::uint64_t polls = 0;
  std::uint64_t resyncs = 0;     // serial checks asked for (the cluster channel reconnected)
  std::uint64_t events_busy = 0; // jobs handed to the events worker, not answered yet
  static inline const char* name = "account_loader";
};

account_loader spawn_account_loader(caf::actor_system& sys, loader_config cfg);

// NBM_STORE_WORKERS (1..64) when set, else `fallback`.
std::size_t store_workers_from_env(std::size_t fallback = 4);

} // namespace nbm::actors
