// Typed writes in NetBird's encodings, setup-key use under races, the full catalog, NetBird's
// start-up migrations (duplicate keys, public ids, new-field defaults) and copies both ways, on
// SQLite and PostgreSQL.
#include "core/registration.hpp"
#include "crypto/crypto.hpp"
#include "storage/account_store.hpp"
#include "storage/schema.hpp"
#include "tests/storage/store_fixtures.hpp"
#include "tests/support/peer_rows.hpp"
#include "tests/support/test_db.hpp"

#include <doctest/doctest.h>
#include <soci/soci.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

using namespace nbm;
using storage::engine;

namespace {

// An account holding one of everything, with times in the form every engine reads back unchanged
// (UTC, "+00:00").
core::account full_account() {
  core::account a;
  a.id = "acc-full";
  a.created_by = "u1";
  a.created_at = "2024-10-02 14:03:06.778746+00:00";
  a.domain = "example.org";
  a.domain_category = "private";
  a.is_domain_primary_account = true;
  a.net = {"net-ident", "100.64.0.0/10", "netbird.selfhosted", 7};
  a.dns_disabled_management_groups = {"g2"};
  auto& s = a.settings;
  s.peer_login_expiration_enabled = true;
  s.peer_login_expiration_ns = 86400000000000;
  s.peer_inactivity_expiration_ns = 600000000000;
  s.groups_propagation_enabled = true;
  s.jwt_groups_claim_name = "groups";
  s.jwt_allow_groups = {"admins"};
  s.routing_peer_dns_resolution_enabled = true;
  s.dns_domain = "corp.example";
  s.extra_user_approval_required = true;
  s.extra_integrated_validator = "validator";
  s.extra_integrated_validator_groups = {"g1"};
  s.lazy_connection_enabled = true;

  core::peer p;
  p.id = "p1";
  p.account_id = a.id;
  p.key = "aWgOP7dYvN6ZbZ3uR5bXo3h1DBnGJ6mrr5JcMZQ0oXM=";
  p.ip = "100.64.0.5";
  p.name = "laptop";
  p.dns_label = "laptop";
  p.user_id = "u1";
  p.ssh_key = "ssh-ed25519 AAAA";
  p.ssh_enabled = true;
  p.login_expiration_enabled = true;
  p.last_login = "2024-10-03 08:00:00.5+00:00";
  p.created_at = "2024-10-02 14:03:07+00:00";
  p.extra_dns_labels = {"alias"};
  p.allow_extra_dns_labels = true;
  p.meta.hostname = "laptop";
  p.meta.go_os = "linux";
  p.meta.os = "Debian";
  p.meta.wt_version = "0.60.0";
  p.meta.environment_json = R"({"Cloud":"","Platform":""})";
  p.meta.capabilities_json = "[1,2]";
  p.status.last_seen = "2024-10-03 09:00:00+00:00";
  p.status.session_started_at = 1727946000000000000;
  p.status.connected = true;
  p.location = {"203.0.113.7", "DE", "Berlin", 2950159};
  core::peer q = p;
  q.id = "p2";
  q.key = "tBL1cWnPQ6qfS6gWMRBFy7+0XQPtXb0b2w0J3bbHd3E=";
  q.ip = "100.64.0.6";
  q.name = q.dns_label = "server";
  q.user_id.clear();
  q.last_login.reset();
  q.status = {};
  q.location = {};
  q.meta = {};
  a.peers = {p, q};

  core::user u;
  u.id = "u1";
  u.account_id = a.id;
  u.role = "owner";
  u.auto_groups = {"g1"};
  u.created_at = "2024-10-02 14:03:06+00:00";
  u.issued = "api";
  u.name = "Owner";
  u.email = "owner@example.org";
  a.users = {u};
  a.tokens = {{"t1", "u1", "cli", "smJvzexPcQ3NRezrVDUmF++0XqvFvXzx8Rsn2y9r1z0=", "u1",
               "2025-10-02 14:03:06+00:00", "2024-10-02 14:03:06+00:00", std::nullopt}};

  core::group all;
  all.id = "g1";
  all.account_id = a.id;
  all.name = "All";
  all.issued = "api";
  all.peers = {"p1", "p2"};
  core::group servers = all;
  servers.id = "g2";
  servers.name = "Servers";
  servers.peers = {"p2"};
  servers.resources = {{"res1", "host"}};
  a.groups = {all, servers};

  core::policy pol;
  pol.id = "pol1";
  pol.account_id = a.id;
  pol.name = "Default";
  pol.description = "default";
  pol.enabled = true;
  pol.source_posture_checks = {"pc1"};
  core::policy_rule r;
  r.id = "rule1";
  r.policy_id = pol.id;
  r.name = "Default";
  r.enabled = true;
  r.action = "accept";
  r.protocol = "all";
  r.bidirectional = true;
  r.sources = {"g1"};
  r.destinations = {"g1"};
  core::policy_rule r2 = r;
  r2.id = "rule2";
  r2.protocol = "tcp";
  r2.bidirectional = false;
  r2.ports = {"22", "443"};
  r2.port_ranges = {{8000, 8100}};
  r2.destinations.clear();
  r2.destination_resource = {"res1", "host"};
  r2.authorized_groups = {{"g1", {"root", "admin"}}};
  r2.authorized_user = "root";
  pol.rules = {r, r2};
  a.policies = {pol};

  core::setup_key k;
  k.id = "k1";
  k.account_id = a.id;
  k.key = crypto::sha256_base64("A2C8E62B-38F5-4553-B31E-DD66C696CEBB");
  k.key_secret = "A2C8E****";
  k.name = "Default key";
  k.type = "reusable";
  k.created_at = k.updated_at = "2024-10-02 14:03:06+00:00";
  k.expires_at = "0001-01-01 00:00:00+00:00"; // Go's zero time: never expires
  k.auto_groups = {"g1"};
  a.setup_keys = {k};

  core::route rt;
  rt.id = "r1";
  rt.account_id = a.id;
  rt.network = "10.10.0.0/16";
  rt.net_id = "office";
  rt.peer_groups = {"g2"};
  rt.network_type = 1;
  rt.masquerade = true;
  rt.metric = 9999;
  rt.enabled = true;
  rt.groups = {"g1"};
  a.routes = {rt};

  core::nameserver_group ns;
  ns.id = "ns1";
  ns.account_id = a.id;
  ns.name = "Google";
  ns.nameservers = {{"8.8.8.8", 1, 53}, {"8.8.4.4", 1, 5353}};
  ns.groups = {"g1"};
  ns.primary = true;
  ns.enabled = true;
  a.nameserver_groups = {ns};
  a.posture_checks = {
      {"pc1", a.id, "version", "", R"({"NBVersionCheck":{"MinVersion":"0.31.0"}})"}};
  return a;
}

std::string scalar(const storage::db_options& opts, const std::string& query) {
  soci::session sql;
  storage::open_session(sql, opts);
  std::string v;
  soci::indicator ind = soci::i_ok;
  sql << query, soci::into(v, ind);
  return ind == soci::i_null ? "<null>" : v;
}

core::setup_key key_row(const std::string& id, const std::string& type, std::int64_t limit) {
  core::setup_key k;
  k.id = id;
  k.account_id = "acc-keys";
  k.key = crypto::sha256_base64(id);
  k.key_secret = id.substr(0, 5) + "****";
  k.name = id;
  k.type = type;
  k.usage_limit = limit;
  k.created_at = k.updated_at = "2024-10-02 14:03:06+00:00";
  return k;
}

// Every table's columns with their types, and every index name: what ensure_schema may change.
std::map<std::string, std::string> catalog(const storage::db_options& opts) {
  soci::session sql;
  storage::open_session(sql, opts);
  std::map<std::string, std::string> out;
  if (opts.kind == engine::sqlite) {
    soci::rowset<soci::row> rs =
        (sql.prepare << "SELECT m.name, p.name, LOWER(p.type), CAST(p.\"notnull\" AS TEXT), "
                        "COALESCE(p.dflt_value, '') "
                        "FROM sqlite_master m JOIN pragma_table_info(m.name) p "
                        "WHERE m.type = 'table'");
    for (const auto& r : rs)
      out[r.get<std::string>(0) + "." + r.get<std::string>(1)] =
          r.get<std::string>(2) + " " + r.get<std::string>(3) + " " + r.get<std::string>(4);
    soci::rowset<std::string> ix =
        (sql.prepare << "SELECT name FROM sqlite_master WHERE type = 'index'");
    for (const auto& n : ix)
      out["index " + n] = "";
  } else {
    soci::rowset<soci::row> rs =
        (sql.prepare << "SELECT table_name, column_name, data_type, is_nullable, "
                        "COALESCE(column_default, '') FROM information_schema.columns "
                        "WHERE table_schema = current_schema()");
    for (const auto& r : rs)
      out[r.get<std::string>(0) + "." + r.get<std::string>(1)] =
          r.get<std::string>(2) + " " + r.get<std::string>(3) + " " + r.get<std::string>(4);
    soci::rowset<std::string> ix =
        (sql.prepare << "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()");
    for (const auto& n : ix)
      out["index " + n] = "";
  }
  return out;
}

std::string expected_type(storage::column_type t, engine kind) {
  const bool pg = kind == engine::postgres;
  switch (t) {
  case storage::column_type::text:
    return "text";
  case storage::column_type::boolean:
    return pg ? "boolean" : "numeric";
  case storage::column_type::integer:
    return pg ? "bigint" : "integer";
  case storage::column_type::datetime:
    return pg ? "timestamp with time zone" : "datetime";
  }
  return "";
}

} // namespace

