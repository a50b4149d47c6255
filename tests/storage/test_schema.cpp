// NetBird's schema and data: stores in NetBird's SQLite schema (tests/fixtures, written for these
// tests) load, migrate and read back with concrete values, on SQLite and (copied) on PostgreSQL.
#include "storage/account_store.hpp"
#include "storage/schema.hpp"
#include "tests/storage/store_fixtures.hpp"
#include "tests/support/peer_rows.hpp"
#include "tests/support/test_db.hpp"

#include <doctest/doctest.h>
#include <soci/soci.h>

#include <algorithm>
#include <fstream>
#include <thread>

using namespace nbm;
using storage::engine;

namespace {

const std::string& acc_id = test::fixture_account;
using test::load_fixture;

core::account load(const storage::db_options& opts, const std::string& id) {
  return test::load_account(opts, id);
}

bool has(const std::vector<std::string>& v, const std::string& x) {
  return test::contains(v, x);
}

} // namespace

TEST_CASE("store_basic.sql: a NetBird 0.3x store opens, migrates and reads back") {
  for (const auto& opts : test::fresh_backends("fixture_store")) {
    INFO(test::backend_name(opts));
    load_fixture("store_basic.sql", opts);
    auto a = load(opts, acc_id);
    CHECK(a.domain == "fixture.test");
    CHECK(a.domain_category == "private");
    CHECK(a.is_domain_primary_account);
    CHECK(a.net.net == "100.64.0.0/16"); // Mask "//8AAA==" is 255.255.0.0
    CHECK(a.net.identifier == "netid-fixture-basic-0001");
    CHECK(a.settings.peer_login_expiration_ns == 86400000000000);
    CHECK_FALSE(a.settings.peer_login_expiration_enabled);

    REQUIRE(a.peers.size() == 1);
    const auto& p = a.peers[0];
    CHECK(p.id == "peerfixturesolo00001");
    CHECK(p.key == "CSmqu0OuIzCDHejpdxrnfFSHisO5BYodNVCJlubNeWw=");
    CHECK(p.ip == "100.64.10.1"); // the JSON string column, decoded
    CHECK(p.dns_label == "solo");
    CHECK(p.name == "solo");
    CHECK(p.user_id == "u-owner-0000000000001");
    CHECK(p.meta.wt_version == "0.27.4");
    CHECK_FALSE(p.status.connected);
    CHECK_FALSE(p.status.login_expired);
    CHECK(p.status.session_started_at == 0); // added by the migration, NOT NULL DEFAULT 0
    REQUIRE(p.status.last_seen.has_value());
    CHECK(test::parse_db_time(*p.status.last_seen) ==
          doctest::Approx(1714979289.0)); // 2024-05-06 07:08:09Z

    // The plain setup key was hashed: base64(SHA-256("3F1E7B2A-9C4D-4E6F-8A0B-1C2D3E4F5A6B")).
    REQUIRE(a.setup_keys.size() == 1);
    const auto& k = a.setup_keys[0];
    CHECK(k.key == "ZJKdQwEnzPC9YAF+5hlxdN2I8mxHnzxcHDlTzog3O0M=");
    CHECK(k.key_secret == "3F1E7****");
    CHECK(k.name == "Office key");
    CHECK(k.type == "reusable");
    CHECK_FALSE(k.revoked);
    CHECK(k.used_times == 0);
    CHECK(k.usage_limit == 0);
    CHECK_FALSE(k.ephemeral);
    CHECK(k.auto_groups == std::vector<std::string>{"grpfixtureall0000001"});
    CHECK_FALSE(k.last_used.has_value());

    REQUIRE(a.policies.size() == 1);
    const auto& pol = a.policies[0];
    CHECK(pol.name == "Default");
    CHECK(pol.enabled);
    REQUIRE(pol.rules.size() == 1);
    const auto& r = pol.rules[0];
    CHECK(r.id == "rulfixturedefault001");
    CHECK(r.action == "accept");
    CHECK(r.protocol == "all");
    CHECK(r.bidirectional);
    CHECK(r.enabled);
    CHECK(r.sources == std::vector<std::string>{"grpfixtureall0000001"});
    CHECK(r.destinations == std::vector<std::string>{"grpfixtureall0000001"});
    CHECK(r.ports.empty());

    auto* all = a.find_group_by_name("All");
    REQUIRE(all != nullptr);
    CHECK(all->id == "grpfixtureall0000001");
    CHECK(all->issued == "api");

    REQUIRE(a.users.size() == 3);
    CHECK(a.users[0].role == "admin"); // by id: u-admin-, u-owner-, u-user-
    CHECK(a.users[1].id == "u-owner-0000000000001");
    CHECK(a.users[1].role == "owner");
    CHECK(a.users[1].name.empty()); // NOT NULL DEFAULT '' column added to an older store
    REQUIRE(a.tokens.size() == 2);
    CHECK(a.tokens[0].user_id == "u-owner-0000000000001");
    // base64(SHA-256("nbp_Fx7Qm2LwZr9KpT4vNc8YhJ3sBd6GeA1uXo5n")), as stored
    CHECK(a.tokens[0].hashed_token == "ZDrdiLLyyRyxTcW8h/PC4w3uNxAXnd6MwIWhDfiwlZQ=");

    // The second account is there too.
    soci::session sql;
    storage::open_session(sql, opts);
    storage::account_store st(sql, opts.kind);
    CHECK(st.account_ids().size() == 2);
    CHECK_FALSE(st.load_account("no-such-account").has_value());
    auto byk = st.peer_by_key("CSmqu0OuIzCDHejpdxrnfFSHisO5BYodNVCJlubNeWw=");
    REQUIRE(byk.has_value());
    CHECK(byk->id == "peerfixturesolo00001");
    CHECK_FALSE(st.peer_by_id("other-account", "peerfixturesolo00001").has_value());
    // The legacy plain setup_key column of peers went with the hashing, as in NetBird.
    CHECK_FALSE(has(storage::existing_columns(sql, opts.kind, "peers"), "setup_key"));
  }
}

