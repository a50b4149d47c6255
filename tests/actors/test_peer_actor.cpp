// The session fence through the actor system: peer actors (in-memory fence, mailbox order), the
// status writer (group commit, per-peer order) and the side-effect seam, against real SQLite and
// PostgreSQL.
#include "actors/directory.hpp"
#include "actors/geo_actor.hpp"
#include "actors/status_writer.hpp"
#include "geo/geo.hpp"
#include "storage/account_store.hpp"
#include "storage/status_store.hpp"
#include "tests/support/det_ask.hpp"
#include "tests/support/mmdb_writer.hpp"
#include "tests/support/peer_rows.hpp"
#include "tests/support/test_db.hpp"

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <doctest/doctest.h>
#include <soci/soci.h>

#include <barrier>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

using namespace nbm;
using namespace nbm::actors;

namespace {

// A sink that records whether and why it was closed.
struct test_sink : session_sink {
  std::mutex mu;
  int closes = 0;
  std::string reason;
  void close(const std::string& r) override {
    std::lock_guard<std::mutex> lk(mu);
    ++closes;
    reason = r;
  }
  int closed() {
    std::lock_guard<std::mutex> lk(mu);
    return closes;
  }
  void deliver(map_update_ptr, bool) override {}
  std::string ip;
  std::string remote_ip() const override { return ip; }
};

// What the observer saw, and whether the database already showed the write when it was told.
struct observed {
  std::mutex mu;
  std::vector<session_event> events;
  std::vector<bool> committed_before_notice;
};

// A detached observer (it reads the database, a blocking call, on its own thread).
session_observer::behavior_type observer_impl(session_observer::pointer self,
                                              std::shared_ptr<observed> out,
                                              storage::db_options db) {
  return {
      [self](status_atom) { return status_of(self, "test_observer"); },
      [out, db](landed_atom, const session_event& ev) {
        auto row = test::read_status(db, ev.peer_id);
        bool visible = ev.connected ? (row.connected && row.token == ev.token)
                                    : (!row.connected || row.token != ev.token);
        std::lock_guard<std::mutex> lk(out->mu);
        out->events.push_back(ev);
        out->committed_before_notice.push_back(visible);
      },
  };
}

struct rig {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  status_writer writer;
  peer_directory dir;
  session_observer observer;
  std::shared_ptr<observed> seen = std::make_shared<observed>();

