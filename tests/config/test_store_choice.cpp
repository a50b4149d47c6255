// Which store NetBird opens: StoreConfig.Engine, NETBIRD_STORE_ENGINE, sqlite; DSNs and files.
#include "config/config.hpp"
#include "tests/config/config_env.hpp"
#include "tests/support/test_db.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

using namespace nbm;
using test::env_of;
using test::error_of;
using test::no_env;

namespace {

config::management_config with(const std::string& engine, const std::string& datadir) {
  config::management_config c;
  c.store.engine = engine;
  c.datadir = datadir;
  return c;
}

} // namespace

TEST_CASE("store choice: the engine table") {
  const std::string dd = "/var/lib/netbird";
  const std::string pg_dsn = "host=db dbname=nb";
  struct row {
    const char* config_engine;
    std::map<std::string, std::string> env;
    const char* engine; // expected; nullptr = error
  };
  const row rows[] = {
      // default
      {"", {}, "sqlite"},
      // env when the config says nothing; lower-cased; unknown values mean sqlite
      {"",
       {{"NETBIRD_STORE_ENGINE", "postgres"}, {"NB_STORE_ENGINE_POSTGRES_DSN", pg_dsn}},
       "postgres"},
      {"",
       {{"NETBIRD_STORE_ENGINE", "POSTGRES"}, {"NB_STORE_ENGINE_POSTGRES_DSN", pg_dsn}},
       "postgres"},
      {"", {{"NETBIRD_STORE_ENGINE", "sqlite"}}, "sqlite"},
      {"", {{"NETBIRD_STORE_ENGINE", "oracle"}}, "sqlite"},
      {"", {{"NETBIRD_STORE_ENGINE", ""}}, "sqlite"},
      {"", {{"NETBIRD_STORE_ENGINE", "jsonfile"}}, "sqlite"},
      {"", {{"NETBIRD_STORE_ENGINE", "mysql"}}, nullptr},
      // the config field beats the environment
      {"sqlite", {{"NETBIRD_STORE_ENGINE", "postgres"}}, "sqlite"},
      {"postgres",
       {{"NETBIRD_STORE_ENGINE", "sqlite"}, {"NB_STORE_ENGINE_POSTGRES_DSN", pg_dsn}},
       "postgres"},
      // the config field is taken as written (NetBird does not lower-case it)
      {"Postgres", {{"NB_STORE_ENGINE_POSTGRES_DSN", pg_dsn}}, nullptr},
      {"oracle", {}, nullptr},
      {"mysql", {}, nullptr},
      {"jsonfile", {}, nullptr},
  };
  for (const auto& r : rows) {
    INFO("config engine '" << r.config_engine << "'");
    for (const auto& kv : r.env) // no structured bindings: clang 14 cannot capture them (INFO)
      INFO(kv.first << "=" << kv.second);
    const auto cfg = with(r.config_engine, dd);
    if (!r.engine) {
      CHECK_THROWS_AS(config::resolve_store(cfg, env_of(r.env)), config::config_error);
      continue;
    }
    const auto s = config::resolve_store(cfg, env_of(r.env));
    CHECK(s.engine == r.engine);
    CHECK((s.kind == config::store_engine::postgres) == (std::string(r.engine) == "postgres"));
    CHECK(s.target == (std::string(r.engine) == "sqlite" ? dd + "/store.db" : pg_dsn));
  }
}

TEST_CASE("store choice: messages for what netbird-mgmt does not open") {
  CHECK(error_of([] {
          config::resolve_store(with("mysql", "/d"), no_env());
        }).find("not supported by netbird-mgmt") != std::string::npos);
  CHECK(error_of([] {
          config::resolve_store(with("oracle", "/d"), no_env());
        }).find("unsupported kind of store: oracle") != std::string::npos);
  const auto e = error_of([] { config::resolve_store(with("postgres", "/d"), no_env()); });
  CHECK(e.find("NB_STORE_ENGINE_POSTGRES_DSN") != std::string::npos);
  CHECK(e.find("not set") != std::string::npos);
}