TEST_CASE("schema: the catalog has every column with gorm's type per engine, and the indexes") {
  for (const auto& opts : test::fresh_backends("catalog")) {
    INFO(test::backend_name(opts));
    soci::session sql;
    storage::open_session(sql, opts);
    storage::ensure_schema(sql, opts.kind);
    const auto cat = catalog(opts);
    std::size_t columns = 0;
    for (const auto& table : storage::core_tables()) {
      INFO(table);
      auto want = storage::schema_columns(table);
      CHECK(storage::existing_columns(sql, opts.kind, table) == want);
      for (const auto& c : want) {
        INFO(c);
        auto it = cat.find(table + "." + c);
        REQUIRE(it != cat.end());
        auto type = storage::schema_column_type(table, c);
        REQUIRE(type.has_value());
        CHECK(it->second.rfind(expected_type(*type, opts.kind) + " ", 0) == 0);
        ++columns;
      }
    }
    CHECK(columns > 200);
    // Spot checks against NetBird's gorm structs, independent of the schema's own table.
    const bool pg = opts.kind == engine::postgres;
    CHECK(cat.at("peers.peer_status_connected").rfind(pg ? "boolean" : "numeric", 0) == 0);
    CHECK(cat.at("peers.peer_status_last_seen")
              .rfind(pg ? "timestamp with time zone" : "datetime", 0) == 0);
    CHECK(cat.at("peers.peer_status_session_started_at") ==
          (pg ? "bigint NO 0" : "integer 1 0")); // NOT NULL DEFAULT 0
    CHECK(cat.at("accounts.network_serial").rfind(pg ? "bigint" : "integer", 0) == 0);
    CHECK(cat.at("name_server_groups.primary").rfind(pg ? "boolean" : "numeric", 0) == 0);
    CHECK(cat.count("setup_keys.key_secret") == 1);
    CHECK(cat.count("policy_rules.authorized_groups") == 1);
    CHECK(cat.count("group_peers.peer_id") == 1);
    for (const auto& ix :
         {"idx_peers_key_unique", "idx_account_ip", "idx_account_dnslabel", "idx_peers_account_id",
          "idx_groups_account_id", "idx_setup_keys_key_secret", "idx_policy_rules_policy_id",
          "idx_group_peers_account_id", "idx_peers_proxy_meta_cluster"}) {
      INFO(ix);
      CHECK(cat.count(std::string("index ") + ix) == 1);
    }
    CHECK(cat.count("index idx_peers_key") == 0);
  }
}

