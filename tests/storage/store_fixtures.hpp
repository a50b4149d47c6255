// Shared by the storage tests: the stores of tests/fixtures (NetBird's SQLite schema, written for
// these tests) loaded as migrated stores of either engine.
#pragma once

#include "storage/account_store.hpp"
#include "storage/schema.hpp"
#include "tests/support/test_db.hpp"

#include <doctest/doctest.h>
#include <soci/soci.h>

#include <algorithm>
#include <string>
#include <vector>

namespace nbm::test {

// The account of store_basic.sql and store_login_expiry.sql.
inline const std::string fixture_account = "7d4f0c1e-2b3a-4c5d-9e8f-102132435465";

// A fixture store (SQL in NetBird's SQLite schema) as a migrated store of `target`'s engine: SQLite
// directly, PostgreSQL by copy_store from a migrated SQLite staging file.
inline void load_fixture(const std::string& dump, const storage::db_options& target) {
  if (target.kind == storage::engine::sqlite) {
    load_sqlite_dump(fixture(dump), target.target);
    soci::session sql;
    storage::open_session(sql, target);
    storage::ensure_schema(sql, target.kind);
    return;
  }
  auto staging = fresh_store(storage::engine::sqlite, "staging");
  load_fixture(dump, staging);
  soci::session src, dst;
  storage::open_session(src, staging);
  storage::open_session(dst, target);
  storage::ensure_schema(dst, target.kind);
  CHECK(storage::copy_store(src, storage::engine::sqlite, dst, target.kind) > 0);
}

inline core::account load_account(const storage::db_options& opts, const std::string& id) {
  soci::session sql;
  storage::open_session(sql, opts);
  storage::account_store st(sql, opts.kind);
  auto a = st.load_account(id);
  REQUIRE(a.has_value());
  return *a;
}

inline bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

} // namespace nbm::test
