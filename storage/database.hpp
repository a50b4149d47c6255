// A connection pool to one NetBird store: SQLite (a file) or PostgreSQL (a libpq DSN).
// SOCI types stay out of this header's users where they can; storage/*.cpp include SOCI.
#pragma once

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>

namespace soci {
class connection_pool;
class session;
} // namespace soci

namespace nbm::storage {

enum class engine { sqlite, postgres };

const char* to_string(engine e);

struct db_options {
  engine kind = engine::sqlite;
  // sqlite: path of the database file; postgres: a libpq keyword/value DSN or a postgres:// URL.
  std::string target;
  // Sessions in the pool. SQLite is single-writer: more than a few only adds lock waits.
  std::size_t pool_size = 4;
};

// Thrown for any failure opening or using the store; the message names what failed.
struct store_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class database {
public:
  explicit database(db_options opts);
  ~database();
  database(const database&) = delete;
  database& operator=(const database&) = delete;

  engine kind() const { return opts_.kind; }
  const db_options& options() const { return opts_; }
  soci::connection_pool& pool() { return *pool_; }

private:
  db_options opts_;
  std::unique_ptr<soci::connection_pool> pool_;
};

// Opens a session for `opts` outside any pool (for single-threaded tools and tests).
void open_session(soci::session& sql, const db_options& opts);

} // namespace nbm::storage