TEST_CASE("schema: a second ensure_schema changes nothing, on a fresh and on a migrated store") {
  for (const auto& opts : test::fresh_backends("idempotent")) {
    INFO(test::backend_name(opts));
    test::load_fixture("store_basic.sql", opts);
    const auto before = catalog(opts);
    const auto data = test::load_account(opts, test::fixture_account);
    const auto public_ids = scalar(opts, "SELECT MIN(public_id) || MAX(public_id) FROM \"groups\"");
    {
      soci::session sql;
      storage::open_session(sql, opts);
      storage::ensure_schema(sql, opts.kind);
      storage::ensure_schema(sql, opts.kind);
    }
    CHECK(catalog(opts) == before);
    CHECK(test::load_account(opts, test::fixture_account) == data);
    CHECK(scalar(opts, "SELECT MIN(public_id) || MAX(public_id) FROM \"groups\"") == public_ids);
  }
}

TEST_CASE("schema: NetBird's start-up backfills public ids and new-field defaults") {
  for (const auto& opts : test::fresh_backends("backfills")) {
    INFO(test::backend_name(opts));
    test::load_fixture("store_basic.sql", opts); // its groups and policies predate public_id
    for (const auto& table : {"groups", "policies", "networks", "network_routers"}) {
      INFO(table);
      CHECK(scalar(opts, std::string("SELECT COUNT(*) FROM \"") + table +
                             "\" WHERE public_id IS NULL OR LENGTH(public_id) <> 20") == "0");
    }
    CHECK(scalar(opts, "SELECT COUNT(*) FROM \"groups\"") != "0");

    auto old = test::fresh_store(opts.kind, "old_users");
    const std::string b = opts.kind == engine::postgres ? "boolean" : "numeric";
    test::exec_sql(old, "CREATE TABLE users (id text PRIMARY KEY, account_id text, role text, "
                        "name text, email text)");
    test::exec_sql(old, "INSERT INTO users (id, account_id, role) VALUES ('u1', 'a', 'owner')");
    test::exec_sql(old, "CREATE TABLE network_routers (id text PRIMARY KEY, network_id text, "
                        "account_id text, enabled " +
                            b + ")");
    test::exec_sql(old, "INSERT INTO network_routers (id, network_id, account_id) VALUES ('nr1', "
                        "'n1', 'a')");
    {
      soci::session sql;
      storage::open_session(sql, old);
      storage::ensure_schema(sql, old.kind);
    }
    CHECK(scalar(old, "SELECT name || '|' || email || '|' || role FROM users") == "||owner");
    CHECK(scalar(old, "SELECT CAST(enabled AS TEXT) FROM network_routers") ==
          (opts.kind == engine::postgres ? "true" : "1"));
    CHECK(scalar(old, "SELECT COUNT(*) FROM users WHERE issued = 'api'") == "1"); // column default
  }
}