TEST_CASE("store_login_expiry.sql: login expiration state reads back") {
  for (const auto& opts : test::fresh_backends("fixture_expired")) {
    INFO(test::backend_name(opts));
    load_fixture("store_login_expiry.sql", opts);
    auto a = load(opts, acc_id);
    CHECK(a.settings.peer_login_expiration_enabled);
    CHECK(a.settings.peer_login_expiration_ns == 3600000000000);
    REQUIRE(a.peers.size() == 5);
    auto* expired = a.find_peer("p2-stale");
    REQUIRE(expired != nullptr);
    CHECK(expired->key == "s0emLVZ2QtQ+ojj2azznBhZFlVvoBFxcCurXS93mtnc=");
    CHECK(expired->ip == "100.64.20.2");
    CHECK(expired->dns_label == "stale");
    CHECK(expired->status.login_expired);
    CHECK_FALSE(expired->status.connected);
    CHECK(expired->login_expiration_enabled);
    CHECK(expired->user_id == "u-admin-0000000000001");
    REQUIRE(expired->last_login.has_value());
    // 2024-06-03 08:15:42.987654321+01:00
    CHECK(test::parse_db_time(*expired->last_login) ==
          doctest::Approx(1717398942.99).epsilon(1e-9));
    auto* dup = a.find_peer("p4-worker");
    REQUIRE(dup != nullptr);
    CHECK(dup->meta.hostname == "worker"); // the same host name as p3-worker
    CHECK(dup->dns_label == "worker-1");
    CHECK(dup->inactivity_expiration_enabled);
    CHECK_FALSE(dup->ephemeral);
    auto* active = a.find_peer("p5-fresh");
    REQUIRE(active != nullptr);
    CHECK_FALSE(active->status.login_expired);
    CHECK(active->meta.hostname == "fresh");
    CHECK(active->meta.os == "Ubuntu");
    CHECK(active->meta.environment_json == "{\"Cloud\":\"\",\"Platform\":\"\"}");
    auto* ssh = a.find_peer("p1-gateway");
    REQUIRE(ssh != nullptr);
    CHECK(ssh->ssh_key.rfind("ssh-ed25519 ", 0) == 0);
  }
}

