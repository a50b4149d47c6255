// NetBird's account manager, update channel and store metrics (management/server/telemetry),
// counted where the work happens: peer and account actors, the store workers, the Sync sinks.
// Process-wide and lock-free (relaxed atomics: a count costs one atomic add), no CAF and no
// Prometheus here, so api/grpc may count too; api/metrics renders a snapshot at each scrape with
// NetBird's names, labels and bucket boundaries. Every label is a small enumeration: no peer or
// account id ever becomes a label.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string_view>
#include <vector>

namespace nbm::actors::telemetry {

// A histogram with fixed upper bounds (NetBird's instrument's); observe() is wait-free.
class histogram {
public:
  histogram(std::initializer_list<double> bounds);
  void observe(double v) noexcept;

  struct sample {
    std::vector<double> bounds;
    std::vector<std::uint64_t> cumulative; // per bound, then +Inf
    double sum = 0;
    std::uint64_t count = 0;
  };
  sample read() const;

private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_; // bounds_.size() + 1 (the last: +Inf)
  std::atomic<double> sum_{0};
};

// Fenced session writes (NetBird's MarkPeerConnected / MarkPeerDisconnected).
enum class status_op : std::uint8_t { connect, disconnect };
// applied: the fence let it land; stale: a newer session owns the peer (in memory or in the
// store); error: the store failed; peer_not_found: NetBird's when the peer is gone (our fenced
// write cannot tell it from stale: never counted).
enum class status_outcome : std::uint8_t { applied, stale, error, peer_not_found };
inline constexpr std::size_t status_ops = 2, status_outcomes = 4;
std::string_view name(status_op);
std::string_view name(status_outcome);

// Why an account's peers were updated (NetBird's UpdateReason). NetBird's resources, plus ours
// where NetBird updates no peers: setup_key (our fan-out runs after every committed change) and
// account/reload (the account read again: another replica's write, a serial poll).
enum class resource : std::uint8_t {
  account_settings,
  dns_settings,
  group,
  nameserver_group,
  policy,
  posture_check,
  route,
  user,
  peer,
  network,
  network_resource,
  network_router,
  setup_key,
  account,
};
enum class operation : std::uint8_t { create, update, del, reload };
inline constexpr std::size_t resources = 14, operations = 4;
std::string_view name(resource);
std::string_view name(operation);
struct reason {
  resource what = resource::account;
  operation op = operation::reload;
};

// What is counted. Counters are indexed by their labels' enumerations.
struct metrics {
  // management.account.peer.status.update.{counter,duration.ms}
  std::array<std::array<std::atomic<std::uint64_t>, status_outcomes>, status_ops> peer_status{};
  std::array<histogram, status_ops> peer_status_ms{
      {histogram{1, 5, 15, 25, 50, 100, 250, 500, 1000, 2000, 5000},
       histogram{1, 5, 15, 25, 50, 100, 250, 500, 1000, 2000, 5000}}};
  // management.account.peer.meta.update.counter
  std::atomic<std::uint64_t> peer_meta_updates{0};
  // management.account.update.account.peers.{counter,duration.ms}, management.network.map.counter
  std::array<std::array<std::atomic<std::uint64_t>, operations>, resources> peers_updates{};
  std::array<std::array<std::atomic<std::uint64_t>, operations>, resources> network_maps{};
  histogram peers_update_ms{0.5, 1,   2.5,  5,    10,   25,    50,   100,
                            250, 500, 1000, 2500, 5000, 10000, 30000};
  // management.account.get.peer.network.map.duration.ms, ...network.map.object.count
  histogram network_map_ms{0.1, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000};
  histogram network_map_objects{50, 100, 200, 500, 1000, 2500, 5000, 10000};
  // management.updatechannel.*: OpenTelemetry's default buckets (NetBird sets none)
  std::array<histogram, 2> channel_create_us{{default_buckets(), default_buckets()}}; // closed
  histogram channel_close_us = default_buckets();
  // found x dropped: [0] not found, [1] found and kept, [2] found, an unsent older map dropped
  std::array<histogram, 3> update_send_us{
      {default_buckets(), default_buckets(), default_buckets()}};
  histogram calc_network_map_ms = default_buckets();
  histogram to_sync_response_us = default_buckets();
  // management.store.transaction.duration.ms
  histogram store_transaction_ms = default_buckets();

  static histogram default_buckets();
};

metrics& get();

// ---- counting (thread-safe, cheap)
// ----------------------------------------------------------------
void peer_status_update(status_op op, status_outcome outcome, double ms);
void peer_meta_update();
void peers_update_triggered(reason r);
// One fan-out that computed maps: how long, and one map per connected peer.
void peers_update_duration(double ms);
void network_map_computed(reason r, double ms, std::size_t objects);
// A map computed outside a fan-out (a stream's first map): timed and sized, not counted by reason.
void network_map_built(double ms, std::size_t objects);
void channel_created(double us, bool closed_older);
void channel_closed(double us);
void update_sent(double us, bool found, bool dropped_older);
void sync_response_encoded(double us);
void store_transaction(double ms);

// Milliseconds / microseconds since `from` on the steady clock, as a double.
double ms_since(std::int64_t from_ns);
double us_since(std::int64_t from_ns);
std::int64_t now_ns();

} // namespace nbm::actors::telemetry
