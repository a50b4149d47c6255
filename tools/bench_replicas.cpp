// bench_replicas: three real netbird-mgmt processes on one PostgreSQL (run it under
// scripts/pg_throwaway.sh, which sets NBM_TEST_PG_DSN), driven over gRPC from this process.
//
//   bench_replicas history [--ops N] [--peers P] [--seed S]
//     A seeded, randomized history of N connects and disconnects (default 10,000) of P peers
//     (default 40) over the three replicas, with injected delays: a peer's ops run in order, the
//     peers run at once; a disconnect ends the peer's newest stream or, as a delayed disconnect,
//     one of its older streams (after a newer session landed elsewhere). At the end the model is
//     highest-token-wins: a peer is connected iff its newest stream is still open. Printed: the
//     store's disagreements (SQL), each replica's REST /api/peers disagreements, each replica's
//     memory (its nbm_sync_streams against the newest streams it serves) and the older streams
//     still served (a newer session exists elsewhere; closing them is the LISTEN/NOTIFY half).
//   bench_replicas kill [--peers P] [--stay-away F]
//     P peers (default 2,000) open Sync at once, spread over the three replicas; during the storm
//     replica 3 is killed with -9. Its peers reconnect to replicas 1 and 2, except a fraction F
//     (default 0.25) that stays away (agents that went offline): their sessions must be ended by
//     a survivor. Printed: peers registered before and after, time until every returning peer holds
//     a map again, time until the store shows none of the dead replica's sessions, and the time
//     the restarted replica takes to rejoin.
// Common: [--lease-ms L] (NBM_REPLICA_LEASE_MS of the replicas; default 30000 for kill, 5000 for
// history). Output lines "<what>: key=value ...".
#include "storage/database.hpp"
#include "tools/peer_sim/peer_client.hpp"
#include "tools/server_proc.hpp"

#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <netinet/in.h>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

double ms_since(clk::time_point t) {
  return std::chrono::duration<double, std::milli>(clk::now() - t).count();
}

using nbm::tools::field;
using nbm::tools::free_port;
const auto run = nbm::tools::run_command;

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "bench_replicas: %s\n", why.c_str());
  std::exit(1);
}

// The cluster: one PostgreSQL schema, an account, three server processes.
struct cluster {
  std::string dsn, dir, config = NBM_CONFIG, account, pat, setup_key;
  nbm::storage::db_options db;
  struct proc {
    pid_t pid = -1;
    int port = 0, metrics = 0;
    std::string dir;
  };
  std::vector<proc> procs;
  long lease_ms;

