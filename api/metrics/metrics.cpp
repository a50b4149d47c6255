#include "api/metrics/metrics.hpp"

#include "actors/cluster.hpp"
#include "actors/status_probe.hpp"
#include "actors/telemetry.hpp"

#include <caf/all.hpp>
#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

namespace nbm::api::metrics {

namespace {

using prometheus::MetricFamily;
using prometheus::MetricType;

// Bucket boundaries of OpenTelemetry's default explicit histogram, in milliseconds: the buckets
// NetBird's *_duration_ms histograms have.
const prometheus::Histogram::BucketBoundaries& ms_buckets() {
  static const prometheus::Histogram::BucketBoundaries b{
      0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000};
  return b;
}

// What the transport layers count, one registry for the process. Names as NetBird's OpenTelemetry
// exporter prints its instruments ("management.grpc.login.request.counter", unit "1" ->
// management_grpc_login_request_counter_total; "...duration.ms", unit "milliseconds" ->
// management_..._duration_ms_milliseconds).
struct counters {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Counter>& http_requests =
      prometheus::BuildCounter()
          .Name("management_http_request_counter_total")
          .Help("Number of incoming HTTP requests by endpoint and method")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& http_responses =
      prometheus::BuildCounter()
          .Name("management_http_response_counter_total")
          .Help("Number of outgoing HTTP responses by endpoint, method and returned status code")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& http_codes =
      prometheus::BuildCounter()
          .Name("management_http_response_counter_code_total")
          .Help("Number of outgoing HTTP responses by status code")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& http_ms =
      prometheus::BuildHistogram()
          .Name("management_http_request_duration_ms_milliseconds")
          .Help("Duration of incoming HTTP requests by endpoint and method")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& http_total_ms =
      prometheus::BuildHistogram()
          .Name("management_http_request_duration_ms_total_milliseconds")
          .Help("Duration of incoming HTTP requests (type: write = a successful PUT, POST or "
                "DELETE, read = anything else)")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& grpc_sync =
      prometheus::BuildCounter()
          .Name("management_grpc_sync_request_counter_total")
          .Help("Number of sync gRPC requests from the peers to establish a connection and "
                "receive network map updates (update channel)")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& grpc_login =
      prometheus::BuildCounter()
          .Name("management_grpc_login_request_counter_total")
          .Help("Number of login gRPC requests from the peers to authenticate and receive "
                "initial configuration and relay credentials")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& grpc_key =
      prometheus::BuildCounter()
          .Name("management_grpc_key_request_counter_total")
          .Help("Number of key gRPC requests from the peers to get the server's public WireGuard "
                "key")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& grpc_sync_ms =
      prometheus::BuildHistogram()
          .Name("management_grpc_sync_request_duration_ms_milliseconds")
          .Help("Duration of the sync gRPC requests from the peers to establish a connection and "
                "receive network map updates (until the first map is handed to the stream)")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& grpc_login_ms =
      prometheus::BuildHistogram()
          .Name("management_grpc_login_request_duration_ms_milliseconds")
          .Help("Duration of the login gRPC requests from the peers to authenticate and receive "
                "initial configuration and relay credentials")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& grpc_calls =
      prometheus::BuildCounter()
          .Name("nbm_grpc_requests_total")
          .Help("gRPC calls ended, by method and gRPC status code")
          .Register(*registry);

