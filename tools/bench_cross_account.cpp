// Cross-account delay: how much REST changes of a large account (30,000 peers by default) delay
// another account's requests. Account A gets PUT /api/groups/{id} (a group of its peers renamed,
// with its members) back to back from one client thread; meanwhile account B (small, on another
// store worker) is asked, one request after another: GET /api/groups over HTTP, and the in-process
// Sync check of its account actor (sync_atom: what a Sync asks the account before its fence).
// Both are measured first with A idle, then while A changes. Prints p50 / p99 / max per phase and
// the delay (busy minus idle). Served as the server serves it (front door, facade, account
// actors, loader with N store workers, map workers as NBM_MAP_WORKERS says) over a SQLite file
// (PostgreSQL with --pg-dsn). With --sessions N, N of A's peers hold a session (a sink that
// drops what it gets) before the phases, so each change of A computes N maps (its fan-out):
// that work then competes with B for the actors' threads, and A's own Sync check (a peer of A
// beginning a Sync while A changes) shows how long A's account actor is busy. --groups sets A's
// groups (default one per 300 peers).
//
//   build/tools/bench_cross_account [--peers 30000] [--groups G] [--sessions N] [--seconds 10]
//                                   [--workers 4] [--pg-dsn DSN]
#include "actors/account_actor.hpp"
#include "actors/admin_facade.hpp"
#include "actors/directory.hpp"
#include "actors/map_workers.hpp"
#include "actors/status_writer.hpp"
#include "actors/store_worker.hpp"
#include "api/http/rest.hpp"
#include "server/front_door.hpp"
#include "storage/account_store.hpp"
#include "storage/schema.hpp"
#include "tools/bench_accounts.hpp"

#include <caf/all.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <thread>
#include <unistd.h>

using namespace nbm;
using clk = std::chrono::steady_clock;

namespace {

struct stats {
  double p50 = 0, p99 = 0, max = 0;
  std::size_t n = 0;
};

stats summarize(std::vector<double> ms) {
  stats s;
  if (ms.empty())
    return s;
  std::sort(ms.begin(), ms.end());
  s.n = ms.size();
  s.p50 = ms[ms.size() / 2];
  s.p99 = ms[std::min(ms.size() - 1, static_cast<std::size_t>(ms.size() * 0.99))];
  s.max = ms.back();
  return s;
}

// The far end of A's streams: drops every map (the fan-out's cost here is computing the maps) and
// counts the first ones, to be waited for.
struct null_sinks {
  std::mutex mu;
  std::condition_variable cv;
  std::size_t first_maps = 0;
  struct sink : actors::session_sink {
    null_sinks* all = nullptr;
    void close(const std::string&) override {}
    void deliver(actors::map_update_ptr, bool initial) override {
      if (!initial)
        return;
      std::lock_guard<std::mutex> lk(all->mu);
      ++all->first_maps;
      all->cv.notify_all();
    }
  };
  void wait_for(std::size_t n) {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return first_maps >= n; });
  }
};

// Every id of a bench account prefixed (peers, groups, policies, rules, routes), so that two of
// them fit in one store.
core::account prefixed(core::account a, const std::string& account_id, const std::string& pre) {
  a.id = account_id;
  for (auto& p : a.peers) {
    p.id = pre + p.id;
    p.account_id = account_id;
    p.name = p.dns_label = p.meta.hostname = p.id;
  }
  for (auto& g : a.groups) {
    g.id = pre + g.id;
    g.account_id = account_id;
    for (auto& m : g.peers)
      m = pre + m;
  }
  for (auto& pol : a.policies) {
    pol.id = pre + pol.id;
    pol.account_id = account_id;
    for (auto& r : pol.rules) {
      r.id = pre + r.id;
      r.policy_id = pol.id;
      for (auto& s : r.sources)
        s = pre + s;
      for (auto& d : r.destinations)
        d = pre + d;
    }
  }
  for (auto& r : a.routes) {
    r.id = pre + r.id;
    r.account_id = account_id;
    r.peer = pre + r.peer;
    for (auto& g : r.groups)
      g = pre + g;
  }
  return a;
}

