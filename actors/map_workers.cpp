#include "actors/map_workers.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <utility>

namespace nbm::actors {

namespace {

// NetBird's objects of a network map (its CountNetworkMapObjects).
std::size_t map_objects(const core::network_map& m) {
  return m.remote_peers.size() + m.offline_peers.size() + m.routes.size() +
         m.firewall_rules.size() + m.route_firewall_rules.size();
}

} // namespace

void maps_held::add(std::int64_t n) {
  const auto v = now.fetch_add(n, std::memory_order_relaxed) + n;
  auto p = peak.load(std::memory_order_relaxed);
  while (v > p && !peak.compare_exchange_weak(p, v, std::memory_order_relaxed)) {
  }
}

void map_batch::compute(map_item& item) {
  const auto began = telemetry::now_ns();
  try {
    const auto& view = *change->view;
    auto u = std::make_shared<map_update>();
    u->change = change;
    u->peer = item.peer;
    u->map = view.map_for(item.peer);
    const auto ms = telemetry::ms_since(began);
    const auto objects = map_objects(u->map);
    if (item.initial)
      telemetry::network_map_built(ms, objects);
    else
      telemetry::network_map_computed(reason, ms, objects);
    this->objects += objects;
    item.fingerprint = view.fingerprint(u->map);
    if (item.initial || item.fingerprint != item.sent_fingerprint) {
      item.update = std::move(u);
      if (held)
        held->add(1);
    }
    ++computed;
  } catch (const std::exception& e) {
    if (!std::exchange(logged_, true))
      spdlog::error("account {}: computing the network map of peer {} failed: {}",
                    change->view->acc().id, item.peer_id, e.what());
    item.failed = true;
  }
  compute_ns += telemetry::now_ns() - began;
}

void map_batch::compute() {
  for (auto& item : items)
    compute(item);
}

map_workers::map_workers(unsigned threads, std::int64_t inline_ns, std::size_t batch_max)
    : inline_ns_(inline_ns), batch_max_(std::max<std::size_t>(1, batch_max)) {
  for (unsigned i = 0; i < threads; ++i)
    threads_.emplace_back([this] { run(); });
}

map_workers::~map_workers() {
  stop();
}

void map_workers::post(std::function<void()> job) {
  bool queued = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!stop_) {
      jobs_.push_back(std::move(job));
      queued = true;
    }
  }
  if (queued)
    cv_.notify_one();
  // else stopped: the job goes unrun when `job` does, outside the lock
}

void map_workers::stop() {
  std::deque<std::function<void()>> dropped;
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
    dropped.swap(jobs_);
  }
  cv_.notify_all();
  dropped.clear(); // unrun, with the handles they hold (the actor system is still up)
  for (auto& t : threads_)
    if (t.joinable())
      t.join();
}

std::size_t map_workers::run_queued() {
  std::deque<std::function<void()>> now;
  {
    std::lock_guard<std::mutex> lk(mu_);
    now.swap(jobs_);
  }
  for (auto& job : now)
    run_one(job);
  return now.size();
}

std::size_t map_workers::queued() const {
  std::lock_guard<std::mutex> lk(mu_);
  return jobs_.size();
}

void map_workers::run_one(std::function<void()>& job) {
  try {
    job();
  } catch (const std::exception& e) { // compute() catches its own; this is the hand-back
    spdlog::error("a map worker's job failed: {}", e.what());
  }
  job = nullptr; // its handles go before the next job
  jobs_run_.fetch_add(1, std::memory_order_relaxed);
}

void map_workers::run() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [this] { return stop_ || !jobs_.empty(); });
      if (stop_)
        return; // what is still queued is stop()'s to drop
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    run_one(job);
  }
}

unsigned map_workers_from_env() {
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const unsigned fallback = std::max(1u, cores - 1);
  if (const char* v = std::getenv("NBM_MAP_WORKERS")) {
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    if (end != v && *end == '\0' && n >= 0 && n <= 64)
      return static_cast<unsigned>(n);
    spdlog::warn("NBM_MAP_WORKERS={} is not 0..64; using {}", std::string(v).substr(0, 16),
                 fallback);
  }
  return fallback;
}

std::int64_t map_inline_ns_from_env() {
  if (const char* v = std::getenv("NBM_MAP_INLINE_US")) {
    char* end = nullptr;
    const long long us = std::strtoll(v, &end, 10);
    if (end != v && *end == '\0' && us >= 0 && us <= 1'000'000)
      return static_cast<std::int64_t>(us) * 1000;
    spdlog::warn("NBM_MAP_INLINE_US={} is not 0..1000000; using {}", std::string(v).substr(0, 16),
                 map_workers::default_inline_ns / 1000);
  }
  return map_workers::default_inline_ns;
}

} // namespace nbm::actors
