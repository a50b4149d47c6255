// status_writer: group commit of fenced peer-status writes (see interfaces.hpp).
#pragma once

#include "actors/interfaces.hpp"
#include "actors/store_worker.hpp"
#include "storage/database.hpp"

#include <caf/fwd.hpp>
#include <caf/typed_response_promise.hpp>

#include <cstddef>
#include <deque>
#include <string>
#include <unordered_set>
#include <vector>

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

// A write waiting for a batch (or in one), with the promise of its answer.
struct pending_status_write {
  core::status_write write;
  caf::typed_response_promise<bool> promise;
};

// Its state (actors/status_writer.cpp has the behavior).
struct writer_state {
  std::deque<pending_status_write> queue;
  std::vector<store_worker> idle;
  std::string replica;
  std::unordered_set<std::string> busy_peers;   // peers with a write in a batch in flight
  std::vector<store_worker> all;                // by index: the id each worker answers status with
  std::vector<std::size_t> in_flight_by_worker; // writes of the batch each worker holds (0: idle)
  writer_state_record counters;
  std::size_t max_batch = 1024;
  static inline const char* name = "status_writer";
};

// Spawns the writer and its workers. Batching is natural: while every worker is busy, arriving
// writes queue; a free worker takes all queued writes at once (at most one per peer, at most
// max_batch). So the window is exactly the time of the statement in flight: no timer adds latency
// to an idle system.
status_writer spawn_status_writer(caf::actor_system& sys, status_writer_config cfg);

} // namespace nbm::actors
