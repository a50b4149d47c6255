// Which processes serve a PostgreSQL store: every serving process (replica) holds one
// session-level advisory lock in shared mode, on a connection of its own, for its whole life. A
// process killed with -9 loses its connection and with it its hold, so a starting process that can
// take the lock exclusively knows that no other replica is alive: the sessions the store shows
// connected are leftovers of dead processes, and only then may it end them (status_store::
// end_leftover_sessions). The lock is keyed by the store's schema (current_schema()), so stores in
// different schemas of one database do not see each other.
// Not for a connection pooler in transaction mode (PgBouncer): session-level locks need a session.
#pragma once

#include "storage/database.hpp"

#include <chrono>
#include <memory>

namespace nbm::storage {

class replica_presence {
public:
  // Opens its own session (PostgreSQL only); throws store_error when the store cannot be reached.
  explicit replica_presence(const db_options& opts);
  ~replica_presence(); // stops the keeper and closes the session: the hold ends
  replica_presence(const replica_presence&) = delete;
  replica_presence& operator=(const replica_presence&) = delete;

  // Tries to take the lock exclusively, without waiting: true when no other replica holds it. The
  // exclusive hold lasts until join().
  bool alone();
  // Holds the lock in shared mode from now on (an exclusive hold is given up first) and keeps
  // holding it: a thread checks the session every `check_every` and, when the connection was
  // dropped (a database restart), reconnects and takes the shared hold again.
  void join(std::chrono::milliseconds check_every = std::chrono::seconds(1));
  // Whether the shared hold is in place as of the keeper's last check.
  bool holding() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace nbm::storage
