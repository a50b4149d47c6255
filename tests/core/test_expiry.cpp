// The lifecycle rules and the deadline book, without a store or actors: each rule's deadline from
// the stored facts, and the book's reaction to landed sessions, derivations and due deadlines.
#include "core/expiry.hpp"

#include <doctest/doctest.h>

using namespace nbm::core;

namespace {

constexpr unix_ns s = 1'000'000'000;
constexpr unix_ns hour = 3600 * s;
const std::string t0 = "2024-05-01 10:00:00+00:00";
const unix_ns t0_ns = 1714557600 * s;

lifecycle_facts sso_peer(const std::string& id) {
  lifecycle_facts f;
  f.account_id = "acc";
  f.peer_id = id;
  f.sso = true;
  f.login_expiration_enabled = f.inactivity_expiration_enabled = true;
  f.last_login = f.last_seen = t0;
  f.settings = {true, 24 * hour, true, hour / 6};
  return f;
}

lifecycle_facts ephemeral_peer(const std::string& id) {
  lifecycle_facts f;
  f.account_id = "acc";
  f.peer_id = id;
  f.ephemeral = true;
  f.last_seen = t0;
  f.settings = {true, 24 * hour, true, hour / 6}; // the account's, as every row of it carries
  return f;
}

} // namespace

TEST_CASE("expiry rules: login expiration only for SSO peers with both toggles on") {
  auto f = sso_peer("p");
  REQUIRE(store_time_ns(t0) == t0_ns);
  CHECK(login_expiry_at(f) == t0_ns + 24 * hour);
  CHECK(store_time_ns("2024-05-01 12:00:00+02:00") == t0_ns); // zones count
  auto g = f;
  g.sso = false; // setup-key peers never expire
  CHECK_FALSE(login_expiry_at(g));
  g = f;
  g.login_expiration_enabled = false;
  CHECK_FALSE(login_expiry_at(g));
  g = f;
  g.settings.login_enabled = false;
  CHECK_FALSE(login_expiry_at(g));
  g = f;
  g.login_expired = true; // marked already
  CHECK_FALSE(login_expiry_at(g));
  g = f;
  g.connected = true; // connected or not: the login's age counts
  CHECK(login_expiry_at(g) == t0_ns + 24 * hour);
  g.last_login.reset();
  CHECK_FALSE(login_expiry_at(g));
}

TEST_CASE("expiry rules: inactivity only while disconnected; ephemeral cleanup likewise") {
  auto f = sso_peer("p");
  CHECK(inactivity_expiry_at(f) == t0_ns + hour / 6);
  auto g = f;
  g.connected = true;
  CHECK_FALSE(inactivity_expiry_at(g));
  g = f;
  g.settings.inactivity_enabled = false;
  CHECK_FALSE(inactivity_expiry_at(g));
  g = f;
  g.inactivity_expiration_enabled = false;
  CHECK_FALSE(inactivity_expiry_at(g));
  g = f;
  g.last_seen.reset(); // never seen: long ago, as Go's zero time
  CHECK(*inactivity_expiry_at(g) < 0);

  auto e = ephemeral_peer("e");
  CHECK(ephemeral_cleanup_at(e, default_ephemeral_lifetime_ns) == t0_ns + 600 * s);
  e.connected = true;
  CHECK_FALSE(ephemeral_cleanup_at(e, default_ephemeral_lifetime_ns));
  CHECK_FALSE(ephemeral_cleanup_at(sso_peer("x"), default_ephemeral_lifetime_ns));
  CHECK(lifecycle_candidate(ephemeral_peer("e")));
  CHECK(lifecycle_candidate(sso_peer("x")));
  lifecycle_facts plain;
  plain.peer_id = "plain";
  CHECK_FALSE(lifecycle_candidate(plain));
}

