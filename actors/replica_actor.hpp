// replica_actor: replica liveness on a PostgreSQL store (storage/replica_store.hpp). Detached (it
// blocks in SQL). Every heartbeat interval it renews this replica's row; at least every second it
// declares replicas silent for longer than the lease dead (one survivor per dead replica) and ends
// their sessions with fenced disconnects, which it reports to the session observer (expiry and
// ephemeral rules), and when it finds its own row gone (paused past the lease) has the directory
// close every stream.
#pragma once

#include "actors/interfaces.hpp"
#include "storage/database.hpp"
#include "storage/replica_store.hpp"

#include <caf/fwd.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace nbm::actors {

// The replica table as the replica actor read it at its last heartbeat, for readers that must not
// block (the inspector's `replicas`): the actor publishes a new read, a reader takes a copy. The
// lock is held for the copy only, never across SQL.
class replica_board {
public:
  struct snapshot {
    bool read = false; // false until the first read
    std::vector<storage::replica_row> rows;
    std::chrono::steady_clock::time_point read_at{};
    std::int64_t lease_ms = 0;
    std::string error; // the last read failed: `rows` are the read before it
  };
  void publish(std::vector<storage::replica_row> rows, std::int64_t lease_ms) {
    std::lock_guard<std::mutex> g(m_);
    s_.read = true;
    s_.rows = std::move(rows);
    s_.read_at = std::chrono::steady_clock::now();
    s_.lease_ms = lease_ms;
    s_.error.clear();
  }
  void failed(std::string error) {
    std::lock_guard<std::mutex> g(m_);
    s_.error = std::move(error);
  }
  snapshot get() const {
    std::lock_guard<std::mutex> g(m_);
    return s_;
  }

private:
  mutable std::mutex m_;
  snapshot s_;
};

struct replica_config {
  storage::db_options db; // PostgreSQL
  std::string id;         // this replica (unique per process: replica_id_from_env)
  std::string address;    // host:port it serves
  std::string host;
  std::int64_t pid = 0;
  // A replica silent for longer than this is dead (NBM_REPLICA_LEASE_MS, default 30 s).
  std::chrono::milliseconds lease{30000};
  // How often it heartbeats (NBM_REPLICA_HEARTBEAT_MS, default a third of the lease); it looks
  // for dead replicas at least every second.
  std::chrono::milliseconds heartbeat{10000};
  peer_directory directory;  // closes the streams when the lease was lost (may be invalid)
  session_observer observer; // hears the disconnects it lands for dead replicas (may be invalid)
  std::shared_ptr<replica_board>
      board; // where each heartbeat's read of the table goes (may be null)
};

// What the replica actor reports about itself (kind "replica", id = replica id).
struct replica_state {
  replica_config cfg;
  std::unique_ptr<storage::replica_store> store;
  bool enrolled = false;
  bool outage_reported = false;
  std::chrono::steady_clock::time_point last_beat{}; // last heartbeat that landed
  std::int64_t peers_held = 0, replicas_alive = 0;
  std::uint64_t heartbeats = 0, declared_dead = 0, sessions_ended = 0, lease_lost = 0, errors = 0;
  static inline const char* name = "replica";
  ~replica_state();
};

// Reads NBM_REPLICA_LEASE_MS and NBM_REPLICA_HEARTBEAT_MS into `cfg` (invalid values throw
// std::invalid_argument); the id from NBM_REPLICA_ID, else "<host>-<random hex>".
void replica_settings_from_env(replica_config& cfg);

// Spawns the actor (detached); it enrolls at once, then ticks every `heartbeat`.
replica_actor spawn_replica_actor(caf::actor_system& sys, replica_config cfg);

} // namespace nbm::actors
