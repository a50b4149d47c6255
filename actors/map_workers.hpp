// map_workers: a few threads that compute network maps and their fingerprints for the account
// actors, off CAF's scheduler threads. A fan-out of a 5,000-peer account is tens of ms of CPU; on a
// scheduler thread every other actor queued behind it would wait that long. The account actor
// hands a batch of its sessions (one immutable account_view, shared and never changed) to the
// workers, stays free for its other messages, and gets the batch back as a message (mapped_atom)
// with the maps that changed. No CAF here: a job is a closure the account actor builds.
#pragma once

#include "actors/session_sink.hpp"
#include "actors/telemetry.hpp"
#include "core/session_token.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace nbm::actors {

// One session's part of a batch: filled in by the account actor, then by compute().
struct map_item {
  std::string peer_id;
  core::session_token token = 0;
  std::uint32_t peer = 0;             // the peer's index in the batch's account
  bool initial = false;               // the session's first map: sent whatever its fingerprint
  std::uint64_t sent_fingerprint = 0; // of the map the session was sent last (not initial)
  std::uint64_t fingerprint = 0;      // of the map computed
  map_update_ptr update;              // the map; null when it equals the one sent (not initial)
};

// The maps of some sessions of one account, against one view of it.
struct map_batch {
  std::shared_ptr<account_change> change; // immutable: read by any thread
  telemetry::reason reason;               // why the fan-out runs (initial maps: none)
  std::uint64_t flight = 0;               // the fan-out of its account this batch belongs to
  std::vector<map_item> items;
  std::int64_t compute_ns = 0; // how long compute() took
  bool failed = false;         // compute() threw: no item has a map

  // Computes every item's map and fingerprint and counts them (network_map_computed, or
  // network_map_built for initial maps). Reads only `change`: safe on any thread.
  void compute();
};
using map_batch_ptr = std::shared_ptr<map_batch>;

// The threads. Jobs run in the order posted, each on whichever thread is free.
class map_workers {
public:
  // A batch estimated to take less than this (maps times the account's measured time per map)
  // is computed on the account actor: handing it over would cost more than it saves.
  static constexpr std::int64_t default_inline_ns = 200'000;

  // `threads` 0: no thread; posted jobs wait until run_queued() runs them (tests decide when).
  explicit map_workers(unsigned threads, std::int64_t inline_ns = default_inline_ns);
  ~map_workers(); // stop()
  map_workers(const map_workers&) = delete;
  map_workers& operator=(const map_workers&) = delete;

  // Queues a job; after stop() the job is destroyed at once, unrun.
  void post(std::function<void()> job);
  // Runs nothing more: jobs still queued are destroyed unrun, running ones finish, the threads
  // are joined. Called before the actor system goes down (a job holds an account actor's
  // handle; its result would go to an actor system that is gone). Idempotent.
  void stop();
  // Runs the jobs queued now on the calling thread (threads 0); returns how many ran.
  std::size_t run_queued();

  unsigned threads() const { return static_cast<unsigned>(threads_.size()); }
  std::int64_t inline_ns() const { return inline_ns_; }
  std::size_t queued() const;
  std::uint64_t jobs_run() const { return jobs_run_.load(std::memory_order_relaxed); }

private:
  void run();
  void run_one(std::function<void()>& job);
  const std::int64_t inline_ns_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  bool stop_ = false;
  std::atomic<std::uint64_t> jobs_run_{0};
};

// NBM_MAP_WORKERS (1..64), else max(1, cores - 1): one core stays for CAF's scheduler, gRPC and
// the encoders. "0" computes every map on the account actors (the workers are not used).
unsigned map_workers_from_env();
// NBM_MAP_INLINE_US (0..1000000): batches cheaper than this run on the account actor (0: every
// batch goes to the workers); else map_workers::default_inline_ns.
std::int64_t map_inline_ns_from_env();

} // namespace nbm::actors
