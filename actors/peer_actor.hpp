// peer_actor: one per peer; serializes its connects and disconnects (the in-memory fence), persists
// them through the status_writer (the database fence), reports landed writes to the session
// observer, and attaches a landed session to its account actor, which sends it maps. The directory
// (actors/directory) spawns them.
#pragma once

#include "actors/interfaces.hpp"
#include "actors/msg_ring.hpp"

#include <caf/fwd.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace nbm::actors {

// Its state (actors/peer_actor.cpp has the behavior).
struct peer_state {
  peer_state_record rec;
  sink_ptr sink;
  status_writer writer;
  session_observer observer;
  account_actor account;        // may be invalid (tests without maps)
  std::uint64_t superseded = 0; // streams ended by a newer session on another replica
  // For the inspector: the last messages handled (no allocation, no lock) and the last map sent.
  msg_ring<16> ring;
  std::uint64_t last_map_serial = 0, last_map_peers = 0, last_map_rules = 0;
  // Consoles following this actor (`trace`): null while nobody does, so a handled message costs
  // one null check beyond its ring entry. Each tracer is monitored and dropped when it goes down.
  std::unique_ptr<std::vector<caf::actor>> tracers;
  static inline const char* name = "peer_actor";
};

// `observer` and `account` may be invalid handles (no side effects, no maps).
peer_actor spawn_peer_actor(caf::actor_system& sys, std::string account_id, std::string peer_id,
                            status_writer writer, session_observer observer,
                            account_actor account = {});

// The same, spawned by `parent` (the directory) in its own execution context.
peer_actor spawn_peer_actor(caf::local_actor& parent, std::string account_id, std::string peer_id,
                            status_writer writer, session_observer observer,
                            account_actor account = {});

} // namespace nbm::actors
