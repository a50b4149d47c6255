// Reading and seeding peer status rows in tests, the same way on SQLite and PostgreSQL.
#pragma once

#include "core/session_token.hpp"
#include "storage/database.hpp"

#include <string>

namespace nbm::test {

struct peer_status_row {
  bool connected = false;
  core::session_token token = 0;
  bool login_expired = false;
  std::string last_seen; // as text, "" when NULL
};

// Creates the store's schema (storage::ensure_schema) and inserts `n` peers p0..p{n-1} in account
// "acc1".
void seed_peers(const storage::db_options& opts, int n, const std::string& account = "acc1");

peer_status_row read_status(const storage::db_options& opts, const std::string& peer_id);

// Runs one SQL statement on its own session.
void exec_sql(const storage::db_options& opts, const std::string& statement);

// The database's own clock, as epoch seconds.
double db_now(const storage::db_options& opts);

// Parses "YYYY-MM-DD HH:MM:SS[.frac][+hh:mm|Z]" into epoch seconds (UTC).
double parse_db_time(const std::string& text);

} // namespace nbm::test
