// The expiry actor against real SQLite and PostgreSQL stores, with an injected clock and no timers
// of its own: the test derives, advances the clock and sends the ticks, so every step is
// deterministic. One case per rule (login expiration, inactivity expiration, ephemeral cleanup),
// with their effects on the other peers' maps and the peer's own stream; settings changes and a
// re-login reschedule; a peer that reconnected elsewhere is left alone; two actors on one store
// (two replicas) delete once.
#include "actors/expiry_actor.hpp"
#include "storage/config_store.hpp"
#include "storage/lifecycle_store.hpp"
#include "storage/status_store.hpp"
#include "tests/support/actor_rig.hpp"
#include "tests/support/peer_rows.hpp"
#include "tests/support/test_db.hpp"
#include "tests/support/wait.hpp"

#include <caf/all.hpp>
#include <doctest/doctest.h>
#include <soci/soci.h>

#include <algorithm>
#include <atomic>
#include <mutex>

using namespace nbm;
using namespace nbm::actors;
using core::lifecycle_rule;
using core::unix_ns;

namespace {

constexpr unix_ns sec = 1'000'000'000;
constexpr unix_ns hour = 3600 * sec;
const std::string t0 = "2024-05-01 10:00:00+00:00";
const unix_ns t0_ns = 1714557600 * sec;

// Records the maps and closes of a stream (and wakes NBM_WAIT_UNTIL).
struct sink : session_sink {
  std::mutex mu;
  std::vector<map_update_ptr> maps;
  std::vector<std::string> closes;
  void close(const std::string& why) override {
    {
      std::lock_guard<std::mutex> lk(mu);
      closes.push_back(why);
    }
    test::changed();
  }
  void deliver(map_update_ptr u, bool) override {
    {
      std::lock_guard<std::mutex> lk(mu);
      maps.push_back(std::move(u));
    }
    test::changed();
  }
  std::size_t count() {
    std::lock_guard<std::mutex> lk(mu);
    return maps.size();
  }
  std::vector<std::string> closed() {
    std::lock_guard<std::mutex> lk(mu);
    return closes;
  }
  // Ids of the last map's remote (reachable) or offline peers.
  std::vector<std::string> ids(bool offline) {
    std::lock_guard<std::mutex> lk(mu);
    REQUIRE_FALSE(maps.empty());
    const auto& u = *maps.back();
    std::vector<std::string> out;
    for (auto i : offline ? u.map.offline_peers : u.map.remote_peers)
      out.push_back(u.change->view->acc().peers[i].id);
    std::sort(out.begin(), out.end());
    return out;
  }
};

struct world : test::account_world {
  using account_world::account_world;
  storage::lifecycle_store life() { return storage::lifecycle_store(*sql, db.kind); }
  void add(const std::string& id, int n, bool sso, bool ephemeral, const std::string& seen = t0) {
    core::peer p;
    p.id = id;
    p.account_id = account;
    p.key = "key-" + id;
    p.ip = "100.64.0." + std::to_string(n);
    p.name = p.dns_label = p.meta.hostname = id;
    p.meta.wt_version = "0.60.0";
    p.user_id = sso ? "user-1" : "";
    p.login_expiration_enabled = p.inactivity_expiration_enabled = sso;
    p.ephemeral = ephemeral;
    p.last_login = t0;
    p.status.last_seen = seen;
    accounts().insert_peer(p);
    accounts().add_group_peer(account, all_group, id);
  }
  void settings(bool login, unix_ns login_ns, bool inactivity, unix_ns inactivity_ns) {
    auto s = accounts().load_account(account)->settings;
    s.peer_login_expiration_enabled = login;
    s.peer_login_expiration_ns = login_ns;
    s.peer_inactivity_expiration_enabled = inactivity;
    s.peer_inactivity_expiration_ns = inactivity_ns;
    REQUIRE(storage::config_store(*sql, db.kind).update_settings(account, s));
  }
  std::uint64_t serial() { return accounts().load_account(account)->net.serial; }
  bool exists(const std::string& id) { return life().peer(account, id).has_value(); }
};

struct rig : test::actor_rig {
  std::shared_ptr<std::atomic<unix_ns>> clock = std::make_shared<std::atomic<unix_ns>>(t0_ns);
  std::vector<expiry_actor> expiries;

