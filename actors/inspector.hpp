// The inspector: answers an operator's console (server/inspector_listener, `netbird-mgmt inspect`)
// by asking the actors themselves through the one status protocol (actors/status.hpp): every
// question is sent to all of them at once with one deadline, answered from what came back in time
// (the rest reported missing by kind). It never blocks an actor and never holds a lock of theirs;
// when nobody asks, it costs nothing (it is idle).
//
// Questions are text lines, answers one JSON object each (the protocol is in docs/architecture.md):
//   overview | peers | peer <id|key|name> [since <seq>] | account <id> | replicas
// and `trace` (a separate message: the listener streams what the peer actor sends its tracer).
#pragma once

#include "actors/interfaces.hpp"
#include "actors/status.hpp"

#include <caf/fwd.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace nbm::actors {

using inspect_atom = caf::atom_constant<caf::atom("inspect")>; // inspector: one console question
using later_atom = caf::atom_constant<caf::atom("later")>;     // inspector internal: a delayed step

// One replica as the replica table (PostgreSQL: nbm_replicas / nbm_replica_sessions) showed it at
// the replica actor's last heartbeat, or this replica alone (SQLite, or no table read yet).
struct replica_view {
  std::string id, address, host;
  std::int64_t pid = 0;
  std::int64_t started_at_ms = 0;      // unix ms, the database's clock (0: unknown)
  std::int64_t heartbeat_at_ms = 0;    // unix ms, the database's clock (0: resigned or unknown)
  std::int64_t heartbeat_age_ms = -1;  // its age now (the age read plus the read's own age)
  std::int64_t lease_ms = 0;           // silent longer than this: dead (0: no lease here)
  bool alive = true;                   // heartbeat_age_ms <= lease_ms
  std::int64_t sessions_recorded = -1; // rows in nbm_replica_sessions (-1: unknown)
  std::int64_t peers_held = -1;        // of them, still that session in the store (-1: unknown)
  bool self = false;                   // the replica answering
};

// What a replica_source hands the inspector: the table as last read, and how old that read is.
struct replica_table {
  std::vector<replica_view> replicas; // empty: no table here (the inspector shows itself only)
  std::int64_t read_age_ms = -1;      // -1: not read yet
  std::string error;                  // the last read failed (the rows are the previous read)
};

// Who fills in the replica table. Called inside the inspector actor: must not block (a copy of
// what the replica actor last published, never a store read). Empty: only this replica, counted
// from its peer actors.
using replica_source = std::function<replica_table()>;

struct inspector_config {
  peer_directory directory;                 // lists the actors it knows (peers, accounts, workers)
  std::vector<status_target> others;        // asked as well (expiry, geo, ...)
  std::string replica_id;                   // this replica's id
  replica_source replicas;                  // may be empty (see above)
  std::chrono::milliseconds deadline{1500}; // per question, for every actor asked
  std::chrono::milliseconds rate_window{500}; // overview: two samples this far apart -> msgs/s
};

using inspector_actor =
    caf::typed_actor<caf::replies_to<inspect_atom, std::string>::with<std::string>,
                     // `trace <peer>`: attaches `tracer` to the peer actor (id, key or name);
                     // answers the peer and the ring as it stood (JSON), or an error (JSON).
                     // Every message the peer actor handles afterwards goes to `tracer` (see
                     // peer_actor's trace_atom) until `tracer` goes down.
                     caf::replies_to<trace_atom, std::string, caf::actor>::with<std::string>,
                     // internal: a delayed step of a question (the overview's second sample)
                     caf::reacts_to<later_atom, std::uint64_t>>::extend_with<status_iface>;

// The inspector's state (one per process; kept here so a reader sees what it holds).
struct inspector_state {
  inspector_config cfg;
  std::uint64_t questions = 0; // questions answered
  std::uint64_t refused = 0;   // questions it did not understand
  std::uint64_t missing = 0;   // actors that did not answer a question in time, summed
  std::uint64_t next_later = 0;
  std::map<std::uint64_t, std::function<void()>> later; // delayed steps by id
  static inline const char* name = "inspector";
};

inspector_actor spawn_inspector(caf::actor_system& sys, inspector_config cfg);

} // namespace nbm::actors
