// The store side of the peer lifecycle on SQLite and PostgreSQL: candidates read back as the rules
// need them, and the fenced writes — a login-expired mark or an ephemeral deletion lands only on
// the row its decision was made on, bumps the serial once, and two writers racing write once.
#include "storage/account_store.hpp"
#include "storage/admin_store.hpp"
#include "storage/config_store.hpp"
#include "storage/lifecycle_store.hpp"
#include "storage/schema.hpp"
#include "storage/status_store.hpp"
#include "tests/support/account_world.hpp"
#include "tests/support/peer_rows.hpp"
#include "tests/support/test_db.hpp"

#include <doctest/doctest.h>
#include <soci/soci.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <thread>

using namespace nbm;
using core::lifecycle_rule;

namespace {

const std::string t0 = "2024-05-01 10:00:00.123456+00:00";

struct store_world : test::account_world {
  using account_world::account_world;
  storage::lifecycle_store life() { return storage::lifecycle_store(*sql, db.kind); }

  // A peer in All; `sso` gives it a user and both expiration toggles.
  void add(const std::string& id, int n, bool sso, bool ephemeral, bool connected = false,
           core::session_token token = 0) {
    core::peer p;
    p.id = id;
    p.account_id = account;
    p.key = "key-" + id;
    p.ip = "100.64.0." + std::to_string(n);
    p.name = p.dns_label = id;
    p.user_id = sso ? "user-1" : "";
    p.login_expiration_enabled = p.inactivity_expiration_enabled = sso;
    p.ephemeral = ephemeral;
    p.last_login = t0;
    p.status.last_seen = t0;
    p.status.connected = connected;
    p.status.session_started_at = token;
    accounts().insert_peer(p);
    accounts().add_group_peer(account, all_group, id);
  }
  void settings(bool login, std::int64_t login_ns, bool inactivity, std::int64_t inactivity_ns) {
    auto a = accounts().load_account(account);
    REQUIRE(a);
    auto s = a->settings;
    s.peer_login_expiration_enabled = login;
    s.peer_login_expiration_ns = login_ns;
    s.peer_inactivity_expiration_enabled = inactivity;
    s.peer_inactivity_expiration_ns = inactivity_ns;
    REQUIRE(storage::config_store(*sql, db.kind).update_settings(account, s));
  }
  std::uint64_t serial() { return accounts().load_account(account)->net.serial; }
  core::lifecycle_facts facts(const std::string& id) {
    auto f = life().peer(account, id);
    REQUIRE(f);
    return *f;
  }
  long long memberships(const std::string& id) {
    long long n = 0;
    *sql << "SELECT COUNT(*) FROM group_peers WHERE peer_id = :p", soci::into(n), soci::use(id);
    return n;
  }
};

constexpr std::int64_t hour = 3600LL * 1000 * 1000 * 1000;

} // namespace

