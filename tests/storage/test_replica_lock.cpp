// The presence lock of PostgreSQL replicas (storage/replica_lock): a starting process is "alone"
// only when no other process serving the same store holds the lock; a process that dies (its
// connection gone) no longer holds it; a dropped connection is replaced and the hold taken again.
#include "storage/replica_lock.hpp"
#include "tests/support/test_db.hpp"

#include <doctest/doctest.h>
#include <soci/soci.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <thread>

using namespace nbm;
using storage::replica_presence;

namespace {

template <class Pred>
bool eventually(Pred p, std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (p())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return p();
}

// PostgreSQL only; without it the cases pass empty, unless NBM_REQUIRE_PG=1 (then fresh_store
// fails them).
bool have_pg() {
  const char* require = std::getenv("NBM_REQUIRE_PG");
  return test::postgres_available() || (require && std::string(require) == "1");
}

} // namespace

TEST_CASE("replica presence: alone only when no live replica holds the lock") {
  if (!have_pg())
    return;
  const auto db = test::fresh_store(storage::engine::postgres, "presence");
  const auto elsewhere = test::fresh_store(storage::engine::postgres, "presence_other");
  auto a = std::make_unique<replica_presence>(db);
  CHECK(a->alone());                         // nobody else: A may sweep
  CHECK_FALSE(replica_presence(db).alone()); // while A sweeps, a second starter is not alone
  a->join(std::chrono::milliseconds(50));
  CHECK(a->holding());
  {
    replica_presence b(db);
    CHECK_FALSE(b.alone()); // A is alive
    b.join(std::chrono::milliseconds(50));
    CHECK(b.holding()); // shared holds side by side
  }
  // Another store (schema) of the same database does not see A.
  CHECK(replica_presence(elsewhere).alone());
  // A dies: its connection, and its hold, are gone.
  a.reset();
  CHECK(replica_presence(db).alone());
}

TEST_CASE("replica presence: a dropped lock connection is replaced and the hold taken again") {
  if (!have_pg())
    return;
  const auto db = test::fresh_store(storage::engine::postgres, "presence_drop");
  replica_presence a(db);
  REQUIRE(a.alone());
  a.join(std::chrono::milliseconds(50));
  REQUIRE(a.holding());
  {
    soci::session sql;
    storage::open_session(sql, db);
    int n = 0;
    sql << "SELECT COUNT(pg_terminate_backend(l.pid)) FROM pg_locks l WHERE l.locktype = "
           "'advisory' AND l.pid <> pg_backend_pid()",
        soci::into(n);
    REQUIRE(n >= 1);
  }
  // Until the keeper notices, a starter would be alone; afterwards it is not.
  CHECK(eventually([&] { return a.holding() && !replica_presence(db).alone(); }));
}
