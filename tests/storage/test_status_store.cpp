// The database half of the session fence: single fenced UPDATEs and group-committed batches, on
// SQLite and PostgreSQL.
#include "storage/status_store.hpp"
#include "tests/support/peer_rows.hpp"
#include "tests/support/test_db.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <random>
#include <thread>

using namespace nbm;
using storage::status_op;
using storage::status_store;
using storage::status_write;

TEST_CASE("fence: matched disconnect lands, then the session is gone") {
  for (const auto& opts : test::fresh_backends("fence_match")) {
    INFO(test::backend_name(opts));
    test::seed_peers(opts, 1);
    status_store s(opts);
    const core::session_token t = 1'700'000'000'000'000'000;
    CHECK(s.connect("acc1", "p0", t));
    auto r = test::read_status(opts, "p0");
    CHECK(r.connected);
    CHECK(r.token == t);
    CHECK(s.disconnect("acc1", "p0", t));
    r = test::read_status(opts, "p0");
    CHECK_FALSE(r.connected);
    CHECK(r.token == 0);
    // The same disconnect again does not match any more.
    CHECK_FALSE(s.disconnect("acc1", "p0", t));
  }
}

TEST_CASE("fence: stale disconnect is dropped (zombie stream)") {
  for (const auto& opts : test::fresh_backends("fence_stale_disc")) {
    INFO(test::backend_name(opts));
    test::seed_peers(opts, 1);
    status_store s(opts);
    const core::session_token t2 = 2'000'000'000'000'000'000;
    REQUIRE(s.connect("acc1", "p0", t2));
    CHECK_FALSE(s.disconnect("acc1", "p0", t2 - 3'600'000'000'000));
    auto r = test::read_status(opts, "p0");
    CHECK(r.connected);
    CHECK(r.token == t2);
  }
}

