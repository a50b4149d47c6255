#include "actors/telemetry.hpp"

#include <algorithm>
#include <chrono>

namespace nbm::actors::telemetry {

histogram::histogram(std::initializer_list<double> bounds)
    : bounds_(bounds), buckets_(new std::atomic<std::uint64_t>[bounds.size() + 1]) {
  for (std::size_t i = 0; i <= bounds_.size(); ++i)
    buckets_[i].store(0, std::memory_order_relaxed);
}

void histogram::observe(double v) noexcept {
  // Prometheus' buckets are upper-inclusive (le): the first bound >= v.
  const auto i = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) -
                                          bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

histogram::sample histogram::read() const {
  sample s;
  s.bounds = bounds_;
  s.cumulative.reserve(bounds_.size() + 1);
  std::uint64_t total = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(total);
  }
  s.count = total;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

histogram metrics::default_buckets() {
  // OpenTelemetry's default explicit bucket boundaries.
  return histogram{0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000};
}

std::string_view name(status_op op) {
  return op == status_op::connect ? "connect" : "disconnect";
}

std::string_view name(status_outcome o) {
  switch (o) {
  case status_outcome::applied:
    return "applied";
  case status_outcome::stale:
    return "stale";
  case status_outcome::error:
    return "error";
  case status_outcome::peer_not_found:
    return "peer_not_found";
  }
  return "";
}

std::string_view name(resource r) {
  static constexpr std::string_view names[resources] = {"account_settings",
                                                        "dns_settings",
                                                        "group",
                                                        "nameserver_group",
                                                        "policy",
                                                        "posture_check",
                                                        "route",
                                                        "user",
                                                        "peer",
                                                        "network",
                                                        "network_resource",
                                                        "network_router",
                                                        "setup_key",
                                                        "account"};
  return names[static_cast<std::size_t>(r)];
}

std::string_view name(operation o) {
  static constexpr std::string_view names[operations] = {"create", "update", "delete", "reload"};
  return names[static_cast<std::size_t>(o)];
}

metrics& get() {
  static metrics m;
  return m;
}

namespace {
// NetBird records whole microseconds and milliseconds (Int64 histograms).
double whole(double v) {
  return static_cast<double>(static_cast<std::int64_t>(v));
}
} // namespace

void peer_status_update(status_op op, status_outcome outcome, double ms) {
  auto& m = get();
  m.peer_status[static_cast<std::size_t>(op)][static_cast<std::size_t>(outcome)].fetch_add(
      1, std::memory_order_relaxed);
  m.peer_status_ms[static_cast<std::size_t>(op)].observe(ms);
}

void peer_meta_update() {
  get().peer_meta_updates.fetch_add(1, std::memory_order_relaxed);
}

void peers_update_triggered(reason r) {
  get().peers_updates[static_cast<std::size_t>(r.what)][static_cast<std::size_t>(r.op)].fetch_add(
      1, std::memory_order_relaxed);
}

void peers_update_duration(double ms) {
  get().peers_update_ms.observe(ms);
}

void network_map_computed(reason r, double ms, std::size_t objects) {
  get().network_maps[static_cast<std::size_t>(r.what)][static_cast<std::size_t>(r.op)].fetch_add(
      1, std::memory_order_relaxed);
  network_map_built(ms, objects);
}

void network_map_built(double ms, std::size_t objects) {
  auto& m = get();
  m.network_map_ms.observe(ms);
  m.calc_network_map_ms.observe(whole(ms));
  m.network_map_objects.observe(static_cast<double>(objects));
}

void channel_created(double us, bool closed_older) {
  get().channel_create_us[closed_older ? 1 : 0].observe(whole(us));
}

void channel_closed(double us) {
  get().channel_close_us.observe(whole(us));
}

void update_sent(double us, bool found, bool dropped_older) {
  get().update_send_us[!found ? 0 : dropped_older ? 2 : 1].observe(whole(us));
}

void sync_response_encoded(double us) {
  get().to_sync_response_us.observe(whole(us));
}

void store_transaction(double ms) {
  get().store_transaction_ms.observe(whole(ms));
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double ms_since(std::int64_t from_ns) {
  return static_cast<double>(now_ns() - from_ns) / 1e6;
}

double us_since(std::int64_t from_ns) {
  return static_cast<double>(now_ns() - from_ns) / 1e3;
}

} // namespace nbm::actors::telemetry
