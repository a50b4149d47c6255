// account_actor: one per account in use; owns the in-memory account and fans out network maps
// (see interfaces.hpp). Its store work goes through the account loader (actors/account_loader).
#pragma once

#include "actors/account_loader.hpp"
#include "actors/interfaces.hpp"
#include "actors/telemetry.hpp"

#include <caf/fwd.hpp>
#include <caf/typed_response_promise.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace nbm::actors {

class map_workers; // actors/map_workers.hpp
struct maps_held;  // actors/map_workers.hpp

// A peer's session attached to the account actor (landed): maps go to its peer actor.
struct attached_session {
  session_token token = 0;
  peer_actor peer;
  std::uint64_t fingerprint = 0; // of the last map sent
  bool first_sent = false;       // its first (initial) map went out
};

// A fan-out (or a round of first maps) whose maps the map workers compute: one at a time per
// account. Its sessions are handed out a batch at a time, at most the workers' credit() batches
// out at once; the next goes out when one came back and its maps were sent.
struct map_flight {
  std::uint64_t id = 0;
  map_batch_ptr todo;   // the view, the reason and every session's item (handed out up to `next`)
  std::size_t next = 0; // the first item not handed out yet
  std::size_t out = 0;  // batches handed to the workers, not back yet
  std::size_t maps = 0; // sessions in it
  bool full = false;    // every session (a change), not only first maps
  std::chrono::steady_clock::time_point started;
  std::uint64_t sent_before = 0; // maps_sent when it began
};

// A registration waiting for (or in) the store worker: the Login, the setup key it registers with,
// the promise of its answer, and how often it conflicted with another replica so far.
struct pending_registration {
  login_request req;
  core::setup_key key;
  caf::typed_response_promise<peer_view> rp;
  int attempts = 0;
};

// Registrations handed to the store worker and not answered yet: their IPs and labels are reserved
// in the indexes, their keys are not registered again meanwhile.
struct registration_flight {
  std::vector<pending_registration> items;
  std::vector<peer_registration> rows;
};

// Its state (actors/account_actor.cpp has the behavior).
struct account_state {
  account_state_record rec;
  account_loader loader;
  core::map_context ctx;
  account_ptr acc;                        // the account as committed (null: does not exist)
  std::shared_ptr<core::account> working; // changes applied since the last fan-out
  std::shared_ptr<account_change> change; // maps of `acc`, built on demand
  std::unordered_map<std::string, attached_session> sessions; // by peer id
  bool flush_scheduled = false;
  // Indexes of the account in memory, kept current with every change (a registration asks them;
  // it never builds a set of every peer).
  std::unordered_set<std::string> used_ips, used_labels;  // of peers and reservations
  std::unordered_map<std::string, std::string> id_by_key; // WireGuard key -> peer id
  std::unordered_map<std::string, std::size_t> pos_by_id; // peer id -> index in peers
  std::deque<pending_registration> registrations;         // waiting for the store worker
  std::shared_ptr<registration_flight> flight;            // in the store worker (one at a time)
  std::uint64_t polled_serial = 0; // the highest store serial a poll told during a flight
  peer_directory dir;              // told which keys this account holds (may be invalid: tests)
  cluster_actor cluster;           // publishes our commits to other replicas (may be invalid)
  std::uint64_t notes = 0;         // other replicas' writes told
  std::uint64_t notes_applied = 0; // ... applied exactly (their parts and peers read again)
  // The meta a Sync brought, by peer id: into memory and the store once its session landed.
  std::unordered_map<std::string, core::peer_meta> pending_meta;
  std::mt19937_64 rng{std::random_device{}()};
  // For the inspector: how long the last fan-out took (maps computed) and how many maps it sent.
  std::int64_t last_fanout_us = -1;
  std::uint64_t last_fanout_maps = 0;
  // Why the next fan-out runs (NetBird's UpdateReason, for its metrics): the latest trigger since
  // the last one; none: the account was read again.
  std::optional<telemetry::reason> reason;
  // Maps off the scheduler (null: every map is computed here). A fan-out asked for while one is
  // in flight waits for it (fanout_wanted: one more, against the account as it is then); sessions
  // attached meanwhile wait for their first map in `awaiting_first`.
  std::shared_ptr<map_workers> workers;
  std::optional<map_flight> mapping;
  std::uint64_t flights = 0;
  bool fanout_wanted = false;
  std::unordered_set<std::string> awaiting_first; // peer ids
  std::int64_t ns_per_map = 0;                    // measured on the last batches (0: not yet)
  std::size_t objects_per_map = 0;                // the same, NetBird's objects of a map
  std::uint64_t maps_stale = 0;    // computed for a session that ended or was superseded meanwhile
  std::uint64_t batches_off = 0;   // batches the map workers computed
  std::uint64_t batches_here = 0;  // batches computed on the actor (small ones)
  std::shared_ptr<maps_held> held; // maps computed, not yet sent to their peer actors
  static inline const char* name = "account_actor";
};

// `dir` (may be invalid) is told which WireGuard keys the account holds (see key_update);
// `cluster` (may be invalid) publishes what the actor commits to the other replicas; `workers`
// (may be null: every map computed on the actor) compute the maps of large fan-outs.
account_actor spawn_account_actor(caf::actor_system& sys, std::string account_id,
                                  account_loader loader, core::map_context maps,
                                  peer_directory dir = {}, cluster_actor cluster = {},
                                  std::shared_ptr<map_workers> workers = {});

} // namespace nbm::actors
