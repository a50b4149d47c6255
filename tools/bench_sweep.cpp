// The start-up sweep (status_store::end_leftover_sessions): how long a server takes, before it
// serves, to end the sessions a killed process left "connected". N peers (250 per account) are
// connected through the fenced writes, then swept; prints rows and milliseconds per engine.
//   build/tools/bench_sweep [--peers 10000,100000] [--pg-dsn DSN] [--batch rows-per-statement]
//   scripts/pg_throwaway.sh sh -c 'build/tools/bench_sweep --pg-dsn "$NBM_TEST_PG_DSN"'
#include "storage/schema.hpp"
#include "storage/status_store.hpp"

#include <soci/soci.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

using namespace nbm;

namespace {

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

// Peers p0..p{n-1}, 250 to an account, every one connected with its own token.
void seed_connected(const storage::db_options& db, int n) {
  soci::session sql;
  storage::open_session(sql, db);
  storage::ensure_schema(sql, db.kind);
  sql << "DELETE FROM peers";
  sql << "DELETE FROM accounts";
  soci::transaction tr(sql);
  for (int a = 0; a * 250 < n; ++a) {
    const std::string acc = "acc" + std::to_string(a);
    sql << "INSERT INTO accounts (id, domain) VALUES (:a, 'bench.example')", soci::use(acc);
  }
  for (int i = 0; i < n; ++i) {
    const std::string id = "p" + std::to_string(i), acc = "acc" + std::to_string(i / 250),
                      key = "key-" + id, ip = "\"100.64.0." + std::to_string(i % 250 + 1) + "\"",
                      label = "peer-" + std::to_string(i % 250);
    long long tok = 1'900'000'000'000'000'000LL + i;
    sql << "INSERT INTO peers (id, account_id, key, ip, name, dns_label, user_id, "
           "peer_status_connected, peer_status_session_started_at) "
           "VALUES (:id, :acc, :key, :ip, :name, :label, '', true, :tok)",
        soci::use(id, "id"), soci::use(acc, "acc"), soci::use(key, "key"), soci::use(ip, "ip"),
        soci::use(label, "name"), soci::use(label, "label"), soci::use(tok, "tok");
  }
  tr.commit();
}

} // namespace

int main(int argc, char** argv) {
  std::vector<int> sizes{1000, 10000, 100000};
  std::string pg;
  std::size_t batch = 0; // 0: end_leftover_sessions() as the server calls it
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--pg-dsn") {
      pg = argv[i + 1];
    } else if (a == "--batch") {
      batch = std::stoul(argv[i + 1]);
    } else if (a == "--peers") {
      sizes.clear();
      std::stringstream ss(argv[i + 1]);
      for (std::string n; std::getline(ss, n, ',');)
        sizes.push_back(std::stoi(n));
    }
  }
  std::vector<storage::db_options> engines;
  const auto file = std::filesystem::temp_directory_path() /
                    ("bench_sweep_" + std::to_string(::getpid()) + ".db");
  engines.push_back({storage::engine::sqlite, file.string(), 1});
  if (!pg.empty())
    engines.push_back({storage::engine::postgres, pg, 1});
  std::printf("%-9s %9s %9s %12s\n", "engine", "peers", "ended", "sweep ms");
  for (const auto& db : engines) {
    for (int n : sizes) {
      seed_connected(db, n);
      storage::status_store store(db);
      const auto t = std::chrono::steady_clock::now();
      std::size_t ended = 0;
      if (batch == 0)
        ended = store.end_leftover_sessions().ended;
      else
        ended = store.end_sessions(store.connected_sessions(), batch);
      std::printf("%-9s %9d %9zu %12.1f\n", storage::to_string(db.kind), n, ended, ms_since(t));
    }
  }
  std::filesystem::remove(file);
  std::filesystem::remove(file.string() + "-wal");
  std::filesystem::remove(file.string() + "-shm");
  return 0;
}
