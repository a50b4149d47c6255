// expiry_actor: login expiration, inactivity expiration and ephemeral-peer cleanup (see
// interfaces.hpp). Its reads and writes run as jobs on store workers of its own (actors/
// store_worker); it holds its other messages while one runs, so its book changes in mailbox order.
// The clock is injectable and its timers can be switched off, so tests drive it deterministically
// (advance the clock, send a tick).
#pragma once

#include "actors/interfaces.hpp"
#include "actors/store_worker.hpp"
#include "core/expiry.hpp"
#include "storage/database.hpp"

#include <caf/fwd.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>

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
  // Its store workers on threads of their own (the server); tests on CAF's deterministic
  // scheduler spawn them as ordinary actors.
  bool detached = true;
};

// Its state (actors/expiry_actor.cpp has the behavior and the jobs).
struct expiry_state {
  expiry_config cfg;
  core::expiry_book book;
  expiry_state_record rec;
  store_worker worker;                                    // the store
  std::optional<store_worker> events;                     // the activity log (none: not kept)
  std::unordered_map<std::string, std::uint64_t> serials; // as of the last derivation
  core::unix_ns ephemeral_floor = 0; // no ephemeral deletion before (start-up + lifetime)
  bool armed = false;                // a deadline timer is pending
  core::unix_ns armed_at = 0;        // ... for this deadline
  std::uint64_t gen = 0;             // of the pending deadline timer
  core::unix_ns last_sweep = 0;      // when every account was last derived
  static inline const char* name = "expiry_actor";

  core::unix_ns now() const; // the injected clock, else the system's
};

expiry_actor spawn_expiry_actor(caf::actor_system& sys, expiry_config cfg);

} // namespace nbm::actors