TEST_CASE("store_v1.sql: an old-format store with IdP account ids and key peer ids opens") {
  for (const auto& opts : test::fresh_backends("fixture_v1")) {
    INFO(test::backend_name(opts));
    load_fixture("store_v1.sql", opts);
    auto a = load(opts, "auth0|65a1b2c3d4e5f60718293a4b");
    CHECK(a.net.net == "100.64.0.0/10"); // Mask "/8AAAA==" is 255.192.0.0
    CHECK(a.peers.size() == 2);
    auto* desk = a.find_peer("rpUPzp8lc1Wf9bSNwxOZfJ5pQMtQWhUa0Nt5Umojw5o=");
    REQUIRE(desk != nullptr);
    CHECK(desk->key == desk->id); // the JSON store's peers: the key is the id
    CHECK(desk->ip == "100.64.0.1");
    CHECK(desk->dns_label == "desk");
    CHECK(a.find_peer("UDdqEGeGEZQgyXJREBL2nHNOQWypuyIhFeata8kU9K8=")->dns_label == "desk-1");
    CHECK(a.setup_keys.size() == 2);
    CHECK(a.setup_keys[0].id == "1000000001");
    CHECK(a.setup_keys[0].key_secret == "0A1B2****");
    CHECK(a.setup_keys[0].used_times == 1);
    int ephemeral = 0;
    soci::session sql;
    storage::open_session(sql, opts);
    storage::account_store st(sql, opts.kind);
    for (const auto& id : st.account_ids())
      for (const auto& p : load(opts, id).peers)
        ephemeral += p.ephemeral;
    CHECK(ephemeral == 1); // the CI runner of github|31337
    for (const auto& k : a.setup_keys)
      CHECK(k.key_secret.size() == 9);
  }
}

TEST_CASE("schema: created on an empty store with every core table and column; idempotent") {
  for (const auto& opts : test::fresh_backends("schema_fresh")) {
    INFO(test::backend_name(opts));
    soci::session sql;
    storage::open_session(sql, opts);
    storage::ensure_schema(sql, opts.kind);
    for (const auto& t : {"accounts", "users", "personal_access_tokens", "peers", "groups",
                          "group_peers", "policies", "policy_rules", "setup_keys", "routes",
                          "name_server_groups", "posture_checks"}) {
      INFO(t);
      CHECK_FALSE(storage::existing_columns(sql, opts.kind, t).empty());
    }
    auto peers = storage::existing_columns(sql, opts.kind, "peers");
    for (const auto& c : {"peer_status_session_started_at", "peer_status_requires_approval",
                          "peer_status_last_seen", "location_connection_ip", "meta_capabilities"})
      CHECK(has(peers, c));
    CHECK(has(storage::existing_columns(sql, opts.kind, "name_server_groups"), "primary"));
    // Run again: nothing changes, nothing fails.
    storage::ensure_schema(sql, opts.kind);
    CHECK(storage::existing_columns(sql, opts.kind, "peers") == peers);
    // session_started_at is NOT NULL DEFAULT 0.
    sql << "INSERT INTO peers (id, account_id, \"key\", ip, dns_label) VALUES ('x', 'a', 'k', "
           "'\"1\"', 'x')";
    long long tok = -1;
    sql << "SELECT peer_status_session_started_at FROM peers WHERE id = 'x'", soci::into(tok);
    CHECK(tok == 0);
    CHECK_THROWS(sql << "UPDATE peers SET peer_status_session_started_at = NULL WHERE id = 'x'");
    // The unique indexes NetBird declares hold.
    CHECK_THROWS(
        sql << "INSERT INTO peers (id, account_id, \"key\", ip, dns_label) VALUES ('y', 'a', 'k', "
               "'\"2\"', 'y')");
    CHECK_THROWS(
        sql << "INSERT INTO peers (id, account_id, \"key\", ip, dns_label) VALUES ('z', 'a', 'k2', "
               "'\"1\"', 'z')");
  }
}

