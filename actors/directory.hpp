// peer_directory: the wire's one door (Login, Sync, SyncMeta, Logout) and the index of the peer
// and account actors alive: finds or spawns the peer actor of a peer and the account actor of an
// account, keeps WireGuard key -> (account, peer) as the account actors tell it, and lists every
// actor it knows for the status protocol (see interfaces.hpp).
#pragma once

#include "actors/interfaces.hpp"

#include <caf/fwd.hpp>

#include <memory>
#include <string>
#include <unordered_map>
#include <utility>

namespace nbm::actors {

class map_workers; // actors/map_workers.hpp

struct directory_config {
  status_writer writer;
  session_observer observer; // may be invalid
  account_loader loader;     // invalid: no account actors (sessions get no maps)
  core::map_context maps;    // the server-side inputs of maps (DNS domain)
  login_service login;       // store lookups of keys it does not know (invalid: refused)
  cluster_actor cluster;     // the other replicas (PostgreSQL; invalid: none)
  // Compute large fan-outs' maps off the scheduler (null: the account actors compute them all).
  std::shared_ptr<map_workers> mappers = nullptr;
};

// Its state (actors/directory.cpp has the behavior).
struct directory_state {
  std::unordered_map<std::string, peer_actor> peers;       // by peer id (unique across accounts)
  std::unordered_map<std::string, std::string> account_of; // peer id -> account id
  std::unordered_map<std::string, account_actor> accounts; // by account id
  // WireGuard key -> (account id, peer id) of every peer of every account actor alive, as the
  // account actors tell it (key_update).
  std::unordered_map<std::string, std::pair<std::string, std::string>> by_key;
  directory_config cfg;
  static inline const char* name = "peer_directory";
};

// Spawns the directory that finds or spawns peer and account actors.
peer_directory spawn_peer_directory(caf::actor_system& sys, directory_config cfg);

} // namespace nbm::actors