TEST_CASE("schema: peers sharing a WireGuard key are reduced to the one seen last") {
  for (const auto& opts : test::fresh_backends("dup_keys")) {
    INFO(test::backend_name(opts));
    const std::string t = opts.kind == engine::postgres ? "timestamptz" : "datetime";
    test::exec_sql(opts, "CREATE TABLE peers (id text PRIMARY KEY, account_id text, \"key\" text, "
                         "ip text, dns_label text, peer_status_last_seen " +
                             t + ")");
    test::exec_sql(opts, "CREATE INDEX idx_peers_key ON peers (\"key\")");
    test::exec_sql(opts, "CREATE TABLE group_peers (account_id text, group_id text, peer_id text, "
                         "PRIMARY KEY (group_id, peer_id))");
    test::exec_sql(opts, "INSERT INTO peers VALUES "
                         "('d1', 'a', 'K', '\"100.64.0.1\"', 'd1', '2024-01-01 10:00:00+01:00'), "
                         "('d2', 'a', 'K', '\"100.64.0.2\"', 'd2', '2024-01-01 09:30:00+00:00'), "
                         "('d3', 'a', 'K', '\"100.64.0.3\"', 'd3', NULL), "
                         "('solo', 'a', 'S', '\"100.64.0.4\"', 'solo', NULL)");
    test::exec_sql(opts, "INSERT INTO group_peers VALUES ('a', 'g', 'd1'), ('a', 'g', 'd2'), "
                         "('a', 'g', 'solo')");
    soci::session sql;
    storage::open_session(sql, opts);
    storage::ensure_schema(sql, opts.kind);
    // d2 (09:30 UTC) was seen after d1 (09:00 UTC, written as 10:00+01:00); d3 never.
    CHECK(scalar(opts, "SELECT COUNT(*) FROM peers") == "2");
    storage::account_store st(sql, opts.kind);
    auto kept = st.peer_by_key("K");
    REQUIRE(kept.has_value());
    CHECK(kept->id == "d2");
    CHECK(scalar(opts, "SELECT COUNT(*) FROM group_peers WHERE peer_id = 'd1'") == "0");
    CHECK(scalar(opts, "SELECT COUNT(*) FROM group_peers") == "2");
    const auto cat = catalog(opts);
    CHECK(cat.count("index idx_peers_key") == 0);
    CHECK(cat.count("index idx_peers_key_unique") == 1);
    CHECK_THROWS(sql << "INSERT INTO peers (id, account_id, \"key\", ip, dns_label) VALUES ('x', "
                        "'a', 'K', '\"100.64.0.9\"', 'x')");
  }
}

