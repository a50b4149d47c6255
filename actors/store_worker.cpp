#include "actors/store_worker.hpp"

#include <caf/all.hpp>
#include <soci/soci.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <thread>

namespace nbm::actors {

namespace {

// PostgreSQL rolled the transaction back and asks for it to be run again (SQLSTATE 40P01, 40001):
// two writers took row locks in opposite orders, e.g. a registration and an admin change.
bool rolled_back_conflict(std::string_view what) {
  return what.find("deadlock detected") != std::string_view::npos ||
         what.find("could not serialize access") != std::string_view::npos;
}
constexpr int max_conflict_retries = 3;

bool duplicate(std::string_view what) {
  return what.find("UNIQUE constraint failed") != std::string_view::npos ||
         what.find("duplicate key value") != std::string_view::npos;
}

store_worker::behavior_type worker_impl(store_worker::stateful_pointer<store_worker_state> self,
                                        storage::db_options db, std::string id) {
  self->state.sql = std::make_unique<storage::worker_session>(std::move(db));
  self->state.id = std::move(id);
  return {
      [self](run_atom, store_job_ptr& job) {
        auto& sql = *self->state.sql;
        ++self->state.jobs;
        for (int attempt = 0;; ++attempt) {
          try {
            auto& session = sql.get();
            job->attachment = &sql.attachment();
            job->run(session, sql.kind());
            job->attachment = nullptr;
            job->failure = store_failure::none;
            job->error.clear();
            return job;
          } catch (const std::exception& e) {
            job->attachment = nullptr;
            if (rolled_back_conflict(e.what()) && attempt < max_conflict_retries &&
                job->retry_on_conflict()) {
              spdlog::warn("store worker: {}: {}; rolled back, running it again", job->what(),
                           e.what());
              ++self->state.retried;
              // The other writer holds its locks until it commits: give it a moment (10-40 ms).
              std::this_thread::sleep_for(std::chrono::milliseconds(10 << attempt));
              continue;
            }
            bool dropped = storage::unreachable(sql);
            sql.reset(); // a fresh session for whatever comes next
            if (dropped && attempt == 0 && job->retry_on_dropped_session()) {
              spdlog::warn("store worker: {}: {}; the session was dropped, trying again",
                           job->what(), e.what());
              ++self->state.retried;
              continue;
            }
            ++self->state.failed;
            job->error = e.what();
            if (dropped) {
              // Unreachable only when a fresh session cannot answer either.
              try {
                dropped = !storage::session_alive(sql.get(), sql.kind());
              } catch (const std::exception&) {
                dropped = true;
              }
              sql.reset();
            }
            job->failure = dropped                 ? store_failure::unavailable
                           : duplicate(job->error) ? store_failure::duplicate
                                                   : store_failure::failed;
            if (job->failure == store_failure::failed)
              spdlog::error("store worker: {}: {}", job->what(), job->error);
            else
              spdlog::warn("store worker: {}: {}", job->what(), job->error);
            return job;
          }
        }
      },
      [self](status_atom) {
        // Answered between jobs only: a worker blocked in SQL is reported missing by askers.
        auto& st = self->state;
        auto s = status_of(self, "store_worker", st.id);
        s.counters["jobs"] = st.jobs;
        s.counters["failed"] = st.failed;
        s.counters["retried"] = st.retried;
        return s;
      },
  };
}

} // namespace

store_worker spawn_store_worker(caf::actor_system& sys, storage::db_options db, bool detached,
                                std::string id) {
  if (!detached)
    return sys.spawn(worker_impl, std::move(db), std::move(id));
  return sys.spawn<caf::detached>(worker_impl, std::move(db), std::move(id));
}

std::size_t store_worker_index(std::string_view key, std::size_t n) {
  if (n <= 1)
    return 0;
  std::uint64_t h = 14695981039346656037ull;
  for (const unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return static_cast<std::size_t>(h % n);
}

} // namespace nbm::actors