// The account with an owner and a PAT; returns the plain token.
std::string with_owner(core::account& acc) {
  core::user owner;
  owner.id = acc.id + "-owner";
  owner.account_id = acc.id;
  owner.role = "owner";
  owner.issued = "api";
  acc.users.push_back(owner);
  const auto pat = crypto::make_pat();
  core::personal_access_token t;
  t.id = acc.id + "-token";
  t.user_id = owner.id;
  t.name = "bench";
  t.hashed_token = pat.hashed;
  t.created_by = owner.id;
  t.expiration_date = "2099-01-01 00:00:00+00:00";
  acc.tokens.push_back(t);
  return pat.plain;
}

} // namespace

int main(int argc, char** argv) {
  int peers = 30000, seconds = 10, groups = 0, sessions = 0;
  std::size_t workers = 4;
  std::string pg_dsn;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--peers" && i + 1 < argc)
      peers = std::max(10, std::atoi(argv[++i]));
    else if (a == "--groups" && i + 1 < argc)
      groups = std::max(1, std::atoi(argv[++i]));
    else if (a == "--sessions" && i + 1 < argc)
      sessions = std::max(0, std::atoi(argv[++i]));
    else if (a == "--seconds" && i + 1 < argc)
      seconds = std::max(1, std::atoi(argv[++i]));
    else if (a == "--workers" && i + 1 < argc)
      workers = static_cast<std::size_t>(std::max(1, std::atoi(argv[++i])));
    else if (a == "--pg-dsn" && i + 1 < argc)
      pg_dsn = argv[++i];
    else {
      std::fprintf(stderr,
                   "usage: %s [--peers N] [--groups G] [--sessions N] [--seconds S] [--workers N] "
                   "[--pg-dsn DSN]\n",
                   argv[0]);
      return 2;
    }
  }
  const auto dir =
      std::filesystem::temp_directory_path() / ("nbm-bench-cross-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  storage::db_options db;
  db.kind = pg_dsn.empty() ? storage::engine::sqlite : storage::engine::postgres;
  db.target = pg_dsn.empty() ? (dir / "store.db").string() : pg_dsn;
  {
    storage::database d(db);
    storage::ensure_schema(d);
  }
  soci::session sql;
  storage::open_session(sql, db);
  for (const char* t : {"personal_access_tokens", "users", "group_peers", "groups", "routes",
                        "policy_rules", "policies", "peers", "accounts"})
    sql << std::string("DELETE FROM ") + t;

  // A: the large account; B: a small one on another store worker (when there are several).
  const int groups_a = groups > 0 ? groups : std::max(1, peers / 300);
  sessions = std::min(sessions, peers);
  auto a = prefixed(bench::bench_account(peers, groups_a), "big", "a-");
  std::string b_id = "small";
  for (int i = 0; workers > 1 && actors::store_worker_index(b_id, workers) ==
                                     actors::store_worker_index(a.id, workers);
       ++i)
    b_id = "small-" + std::to_string(i);
  auto b = prefixed(bench::bench_account(100, 10), b_id, "b-");
  const auto pat_a = with_owner(a), pat_b = with_owner(b);
  const auto t0 = clk::now();
  storage::account_store(sql, db.kind).insert_account_tree(a);
  storage::account_store(sql, db.kind).insert_account_tree(b);
  std::printf("cross-account delay, %s store, %zu store worker(s); A: %d peers, %d groups; B: %zu "
              "peers (A on worker %zu, B on worker %zu); stored in %.1f s\n",
              storage::to_string(db.kind), workers, peers, groups_a + 1, b.peers.size(),
              actors::store_worker_index(a.id, workers), actors::store_worker_index(b.id, workers),
              std::chrono::duration<double>(clk::now() - t0).count());

  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto writer = actors::spawn_status_writer(sys, {db, 1, 1024});
  actors::loader_config lc;
  lc.db = db;
  lc.workers = workers;
  auto loader = actors::spawn_account_loader(sys, lc);
  actors::directory_config dc;
  dc.writer = writer;
  dc.loader = loader;
  // As the server: large fan-outs' maps on threads of their own (NBM_MAP_WORKERS; 0: none).
  std::shared_ptr<actors::map_workers> mappers;
  if (const auto n = actors::map_workers_from_env(); n > 0)
    mappers = std::make_shared<actors::map_workers>(n, actors::map_inline_ns_from_env());
  dc.mappers = mappers;
  auto directory = actors::spawn_peer_directory(sys, dc);
  std::printf("map workers: %u\n", mappers ? mappers->threads() : 0u);
  int rc = 0;
  {
    api::http::rest_deps deps;
    deps.facade = std::make_shared<actors::admin_facade>(
        sys, caf::actor_cast<caf::actor>(directory), caf::actor_cast<caf::actor>(loader));
    api::http::rest_api rest(deps);
    server::front_door http(rest);
    if (!http.start("127.0.0.1", 0)) {
      std::fprintf(stderr, "cannot listen on 127.0.0.1\n");
      return 1;
    }
    caf::scoped_actor self{sys};
    actors::account_actor acc_b;
    self->request(directory, std::chrono::seconds(30), actors::find_account_atom::value, b.id)
        .receive([&](actors::account_actor& x) { acc_b = x; }, [&](caf::error&) { std::exit(1); });
    const auto b_peer = b.peers.front().id;

    actors::account_actor acc_a;
    self->request(directory, std::chrono::seconds(30), actors::find_account_atom::value, a.id)
        .receive([&](actors::account_actor& x) { acc_a = x; }, [&](caf::error&) { std::exit(1); });
    // One round of B's requests: a REST read and the Sync check, each timed; then A's own Sync
    // check (a peer of A begins a Sync while A changes: its account actor answers).
    httplib::Client cli_b("127.0.0.1", http.port());
    cli_b.set_read_timeout(60);
    const httplib::Headers hb{{"Authorization", "Token " + pat_b}};
    const auto probe = [&](std::vector<double>& rest_ms, std::vector<double>& sync_ms,
                           std::vector<double>& sync_a_ms) {
      auto s = clk::now();
      auto res = cli_b.Get("/api/groups", hb);
      rest_ms.push_back(std::chrono::duration<double, std::milli>(clk::now() - s).count());
      if (!res || res->status != 200) {
        std::fprintf(stderr, "GET /api/groups on B failed: %d\n", res ? res->status : -1);
        std::exit(1);
      }
      s = clk::now();
      self->request(acc_b, std::chrono::seconds(30), actors::sync_atom::value, b_peer,
                    actors::sync_open{}, actors::peer_actor{})
          .receive([](actors::sync_verdict&) {}, [](caf::error&) { std::exit(1); });
      sync_ms.push_back(std::chrono::duration<double, std::milli>(clk::now() - s).count());
      s = clk::now();
      self->request(acc_a, std::chrono::seconds(30), actors::sync_atom::value, a.peers.back().id,
                    actors::sync_open{}, actors::peer_actor{})
          .receive([](actors::sync_verdict&) {}, [](caf::error&) { std::exit(1); });
      sync_a_ms.push_back(std::chrono::duration<double, std::milli>(clk::now() - s).count());
    };
    // Warm-up: both accounts loaded, B's token known.
    std::vector<double> ignore_r, ignore_s, ignore_a;
    for (int i = 0; i < 5; ++i)
      probe(ignore_r, ignore_s, ignore_a);
    httplib::Client cli_a("127.0.0.1", http.port());
    cli_a.set_read_timeout(120);
    const httplib::Headers ha{{"Authorization", "Token " + pat_a}};
    const auto& g = a.groups.at(1);
    const auto put_a = [&](int i) {
      const auto s = clk::now();
      auto res = cli_a.Put(
          "/api/groups/" + g.id, ha,
          nlohmann::json{{"name", "renamed-" + std::to_string(i)}, {"peers", g.peers}}.dump(),
          "application/json");
      if (!res || res->status != 200) {
        std::fprintf(stderr, "PUT on A failed: %d\n", res ? res->status : -1);
        std::exit(1);
      }
      return std::chrono::duration<double, std::milli>(clk::now() - s).count();
    };
    put_a(0); // A loaded
    // A's sessions: each connect lands (fenced write) and gets its first map.
    null_sinks sinks;
    if (sessions > 0) {
      const auto began = clk::now();
      for (int i = 0; i < sessions; ++i) {
        actors::peer_actor p;
        self->request(directory, std::chrono::seconds(30), actors::find_peer_atom::value, a.id,
                      a.peers[static_cast<std::size_t>(i)].id)
            .receive([&](actors::peer_actor& x) { p = x; }, [&](caf::error&) { std::exit(1); });
        auto sk = std::make_shared<null_sinks::sink>();
        sk->all = &sinks;
        self->request(p, std::chrono::seconds(60), actors::connect_atom::value,
                      core::session_token(1000 + i), actors::sink_ptr(sk))
            .receive([](bool) {}, [&](caf::error&) { std::exit(1); });
      }
      sinks.wait_for(static_cast<std::size_t>(sessions)); // computed after the connects landed
      std::printf("A: %d sessions connected with their first maps in %.1f s\n", sessions,
                  std::chrono::duration<double>(clk::now() - began).count());
    }
    const auto status_a = [&] {
      actors::actor_status st;
      self->request(acc_a, std::chrono::seconds(30), actors::status_atom::value)
          .receive([&](actors::actor_status& x) { st = std::move(x); },
                   [&](caf::error&) { std::exit(1); });
      return st;
    };
    const auto before_a = status_a();

    const auto run_phase = [&](bool busy) {
      std::vector<double> rest_ms, sync_ms, sync_a_ms, change_ms;
      std::atomic<bool> stop{false};
      std::thread changer;
      if (busy)
        changer = std::thread([&] {
          for (int i = 1; !stop; ++i)
            change_ms.push_back(put_a(i));
        });
      const auto until = clk::now() + std::chrono::seconds(seconds);
      while (clk::now() < until)
        probe(rest_ms, sync_ms, sync_a_ms);
      stop = true;
      if (changer.joinable())
        changer.join();
      return std::make_tuple(summarize(rest_ms), summarize(sync_ms), summarize(sync_a_ms),
                             summarize(change_ms));
    };
    const auto [idle_rest, idle_sync, idle_sync_a, unused] = run_phase(false);
    (void)unused;
    const auto [busy_rest, busy_sync, busy_sync_a, changes] = run_phase(true);
    const auto row = [](const char* what, const stats& s) {
      std::printf("  %-44s n=%6zu  p50 %8.2f ms  p99 %8.2f ms  max %8.2f ms\n", what, s.n, s.p50,
                  s.p99, s.max);
    };
    row("B: GET /api/groups, A idle", idle_rest);
    row("B: GET /api/groups, A changing", busy_rest);
    row("B: Sync check (account actor), A idle", idle_sync);
    row("B: Sync check (account actor), A changing", busy_sync);
    row("A: Sync check (account actor), A idle", idle_sync_a);
    row("A: Sync check (account actor), A changing", busy_sync_a);
    row("A: PUT /api/groups/{id}", changes);
    const auto after_a = status_a();
    std::printf(
        "A: %lld fan-outs during the changes, %lld maps computed (%lld sent), last fan-out "
        "%.1f ms\n",
        static_cast<long long>(after_a.counter("changes") - before_a.counter("changes")),
        static_cast<long long>(after_a.counter("maps_sent") + after_a.counter("maps_skipped") -
                               before_a.counter("maps_sent") - before_a.counter("maps_skipped")),
        static_cast<long long>(after_a.counter("maps_sent") - before_a.counter("maps_sent")),
        static_cast<double>(after_a.gauge("last_fanout_us")) / 1000.0);
    std::printf("delay of B by A's changes: REST read p50 %+.2f ms, p99 %+.2f ms; Sync check p50 "
                "%+.2f ms, p99 %+.2f ms (goal: at most 50 ms)\n",
                busy_rest.p50 - idle_rest.p50, busy_rest.p99 - idle_rest.p99,
                busy_sync.p50 - idle_sync.p50, busy_sync.p99 - idle_sync.p99);
    if (changes.n == 0)
      rc = 1;
    http.stop();
  }
  caf::anon_send_exit(directory, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(loader, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(writer, caf::exit_reason::user_shutdown);
  if (mappers)
    mappers->stop();
  std::filesystem::remove_all(dir);
  return rc;
}
