#include "api/metrics/metrics.hpp"

#include <caf/all.hpp>
#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include <chrono>

namespace nbm::api::metrics {

namespace {

// The request counters, one registry for the process (the transport layers count before and
// whether or not an exporter serves them).
struct counters {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Counter>& rest =
      prometheus::BuildCounter()
          .Name("nbm_rest_requests_total")
          .Help("REST API requests answered, by method and HTTP status")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& rest_seconds =
      prometheus::BuildHistogram()
          .Name("nbm_rest_request_duration_seconds")
          .Help("REST API request durations, by method")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& grpc =
      prometheus::BuildCounter()
          .Name("nbm_grpc_requests_total")
          .Help("gRPC calls ended, by method and gRPC status code")
          .Register(*registry);
};

counters& the_counters() {
  static counters c;
  return c;
}

const prometheus::Histogram::BucketBoundaries& duration_buckets() {
  static const prometheus::Histogram::BucketBoundaries b{0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                         0.25,  0.5,   1,    2.5,   5,    10};
  return b;
}

prometheus::MetricFamily family(const std::string& name, const std::string& help,
                                prometheus::MetricType type, double value) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  prometheus::ClientMetric m;
  if (type == prometheus::MetricType::Counter)
    m.counter.value = value;
  else
    m.gauge.value = value;
  f.metric.push_back(std::move(m));
  return f;
}

// The actors' state, asked of them at each scrape.
class actor_state : public prometheus::Collectable {
public:
  actor_state(caf::actor_system& sys, sources src) : sys_(sys), src_(std::move(src)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    using prometheus::MetricType;
    std::vector<prometheus::MetricFamily> out;
    caf::scoped_actor self{sys_};
    const auto limit = std::chrono::seconds(2);
    const auto gauge = [&](const char* name, const char* help, double v) {
      out.push_back(family(name, help, MetricType::Gauge, v));
    };
    const auto counter = [&](const char* name, const char* help, double v) {
      out.push_back(family(name, help, MetricType::Counter, v));
    };
    if (src_.directory) {
      std::vector<actors::account_actor> accounts;
      self->request(src_.directory, limit, actors::account_atom::value)
          .receive([&](std::vector<actors::account_actor>& v) { accounts = std::move(v); },
                   [](caf::error&) {});
      actors::account_state_record sum;
      std::uint64_t loaded = 0;
      // One scrape waits 2 s at most for all accounts together: an account actor busy with a
      // slow change (a database outage) is left out of this sample rather than stall it.
      const auto until = std::chrono::steady_clock::now() + limit;
      for (const auto& a : accounts) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        if (left.count() <= 0)
          break;
        self->request(a, left, actors::status_atom::value)
            .receive(
                [&](actors::account_state_record& r) {
                  loaded += r.loaded ? 1 : 0;
                  sum.peers += r.peers;
                  sum.connected += r.connected;
                  sum.changes += r.changes;
                  sum.maps_sent += r.maps_sent;
                  sum.maps_skipped += r.maps_skipped;
                  sum.reloads += r.reloads;
                },
                [](caf::error&) {});
      }
      gauge("nbm_accounts_loaded", "Accounts held in memory by their account actors",
            static_cast<double>(loaded));
      gauge("nbm_account_peers", "Peers of the accounts held in memory",
            static_cast<double>(sum.peers));
      gauge("nbm_sync_streams", "Sync streams attached to their account (connected peers)",
            static_cast<double>(sum.connected));
      counter("nbm_account_fanouts_total",
              "Fan-outs run by account actors (each after one or more changes)",
              static_cast<double>(sum.changes));
      counter("nbm_network_maps_sent_total", "Network maps handed to peers (initial ones included)",
              static_cast<double>(sum.maps_sent));
      counter("nbm_network_maps_unchanged_total",
              "Connected peers a change left unchanged (no map sent)",
              static_cast<double>(sum.maps_skipped));
      counter("nbm_account_reloads_total", "Full reads of an account from the store",
              static_cast<double>(sum.reloads));
      self->request(src_.directory, limit, actors::status_atom::value)
          .receive(
              [&](std::uint64_t n) {
                gauge("nbm_peer_actors", "Peer actors alive", static_cast<double>(n));
              },
              [](caf::error&) {});
    }
    if (src_.writer)
      self->request(src_.writer, limit, actors::status_atom::value)
          .receive(
              [&](actors::writer_state_record& r) {
                gauge("nbm_status_writes_pending", "Fenced status writes queued or in flight",
                      static_cast<double>(r.queued + r.in_flight));
                counter("nbm_status_writes_total", "Fenced status writes completed",
                        static_cast<double>(r.writes));
                counter("nbm_status_writes_landed_total",
                        "Fenced status writes that passed the fence",
                        static_cast<double>(r.landed));
                counter("nbm_status_write_errors_total", "Fenced status writes that failed",
                        static_cast<double>(r.errors));
                counter("nbm_status_write_batches_total",
                        "Statements or transactions issued for status writes",
                        static_cast<double>(r.batches));
              },
              [](caf::error&) {});
    if (src_.expiry)
      self->request(src_.expiry, limit, actors::status_atom::value)
          .receive(
              [&](actors::expiry_state_record& r) {
                gauge("nbm_expiry_deadlines", "Pending lifecycle deadlines",
                      static_cast<double>(r.scheduled));
                counter("nbm_expiry_login_expired_total",
                        "Peers marked login-expired (login or inactivity)",
                        static_cast<double>(r.expired));
                counter("nbm_expiry_ephemeral_deleted_total", "Ephemeral peers deleted",
                        static_cast<double>(r.deleted));
                counter("nbm_expiry_refused_total", "Lifecycle decisions the store's fence refused",
                        static_cast<double>(r.refused));
              },
              [](caf::error&) {});
    return out;
  }

private:
  caf::actor_system& sys_;
  sources src_;
};

} // namespace

void rest_request(const std::string& method, int status, double seconds) {
  auto& c = the_counters();
  c.rest.Add({{"method", method}, {"code", std::to_string(status)}}).Increment();
  c.rest_seconds.Add({{"method", method}}, duration_buckets()).Observe(seconds);
}

void grpc_request(const std::string& method, int code) {
  the_counters().grpc.Add({{"method", method}, {"code", std::to_string(code)}}).Increment();
}

struct exporter::impl {
  std::shared_ptr<actor_state> actors;
  std::unique_ptr<prometheus::Exposer> exposer;
};

exporter::exporter(caf::actor_system& sys, sources src) : p_(std::make_unique<impl>()) {
  p_->actors = std::make_shared<actor_state>(sys, std::move(src));
}

exporter::~exporter() = default;

bool exporter::start(const std::string& address, std::string& error) {
  try {
    p_->exposer = std::make_unique<prometheus::Exposer>(address, 2);
  } catch (const std::exception& e) {
    error = e.what();
    return false;
  }
  p_->exposer->RegisterCollectable(the_counters().registry);
  p_->exposer->RegisterCollectable(p_->actors);
  return true;
}

int exporter::port() const {
  if (!p_->exposer)
    return 0;
  const auto ports = p_->exposer->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

} // namespace nbm::api::metrics
