#include "actors/status_writer.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <deque>
#include <unordered_set>

namespace nbm::actors {

namespace {

// --- the blocking half: one detached actor (own thread) per database session
// --------------------------

struct worker_state {
  std::unique_ptr<storage::status_store> store;
  std::chrono::steady_clock::time_point used{};
  std::uint64_t batches = 0, writes = 0, errors = 0, reconnects = 0;
  std::string id; // its index in the writer
  static inline const char* name = "status_db_worker";
};

status_db_worker::behavior_type worker_impl(status_db_worker::stateful_pointer<worker_state> self,
                                            storage::db_options db, std::string replica,
                                            std::string id) {
  self->state.id = std::move(id);
  return {
      [self, db, replica](batch_atom, const std::vector<storage::status_write>& batch)
          -> caf::result<std::vector<bool>> {
        try {
          auto& st = self->state;
          // After a second idle, a PostgreSQL session is checked before the batch: a connection
          // dropped meanwhile is replaced instead of failing these writes.
          const auto now = std::chrono::steady_clock::now();
          if (st.store && now - st.used > std::chrono::seconds(1) && !st.store->alive())
            st.store.reset();
          if (!st.store) {
            st.store = std::make_unique<storage::status_store>(db, replica);
            ++st.reconnects;
          }
          st.used = now;
          ++st.batches;
          st.writes += batch.size();
          try {
            return st.store->apply_batch(batch);
          } catch (const std::exception& e) {
            // A session found dead failed before anything reached the database: once more on a
            // fresh one. (A live session's error is the database's answer: it stands.)
            if (st.store->alive())
              throw;
            spdlog::warn("fenced status batch: {}; the session was dropped, trying again",
                         e.what());
            st.store = std::make_unique<storage::status_store>(db, replica);
            return st.store->apply_batch(batch);
          }
        } catch (const std::exception& e) {
          // The session may be broken (server restart, network): reconnect on the next batch.
          self->state.store.reset();
          ++self->state.errors;
          spdlog::error("fenced status batch of {} writes failed: {}", batch.size(), e.what());
          return caf::make_error(caf::sec::runtime_error, std::string(e.what()));
        }
      },
      [self](status_atom) {
        // Answered between batches only: a worker blocked in SQL is reported missing by askers.
        auto& st = self->state;
        auto s = status_of(self, "status_db_worker", st.id);
        s.gauges["session_open"] = st.store ? 1 : 0;
        s.counters["batches"] = st.batches;
        s.counters["writes"] = st.writes;
        s.counters["errors"] = st.errors;
        s.counters["sessions_opened"] = st.reconnects;
        return s;
      },
  };
}

// --- the non-blocking half: queueing, per-peer ordering, batching
// --------------------------------------

struct pending {
  storage::status_write write;
  caf::typed_response_promise<bool> promise;
};

struct writer_state {
  std::deque<pending> queue;
  std::vector<status_db_worker> idle;
  std::vector<status_db_worker> all;            // by index: the id each worker answers status with
  std::vector<std::size_t> in_flight_by_worker; // writes of the batch each worker holds (0: idle)
  std::unordered_set<std::string> busy_peers;   // peers with a write in a batch in flight
  writer_state_record counters;
  std::size_t max_batch = 1024;
  static inline const char* name = "status_writer";
};

using writer_ptr = status_writer::stateful_pointer<writer_state>;

void dispatch(writer_ptr self);

void finish_batch(writer_ptr self, status_db_worker worker, std::vector<pending>& batch,
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
    auto batch = std::make_shared<std::vector<pending>>();
    std::unordered_set<std::string> in_batch;
    std::deque<pending> rest;
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
    std::vector<storage::status_write> writes;
    writes.reserve(batch->size());
    for (auto& p : *batch) {
      st.busy_peers.insert(p.write.peer_id);
      writes.push_back(p.write);
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
    self->request(worker, caf::infinite, batch_atom::value, std::move(writes))
        .then(
            [self, worker, batch](const std::vector<bool>& landed) {
              finish_batch(self, worker, *batch, &landed, nullptr);
            },
            [self, worker, batch](caf::error& err) {
              finish_batch(self, worker, *batch, nullptr, &err);
            });
  }
}

status_writer::behavior_type writer_impl(writer_ptr self, std::vector<status_db_worker> workers,
                                         std::size_t max_batch) {
  self->state.idle = std::move(workers);
  self->state.all = self->state.idle;
  self->state.in_flight_by_worker.assign(self->state.all.size(), 0);
  self->state.counters.workers = self->state.idle.size();
  self->state.max_batch = max_batch == 0 ? 1 : max_batch;
  // The workers die with the writer.
  for (auto& w : self->state.idle)
    self->link_to(w);
  return {
      [self](write_atom, storage::status_write& w) -> caf::result<bool> {
        auto rp = self->make_response_promise<bool>();
        self->state.queue.push_back(pending{std::move(w), rp});
        dispatch(self);
        return rp;
      },
      [self](members_atom) {
        std::vector<status_target> out;
        for (const auto& w : self->state.all)
          out.push_back({"status_db_worker", w});
        return out;
      },
      [self](status_atom) {
        auto r = self->state.counters;
        r.queued = self->state.queue.size();
        auto s = status_of(self, "status_writer");
        put_record(s, r);
        // Per database worker (the id its own status answer carries): the writes it holds.
        const auto& by = self->state.in_flight_by_worker;
        for (std::size_t i = 0; i < by.size(); ++i)
          s.gauges["in_flight_worker_" + std::to_string(i)] = static_cast<std::int64_t>(by[i]);
        return s;
      },
  };
}

} // namespace

status_writer spawn_status_writer(caf::actor_system& sys, status_writer_config cfg) {
  std::vector<status_db_worker> workers;
  const auto n = cfg.workers == 0 ? 1 : cfg.workers;
  for (std::size_t i = 0; i < n; ++i)
    workers.push_back(
        cfg.detached
            ? sys.spawn<caf::detached>(worker_impl, cfg.db, cfg.replica_id, std::to_string(i))
            : sys.spawn(worker_impl, cfg.db, cfg.replica_id, std::to_string(i)));
  return sys.spawn(writer_impl, std::move(workers), cfg.max_batch);
}

} // namespace nbm::actors
