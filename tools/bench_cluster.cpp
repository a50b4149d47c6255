// Cross-replica fan-out with three real server processes on 127.0.0.1 and one PostgreSQL, told of
// each other's writes by the cluster channel (LISTEN/NOTIFY). The accounts' serial poll is set to
// a minute, so what arrives sooner arrived by notification (--poll-ms 1000 --no-notify shows the
// poll alone, as before the channel).
//
//   scripts/pg_throwaway.sh build/tools/bench_cluster [--watchers 5] [--changes 100]
//       [--registrations 100] [--server build/server/netbird-mgmt] [--config
//       deploy/management.json]
//       [--poll-ms 60000] [--no-notify]
//
// Needs NBM_TEST_PG_DSN (a libpq DSN; pg_throwaway.sh sets it); a fresh schema is made in it.
// `--watchers` peers hold Sync streams on replica 1 and as many on replica 2. Measured:
//   1. a REST change through replica 3 (a policy over All created, then deleted, in turns) until
//      each watcher's map shows it: every watcher's arrival is one sample;
//   2. a peer registering (Login with a setup key) on replica 2 until each watcher on replica 1
//      has it in its map: every watcher's arrival is one sample.
// Printed: p50, p99 and max of each, and each replica's notification counts and lag.
#include "tools/peer_sim/peer_client.hpp"
#include "tools/server_proc.hpp"

#include <httplib.h>
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace nbm;
using clk = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

[[noreturn]] void die(const std::string& m) {
  std::fprintf(stderr, "bench_cluster: %s\n", m.c_str());
  std::exit(1);
}

using tools::field;
using tools::free_port;

struct series {
  std::vector<double> ms;
  void add(double v) { ms.push_back(v); }
  void print(const char* name) {
    std::sort(ms.begin(), ms.end());
    const auto at = [&](double q) {
      if (ms.empty())
        return 0.0;
      auto i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(ms.size()))) - 1;
      return ms[std::min(i, ms.size() - 1)];
    };
    std::printf("  %-44s n=%5zu  p50 %7.1f  p99 %7.1f  max %7.1f ms\n", name, ms.size(), at(0.5),
                at(0.99), ms.empty() ? 0.0 : ms.back());
  }
};

// A peer's Sync stream on its own thread: every map's arrival time and remote-peer count.
struct watcher {
  std::unique_ptr<tools::peer_client> peer;
  std::mutex mu;
  std::vector<std::pair<clk::time_point, int>> maps;
  std::atomic<bool> stop{false};
  std::thread th;

  void start(const std::string& name) {
    th = std::thread([this, name] {
      peer->sync(
          name,
          [this](const management::SyncResponse& r) {
            std::lock_guard<std::mutex> lk(mu);
            maps.emplace_back(clk::now(), r.networkmap().remotepeers_size());
            return !stop.load();
          },
          3600 * 1000);
    });
  }
  // The arrival of the first map at or after `since` with `count` remote peers.
  std::optional<clk::time_point> arrival(clk::time_point since, int count) {
    std::lock_guard<std::mutex> lk(mu);
    for (const auto& [t, n] : maps)
      if (t >= since && n == count)
        return t;
    return std::nullopt;
  }
  int last() {
    std::lock_guard<std::mutex> lk(mu);
    return maps.empty() ? -1 : maps.back().second;
  }
};

struct proc {
  pid_t pid = -1;
  int port = 0, metrics_port = 0;
  std::string dir;
};

proc launch(const std::string& bin, const std::string& config, const std::string& dir) {
  proc p;
  p.dir = dir;
  p.port = free_port();
  p.metrics_port = free_port();
  std::filesystem::create_directories(dir);
  p.pid = tools::spawn_server(bin, config, dir, p.port, p.metrics_port);
  const auto until = clk::now() + 30s;
  while (clk::now() < until) {
    tools::peer_client probe("127.0.0.1:" + std::to_string(p.port));
    if (probe.fetch_server_key().ok())
      return p;
    std::this_thread::sleep_for(100ms);
  }
  die("a server did not come up; see " + dir + "/server.log");
}

double metric(int port, const std::string& series) {
  httplib::Client cli("127.0.0.1", port);
  auto r = cli.Get("/metrics");
  if (!r)
    return -1;
  std::istringstream in(r->body);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(series + " ", 0) == 0)
      return std::stod(line.substr(series.size() + 1));
  return -1;
}

int rest(int port, const std::string& pat, const std::string& method, const std::string& path,
         const std::string& body, std::string* out = nullptr) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(30);
  httplib::Headers h{{"Authorization", "Token " + pat}};
  auto r = method == "POST"  ? cli.Post(path, h, body, "application/json")
           : method == "GET" ? cli.Get(path, h)
                             : cli.Delete(path, h);
  if (!r)
    return 0;
  if (out)
    *out = r->body;
  return r->status;
}

