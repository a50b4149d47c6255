#include "storage/database.hpp"

#include <soci/connection-pool.h>
#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>

namespace nbm::storage {

const char* to_string(engine e) {
  return e == engine::postgres ? "postgres" : "sqlite";
}

void open_session(soci::session& sql, const db_options& opts) {
  try {
    if (opts.kind == engine::sqlite) {
      // busy timeout as NetBird's default (_busy_timeout=30000), in seconds for SOCI.
      sql.open(soci::sqlite3, "db=\"" + opts.target + "\" timeout=30 shared_cache=false");
      std::string mode;
      sql << "PRAGMA journal_mode=WAL", soci::into(mode);
      sql << "PRAGMA synchronous=NORMAL";
      sql << "PRAGMA foreign_keys=OFF"; // NetBird's dumps carry FKs that gorm does not enforce on
                                        // SQLite
    } else {
      sql.open(soci::postgresql, opts.target);
      sql << "SET client_min_messages TO WARNING"; // no NOTICEs for IF NOT EXISTS on stderr
    }
  } catch (const std::exception& e) {
    throw store_error(std::string("cannot open ") + to_string(opts.kind) + " store '" +
                      opts.target + "': " + e.what());
  }
}

bool session_alive(soci::session& sql, engine kind) {
  if (kind != engine::postgres)
    return true;
  try {
    int one = 0;
    sql << "SELECT 1", soci::into(one);
    return one == 1;
  } catch (const std::exception&) {
    return false;
  }
}

worker_session::worker_session(db_options opts) : opts_(std::move(opts)) {}

worker_session::~worker_session() = default;

soci::session& worker_session::get() {
  const auto now = std::chrono::steady_clock::now();
  if (sql_ && opts_.kind == engine::postgres && now - used_ > std::chrono::seconds(1) &&
      !session_alive(*sql_, opts_.kind))
    sql_.reset();
  if (!sql_) {
    auto fresh = std::make_unique<soci::session>();
    open_session(*fresh, opts_);
    sql_ = std::move(fresh);
  }
  used_ = now;
  return *sql_;
}

void worker_session::reset() {
  sql_.reset();
}

bool worker_session::alive() {
  return sql_ && session_alive(*sql_, opts_.kind);
}

bool unreachable(worker_session& s) {
  return !s.alive();
}

database::database(db_options opts)
    : opts_(std::move(opts)), pool_(std::make_unique<soci::connection_pool>(opts_.pool_size)) {
  if (opts_.pool_size == 0)
    throw store_error("database pool size must be at least 1");
  for (std::size_t i = 0; i < opts_.pool_size; ++i)
    open_session(pool_->at(i), opts_);
}

database::~database() = default;

} // namespace nbm::storage