  explicit cluster(long lease) : lease_ms(lease) {
    const char* base = std::getenv("NBM_TEST_PG_DSN");
    if (!base || !*base)
      die("NBM_TEST_PG_DSN is not set (run under scripts/pg_throwaway.sh)");
    const std::string schema = "bench_replicas_" + std::to_string(::getpid());
    {
      soci::session sql;
      nbm::storage::open_session(sql, {nbm::storage::engine::postgres, base, 1});
      sql << "CREATE SCHEMA " + schema;
    }
    dsn = std::string(base) + " options='-c search_path=" + schema + "'";
    db = {nbm::storage::engine::postgres, dsn, 1};
    dir = (std::filesystem::temp_directory_path() / schema).string();
    std::filesystem::create_directories(dir);
    ::setenv("NETBIRD_STORE_ENGINE", "postgres", 1);
    ::setenv("NB_STORE_ENGINE_POSTGRES_DSN", dsn.c_str(), 1);
    ::setenv("NB_DISABLE_GEOLOCATION", "true", 1);
    ::setenv("NBM_REPLICA_LEASE_MS", std::to_string(lease).c_str(), 1);
    const auto out = admin(dir, "account create --domain example.com");
    account = field(out, "account_id");
    pat = field(out, "personal_access_token");
    setup_key =
        field(admin(dir, "setup-key create --account " + account + " --name fleet --reusable"),
              "setup_key");
    if (account.empty() || setup_key.empty())
      die("could not create the account: " + out);
    procs.resize(3);
    for (int i = 0; i < 3; ++i) {
      procs[i].dir = dir + "/r" + std::to_string(i + 1);
      std::filesystem::create_directories(procs[i].dir);
      start(i);
    }
  }
  ~cluster() {
    for (auto& p : procs)
      if (p.pid > 0) {
        ::kill(p.pid, SIGTERM);
        ::waitpid(p.pid, nullptr, 0);
      }
  }
  std::string admin(const std::string& d, const std::string& args) const {
    return run(std::string(NBM_SERVER_BIN) + " admin --config " + config + " --datadir " + d + " " +
               args + " 2>&1");
  }
  std::string target(int i) const { return "127.0.0.1:" + std::to_string(procs[i].port); }
  void start(int i) {
    auto& p = procs[i];
    p.port = free_port();
    p.metrics = free_port();
    const std::string log = p.dir + "/server.log";
    p.pid = nbm::tools::spawn_server(NBM_SERVER_BIN, config, p.dir, p.port, p.metrics);
    const auto until = clk::now() + 30s;
    while (clk::now() < until) {
      nbm::tools::peer_client probe(target(i));
      if (probe.fetch_server_key().ok() && !replica_id(p.pid).empty())
        return;
      std::this_thread::sleep_for(100ms);
    }
    die("replica " + std::to_string(i + 1) + " did not come up; see " + log);
  }
  void kill9(int i) {
    ::kill(procs[i].pid, SIGKILL);
    ::waitpid(procs[i].pid, nullptr, 0);
    procs[i].pid = -1;
  }
  std::string replica_id(pid_t pid) const {
    soci::session sql;
    nbm::storage::open_session(sql, db);
    std::string id;
    long long p = pid;
    soci::indicator ind = soci::i_null;
    sql << "SELECT id FROM nbm_replicas WHERE pid = :p", soci::use(p, "p"), soci::into(id, ind);
    return sql.got_data() && ind == soci::i_ok ? id : "";
  }
  // peer id -> connected, as the store shows it.
  std::map<std::string, bool> store_status() const {
    soci::session sql;
    nbm::storage::open_session(sql, db);
    std::map<std::string, bool> out;
    soci::rowset<soci::row> rows =
        (sql.prepare << "SELECT id, CASE WHEN peer_status_connected THEN 1 ELSE 0 END FROM peers");
    for (const auto& r : rows)
      out[r.get<std::string>(0)] = r.get<int>(1) == 1;
    return out;
  }
  long long scalar(const std::string& q) const {
    soci::session sql;
    nbm::storage::open_session(sql, db);
    long long n = 0;
    sql << q, soci::into(n);
    return n;
  }
  // peer id -> connected, as replica i's REST API answers.
  std::map<std::string, bool> rest_status(int i) const {
    httplib::Client cli("127.0.0.1", procs[i].port);
    cli.set_read_timeout(30, 0);
    auto r = cli.Get("/api/peers", {{"Authorization", "Token " + pat}});
    std::map<std::string, bool> out;
    if (!r || r->status != 200)
      return out;
    for (const auto& p : nlohmann::json::parse(r->body))
      out[p.at("id").get<std::string>()] = p.at("connected").get<bool>();
    return out;
  }
  double metric(int i, const std::string& name) const {
    httplib::Client cli("127.0.0.1", procs[i].metrics);
    auto r = cli.Get("/metrics");
    if (!r || r->status != 200)
      return -1;
    std::istringstream in(r->body);
    for (std::string line; std::getline(in, line);)
      if (line.rfind(name + " ", 0) == 0)
        return std::stod(line.substr(name.size() + 1));
    return -1;
  }
};

// One Sync stream on its own thread, cancellable from another.
struct live_stream {
  grpc::ClientContext ctx;
  std::thread th;
  std::mutex mu;
  std::condition_variable cv;
  int state = 0; // 0 opening, 1 holds a map, 2 ended
  int replica = 0;
  clk::time_point first_map{};