TEST_CASE(
    "schema: an older store gains missing columns, keeps its data, renames required_approval") {
  for (const auto& opts : test::fresh_backends("schema_old")) {
    INFO(test::backend_name(opts));
    const std::string b = opts.kind == engine::postgres ? "boolean" : "numeric";
    test::exec_sql(
        opts, "CREATE TABLE peers (id text PRIMARY KEY, account_id text, \"key\" text, ip text, "
              "name text, dns_label text, peer_status_connected " +
                  b + ", peer_status_login_expired " + b + ", peer_status_required_approval " + b +
                  ")");
    test::exec_sql(
        opts, "INSERT INTO peers VALUES ('old1', 'acc', 'k1', '\"100.64.0.1\"', 'n', 'n', true, "
              "false, true)");
    soci::session sql;
    storage::open_session(sql, opts);
    storage::ensure_schema(sql, opts.kind);
    auto cols = storage::existing_columns(sql, opts.kind, "peers");
    CHECK(has(cols, "peer_status_requires_approval"));
    CHECK_FALSE(has(cols, "peer_status_required_approval"));
    CHECK(has(cols, "peer_status_session_started_at"));
    storage::account_store st(sql, opts.kind);
    auto p = st.peer_by_id("acc", "old1");
    REQUIRE(p.has_value());
    CHECK(p->status.requires_approval); // the value moved with the rename
    CHECK(p->status.connected);
    CHECK(p->status.session_started_at == 0);
    CHECK(p->ip == "100.64.0.1");
  }
}

TEST_CASE("schema: legacy groups.peers JSON becomes group_peers rows") {
  for (const auto& opts : test::fresh_backends("schema_groups")) {
    INFO(test::backend_name(opts));
    test::exec_sql(opts,
                   "CREATE TABLE \"groups\" (id text PRIMARY KEY, account_id text, name text, "
                   "issued text, peers text)");
    test::exec_sql(opts,
                   "INSERT INTO \"groups\" VALUES ('g1', 'acc', 'All', 'api', '[\"p1\",\"p2\"]'), "
                   "('g2', 'acc', 'Empty', 'api', '[]'), ('g3', 'acc', 'Null', 'api', NULL)");
    test::exec_sql(opts, "CREATE TABLE accounts (id text PRIMARY KEY)");
    test::exec_sql(opts, "INSERT INTO accounts (id) VALUES ('acc')");
    soci::session sql;
    storage::open_session(sql, opts);
    storage::ensure_schema(sql, opts.kind);
    storage::account_store st(sql, opts.kind);
    auto a = st.load_account("acc");
    REQUIRE(a.has_value());
    auto* g = a->find_group_by_name("All");
    REQUIRE(g != nullptr);
    CHECK(g->peers == std::vector<std::string>{"p1", "p2"});
    CHECK(a->find_group_by_name("Empty")->peers.empty());
    CHECK_FALSE(has(storage::existing_columns(sql, opts.kind, "groups"), "peers"));
  }
}

TEST_CASE("schema: replicas migrating one PostgreSQL at once do not collide") {
  if (!test::postgres_available())
    return;
  auto opts = test::fresh_store(engine::postgres, "schema_concurrent");
  std::atomic<int> errors{0};
  std::vector<std::thread> ths;
  for (int i = 0; i < 4; ++i)
    ths.emplace_back([&] {
      try {
        soci::session sql;
        storage::open_session(sql, opts);
        storage::ensure_schema(sql, opts.kind);
      } catch (const std::exception& e) {
        MESSAGE(e.what());
        ++errors;
      }
    });
  for (auto& t : ths)
    t.join();
  CHECK(errors == 0);
}