TEST_CASE("account_store: every object written in NetBird's encodings reads back equal") {
  for (const auto& opts : test::fresh_backends("roundtrip")) {
    INFO(test::backend_name(opts));
    soci::session sql;
    storage::open_session(sql, opts);
    storage::ensure_schema(sql, opts.kind);
    storage::account_store st(sql, opts.kind);
    const auto a = full_account();
    st.insert_account_tree(a);
    auto back = st.load_account(a.id);
    REQUIRE(back.has_value());
    CHECK(back->settings == a.settings);
    CHECK(back->net == a.net);
    CHECK(back->peers == a.peers);
    CHECK(back->users == a.users);
    CHECK(back->tokens == a.tokens);
    CHECK(back->groups == a.groups);
    CHECK(back->policies == a.policies);
    CHECK(back->setup_keys == a.setup_keys);
    CHECK(back->routes == a.routes);
    CHECK(back->nameserver_groups == a.nameserver_groups);
    CHECK(back->posture_checks == a.posture_checks);
    CHECK(*back == a);
    CHECK(st.account_ids() == std::vector<std::string>{"acc-full"});

    // The stored text is NetBird's.
    CHECK(scalar(opts, "SELECT ip FROM peers WHERE id = 'p1'") == "\"100.64.0.5\"");
    CHECK(scalar(opts, "SELECT ipv6 FROM peers WHERE id = 'p1'") == "\"\"");
    CHECK(scalar(opts, "SELECT location_connection_ip FROM peers WHERE id = 'p1'") ==
          "\"203.0.113.7\"");
    CHECK(scalar(opts, "SELECT meta_files FROM peers WHERE id = 'p1'") == "null");
    CHECK(scalar(opts, "SELECT network_net FROM accounts") ==
          R"({"IP":"100.64.0.0","Mask":"/8AAAA=="})");
    CHECK(scalar(opts, "SELECT port_ranges FROM policy_rules WHERE id = 'rule2'") ==
          R"([{"Start":8000,"End":8100}])");
    CHECK(scalar(opts, "SELECT destination_resource FROM policy_rules WHERE id = 'rule2'") ==
          R"({"ID":"res1","Type":"host"})");
    CHECK(scalar(opts, "SELECT authorized_groups FROM policy_rules WHERE id = 'rule2'") ==
          R"({"g1":["root","admin"]})");
    CHECK(scalar(opts, "SELECT name_servers FROM name_server_groups") ==
          R"([{"IP":"8.8.8.8","NSType":1,"Port":53},{"IP":"8.8.4.4","NSType":1,"Port":5353}])");
    CHECK(scalar(opts, "SELECT network FROM routes") == "\"10.10.0.0/16\"");
    CHECK(scalar(opts, "SELECT auto_groups FROM setup_keys") == R"(["g1"])");
    CHECK(scalar(opts, "SELECT COUNT(*) FROM group_peers") == "3");
    if (opts.kind == engine::sqlite) {
      CHECK(scalar(opts, "SELECT typeof(ssh_enabled) || typeof(peer_status_session_started_at) || "
                         "typeof(last_login) FROM peers WHERE id = 'p1'") == "integerintegertext");
      CHECK(scalar(opts, "SELECT ssh_enabled FROM peers WHERE id = 'p1'") == "1");
    } else {
      CHECK(scalar(opts, "SELECT CAST(ssh_enabled AS TEXT) FROM peers WHERE id = 'p1'") == "true");
    }

    // Membership writes.
    CHECK_FALSE(st.add_group_peer(a.id, "g2", "p2")); // already there
    CHECK(st.add_group_peer(a.id, "g2", "p1"));
    CHECK(st.remove_group_peer(a.id, "g2", "p1"));
    CHECK_FALSE(st.remove_group_peer(a.id, "g2", "p1"));
    // Lookups.
    auto k = st.setup_key_by_hashed_key(a.setup_keys[0].key);
    REQUIRE(k.has_value());
    CHECK(*k == a.setup_keys[0]);
    CHECK_FALSE(st.setup_key_by_hashed_key("nope").has_value());
    CHECK(st.setup_key_by_id(a.id, "k1").has_value());
    CHECK_FALSE(st.setup_key_by_id("other", "k1").has_value());
    CHECK(st.peer_by_id(a.id, "p2") == a.peers[1]);
    // Duplicates are refused by NetBird's unique indexes.
    auto dup = a.peers[1];
    dup.id = "p3";
    CHECK_THROWS(st.insert_peer(dup)); // same WireGuard key
    dup.key = "other-key";
    CHECK_THROWS(st.insert_peer(dup)); // same (account, ip)
    dup.ip = "100.64.0.99";
    CHECK_THROWS(st.insert_peer(dup)); // same (account, dns_label)
    dup.dns_label = "server-1";
    CHECK_NOTHROW(st.insert_peer(dup));
  }
}

