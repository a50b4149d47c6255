#include "tests/support/test_db.hpp"

#include <soci/soci.h>
#include <sqlite3.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace fs = std::filesystem;

namespace nbm::test {

namespace {

std::atomic<int> counter{0};

std::string unique_suffix(const std::string& label) {
  std::string clean;
  for (char c : label)
    clean +=
        (std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '_');
  return clean + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
}

} // namespace

std::string temp_dir() {
  static const std::string dir = [] {
    const char* base = std::getenv("NBM_TEST_TMPDIR");
    fs::path p = fs::path(base ? base : fs::temp_directory_path().string()) /
                 ("nbm-test-" + std::to_string(::getpid()));
    fs::create_directories(p);
    return p.string();
  }();
  return dir;
}

bool postgres_available() {
  const char* dsn = std::getenv("NBM_TEST_PG_DSN");
  return dsn && *dsn;
}

storage::db_options fresh_store(storage::engine kind, const std::string& label) {
  storage::db_options o;
  o.kind = kind;
  auto name = unique_suffix(label);
  if (kind == storage::engine::sqlite) {
    o.target = (fs::path(temp_dir()) / (name + ".db")).string();
    return o;
  }
  if (!postgres_available())
    throw storage::store_error("NBM_TEST_PG_DSN is not set: no PostgreSQL for this test");
  std::string base = std::getenv("NBM_TEST_PG_DSN");
  {
    soci::session sql;
    storage::db_options admin{storage::engine::postgres, base, 1};
    storage::open_session(sql, admin);
    sql << "CREATE SCHEMA s_" + name;
  }
  o.target = base + " options='-c search_path=s_" + name + "'";
  return o;
}

std::vector<storage::db_options> fresh_backends(const std::string& label) {
  std::vector<storage::db_options> out;
  out.push_back(fresh_store(storage::engine::sqlite, label));
  const char* require = std::getenv("NBM_REQUIRE_PG");
  if (postgres_available() || (require && std::string(require) == "1"))
    out.push_back(fresh_store(storage::engine::postgres, label));
  return out;
}

void load_sqlite_dump(const std::string& dump_path, const std::string& db_path) {
  std::ifstream in(dump_path);
  if (!in)
    throw std::runtime_error("cannot read " + dump_path);
  std::stringstream ss;
  ss << in.rdbuf();
  sqlite3* db = nullptr;
  if (sqlite3_open(db_path.c_str(), &db) != SQLITE_OK)
    throw std::runtime_error("cannot open " + db_path);
  char* err = nullptr;
  int rc = sqlite3_exec(db, ss.str().c_str(), nullptr, nullptr, &err);
  std::string msg = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  if (rc != SQLITE_OK)
    throw std::runtime_error("loading " + dump_path + ": " + msg);
}

std::string fixture(const std::string& name) {
  return (fs::path(NBM_SOURCE_ROOT) / "tests" / "fixtures" / name).string();
}

} // namespace nbm::test
