// Three replicas of the real binary on one PostgreSQL, told of each other's writes by the cluster
// channel (LISTEN/NOTIFY) alone: the serial poll is set to 60 s here, so anything that arrives
// within a second arrived by notification. Needs PostgreSQL (NBM_TEST_PG_DSN); with
// NBM_REQUIRE_PG=1 its absence is a failure.
#include "tests/e2e/harness.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>

using namespace nbm;
using namespace nbm::e2e;
using json = nlohmann::json;

namespace {

bool have_pg() {
  if (test::postgres_available())
    return true;
  const char* req = std::getenv("NBM_REQUIRE_PG");
  REQUIRE_MESSAGE(!(req && std::string(req) == "1"),
                  "NBM_REQUIRE_PG=1 but NBM_TEST_PG_DSN is not set: no PostgreSQL for the cluster");
  MESSAGE("skipped: no PostgreSQL (NBM_TEST_PG_DSN)");
  return false;
}

// Replicas learn of each other by notification only (the poll is a minute away).
struct slow_poll {
  slow_poll() { ::setenv("NBM_ACCOUNT_POLL_INTERVAL_MS", "60000", 1); }
  ~slow_poll() { ::setenv("NBM_ACCOUNT_POLL_INTERVAL_MS", "200", 1); }
};

int rest(int port, const std::string& pat, const std::string& method, const std::string& path,
         const json& body = nullptr, json* out = nullptr) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(5);
  cli.set_read_timeout(10);
  httplib::Headers h{{"Authorization", "Token " + pat}};
  httplib::Result r = method == "GET"    ? cli.Get(path, h)
                      : method == "POST" ? cli.Post(path, h, body.dump(), "application/json")
                                         : cli.Delete(path, h);
  REQUIRE_MESSAGE(r, method << " " << path << ": no answer");
  if (out)
    *out = json::parse(r->body, nullptr, false);
  return r->status;
}

// One sample of a metric from a /metrics page ("name" or "name{labels}"); -1 when absent.
double metric(int port, const std::string& series) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(10);
  auto r = cli.Get("/metrics");
  REQUIRE_MESSAGE(r, "no answer on the metrics port " << port);
  std::istringstream in(r->body);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(series + " ", 0) == 0)
      return std::stod(line.substr(series.size() + 1));
  return -1;
}

std::string default_policy(int port, const std::string& pat) {
  json policies;
  REQUIRE(rest(port, pat, "GET", "/api/policies", nullptr, &policies) == 200);
  for (const auto& p : policies)
    if (p["name"] == "Default")
      return p["id"];
  return "";
}

long long ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t)
      .count();
}

} // namespace

TEST_CASE("cluster: a registration on replica 2 and a REST change on replica 3 reach the peers "
          "of replicas 1 and 2 at once") {
  if (!have_pg())
    return;
  slow_poll poll;
  server r1(storage::engine::postgres);
  replica r2(r1, "r2"), r3(r1, "r3");
  const auto key = r1.setup_key("--name k --reusable --auto-groups " + r1.all_group);

  tools::peer_client a(r1.target());
  REQUIRE(a.login(key, "alpha").ok());
  stream sa(a, "alpha");
  REQUIRE(sa.wait_maps(1, 5000ms));
  CHECK(sa.last().empty());

  // beta registers on replica 2: alpha, on replica 1, sees it without any poll.
  tools::peer_client b(r2.target());
  const auto registered = std::chrono::steady_clock::now();
  REQUIRE(b.login(key, "beta").ok());
  REQUIRE(eventually([&] { return sa.last().size() == 1; }, 2000ms));
  const auto reg_ms = ms_since(registered);
  MESSAGE("registration on replica 2 -> map on replica 1: " << reg_ms << " ms");
  CHECK(reg_ms < 1000);
  stream sb(b, "beta");
  REQUIRE(eventually([&] { return sb.last().size() == 1; }, 5000ms));

  // The default policy deleted through replica 3's REST API: both lose each other at once.
  const auto def = default_policy(r3.api_port, r1.pat);
  REQUIRE(def.size() == 20);
  auto t = std::chrono::steady_clock::now();
  REQUIRE(rest(r3.api_port, r1.pat, "DELETE", "/api/policies/" + def) == 200);
  REQUIRE(eventually([&] { return sa.last().empty() && sb.last().empty(); }, 2000ms));
  const auto del_ms = ms_since(t);
  MESSAGE("REST change on replica 3 -> maps on replicas 1 and 2: " << del_ms << " ms");
  CHECK(del_ms < 1000);

  // A new policy through replica 3 brings them back, on both.
  const json rule = {{"name", "all"},
                     {"enabled", true},
                     {"action", "accept"},
                     {"bidirectional", true},
                     {"protocol", "all"},
                     {"sources", {r1.all_group}},
                     {"destinations", {r1.all_group}}};
  t = std::chrono::steady_clock::now();
  REQUIRE(rest(r3.api_port, r1.pat, "POST", "/api/policies",
               {{"name", "all"}, {"enabled", true}, {"rules", {rule}}}) == 200);
  REQUIRE(eventually([&] { return sa.last().size() == 1 && sb.last().size() == 1; }, 2000ms));
  CHECK(ms_since(t) < 1000);

  // The admin CLI (another process, on the store) tells the replicas too.
  t = std::chrono::steady_clock::now();
  const auto out = r1.admin("policy delete --account " + r1.account + " --policy-id all");
  REQUIRE_MESSAGE(out.find("Error") == std::string::npos, out);
  REQUIRE(eventually([&] { return sa.last().empty() && sb.last().empty(); }, 2000ms));
  MESSAGE("admin CLI change -> maps on replicas 1 and 2: " << ms_since(t) << " ms");
  CHECK(ms_since(t) < 1500);

  // What the replicas say about it: notifications received, their lag, the replica's id.
  CHECK(metric(r1.metrics_port, "nbm_cluster_notifications_received_total") >= 2);
  CHECK(metric(r2.metrics_port, "nbm_cluster_notifications_received_total") >= 2);
  CHECK(metric(r3.metrics_port, "nbm_cluster_notifications_sent_total") >= 2);
  CHECK(metric(r1.metrics_port, "nbm_cluster_listening") == 1);
  CHECK(metric(r1.metrics_port, "nbm_cluster_notification_lag_ms_count") >= 2);
  const auto log1 = read_file(r1.dir + "/server.log");
  CHECK(log1.find("cluster: replica ") != std::string::npos);
  CHECK(log1.find(" listening on channel nbm_cluster_") != std::string::npos);
  CHECK(log1.find("from replica ") != std::string::npos); // the debug line per notification
  // Nothing secret on the channel or in its lines: the setup key and the PAT never appear.
  CHECK(log1.find(key) == std::string::npos);
  CHECK(log1.find(r1.pat) == std::string::npos);
  r3.stop();
  r2.stop();
}

