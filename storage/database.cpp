#include "storage/database.hpp"

#include <soci/connection-pool.h>
#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>

namespace nbm::storage {

const char* to_string(engine e) {
  return e == engine::postgres ? "postgres" : "sqlite";
}

namespace {

// A libpq DSN as it may be named in an error or a log line: the password masked, in keyword/value
// form (password=..., quoted or not) and in a URL (postgres://user:password@host).
std::string redacted(const std::string& dsn) {
  std::string out = dsn;
  const auto scheme = out.find("://");
  if (scheme != std::string::npos) {
    const auto at = out.find('@', scheme + 3);
    const auto colon = out.find(':', scheme + 3);
    if (at != std::string::npos && colon != std::string::npos && colon < at)
      out.replace(colon + 1, at - colon - 1, "***");
  }
  for (std::size_t pos = out.find("password"); pos != std::string::npos;
       pos = out.find("password", pos + 1)) {
    auto v = pos + 8;
    while (v < out.size() && out[v] == ' ')
      ++v;
    if (v >= out.size() || out[v] != '=')
      continue;
    ++v;
    while (v < out.size() && out[v] == ' ')
      ++v;
    auto end = v;
    if (end < out.size() && out[end] == '\'') {
      for (++end; end < out.size() && out[end] != '\''; ++end)
        if (out[end] == '\\')
          ++end;
      end = std::min(out.size(), end + 1);
    } else {
      while (end < out.size() && out[end] != ' ' && out[end] != '&')
        ++end;
    }
    out.replace(v, end - v, "***");
  }
  return out;
}

} // namespace

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
                      (opts.kind == engine::postgres ? redacted(opts.target) : opts.target) +
                      "': " + e.what());
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
      !session_alive(*sql_, opts_.kind)) {
    attached_.reset();
    sql_.reset();
  }
  if (!sql_) {
    auto fresh = std::make_unique<soci::session>();
    open_session(*fresh, opts_);
    sql_ = std::move(fresh);
  }
  used_ = now;
  return *sql_;
}

void worker_session::reset() {
  attached_.reset();
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
