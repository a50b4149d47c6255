// /metrics end to end: the real binary scraped over 127.0.0.1 after real Logins, Syncs and REST
// requests. The series NetBird's dashboards query carry NetBird's names (management_grpc_*,
// management_http_* with the route template as endpoint, histograms in milliseconds), process
// metrics are there, and every long-lived actor answered the scrape's status request.
#include "tests/e2e/harness.hpp"

#include <arpa/inet.h>
#include <httplib.h>
#include <poll.h>

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

// A series that is not there yet counts 0 (NetBird's exporter shows a labelled series once it was
// counted).
double count_of(const std::map<std::string, double>& m, const std::string& name) {
  auto it = m.find(name);
  return it == m.end() ? 0 : it->second;
}

// A TCP connection to 127.0.0.1:port, or -1.
int dial(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Whether the server closed `fd` within `limit` (what it sent before is read and dropped).
bool closed_by_server(int fd, std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  char b[4096];
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) > 0) {
      const auto n = ::recv(fd, b, sizeof b, 0);
      if (n <= 0)
        return true;
    }
  }
  return false;
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

TEST_CASE(
    "metrics: NetBird's account manager, update channel and store series move with the work") {
  server s(storage::engine::sqlite);
  const auto key = s.setup_key("--name k --reusable --auto-groups " + s.all_group);
  const std::string connect_applied = "management_account_peer_status_update_counter_total{"
                                      "operation=\"connect\",outcome=\"applied\"}";
  const auto connected = [&](double n) {
    return eventually(
        [&] {
          const auto m = scrape(s);
          return value(m, "management_grpc_connected_streams_ratio") == n &&
                 count_of(m, connect_applied) == n;
        },
        10000ms);
  };
  // A registration and its Sync, then a second one while the first peer is connected.
  tools::peer_client a(s.target()), b(s.target());
  REQUIRE(a.login(key, "alpha").ok());
  stream sa(a, "alpha");
  REQUIRE(sa.wait_maps(1, 10000ms));
  REQUIRE(connected(1));
  REQUIRE(b.login(key, "beta").ok());
  stream sb(b, "beta");
  REQUIRE(sb.wait_maps(1, 10000ms));
  REQUIRE(sa.wait_maps(2, 10000ms)); // beta joined alpha's map
  REQUIRE(connected(2));
  const auto pa = s.peer_by_key(a.public_key_b64());
  const auto pb = s.peer_by_key(b.public_key_b64());
  REQUIRE(pa);
  REQUIRE(pb);
  const auto m1 = scrape(s);
  { // registrations, fenced connects, channels, maps
    CHECK(count_of(m1, "management_account_update_account_peers_counter_total{operation=\"create\","
                       "resource=\"peer\"}") == 2);
    // beta's registration computed alpha's map (the one connected peer then)
    CHECK(count_of(m1, "management_network_map_counter_total{operation=\"create\","
                       "resource=\"peer\"}") >= 1);
    CHECK(count_of(m1, connect_applied) == 2);
    CHECK(count_of(m1, "management_account_peer_status_update_duration_ms_milliseconds_count{"
                       "operation=\"connect\"}") == 2);
    CHECK(count_of(m1, "management_updatechannel_create_duration_micro_microseconds_count{"
                       "closed=\"false\"}") == 2);
    const double maps = count_of(m1, "management_account_get_peer_network_map_duration_ms_"
                                     "milliseconds_count");
    CHECK(maps >= 3); // two first maps, alpha's after beta joined
    CHECK(count_of(m1, "management_account_network_map_object_count_objects_count") == maps);
    CHECK(count_of(m1, "management_account_network_map_object_count_objects_bucket{le=\"50\"}") ==
          maps);
    CHECK(count_of(m1, "management_updatechannel_calc_networkmap_duration_ms_milliseconds_count") ==
          maps);
    CHECK(count_of(m1, "management_account_update_account_peers_duration_ms_milliseconds_count") >=
          1);
    const double received = static_cast<double>(sa.count() + sb.count());
    CHECK(count_of(m1, "management_updatechannel_tosyncresponse_duration_micro_microseconds_"
                       "count") >= received);
    CHECK(count_of(m1, "management_updatechannel_send_duration_micro_microseconds_count{"
                       "dropped=\"false\",found=\"true\"}") +
              count_of(m1, "management_updatechannel_send_duration_micro_microseconds_count{"
                           "dropped=\"true\",found=\"true\"}") >=
          received);
    // two registrations and two fenced connects at least
    CHECK(count_of(m1, "management_store_transaction_duration_ms_milliseconds_count") >= 4);
  }

  // A REST change: beta renamed, alpha's map changes.
  const auto before_rename = sa.count();
  {
    httplib::Client cli("127.0.0.1", s.api_port);
    cli.set_connection_timeout(5);
    cli.set_read_timeout(10);
    auto r = cli.Put("/api/peers/" + pb->id, {{"Authorization", "Token " + s.pat}},
                     R"({"name":"Beta Two"})", "application/json");
    REQUIRE(r);
    REQUIRE(r->status == 200);
  }
  REQUIRE(sa.wait_maps(before_rename + 1, 10000ms));
  // Alpha syncs again with another hostname: its older stream is closed, its meta changes.
  stream sa2(a, "alpha-renamed");
  REQUIRE(sa2.wait_maps(1, 10000ms));
  REQUIRE(sa.wait_end(10000ms));
  std::map<std::string, double> m2;
  const std::string disconnect_stale = "management_account_peer_status_update_counter_total{"
                                       "operation=\"disconnect\",outcome=\"stale\"}";
  REQUIRE(eventually(
      [&] {
        m2 = scrape(s);
        return count_of(m2, connect_applied) == 3 && count_of(m2, disconnect_stale) >= 1 &&
               count_of(m2, "management_account_peer_meta_update_counter_total") >
                   count_of(m1, "management_account_peer_meta_update_counter_total");
      },
      10000ms));
  {
    const std::string peer_update = "{operation=\"update\",resource=\"peer\"}";
    // the rename and the meta change
    CHECK(count_of(m2, "management_account_update_account_peers_counter_total" + peer_update) -
              count_of(m1, "management_account_update_account_peers_counter_total" + peer_update) >=
          2);
    // the rename computed the maps of both connected peers
    CHECK(count_of(m2, "management_network_map_counter_total" + peer_update) -
              count_of(m1, "management_network_map_counter_total" + peer_update) >=
          2);
    CHECK(count_of(m2, "management_updatechannel_create_duration_micro_microseconds_count{"
                       "closed=\"true\"}") == 1);
    CHECK(count_of(m2, "management_store_transaction_duration_ms_milliseconds_count") >
          count_of(m1, "management_store_transaction_duration_ms_milliseconds_count"));
    CHECK(count_of(m2, "management_account_update_account_peers_duration_ms_milliseconds_count") >
          count_of(m1, "management_account_update_account_peers_duration_ms_milliseconds_count"));
  }

  // Beta quits: its disconnect lands, its channel is closed.
  sb.cancel();
  std::map<std::string, double> m3;
  REQUIRE(eventually(
      [&] {
        m3 = scrape(s);
        return count_of(m3, "management_account_peer_status_update_counter_total{"
                            "operation=\"disconnect\",outcome=\"applied\"}") == 1;
      },
      10000ms));
  CHECK(count_of(m3, "management_updatechannel_close_one_duration_micro_microseconds_count") == 1);
  CHECK(count_of(m3, "management_account_peer_status_update_duration_ms_milliseconds_count{"
                     "operation=\"disconnect\"}") >= 2);
  // Bounded labels: no peer or account id in any series.
  for (const auto& [name, v] : m3) {
    CHECK_MESSAGE(name.find(pa->id) == std::string::npos, name);
    CHECK_MESSAGE(name.find(pb->id) == std::string::npos, name);
    CHECK_MESSAGE(name.find(s.account) == std::string::npos, name);
  }
}

