// Network-map benchmarks on NetBird's own benchmark shapes (setupTestAccountManager(peers, groups)
// in management/server/peer_test.go): `peers` peers split into `groups` groups, each group with a
// policy group <-> group (all, bidirectional) and one extra routing peer (agent "development")
// serving a route 192.0.2.0/32 to its group (NetBird's fixture uses a network resource there; a
// legacy route has the same shape in the map: one route + route firewall rules per router).
//
// update_account_peers: what NetBird's UpdateAccountPeers does for one change — index the account,
//   compute every peer's map, encode it (SyncResponse bytes) and encrypt it (NaCl box) for that
//   peer, hand it to a sink. Single thread, and split over the machine's cores (as the encoder
//   pool does), median of several runs.
// sync_and_mark_peer: one peer's Sync through the real actors on a real store (SQLite file, or
//   PostgreSQL with --pg-dsn): fenced connect (a database write that lands) -> attach -> the first
//   map computed, encoded and encrypted in the sink. Median and p99 over many sessions.
// memory: resident memory of the account and its indexes, per peer.
//
// The account shape: "networks" (the default: NetBird's networks, resource policies and posture
// checks added, tools/bench_accounts.hpp add_networks) or "plain" (--shape plain: as before
// networks were added, for comparing with older builds).
//
//   build/tools/bench_netmap [--runs N] [--pg-dsn DSN] [--sizes 50/5,500/100,...]
//                            [--shape plain|networks]
#include "actors/account_actor.hpp"
#include "actors/directory.hpp"
#include "actors/map_workers.hpp"
#include "actors/status_writer.hpp"
#include "api/grpc/wire_map.hpp"
#include "crypto/crypto.hpp"
#include "storage/account_store.hpp"
#include "storage/schema.hpp"
#include "tools/bench_accounts.hpp"

#include <caf/all.hpp>
#include <soci/soci.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <unistd.h>

using namespace nbm;
using nbm::bench::bench_account;
using clk = std::chrono::steady_clock;

namespace {

double ms_since(clk::time_point t0) {
  return std::chrono::duration<double, std::milli>(clk::now() - t0).count();
}

struct sealed_out {
  std::size_t bytes = 0;
  std::size_t maps = 0;
};

// One full fan-out: index, then per peer map + encode + seal; peers [from, to) by `stride`.
void fan_out_range(const std::shared_ptr<actors::account_change>& ch, std::uint32_t first,
                   std::uint32_t stride, const std::vector<std::string>& box_keys,
                   sealed_out& out) {
  const auto& view = *ch->view;
  const auto n = static_cast<std::uint32_t>(view.acc().peers.size());
  for (std::uint32_t i = first; i < n; i += stride) {
    actors::map_update u;
    u.change = ch;
    u.peer = i;
    u.map = view.map_for(i);
    // A stream precomputes its peer's box key once, when it opens (as the server does).
    auto body = crypto::box_seal_precomputed(api::encode_sync_response(u, nullptr), box_keys[i]);
    out.bytes += body.size();
    ++out.maps;
  }
}

struct fan_out_result {
  double ms_single = 0, ms_parallel = 0, index_ms = 0;
  double avg_remote = 0, avg_rules = 0, avg_bytes = 0;
  double map_ms = 0, encode_ms = 0, seal_ms = 0; // one thread, phase by phase
};

fan_out_result update_account_peers(int peers, int groups, int runs, const std::string& shape) {
  auto acc = std::make_shared<const core::account>(bench_account(peers, groups, shape));
  const auto server = crypto::make_wg_key_pair();
  std::vector<std::string> box_keys;
  for (const auto& p : acc->peers)
    box_keys.push_back(crypto::box_precompute(*crypto::base64_decode(p.key), server.private_key));
  fan_out_result r;
  std::vector<double> single, parallel, index;
  const unsigned threads = std::max(2u, std::thread::hardware_concurrency());
  for (int run = 0; run < runs; ++run) {
    for (int mode = 0; mode < 2; ++mode) {
      auto t0 = clk::now();
      auto ch = std::make_shared<actors::account_change>();
      ch->view = std::make_shared<core::account_view>(acc, core::map_context{});
      const double idx_ms = ms_since(t0);
      if (mode == 0) {
        sealed_out out;
        fan_out_range(ch, 0, 1, box_keys, out);
        single.push_back(ms_since(t0));
        index.push_back(idx_ms);
        r.avg_bytes = static_cast<double>(out.bytes) / static_cast<double>(out.maps);
      } else {
        std::vector<sealed_out> outs(threads);
        std::vector<std::thread> ts;
        for (unsigned t = 0; t < threads; ++t)
          ts.emplace_back([&, t] { fan_out_range(ch, t, threads, box_keys, outs[t]); });
        for (auto& t : ts)
          t.join();
        parallel.push_back(ms_since(t0));
      }
    }
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  r.ms_single = median(single);
  r.ms_parallel = median(parallel);
  r.index_ms = median(index);
  auto ch = std::make_shared<actors::account_change>();
  ch->view = std::make_shared<core::account_view>(acc, core::map_context{});
  const auto& view = *ch->view;
  double remote = 0, rules = 0;
  const auto n = static_cast<std::uint32_t>(acc->peers.size());
  std::vector<actors::map_update> updates(n);
  auto t0 = clk::now();
  for (std::uint32_t i = 0; i < n; ++i) {
    updates[i].change = ch;
    updates[i].peer = i;
    updates[i].map = view.map_for(i);
  }
  r.map_ms = ms_since(t0);
  std::vector<std::string> encoded(n);
  t0 = clk::now();
  for (std::uint32_t i = 0; i < n; ++i)
    encoded[i] = api::encode_sync_response(updates[i], nullptr);
  r.encode_ms = ms_since(t0);
  t0 = clk::now();
  for (std::uint32_t i = 0; i < n; ++i)
    encoded[i] = crypto::box_seal_precomputed(encoded[i], box_keys[i]);
  r.seal_ms = ms_since(t0);
  for (const auto& u : updates) {
    remote += static_cast<double>(u.map.remote_peers.size());
    rules += static_cast<double>(u.map.firewall_rules.size());
  }
  r.avg_remote = remote / static_cast<double>(acc->peers.size());
  r.avg_rules = rules / static_cast<double>(acc->peers.size());
  return r;
}

// A sink that encodes and seals what it receives, and wakes the benchmark.
struct bench_sink : actors::session_sink {
  std::string server_private, peer_key;
  std::mutex mu;
  std::condition_variable cv;
  std::size_t delivered = 0, bytes = 0;
  void close(const std::string&) override {}
  void deliver(actors::map_update_ptr u, bool initial) override {
    management::NetbirdConfig cfg;
    auto body = crypto::box_seal(api::encode_sync_response(*u, initial ? &cfg : nullptr), peer_key,
                                 server_private);
    std::lock_guard<std::mutex> lk(mu);
    ++delivered;
    bytes = body.size();
    cv.notify_all();
  }
  void wait_for(std::size_t n) {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return delivered >= n; });
  }
};

