// The inspector: answers an operator's console (server/inspector_listener, `netbird-mgmt inspect`)
// by asking the actors themselves through the one status protocol (actors/status.hpp): every
// question is sent to all of them at once with one deadline, answered from what came back in time
// (the rest reported missing by kind). It never blocks an actor and never holds a lock of theirs;
// when nobody asks, it costs nothing (it is idle).
//
// Questions are text lines, answers one JSON object each (the protocol is in docs/architecture.md):
//   overview | peers | peer <id|key|name> [since <seq>] | account <id> | replicas
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

// One replica as this process knows it. Without the cluster's replica table (lease work, issue 13)
// a replica knows only itself: its id and the peers whose sessions it holds; `lease` is "" then.
struct replica_view {
  std::string id;
  std::string lease;            // "" : no lease protocol known here
  std::int64_t peers_held = -1; // -1: unknown
  bool self = false;            // the replica answering
};

// Who fills in the replica table. Called inside the inspector actor: must not block (a copy of
// what a lease/heartbeat actor last published, never a store read). Empty: only this replica,
// counted from its peer actors.
using replica_source = std::function<std::vector<replica_view>()>;

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
                     // internal: a delayed step of a question (the overview's second sample)
                     caf::reacts_to<inspect_atom, std::uint64_t>>::extend_with<status_iface>;

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