TEST_CASE("metrics port: one page, and slow or hostile clients are bounded as on the REST port") {
  // Short deadlines for this server only (the variables are read at its start).
  ::setenv("NBM_HTTP_HEADER_TIMEOUT_MS", "300", 1);
  server s(storage::engine::sqlite);
  ::unsetenv("NBM_HTTP_HEADER_TIMEOUT_MS");
  httplib::Client cli("127.0.0.1", s.metrics_port);
  cli.set_connection_timeout(5);
  cli.set_read_timeout(10);
  {
    auto r = cli.Get("/metrics");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->get_header_value("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
    auto h = cli.Head("/metrics");
    REQUIRE(h);
    CHECK(h->status == 200);
    CHECK(h->body.empty());
  }
  {
    auto r = cli.Get("/api/peers");
    REQUIRE(r);
    CHECK(r->status == 404); // the REST API is not served here
    auto p = cli.Post("/metrics", "x", "text/plain");
    REQUIRE(p);
    CHECK(p->status == 405);
    CHECK(p->get_header_value("Allow") == "GET, HEAD");
  }
  { // a client that connects and sends nothing is closed after the header deadline
    const int idle = dial(s.metrics_port);
    REQUIRE(idle >= 0);
    auto r = cli.Get("/metrics"); // served meanwhile
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(closed_by_server(idle, 5000ms));
    ::close(idle);
  }
  { // a header that never ends is refused (431), not buffered
    const int fd = dial(s.metrics_port);
    REQUIRE(fd >= 0);
    std::string req = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a');
    CHECK(::send(fd, req.data(), req.size(), MSG_NOSIGNAL) > 0);
    std::string answer;
    char b[512];
    for (ssize_t n; (n = ::recv(fd, b, sizeof b, 0)) > 0;)
      answer.append(b, static_cast<std::size_t>(n));
    CHECK(answer.rfind("HTTP/1.1 431", 0) == 0);
    ::close(fd);
  }
  { // HTTP/2 (gRPC) is not served on the metrics port: closed
    const int fd = dial(s.metrics_port);
    REQUIRE(fd >= 0);
    const std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    CHECK(::send(fd, preface.data(), preface.size(), MSG_NOSIGNAL) > 0);
    CHECK(closed_by_server(fd, 5000ms));
    ::close(fd);
  }
  // The server is still up and serving.
  auto r = cli.Get("/metrics");
  REQUIRE(r);
  CHECK(r->status == 200);
}