TEST_CASE("deadline schedule: earliest first; moved and cancelled deadlines never fire") {
  deadline_schedule d;
  d.set(0, lifecycle_rule::login, 50);
  d.set(1, lifecycle_rule::ephemeral, 10);
  d.set(2, lifecycle_rule::inactivity, 30);
  d.set(1, lifecycle_rule::ephemeral, 40); // moved
  d.cancel(2, lifecycle_rule::inactivity);
  CHECK(d.live() == 2);
  CHECK(d.next() == 40);
  CHECK(d.take_due(39).empty());
  auto due = d.take_due(45);
  REQUIRE(due.size() == 1);
  CHECK(due[0].first == 1);
  CHECK(due[0].second == lifecycle_rule::ephemeral);
  CHECK(d.at(1, lifecycle_rule::ephemeral) == std::nullopt);
  CHECK(d.next() == 50);
  // Churn: the heap never holds more than about twice the live deadlines.
  for (int round = 0; round < 100; ++round)
    for (deadline_schedule::slot_id i = 0; i < 1000; ++i)
      d.set(i, lifecycle_rule::login, 1000 + round * 1000 + i);
  CHECK(d.live() == 1000);
  CHECK(d.heap_entries() <= 2 * 1000 + 1024 + 1);
  CHECK(d.take_due(1000 + 99 * 1000 + 999).size() == 1000);
  CHECK(d.live() == 0);
  CHECK_FALSE(d.next());
}

TEST_CASE("expiry book: landed sessions reschedule; derivation replaces an account's peers") {
  expiry_book b(600 * s);
  b.upsert(sso_peer("sso"));
  b.upsert(ephemeral_peer("eph"));
  lifecycle_facts plain;
  plain.account_id = "acc";
  plain.peer_id = "plain";
  b.upsert(plain); // not a candidate: not kept
  CHECK(b.peers() == 2);
  CHECK(b.deadline("sso", lifecycle_rule::login) == t0_ns + 24 * hour);
  CHECK(b.deadline("sso", lifecycle_rule::inactivity) == t0_ns + hour / 6);
  CHECK(b.deadline("eph", lifecycle_rule::ephemeral) == t0_ns + 600 * s);
  CHECK(b.next() == t0_ns + 600 * s);

  // A reconnect in time cancels the cleanup and the inactivity; the login deadline stands.
  b.on_connect("eph");
  b.on_connect("sso");
  CHECK_FALSE(b.deadline("eph", lifecycle_rule::ephemeral));
  CHECK_FALSE(b.deadline("sso", lifecycle_rule::inactivity));
  CHECK(b.deadline("sso", lifecycle_rule::login) == t0_ns + 24 * hour);
  CHECK(b.take_due(t0_ns + hour).empty());
  // Disconnecting starts both periods afresh.
  b.on_disconnect("eph", t0_ns + hour);
  b.on_disconnect("sso", t0_ns + hour);
  CHECK(b.deadline("eph", lifecycle_rule::ephemeral) == t0_ns + hour + 600 * s);
  CHECK(b.deadline("sso", lifecycle_rule::inactivity) == t0_ns + hour + hour / 6);
  b.on_connect("unknown"); // peers the rules do not concern: nothing
  b.on_disconnect("unknown", t0_ns);
  CHECK(b.peers() == 2);

  CHECK(b.take_due(t0_ns + hour + 600 * s - 1).empty());
  auto due = b.take_due(t0_ns + hour + 600 * s); // both periods are 10 min
  REQUIRE(due.size() == 2);
  if (due[0].peer_id != "eph")
    std::swap(due[0], due[1]);
  CHECK(due[0].peer_id == "eph");
  CHECK(due[0].account_id == "acc");
  CHECK(due[0].rule == lifecycle_rule::ephemeral);
  CHECK(due[1].peer_id == "sso");
  CHECK(due[1].rule == lifecycle_rule::inactivity);
  CHECK(b.deadline("sso", lifecycle_rule::login) == t0_ns + 24 * hour); // still pending

  // The account's settings changed (inactivity off), and "eph" is gone from the store.
  auto changed = sso_peer("sso");
  changed.settings.inactivity_enabled = false;
  b.derive_account("acc", changed.settings, {changed});
  CHECK(b.peers() == 1);
  CHECK_FALSE(b.knows("eph"));
  CHECK_FALSE(b.deadline("sso", lifecycle_rule::inactivity));
  b.on_disconnect("sso", t0_ns + 2 * hour);
  CHECK_FALSE(b.deadline("sso", lifecycle_rule::inactivity)); // the account's setting is off
  b.derive_account("acc", changed.settings, {});
  CHECK(b.peers() == 0);
  CHECK(b.accounts() == 0);
  CHECK(b.scheduled() == 0);
}