TEST_CASE("column-scoped peer writes never touch the session status columns") {
  for (const auto& opts : test::fresh_backends("scoped_writes")) {
    INFO(test::backend_name(opts));
    test::seed_peers(opts, 1);
    test::exec_sql(
        opts, "UPDATE peers SET peer_status_connected = true, peer_status_session_started_at = 77, "
              "peer_status_last_seen = '2030-01-01 00:00:00+00:00', "
              "peer_status_login_expired = false WHERE id = 'p0'");
    const auto before = test::read_status(opts, "p0");
    soci::session sql;
    storage::open_session(sql, opts);
    storage::account_store st(sql, opts.kind);
    core::peer_meta m;
    m.hostname = "laptop";
    m.os = "Debian";
    m.wt_version = "0.60.0";
    CHECK(st.update_peer_meta("acc1", "p0", m));
    CHECK(st.rename_peer("acc1", "p0", "Laptop", "laptop"));
    CHECK(st.update_last_login("acc1", "p0", "2031-02-03 04:05:06+00:00"));
    CHECK(st.update_location("acc1", "p0", {"203.0.113.7", "DE", "Berlin", 2950159}));
    CHECK_FALSE(st.rename_peer("other", "p0", "x", "x")); // wrong account: nothing
    const auto after = test::read_status(opts, "p0");
    CHECK(after.connected == before.connected);
    CHECK(after.token == 77);
    CHECK(after.last_seen == before.last_seen);
    CHECK(after.login_expired == before.login_expired);
    auto p = st.peer_by_id("acc1", "p0");
    REQUIRE(p.has_value());
    CHECK(p->meta.hostname == "laptop");
    CHECK(p->meta.wt_version == "0.60.0");
    CHECK(p->name == "Laptop");
    CHECK(p->location.connection_ip == "203.0.113.7");
    CHECK(p->location.geo_name_id == 2950159);
    REQUIRE(p->last_login.has_value());
    CHECK(test::parse_db_time(*p->last_login) == doctest::Approx(1927857906.0));
  }
}

TEST_CASE("opening a bad store gives a clear store_error") {
  auto path = test::temp_dir() + "/not-a-db.db";
  {
    std::ofstream f(path);
    f << "this is not an SQLite database, just text that is long enough to have a header "
         "page......";
  }
  storage::db_options bad{engine::sqlite, path, 1};
  CHECK_THROWS_WITH_AS(
      [&] {
        soci::session sql;
        storage::open_session(sql, bad);
        storage::ensure_schema(sql, bad.kind);
      }(),
      doctest::Contains("not-a-db.db"), storage::store_error);
  storage::db_options dsn{engine::postgres,
                          "host=127.0.0.1 port=1 dbname=x user=x connect_timeout=2", 1};
  CHECK_THROWS_WITH_AS(
      [&] {
        soci::session sql;
        storage::open_session(sql, dsn);
      }(),
      doctest::Contains("cannot open postgres store"), storage::store_error);
  // The password never appears in the error (it reaches logs and answers).
  for (const std::string& target :
       {std::string("host=127.0.0.1 port=1 dbname=x user=x password=s3cr3t connect_timeout=2"),
        std::string("host=127.0.0.1 port=1 password = 'se cr\\'et' connect_timeout=2"),
        std::string("postgres://x:s3cr3t@127.0.0.1:1/x?connect_timeout=2")}) {
    INFO(target);
    storage::db_options with_password{engine::postgres, target, 1};
    try {
      soci::session sql;
      storage::open_session(sql, with_password);
      FAIL("opened a store on port 1");
    } catch (const storage::store_error& e) {
      const std::string what = e.what();
      CHECK(what.find("cannot open postgres store") != std::string::npos);
      CHECK(what.find("s3cr3t") == std::string::npos);
      CHECK(what.find("\\'et") == std::string::npos);
      CHECK(what.find("***") != std::string::npos);
    }
  }
}
