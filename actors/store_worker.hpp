// store_worker: blocking store work on a thread of its own (spawned detached), one SOCI session
// each. What it runs is a store_job: the job holds its inputs and its results, the worker gives
// it the session, tries it once more on a fresh session when the session dropped under it, and
// tells what a failure was (unreachable store, refused duplicate, anything else). Account actors
// reach theirs through the account loader (actors/account_loader), hashed by account id so that no
// account waits for another account's SQL on the same thread.
#pragma once

#include "actors/interfaces.hpp"
#include "storage/database.hpp"

#include <caf/fwd.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace soci {
class session;
}

namespace nbm::actors {

using run_atom = caf::atom_constant<caf::atom("run")>;

class store_job {
public:
  virtual ~store_job() = default;
  // The work, on the worker's thread; throws on failure.
  virtual void run(soci::session& sql, storage::engine kind) = 0;
  // Whether it may run once more on a fresh session after its session dropped: reads, and writes
  // of one transaction (a dropped connection rolled it back).
  virtual bool retry_on_dropped_session() const { return true; }
  // Whether it may run again after PostgreSQL rolled its transaction back for a deadlock or a
  // serialization failure (the server says so: nothing of it was written). True for every job
  // whose writes are one transaction; a job that commits twice must say false.
  virtual bool retry_on_conflict() const { return true; }
  // For the log: what the job does ("load account x").
  virtual std::string what() const = 0;

  // Set by the worker when the job failed (after its retry).
  store_failure failure = store_failure::none;
  std::string error; // the database's words: for the log only, never for a client
  // What jobs keep on the worker's session from one job to the next (prepared statements: see
  // storage::session_attachment); dropped with that session. Set by the worker for the length of
  // run() only. One slot per worker: a worker that serves one kind of job keeps it (the status
  // writer's); a job of another kind that wants it replaces it.
  std::unique_ptr<storage::session_attachment>* attachment = nullptr;
};
using store_job_ptr = std::shared_ptr<store_job>;

// Runs jobs one at a time, in arrival order; answers each with the job itself (done or failed,
// see store_job::failure), never with an error.
using store_worker = caf::typed_actor<
    caf::replies_to<run_atom, store_job_ptr>::with<store_job_ptr>>::extend_with<status_iface>;

// `detached`: on a thread of its own (the server); tests on CAF's deterministic scheduler spawn it
// as an ordinary actor, so its jobs run when the test runs the scheduler. `id`: which worker it is
// in its status answers (the loader's index, "events" for the activity log's, "status_<i>" for
// the status writer's).
// Its state (actors/store_worker.cpp has the behavior).
struct store_worker_state {
  std::unique_ptr<storage::worker_session> sql;
  std::uint64_t jobs = 0, failed = 0, retried = 0;
  std::string id;
  static inline const char* name = "store_worker";
};

store_worker spawn_store_worker(caf::actor_system& sys, storage::db_options db,
                                bool detached = true, std::string id = {});

// Which of `n` workers serves `key` (FNV-1a of the key): the same for every process and build.
std::size_t store_worker_index(std::string_view key, std::size_t n);

} // namespace nbm::actors

// store_job_ptr travels as an unsafe message type: declared with its reason in the one list at the
// end of actors/interfaces.hpp.