TEST_CASE("expiry rules: the Login/Sync gate is NetBird's peerLoginExpired (time or stored mark)") {
  account a;
  a.settings.peer_login_expiration_enabled = true;
  a.settings.peer_login_expiration_ns = hour;
  peer p;
  p.user_id = "u";
  p.login_expiration_enabled = true;
  p.last_login = t0;
  const double t0_s = static_cast<double>(t0_ns / s);
  CHECK_FALSE(must_log_in_again(a, p, t0_s + 3599));
  CHECK(must_log_in_again(a, p, t0_s + 3600)); // by time
  p.login_expiration_enabled = false;
  CHECK_FALSE(must_log_in_again(a, p, t0_s + 3600));
  p.status.login_expired = true; // marked (e.g. by inactivity): whatever the toggles say
  CHECK(must_log_in_again(a, p, t0_s));
  p.user_id.clear();
  CHECK(must_log_in_again(a, p, t0_s));
}

TEST_CASE("expiry book: at start-up every ephemeral peer gets the whole lifetime from then "
          "(NetBird's loadEphemeralPeers); later disconnects count from themselves") {
  const unix_ns lifetime = 600 * s;
  expiry_book book(lifetime);
  const unix_ns start = t0_ns + 5 * hour; // the server was down for hours
  book.ephemeral_not_before(start + lifetime);
  auto old = ephemeral_peer("old"); // disconnected at t0: would have been due at t0 + 10 min
  auto fresh = ephemeral_peer("fresh");
  fresh.last_seen = "2024-05-01 15:20:00+00:00"; // disconnected after start-up
  auto sso = sso_peer("sso");                    // the floor is for ephemeral cleanup only
  book.upsert(old);
  book.upsert(fresh);
  book.upsert(sso);
  CHECK(book.deadline("old", lifecycle_rule::ephemeral) == start + lifetime);
  CHECK(book.due(old, lifecycle_rule::ephemeral) == start + lifetime);
  CHECK(book.deadline("fresh", lifecycle_rule::ephemeral) ==
        *store_time_ns("2024-05-01 15:20:00+00:00") + lifetime);
  CHECK(book.deadline("sso", lifecycle_rule::inactivity) == t0_ns + hour / 6);
  // Nothing is due before the floor.
  CHECK(book.take_due(start + lifetime - 1).size() == 1); // the SSO peer's inactivity
  auto due = book.take_due(start + lifetime);
  REQUIRE(due.size() == 1);
  CHECK(due[0].peer_id == "old");
  // A disconnect after start-up counts from itself.
  book.on_connect("fresh");
  book.on_disconnect("fresh", start + 2 * hour);
  CHECK(book.deadline("fresh", lifecycle_rule::ephemeral) == start + 2 * hour + lifetime);
  // Connected ephemeral peers have no deadline, floor or not.
  auto on = ephemeral_peer("on");
  on.connected = true;
  book.upsert(on);
  CHECK_FALSE(book.deadline("on", lifecycle_rule::ephemeral));
  CHECK_FALSE(book.due(on, lifecycle_rule::ephemeral));
}
