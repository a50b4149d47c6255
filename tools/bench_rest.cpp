// REST latency: GET /api/peers (and /api/groups, /api/policies), a group update (PUT
// /api/groups/{id}, a mutation through the account actor), a peer's rename (PUT /api/peers/{id})
// and peers deleted (DELETE /api/peers/{id}) over HTTP on 127.0.0.1 against an
// account of NetBird's benchmark shape in a real store (SQLite file; PostgreSQL with --pg-dsn),
// authenticated with a PAT, served as the server serves it (account actors, loader, directory).
// Prints p50 / p99 per size.
//
//   build/tools/bench_rest [--runs N] [--pg-dsn DSN] [--sizes 500/100,5000/200]
#include "actors/account_actor.hpp"
#include "actors/directory.hpp"
#include "actors/status_writer.hpp"
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
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <unistd.h>

using namespace nbm;
using clk = std::chrono::steady_clock;

namespace {

struct result {
  double p50 = 0, p99 = 0;
  std::size_t bytes = 0;
};

enum class method { get, put, del };

// GET `path(i)`, PUT `body(i)` to it, or DELETE it (`runs` + 2 requests, the first two for
// warm-up).
result measure(int port, const std::string& pat, const std::function<std::string(int)>& path,
               int runs, method how, const std::function<std::string(int)>& body = {}) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(60);
  httplib::Headers h{{"Authorization", "Token " + pat}};
  std::vector<double> ms;
  result r;
  for (int i = 0; i < runs + 2; ++i) {
    const auto t0 = clk::now();
    auto res = how == method::put   ? cli.Put(path(i), h, body(i), "application/json")
               : how == method::del ? cli.Delete(path(i), h)
                                    : cli.Get(path(i), h);
    const double d = std::chrono::duration<double, std::milli>(clk::now() - t0).count();
    if (!res || res->status != 200) {
      std::fprintf(stderr, "%s failed: %d\n", path(i).c_str(), res ? res->status : -1);
      std::exit(1);
    }
    r.bytes = res->body.size();
    if (i >= 2) // warm-up
      ms.push_back(d);
  }
  std::sort(ms.begin(), ms.end());
  r.p50 = ms[ms.size() / 2];
  r.p99 = ms[std::min(ms.size() - 1, static_cast<std::size_t>(ms.size() * 0.99))];
  return r;
}

} // namespace

int main(int argc, char** argv) {
  bench::bench_args args;
  args.runs = 30;
  args.sizes = {{500, 100}, {5000, 200}};
  if (!bench::parse_bench_args(argc, argv, args, 3))
    return 2;
  const int runs = args.runs;
  const std::string pg_dsn = args.pg_dsn;
  const auto sizes = args.sizes;
  std::vector<storage::db_options> stores;
  const auto dir =
      std::filesystem::temp_directory_path() / ("nbm-bench-rest-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::printf("REST lists over HTTP on 127.0.0.1, PAT auth (%d requests each after warm-up)\n",
              runs);
  std::printf("%9s %7s %7s | %-22s | %9s %9s %10s\n", "store", "peers", "groups", "request",
              "p50 ms", "p99 ms", "bytes");
  for (const bool pg : {false, true}) {
    if (pg && pg_dsn.empty())
      continue;
    for (auto [peers, groups] : sizes) {
      storage::db_options db;
      db.kind = pg ? storage::engine::postgres : storage::engine::sqlite;
      db.target = pg ? pg_dsn : (dir / ("store-" + std::to_string(peers) + ".db")).string();
      soci::session sql;
      storage::open_session(sql, db);
      storage::ensure_schema(sql, db.kind);
      for (const char* t : {"personal_access_tokens", "users", "group_peers", "groups", "routes",
                            "policy_rules", "policies", "peers", "accounts"})
        sql << std::string("DELETE FROM ") + t;
      auto acc = bench::bench_account(peers, groups);
      core::user owner;
      owner.id = "owner";
      owner.account_id = acc.id;
      owner.role = "owner";
      owner.issued = "api";
      acc.users.push_back(owner);
      const auto pat = crypto::make_pat();
      core::personal_access_token t;
      t.id = "token";
      t.user_id = owner.id;
      t.name = "bench";
      t.hashed_token = pat.hashed;
      t.created_by = owner.id;
      t.expiration_date = "2099-01-01 00:00:00+00:00";
      acc.tokens.push_back(t);
      storage::account_store(sql, db.kind).insert_account_tree(acc);

      caf::actor_system_config cfg;
      caf::actor_system sys{cfg};
      auto writer = actors::spawn_status_writer(sys, {db, 1, 1024});
      auto loader = actors::spawn_account_loader(sys, {db, std::chrono::milliseconds(1000)});
      actors::directory_config dc;
      dc.writer = writer;
      dc.loader = loader;
      auto directory = actors::spawn_peer_directory(sys, dc);
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
        const auto print = [&](const std::string& what, const result& r) {
          std::printf("%9s %7d %7d | %-22s | %9.2f %9.2f %10zu\n", pg ? "postgres" : "sqlite",
                      peers, groups, what.c_str(), r.p50, r.p99, r.bytes);
          std::fflush(stdout);
        };
        for (const char* path : {"/api/peers", "/api/groups", "/api/policies"})
          print(std::string("GET ") + path,
                measure(
                    http.port(), pat.plain, [&](int) { return std::string(path); }, runs,
                    method::get));
        // A rename of a group with its members: validated, written and read back in the actor.
        const auto& g = acc.groups.at(1);
        print("PUT /api/groups/{id}",
              measure(
                  http.port(), pat.plain, [&](int) { return "/api/groups/" + g.id; }, runs,
                  method::put,
                  [&](int i) {
                    return nlohmann::json{{"name", "bench-" + std::to_string(i)},
                                          {"peers", g.peers}}
                        .dump();
                  }));
        // A peer renamed (its DNS label follows), then peers deleted: a different peer each time,
        // from the front of the account's peers (every later peer moves up one place).
        print("PUT /api/peers/{id}",
              measure(
                  http.port(), pat.plain, [&](int i) { return "/api/peers/" + acc.peers.at(i).id; },
                  runs, method::put,
                  [&](int i) {
                    return nlohmann::json{{"name", "renamed-" + std::to_string(i)},
                                          {"ssh_enabled", false},
                                          {"login_expiration_enabled", false},
                                          {"inactivity_expiration_enabled", false}}
                        .dump();
                  }));
        print("DELETE /api/peers/{id}",
              measure(
                  http.port(), pat.plain, [&](int i) { return "/api/peers/" + acc.peers.at(i).id; },
                  runs, method::del));
        http.stop();
      }
      caf::anon_send_exit(directory, caf::exit_reason::user_shutdown);
      caf::anon_send_exit(loader, caf::exit_reason::user_shutdown);
      caf::anon_send_exit(writer, caf::exit_reason::user_shutdown);
    }
  }
  std::filesystem::remove_all(dir);
  return 0;
}