  prometheus::Counter& sync_started = grpc_sync.Add({});
  prometheus::Counter& login_started = grpc_login.Add({});
  prometheus::Counter& key_started = grpc_key.Add({});
  prometheus::Histogram& sync_ms = grpc_sync_ms.Add({}, ms_buckets());
  prometheus::Histogram& login_ms = grpc_login_ms.Add({}, ms_buckets());
  prometheus::Histogram& read_ms = http_total_ms.Add({{"type", "read"}}, ms_buckets());
  prometheus::Histogram& write_ms = http_total_ms.Add({{"type", "write"}}, ms_buckets());
};

counters& the_counters() {
  static counters c;
  return c;
}

// NetBird's REST routes (management/server/http), as gorilla/mux templates under /api.
const std::vector<std::vector<std::string>>& route_table() {
  static const std::vector<std::vector<std::string>> routes = [] {
    const char* const templates[] = {
        "/api/accounts",
        "/api/accounts/{accountId}",
        "/api/dns/nameservers",
        "/api/dns/nameservers/{nsgroupId}",
        "/api/dns/settings",
        "/api/events",
        "/api/events/audit",
        "/api/groups",
        "/api/groups/{groupId}",
        "/api/identity-providers",
        "/api/identity-providers/{idpId}",
        "/api/instance",
        "/api/instance/version",
        "/api/locations/countries",
        "/api/locations/countries/{country}/cities",
        "/api/networks",
        "/api/networks/resources",
        "/api/networks/routers",
        "/api/networks/{networkId}",
        "/api/networks/{networkId}/resources",
        "/api/networks/{networkId}/resources/{resourceId}",
        "/api/networks/{networkId}/routers",
        "/api/networks/{networkId}/routers/{routerId}",
        "/api/peers",
        "/api/peers/{peerId}",
        "/api/peers/{peerId}/accessible-peers",
        "/api/peers/{peerId}/jobs",
        "/api/peers/{peerId}/jobs/{jobId}",
        "/api/peers/{peerId}/temporary-access",
        "/api/policies",
        "/api/policies/{policyId}",
        "/api/posture-checks",
        "/api/posture-checks/{postureCheckId}",
        "/api/routes",
        "/api/routes/{routeId}",
        "/api/setup",
        "/api/setup-keys",
        "/api/setup-keys/{keyId}",
        "/api/users",
        "/api/users/current",
        "/api/users/invites",
        "/api/users/invites/{inviteId}",
        "/api/users/invites/{inviteId}/regenerate",
        "/api/users/{userId}",
        "/api/users/{userId}/approve",
        "/api/users/{userId}/invite",
        "/api/users/{userId}/password",
        "/api/users/{userId}/reject",
        "/api/users/{userId}/tokens",
        "/api/users/{userId}/tokens/{tokenId}",
    };
    std::vector<std::vector<std::string>> out;
    for (const char* t : templates) {
      std::vector<std::string> segs;
      std::string seg;
      for (const char* c = t + 1;; ++c) {
        if (*c == '/' || *c == '\0') {
          segs.push_back(seg);
          seg.clear();
          if (*c == '\0')
            break;
        } else {
          seg += *c;
        }
      }
      out.push_back(std::move(segs));
    }
    return out;
  }();
  return routes;
}

// ---- process metrics (what Prometheus' process collector exports)
// ---------------------------------

struct process_sample {
  double cpu_seconds = 0, start_time = 0, rss_bytes = 0, vm_bytes = 0, open_fds = 0, max_fds = 0;
};

process_sample sample_process() {
  process_sample p;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  std::ifstream stat("/proc/self/stat");
  std::string line;
  std::getline(stat, line);
  // Fields after the command (which may hold spaces) start at field 3 (state).
  const auto close = line.rfind(')');
  if (close != std::string::npos) {
    std::istringstream in(line.substr(close + 2));
    std::vector<std::string> f;
    for (std::string x; in >> x;)
      f.push_back(x);
    // f[0] is field 3; utime 14, stime 15, starttime 22, vsize 23, rss 24.
    if (f.size() > 21) {
      p.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / ticks;
      const double start_ticks = std::stod(f[19]);
      p.vm_bytes = std::stod(f[20]);
      p.rss_bytes = std::stod(f[21]) * page;
      std::ifstream boot("/proc/stat");
      for (std::string l; std::getline(boot, l);)
        if (l.rfind("btime ", 0) == 0)
          p.start_time = std::stod(l.substr(6)) + start_ticks / ticks;
    }
  }
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    p.open_fds += 1;
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0)
    p.max_fds = static_cast<double>(lim.rlim_cur);
  return p;
}

// ---- the actors' state, asked of them at each scrape
// ----------------------------------------------

MetricFamily single(const std::string& name, const std::string& help, MetricType type,
                    double value) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  prometheus::ClientMetric m;
  if (type == MetricType::Counter)
    m.counter.value = value;
  else
    m.gauge.value = value;
  f.metric.push_back(std::move(m));
  return f;
}