  using actor_rig::actor_rig;
  ~rig() {
    for (auto& e : expiries)
      caf::anon_send_exit(e, caf::exit_reason::user_shutdown);
    expiries.clear();
  }
  // An expiry actor on the injected clock, without timers, its schedule derived.
  expiry_actor expiry(const storage::db_options& db, unix_ns lifetime = 600 * sec) {
    expiry_config c;
    c.db = db;
    c.ephemeral_lifetime_ns = lifetime;
    c.sweep_interval = std::chrono::milliseconds(0);
    c.timers = false;
    c.directory = dir;
    auto clk = clock;
    c.clock = [clk] { return clk->load(); };
    auto e = spawn_expiry_actor(*sys, c);
    expiries.push_back(e);
    caf::anon_send(e, derive_atom::value, std::string());
    return e;
  }
  expiry_state_record status(const expiry_actor& e) {
    return record_of<expiry_state_record>(ask(e, status_atom::value));
  }
  account_state_record account_status(const std::string& acc) {
    return record_of<account_state_record>(ask(account(acc), status_atom::value));
  }
  // Moves the clock and runs what is due; answers the actor's state afterwards.
  expiry_state_record at(const expiry_actor& e, unix_ns now) {
    clock->store(now);
    caf::anon_send(e, tick_atom::value, std::uint64_t{0});
    return status(e);
  }
  void landed(const expiry_actor& e, const std::string& acc, const std::string& peer,
              bool connected) {
    caf::anon_send(e, landed_atom::value, session_event{acc, peer, 1, connected, ""});
  }
  std::shared_ptr<sink> connect(const std::string& acc, const std::string& id,
                                session_token token) {
    auto s = std::make_shared<sink>();
    REQUIRE(ask(peer(acc, id), connect_atom::value, token, sink_ptr(s)));
    return s;
  }
  std::pair<int, std::string> sync_check(const std::string& acc, const std::string& id) {
    caf::scoped_actor self{*sys};
    std::pair<int, std::string> out;
    sync_open open;
    self->request(account(acc), caf::infinite, sync_atom::value, id, open, peer_actor{})
        .receive(
            [&](sync_verdict& v) {
              out = {v.code, v.message};
            },
            [&](caf::error& e) { FAIL(caf::to_string(e)); });
    return out;
  }
};

using ids = std::vector<std::string>;

} // namespace

TEST_CASE("expiry actor: login expiration marks the SSO peer, moves it to the others' offline "
          "peers, ends its stream; a re-login clears it") {
  for (const auto& opts : test::fresh_backends("exp_login")) {
    INFO(test::backend_name(opts));
    world w(opts);
    w.settings(true, hour, false, 0);
    w.add("sso", 1, true, false);
    w.add("other", 2, false, false);
    // Logged in now by the real clock (the account actor judges Syncs by it); the expiry actor's
    // clock is the test's.
    const auto login = storage::store_time();
    const auto login_ns = *core::store_time_ns(login);
    REQUIRE(w.life().record_login(w.account, "sso", login));
    rig r(opts);
    auto sso_sink = r.connect(w.account, "sso", 10);
    auto other_sink = r.connect(w.account, "other", 11);
    NBM_WAIT_UNTIL(other_sink->count() == 1 && sso_sink->count() == 1);
    CHECK(other_sink->ids(false) == ids{"sso"});

    auto e = r.expiry(opts);
    auto st = r.status(e);
    CHECK(st.peers == 1);
    CHECK(st.next_ns == login_ns + hour); // last_login + the account's period
    const auto serial = w.serial();
    const auto reloads = r.account_status(w.account).reloads;
    st = r.at(e, login_ns + hour - sec); // not yet
    CHECK(st.expired == 0);
    CHECK_FALSE(test::read_status(opts, "sso").login_expired);

    st = r.at(e, login_ns + hour);
    CHECK(st.expired == 1);
    CHECK(st.refused == 0);
    auto row = test::read_status(opts, "sso");
    CHECK(row.login_expired);
    CHECK_FALSE(row.connected);
    CHECK(w.serial() == serial + 1);
    // The account actor marked it in memory (no read of the account) and took the serial the
    // write left: the expired peer is offline for the others, its own stream ended, and its next
    // Sync is refused with NetBird's answer.
    NBM_WAIT_UNTIL(other_sink->count() == 2);
    const auto acc = r.account_status(w.account);
    CHECK(acc.reloads == reloads);
    CHECK(acc.serial == serial + 1);
    CHECK(other_sink->ids(false).empty());
    CHECK(other_sink->ids(true) == ids{"sso"});
    NBM_WAIT_UNTIL(!sso_sink->closed().empty());
    CHECK(sso_sink->closed().front() == "peer login expired");
    auto verdict = r.sync_check(w.account, "sso");
    CHECK(verdict.first == 7);
    CHECK(verdict.second == "peer login has expired, please log in once more");
    CHECK(r.sync_check(w.account, "other").first == 0);
    CHECK(r.status(e).next_ns == 0); // nothing left to expire

    // A login (e.g. through SSO on another replica) clears it; the serial poll brings it back.
    const auto relogin = storage::store_time(5);
    REQUIRE(w.life().record_login(w.account, "sso", relogin));
    caf::anon_send(e, poll_atom::value);
    caf::anon_send(r.account(w.account), serial_atom::value, w.serial());
    st = r.status(e);
    CHECK(st.next_ns == *core::store_time_ns(relogin) + hour);
    CHECK(r.sync_check(w.account, "sso").first == 0);
  }
}