TEST_CASE("account_store: load_parts reads again exactly the parts asked for") {
  using as = storage::account_store;
  for (const auto& opts : test::fresh_backends("parts")) {
    INFO(test::backend_name(opts));
    soci::session sql;
    storage::open_session(sql, opts);
    storage::ensure_schema(sql, opts.kind);
    as st(sql, opts.kind);
    const auto a = full_account();
    st.insert_account_tree(a);
    const auto held = *st.load_account(a.id);
    // Another writer changes a group, a user and a route's row, and the serial.
    sql << "UPDATE groups SET name = 'renamed' WHERE id = 'g1'";
    sql << "UPDATE users SET role = 'admin' WHERE id = :u", soci::use(a.users[0].id);
    sql << "UPDATE routes SET description = 'changed'";
    sql << "UPDATE accounts SET network_serial = network_serial + 5";
    const auto now = *st.load_account(a.id);
    REQUIRE(now.groups != held.groups);
    REQUIRE(now.users != held.users);
    REQUIRE(now.routes != held.routes);

    auto b = held;
    REQUIRE(st.load_parts(b, as::part_groups));
    CHECK(b.groups == now.groups);
    CHECK(b.users == held.users); // not asked for: as held
    CHECK(b.routes == held.routes);
    CHECK(b.net.serial == held.net.serial);
    REQUIRE(st.load_parts(b, as::part_principals | as::part_account));
    CHECK(b.users == now.users);
    CHECK(b.tokens == now.tokens);
    CHECK(b.setup_keys == now.setup_keys);
    CHECK(b.net.serial == held.net.serial + 5);
    CHECK(b.routes == held.routes);
    REQUIRE(st.load_parts(b, as::part_all));
    CHECK(b == now);
    // Reading a part twice does not duplicate it.
    REQUIRE(st.load_parts(b, as::part_all));
    CHECK(b == now);
    core::account gone;
    gone.id = "no-such-account";
    CHECK_FALSE(st.load_parts(gone, as::part_account));
  }
}

TEST_CASE("account_store: times in every form NetBird and SQLite write read back as instants") {
  for (const auto& opts : test::fresh_backends("times")) {
    INFO(test::backend_name(opts));
    test::seed_peers(opts, 1);
    soci::session sql;
    storage::open_session(sql, opts);
    storage::account_store st(sql, opts.kind);
    const std::vector<std::pair<std::string, double>> forms = {
        {"2023-03-02 09:21:02.189035775+01:00", 1677745262.189035775}, // Go, a zone
        {"2026-11-24 12:00:00", 1795521600.0},                         // CURRENT_TIMESTAMP (UTC)
        {"2024-10-02 16:03:06.778746+02:00", 1727877786.778746},
        {"0001-01-01 00:00:00+00:00", -62135596800.0}, // Go's zero time
    };
    for (const auto& [text, unix] : forms) {
      const auto& shown = text; // clang 14 cannot capture a structured binding (INFO's lambda)
      INFO(shown);
      CHECK(st.update_last_login("acc1", "p0", text));
      auto p = st.peer_by_id("acc1", "p0");
      REQUIRE(p.has_value());
      REQUIRE(p->last_login.has_value());
      if (opts.kind == engine::sqlite)
        CHECK(*p->last_login == text); // stored as given
      auto t = core::parse_store_time(*p->last_login);
      REQUIRE(t.has_value());
      CHECK(*t == doctest::Approx(unix).epsilon(1e-12));
    }
  }
}