// A family with one sample per label value (`label` -> value).
MetricFamily labelled(
    const std::string& name, const std::string& help, MetricType type,
    const std::vector<std::pair<std::vector<prometheus::ClientMetric::Label>, double>>& values) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  for (const auto& [labels, v] : values) {
    prometheus::ClientMetric m;
    m.label = labels;
    if (type == MetricType::Counter)
      m.counter.value = v;
    else
      m.gauge.value = v;
    f.metric.push_back(std::move(m));
  }
  return f;
}

// ---- NetBird's account manager, update channel and store metrics (actors/telemetry)
// ---------------------------------------------------------------------------------------------

using label_list = std::vector<prometheus::ClientMetric::Label>;

prometheus::ClientMetric histogram_metric(const actors::telemetry::histogram& h,
                                          label_list labels) {
  const auto s = h.read();
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  for (std::size_t i = 0; i < s.bounds.size(); ++i) {
    prometheus::ClientMetric::Bucket b;
    b.upper_bound = s.bounds[i];
    b.cumulative_count = s.cumulative[i];
    m.histogram.bucket.push_back(b);
  }
  prometheus::ClientMetric::Bucket inf;
  inf.upper_bound = std::numeric_limits<double>::infinity();
  inf.cumulative_count = s.cumulative.back();
  m.histogram.bucket.push_back(inf);
  m.histogram.sample_count = s.count;
  m.histogram.sample_sum = s.sum;
  return m;
}