  explicit rig(const storage::db_options& db, std::size_t workers = 1, bool with_observer = false,
               std::shared_ptr<const geo::database> geo_db = nullptr) {
    sys = std::make_unique<caf::actor_system>(cfg);
    writer = spawn_status_writer(*sys, {db, workers, 1024});
    if (with_observer)
      observer = sys->spawn<caf::detached>(observer_impl, seen, db);
    if (geo_db)
      observer = spawn_geo_actor(*sys, db, geo_db);
    dir = spawn_peer_directory(*sys, {writer, observer, {}, {}, {}, {}});
  }
  ~rig() {
    caf::anon_send_exit(dir, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(writer, caf::exit_reason::user_shutdown);
    if (observer)
      caf::anon_send_exit(observer, caf::exit_reason::user_shutdown);
    // A detached actor's thread ends only when its last handle is gone: drop ours before the
    // system.
    writer = status_writer{};
    dir = peer_directory{};
    observer = session_observer{};
    sys.reset();
  }

  peer_actor peer(const std::string& id, const std::string& acc = "acc1") {
    caf::scoped_actor self{*sys};
    peer_actor out;
    self->request(dir, caf::infinite, find_peer_atom::value, acc, id)
        .receive([&](const peer_actor& p) { out = p; },
                 [&](caf::error& e) { FAIL(caf::to_string(e)); });
    return out;
  }
  bool connect(const peer_actor& p, session_token t, sink_ptr sink = nullptr) {
    caf::scoped_actor self{*sys};
    bool landed = false;
    self->request(p, caf::infinite, connect_atom::value, t, std::move(sink))
        .receive([&](bool b) { landed = b; }, [&](caf::error& e) { FAIL(caf::to_string(e)); });
    return landed;
  }
  bool disconnect(const peer_actor& p, session_token t) {
    caf::scoped_actor self{*sys};
    bool landed = false;
    self->request(p, caf::infinite, disconn_atom::value, t)
        .receive([&](bool b) { landed = b; }, [&](caf::error& e) { FAIL(caf::to_string(e)); });
    return landed;
  }
  peer_state_record state(const peer_actor& p) {
    caf::scoped_actor self{*sys};
    peer_state_record r;
    self->request(p, caf::infinite, status_atom::value)
        .receive([&](const actor_status& x) { r = record_of<peer_state_record>(x); },
                 [&](caf::error& e) { FAIL(caf::to_string(e)); });
    return r;
  }
  writer_state_record writer_state() {
    caf::scoped_actor self{*sys};
    writer_state_record r;
    self->request(writer, caf::infinite, status_atom::value)
        .receive([&](const actor_status& x) { r = record_of<writer_state_record>(x); },
                 [&](caf::error& e) { FAIL(caf::to_string(e)); });
    return r;
  }
  // The observer's status (any answer: it handled everything sent to it before).
  void observer_status() {
    caf::scoped_actor self{*sys};
    self->request(observer, caf::infinite, status_atom::value)
        .receive([](const actor_status&) {}, [&](caf::error& e) { FAIL(caf::to_string(e)); });
  }
  std::vector<session_event> events() {
    std::lock_guard<std::mutex> lk(seen->mu);
    return seen->events;
  }
};

} // namespace

TEST_CASE("peer actor: stale connect and foreign disconnect are dropped in memory before any SQL") {
  for (const auto& opts : test::fresh_backends("actor_stale")) {
    INFO(test::backend_name(opts));
    test::seed_peers(opts, 1);
    rig r(opts);
    auto p = r.peer("p0");
    CHECK(r.connect(p, 500));
    const auto batches = r.writer_state().batches;
    CHECK_FALSE(r.connect(p, 400));
    CHECK_FALSE(r.connect(p, 500));
    CHECK_FALSE(r.disconnect(p, 499));
    CHECK_FALSE(r.disconnect(p, 0));
    CHECK(r.writer_state().batches == batches); // nothing reached the writer
    auto st = r.state(p);
    CHECK(st.token == 500);
    CHECK(st.dropped == 4);
    CHECK(test::read_status(opts, "p0").token == 500);
    CHECK(r.disconnect(p, 500));
    CHECK(r.state(p).token == 0);
    CHECK(test::read_status(opts, "p0").token == 0);
  }
}

TEST_CASE(
    "peer actor: a newer session closes the older sink; the older stream's end changes nothing") {
  for (const auto& opts : test::fresh_backends("actor_sinks")) {
    INFO(test::backend_name(opts));
    test::seed_peers(opts, 1);
    rig r(opts);
    auto p = r.peer("p0");
    auto s1 = std::make_shared<test_sink>();
    auto s2 = std::make_shared<test_sink>();
    REQUIRE(r.connect(p, 100, s1));
    REQUIRE(r.connect(p, 200, s2));
    CHECK(s1->closed() == 1);
    CHECK(s2->closed() == 0);
    // The old stream now ends: its disconnect is dropped, the peer stays connected with session
    // 200.
    CHECK_FALSE(r.disconnect(p, 100));
    CHECK(s2->closed() == 0);
    auto row = test::read_status(opts, "p0");
    CHECK(row.connected);
    CHECK(row.token == 200);
    CHECK(r.state(p).has_sink);
    // A late, stale connect never touches the live sink.
    auto s0 = std::make_shared<test_sink>();
    CHECK_FALSE(r.connect(p, 50, s0));
    CHECK(s2->closed() == 0);
    CHECK(r.disconnect(p, 200));
    CHECK_FALSE(test::read_status(opts, "p0").connected);
    CHECK_FALSE(r.state(p).has_sink);
  }
}

TEST_CASE("peer actor: the directory returns one actor per peer") {
  for (const auto& opts : test::fresh_backends("actor_dir")) {
    INFO(test::backend_name(opts));
    test::seed_peers(opts, 2);
    rig r(opts);
    auto a = r.peer("p0");
    auto b = r.peer("p0");
    auto c = r.peer("p1");
    CHECK(a == b);
    CHECK(a != c);
  }
}

TEST_CASE("peer actors: 16 threads racing connects -> highest wins in memory and in the database") {
  for (const auto& opts : test::fresh_backends("actor_race")) {
    INFO(test::backend_name(opts));
    test::seed_peers(opts, 1);
    rig r(opts, opts.kind == storage::engine::postgres ? 4 : 1);
    const session_token base = 1'900'000'000'000'000'000;
    std::barrier start(16);
    std::vector<std::thread> threads;
    std::atomic<int> landed{0};
    for (int i = 0; i < 16; ++i)
      threads.emplace_back([&, i] {
        auto p = r.peer("p0"); // every thread asks the directory itself
        start.arrive_and_wait();
        if (r.connect(p, base + i * 1'000'000))
          ++landed;
      });
    for (auto& t : threads)
      t.join();
    CHECK(landed >= 1);
    CHECK(r.state(r.peer("p0")).token == base + 15 * 1'000'000);
    auto row = test::read_status(opts, "p0");
    CHECK(row.connected);
    CHECK(row.token == base + 15 * 1'000'000);
  }
}

TEST_CASE("peer actor: a session that connects and dies at once ends disconnected with token 0") {
  for (const auto& opts : test::fresh_backends("actor_flash")) {
    INFO(test::backend_name(opts));
    test::seed_peers(opts, 50);
    rig r(opts, opts.kind == storage::engine::postgres ? 4 : 1);
    caf::scoped_actor self{*r.sys};
    std::vector<peer_actor> ps;
    for (int i = 0; i < 50; ++i)
      ps.push_back(r.peer("p" + std::to_string(i)));
    // Connect and disconnect back to back: the disconnect is queued while the connect is in flight.
    int replies = 0, landed = 0;
    for (int i = 0; i < 50; ++i) {
      self->request(ps[i], caf::infinite, connect_atom::value, session_token{1000 + i}, sink_ptr{})
          .receive([&](bool b) { ++replies, landed += b; }, [&](caf::error&) {});
    }
    // Each connect above was awaited; now the real flash: both messages sent before either is
    // persisted.
    for (int i = 0; i < 50; ++i) {
      self->send(ps[i], connect_atom::value, session_token{5000 + i}, sink_ptr{});
      self->send(ps[i], disconn_atom::value, session_token{5000 + i});
    }
    // Drain the 100 replies of the sends above.
    int flash_landed = 0;
    for (int k = 0; k < 100; ++k)
      self->receive([&](bool b) { flash_landed += b; }, [&](caf::error&) {});
    CHECK(replies == 50);
    CHECK(landed == 50);
    CHECK(flash_landed == 100);
    for (int i = 0; i < 50; ++i) {
      auto row = test::read_status(opts, "p" + std::to_string(i));
      CHECK_FALSE(row.connected);
      CHECK(row.token == 0);
      CHECK(r.state(ps[i]).token == 0);
    }
  }
}

TEST_CASE("side effects fire once per landed write, after commit, never for a dropped one") {
  for (const auto& opts : test::fresh_backends("actor_effects")) {
    INFO(test::backend_name(opts));
    test::seed_peers(opts, 1);
    {
      // Another replica holds session 900 in the database only.
      storage::status_store other(opts);
      REQUIRE(other.connect("acc1", "p0", 900));
    }
    rig r(opts, 1, true);
    auto p = r.peer("p0");
    // The notices a step caused, all of them: the peer actor sends a write's notice before it
    // answers the step, so a status request sent to the observer after the answer is behind the
    // notices in its mailbox, and its reply says they were handled. Each step so waits for its
    // notices before the next write: a notice must find its own write committed.
    auto settle = [&] {
      r.observer_status();
      return r.events().size();
    };
    CHECK_FALSE(r.connect(p, 800)); // passes memory, refused by the database fence: no effect
    CHECK(settle() == 0);
    CHECK(r.connect(p, 1000)); // lands: effect
    CHECK(settle() == 1);
    CHECK_FALSE(r.connect(p, 999));    // dropped in memory: no effect
    CHECK_FALSE(r.disconnect(p, 900)); // not ours: no effect
    CHECK(settle() == 1);
    CHECK(r.disconnect(p, 1000)); // lands: effect
    CHECK(settle() == 2);
    CHECK(r.connect(p, 1100)); // lands: effect
    CHECK(settle() == 3);
    auto evs = r.events();
    REQUIRE(evs.size() == 3);
    CHECK(evs[0].token == 1000);
    CHECK(evs[0].connected);
    CHECK(evs[1].token == 1000);
    CHECK_FALSE(evs[1].connected);
    CHECK(evs[2].token == 1100);
    CHECK(evs[2].connected);
    std::lock_guard<std::mutex> lk(r.seen->mu);
    // The observer read the database when told: every write was already committed.
    for (bool b : r.seen->committed_before_notice)
      CHECK(b);
  }
}

TEST_CASE("two replicas racing on one database -> the highest session wins") {
  for (const auto& opts : test::fresh_backends("replicas")) {
    INFO(test::backend_name(opts));
    test::seed_peers(opts, 8);
    const bool pg = opts.kind == storage::engine::postgres;
    rig a(opts, pg ? 2 : 1), b(opts, pg ? 2 : 1);
    std::mt19937_64 rng(7);
    // Each replica sees its own interleaved sessions of the same peers; tokens are globally
    // distinct.
    std::vector<std::vector<session_token>> for_a(8), for_b(8);
    session_token t = 10'000;
    std::vector<session_token> highest(8, 0);
    for (int round = 0; round < 40; ++round)
      for (int p = 0; p < 8; ++p) {
        t += 1 + rng() % 3;
        (rng() % 2 ? for_a : for_b)[p].push_back(t);
        highest[p] = t;
      }
    auto drive = [](rig& r, std::vector<std::vector<session_token>> tokens) {
      std::vector<std::thread> ths;
      for (int p = 0; p < 8; ++p)
        ths.emplace_back([&r, p, ts = tokens[p]] {
          auto actor = r.peer("p" + std::to_string(p));
          for (auto tok : ts)
            r.connect(actor, tok);
        });
      for (auto& th : ths)
        th.join();
    };
    std::thread ta([&] { drive(a, for_a); });
    std::thread tb([&] { drive(b, for_b); });
    ta.join();
    tb.join();
    for (int p = 0; p < 8; ++p) {
      auto row = test::read_status(opts, "p" + std::to_string(p));
      CHECK(row.connected);
      CHECK(row.token == highest[p]);
    }
  }
}

TEST_CASE("peer actors: randomized bursts keep mailbox order through group commit") {
  for (const auto& opts : test::fresh_backends("actor_random")) {
    INFO(test::backend_name(opts));
    constexpr int peers = 24;
    test::seed_peers(opts, peers);
    const bool pg = opts.kind == storage::engine::postgres;
    rig r(opts, pg ? 3 : 1);
    std::vector<peer_actor> ps;
    for (int i = 0; i < peers; ++i)
      ps.push_back(r.peer("p" + std::to_string(i)));
    // One thread per peer group sends a seeded random history without waiting, then collects
    // replies in order; the reference model applied in send order gives the expected replies and
    // final state.
    std::atomic<int> mismatches{0}, total{0};
    std::vector<session_token> final_model(peers, 0);
    std::vector<std::thread> ths;
    for (int g = 0; g < 4; ++g)
      ths.emplace_back([&, g] {
        caf::scoped_actor self{*r.sys};
        std::mt19937_64 rng(1000 + g);
        std::vector<session_token> model(peers, 0);
        std::vector<std::vector<session_token>> issued(peers);
        session_token next = 100'000 * (g + 1);
        std::vector<bool> expected;
        for (int ev = 0; ev < 400; ++ev) {
          const int p = g + 4 * static_cast<int>(rng() % (peers / 4)); // this thread's peers only
          if (rng() % 2 == 0) {
            session_token tok = (rng() % 4 == 0 && !issued[p].empty())
                                    ? issued[p][rng() % issued[p].size()] - 1
                                    : (next += 1 + rng() % 4);
            issued[p].push_back(tok);
            bool e = tok > model[p];
            if (e)
              model[p] = tok;
            expected.push_back(e);
            self->send(ps[p], connect_atom::value, tok, sink_ptr{});
          } else {
            session_token tok = issued[p].empty() ? 0 : issued[p][rng() % issued[p].size()];
            bool e = tok != 0 && tok == model[p];
            if (e)
              model[p] = 0;
            expected.push_back(e);
            self->send(ps[p], disconn_atom::value, tok);
          }
        }
        // Replies from different peers may interleave; count landed per history instead of by
        // position.
        int want = 0, got = 0;
        for (bool e : expected)
          want += e;
        for (std::size_t k = 0; k < expected.size(); ++k)
          self->receive([&](bool b) { got += b; }, [&](caf::error&) { ++mismatches; });
        mismatches += want != got;
        total += static_cast<int>(expected.size());
        for (int p = g; p < peers; p += 4)
          final_model[p] = model[p];
      });
    for (auto& t : ths)
      t.join();
    CHECK(total == 1600);
    CHECK(mismatches == 0);
    for (int p = 0; p < peers; ++p) {
      auto row = test::read_status(opts, "p" + std::to_string(p));
      CHECK(row.token == final_model[p]);
      CHECK(row.connected == (final_model[p] != 0));
      CHECK(r.state(ps[p]).token == final_model[p]);
    }
    auto ws = r.writer_state();
    CHECK(ws.errors == 0);
    CHECK(ws.max_batch > 1); // writes of different peers were group-committed
  }
}

// The geo actor with its store worker, the status writer and the directory on CAF's deterministic
// scheduler: `ask` runs the scheduler until nothing is left to run, so once a connect is answered
// its landed notice was handled and the worker's lookup and write are done.
struct geo_rig {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  status_writer writer;
  session_observer geo;
  peer_directory dir;

