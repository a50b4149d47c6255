// status_writer: group commit of fenced peer-status writes (see interfaces.hpp).
#pragma once

#include "actors/interfaces.hpp"
#include "storage/database.hpp"

#include <caf/fwd.hpp>

#include <cstddef>
#include <string>

namespace nbm::actors {

struct status_writer_config {
  storage::db_options db;
  // Its own store workers (actors/store_worker: a thread and a database session each), serving
  // nothing else, so its prepared statements stay on their sessions and no other SQL delays a
  // fence. SQLite has one writer at a time: use 1.
  std::size_t workers = 1;
  // Most writes in one statement. Larger batches amortise more; the statement grows linearly.
  std::size_t max_batch = 1024;
  // Workers on threads of their own (the server). Tests on CAF's deterministic scheduler spawn them
  // as ordinary actors, so their SQL runs when the test runs the scheduler.
  bool detached = true;
  // PostgreSQL: the replica whose sessions the writes record (storage/replica_store.hpp); empty:
  // none recorded.
  std::string replica_id = {};
};

// Spawns the writer and its workers. Batching is natural: while every worker is busy, arriving
// writes queue; a free worker takes all queued writes at once (at most one per peer, at most
// max_batch). So the window is exactly the time of the statement in flight: no timer adds latency
// to an idle system.
status_writer spawn_status_writer(caf::actor_system& sys, status_writer_config cfg);

} // namespace nbm::actors