TEST_CASE("cluster: a peer hopping replicas 1 -> 2 -> 3 -> 1; each older stream is closed at once "
          "and its disconnect never marks the peer disconnected") {
  if (!have_pg())
    return;
  slow_poll poll;
  server r1(storage::engine::postgres);
  replica r2(r1, "r2"), r3(r1, "r3");
  const auto key = r1.setup_key("--name k --reusable --auto-groups " + r1.all_group);
  const std::string key_file = r1.dir + "/hopper.key";
  tools::peer_client first(r1.target(), key_file);
  REQUIRE(first.login(key, "hopper").ok());
  const auto pub = first.public_key_b64();
  const auto connected = [&] {
    auto p = r1.peer_by_key(pub);
    return p && p->status.connected;
  };

  struct hop {
    std::string target;
    int metrics_port;
    std::string log;
  };
  const std::vector<hop> hops = {{r1.target(), r1.metrics_port, r1.dir + "/server.log"},
                                 {r2.target(), r2.metrics_port, r2.log},
                                 {r3.target(), r3.metrics_port, r3.log},
                                 {r1.target(), r1.metrics_port, r1.dir + "/server.log"}};
  std::vector<std::unique_ptr<tools::peer_client>> clients;
  std::vector<std::unique_ptr<stream>> streams;
  for (std::size_t i = 0; i < hops.size(); ++i) {
    CAPTURE(i);
    clients.push_back(std::make_unique<tools::peer_client>(hops[i].target, key_file));
    REQUIRE(clients.back()->public_key_b64() == pub);
    // The last stream ends by itself after a while, the others are ended by the server.
    streams.push_back(
        std::make_unique<stream>(*clients.back(), "hopper", i + 1 == hops.size() ? 4000 : 20000));
    REQUIRE(streams.back()->wait_maps(1, 5000ms));
    REQUIRE(eventually(connected, 2000ms));
    if (i == 0)
      continue;
    // The older stream, on another replica, is closed by its server at once.
    auto& older = *streams[i - 1];
    const auto t = std::chrono::steady_clock::now();
    REQUIRE(older.wait_end(2000ms));
    MESSAGE("hop " << i << ": the older stream ended " << ms_since(t)
                   << " ms after the newer one's first map");
    // Ended by its server because of the newer session elsewhere (NetBird ends a replaced stream
    // with OK; the client reconnects).
    CHECK(read_file(hops[i - 1].log).find("landed on another replica") != std::string::npos);
    // Its disconnect came and was dropped in memory (the old replica knows the newer session);
    // the store still shows the peer connected, and the newest stream still gets maps.
    const int old_port = hops[i - 1].metrics_port;
    CHECK(eventually(
        [&] { return metric(old_port, "nbm_peer_session_writes_total{outcome=\"dropped\"}") >= 1; },
        2000ms));
    CHECK(connected());
    CHECK_FALSE(streams.back()->finished);
  }
  // No disconnect of an older session reached the store.
  for (const auto& h : hops)
    CHECK(metric(h.metrics_port, "nbm_peer_session_writes_total{outcome=\"refused\"}") <= 0);
  // The newest stream ends: now the peer is disconnected.
  REQUIRE(streams.back()->wait_end(8000ms));
  CHECK(eventually([&] { return !connected(); }, 3000ms));
  r3.stop();
  r2.stop();
}