  live_stream(nbm::tools::peer_client& c, int r, const std::string& host) : replica(r) {
    th = std::thread([this, &c, host] {
      management::SyncRequest req;
      nbm::tools::fill_meta(*req.mutable_meta(), host);
      auto reader = c.stub().Sync(&ctx, c.envelope(req));
      management::EncryptedMessage m;
      while (reader->Read(&m)) {
        std::lock_guard<std::mutex> lk(mu);
        if (state == 0) {
          state = 1;
          first_map = clk::now();
          cv.notify_all();
        }
      }
      reader->Finish();
      std::lock_guard<std::mutex> lk(mu);
      state = 2;
      cv.notify_all();
    });
  }
  int wait_open(std::chrono::milliseconds limit) {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait_for(lk, limit, [this] { return state != 0; });
    return state;
  }
  int now() {
    std::lock_guard<std::mutex> lk(mu);
    return state;
  }
  void close() {
    ctx.TryCancel();
    if (th.joinable())
      th.join();
  }
  ~live_stream() { close(); }
};

struct peer {
  std::string key_file, id, host;
  std::vector<std::unique_ptr<nbm::tools::peer_client>> via; // one client per replica
  std::vector<std::unique_ptr<live_stream>> open;            // oldest first
  std::vector<std::uint64_t> seq;                            // open order of each open stream
  std::uint64_t opened = 0;                                  // streams opened so far
};

void raise_fd_limit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
}

// Registers `n` peers through replica 1 (8 at once), each with a client per replica.
std::vector<peer> register_peers(cluster& c, std::size_t n) {
  std::vector<peer> peers(n);
  std::atomic<std::size_t> next{0}, failed{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t)
    ts.emplace_back([&] {
      for (std::size_t i; (i = next++) < n;) {
        auto& p = peers[i];
        p.key_file = c.dir + "/peer" + std::to_string(i) + ".key";
        p.host = "peer-" + std::to_string(i);
        for (int r = 0; r < 3; ++r) {
          p.via.push_back(std::make_unique<nbm::tools::peer_client>(c.target(r), p.key_file));
          p.via.back()->fetch_server_key();
        }
        if (!p.via[0]->login(c.setup_key, p.host).ok())
          ++failed;
      }
    });
  for (auto& t : ts)
    t.join();
  if (failed)
    die(std::to_string(failed.load()) + " registrations failed");
  soci::session sql;
  nbm::storage::open_session(sql, c.db);
  std::map<std::string, std::string> id_of;
  soci::rowset<soci::row> keys = (sql.prepare << "SELECT id, key FROM peers");
  for (const auto& r : keys)
    id_of[r.get<std::string>(1)] = r.get<std::string>(0);
  for (auto& p : peers)
    p.id = id_of[p.via[0]->public_key_b64()];
  return peers;
}

struct op {
  bool connect = true;
  int replica = 0;
  bool older = false; // disconnect: an older stream rather than the newest
  int delay_us = 0;
  unsigned pick = 0; // which older stream
};