TEST_CASE("lifecycle store: candidates, settings and times read back as the rules need them") {
  for (const auto& opts : test::fresh_backends("life_read")) {
    INFO(test::backend_name(opts));
    store_world w(opts);
    w.settings(true, 2 * hour, true, hour / 6);
    w.add("sso", 1, true, false);
    w.add("eph", 2, false, true);
    w.add("plain", 3, false, false);
    auto all = w.life().candidates();
    REQUIRE(all.size() == 2);
    CHECK(all[0].peer_id == "eph");
    CHECK(all[1].peer_id == "sso");
    const auto& s = all[1];
    CHECK(s.sso);
    CHECK(s.login_expiration_enabled);
    CHECK(s.inactivity_expiration_enabled);
    CHECK_FALSE(s.ephemeral);
    CHECK(s.settings == core::lifecycle_settings{true, 2 * hour, true, hour / 6});
    REQUIRE(s.last_login);
    // The time as stored, to the microsecond, on both engines.
    CHECK(core::store_time_ns(*s.last_login) == core::store_time_ns(t0));
    CHECK(core::login_expiry_at(s) == *core::store_time_ns(t0) + 2 * hour);
    CHECK(core::inactivity_expiry_at(s) == *core::store_time_ns(t0) + hour / 6);
    CHECK(core::ephemeral_cleanup_at(all[0], 600'000'000'000) ==
          *core::store_time_ns(t0) + 600'000'000'000);
    auto acc = w.life().account(w.account);
    REQUIRE(acc);
    CHECK(acc->peers.size() == 2);
    CHECK(acc->settings == s.settings);
    CHECK_FALSE(w.life().account("nope"));
    auto plain = w.life().peer(w.account, "plain");
    REQUIRE(plain);
    CHECK_FALSE(core::lifecycle_candidate(*plain));
    CHECK_FALSE(w.life().peer(w.account, "nope"));
    auto serials = w.life().account_serials();
    REQUIRE(serials.size() == 1);
    CHECK(serials[0].first == w.account);
  }
}

TEST_CASE("lifecycle store: a login-expired mark lands once, on the observed row only") {
  for (const auto& opts : test::fresh_backends("life_mark")) {
    INFO(test::backend_name(opts));
    store_world w(opts);
    w.settings(true, hour, false, 0);
    w.add("sso", 1, true, false, true, 77);
    const auto before = w.serial();
    const auto seen = w.facts("sso");

    // Logged in again meanwhile (another replica): the decision made on the old row does not land.
    REQUIRE(w.life().record_login(w.account, "sso", "2024-05-01 11:00:00+00:00"));
    CHECK(w.serial() == before + 1);
    CHECK_FALSE(w.life().mark_login_expired(seen, lifecycle_rule::login));
    CHECK(w.serial() == before + 1);
    CHECK_FALSE(w.facts("sso").login_expired);

    // The period changed meanwhile: refused too.
    auto fresh = w.facts("sso");
    w.settings(true, 2 * hour, false, 0);
    CHECK_FALSE(w.life().mark_login_expired(fresh, lifecycle_rule::login));
    const auto s2 = w.serial();

    // On the row as observed: lands, bumps once, keeps the session token (its stream's disconnect
    // still matches).
    fresh = w.facts("sso");
    CHECK(w.life().mark_login_expired(fresh, lifecycle_rule::login));
    CHECK(w.serial() == s2 + 1);
    auto st = test::read_status(opts, "sso");
    CHECK(st.login_expired);
    CHECK_FALSE(st.connected);
    CHECK(st.token == 77);
    storage::status_store status(opts);
    CHECK(status.disconnect(w.account, "sso", 77));
    // Twice: the second finds it expired already.
    CHECK_FALSE(w.life().mark_login_expired(fresh, lifecycle_rule::login));
    CHECK(w.serial() == s2 + 1);

    // A re-login clears the flag.
    REQUIRE(w.life().record_login(w.account, "sso", "2024-05-02 09:00:00+00:00"));
    auto back = w.facts("sso");
    CHECK_FALSE(back.login_expired);
    CHECK(core::login_expiry_at(back) ==
          *core::store_time_ns("2024-05-02 09:00:00+00:00") + 2 * hour);
  }
}

TEST_CASE("lifecycle store: an inactivity mark is refused once the peer connected or was seen "
          "again") {
  for (const auto& opts : test::fresh_backends("life_inact")) {
    INFO(test::backend_name(opts));
    store_world w(opts);
    w.settings(true, 24 * hour, true, hour / 6);
    w.add("sso", 1, true, false);
    const auto seen = w.facts("sso");
    storage::status_store status(opts);
    REQUIRE(status.connect(w.account, "sso", 100)); // connected on another replica
    CHECK_FALSE(w.life().mark_login_expired(seen, lifecycle_rule::inactivity));
    REQUIRE(status.disconnect(w.account, "sso", 100)); // and gone again: last_seen moved
    CHECK_FALSE(w.life().mark_login_expired(seen, lifecycle_rule::inactivity));
    CHECK_FALSE(test::read_status(opts, "sso").login_expired);
    const auto now = w.facts("sso");
    const auto before = w.serial();
    CHECK(w.life().mark_login_expired(now, lifecycle_rule::inactivity));
    CHECK(test::read_status(opts, "sso").login_expired);
    CHECK(w.serial() == before + 1);
  }
}

TEST_CASE("lifecycle store: an ephemeral peer is deleted only while disconnected as observed") {
  for (const auto& opts : test::fresh_backends("life_eph")) {
    INFO(test::backend_name(opts));
    store_world w(opts);
    w.add("eph", 1, false, true);
    w.add("plain", 2, false, false);
    const auto seen = w.facts("eph");
    storage::status_store status(opts);

    // Reconnected (on another replica): the deletion decided before does not land, neither while
    // it is connected nor after it left again (its last_seen moved).
    REQUIRE(status.connect(w.account, "eph", 500));
    CHECK_FALSE(w.life().delete_ephemeral(seen));
    auto connected = w.facts("eph");
    CHECK_FALSE(w.life().delete_ephemeral(connected)); // connected: never
    REQUIRE(status.disconnect(w.account, "eph", 500));
    CHECK_FALSE(w.life().delete_ephemeral(seen));
    REQUIRE(w.life().peer(w.account, "eph"));

    // Not ephemeral: never.
    CHECK_FALSE(w.life().delete_ephemeral(w.facts("plain")));

    const auto before = w.serial();
    CHECK(w.memberships("eph") == 1);
    CHECK(w.life().delete_ephemeral(w.facts("eph")));
    CHECK_FALSE(w.life().peer(w.account, "eph"));
    CHECK(w.memberships("eph") == 0);
    CHECK(w.memberships("plain") == 1);
    CHECK(w.serial() == before + 1);
  }
}

TEST_CASE("lifecycle store: two replicas deleting the same ephemeral peer at once delete it once") {
  for (const auto& opts : test::fresh_backends("life_race")) {
    INFO(test::backend_name(opts));
    store_world w(opts);
    constexpr int peers = 8;
    for (int i = 0; i < peers; ++i)
      w.add("e" + std::to_string(i), i + 1, false, true);
    std::vector<core::lifecycle_facts> seen;
    for (int i = 0; i < peers; ++i)
      seen.push_back(w.facts("e" + std::to_string(i)));
    const auto before = w.serial();
    std::atomic<int> landed{0};
    std::barrier start(2);
    auto replica = [&] {
      soci::session sql;
      storage::open_session(sql, opts);
      storage::lifecycle_store life(sql, opts.kind);
      start.arrive_and_wait();
      for (const auto& f : seen) {
        for (int attempt = 0;; ++attempt) {
          try {
            if (life.delete_ephemeral(f))
              ++landed;
            break;
          } catch (const std::exception&) { // SQLite: the other writer holds the lock; retry
            if (attempt > 50)
              throw;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
          }
        }
      }
    };
    std::thread a(replica), b(replica);
    a.join();
    b.join();
    CHECK(landed == peers);
    CHECK(w.serial() == before + peers);
    CHECK(w.life().candidates().empty());
  }
}