TEST_CASE("setup keys: one-off, usage limits, revoked and expired keys") {
  for (const auto& opts : test::fresh_backends("key_use")) {
    INFO(test::backend_name(opts));
    soci::session sql;
    storage::open_session(sql, opts);
    storage::ensure_schema(sql, opts.kind);
    storage::account_store st(sql, opts.kind);
    auto one_off = key_row("one-off-key", "one-off", 1);
    auto one_off_legacy = key_row("one-off-zero", "one-off", 0); // old rows: limit 0, still once
    auto limited = key_row("limited-key", "reusable", 3);
    auto unlimited = key_row("unlimited", "reusable", 0);
    auto revoked = key_row("revoked-key", "reusable", 0);
    revoked.revoked = true;
    auto expired = key_row("expired-key", "reusable", 0);
    expired.expires_at = "2023-03-02 09:21:02.189035775+01:00";
    auto future = key_row("future-key", "reusable", 0);
    future.expires_at = "2999-01-01 00:00:00+00:00";
    auto no_expiry = key_row("null-expiry", "reusable", 0);
    no_expiry.expires_at.reset();
    for (const auto& k :
         {one_off, one_off_legacy, limited, unlimited, revoked, expired, future, no_expiry})
      st.insert_setup_key(k);

    const double before = test::db_now(opts);
    CHECK(st.use_setup_key("one-off-key"));
    CHECK_FALSE(st.use_setup_key("one-off-key")); // the second use is refused
    CHECK(st.use_setup_key("one-off-zero"));
    CHECK_FALSE(st.use_setup_key("one-off-zero"));
    for (int i = 0; i < 3; ++i)
      CHECK(st.use_setup_key("limited-key"));
    CHECK_FALSE(st.use_setup_key("limited-key"));
    for (int i = 0; i < 5; ++i)
      CHECK(st.use_setup_key("unlimited"));
    CHECK_FALSE(st.use_setup_key("revoked-key"));
    CHECK_FALSE(st.use_setup_key("expired-key"));
    CHECK(st.use_setup_key("future-key"));
    CHECK(st.use_setup_key("null-expiry"));
    CHECK_FALSE(st.use_setup_key("no-such-key"));

    auto k = st.setup_key_by_id("acc-keys", "one-off-key");
    REQUIRE(k.has_value());
    CHECK(k->used_times == 1);
    REQUIRE(k->last_used.has_value());
    auto used_at = core::parse_store_time(*k->last_used);
    REQUIRE(used_at.has_value());
    CHECK(*used_at >= before - 2);
    CHECK(*used_at <= test::db_now(opts) + 2);
    CHECK(st.setup_key_by_id("acc-keys", "limited-key")->used_times == 3);
    CHECK(st.setup_key_by_id("acc-keys", "unlimited")->used_times == 5);
    auto untouched = st.setup_key_by_id("acc-keys", "expired-key");
    CHECK(untouched->used_times == 0);
    CHECK_FALSE(untouched->last_used.has_value());
    // What the registration path decides before using the key agrees with the store.
    CHECK(core::check_setup_key(*untouched, *used_at) == core::key_verdict::expired);
    CHECK(core::check_setup_key(*st.setup_key_by_id("acc-keys", "one-off-key"), *used_at) ==
          core::key_verdict::overused);
  }
}