struct sync_result {
  double p50 = 0, p99 = 0;
  std::size_t bytes = 0;
};

sync_result sync_and_mark_peer(const storage::db_options& db, int peers, int groups, int runs,
                               const std::string& shape) {
  auto acc = bench_account(peers, groups, shape);
  {
    soci::session sql;
    storage::open_session(sql, db);
    storage::ensure_schema(sql, db.kind);
    for (const char* t : {"network_resources", "network_routers", "networks", "posture_checks"})
      sql << std::string("DELETE FROM ") + t;
    sql << "DELETE FROM group_peers";
    sql << "DELETE FROM groups";
    sql << "DELETE FROM routes";
    sql << "DELETE FROM policy_rules";
    sql << "DELETE FROM policies";
    sql << "DELETE FROM peers";
    sql << "DELETE FROM accounts";
    storage::account_store(sql, db.kind).insert_account_tree(acc);
  }
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto writer = actors::spawn_status_writer(sys, {db, 1, 1024});
  auto loader = actors::spawn_account_loader(sys, {db, std::chrono::milliseconds(0)});
  actors::directory_config dc{writer, {}, loader, {}, {}, {}};
  // As the server: large fan-outs' maps on threads of their own (NBM_MAP_WORKERS; 0: none).
  if (const auto n = actors::map_workers_from_env(); n > 0)
    dc.mappers = std::make_shared<actors::map_workers>(n, actors::map_inline_ns_from_env());
  auto dir = actors::spawn_peer_directory(sys, dc);
  const auto server = crypto::make_wg_key_pair();
  caf::scoped_actor self{sys};
  actors::peer_actor p;
  self->request(dir, caf::infinite, actors::find_peer_atom::value, acc.id, std::string("peer-1"))
      .receive([&](actors::peer_actor x) { p = x; }, [](caf::error&) {});
  std::vector<double> times;
  std::size_t bytes = 0;
  core::session_token token = 1;
  for (int i = 0; i < runs + 5; ++i) {
    auto sink = std::make_shared<bench_sink>();
    sink->server_private = server.private_key;
    sink->peer_key = *crypto::base64_decode(acc.peers[1].key);
    auto t0 = clk::now();
    bool landed = false;
    self->request(p, caf::infinite, actors::connect_atom::value, ++token, actors::sink_ptr(sink))
        .receive([&](bool b) { landed = b; }, [](caf::error&) {});
    sink->wait_for(1);
    if (i >= 5) // the first sessions load the account and warm up
      times.push_back(ms_since(t0));
    if (!landed)
      std::fprintf(stderr, "a connect did not land\n");
    bytes = sink->bytes;
    self->request(p, caf::infinite, actors::disconn_atom::value, token)
        .receive([](bool) {}, [](caf::error&) {});
  }
  std::sort(times.begin(), times.end());
  sync_result r;
  r.p50 = times[times.size() / 2];
  r.p99 = times[std::min(times.size() - 1, times.size() * 99 / 100)];
  r.bytes = bytes;
  caf::anon_send_exit(dir, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(writer, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(loader, caf::exit_reason::user_shutdown);
  if (dc.mappers)
    dc.mappers->stop();
  return r;
}

long rss_kb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0)
      return std::stol(line.substr(6));
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  bench::bench_args args;
  args.runs = 5;
  args.sizes = {{50, 5}, {500, 100}, {5000, 200}, {50, 10}, {500, 10}, {5000, 15}, {2000, 2000}};
  if (!bench::parse_bench_args(argc, argv, args, 1))
    return 2;
  const int runs = args.runs;
  const std::string pg_dsn = args.pg_dsn;
  const auto sizes = args.sizes;

  std::printf("account shape: %s\n", args.shape.c_str());
  std::printf(
      "update_account_peers: index + map + encode + encrypt for every peer (median of %d)\n", runs);
  std::printf("%8s %7s | %10s %12s %12s | %9s %9s %9s | %8s %8s %8s\n", "peers", "groups",
              "index ms", "1 thread ms", "parallel ms", "remote/pr", "rules/pr", "bytes/pr",
              "map ms", "enc ms", "seal ms");
  for (auto [peers, groups] : sizes) {
    auto r = update_account_peers(peers, groups, runs, args.shape);
    std::printf("%8d %7d | %10.2f %12.2f %12.2f | %9.1f %9.1f %9.0f | %8.1f %8.1f %8.1f\n", peers,
                groups, r.index_ms, r.ms_single, r.ms_parallel, r.avg_remote, r.avg_rules,
                r.avg_bytes, r.map_ms, r.encode_ms, r.seal_ms);
    std::fflush(stdout);
  }

  std::printf("\nmemory: resident growth holding the account and its indexes\n");
  std::printf("%8s %7s | %10s %10s\n", "peers", "groups", "KiB", "B/peer");
  for (auto [peers, groups] :
       std::vector<std::pair<int, int>>{{500, 100}, {5000, 200}, {20000, 400}}) {
    const long before = rss_kb();
    auto acc = std::make_shared<const core::account>(bench_account(peers, groups, args.shape));
    auto view = std::make_shared<core::account_view>(acc, core::map_context{});
    const long after = rss_kb();
    std::printf("%8d %7d | %10ld %10.0f\n", peers, groups, after - before,
                static_cast<double>(after - before) * 1024.0 / peers);
  }

  std::vector<storage::db_options> dbs;
  const auto dir =
      std::filesystem::temp_directory_path() / ("bench_netmap_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  storage::db_options sqlite;
  sqlite.kind = storage::engine::sqlite;
  sqlite.target = (dir / "store.db").string();
  dbs.push_back(sqlite);
  if (!pg_dsn.empty()) {
    storage::db_options pg;
    pg.kind = storage::engine::postgres;
    pg.target = pg_dsn;
    dbs.push_back(pg);
  }
  std::printf("\nsync_and_mark_peer: fenced connect + first map encoded and encrypted (%d "
              "sessions)\n",
              runs * 20);
  std::printf("%9s %8s %7s | %9s %9s %9s\n", "store", "peers", "groups", "p50 ms", "p99 ms",
              "bytes");
  for (const auto& db : dbs)
    for (auto [peers, groups] :
         std::vector<std::pair<int, int>>{{50, 5}, {500, 100}, {5000, 200}}) {
      auto r = sync_and_mark_peer(db, peers, groups, runs * 20, args.shape);
      std::printf("%9s %8d %7d | %9.2f %9.2f %9zu\n", storage::to_string(db.kind), peers, groups,
                  r.p50, r.p99, r.bytes);
      std::fflush(stdout);
    }
  std::filesystem::remove_all(dir);
  return 0;
}
