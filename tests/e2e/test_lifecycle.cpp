// The peer lifecycle end to end: the real binary with short periods (NBM_EPHEMERAL_LIFETIME, the
// account settings through `admin account settings`), peers on the real wire. One case per rule
// (ephemeral cleanup, login expiration, inactivity expiration), a restart, and two replicas on one
// PostgreSQL database where a peer is deleted once and a peer connected to the other replica is
// not deleted at all.
#include "storage/admin_store.hpp"
#include "storage/lifecycle_store.hpp"
#include "tests/e2e/harness.hpp"

#include <fstream>
#include <sstream>

using namespace nbm;
using namespace nbm::e2e;

namespace {

constexpr const char* denied = "peer login has expired, please log in once more";

void exec(server& s, const std::string& statement) {
  soci::session sql;
  storage::open_session(sql, s.db);
  sql << statement;
}

// Marks a peer registered with a setup key as added by the account's owner (SSO): there is no IdP
// here yet, so the test writes what an SSO registration writes; the serial bump tells the server.
void make_sso(server& s, const std::string& peer_id, bool login_exp, bool inactivity_exp,
              std::int64_t last_login_offset_s) {
  std::string owner;
  {
    soci::session sql;
    storage::open_session(sql, s.db);
    sql << "SELECT id FROM users WHERE account_id = :a", soci::into(owner), soci::use(s.account);
  }
  REQUIRE_FALSE(owner.empty());
  exec(s, "UPDATE peers SET user_id = '" + owner +
              "', login_expiration_enabled = " + (login_exp ? "true" : "false") +
              ", inactivity_expiration_enabled = " + (inactivity_exp ? "true" : "false") +
              " WHERE id = '" + peer_id + "'");
  soci::session sql;
  storage::open_session(sql, s.db);
  REQUIRE(storage::lifecycle_store(sql, s.db.kind)
              .record_login(s.account, peer_id, storage::store_time(last_login_offset_s)));
}

// One Sync that takes the first map and leaves (the server sees a connect, then a disconnect).
tools::call_result sync_once(tools::peer_client& p, const std::string& host) {
  return p.sync(
      host, [](const management::SyncResponse&) { return false; }, 5000);
}

std::vector<std::string> offline_fqdns(stream& st) {
  std::vector<std::string> out;
  const auto last = st.last_response();
  for (const auto& p : last.networkmap().offlinepeers())
    out.push_back(p.fqdn());
  return out;
}

bool lists(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

} // namespace

TEST_CASE("lifecycle: an ephemeral peer is deleted after the lifetime disconnected, the peers "
          "that saw it lose it; a reconnect in time cancels") {
  ::setenv("NBM_EPHEMERAL_LIFETIME", "1s", 1);
  for (auto kind : engines()) {
    INFO(std::string(storage::to_string(kind)));
    server s(kind);
    const auto key = s.setup_key("--name fleet --reusable");
    const auto eph_key = s.setup_key("--name ci --reusable --ephemeral");
    tools::peer_client o(s.target()), e(s.target()), back(s.target());
    REQUIRE(o.login(key, "observer").ok());
    stream so(o, "observer");
    REQUIRE(so.wait_maps(1, 5000ms));
    REQUIRE(e.login(eph_key, "runner").ok());
    REQUIRE(back.login(eph_key, "returner").ok());
    REQUIRE(eventually([&] { return so.last().size() == 2; }));
    const auto runner = s.peer_by_key(e.public_key_b64());
    REQUIRE(runner);
    CHECK(runner->ephemeral);
    const std::string runner_fqdn = runner->dns_label + ".netbird.selfhosted";
    CHECK(lists(so.last(), runner_fqdn));

    // "returner" keeps coming back: a stream, a short break, a stream again that stays.
    REQUIRE(sync_once(back, "returner").code == grpc::StatusCode::CANCELLED);
    stream kept(back, "returner", 8000);
    REQUIRE(kept.wait_maps(1, 5000ms));

    // "runner" syncs once and leaves: about a second later it is gone from the store and from
    // the observer's map, and its key is unknown.
    REQUIRE(sync_once(e, "runner").code == grpc::StatusCode::CANCELLED);
    REQUIRE(eventually([&] { return !s.peer_by_key(e.public_key_b64()); }, 10000ms));
    REQUIRE(eventually([&] { return so.last().size() == 1; }));
    CHECK_FALSE(lists(so.last(), runner_fqdn));
    auto again = sync_once(e, "runner");
    CHECK(again.code == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(again.message == "peer is not registered");
    // The one that came back in time is still there, its stream still open.
    CHECK(s.peer_by_key(back.public_key_b64()).has_value());
    CHECK_FALSE(kept.finished);
    CHECK(s.peer_by_key(back.public_key_b64())->status.connected);
    s.stop(); // ends the streams still open
  }
}

TEST_CASE("lifecycle: login expiration ends the SSO peer's stream, the others see it offline, "
          "Login and Sync get NetBird's answer; a new login clears it") {
  for (auto kind : engines()) {
    INFO(std::string(storage::to_string(kind)));
    server s(kind);
    auto out = s.admin("account settings --account-id " + s.account +
                       " --peer-login-expiration 1h --peer-login-expiration-enabled true");
    REQUIRE_MESSAGE(field(out, "peer_login_expiration") == "1h0m0s", out);
    CHECK(field(out, "peer_login_expiration_enabled") == "true");
    // NetBird's bounds.
    auto bad =
        s.admin("account settings --account-id " + s.account + " --peer-login-expiration 10m");
    CHECK(bad.find("Error: peer login expiration can't be smaller than one hour") !=
          std::string::npos);

    const auto key = s.setup_key("--name fleet --reusable");
    tools::peer_client o(s.target()), u(s.target());
    REQUIRE(o.login(key, "observer").ok());
    REQUIRE(u.login(key, "laptop").ok());
    const auto laptop = *s.peer_by_key(u.public_key_b64());
    const std::string laptop_fqdn = laptop.dns_label + ".netbird.selfhosted";
    // Logged in through SSO almost an hour ago: the login expires in about 2 s.
    make_sso(s, laptop.id, true, false, -3600 + 2);
    stream so(o, "observer");
    stream su(u, "laptop");
    REQUIRE(so.wait_maps(1, 5000ms));
    REQUIRE(su.wait_maps(1, 5000ms));
    CHECK(lists(so.last(), laptop_fqdn));

    REQUIRE(su.wait_end(10000ms));
    CHECK(eventually([&] { return s.peer_by_key(u.public_key_b64())->status.login_expired; }));
    REQUIRE(eventually([&] { return lists(offline_fqdns(so), laptop_fqdn); }));
    CHECK_FALSE(lists(so.last(), laptop_fqdn));
    auto sync = sync_once(u, "laptop");
    CHECK(sync.code == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(sync.message == denied);
    auto login = u.login("", "laptop");
    CHECK(login.code == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(login.message == denied);
    CHECK_FALSE(s.peer_by_key(u.public_key_b64())->status.connected);

    // A new login (SSO, recorded by another process): the peer may sync again and is back in
    // the others' maps.
    soci::session sql;
    storage::open_session(sql, s.db);
    REQUIRE(storage::lifecycle_store(sql, s.db.kind)
                .record_login(s.account, laptop.id, storage::store_time()));
    REQUIRE(eventually([&] { return u.login("", "laptop").ok(); }));
    // (Sync asks the account actor, which reads the account again at its next serial poll.)
    REQUIRE(eventually([&] { return sync_once(u, "laptop").code == grpc::StatusCode::CANCELLED; }));
    stream su2(u, "laptop", 3000);
    REQUIRE(su2.wait_maps(1, 5000ms));
    REQUIRE(eventually([&] { return lists(so.last(), laptop_fqdn); }));
    s.stop(); // ends the streams still open
  }
}

TEST_CASE("lifecycle: inactivity expiration for an SSO peer disconnected longer than the period, "
          "never while it is connected") {
  for (auto kind : engines()) {
    INFO(std::string(storage::to_string(kind)));
    server s(kind);
    auto out =
        s.admin("account settings --account-id " + s.account +
                " --peer-inactivity-expiration 1s --peer-inactivity-expiration-enabled true");
    REQUIRE_MESSAGE(field(out, "peer_inactivity_expiration") == "1s", out);
    const auto key = s.setup_key("--name fleet --reusable");
    tools::peer_client u(s.target());
    REQUIRE(u.login(key, "laptop").ok());
    const auto laptop = *s.peer_by_key(u.public_key_b64());
    make_sso(s, laptop.id, false, true, 0);
    {
      stream su(u, "laptop", 2500); // connected well past the period: stays valid
      REQUIRE(su.wait_maps(1, 5000ms));
      REQUIRE(su.wait_end(5000ms));
      CHECK(su.end.code == grpc::StatusCode::DEADLINE_EXCEEDED); // we left; not closed by server
    }
    CHECK_FALSE(s.peer_by_key(u.public_key_b64())->status.login_expired);
    // Disconnected now: a second later its login has expired.
    REQUIRE(eventually([&] { return s.peer_by_key(u.public_key_b64())->status.login_expired; },
                       10000ms));
    auto sync = sync_once(u, "laptop");
    CHECK(sync.code == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(sync.message == denied);
  }
}

TEST_CASE(
    "lifecycle: a restart derives the schedules from the store; an ephemeral peer whose "
    "lifetime ran out while no server ran gets the whole lifetime from start-up, as NetBird") {
  ::setenv("NBM_EPHEMERAL_LIFETIME", "3s", 1);
  for (auto kind : engines()) {
    INFO(std::string(storage::to_string(kind)));
    server s(kind);
    const auto eph_key = s.setup_key("--name ci --reusable --ephemeral");
    tools::peer_client e(s.target());
    REQUIRE(e.login(eph_key, "runner").ok());
    REQUIRE(sync_once(e, "runner").code == grpc::StatusCode::CANCELLED);
    s.stop(); // before its lifetime ran out
    REQUIRE(s.peer_by_key(e.public_key_b64()).has_value());
    std::this_thread::sleep_for(3500ms);
    REQUIRE(s.peer_by_key(e.public_key_b64()).has_value()); // nobody ran meanwhile
    const auto started = std::chrono::steady_clock::now();
    s.start();
    // NetBird's loadEphemeralPeers: the peer could not reconnect while no server ran, so it gets
    // the lifetime again from start-up; then it is deleted.
    CHECK(eventually([&] { return !s.peer_by_key(e.public_key_b64()); }, 10000ms));
    CHECK(std::chrono::steady_clock::now() - started >= 3s);
    const auto log = read_file(s.dir + "/server.log");
    CHECK(occurrences(log, "ephemeral peer ") == 1);
  }
}

TEST_CASE("lifecycle: two replicas on one PostgreSQL database delete a disconnected ephemeral "
          "peer once, and never one connected to the other replica") {
  if (!test::postgres_available())
    return;
  ::setenv("NBM_EPHEMERAL_LIFETIME", "1s", 1);
  server a(storage::engine::postgres);
  replica b(a);
  const auto eph_key = a.setup_key("--name ci --reusable --ephemeral");
  tools::peer_client gone(a.target());
  REQUIRE(gone.login(eph_key, "gone").ok());
  // "moved" has moved_a's key on replica B too (same key file).
  const std::string key_file = a.dir + "/moved.key";
  tools::peer_client m_a(a.target(), key_file), m_b(b.target(), key_file);
  REQUIRE(m_a.login(eph_key, "moved").ok());
  REQUIRE(m_b.fetch_server_key().ok());

  // "moved" leaves replica A (A starts its lifetime) and comes back on replica B at once, to stay.
  REQUIRE(sync_once(m_a, "moved").code == grpc::StatusCode::CANCELLED);
  stream on_b(m_b, "moved", 6000);
  REQUIRE(on_b.wait_maps(1, 5000ms));
  // "gone" syncs on A and leaves for good.
  REQUIRE(sync_once(gone, "gone").code == grpc::StatusCode::CANCELLED);
  const auto gone_id = a.peer_by_key(gone.public_key_b64())->id;
  const auto moved_id = a.peer_by_key(m_a.public_key_b64())->id;

  REQUIRE(eventually([&] { return !a.peer_by_key(gone.public_key_b64()); }, 10000ms));
  // Past both replicas' deadlines and a sweep of polls: "moved" is still there, still connected
  // on B, and only one of the two replicas deleted "gone".
  std::this_thread::sleep_for(3000ms);
  auto moved = a.peer_by_key(m_a.public_key_b64());
  REQUIRE(moved.has_value());
  CHECK(moved->status.connected);
  CHECK_FALSE(on_b.finished);
  const auto log_a = read_file(a.dir + "/server.log"), log_b = read_file(b.log);
  CHECK(occurrences(log_a + log_b, "ephemeral peer " + gone_id + " ") == 1);
  CHECK(occurrences(log_a + log_b, "ephemeral peer " + moved_id + " ") == 0);
  b.stop(); // ends the stream on B
  a.stop();
}
