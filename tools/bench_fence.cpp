// Fenced status writes per second through the store path: single-row UPDATEs (one connection per
// concurrent peer) against group commit through peer actors and the status writer, on SQLite and
// PostgreSQL, for a range of concurrent peers. Prints a table. Not a test: it asserts nothing but
// that every write it expected to land did land.
//
//   build/tools/bench_fence [--seconds S] [--peers 1,4,16,64] [--pg-dsn DSN] [--workers N]
//   scripts/pg_throwaway.sh sh -c 'build/tools/bench_fence --pg-dsn "$NBM_TEST_PG_DSN"'
#include "actors/directory.hpp"
#include "actors/status_writer.hpp"
#include "storage/schema.hpp"
#include "storage/status_store.hpp"

#include <caf/all.hpp>
#include <soci/soci.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace nbm;
using clk = std::chrono::steady_clock;

namespace {

struct result {
  double writes_per_s = 0;
  std::uint64_t writes = 0;
  std::uint64_t not_landed = 0;
  double avg_batch = 0;
};

void seed(const storage::db_options& db, int n) {
  soci::session sql;
  storage::open_session(sql, db);
  storage::ensure_schema(sql, db.kind);
  sql << "DELETE FROM peers";
  soci::transaction tr(sql);
  sql << "INSERT INTO accounts (id, domain) VALUES ('bench', 'bench.example') ON CONFLICT DO "
         "NOTHING";
  for (int i = 0; i < n; ++i) {
    std::string id = "bp" + std::to_string(i), key = "bench-key-" + std::to_string(i);
    std::string ip =
        "\"100.64." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1) + "\"";
    sql << "INSERT INTO peers (id, account_id, key, ip, name, dns_label, user_id) VALUES "
           "(:id, 'bench', :key, :ip, :id, :id, '')",
        soci::use(id, "id"), soci::use(key, "key"), soci::use(ip, "ip");
  }
  tr.commit();
}

std::atomic<core::session_token> token_source{1};

result run_single(const storage::db_options& db, int peers, double seconds) {
  std::atomic<std::uint64_t> writes{0}, missed{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> ths;
  for (int i = 0; i < peers; ++i)
    ths.emplace_back([&, i] {
      storage::status_store s(db);
      const std::string id = "bp" + std::to_string(i);
      std::uint64_t n = 0, m = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        auto t = token_source.fetch_add(1);
        m += !s.connect("bench", id, t);
        m += !s.disconnect("bench", id, t);
        n += 2;
      }
      writes += n;
      missed += m;
    });
  auto t0 = clk::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : ths)
    t.join();
  double el = std::chrono::duration<double>(clk::now() - t0).count();
  return {writes / el, writes.load(), missed.load(), 1.0};
}

// One simulated peer: connect, then disconnect, then the next session, each after the previous
// answer.
void drive(caf::event_based_actor* self, actors::peer_actor p,
           std::shared_ptr<std::atomic<bool>> stop,
           std::shared_ptr<std::atomic<std::uint64_t>> writes,
           std::shared_ptr<std::atomic<std::uint64_t>> missed) {
  if (stop->load(std::memory_order_relaxed)) {
    self->quit();
    return;
  }
  auto t = token_source.fetch_add(1);
  self->request(p, caf::infinite, actors::connect_atom::value, t, actors::sink_ptr{})
      .then([=](bool ok) {
        if (!ok)
          ++*missed;
        self->request(p, caf::infinite, actors::disconn_atom::value, t).then([=](bool ok2) {
          if (!ok2)
            ++*missed;
          *writes += 2;
          drive(self, p, stop, writes, missed);
        });
      });
}

result run_group(const storage::db_options& db, int peers, double seconds, std::size_t workers) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto writer = actors::spawn_status_writer(sys, {db, workers, 4096});
  auto dir = actors::spawn_peer_directory(sys, {writer, {}, {}, {}, {}, {}});
  std::vector<actors::peer_actor> ps;
  {
    caf::scoped_actor self{sys};
    for (int i = 0; i < peers; ++i)
      self->request(dir, caf::infinite, actors::find_peer_atom::value, std::string("bench"),
                    "bp" + std::to_string(i))
          .receive([&](const actors::peer_actor& p) { ps.push_back(p); }, [](caf::error&) {});
  }
  auto stop = std::make_shared<std::atomic<bool>>(false);
  auto writes = std::make_shared<std::atomic<std::uint64_t>>(0);
  auto missed = std::make_shared<std::atomic<std::uint64_t>>(0);
  auto t0 = clk::now();
  for (auto& p : ps)
    sys.spawn([=](caf::event_based_actor* self) { drive(self, p, stop, writes, missed); });
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  *stop = true;
  double el = std::chrono::duration<double>(clk::now() - t0).count();
  std::uint64_t done = writes->load();
  actors::writer_state_record ws;
  {
    caf::scoped_actor self{sys};
    self->request(writer, caf::infinite, actors::status_atom::value)
        .receive(
            [&](const actors::actor_status& s) {
              ws = actors::record_of<actors::writer_state_record>(s);
            },
            [](caf::error&) {});
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100)); // drivers finish their round trip
  caf::anon_send_exit(dir, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(writer, caf::exit_reason::user_shutdown);
  return {done / el, done, missed->load(), ws.batches ? double(ws.writes) / double(ws.batches) : 0};
}

std::vector<int> parse_list(const char* s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    out.push_back(std::stoi(item));
  return out;
}

} // namespace

int main(int argc, char** argv) {
  double seconds = 2.0;
  std::vector<int> peer_counts{1, 4, 16, 64, 256};
  std::string pg_dsn;
  std::size_t pg_workers = 2;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--seconds")
      seconds = std::stod(next());
    else if (a == "--peers")
      peer_counts = parse_list(next());
    else if (a == "--pg-dsn")
      pg_dsn = next();
    else if (a == "--workers")
      pg_workers = std::stoul(next());
    else {
      std::fprintf(
          stderr,
          "usage: bench_fence [--seconds S] [--peers 1,4,16] [--pg-dsn DSN] [--workers N]\n");
      return 2;
    }
  }
  int max_peers = 0;
  for (int p : peer_counts)
    max_peers = std::max(max_peers, p);

  std::vector<storage::db_options> dbs;
  auto dir = std::filesystem::temp_directory_path() / ("nbm-bench-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  dbs.push_back({storage::engine::sqlite, (dir / "bench.db").string(), 1});
  if (!pg_dsn.empty())
    dbs.push_back({storage::engine::postgres, pg_dsn, 1});

  std::printf("%-9s %-13s %6s %14s %12s %10s %8s\n", "engine", "mode", "peers", "writes/s",
              "writes", "refused", "batch");
  for (const auto& db : dbs) {
    seed(db, max_peers);
    for (int peers : peer_counts) {
      const auto workers = db.kind == storage::engine::postgres ? pg_workers : 1;
      for (int mode = 0; mode < 2; ++mode) {
        // Single-row mode opens one connection per peer: past 256 that measures connection limits.
        if (mode == 0 && peers > 256)
          continue;
        result r =
            mode == 0 ? run_single(db, peers, seconds) : run_group(db, peers, seconds, workers);
        std::printf("%-9s %-13s %6d %14.0f %12llu %10llu %8.1f\n", storage::to_string(db.kind),
                    mode == 0 ? "single-row" : "group-commit", peers, r.writes_per_s,
                    static_cast<unsigned long long>(r.writes),
                    static_cast<unsigned long long>(r.not_landed), r.avg_batch);
        std::fflush(stdout);
      }
    }
  }
  std::filesystem::remove_all(dir);
  return 0;
}
