// /metrics end to end: the real binary scraped over 127.0.0.1 after real Logins, Syncs and REST
// requests. The series NetBird's dashboards query carry NetBird's names (management_grpc_*,
// management_http_* with the route template as endpoint, histograms in milliseconds), process
// metrics are there, and every long-lived actor answered the scrape's status request.
#include "tests/e2e/harness.hpp"

#include <httplib.h>

#include <map>
#include <sstream>

using namespace nbm;
using namespace nbm::e2e;

namespace {

// One scrape: every sample line "name{labels} value" -> value.
std::map<std::string, double> scrape(const server& s) {
  httplib::Client cli("127.0.0.1", s.metrics_port);
  cli.set_connection_timeout(5);
  cli.set_read_timeout(10);
  auto r = cli.Get("/metrics");
  REQUIRE_MESSAGE(r, "no answer on the metrics port");
  REQUIRE(r->status == 200);
  std::map<std::string, double> out;
  std::istringstream in(r->body);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#')
      continue;
    const auto sp = line.rfind(' ');
    REQUIRE_MESSAGE(sp != std::string::npos, line);
    out[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
  }
  return out;
}

double value(const std::map<std::string, double>& m, const std::string& name) {
  auto it = m.find(name);
  return it == m.end() ? -1 : it->second;
}

int rest(const server& s, const std::string& method, const std::string& path) {
  httplib::Client cli("127.0.0.1", s.api_port);
  cli.set_connection_timeout(5);
  httplib::Headers h{{"Authorization", "Token " + s.pat}};
  auto r = method == "GET" ? cli.Get(path, h) : cli.Delete(path, h);
  REQUIRE_MESSAGE(r, method << " " << path << ": no answer");
  return r->status;
}

} // namespace

TEST_CASE("metrics: NetBird's series, process metrics and every actor's status in one scrape") {
  server s(storage::engine::sqlite);
  const auto key = s.setup_key("--name k --reusable --auto-groups " + s.all_group);
  tools::peer_client a(s.target()), b(s.target());
  REQUIRE(a.login(key, "alpha").ok());
  REQUIRE(b.login(key, "beta").ok());
  stream sa(a, "alpha"), sb(b, "beta");
  REQUIRE(sa.wait_maps(1, 10000ms));
  REQUIRE(sb.wait_maps(1, 10000ms));
  const auto pa = s.peer_by_key(a.public_key_b64());
  REQUIRE(pa);

  REQUIRE(rest(s, "GET", "/api/peers") == 200);
  REQUIRE(rest(s, "GET", "/api/peers/" + pa->id) == 200);
  REQUIRE(rest(s, "GET", "/api/peers/no-such-peer") == 404);
  REQUIRE(rest(s, "GET", "/api/no/such/route") == 404);

  // The gauges follow the actors: both streams attached (the account actor attaches a session
  // after its fenced write landed, which may be a moment after the first map).
  std::map<std::string, double> m;
  REQUIRE(eventually([&] {
    m = scrape(s);
    return value(m, "management_grpc_connected_streams_ratio") == 2;
  }));

  { // gRPC: NetBird's counters and millisecond histograms
    CHECK(value(m, "management_grpc_login_request_counter_total") == 2);
    CHECK(value(m, "management_grpc_sync_request_counter_total") == 2);
    CHECK(value(m, "management_grpc_key_request_counter_total") >= 1); // the harness's probe
    CHECK(value(m, "management_grpc_login_request_duration_ms_milliseconds_count") == 2);
    CHECK(value(m, "management_grpc_login_request_duration_ms_milliseconds_bucket{le=\"+Inf\"}") ==
          2);
    CHECK(value(m, "management_grpc_login_request_duration_ms_milliseconds_bucket{le=\"10000\"}") ==
          2);
    CHECK(value(m, "management_grpc_sync_request_duration_ms_milliseconds_count") == 2);
    CHECK(value(m, "nbm_grpc_requests_total{code=\"0\",method=\"Login\"}") == 2);
  }
  { // REST: labelled by NetBird's route template
    CHECK(
        value(m, "management_http_request_counter_total{endpoint=\"/api/peers\",method=\"GET\"}") ==
        1);
    CHECK(value(m, "management_http_request_counter_total{endpoint=\"/api/peers/peerId\","
                   "method=\"GET\"}") == 2);
    CHECK(value(m, "management_http_response_counter_total{code=\"200\",endpoint=\"/api/peers/"
                   "peerId\",method=\"GET\"}") == 1);
    CHECK(value(m, "management_http_response_counter_total{code=\"404\",endpoint=\"/api/peers/"
                   "peerId\",method=\"GET\"}") == 1);
    CHECK(value(m, "management_http_response_counter_total{code=\"404\",endpoint=\"\","
                   "method=\"GET\"}") == 1);
    CHECK(value(m, "management_http_response_counter_code_total{code=\"200\"}") == 2);
    CHECK(value(m, "management_http_request_duration_ms_milliseconds_count{endpoint=\"/api/"
                   "peers/peerId\",method=\"GET\"}") == 2);
    CHECK(value(m, "management_http_request_duration_ms_total_milliseconds_count{type=\"read\"}") ==
          4);
    // No raw id ever becomes a label value (unbounded series).
    for (const auto& [name, v] : m)
      CHECK_MESSAGE(name.find(pa->id) == std::string::npos, name);
  }
  { // process metrics
    CHECK(value(m, "process_resident_memory_bytes") > 1e6);
    CHECK(value(m, "process_virtual_memory_bytes") >= value(m, "process_resident_memory_bytes"));
    CHECK(value(m, "process_cpu_seconds_total") > 0);
    CHECK(value(m, "process_open_fds") > 3);
    CHECK(value(m, "process_max_fds") >= value(m, "process_open_fds"));
    CHECK(value(m, "process_start_time_seconds") > 1.6e9);
  }
  { // every long-lived actor answered the status request
    CHECK(value(m, "nbm_actors{kind=\"peer\"}") == 2);
    CHECK(value(m, "nbm_actors{kind=\"account\"}") == 1);
    for (const char* kind :
         {"directory", "status_writer", "expiry", "login_service", "account_loader"})
      CHECK_MESSAGE(value(m, std::string("nbm_actors{kind=\"") + kind + "\"}") == 1,
                    std::string(kind));
    for (const auto& [name, v] : m)
      if (name.rfind("nbm_actor_status_missing", 0) == 0)
        CHECK_MESSAGE(v == 0, name);
    CHECK(value(m, "nbm_sync_streams") == 2);
    CHECK(value(m, "nbm_account_peers") == 2);
    CHECK(value(m, "nbm_peer_actors") == 2);
    CHECK(value(m, "nbm_network_maps_sent_total") == 2); // both registered before their Syncs
    CHECK(value(m, "nbm_peer_session_writes_total{outcome=\"landed\"}") == 2);
    CHECK(value(m, "nbm_status_writes_landed_total") == 2);
    CHECK(value(m, "nbm_actor_events_total{kind=\"login_service\",name=\"logins\"}") == 2);
  }
}
