// A connection pool to one NetBird store: SQLite (a file) or PostgreSQL (a libpq DSN).
// SOCI types stay out of this header's users where they can; storage/*.cpp include SOCI.
#pragma once

#include <chrono>
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

// Whether a session still reaches its database: one trivial query on PostgreSQL (a connection the
// server or the network dropped fails it); SQLite sessions always do.
bool session_alive(soci::session& sql, engine kind);

// What a user of a worker_session keeps on it from one use to the next (prepared statements bound
// to that session): the worker_session destroys it before the session it was made on.
class session_attachment {
public:
  virtual ~session_attachment() = default;
};

// The session of a long-lived store worker (an actor on a thread of its own): opened on first use,
// reopened after reset() (call it when a use failed), and on PostgreSQL checked with
// session_alive() before a use that follows more than a second idle, so a connection dropped
// meanwhile (a database restart, a proxy timeout) is replaced before any write instead of failing
// one.
class worker_session {
public:
  explicit worker_session(db_options opts);
  ~worker_session();
  worker_session(const worker_session&) = delete;
  worker_session& operator=(const worker_session&) = delete;

  soci::session& get(); // throws store_error when the database cannot be reached
  void reset();
  // What is kept on the current session (empty after a reset or a session replaced).
  std::unique_ptr<session_attachment>& attachment() { return attached_; }
  // Whether the current session (none: false) still reaches the database; opens nothing.
  bool alive();
  engine kind() const { return opts_.kind; }

private:
  db_options opts_;
  std::unique_ptr<soci::session> sql_;
  std::unique_ptr<session_attachment> attached_; // after sql_: destroyed before it
  std::chrono::steady_clock::time_point used_{};
};

// The one place that tells "the database cannot be reached" (refused, dropped, not answering) from
// other failures: after a use of `s` failed, its session is gone (it could not be opened) or no
// longer answers a trivial query. Callers answer such failures "unavailable, try again" (gRPC
// UNAVAILABLE, HTTP 503) rather than as internal errors. Call it before reset().
bool unreachable(worker_session& s);

} // namespace nbm::storage