  geo_rig(const storage::db_options& db, std::shared_ptr<const geo::database> geo_db) {
    cfg.set("scheduler.policy", caf::atom("testing"));
    sys = std::make_unique<caf::actor_system>(cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
    status_writer_config wc;
    wc.db = db;
    wc.detached = false;
    writer = spawn_status_writer(*sys, wc);
    geo = spawn_geo_actor(*sys, db, std::move(geo_db), false);
    directory_config dc;
    dc.writer = writer;
    dc.observer = geo;
    dir = spawn_peer_directory(*sys, dc);
    sched->run();
  }
  ~geo_rig() {
    caf::anon_send_exit(dir, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(writer, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(geo, caf::exit_reason::user_shutdown);
    sched->run();
    dir = peer_directory{};
    writer = status_writer{};
    geo = session_observer{};
    sys.reset();
  }
  // The answer, after everything it caused ran.
  template <class R, class Handle, class... Ts>
  R ask(const Handle& h, Ts... xs) {
    return test::det_ask<R>(*sys, *sched, h, xs...);
  }
  bool connect(const peer_actor& p, session_token t, std::shared_ptr<test_sink> sink) {
    return ask<bool>(p, connect_atom::value, t, sink_ptr(std::move(sink)));
  }
};

TEST_CASE("geo side effect: a landed connect records the location; the same IP writes nothing") {
  auto geo_db = std::make_shared<const geo::database>(test::city_database());
  for (const auto& opts : test::fresh_backends("actor_geo")) {
    INFO(test::backend_name(opts));
    test::seed_peers(opts, 1);
    geo_rig r(opts, geo_db);
    auto p =
        r.ask<peer_actor>(r.dir, find_peer_atom::value, std::string("acc1"), std::string("p0"));
    auto location = [&] {
      soci::session sql;
      storage::open_session(sql, opts);
      return storage::account_store(sql, opts.kind).peer_by_id("acc1", "p0")->location;
    };
    // `connects` landed connects seen, `busy_worker_geo` jobs not finished, `locations_written`
    // rows written.
    auto geo = [&] { return r.ask<actor_status>(r.geo, status_atom::value); };
    auto sink = std::make_shared<test_sink>();
    sink->ip = "198.51.100.77";
    REQUIRE(r.connect(p, 100, sink));
    CHECK(geo().counter("connects") == 1);
    CHECK(geo().gauge("busy_worker_geo") == 0);
    CHECK(location().country_code == "CH");
    CHECK(location().connection_ip == "198.51.100.77");
    CHECK(location().geo_name_id == 2657896);
    CHECK(geo().counter("locations_written") == 1);
    // Mark the stored row: a reconnect from the same address must not rewrite it.
    test::exec_sql(opts, "UPDATE peers SET location_country_code = 'XX' WHERE id = 'p0'");
    auto again = std::make_shared<test_sink>();
    again->ip = "198.51.100.77";
    REQUIRE(r.connect(p, 200, again));
    CHECK(geo().counter("connects") == 2);
    CHECK(location().country_code == "XX");
    CHECK(geo().counter("locations_written") == 1);
    // A refused connect (older token) records nothing either: no landed connect reaches the actor.
    auto stale = std::make_shared<test_sink>();
    stale->ip = "203.0.113.1";
    CHECK_FALSE(r.connect(p, 150, stale));
    CHECK(geo().counter("connects") == 2);
    CHECK(location().country_code == "XX");
    // A new address is looked up and written.
    auto moved = std::make_shared<test_sink>();
    moved->ip = "203.0.113.1";
    REQUIRE(r.connect(p, 300, moved));
    CHECK(geo().counter("connects") == 3);
    CHECK(location().country_code == "GB");
    CHECK(location().geo_name_id == 2643743);
    CHECK(geo().counter("locations_written") == 2);
    CHECK(geo().counter("errors") == 0);
  }
}