TEST_CASE("fence: stale connect is dropped (blocked goroutine)") {
  for (const auto& opts : test::fresh_backends("fence_stale_conn")) {
    INFO(test::backend_name(opts));
    test::seed_peers(opts, 1);
    status_store s(opts);
    const core::session_token n2 = 3'000'000'000'000'000'000;
    REQUIRE(s.connect("acc1", "p0", n2));
    CHECK_FALSE(s.connect("acc1", "p0", n2 - 60'000'000'000));
    CHECK_FALSE(s.connect("acc1", "p0", n2)); // equal is not newer
    auto r = test::read_status(opts, "p0");
    CHECK(r.connected);
    CHECK(r.token == n2);
  }
}

TEST_CASE("fence: zero-token disconnect is refused without touching the database") {
  for (const auto& opts : test::fresh_backends("fence_zero")) {
    INFO(test::backend_name(opts));
    test::seed_peers(opts, 2);
    status_store s(opts);
    // p1 never connected: its stored token is 0, so "= 0" would match it.
    const auto before = s.statements();
    CHECK_FALSE(s.disconnect("acc1", "p1", 0));
    CHECK(s.statements() == before);
    auto r = test::read_status(opts, "p1");
    CHECK(r.last_seen.empty()); // nothing was written
    // Also inside a batch.
    auto landed = s.apply_batch({{"acc1", "p1", 0, status_op::disconnect}});
    CHECK(landed == std::vector<bool>{false});
    CHECK(test::read_status(opts, "p1").last_seen.empty());
  }
}

TEST_CASE("fence: connect of an unknown peer or the wrong account does not land") {
  for (const auto& opts : test::fresh_backends("fence_unknown")) {
    INFO(test::backend_name(opts));
    test::seed_peers(opts, 1);
    status_store s(opts);
    CHECK_FALSE(s.connect("acc1", "nope", 5));
    CHECK_FALSE(s.connect("other-account", "p0", 5));
    CHECK_FALSE(test::read_status(opts, "p0").connected);
  }
}

TEST_CASE("fence: last_seen is the database's clock and login_expired is cleared on connect") {
  for (const auto& opts : test::fresh_backends("fence_last_seen")) {
    INFO(test::backend_name(opts));
    test::seed_peers(opts, 1);
    test::exec_sql(opts, "UPDATE peers SET peer_status_last_seen = '2001-01-01 00:00:00+00:00', "
                         "peer_status_login_expired = true WHERE id = 'p0'");
    status_store s(opts);
    const double before = test::db_now(opts);
    REQUIRE(s.connect("acc1", "p0", 42));
    const double after = test::db_now(opts);
    auto r = test::read_status(opts, "p0");
    REQUIRE_FALSE(r.last_seen.empty());
    const double seen = test::parse_db_time(r.last_seen);
    // SQLite's CURRENT_TIMESTAMP has second precision.
    CHECK(seen >= before - 1.0);
    CHECK(seen <= after + 1.0);
    CHECK_FALSE(r.login_expired);
    // A disconnect stamps last_seen too, and leaves login_expired alone.
    REQUIRE(s.disconnect("acc1", "p0", 42));
    r = test::read_status(opts, "p0");
    CHECK(test::parse_db_time(r.last_seen) >= before - 1.0);
  }
}

TEST_CASE(
    "fence: 16 threads racing connects straight at the store -> the highest token is stored") {
  for (const auto& opts : test::fresh_backends("fence_race16")) {
    INFO(test::backend_name(opts));
    test::seed_peers(opts, 1);
    const core::session_token base = 1'800'000'000'000'000'000;
    constexpr int n = 16;
    std::vector<std::unique_ptr<status_store>> stores;
    for (int i = 0; i < n; ++i)
      stores.push_back(std::make_unique<status_store>(opts));
    std::barrier start(n);
    std::atomic<int> errors{0}, landed{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i)
      threads.emplace_back([&, i] {
        start.arrive_and_wait();
        try {
          if (stores[i]->connect("acc1", "p0", base + i * 1'000'000))
            ++landed;
        } catch (...) {
          ++errors;
        }
      });
    for (auto& t : threads)
      t.join();
    CHECK(errors == 0);
    CHECK(landed >= 1);
    auto r = test::read_status(opts, "p0");
    CHECK(r.connected);
    CHECK(r.token == base + 15 * 1'000'000);
  }
}

TEST_CASE("group commit: one batch, every row with its own fence, landed per item") {
  for (const auto& opts : test::fresh_backends("batch_mixed")) {
    INFO(test::backend_name(opts));
    test::seed_peers(opts, 6);
    status_store s(opts);
    REQUIRE(s.connect("acc1", "p1", 100)); // p1 holds session 100
    REQUIRE(s.connect("acc1", "p2", 100)); // p2 holds session 100
    REQUIRE(s.connect("acc1", "p3", 100));
    const auto before = s.statements();
    auto landed = s.apply_batch({
        {"acc1", "p0", 10, status_op::connect},     // fresh peer: lands
        {"acc1", "p1", 50, status_op::connect},     // older than 100: refused
        {"acc1", "p2", 100, status_op::disconnect}, // owner: lands
        {"acc1", "p3", 99, status_op::disconnect},  // not the owner: refused
        {"acc1", "p4", 0, status_op::disconnect},   // zero token: refused
        {"wrong", "p5", 7, status_op::connect},     // wrong account: refused
    });
    CHECK(landed == std::vector<bool>{true, false, true, false, false, false});
    if (opts.kind == storage::engine::postgres)
      CHECK(s.statements() == before + 1); // one statement for the whole batch
    CHECK(test::read_status(opts, "p0").token == 10);
    CHECK(test::read_status(opts, "p1").token == 100);
    CHECK_FALSE(test::read_status(opts, "p2").connected);
    CHECK(test::read_status(opts, "p2").token == 0);
    CHECK(test::read_status(opts, "p3").token == 100);
    CHECK_FALSE(test::read_status(opts, "p5").connected);
  }
}

TEST_CASE("group commit: a batch never holds two writes of one peer") {
  for (const auto& opts : test::fresh_backends("batch_dup")) {
    INFO(test::backend_name(opts));
    test::seed_peers(opts, 1);
    status_store s(opts);
    CHECK_THROWS_AS(s.apply_batch({{"acc1", "p0", 1, status_op::connect},
                                   {"acc1", "p0", 1, status_op::disconnect}}),
                    std::invalid_argument);
    CHECK_FALSE(test::read_status(opts, "p0").connected); // nothing half-written
  }
}

TEST_CASE("group commit: ids that need quoting in array literals") {
  for (const auto& opts : test::fresh_backends("batch_quote")) {
    INFO(test::backend_name(opts));
    test::seed_peers(opts, 0, "acc \"q\" \\ {x}");
    test::exec_sql(opts,
                   "INSERT INTO peers (id, account_id, key, ip, name, dns_label, user_id) VALUES "
                   "('we,ird\"id}', 'acc \"q\" \\ {x}', 'k', '\"100.64.0.9\"', 'n', 'n', '')");
    status_store s(opts);
    auto landed = s.apply_batch({{"acc \"q\" \\ {x}", "we,ird\"id}", 9, status_op::connect}});
    CHECK(landed == std::vector<bool>{true});
    CHECK(test::read_status(opts, "we,ird\"id}").token == 9);
  }
}

// A reference model of the fence, applied sequentially: the state a correct fence must end in.
TEST_CASE("fence: randomized interleaved histories match the reference model") {
  for (const auto& opts : test::fresh_backends("fence_random")) {
    INFO(test::backend_name(opts));
    constexpr int peers = 8;
    test::seed_peers(opts, peers);
    status_store s(opts);
    std::mt19937_64 rng(20261124);
    std::vector<core::session_token> model(peers, 0);
    std::vector<std::vector<core::session_token>> issued(peers);
    core::session_token next = 1000;
    int mismatches = 0;
    for (int ev = 0; ev < 1200; ++ev) {
      const int p = static_cast<int>(rng() % peers);
      const std::string id = "p" + std::to_string(p);
      core::session_token tok;
      const bool connect = rng() % 2 == 0;
      if (connect) {
        // New sessions mostly, but also late (older) ones arriving out of order.
        tok = (rng() % 4 == 0 && !issued[p].empty()) ? issued[p][rng() % issued[p].size()] - 1
                                                     : (next += 1 + rng() % 5);
        issued[p].push_back(tok);
        const bool expect = tok > model[p];
        const bool got = s.connect("acc1", id, tok);
        if (expect)
          model[p] = tok;
        mismatches += expect != got;
      } else {
        tok = issued[p].empty() ? 0 : issued[p][rng() % issued[p].size()];
        if (rng() % 8 == 0)
          tok = 0;
        const bool expect = tok != 0 && tok == model[p];
        const bool got = s.disconnect("acc1", id, tok);
        if (expect)
          model[p] = 0;
        mismatches += expect != got;
      }
    }
    CHECK(mismatches == 0);
    for (int p = 0; p < peers; ++p) {
      auto r = test::read_status(opts, "p" + std::to_string(p));
      CHECK(r.token == model[p]);
      CHECK(r.connected == (model[p] != 0));
    }
  }
}

TEST_CASE("start-up sweep: every session shown connected ends with a disconnect of its own token; "
          "a row reconnected between the read and the write is left alone") {
  for (const auto& opts : test::fresh_backends("sweep")) {
    INFO(test::backend_name(opts));
    test::seed_peers(opts, 5);
    status_store s(opts);
    const core::session_token t = 1'800'000'000'000'000'000;
    REQUIRE(s.connect("acc1", "p0", t + 1));
    REQUIRE(s.connect("acc1", "p1", t + 2));
    REQUIRE(s.connect("acc1", "p2", t + 3));
    REQUIRE(s.connect("acc1", "p3", t + 4));
    REQUIRE(s.disconnect("acc1", "p3", t + 4)); // ended cleanly: not a leftover
    // p4 as NetBird's own server leaves it: connected, no token.
    test::exec_sql(opts, "UPDATE peers SET peer_status_connected = true WHERE id = 'p4'");

    auto sessions = s.connected_sessions();
    std::sort(sessions.begin(), sessions.end(),
              [](const status_write& a, const status_write& b) { return a.peer_id < b.peer_id; });
    REQUIRE(sessions.size() == 4);
    CHECK(sessions[0].peer_id == "p0");
    CHECK(sessions[0].token == t + 1);
    CHECK(sessions[2].token == t + 3);
    CHECK(sessions[3].peer_id == "p4");
    CHECK(sessions[3].token == 0);
    for (const auto& w : sessions)
      CHECK(w.op == status_op::disconnect);

    // Between the read and the writes: p1 reconnects (a newer session, e.g. a replica that came
    // up), and p4 is connected by us (a token now).
    status_store other(opts);
    REQUIRE(other.connect("acc1", "p1", t + 10));
    REQUIRE(other.connect("acc1", "p4", t + 11));
    const double before = test::db_now(opts);
    CHECK(s.end_sessions(sessions) == 2);
    for (const char* id : {"p0", "p2"}) {
      INFO(id);
      auto r = test::read_status(opts, id);
      CHECK_FALSE(r.connected);
      CHECK(r.token == 0);
      CHECK(test::parse_db_time(r.last_seen) >= before - 1); // the database's clock, now
    }
    auto p1 = test::read_status(opts, "p1");
    CHECK(p1.connected);
    CHECK(p1.token == t + 10);
    auto p4 = test::read_status(opts, "p4");
    CHECK(p4.connected);
    CHECK(p4.token == t + 11);
    // The newer sessions end normally afterwards.
    CHECK(other.disconnect("acc1", "p1", t + 10));
  }
}

TEST_CASE(
    "start-up sweep: a tokenless connected row is ended; nothing connected, nothing written") {
  for (const auto& opts : test::fresh_backends("sweep_tokenless")) {
    INFO(test::backend_name(opts));
    test::seed_peers(opts, 3);
    status_store s(opts);
    auto none = s.end_leftover_sessions();
    CHECK(none.found == 0);
    CHECK(none.ended == 0);
    test::exec_sql(opts, "UPDATE peers SET peer_status_connected = true WHERE id = 'p2'");
    const auto r = s.end_leftover_sessions();
    CHECK(r.found == 1);
    CHECK(r.ended == 1);
    CHECK_FALSE(test::read_status(opts, "p2").connected);
    CHECK(s.end_leftover_sessions().found == 0);
  }
}

TEST_CASE("start-up sweep: many leftovers end in several batches") {
  for (const auto& opts : test::fresh_backends("sweep_many")) {
    INFO(test::backend_name(opts));
    const int n = 240;
    test::seed_peers(opts, n);
    status_store s(opts);
    std::vector<status_write> connects;
    for (int i = 0; i < n; ++i)
      connects.push_back({"acc1", "p" + std::to_string(i),
                          core::session_token{1'900'000'000'000'000'000} + i, status_op::connect});
    auto landed = s.apply_batch(connects);
    REQUIRE(std::all_of(landed.begin(), landed.end(), [](bool x) { return x; }));
    auto sessions = s.connected_sessions();
    REQUIRE(sessions.size() == static_cast<std::size_t>(n));
    const auto before = s.statements();
    CHECK(s.end_sessions(sessions, 100) == static_cast<std::size_t>(n));
    if (opts.kind == storage::engine::postgres)
      CHECK(s.statements() - before == 3); // one statement per batch
    CHECK(s.connected_sessions().empty());
    CHECK(test::read_status(opts, "p239").token == 0);
  }
}
