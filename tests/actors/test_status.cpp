// The one status protocol: every long-lived actor kind answers status_atom with an actor_status;
// the directory lists the actors it knows; ask_status asks them all at once and reports an actor
// that does not answer within the deadline as missing instead of waiting for it.
#include "actors/expiry_actor.hpp"
#include "actors/login_service.hpp"
#include "actors/msg_ring.hpp"
#include "actors/observer_fanout.hpp"
#include "actors/status_probe.hpp"
#include "tests/support/actor_rig.hpp"
#include "tests/support/peer_rows.hpp"
#include "tests/support/test_db.hpp"

#include <caf/all.hpp>
#include <doctest/doctest.h>

#include <algorithm>
#include <future>
#include <set>

using namespace nbm;
using namespace nbm::actors;

namespace {

// An actor that answers status only after `release` is set: while it waits it is "busy".
status_iface spawn_busy(caf::actor_system& sys, std::shared_future<void> release) {
  return sys.spawn<caf::detached>(
      [release](status_iface::pointer self) -> status_iface::behavior_type {
        return {
            [self, release](status_atom) {
              release.wait();
              return status_of(self, "busy");
            },
        };
      });
}

status_iface spawn_quick(caf::actor_system& sys, std::string id) {
  return sys.spawn([id](status_iface::pointer self) -> status_iface::behavior_type {
    return {
        [self, id](status_atom) {
          auto s = status_of(self, "quick", id);
          s.counters["asked"] = 1;
          return s;
        },
    };
  });
}

} // namespace

TEST_CASE("status: a per-kind record travels as an actor_status and back unchanged") {
  peer_state_record r;
  r.account_id = "acc";
  r.peer_id = "p1";
  r.token = 1'700'000'000'123'456'789;
  r.has_sink = true;
  r.landed = 3;
  r.dropped = 4;
  r.refused = 5;
  r.failed = 6;
  actor_status s;
  put_record(s, r);
  CHECK(s.counter("landed") == 3);
  CHECK(s.gauge("has_sink") == 1);
  CHECK(s.label("account") == "acc");
  const auto back = record_of<peer_state_record>(s);
  CHECK(back.account_id == "acc");
  CHECK(back.peer_id == "p1");
  CHECK(back.token == r.token);
  CHECK(back.has_sink);
  CHECK(back.landed == 3);
  CHECK(back.dropped == 4);
  CHECK(back.refused == 5);
  CHECK(back.failed == 6);
  CHECK(s.counter("no such counter") == 0);
}

TEST_CASE("status: a busy actor is reported missing by kind, the others answer, nobody waits") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  std::promise<void> gate;
  std::shared_future<void> release = gate.get_future().share();
  auto busy = spawn_busy(sys, release);
  auto a = spawn_quick(sys, "a"), b = spawn_quick(sys, "b");
  std::vector<status_target> targets{
      {"busy", busy}, {"quick", a}, {"quick", b}, {"quick", a}, {"gone", status_iface{}}};
  const auto began = std::chrono::steady_clock::now();
  auto sample = ask_status(sys, targets, std::chrono::milliseconds(300));
  const auto took = std::chrono::steady_clock::now() - began;
  gate.set_value(); // the busy actor may finish now
  CHECK(took >= std::chrono::milliseconds(250));
  CHECK(took < std::chrono::milliseconds(1300)); // the deadline, not the busy actor, ended it
  REQUIRE(sample.answers.size() == 2);           // a listed twice is asked once
  std::set<std::string> ids;
  for (const auto& s : sample.answers) {
    CHECK(s.kind == "quick");
    CHECK(s.mailbox >= 0);
    ids.insert(s.id);
  }
  CHECK(ids == std::set<std::string>{"a", "b"});
  CHECK(sample.missing.size() == 1); // an invalid handle is left out, not missing
  CHECK(sample.missing["busy"] == 1);

  // Once free, the busy actor answers again within the deadline.
  auto again = ask_status(sys, {{"busy", busy}}, std::chrono::milliseconds(3000));
  REQUIRE(again.answers.size() == 1);
  CHECK(again.answers[0].kind == "busy");
  CHECK(again.missing.empty());
  caf::anon_send_exit(busy, caf::exit_reason::user_shutdown);
  busy = status_iface{};
}

