// expiry_actor: login expiration, inactivity expiration and ephemeral-peer cleanup (see
// interfaces.hpp). Detached: it reads and writes the store. The clock is injectable and its timers
// can be switched off, so tests drive it deterministically (advance the clock, send a tick).
#pragma once

#include "actors/interfaces.hpp"
#include "core/expiry.hpp"
#include "storage/database.hpp"

#include <caf/fwd.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace nbm::actors {

struct expiry_config {
  storage::db_options db;
  // How long an ephemeral peer may stay disconnected (NetBird: 10 min; NBM_EPHEMERAL_LIFETIME).
  core::unix_ns ephemeral_lifetime_ns = core::default_ephemeral_lifetime_ns;
  // How often the accounts' serials are compared with the ones the schedule was derived at (a
  // settings change, a peer added or expired elsewhere); 0 = never.
  std::chrono::milliseconds poll_interval{1000};
  // How often every schedule is derived afresh from the store (catches sessions that ended on
  // other replicas); 0 = never.
  std::chrono::milliseconds sweep_interval{std::chrono::minutes(5)};
  // After a store failure, a due deadline is tried again this much later (NetBird: 3 s).
  std::chrono::milliseconds retry_interval{3000};
  // Unix nanoseconds now; empty = the system clock.
  std::function<core::unix_ns()> clock;
  // false: no timers at all (no deadline timer, no poll, no start-up derivation); tests send
  // derive, tick and check themselves.
  bool timers = true;
  peer_directory directory; // may be set later (dir_atom)
  // NetBird's activity store: expirations (PeerLoginExpired) and ephemeral deletions
  // (PeerRemovedByUser by "sys") are recorded there. None: not recorded.
  std::optional<storage::db_options> events_db{};
  std::string dns_domain = "netbird.selfhosted";
};

expiry_actor spawn_expiry_actor(caf::actor_system& sys, expiry_config cfg);

} // namespace nbm::actors
