#include "storage/replica_lock.hpp"

#include <soci/soci.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace nbm::storage {

namespace {

// The advisory lock's first key ("NBM1"); the second is the hash of the store's schema.
constexpr int lock_class = 0x4e424d31;

bool ask(soci::session& sql, const char* fn) {
  int got = 0;
  int cls = lock_class;
  sql << std::string("SELECT CASE WHEN ") + fn +
             "(:cls, hashtext(COALESCE(current_schema(), ''))) THEN 1 ELSE 0 END",
      soci::use(cls, "cls"), soci::into(got);
  return got == 1;
}

} // namespace

struct replica_presence::impl {
  db_options opts;
  std::mutex mu; // guards sql and the hold flags
  std::unique_ptr<soci::session> sql;
  bool exclusive = false;
  std::atomic<bool> shared{false};
  std::condition_variable cv;
  bool stopping = false;
  std::thread keeper;
  bool reported_down = false;

  void open() {
    auto fresh = std::make_unique<soci::session>();
    open_session(*fresh, opts);
    // The database server notices a replica whose host vanished (no FIN: power loss, a partition)
    // within about half a minute instead of the system's two hours, and lets its hold go.
    try {
      *fresh << "SET tcp_keepalives_idle = 10";
      *fresh << "SET tcp_keepalives_interval = 5";
      *fresh << "SET tcp_keepalives_count = 3";
    } catch (const std::exception& e) {
      spdlog::debug("replica presence: keepalive settings refused: {}", e.what());
    }
    sql = std::move(fresh);
  }

  // Under mu: makes sure the shared hold is in place (reconnecting when the session was dropped).
  void keep() {
    try {
      const bool alive = sql && session_alive(*sql, engine::postgres);
      if (alive && shared)
        return;
      if (!alive) {
        if (shared)
          spdlog::warn("replica presence: the lock's connection was dropped, reconnecting");
        shared = false;
        sql.reset();
        open();
      }
      shared = ask(*sql, "pg_try_advisory_lock_shared");
      if (shared && reported_down)
        spdlog::info("replica presence: holding the presence lock again");
      reported_down = !shared;
    } catch (const std::exception& e) {
      shared = false;
      sql.reset();
      if (!reported_down)
        spdlog::warn("replica presence: cannot hold the presence lock, retrying: {}", e.what());
      reported_down = true;
    }
  }
};

replica_presence::replica_presence(const db_options& opts) : impl_(std::make_unique<impl>()) {
  if (opts.kind != engine::postgres)
    throw store_error("replica presence is for PostgreSQL stores only");
  impl_->opts = opts;
  impl_->open();
}

replica_presence::~replica_presence() {
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->keeper.joinable())
    impl_->keeper.join();
}

bool replica_presence::alone() {
  std::lock_guard<std::mutex> lk(impl_->mu);
  if (!impl_->sql)
    impl_->open();
  impl_->exclusive = ask(*impl_->sql, "pg_try_advisory_lock");
  return impl_->exclusive;
}

void replica_presence::join(std::chrono::milliseconds check_every) {
  std::unique_lock<std::mutex> lk(impl_->mu);
  if (impl_->exclusive && impl_->sql) {
    int cls = lock_class, done = 0;
    try {
      *impl_->sql
          << "SELECT CASE WHEN pg_advisory_unlock(:cls, hashtext(COALESCE(current_schema(), ''))) "
             "THEN 1 ELSE 0 END",
          soci::use(cls, "cls"), soci::into(done);
    } catch (const std::exception&) {
      impl_->sql.reset(); // the connection is gone, and with it the exclusive hold
    }
    impl_->exclusive = false;
  }
  impl_->keep();
  if (impl_->keeper.joinable())
    return;
  auto* m = impl_.get();
  impl_->keeper = std::thread([m, check_every] {
    std::unique_lock<std::mutex> lk(m->mu);
    while (!m->stopping) {
      m->cv.wait_for(lk, check_every, [m] { return m->stopping; });
      if (!m->stopping)
        m->keep();
    }
  });
}

bool replica_presence::holding() const {
  return impl_->shared;
}

} // namespace nbm::storage