TEST_CASE("status: every kind the server runs answers, and the directory lists its actors") {
  for (const auto& opts : test::fresh_backends("status_kinds")) {
    INFO(test::backend_name(opts));
    test::seed_peers(opts, 2);
    test::actor_rig r(opts);
    expiry_config ec;
    ec.db = opts;
    ec.timers = false;
    auto expiry = spawn_expiry_actor(*r.sys, ec);
    auto fanout = spawn_observer_fanout(*r.sys, {expiry, expiry});
    auto login = spawn_login_service(*r.sys, {opts, "netbird.selfhosted"});
    auto p0 = r.ask(r.dir, find_peer_atom::value, std::string("acc1"), std::string("p0"));
    auto p1 = r.ask(r.dir, find_peer_atom::value, std::string("acc1"), std::string("p1"));
    auto acc = r.ask(r.dir, find_account_atom::value, std::string("acc1"));
    (void)p0;
    (void)p1;
    (void)acc;
    auto members = r.ask(r.dir, members_atom::value);
    std::multiset<std::string> listed;
    for (const auto& m : members)
      listed.insert(m.kind);
    CHECK(listed.count("directory") == 1);
    CHECK(listed.count("peer") == 2);
    CHECK(listed.count("account") == 1);
    CHECK(listed.count("account_loader") == 1);
    CHECK(listed.count("status_writer") == 1);
    CHECK(listed.count("store_worker") >= 1); // the loader's, listed through it

    members.push_back({"expiry", expiry});
    members.push_back({"observer_fanout", fanout});
    members.push_back({"login_service", login});
    auto sample = ask_status(*r.sys, members, std::chrono::milliseconds(5000));
    CHECK(sample.missing.empty());
    std::multiset<std::string> kinds;
    for (const auto& s : sample.answers) {
      kinds.insert(s.kind);
      if (s.kind == "peer")
        CHECK(s.label("account") == "acc1");
      if (s.kind == "directory")
        CHECK(s.gauge("peer_actors") == 2);
      if (s.kind == "observer_fanout")
        CHECK(s.gauge("observers") == 2);
    }
    for (const char* k : {"directory", "account", "account_loader", "status_writer", "expiry",
                          "observer_fanout", "login_service"})
      CHECK_MESSAGE(kinds.count(k) == 1, k);
    CHECK(kinds.count("peer") == 2);
    CHECK(kinds.count("store_worker") == listed.count("store_worker"));
    // Every worker says which one it is: the loader's by index, the status writer's "status_<i>".
    std::set<std::string> store_ids;
    for (const auto& s : sample.answers)
      if (s.kind == "store_worker")
        store_ids.insert(s.id);
    CHECK(store_ids.size() == listed.count("store_worker"));
    CHECK(store_ids.count("0") == 1);
    CHECK(store_ids.count("status_0") == 1); // the writer's, listed through it
    CHECK(store_ids.count("") == 0);
    for (auto h : std::vector<status_iface>{expiry, fanout, login})
      caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
  }
}

TEST_CASE("trace: a traced peer actor sends on every message it handles, in order; a tracer "
          "that goes away is forgotten") {
  const auto opts = test::fresh_backends("trace").front(); // SQLite: no store work here
  test::seed_peers(opts, 1);
  test::actor_rig r(opts);
  auto p = r.peer("acc1", "p0");
  // A burst far beyond the ring's 16 entries (close: no stream, so no other side effect).
  constexpr std::uint64_t burst = 5000;
  {
    caf::scoped_actor tracer{*r.sys};
    const auto ring = r.ask(p, trace_atom::value, caf::actor_cast<caf::actor>(tracer));
    CHECK(ring.empty()); // it handled nothing before
    CHECK(r.ask(p, status_atom::value).gauge("tracers") == 1);
    for (std::uint64_t i = 0; i < burst; ++i)
      caf::anon_send(p, close_atom::value, std::string("burst"));
    std::uint64_t next = 1;
    bool in_order = true;
    for (std::uint64_t i = 0; i < burst; ++i)
      tracer->receive(
          [&](traced_atom, std::uint64_t seq, std::int64_t at_ms, std::uint8_t what, std::uint64_t,
              std::uint64_t) {
            in_order = in_order && seq == next && at_ms > 0 &&
                       static_cast<ring_event>(what) == ring_event::close;
            ++next;
          },
          caf::after(std::chrono::seconds(10)) >> [&] { in_order = false; });
    CHECK(in_order);
    CHECK(next == burst + 1); // every one, none lost
    CHECK(r.ask(p, status_atom::value).counter("handled") == burst);
    // A second tracer sees only what comes after it attached; its ring answer holds the last 16.
    caf::scoped_actor second{*r.sys};
    const auto ring2 = r.ask(p, trace_atom::value, caf::actor_cast<caf::actor>(second));
    CHECK(std::count(ring2.begin(), ring2.end(), ';') == 15);
    CHECK(ring2.rfind(";" + std::to_string(burst) + " ") != std::string::npos);
    CHECK(ring2.rfind(std::to_string(burst - 15) + " ", 0) == 0);
    CHECK(r.ask(p, status_atom::value).gauge("tracers") == 2);
    caf::anon_send(p, close_atom::value, std::string("after"));
    for (auto* t : {&tracer, &second})
      (*t)->receive([&](traced_atom, std::uint64_t seq, std::int64_t, std::uint8_t, std::uint64_t,
                        std::uint64_t) { CHECK(seq == burst + 1); },
                    caf::after(std::chrono::seconds(10)) >>
                        [] { FAIL("the message after was not traced"); });
  } // both tracers go: the actor, which monitored them, forgets them
  // A scoped actor's destructor ends it and sends its monitors their down messages before it
  // returns, so the status request below queues behind both of them.
  CHECK(r.ask(p, status_atom::value).gauge("tracers") == 0);
  caf::anon_send(p, close_atom::value, std::string("untraced"));
  CHECK(r.ask(p, status_atom::value).counter("handled") == burst + 2);
}
