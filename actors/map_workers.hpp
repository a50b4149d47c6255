// map_workers: a few threads that compute network maps and their fingerprints for the account
// actors, off CAF's scheduler threads. A fan-out of a 5,000-peer account is tens of ms of CPU; on a
// scheduler thread every other actor queued behind it would wait that long. The account actor
// hands its sessions to the workers a small batch at a time (one immutable account_view, shared
// and never changed), stays free for its other messages, and gets each batch back as a message
// (mapped_atom) with the maps that changed; it sends them to their peers and only then hands out
// the next batch, so a fan-out holds a few batches of maps at once, never all of them (with
// NetBird's default All policy a map of a 2,000-peer account is hundreds of KB). No CAF here: a
// job is a closure the account actor builds.
#pragma once

#include "actors/session_sink.hpp"
#include "actors/telemetry.hpp"
#include "core/session_token.hpp"

#include <algorithm>
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
  bool failed = false;                // computing it threw (logged): nothing to send
};

// How many maps are computed and not yet handed to their peer actors, now and at most (one per
// account actor, shared with the batches its workers compute; the status shows it).
struct maps_held {
  std::atomic<std::int64_t> now{0};
  std::atomic<std::int64_t> peak{0};
  void add(std::int64_t n);
  void sub(std::int64_t n) { now.fetch_sub(n, std::memory_order_relaxed); }
};

// The maps of some sessions of one account, against one view of it.
struct map_batch {
  std::shared_ptr<account_change> change; // immutable: read by any thread
  telemetry::reason reason;               // why the fan-out runs (initial maps: none)
  std::uint64_t flight = 0;               // the fan-out of its account this batch belongs to
  std::vector<map_item> items;
  std::shared_ptr<maps_held> held; // may be null
  std::int64_t compute_ns = 0;     // how long its maps took to compute, so far
  std::size_t computed = 0;        // maps computed without failing, so far
  std::size_t objects = 0;         // their objects (peers, rules, routes), NetBird's count

  // Computes `item`'s map and fingerprint and counts it (network_map_computed, or
  // network_map_built for an initial map); keeps the map when it is to be sent. A failure is
  // logged and marks the item failed. Reads only `change`: safe on any thread.
  void compute(map_item& item);
  // Every item's.
  void compute();

private:
  bool logged_ = false; // one failure logged per batch
};
using map_batch_ptr = std::shared_ptr<map_batch>;

// The threads. Jobs run in the order posted, each on whichever thread is free.
class map_workers {
public:
  // A batch estimated to take less than this (maps times the account's measured time per map)
  // is computed on the account actor: handing it over would cost more than it saves.
  static constexpr std::int64_t default_inline_ns = 200'000;
  // A fan-out is handed out in batches of at most `batch_max` maps, fewer when its maps are large
  // (about batch_objects objects a batch: with NetBird's default All policy at 2,000 peers a map
  // holds ~6,000 objects, ~700 KB) or slow (about batch_ns of work a batch). An account has at
  // most credit() batches out at once.
  static constexpr std::int64_t batch_ns = 20'000'000;
  static constexpr std::size_t batch_objects = 32'768;
  static constexpr std::size_t default_batch_max = 1024;

  // `threads` 0: no thread; posted jobs wait until run_queued() runs them (tests decide when).
  explicit map_workers(unsigned threads, std::int64_t inline_ns = default_inline_ns,
                       std::size_t batch_max = default_batch_max);
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
  std::size_t batch_max() const { return batch_max_; }
  // Batches one fan-out may have computed or computing and not yet handed back to its account
  // actor: two per thread (one computed while the other waits for the actor), one without
  // threads (the test runs the queue).
  std::size_t credit() const { return threads_.empty() ? 1 : 2 * threads_.size(); }
  std::size_t queued() const;
  std::uint64_t jobs_run() const { return jobs_run_.load(std::memory_order_relaxed); }

private:
  void run();
  void run_one(std::function<void()>& job);
  const std::int64_t inline_ns_;
  const std::size_t batch_max_;
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
