// Replica liveness in the store (PostgreSQL only): the status writer's group commit records whose
// session each peer holds in the same statement as the fenced UPDATE; a survivor ends a silent
// replica's sessions fenced on exactly the recorded token, and only one survivor does it.
#include "storage/replica_store.hpp"
#include "storage/status_store.hpp"
#include "tests/support/peer_rows.hpp"
#include "tests/support/test_db.hpp"

#include <doctest/doctest.h>

#include <soci/soci.h>

#include <thread>

using namespace nbm;
using storage::replica_store;
using storage::status_op;
using storage::status_store;
using storage::status_write;

namespace {

std::vector<storage::db_options> pg_only(const std::string& label) {
  std::vector<storage::db_options> out;
  for (auto& o : test::fresh_backends(label))
    if (o.kind == storage::engine::postgres)
      out.push_back(o);
  return out;
}

std::string holder(const storage::db_options& opts, const std::string& peer) {
  soci::session sql;
  storage::open_session(sql, opts);
  std::string id, p = peer;
  soci::indicator ind = soci::i_null;
  sql << "SELECT replica_id FROM nbm_replica_sessions WHERE peer_id = :p", soci::use(p, "p"),
      soci::into(id, ind);
  return sql.got_data() && ind == soci::i_ok ? id : "";
}

} // namespace

TEST_CASE("replica store: sessions recorded with the fenced writes; a dead replica's sessions end "
          "fenced on its tokens, by one survivor") {
  for (const auto& opts : pg_only("replica_store")) {
    test::seed_peers(opts, 4);
    status_store on_a(opts, "A"), on_b(opts, "B");
    replica_store a(opts), b(opts), c(opts);
    a.enroll({"A", "a:1", "host-a", 1});
    b.enroll({"B", "b:1", "host-b", 2});
    c.enroll({"C", "c:1", "host-c", 3});
    const core::session_token t = 1'700'000'000'000'000'000;
    // p0, p1, p2 connect through B (one batch and one single write); p3 through A.
    auto landed = on_b.apply_batch(
        {{"acc1", "p0", t, status_op::connect}, {"acc1", "p1", t + 1, status_op::connect}});
    CHECK(landed == std::vector<bool>{true, true});
    CHECK(on_b.apply_batch({{"acc1", "p2", t + 2, status_op::connect}}) == std::vector<bool>{true});
    CHECK(on_a.apply_batch({{"acc1", "p3", t + 3, status_op::connect}}) == std::vector<bool>{true});
    CHECK(holder(opts, "p0") == "B");
    CHECK(holder(opts, "p3") == "A");
    CHECK(b.held("B") == 3);
    // p1 moves to A (newer token): the record follows. A stale connect of B does not take it back.
    CHECK(on_a.apply_batch({{"acc1", "p1", t + 10, status_op::connect}}) ==
          std::vector<bool>{true});
    CHECK(holder(opts, "p1") == "A");
    CHECK(on_b.apply_batch({{"acc1", "p1", t + 5, status_op::connect}}) ==
          std::vector<bool>{false});
    CHECK(holder(opts, "p1") == "A");
    // p2 disconnects cleanly on B: its record goes.
    CHECK(on_b.apply_batch({{"acc1", "p2", t + 2, status_op::disconnect}}) ==
          std::vector<bool>{true});
    CHECK(holder(opts, "p2").empty());
    CHECK(b.held("B") == 1);
    // A record B still holds while the peer moved on (written as a race could leave it): the
    // sweep must not touch the newer session.
    test::exec_sql(opts, "UPDATE peers SET peer_status_session_started_at = " +
                             std::to_string(t + 20) + " WHERE id = 'p3'");
    test::exec_sql(opts, "UPDATE nbm_replica_sessions SET replica_id = 'B' WHERE peer_id = 'p3'");

    // Nobody is silent past a 60 s lease.
    CHECK_FALSE(a.sweep_one("A", 60000));
    // B stops heartbeating; A and C heartbeat.
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    CHECK(a.heartbeat("A"));
    CHECK(c.heartbeat("C"));
    CHECK(a.alive_replicas(300) == 2);
    // Two survivors race for B: exactly one ends its sessions.
    std::optional<storage::dead_replica> by_a, by_c;
    std::thread ta([&] { by_a = a.sweep_one("A", 300); });
    std::thread tc([&] { by_c = c.sweep_one("C", 300); });
    ta.join();
    tc.join();
    REQUIRE(static_cast<bool>(by_a) != static_cast<bool>(by_c));
    const auto& dead = by_a ? *by_a : *by_c;
    CHECK(dead.id == "B");
    CHECK(dead.silent_ms >= 300);
    CHECK(dead.recorded == 2); // p0 and the stale p3 record
    REQUIRE(dead.ended.size() == 1);
    CHECK(dead.ended[0].peer_id == "p0");
    CHECK(dead.ended[0].token == t);
    CHECK_FALSE(test::read_status(opts, "p0").connected);
    CHECK(test::read_status(opts, "p3").connected); // the newer session stays
    CHECK(test::read_status(opts, "p3").token == t + 20);
    CHECK(test::read_status(opts, "p1").connected); // A's
    // B's row is gone: its next heartbeat says so; it enrolls again.
    CHECK_FALSE(b.heartbeat("B"));
    b.enroll({"B", "b:1", "host-b", 2});
    CHECK(b.heartbeat("B"));
    // A clean shutdown resigns: the next sweep takes it at once.
    c.resign("C");
    auto gone = a.sweep_one("A", 60000);
    REQUIRE(gone);
    CHECK(gone->id == "C");
  }
}

TEST_CASE("replica store: SQLite has none of it") {
  storage::db_options o = test::fresh_store(storage::engine::sqlite, "replica_sqlite");
  CHECK_THROWS_AS(replica_store{o}, storage::store_error);
}
