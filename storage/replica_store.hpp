// Replica liveness on a PostgreSQL store, in two tables of our own (NetBird's tables keep their
// schema):
//   nbm_replicas          one row per live replica: id, address, host, pid, started_at and
//                         heartbeat_at (the database's clock, so replicas' clocks never compare);
//   nbm_replica_sessions  one row per peer: the replica whose connect last landed for it and that
//                         session's token. Written by the status writer's group commit in the same
//                         statement as the fenced UPDATE (status_store with a replica id), so a
//                         landed connect is never unrecorded; a landed disconnect deletes its row.
// A replica whose heartbeat is older than the lease is declared dead by one survivor (the row is
// taken with FOR UPDATE SKIP LOCKED inside a transaction): its sessions end with disconnects fenced
// on exactly the token it held, and its rows go. A replica that finds its own row gone (it was
// paused past the lease) knows its sessions were ended elsewhere.
#pragma once

#include "storage/database.hpp"
#include "storage/status_store.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace soci {
class session;
}

namespace nbm::storage {

// Creates both tables when missing (PostgreSQL; called by ensure_schema under its lock).
void ensure_replica_tables(soci::session& sql);

struct replica_info {
  std::string id, address, host;
  std::int64_t pid = 0;
};

// One row of the replica table as list() reads it (times on the database's clock).
struct replica_row {
  std::string id, address, host;
  std::int64_t pid = 0;
  std::int64_t started_at_ms = 0;     // unix ms
  std::int64_t heartbeat_at_ms = 0;   // unix ms (0: resigned, its heartbeat set to the epoch)
  std::int64_t heartbeat_age_ms = 0;  // now() - heartbeat_at
  std::int64_t sessions_recorded = 0; // its rows in nbm_replica_sessions
  std::int64_t peers_held = 0;        // of them, sessions the store still shows (as held())
};

struct dead_replica {
  std::string id, address;
  std::int64_t silent_ms = 0;      // heartbeat age when it was declared dead
  std::size_t recorded = 0;        // sessions recorded for it
  std::vector<status_write> ended; // the disconnects that landed (its sessions still held)
};

// Bound to one session of its own (not thread-safe: one per thread / detached actor).
class replica_store {
public:
  explicit replica_store(const db_options& opts); // PostgreSQL only; throws store_error
  ~replica_store();
  replica_store(const replica_store&) = delete;
  replica_store& operator=(const replica_store&) = delete;

  bool alive();
  // Inserts (or renews) the replica's row with heartbeat_at = now().
  void enroll(const replica_info& self);
  // heartbeat_at = now() for `id`; false when the row is gone (declared dead meanwhile).
  bool heartbeat(const std::string& id);
  // Ends at most one replica (other than `self`) silent for longer than `lease_ms`; nullopt when
  // there is none, or another survivor holds it.
  std::optional<dead_replica> sweep_one(const std::string& self, std::int64_t lease_ms);
  // Sessions recorded for `id` that the store still shows as that session (peers held).
  std::size_t held(const std::string& id);
  // Live replica rows (heartbeat within `lease_ms`).
  std::size_t alive_replicas(std::int64_t lease_ms);
  // Every replica row, by id, with the sessions recorded for it and the peers it holds (one
  // statement; what the inspector's `replicas` shows).
  std::vector<replica_row> list();
  // Clean shutdown: the heartbeat is set into the past, so a survivor ends any session left at
  // once (fenced: the ones that ended cleanly are not touched).
  void resign(const std::string& id);
  // Only when no other replica is alive (start-up, the presence lock taken exclusively): forgets
  // every replica and session row (the start-up sweep ended the sessions).
  void forget_all();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace nbm::storage