int history(std::size_t ops, std::size_t npeers, unsigned seed, long lease) {
  cluster c(lease);
  auto peers = register_peers(c, npeers);
  std::mt19937 rng(seed);
  std::vector<std::vector<op>> plan(npeers);
  for (std::size_t i = 0; i < ops; ++i) {
    op o;
    const auto p = rng() % npeers;
    o.connect = rng() % 100 < 55;
    o.replica = static_cast<int>(rng() % 3);
    o.older = rng() % 100 < 40;
    o.delay_us = static_cast<int>(rng() % 3000); // injected: 0-3 ms before the op
    o.pick = rng();
    plan[p].push_back(o);
  }
  std::atomic<std::size_t> connects{0}, disconnects{0}, refused{0}, older_closed{0}, noops{0};
  const auto began = clk::now();
  std::vector<std::thread> ts;
  for (std::size_t i = 0; i < npeers; ++i)
    ts.emplace_back([&, i] {
      auto& p = peers[i];
      for (const auto& o : plan[i]) {
        std::this_thread::sleep_for(std::chrono::microseconds(o.delay_us));
        if (o.connect) {
          p.open.push_back(std::make_unique<live_stream>(
              *p.via[static_cast<std::size_t>(o.replica)], o.replica, p.host));
          p.seq.push_back(++p.opened);
          if (p.open.back()->wait_open(10s) != 1)
            ++refused;
          ++connects;
          continue;
        }
        if (p.open.empty()) {
          ++noops;
          continue;
        }
        std::size_t at = p.open.size() - 1;
        if (o.older && p.open.size() > 1) {
          at = o.pick % (p.open.size() - 1); // a delayed disconnect of an older stream
          ++older_closed;
        }
        p.open[at]->close();
        p.open.erase(p.open.begin() + static_cast<std::ptrdiff_t>(at));
        p.seq.erase(p.seq.begin() + static_cast<std::ptrdiff_t>(at));
        ++disconnects;
      }
    });
  for (auto& t : ts)
    t.join();
  const double run_ms = ms_since(began);
  std::printf("history: ops=%zu peers=%zu seed=%u replicas=3 connects=%zu disconnects=%zu "
              "older_disconnects=%zu noop_disconnects=%zu refused_connects=%zu run_ms=%.0f\n",
              ops, npeers, seed, connects.load(), disconnects.load(), older_closed.load(),
              noops.load(), refused.load(), run_ms);
  // The model, highest token wins: a peer is connected iff the newest stream it opened is still
  // open (per peer the ops run in order, so the newest opened holds the highest token).
  std::map<std::string, bool> expect;
  std::vector<double> newest_on(3, 0);
  std::size_t stale_served = 0, newest_ended_by_server = 0;
  for (auto& p : peers) {
    bool conn = false;
    for (std::size_t k = 0; k < p.open.size(); ++k) {
      const int st = p.open[k]->now();
      if (p.seq[k] == p.opened) {
        if (st == 1) {
          conn = true;
          ++newest_on[static_cast<std::size_t>(p.open[k]->replica)];
        } else
          ++newest_ended_by_server;
      } else if (st != 2)
        ++stale_served; // an older stream a replica still serves
    }
    expect[p.id] = conn;
  }
  // The writes are asynchronous: the store is compared once it matches, or after 10 s.
  std::size_t store_bad = 0;
  const auto settle = clk::now();
  for (;;) {
    store_bad = 0;
    const auto got = c.store_status();
    for (const auto& [id, want] : expect) {
      auto it = got.find(id);
      store_bad += (it == got.end() || it->second != want) ? 1 : 0;
    }
    if (store_bad == 0 || clk::now() - settle > 10s)
      break;
    std::this_thread::sleep_for(100ms);
  }
  std::printf("store: violations=%zu expected_connected=%zu settled_ms=%.0f\n", store_bad,
              static_cast<std::size_t>(std::count_if(expect.begin(), expect.end(),
                                                     [](const auto& e) { return e.second; })),
              ms_since(settle));
  std::size_t rest_bad_total = 0, memory_bad_total = 0;
  for (int r = 0; r < 3; ++r) {
    const auto got = c.rest_status(r);
    std::size_t bad = 0;
    for (const auto& [id, want] : expect) {
      auto it = got.find(id);
      bad += (it == got.end() || it->second != want) ? 1 : 0;
    }
    rest_bad_total += bad;
    const double streams = c.metric(r, "nbm_sync_streams");
    const double diff = std::abs(streams - newest_on[static_cast<std::size_t>(r)]);
    memory_bad_total += static_cast<std::size_t>(diff);
    std::printf("replica%d: rest_violations=%zu attached_streams=%.0f newest_streams_here=%.0f "
                "memory_violations=%.0f\n",
                r + 1, bad, streams, newest_on[static_cast<std::size_t>(r)], diff);
  }
  std::printf("older_streams_still_served=%zu newest_streams_ended_by_server=%zu\n", stale_served,
              newest_ended_by_server);
  std::printf("violations: store=%zu rest=%zu memory=%zu total=%zu\n", store_bad, rest_bad_total,
              memory_bad_total, store_bad + rest_bad_total + memory_bad_total);
  for (auto& p : peers)
    p.open.clear();
  return store_bad + rest_bad_total + memory_bad_total == 0 ? 0 : 1;
}