TEST_CASE("expiry actor: account settings changes reschedule through the serial poll") {
  for (const auto& opts : test::fresh_backends("exp_settings")) {
    INFO(test::backend_name(opts));
    world w(opts);
    w.settings(true, 24 * hour, false, 0);
    w.add("sso", 1, true, false);
    rig r(opts);
    auto e = r.expiry(opts);
    CHECK(r.status(e).next_ns == t0_ns + 24 * hour);
    w.settings(true, 2 * hour, false, 0); // another process changed the period
    caf::anon_send(e, poll_atom::value);
    CHECK(r.status(e).next_ns == t0_ns + 2 * hour);
    w.settings(false, 2 * hour, false, 0); // ... and turned expiration off
    caf::anon_send(e, poll_atom::value);
    CHECK(r.status(e).next_ns == 0);
    CHECK(r.at(e, t0_ns + 100 * hour).expired == 0);
    CHECK_FALSE(test::read_status(opts, "sso").login_expired);
    w.settings(true, hour, true, hour / 6); // on again, and inactivity too
    caf::anon_send(e, poll_atom::value);
    CHECK(r.status(e).next_ns == t0_ns + hour / 6);
  }
}

TEST_CASE("expiry actor: inactivity expiration after the period disconnected; a connect cancels "
          "it, a disconnect restarts it") {
  for (const auto& opts : test::fresh_backends("exp_inact")) {
    INFO(test::backend_name(opts));
    world w(opts);
    w.settings(true, 24 * hour, true, hour / 6); // 10 min
    w.add("sso", 1, true, false);
    rig r(opts);
    auto e = r.expiry(opts);
    CHECK(r.status(e).next_ns == t0_ns + hour / 6);
    r.landed(e, w.account, "sso", true);
    CHECK(r.status(e).next_ns == t0_ns + 24 * hour); // only the login deadline is left
    r.clock->store(t0_ns + hour);
    r.landed(e, w.account, "sso", false);
    CHECK(r.status(e).next_ns == t0_ns + hour + hour / 6);
    CHECK(r.at(e, t0_ns + hour + hour / 6 - sec).expired == 0);
    // Due: decided on the row as stored (disconnected since t0), written through the fence.
    auto st = r.at(e, t0_ns + hour + hour / 6);
    CHECK(st.expired == 1);
    CHECK(test::read_status(opts, "sso").login_expired);
    CHECK(r.status(e).next_ns == 0);
  }
}

TEST_CASE("expiry actor: an ephemeral peer is deleted after the lifetime disconnected; the peers "
          "that saw it lose it; a reconnect in time cancels") {
  for (const auto& opts : test::fresh_backends("exp_eph")) {
    INFO(test::backend_name(opts));
    world w(opts);
    w.add("eph", 1, false, true);
    w.add("keep", 2, false, true);
    w.add("other", 3, false, false);
    rig r(opts);
    auto other_sink = r.connect(w.account, "other", 11);
    NBM_WAIT_UNTIL(other_sink->count() == 1);
    CHECK(other_sink->ids(false) == ids{"eph", "keep"});
    auto e = r.expiry(opts, 600 * sec);
    CHECK(r.status(e).peers == 2);
    CHECK(r.status(e).next_ns == t0_ns + 600 * sec);

    // "keep" comes back in time (its connect landed in the store, then the event arrived).
    storage::status_store status(opts);
    REQUIRE(status.connect(w.account, "keep", 50));
    r.landed(e, w.account, "keep", true);
    CHECK(r.at(e, t0_ns + 600 * sec - 1).deleted == 0);
    const auto serial = w.serial();
    const auto reloads = r.account_status(w.account).reloads;
    auto st = r.at(e, t0_ns + 600 * sec);
    CHECK(st.deleted == 1);
    CHECK_FALSE(w.exists("eph"));
    CHECK(w.exists("keep"));
    CHECK(w.serial() == serial + 1);
    NBM_WAIT_UNTIL(other_sink->count() == 2);
    CHECK(other_sink->ids(false) == ids{"keep"});
    // Dropped from memory with the serial the delete left, not by reading the account again.
    const auto acc = r.account_status(w.account);
    CHECK(acc.reloads == reloads);
    CHECK(acc.serial == serial + 1);
    CHECK(r.status(e).next_ns == 0);

    // "keep" leaves: its lifetime starts at the landed disconnect.
    REQUIRE(status.disconnect(w.account, "keep", 50));
    r.clock->store(t0_ns + hour);
    r.landed(e, w.account, "keep", false);
    CHECK(r.status(e).next_ns == t0_ns + hour + 600 * sec);
  }
}