MetricFamily family(const std::string& name, const std::string& help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

// One unlabelled histogram.
MetricFamily histogram_family(const std::string& name, const std::string& help,
                              const actors::telemetry::histogram& h) {
  auto f = family(name, help, MetricType::Histogram);
  f.metric.push_back(histogram_metric(h, {}));
  return f;
}

std::string label_value(std::string_view v) {
  return std::string(v);
}

// As NetBird's OpenTelemetry exporter: a labelled series appears once it was counted.
void telemetry_families(std::vector<MetricFamily>& out) {
  namespace t = actors::telemetry;
  const auto& m = t::get();
  const auto count_of = [](const std::atomic<std::uint64_t>& a) {
    return static_cast<double>(a.load(std::memory_order_relaxed));
  };
  {
    auto f = family("management_account_peer_status_update_counter_total",
                    "Number of peer status update attempts, labeled by operation "
                    "(connect|disconnect) and outcome (applied|stale|error|peer_not_found)",
                    MetricType::Counter);
    auto h = family("management_account_peer_status_update_duration_ms_milliseconds",
                    "Duration of a peer status update (fence UPDATE + post-write side effects), "
                    "labeled by operation",
                    MetricType::Histogram);
    for (std::size_t op = 0; op < t::status_ops; ++op) {
      const auto op_name = label_value(t::name(static_cast<t::status_op>(op)));
      for (std::size_t o = 0; o < t::status_outcomes; ++o) {
        const double v = count_of(m.peer_status[op][o]);
        if (v == 0)
          continue;
        prometheus::ClientMetric c;
        c.label = {{"operation", op_name},
                   {"outcome", label_value(t::name(static_cast<t::status_outcome>(o)))}};
        c.counter.value = v;
        f.metric.push_back(std::move(c));
      }
      if (m.peer_status_ms[op].read().count > 0)
        h.metric.push_back(histogram_metric(m.peer_status_ms[op], {{"operation", op_name}}));
    }
    out.push_back(std::move(f));
    out.push_back(std::move(h));
  }
  out.push_back(single("management_account_peer_meta_update_counter_total",
                       "Number of updates with new meta data from the peers", MetricType::Counter,
                       count_of(m.peer_meta_updates)));
  const auto by_reason = [&](const std::string& name, const std::string& help, const auto& table) {
    auto f = family(name, help, MetricType::Counter);
    for (std::size_t r = 0; r < t::resources; ++r)
      for (std::size_t o = 0; o < t::operations; ++o) {
        const double v = count_of(table[r][o]);
        if (v == 0)
          continue;
        prometheus::ClientMetric c;
        c.label = {{"operation", label_value(t::name(static_cast<t::operation>(o)))},
                   {"resource", label_value(t::name(static_cast<t::resource>(r)))}};
        c.counter.value = v;
        f.metric.push_back(std::move(c));
      }
    out.push_back(std::move(f));
  };
  by_reason("management_account_update_account_peers_counter_total",
            "Number of account peers updates triggered, labeled by resource and operation",
            m.peers_updates);
  by_reason("management_network_map_counter_total",
            "Number of network maps computed, labeled by resource and operation trigger",
            m.network_maps);
  out.push_back(histogram_family(
      "management_account_update_account_peers_duration_ms_milliseconds",
      "Duration of triggering the account peers update and preparing the required data for the "
      "network map being sent to the clients",
      m.peers_update_ms));
  out.push_back(
      histogram_family("management_account_get_peer_network_map_duration_ms_milliseconds",
                       "Duration of calculating the peer network map that is sent to the clients",
                       m.network_map_ms));
  out.push_back(histogram_family("management_account_network_map_object_count_objects",
                                 "Number of objects in the network map like peers, routes, "
                                 "firewall rules, etc. that are sent to the clients",
                                 m.network_map_objects));
  {
    auto f = family("management_updatechannel_create_duration_micro_microseconds",
                    "Duration of how long it takes to create a new peer update channel",
                    MetricType::Histogram);
    for (int closed = 0; closed < 2; ++closed)
      if (m.channel_create_us[closed].read().count > 0)
        f.metric.push_back(
            histogram_metric(m.channel_create_us[closed], {{"closed", closed ? "true" : "false"}}));
    out.push_back(std::move(f));
  }
  out.push_back(histogram_family("management_updatechannel_close_one_duration_micro_microseconds",
                                 "Duration of how long it takes to close a peer update channel",
                                 m.channel_close_us));
  {
    auto f = family("management_updatechannel_send_duration_micro_microseconds",
                    "Duration of how long it takes to send an network map update to a peer",
                    MetricType::Histogram);
    const char* found[] = {"false", "true", "true"};
    const char* dropped[] = {"false", "false", "true"};
    for (int i = 0; i < 3; ++i)
      if (m.update_send_us[i].read().count > 0)
        f.metric.push_back(
            histogram_metric(m.update_send_us[i], {{"dropped", dropped[i]}, {"found", found[i]}}));
    out.push_back(std::move(f));
  }
  out.push_back(
      histogram_family("management_updatechannel_calc_networkmap_duration_ms_milliseconds",
                       "Duration of how long it takes to calculate the network map for a peer",
                       m.calc_network_map_ms));
  out.push_back(
      histogram_family("management_updatechannel_tosyncresponse_duration_micro_microseconds",
                       "Duration of how long it takes to convert the network map to sync response",
                       m.to_sync_response_us));
  out.push_back(
      histogram_family("management_store_transaction_duration_ms_milliseconds",
                       "Duration of how long it takes to execute a transaction in the store",
                       m.store_transaction_ms));
}

// The deadline of one scrape: the directory's list and every actor's answer together.
constexpr auto scrape_deadline = std::chrono::milliseconds(2000);

class actor_state : public prometheus::Collectable {
public:
  actor_state(caf::actor_system& sys, sources src) : sys_(sys), src_(std::move(src)) {}

  std::vector<MetricFamily> Collect() const override {
    std::vector<MetricFamily> out;
    collect_process(out);
    telemetry_families(out);
    collect_actors(out);
    return out;
  }

private:
  static void collect_process(std::vector<MetricFamily>& out) {
    const auto p = sample_process();
    out.push_back(single("process_cpu_seconds_total",
                         "Total user and system CPU time spent in seconds.", MetricType::Counter,
                         p.cpu_seconds));
    out.push_back(single("process_resident_memory_bytes", "Resident memory size in bytes.",
                         MetricType::Gauge, p.rss_bytes));
    out.push_back(single("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                         MetricType::Gauge, p.vm_bytes));
    out.push_back(single("process_open_fds", "Number of open file descriptors.", MetricType::Gauge,
                         p.open_fds));
    out.push_back(single("process_max_fds", "Maximum number of open file descriptors.",
                         MetricType::Gauge, p.max_fds));
    out.push_back(single("process_start_time_seconds",
                         "Start time of the process since unix epoch in seconds.",
                         MetricType::Gauge, p.start_time));
  }

  void collect_actors(std::vector<MetricFamily>& out) const {
    const auto until = std::chrono::steady_clock::now() + scrape_deadline;
    std::vector<actors::status_target> targets = src_.others;
    std::uint64_t directory_missing = 0;
    if (src_.directory) {
      caf::scoped_actor self{sys_};
      bool listed = false;
      self->request(src_.directory, scrape_deadline / 2, actors::members_atom::value)
          .receive(
              [&](std::vector<actors::status_target>& v) {
                listed = true;
                targets.insert(targets.end(), std::make_move_iterator(v.begin()),
                               std::make_move_iterator(v.end()));
              },
              [](caf::error&) {});
      if (!listed)
        directory_missing = 1;
    }
    const auto left = std::max(std::chrono::milliseconds(100),
                               std::chrono::duration_cast<std::chrono::milliseconds>(
                                   until - std::chrono::steady_clock::now()));
    auto sample = actors::ask_status(sys_, targets, left);
    if (directory_missing)
      sample.missing["directory"] += directory_missing;

    // Per kind: how many answered, how many did not (in time), their mailboxes, their counters.
    struct kind_sum {
      std::uint64_t answered = 0;
      std::int64_t mailbox_max = 0, mailbox_sum = 0;
      std::map<std::string, std::uint64_t> counters;
      std::map<std::string, std::int64_t> gauges;
    };
    std::map<std::string, kind_sum> kinds;
    for (const auto& s : sample.answers) {
      auto& k = kinds[s.kind];
      ++k.answered;
      if (s.mailbox > 0) {
        k.mailbox_max = std::max(k.mailbox_max, s.mailbox);
        k.mailbox_sum += s.mailbox;
      }
      for (const auto& [n, v] : s.counters)
        k.counters[n] += v;
      for (const auto& [n, v] : s.gauges)
        k.gauges[n] += v;
    }
    using labels = std::vector<prometheus::ClientMetric::Label>;
    std::vector<std::pair<labels, double>> answered, missing, mbox_max, mbox_sum, events;
    for (const auto& [kind, k] : kinds) {
      answered.push_back({{{"kind", kind}}, static_cast<double>(k.answered)});
      mbox_max.push_back({{{"kind", kind}}, static_cast<double>(k.mailbox_max)});
      mbox_sum.push_back({{{"kind", kind}}, static_cast<double>(k.mailbox_sum)});
      for (const auto& [n, v] : k.counters)
        events.push_back({{{"kind", kind}, {"name", n}}, static_cast<double>(v)});
    }
    for (const auto& [kind, n] : sample.missing)
      missing.push_back({{{"kind", kind}}, static_cast<double>(n)});
    out.push_back(labelled("nbm_actors",
                           "Actors that answered this scrape's status request, by kind",
                           MetricType::Gauge, answered));
    out.push_back(labelled("nbm_actor_status_missing",
                           "Actors that did not answer this scrape's status request in time "
                           "(busy or blocked), by kind",
                           MetricType::Gauge, missing));
    out.push_back(labelled("nbm_actor_mailbox_max", "Largest mailbox of an actor of this kind",
                           MetricType::Gauge, mbox_max));
    out.push_back(labelled("nbm_actor_mailbox_messages",
                           "Messages waiting in the mailboxes of the actors of this kind",
                           MetricType::Gauge, mbox_sum));
    out.push_back(labelled("nbm_actor_events_total",
                           "Every counter an actor reports in its status, summed over its kind",
                           MetricType::Counter, events));

    const auto gauge = [&](const char* kind, const char* name) -> double {
      auto it = kinds.find(kind);
      return it == kinds.end() ? 0.0 : static_cast<double>(it->second.gauges[name]);
    };
    const auto count = [&](const char* kind, const char* name) -> double {
      auto it = kinds.find(kind);
      return it == kinds.end() ? 0.0 : static_cast<double>(it->second.counters[name]);
    };
    const auto has = [&](const char* kind) { return kinds.count(kind) != 0; };

    if (has("directory") || has("account")) {
      const double streams = gauge("account", "connected");
      out.push_back(single("management_grpc_connected_streams_ratio",
                           "Number of active peer streams connected to the gRPC server",
                           MetricType::Gauge, streams));
      out.push_back(single("nbm_sync_streams",
                           "Sync streams attached to their account (connected peers)",
                           MetricType::Gauge, streams));
      out.push_back(single("nbm_accounts_loaded", "Accounts held in memory by their account actors",
                           MetricType::Gauge, gauge("account", "loaded")));
      out.push_back(single("nbm_account_peers", "Peers of the accounts held in memory",
                           MetricType::Gauge, gauge("account", "peers")));
      out.push_back(single("nbm_account_fanouts_total",
                           "Fan-outs run by account actors (each after one or more changes)",
                           MetricType::Counter, count("account", "changes")));
      out.push_back(single("nbm_network_maps_sent_total",
                           "Network maps handed to peers (initial ones included)",
                           MetricType::Counter, count("account", "maps_sent")));
      out.push_back(single("nbm_network_maps_unchanged_total",
                           "Connected peers a change left unchanged (no map sent)",
                           MetricType::Counter, count("account", "maps_skipped")));
      out.push_back(single("nbm_account_reloads_total", "Full reads of an account from the store",
                           MetricType::Counter, count("account", "reloads")));
    }
    if (has("directory"))
      out.push_back(single("nbm_peer_actors", "Peer actors alive", MetricType::Gauge,
                           gauge("directory", "peer_actors")));
    if (has("peer"))
      out.push_back(labelled("nbm_peer_session_writes_total",
                             "Fenced connects and disconnects of peer actors, by outcome",
                             MetricType::Counter,
                             {{{{"outcome", "landed"}}, count("peer", "landed")},
                              {{{"outcome", "dropped"}}, count("peer", "dropped")},
                              {{{"outcome", "refused"}}, count("peer", "refused")},
                              {{{"outcome", "failed"}}, count("peer", "failed")}}));
    if (has("status_writer")) {
      out.push_back(single("nbm_status_writes_pending", "Fenced status writes queued or in flight",
                           MetricType::Gauge,
                           gauge("status_writer", "queued") + gauge("status_writer", "in_flight")));
      out.push_back(single("nbm_status_writes_total", "Fenced status writes completed",
                           MetricType::Counter, count("status_writer", "writes")));
      out.push_back(single("nbm_status_writes_landed_total",
                           "Fenced status writes that passed the fence", MetricType::Counter,
                           count("status_writer", "landed")));
      out.push_back(single("nbm_status_write_errors_total", "Fenced status writes that failed",
                           MetricType::Counter, count("status_writer", "errors")));
      out.push_back(single("nbm_status_write_batches_total",
                           "Statements or transactions issued for status writes",
                           MetricType::Counter, count("status_writer", "batches")));
    }
    if (has("expiry")) {
      out.push_back(single("nbm_expiry_deadlines", "Pending lifecycle deadlines", MetricType::Gauge,
                           gauge("expiry", "scheduled")));
      out.push_back(single("nbm_expiry_login_expired_total",
                           "Peers marked login-expired (login or inactivity)", MetricType::Counter,
                           count("expiry", "expired")));
      out.push_back(single("nbm_expiry_ephemeral_deleted_total", "Ephemeral peers deleted",
                           MetricType::Counter, count("expiry", "deleted")));
      out.push_back(single("management_ephemeral_peers_cleaned_counter_total",
                           "Total number of ephemeral peers deleted by the cleanup loop",
                           MetricType::Counter, count("expiry", "deleted")));
      out.push_back(single("nbm_expiry_refused_total",
                           "Lifecycle decisions the store's fence refused", MetricType::Counter,
                           count("expiry", "refused")));
    }
    // The cluster channel (PostgreSQL replicas): its replica id as a label, what it published
    // and received, and the lag of what it received as a histogram (ms).
    for (const auto& c : sample.answers) {
      if (c.kind != "cluster")
        continue;
      const auto replica = c.label("replica");
      out.push_back(labelled("nbm_cluster_replica_info",
                             "This replica's id on the cluster channel (value 1)",
                             MetricType::Gauge, {{{{"replica", replica}}, 1.0}}));
      out.push_back(single("nbm_cluster_listening",
                           "Whether the cluster channel's LISTEN connection is up",
                           MetricType::Gauge, static_cast<double>(c.gauge("listening"))));
      out.push_back(single("nbm_cluster_notifications_sent_total",
                           "Notifications this replica published", MetricType::Counter,
                           static_cast<double>(c.counter("sent"))));
      out.push_back(single("nbm_cluster_notifications_received_total",
                           "Notifications of other replicas received", MetricType::Counter,
                           static_cast<double>(c.counter("received"))));
      out.push_back(labelled(
          "nbm_cluster_events_total",
          "Account writes and landed sessions in the notifications, by direction",
          MetricType::Counter,
          {{{{"direction", "sent"}}, static_cast<double>(c.counter("events_sent"))},
           {{{"direction", "received"}}, static_cast<double>(c.counter("events_received"))}}));
      out.push_back(single("nbm_cluster_connects_total",
                           "LISTEN connections made (the first one included)", MetricType::Counter,
                           static_cast<double>(c.counter("connects"))));
      out.push_back(single("nbm_cluster_events_dropped_total",
                           "Events not published (queue full while the channel was down)",
                           MetricType::Counter, static_cast<double>(c.counter("dropped"))));
      out.push_back(single("nbm_cluster_malformed_total",
                           "Notifications or lines that could not be read", MetricType::Counter,
                           static_cast<double>(c.counter("malformed"))));
      MetricFamily h;
      h.name = "nbm_cluster_notification_lag_ms";
      h.help = "From a notification's publish time (in its payload) until this replica handled "
               "it, in ms";
      h.type = MetricType::Histogram;
      prometheus::ClientMetric m;
      std::uint64_t cumulative = 0;
      for (auto b : actors::cluster_lag_buckets_ms) {
        cumulative += c.counter("lag_le_" + std::to_string(b));
        prometheus::ClientMetric::Bucket bk;
        bk.upper_bound = static_cast<double>(b);
        bk.cumulative_count = cumulative;
        m.histogram.bucket.push_back(bk);
      }
      cumulative += c.counter("lag_le_inf");
      prometheus::ClientMetric::Bucket inf;
      inf.upper_bound = std::numeric_limits<double>::infinity();
      inf.cumulative_count = cumulative;
      m.histogram.bucket.push_back(inf);
      m.histogram.sample_count = cumulative;
      m.histogram.sample_sum = static_cast<double>(c.counter("lag_sum_ms"));
      h.metric.push_back(std::move(m));
      out.push_back(std::move(h));
    }
    if (has("replica")) {
      std::string id;
      for (const auto& a : sample.answers)
        if (a.kind == "replica")
          id = a.label("replica");
      out.push_back(labelled("nbm_replica_info", "This replica's id (PostgreSQL replica liveness)",
                             MetricType::Gauge, {{{{"replica", id}}, 1.0}}));
      out.push_back(single("nbm_replica_lease_held",
                           "1 while this replica's last heartbeat is within the lease",
                           MetricType::Gauge, gauge("replica", "lease_held")));
      out.push_back(single("nbm_replica_lease_seconds", "The lease a silent replica is given",
                           MetricType::Gauge, gauge("replica", "lease_ms") / 1000.0));
      out.push_back(single("nbm_replica_heartbeat_age_seconds",
                           "Time since this replica's last heartbeat landed", MetricType::Gauge,
                           gauge("replica", "heartbeat_age_ms") / 1000.0));
      out.push_back(single("nbm_replica_peers_held",
                           "Sessions the store records as this replica's and still shows",
                           MetricType::Gauge, gauge("replica", "peers_held")));
      out.push_back(single("nbm_replicas_alive", "Replicas heartbeating within the lease",
                           MetricType::Gauge, gauge("replica", "replicas_alive")));
      out.push_back(single("nbm_replicas_declared_dead_total",
                           "Replicas this one declared dead (and ended the sessions of)",
                           MetricType::Counter, count("replica", "replicas_declared_dead")));
      out.push_back(single("nbm_replica_sessions_ended_total",
                           "Sessions of dead replicas this one ended with fenced disconnects",
                           MetricType::Counter, count("replica", "sessions_ended")));
      out.push_back(single("nbm_replica_lease_lost_total",
                           "Times this replica found itself declared dead and closed its streams",
                           MetricType::Counter, count("replica", "lease_lost")));
    }
  }

  caf::actor_system& sys_;
  sources src_;
};

} // namespace

std::string endpoint_of(const std::string& path) {
  std::vector<std::string> segs;
  std::size_t i = 1;
  if (path.empty() || path[0] != '/')
    return {};
  while (i <= path.size()) {
    auto j = path.find('/', i);
    if (j == std::string::npos)
      j = path.size();
    segs.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  if (segs.size() > 1 && segs.back().empty())
    segs.pop_back(); // "/api/peers/" is "/api/peers"
  const std::vector<std::string>* best = nullptr;
  int best_literals = -1;
  for (const auto& t : route_table()) {
    if (t.size() != segs.size())
      continue;
    int literals = 0;
    bool match = true;
    for (std::size_t k = 0; k < t.size() && match; ++k) {
      if (!t[k].empty() && t[k].front() == '{')
        match = !segs[k].empty();
      else if (t[k] == segs[k])
        ++literals;
      else
        match = false;
    }
    if (match && literals > best_literals) {
      best = &t;
      best_literals = literals;
    }
  }
  if (!best)
    return {};
  std::string out;
  for (const auto& s : *best) {
    out += '/';
    for (char c : s)
      if (c != '{' && c != '}')
        out += c;
  }
  return out;
}

void rest_request(const std::string& method, const std::string& path, int status, double seconds) {
  auto& c = the_counters();
  const auto endpoint = endpoint_of(path);
  const auto code = std::to_string(status);
  const double ms = static_cast<double>(static_cast<std::int64_t>(seconds * 1000));
  c.http_requests.Add({{"endpoint", endpoint}, {"method", method}}).Increment();
  c.http_responses.Add({{"endpoint", endpoint}, {"method", method}, {"code", code}}).Increment();
  c.http_codes.Add({{"code", code}}).Increment();
  c.http_ms.Add({{"endpoint", endpoint}, {"method", method}}, ms_buckets()).Observe(ms);
  const bool write = status == 200 && (method == "PUT" || method == "POST" || method == "DELETE");
  (write ? c.write_ms : c.read_ms).Observe(ms);
}

void grpc_started(const std::string& method) {
  auto& c = the_counters();
  if (method == "Sync")
    c.sync_started.Increment();
  else if (method == "Login")
    c.login_started.Increment();
  else if (method == "GetServerKey")
    c.key_started.Increment();
}

void grpc_request(const std::string& method, int code) {
  the_counters().grpc_calls.Add({{"method", method}, {"code", std::to_string(code)}}).Increment();
}

void grpc_duration(const std::string& method, double seconds) {
  auto& c = the_counters();
  const double ms = static_cast<double>(static_cast<std::int64_t>(seconds * 1000));
  if (method == "Sync")
    c.sync_ms.Observe(ms);
  else if (method == "Login")
    c.login_ms.Observe(ms);
}

struct exporter::impl {
  std::shared_ptr<actor_state> actors;
};

exporter::exporter(caf::actor_system& sys, sources src) : p_(std::make_unique<impl>()) {
  p_->actors = std::make_shared<actor_state>(sys, std::move(src));
}

exporter::~exporter() = default;

std::string exporter::render() const {
  auto families = the_counters().registry->Collect();
  auto more = p_->actors->Collect();
  families.insert(families.end(), std::make_move_iterator(more.begin()),
                  std::make_move_iterator(more.end()));
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

} // namespace nbm::api::metrics
