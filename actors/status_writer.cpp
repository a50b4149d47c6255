#include "actors/status_writer.hpp"

#include "actors/store_worker.hpp"
#include "actors/telemetry.hpp"
#include "storage/status_store.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <deque>
#include <unordered_set>

namespace nbm::actors {

namespace {

// --- the blocking half: dedicated store workers (a thread and a session each)
// ----------------------------

// One batch (no peer twice), on the worker's session; its statements are prepared once per
// session and kept on it (storage::session_attachment), so a batch costs its execution only.
struct status_batch_job : store_job {
  std::vector<core::status_write> writes;
  std::string replica; // PostgreSQL: the replica whose sessions the writes record
  std::vector<bool> landed;

  void run(soci::session& sql, storage::engine kind) override {
    auto& kept = *attachment;
    auto* store = dynamic_cast<storage::status_store*>(kept.get());
    if (!store) {
      auto fresh = std::make_unique<storage::status_store>(sql, kind, replica);
      store = fresh.get();
      kept = std::move(fresh);
    }
    const auto began = telemetry::now_ns();
    landed = store->apply_batch(writes);
    telemetry::store_transaction(telemetry::ms_since(began)); // one group commit
  }
  // A batch is one statement (PostgreSQL) or one transaction (SQLite): a session that dropped
  // under it, or a deadlock PostgreSQL rolled back, wrote nothing of it. (A live session's other
  // errors are the database's answer: they stand.)
  std::string what() const override {
    return "fenced status batch of " + std::to_string(writes.size()) + " writes";
  }
};

// --- the non-blocking half: queueing, per-peer ordering, batching
// --------------------------------------

using writer_ptr = status_writer::stateful_pointer<writer_state>;

void dispatch(writer_ptr self);

void finish_batch(writer_ptr self, store_worker worker, std::vector<pending_status_write>& batch,
                  const std::vector<bool>* landed, const caf::error* err) {
  auto& st = self->state;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    st.busy_peers.erase(batch[i].write.peer_id);
    if (err) {
      ++st.counters.errors;
      batch[i].promise.deliver(*err);
      continue;
    }
    bool ok = landed && i < landed->size() && (*landed)[i];
    ++st.counters.writes;
    if (ok)
      ++st.counters.landed;
    batch[i].promise.deliver(ok);
  }
  st.counters.in_flight -= batch.size();
  for (std::size_t i = 0; i < st.all.size(); ++i)
    if (st.all[i] == worker)
      st.in_flight_by_worker[i] = 0;
  st.idle.push_back(std::move(worker));
  dispatch(self);
}

void dispatch(writer_ptr self) {
  auto& st = self->state;
  while (!st.idle.empty() && !st.queue.empty()) {
    auto batch = std::make_shared<std::vector<pending_status_write>>();
    std::unordered_set<std::string> in_batch;
    std::deque<pending_status_write> rest;
    // Take writes in arrival order; a peer already in this batch or in flight keeps its later
    // writes queued, in order, for a later batch.
    while (!st.queue.empty()) {
      auto& p = st.queue.front();
      const auto& peer = p.write.peer_id;
      if (batch->size() < st.max_batch && !st.busy_peers.count(peer) &&
          in_batch.insert(peer).second)
        batch->push_back(std::move(p));
      else
        rest.push_back(std::move(p));
      st.queue.pop_front();
      if (batch->size() >= st.max_batch) {
        std::move(st.queue.begin(), st.queue.end(), std::back_inserter(rest));
        st.queue.clear();
      }
    }
    st.queue = std::move(rest);
    if (batch->empty())
      return;
    auto job = std::make_shared<status_batch_job>();
    job->replica = st.replica;
    job->writes.reserve(batch->size());
    for (auto& p : *batch) {
      st.busy_peers.insert(p.write.peer_id);
      job->writes.push_back(p.write);
    }
    auto worker = st.idle.back();
    st.idle.pop_back();
    for (std::size_t i = 0; i < st.all.size(); ++i)
      if (st.all[i] == worker)
        st.in_flight_by_worker[i] = batch->size();
    ++st.counters.batches;
    st.counters.in_flight += batch->size();
    if (batch->size() > st.counters.max_batch)
      st.counters.max_batch = batch->size();
    self->request(worker, caf::infinite, run_atom::value, store_job_ptr(job))
        .then(
            [self, worker, batch, job](const store_job_ptr&) {
              if (job->failure == store_failure::none) {
                finish_batch(self, worker, *batch, &job->landed, nullptr);
              } else { // the worker logged it
                const auto err = caf::make_error(caf::sec::runtime_error, job->what() + " failed");
                finish_batch(self, worker, *batch, nullptr, &err);
              }
            },
            [self, worker, batch](caf::error& err) {
              finish_batch(self, worker, *batch, nullptr, &err);
            });
  }
}

status_writer::behavior_type writer_impl(writer_ptr self, std::vector<store_worker> workers,
                                         std::size_t max_batch, std::string replica) {
  self->state.idle = std::move(workers);
  self->state.replica = std::move(replica);
  self->state.all = self->state.idle;
  self->state.in_flight_by_worker.assign(self->state.all.size(), 0);
  self->state.counters.workers = self->state.idle.size();
  self->state.max_batch = max_batch == 0 ? 1 : max_batch;
  // The workers die with the writer.
  for (auto& w : self->state.idle)
    self->link_to(w);
  return {
      [self](write_atom, core::status_write& w) -> caf::result<bool> {
        auto rp = self->make_response_promise<bool>();
        self->state.queue.push_back(pending_status_write{std::move(w), rp});
        dispatch(self);
        return rp;
      },
      [self](members_atom) {
        std::vector<status_target> out;
        for (const auto& w : self->state.all)
          out.push_back({"store_worker", w});
        return out;
      },
      [self](status_atom) {
        auto r = self->state.counters;
        r.queued = self->state.queue.size();
        auto s = status_of(self, "status_writer");
        put_record(s, r);
        // Per store worker ("status_<i>", the id its own status answer carries): the writes it
        // holds.
        const auto& by = self->state.in_flight_by_worker;
        for (std::size_t i = 0; i < by.size(); ++i)
          s.gauges["in_flight_worker_status_" + std::to_string(i)] =
              static_cast<std::int64_t>(by[i]);
        return s;
      },
  };
}

} // namespace

status_writer spawn_status_writer(caf::actor_system& sys, status_writer_config cfg) {
  std::vector<store_worker> workers;
  const auto n = cfg.workers == 0 ? 1 : cfg.workers;
  for (std::size_t i = 0; i < n; ++i)
    workers.push_back(spawn_store_worker(sys, cfg.db, cfg.detached, "status_" + std::to_string(i)));
  return sys.spawn(writer_impl, std::move(workers), cfg.max_batch, std::move(cfg.replica_id));
}

} // namespace nbm::actors