int kill_storm(std::size_t npeers, double stay_away, long lease) {
  raise_fd_limit();
  cluster c(lease);
  const auto reg_began = clk::now();
  auto peers = register_peers(c, npeers);
  const long long registered = c.scalar("SELECT count(*) FROM peers");
  std::printf("kill: peers=%zu registered=%lld register_ms=%.0f lease_ms=%ld\n", npeers, registered,
              ms_since(reg_began), lease);
  const auto dead_id = c.replica_id(c.procs[2].pid);
  // The storm: every peer opens Sync at once on replica (i % 3) + 1.
  const auto storm = clk::now();
  for (std::size_t i = 0; i < npeers; ++i) {
    auto& p = peers[i];
    p.open.push_back(std::make_unique<live_stream>(*p.via[i % 3], static_cast<int>(i % 3), p.host));
  }
  // Replica 3 dies while the storm is under way (once a third of its peers hold a map).
  const auto held_on_3 = [&] {
    std::size_t n = 0;
    for (std::size_t i = 2; i < npeers; i += 3)
      n += peers[i].open.back()->now() == 1;
    return n;
  };
  while (held_on_3() < npeers / 9 && ms_since(storm) < 20000)
    std::this_thread::sleep_for(5ms);
  const std::size_t had_map = held_on_3();
  c.kill9(2);
  const auto killed = clk::now();
  std::printf("kill: replica3=%s killed_after_ms=%.0f its_peers_holding_a_map=%zu\n",
              dead_id.c_str(), std::chrono::duration<double, std::milli>(killed - storm).count(),
              had_map);
  // Its peers notice (their stream ends) and reconnect to replica 1 or 2, except those that stay
  // away.
  std::mt19937 rng(7);
  std::vector<std::size_t> returning, away;
  for (std::size_t i = 2; i < npeers; i += 3)
    (std::uniform_real_distribution<double>(0, 1)(rng) < stay_away ? away : returning).push_back(i);
  // Each returning agent on its own, as real agents are: it notices its stream end and
  // reconnects (up to 5 tries).
  std::atomic<std::size_t> reconnected{0};
  std::vector<double> reconnect_ms(returning.size(), -1);
  std::vector<std::thread> ts;
  for (std::size_t k = 0; k < returning.size(); ++k)
    ts.emplace_back([&, k] {
      auto& p = peers[returning[k]];
      p.open.back()->wait_open(10s);
      while (p.open.back()->now() != 2)
        std::this_thread::sleep_for(5ms);
      const int to = static_cast<int>(returning[k] % 2);
      for (int attempt = 0; attempt < 5; ++attempt) {
        p.open.push_back(
            std::make_unique<live_stream>(*p.via[static_cast<std::size_t>(to)], to, p.host));
        if (p.open.back()->wait_open(10s) == 1) {
          ++reconnected;
          reconnect_ms[k] =
              std::chrono::duration<double, std::milli>(p.open.back()->first_map - killed).count();
          break;
        }
      }
    });
  for (auto& t : ts)
    t.join();
  std::sort(reconnect_ms.begin(), reconnect_ms.end());
  const auto pct = [&](double q) {
    return reconnect_ms.empty()
               ? 0.0
               : reconnect_ms[std::min(reconnect_ms.size() - 1,
                                       static_cast<std::size_t>(q * reconnect_ms.size()))];
  };
  std::printf("kill: returning_peers_map_after_kill_ms p50=%.0f p99=%.0f max=%.0f\n", pct(0.5),
              pct(0.99), reconnect_ms.empty() ? 0.0 : reconnect_ms.back());
  // Every peer on replicas 1 and 2 (the storm's and the returning ones) holds a map.
  std::size_t holding = 0;
  clk::time_point last_map = killed;
  for (std::size_t i = 0; i < npeers; ++i) {
    if (i % 3 == 2 && std::find(away.begin(), away.end(), i) != away.end())
      continue;
    auto& s = *peers[i].open.back();
    if (s.now() == 1) {
      ++holding;
      last_map = std::max(last_map, s.first_map);
    }
  }
  const std::size_t should_hold = npeers - away.size();
  // The storm itself on replicas 1 and 2 (the peers that never moved): its last first map.
  clk::time_point storm_last = storm;
  for (std::size_t i = 0; i < npeers; ++i)
    if (i % 3 != 2 && peers[i].open.front()->now() == 1)
      storm_last = std::max(storm_last, peers[i].open.front()->first_map);
  std::printf("kill: storm_on_replicas_1_2_last_first_map_ms_after_storm_start=%.0f\n",
              std::chrono::duration<double, std::milli>(storm_last - storm).count());
  std::printf("kill: returning=%zu reconnected=%zu stayed_away=%zu holding_a_map=%zu/%zu "
              "all_hold_a_map_ms_after_kill=%.0f\n",
              returning.size(), reconnected.load(), away.size(), holding, should_hold,
              std::chrono::duration<double, std::milli>(last_map - killed).count());
  // The dead replica's sessions in the store: none left within the lease + 5 s.
  const std::string left_q =
      "SELECT count(*) FROM nbm_replica_sessions s JOIN peers p ON p.id = s.peer_id WHERE "
      "s.replica_id = '" +
      dead_id +
      "' AND p.peer_status_connected = true AND "
      "p.peer_status_session_started_at = s.token";
  const long long left_at_start = c.scalar(left_q);
  long long left = left_at_start;
  while (left > 0 && clk::now() - killed < std::chrono::milliseconds(lease) + 30s) {
    std::this_thread::sleep_for(100ms);
    left = c.scalar(left_q);
  }
  const double ended_ms = ms_since(killed);
  const long long after = c.scalar("SELECT count(*) FROM peers");
  const long long connected = c.scalar("SELECT count(*) FROM peers WHERE peer_status_connected");
  std::printf("kill: dead_sessions_left_after_reconnects=%lld dead_sessions_left=%lld "
              "ended_ms_after_kill=%.0f within_lease_plus_5s=%s\n",
              left_at_start, left, ended_ms,
              left == 0 && ended_ms <= static_cast<double>(lease + 5000) ? "yes" : "no");
  std::printf("kill: registered_before=%lld registered_after=%lld lost=%lld "
              "store_connected=%lld expected_connected=%zu\n",
              registered, after, registered - after, connected, holding);
  // The replica restarts and rejoins.
  const auto restart = clk::now();
  c.start(2);
  std::printf("kill: restarted_replica=%s rejoined_ms=%.0f replicas_alive=%lld\n",
              c.replica_id(c.procs[2].pid).c_str(), ms_since(restart),
              c.scalar("SELECT count(*) FROM nbm_replicas WHERE heartbeat_at > now() - "
                       "interval '5 seconds'"));
  for (auto& p : peers)
    p.open.clear();
  return left == 0 && registered == after && holding == should_hold ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2)
    die("usage: bench_replicas history|kill [--ops N] [--peers P] [--seed S] [--stay-away F] "
        "[--lease-ms L]");
  const std::string phase = argv[1];
  std::size_t ops = 10000, npeers = phase == "kill" ? 2000 : 40;
  unsigned seed = 1;
  double stay_away = 0.25;
  long lease = phase == "kill" ? 30000 : 5000;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--ops")
      ops = std::stoul(v);
    else if (a == "--peers")
      npeers = std::stoul(v);
    else if (a == "--seed")
      seed = static_cast<unsigned>(std::stoul(v));
    else if (a == "--stay-away")
      stay_away = std::stod(v);
    else if (a == "--lease-ms")
      lease = std::stol(v);
    else
      die("unknown option " + a);
  }
  if (npeers == 0)
    die("--peers must be positive");
  if (phase == "history")
    return history(ops, npeers, seed, lease);
  if (phase == "kill")
    return kill_storm(npeers, stay_away, lease);
  die("unknown phase " + phase);
}