TEST_CASE("setup keys: 8 threads racing, each on its own session") {
  for (const auto& opts : test::fresh_backends("key_race")) {
    INFO(test::backend_name(opts));
    {
      soci::session sql;
      storage::open_session(sql, opts);
      storage::ensure_schema(sql, opts.kind);
      storage::account_store st(sql, opts.kind);
      st.insert_setup_key(key_row("race-one-off", "one-off", 1));
      st.insert_setup_key(key_row("race-limit-3", "reusable", 3));
    }
    for (const auto& [id, allowed] :
         std::vector<std::pair<std::string, int>>{{"race-one-off", 1}, {"race-limit-3", 3}}) {
      const auto& shown = id; // clang 14 cannot capture a structured binding (INFO's lambda)
      INFO(shown);
      std::atomic<int> wins{0}, errors{0}, ready{0};
      std::vector<std::thread> threads;
      for (int i = 0; i < 8; ++i)
        threads.emplace_back([&, key = id] {
          try {
            soci::session sql;
            storage::open_session(sql, opts);
            storage::account_store st(sql, opts.kind);
            ++ready;
            while (ready < 8)
              std::this_thread::yield();
            if (st.use_setup_key(key))
              ++wins;
          } catch (const std::exception&) {
            ++errors;
          }
        });
      for (auto& t : threads)
        t.join();
      CHECK(errors == 0);
      CHECK(wins == allowed);
      CHECK(scalar(opts, "SELECT CAST(used_times AS TEXT) FROM setup_keys WHERE id = '" + id +
                             "'") == std::to_string(allowed));
    }
  }
}

TEST_CASE("copy_store: SQLite -> PostgreSQL -> SQLite keeps every object; refuses a full target") {
  if (!test::postgres_available())
    return;
  auto sqlite_src = test::fresh_store(engine::sqlite, "copy_src");
  auto pg = test::fresh_store(engine::postgres, "copy_pg");
  auto sqlite_back = test::fresh_store(engine::sqlite, "copy_back");
  test::load_fixture("store_login_expiry.sql", sqlite_src);
  {
    soci::session sql;
    storage::open_session(sql, sqlite_src);
    storage::account_store(sql, engine::sqlite).insert_account_tree(full_account());
  }
  soci::session src, mid, back;
  storage::open_session(src, sqlite_src);
  storage::open_session(mid, pg);
  storage::open_session(back, sqlite_back);
  storage::ensure_schema(mid, engine::postgres);
  storage::ensure_schema(back, engine::sqlite);
  const auto n = storage::copy_store(src, engine::sqlite, mid, engine::postgres);
  CHECK(n > 20);
  CHECK(storage::copy_store(mid, engine::postgres, back, engine::sqlite) == n);

  storage::account_store a_src(src, engine::sqlite), a_pg(mid, engine::postgres),
      a_back(back, engine::sqlite);
  CHECK(a_pg.account_ids() == a_src.account_ids());
  // Times of the full account are UTC with microseconds: equal everywhere.
  CHECK(a_pg.load_account("acc-full") == a_src.load_account("acc-full"));
  CHECK(a_back.load_account("acc-full") == a_src.load_account("acc-full"));
  // The fixture's Go times ("...+01:00", nanoseconds) become the same instant in UTC.
  auto fx_src = *a_src.load_account(test::fixture_account);
  auto fx_pg = *a_pg.load_account(test::fixture_account);
  auto fx_back = *a_back.load_account(test::fixture_account);
  CHECK(fx_back == fx_pg);
  REQUIRE(fx_src.peers.size() == fx_pg.peers.size());
  for (std::size_t i = 0; i < fx_src.peers.size(); ++i) {
    auto s = fx_src.peers[i], p = fx_pg.peers[i];
    INFO(s.id);
    REQUIRE(s.last_login.has_value() == p.last_login.has_value());
    if (s.last_login)
      CHECK(*core::parse_store_time(*p.last_login) ==
            doctest::Approx(*core::parse_store_time(*s.last_login)).epsilon(1e-12));
    s.last_login = p.last_login;
    s.created_at = p.created_at;
    s.status.last_seen = p.status.last_seen;
    CHECK(s == p);
  }
  CHECK(fx_pg.policies == fx_src.policies);
  CHECK(fx_pg.groups == fx_src.groups);

  // A second copy into the now full target is refused before anything is written.
  CHECK_THROWS_WITH_AS(storage::copy_store(src, engine::sqlite, mid, engine::postgres),
                       doctest::Contains("is not empty"), storage::store_error);
  CHECK(a_pg.account_ids() == a_src.account_ids());
  // A target without the schema is refused with a hint.
  auto bare = test::fresh_store(engine::postgres, "copy_bare");
  soci::session bare_sql;
  storage::open_session(bare_sql, bare);
  CHECK_THROWS_WITH_AS(storage::copy_store(src, engine::sqlite, bare_sql, engine::postgres),
                       doctest::Contains("ensure_schema"), storage::store_error);
}