TEST_CASE("store choice: the PostgreSQL DSN") {
  const auto pg = with("postgres", "/d");
  // NB_ first, the legacy NETBIRD_ name as a fallback.
  CHECK(config::resolve_store(pg, env_of({{"NB_STORE_ENGINE_POSTGRES_DSN", "host=new"},
                                          {"NETBIRD_STORE_ENGINE_POSTGRES_DSN", "host=old"}}))
            .target == "host=new");
  CHECK(config::resolve_store(pg, env_of({{"NETBIRD_STORE_ENGINE_POSTGRES_DSN", "host=old"}}))
            .target == "host=old");
  CHECK(config::resolve_store(pg, env_of({{"NB_STORE_ENGINE_POSTGRES_DSN",
                                           "postgres://u:p@db:5432/nb?sslmode=disable"}}))
            .target == "postgres://u:p@db:5432/nb?sslmode=disable");
  // Set but empty: NetBird takes the set variable (no fallback); an empty DSN is refused here.
  const auto e = error_of([&] {
    config::resolve_store(pg, env_of({{"NB_STORE_ENGINE_POSTGRES_DSN", ""},
                                      {"NETBIRD_STORE_ENGINE_POSTGRES_DSN", "host=old"}}));
  });
  CHECK(e.find("NB_STORE_ENGINE_POSTGRES_DSN is set but empty") != std::string::npos);
}

TEST_CASE("store choice: the SQLite file") {
  const auto c = with("", "/var/lib/netbird/");
  CHECK(config::resolve_store(c, no_env()).target == "/var/lib/netbird/store.db");
  // NB_STORE_ENGINE_SQLITE_FILE: relative to the datadir, or absolute; empty means unset.
  CHECK(config::resolve_store(c, env_of({{"NB_STORE_ENGINE_SQLITE_FILE", "other.db"}})).target ==
        "/var/lib/netbird/other.db");
  CHECK(config::resolve_store(c, env_of({{"NB_STORE_ENGINE_SQLITE_FILE", "sub/x.db"}})).target ==
        "/var/lib/netbird/sub/x.db");
  CHECK(config::resolve_store(c, env_of({{"NB_STORE_ENGINE_SQLITE_FILE", "/tmp/x.db"}})).target ==
        "/tmp/x.db");
  CHECK(config::resolve_store(c, env_of({{"NB_STORE_ENGINE_SQLITE_FILE", ""}})).target ==
        "/var/lib/netbird/store.db");
  // A query part is split off.
  const auto q = config::resolve_store(
      c, env_of({{"NB_STORE_ENGINE_SQLITE_FILE", "store.db?_busy_timeout=5000&mode=rwc"}}));
  CHECK(q.target == "/var/lib/netbird/store.db");
  CHECK(q.sqlite_query == "_busy_timeout=5000&mode=rwc");
  CHECK(config::resolve_store(c, no_env()).sqlite_query.empty());
  // No datadir: relative to the working directory, as filepath.Join("", "store.db").
  CHECK(config::resolve_store(with("", ""), no_env()).target == "store.db");
}

TEST_CASE("store choice: a legacy store.json") {
  namespace fs = std::filesystem;
  const auto dir = fs::path(test::temp_dir()) / "legacy-json-store";
  fs::create_directories(dir);
  std::ofstream(dir / "store.json") << "{}";
  const auto c = with("", dir.string());
  // NetBird would migrate it on this start; we refuse with an explanation.
  CHECK(error_of([&] { config::resolve_store(c, no_env()); }).find("store.json") !=
        std::string::npos);
  // Not when the engine came from the environment (NetBird does not look then) ...
  CHECK(config::resolve_store(c, env_of({{"NETBIRD_STORE_ENGINE", "sqlite"}})).engine == "sqlite");
  // ... nor once store.db exists.
  std::ofstream(dir / "store.db") << "";
  CHECK(config::resolve_store(c, no_env()).target == (dir / "store.db").string());
  // Engine jsonfile with a store.json: NetBird's pointer to its migration docs.
  CHECK(error_of([&] {
          config::resolve_store(with("jsonfile", dir.string()), no_env());
        }).find("jsonfile is not supported") != std::string::npos);
}
