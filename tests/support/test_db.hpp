// Test stores: every storage test runs against a fresh SQLite file and a fresh PostgreSQL schema.
#pragma once

#include "storage/database.hpp"

#include <string>
#include <vector>

namespace nbm::test {

// A fresh, empty store per call. PostgreSQL comes from NBM_TEST_PG_DSN (a libpq DSN; the test
// script starts a throwaway server and sets it); each call gets its own schema through search_path.
// Without the variable the PostgreSQL backend is left out unless NBM_REQUIRE_PG=1, which makes its
// absence a failure.
std::vector<storage::db_options> fresh_backends(const std::string& label);
// Usage: for (const auto& opts : fresh_backends("x")) { INFO(backend_name(opts)); ... }

// One fresh store of the given kind (postgres requires NBM_TEST_PG_DSN).
storage::db_options fresh_store(storage::engine kind, const std::string& label);

bool postgres_available();

// "sqlite" / "postgres", for INFO() in loops over fresh_backends().
inline std::string backend_name(const storage::db_options& o) {
  return storage::to_string(o.kind);
}

// Directory for temporary files of this test run.
std::string temp_dir();

// Runs the SQL script at `path` (a store in NetBird's SQLite schema) on a SQLite file at `db_path`.
void load_sqlite_dump(const std::string& dump_path, const std::string& db_path);

// tests/fixtures/<name> of this repository (stores in NetBird's SQLite schema and a
// management.json, written for these tests; see tests/fixtures/README.md).
std::string fixture(const std::string& name);

} // namespace nbm::test