// The value of "id" of a JSON object body (the bench needs nothing else from JSON).
std::string json_id(const std::string& body) {
  auto p = body.find("\"id\":\"");
  if (p == std::string::npos)
    return "";
  p += 6;
  return body.substr(p, body.find('"', p) - p);
}

} // namespace

int main(int argc, char** argv) {
  int watchers = 5, changes = 100, registrations = 100, poll_ms = 60000;
  bool notify = true;
  std::string bin = NBM_SERVER_BIN_DEFAULT, config = NBM_CONFIG_DEFAULT;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto next = [&]() -> std::string {
      if (i + 1 >= argc)
        die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--watchers")
      watchers = std::atoi(next().c_str());
    else if (a == "--changes")
      changes = std::atoi(next().c_str());
    else if (a == "--registrations")
      registrations = std::atoi(next().c_str());
    else if (a == "--poll-ms")
      poll_ms = std::atoi(next().c_str());
    else if (a == "--no-notify")
      notify = false;
    else if (a == "--server")
      bin = next();
    else if (a == "--config")
      config = next();
    else
      die("unknown argument " + a + " (see the file's header)");
  }
  const char* base = std::getenv("NBM_TEST_PG_DSN");
  if (!base || !*base)
    die("NBM_TEST_PG_DSN is not set (run it under scripts/pg_throwaway.sh)");
  // A fresh schema for this run.
  const std::string schema = "bench_cluster_" + std::to_string(::getpid());
  {
    PGconn* c = PQconnectdb(base);
    if (PQstatus(c) != CONNECTION_OK)
      die(std::string("cannot connect to PostgreSQL: ") + PQerrorMessage(c));
    PQclear(PQexec(c, ("CREATE SCHEMA " + schema).c_str()));
    PQfinish(c);
  }
  const std::string dsn = std::string(base) + " options='-c search_path=" + schema + "'";
  ::setenv("NETBIRD_STORE_ENGINE", "postgres", 1);
  ::setenv("NB_STORE_ENGINE_POSTGRES_DSN", dsn.c_str(), 1);
  ::setenv("NBM_ACCOUNT_POLL_INTERVAL_MS", std::to_string(poll_ms).c_str(), 1);
  if (!notify)
    ::setenv("NBM_CLUSTER_NOTIFY", "0", 1);
  const auto dir =
      std::filesystem::temp_directory_path() / ("nbm-bench-cluster-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string admin = bin + " admin --config " + config + " --datadir " + dir.string() + " ";
  const auto acc = tools::run_command(admin + "account create --domain bench.example 2>&1");
  const auto account = field(acc, "account_id"), all = field(acc, "all_group_id"),
             pat = field(acc, "personal_access_token");
  if (account.empty() || pat.empty())
    die("account create failed: " + acc);
  const auto key =
      field(tools::run_command(admin + "setup-key create --account " + account +
                               " --name bench --reusable --auto-groups " + all + " 2>&1"),
            "setup_key");
  if (key.empty())
    die("setup-key create failed");

  std::vector<proc> replicas;
  for (int i = 1; i <= 3; ++i)
    replicas.push_back(launch(bin, config, (dir / ("r" + std::to_string(i))).string()));
  std::printf("bench_cluster: 3 replicas on one PostgreSQL (schema %s), channel %s, serial poll "
              "every %d ms; %d watchers on replica 1 and %d on replica 2\n",
              schema.c_str(), notify ? "on" : "OFF", poll_ms, watchers, watchers);

  // The watchers: registered and streaming, each seeing every other.
  std::vector<std::unique_ptr<watcher>> ws;
  for (int r = 0; r < 2; ++r)
    for (int i = 0; i < watchers; ++i) {
      auto w = std::make_unique<watcher>();
      w->peer =
          std::make_unique<tools::peer_client>("127.0.0.1:" + std::to_string(replicas[r].port));
      const auto name = "w" + std::to_string(r + 1) + "-" + std::to_string(i);
      if (!w->peer->login(key, name).ok())
        die("a watcher's login failed");
      w->start(name);
      ws.push_back(std::move(w));
    }
  const int total = 2 * watchers;
  const auto wait_all = [&](int count, std::chrono::milliseconds limit) {
    const auto until = clk::now() + limit;
    while (clk::now() < until) {
      bool all_there = true;
      for (auto& w : ws)
        all_there = all_there && w->last() == count;
      if (all_there)
        return true;
      std::this_thread::sleep_for(1ms);
    }
    return false;
  };
  if (!wait_all(total - 1, 30s))
    die("the watchers never saw each other");
  const int r3 = replicas[2].port;

  // 1. REST changes through replica 3: the Default policy goes, then a policy over All comes
  // and goes in turns.
  std::string policies;
  rest(r3, pat, "GET", "/api/policies", "", &policies);
  const auto def = json_id(policies);
  if (def.empty() || rest(r3, pat, "DELETE", "/api/policies/" + def, "") != 200)
    die("cannot delete the Default policy");
  if (!wait_all(0, 30s))
    die("the Default policy's deletion never reached the watchers");
  const std::string body = std::string(R"({"name":"all","enabled":true,"rules":[{"name":"all",)") +
                           R"("enabled":true,"action":"accept","bidirectional":true,)" +
                           R"("protocol":"all","sources":[")" + all + R"("],"destinations":[")" +
                           all + R"("]}]})";
  series rest_change, rest_r1, rest_r2, rest_call;
  std::string policy;
  for (int i = 0; i < changes; ++i) {
    const bool add = policy.empty();
    const int expect = add ? total - 1 : 0;
    const auto t0 = clk::now();
    std::string out;
    const int code = add ? rest(r3, pat, "POST", "/api/policies", body, &out)
                         : rest(r3, pat, "DELETE", "/api/policies/" + policy, "");
    rest_call.add(std::chrono::duration<double, std::milli>(clk::now() - t0).count());
    if (code != 200)
      die("a REST change answered " + std::to_string(code));
    policy = add ? json_id(out) : "";
    if (!wait_all(expect, 30s))
      die("a REST change never reached every watcher");
    for (std::size_t k = 0; k < ws.size(); ++k) {
      const auto at = ws[k]->arrival(t0, expect);
      const double ms = std::chrono::duration<double, std::milli>(*at - t0).count();
      rest_change.add(ms);
      (k < static_cast<std::size_t>(watchers) ? rest_r1 : rest_r2).add(ms);
    }
  }
  if (policy.empty()) { // registrations are measured with every peer seeing every other
    if (rest(r3, pat, "POST", "/api/policies", body) != 200 || !wait_all(total - 1, 30s))
      die("cannot restore a policy over All");
  }

  // 2. Registrations on replica 2 until each watcher on replica 1 has the new peer.
  series reg, reg_call;
  const std::string r2 = "127.0.0.1:" + std::to_string(replicas[1].port);
  int peers = total;
  for (int i = 0; i < registrations; ++i) {
    tools::peer_client fresh(r2);
    const auto t0 = clk::now();
    if (!fresh.login(key, "new-" + std::to_string(i)).ok())
      die("a registration failed");
    reg_call.add(std::chrono::duration<double, std::milli>(clk::now() - t0).count());
    ++peers;
    const auto until = clk::now() + 30s;
    for (int k = 0; k < watchers; ++k) {
      std::optional<clk::time_point> at;
      while (!(at = ws[static_cast<std::size_t>(k)]->arrival(t0, peers - 1)) && clk::now() < until)
        std::this_thread::sleep_for(1ms);
      if (!at)
        die("a registration never reached a watcher on replica 1");
      reg.add(std::chrono::duration<double, std::milli>(*at - t0).count());
    }
  }

  std::printf("results (from the request's start to the map's arrival at the watcher):\n");
  rest_call.print("REST change on replica 3: its answer");
  rest_change.print("REST change on 3 -> maps on 1 and 2");
  rest_r1.print("  ... watchers on replica 1");
  rest_r2.print("  ... watchers on replica 2");
  reg_call.print("registration (Login) on replica 2: answer");
  reg.print("registration on 2 -> maps on replica 1");
  for (int r = 0; r < 3; ++r) {
    const int mp = replicas[static_cast<std::size_t>(r)].metrics_port;
    const double n = metric(mp, "nbm_cluster_notification_lag_ms_count");
    const double sum = metric(mp, "nbm_cluster_notification_lag_ms_sum");
    std::printf("  replica %d: notifications sent %.0f, received %.0f, mean lag %.1f ms, account "
                "reloads %.0f\n",
                r + 1, metric(mp, "nbm_cluster_notifications_sent_total"),
                metric(mp, "nbm_cluster_notifications_received_total"), n > 0 ? sum / n : 0.0,
                metric(mp, "nbm_account_reloads_total"));
  }

  for (auto& w : ws)
    w->stop = true;
  for (auto& r : replicas)
    ::kill(r.pid, SIGTERM);
  for (auto& r : replicas) {
    int st = 0;
    ::waitpid(r.pid, &st, 0);
  }
  // The watchers' streams end with their servers.
  for (auto& w : ws)
    if (w->th.joinable())
      w->th.join();
  {
    PGconn* c = PQconnectdb(base);
    PQsetNoticeProcessor(
        c, [](void*, const char*) {}, nullptr); // "drop cascades to ..."
    PQclear(PQexec(c, ("DROP SCHEMA " + schema + " CASCADE").c_str()));
    PQfinish(c);
  }
  std::filesystem::remove_all(dir);
  return 0;
}