TEST_CASE("expiry actor: an ephemeral peer that reconnected on another replica is not deleted") {
  for (const auto& opts : test::fresh_backends("exp_elsewhere")) {
    INFO(test::backend_name(opts));
    world w(opts);
    w.add("eph", 1, false, true);
    rig r(opts);
    auto e = r.expiry(opts, 600 * sec);
    // Another replica's stream took the peer; this actor heard nothing of it.
    storage::status_store status(opts);
    REQUIRE(status.connect(w.account, "eph", 99));
    auto st = r.at(e, t0_ns + 600 * sec);
    CHECK(st.deleted == 0);
    CHECK(w.exists("eph"));
    CHECK(r.status(e).next_ns == 0); // connected: nothing scheduled
  }
}

TEST_CASE("expiry actor: two replicas on one store delete an ephemeral peer once and expire a "
          "login once") {
  for (const auto& opts : test::fresh_backends("exp_two")) {
    INFO(test::backend_name(opts));
    world w(opts);
    w.settings(true, hour, false, 0);
    w.add("eph", 1, false, true);
    w.add("sso", 2, true, false);
    rig r(opts);
    auto a = r.expiry(opts, 600 * sec), b = r.expiry(opts, 600 * sec);
    CHECK(r.status(a).next_ns == t0_ns + 600 * sec);
    CHECK(r.status(b).next_ns == t0_ns + 600 * sec);
    const auto serial = w.serial();
    r.clock->store(t0_ns + 2 * hour);
    caf::anon_send(a, tick_atom::value, std::uint64_t{0});
    caf::anon_send(b, tick_atom::value, std::uint64_t{0});
    auto sa = r.status(a), sb = r.status(b);
    CHECK(sa.deleted + sb.deleted == 1);
    CHECK(sa.expired + sb.expired == 1);
    CHECK_FALSE(w.exists("eph"));
    CHECK(test::read_status(opts, "sso").login_expired);
    CHECK(w.serial() == serial + 2);
  }
}

TEST_CASE("expiry actor: a restart derives every schedule from the store") {
  for (const auto& opts : test::fresh_backends("exp_restart")) {
    INFO(test::backend_name(opts));
    world w(opts);
    w.settings(true, hour, true, hour / 6);
    w.add("eph", 1, false, true, "2024-05-01 10:05:00+00:00");
    w.add("sso", 2, true, false);
    rig r(opts);
    auto first = r.expiry(opts, 600 * sec);
    const auto before = r.status(first);
    caf::anon_send_exit(first, caf::exit_reason::user_shutdown);
    auto second = r.expiry(opts, 600 * sec);
    const auto after = r.status(second);
    CHECK(after.peers == before.peers);
    CHECK(after.scheduled == before.scheduled);
    CHECK(after.scheduled == 3); // ephemeral cleanup, login and inactivity expiration
    CHECK(after.next_ns == t0_ns + hour / 6);
    // What was due while no server ran is done at once.
    auto st = r.at(second, t0_ns + 3 * hour);
    CHECK(st.deleted == 1);
    CHECK(st.expired == 1);
  }
}

TEST_CASE("expiry actor: at start-up an ephemeral peer long disconnected gets the whole lifetime "
          "from then (NetBird's loadEphemeralPeers)") {
  for (const auto& opts : test::fresh_backends("exp_startup")) {
    INFO(test::backend_name(opts));
    world w(opts);
    w.add("old", 1, false, true, "2024-05-01 08:00:00+00:00"); // 2 h before start-up
    rig r(opts);
    auto e = r.expiry(opts, 600 * sec); // starts at t0
    CHECK(r.status(e).next_ns == t0_ns + 600 * sec);
    CHECK(r.at(e, t0_ns + 600 * sec - 1).deleted == 0);
    CHECK(w.exists("old"));
    CHECK(r.at(e, t0_ns + 600 * sec).deleted == 1);
    CHECK_FALSE(w.exists("old"));
  }
}
