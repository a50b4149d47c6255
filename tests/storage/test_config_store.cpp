// The configuration write path (config_store): every save and delete round-trips through
// account_store::load_account, bumps the account's network serial exactly once, refuses what would
// corrupt the account, and leaves nothing half-written when the database rejects a row — on SQLite
// files and on PostgreSQL.
#include "storage/account_store.hpp"
#include "storage/config_store.hpp"
#include "storage/schema.hpp"
#include "tests/support/test_db.hpp"

#include <doctest/doctest.h>
#include <soci/soci.h>

#include <algorithm>
#include <mutex>
#include <thread>

using namespace nbm;
using storage::config_store;
using storage::engine;

namespace {

// Two accounts: "acc-a" (serial 5, peers pa1/pa2, group All, one policy) and "acc-b" (serial 0,
// one group of its own).
core::account small_account(const std::string& id, std::uint64_t serial, const std::string& net) {
  core::account a;
  a.id = id;
  a.created_by = "owner-" + id;
  a.created_at = "2024-10-02 14:03:06+00:00";
  a.domain = id + ".example";
  a.domain_category = "private";
  a.net = {"ident-" + id, net + "/16", "", serial};
  for (int i = 1; i <= 2; ++i) {
    core::peer p;
    p.id = "p" + id.substr(4) + std::to_string(i);
    p.account_id = id;
    p.key = "key-" + p.id;
    p.ip = net.substr(0, net.size() - 1) + std::to_string(i);
    p.name = p.dns_label = p.id;
    a.peers.push_back(p);
  }
  core::group all;
  all.id = "all-" + id;
  all.account_id = id;
  all.name = "All";
  all.issued = "api";
  for (const auto& p : a.peers)
    all.peers.push_back(p.id);
  a.groups = {all};
  return a;
}

struct stores {
  soci::session sql;
  storage::engine kind;
  explicit stores(const storage::db_options& o) : kind(o.kind) {
    storage::open_session(sql, o);
    storage::ensure_schema(sql, o.kind);
  }
  storage::account_store accounts() { return {sql, kind}; }
  config_store config() { return {sql, kind}; }
  core::account load(const std::string& id) {
    auto a = accounts().load_account(id);
    REQUIRE(a.has_value());
    return *a;
  }
  std::uint64_t serial(const std::string& id) { return load(id).net.serial; }
  long long count(const std::string& table, const std::string& where) {
    long long n = -1;
    sql << "SELECT COUNT(*) FROM \"" + table + "\" WHERE " + where, soci::into(n);
    return n;
  }
  std::string text(const std::string& query) {
    std::string v;
    soci::indicator ind = soci::i_ok;
    sql << query, soci::into(v, ind);
    return ind == soci::i_null ? "<null>" : v;
  }
};

// A fresh store holding acc-a and acc-b.
struct seeded : stores {
  explicit seeded(const storage::db_options& opts) : stores(opts) {
    accounts().insert_account_tree(small_account("acc-a", 5, "100.64.0.0"));
    accounts().insert_account_tree(small_account("acc-b", 0, "100.65.0.0"));
  }
};

template <class T>
const T* by_id(const std::vector<T>& v, const std::string& id) {
  auto it = std::find_if(v.begin(), v.end(), [&](const T& x) { return x.id == id; });
  return it == v.end() ? nullptr : &*it;
}

core::policy_rule rule(const std::string& id, const std::string& protocol,
                       std::vector<std::string> ports = {}) {
  core::policy_rule r;
  r.id = id;
  r.name = "rule " + id;
  r.enabled = true;
  r.action = "accept";
  r.protocol = protocol;
  r.bidirectional = protocol == "all";
  r.sources = {"all-acc-a"};
  r.destinations = {"all-acc-a"};
  r.ports = std::move(ports);
  return r;
}

core::route office_route(const std::string& id) {
  core::route r;
  r.id = id;
  r.account_id = "acc-a";
  r.network = "10.10.0.0/24";
  r.net_id = "office";
  r.description = "office LAN";
  r.peer = "pa1";
  r.network_type = 1;
  r.masquerade = true;
  r.metric = 9999;
  r.enabled = true;
  r.groups = {"all-acc-a"};
  return r;
}

core::nameserver_group google_dns(const std::string& id) {
  core::nameserver_group g;
  g.id = id;
  g.account_id = "acc-a";
  g.name = "Google";
  g.description = "public resolvers";
  g.nameservers = {{"8.8.8.8", 1, 53}, {"8.8.4.4", 1, 5353}};
  g.groups = {"all-acc-a"};
  g.primary = true;
  g.enabled = true;
  return g;
}

} // namespace

TEST_CASE("config_store: groups are inserted, replaced (members and all) and deleted") {
  for (const auto& opts : test::fresh_backends("cfg_groups")) {
    INFO(test::backend_name(opts));
    seeded s(opts);
    auto cfg = s.config();

    core::group g;
    g.account_id = "acc-a";
    g.name = "Servers";
    g.issued = "api";
    g.peers = {"pa1"};
    g.resources = {{"res1", "host"}};
    auto made = cfg.save_group(g);
    CHECK(made.id.size() == 20); // NetBird-style id, generated
    CHECK(made.serial == 6);
    g.id = made.id;
    auto a = s.load("acc-a");
    CHECK(a.net.serial == 6);
    REQUIRE(by_id(a.groups, g.id) != nullptr);
    CHECK(*by_id(a.groups, g.id) == g);
    CHECK(s.text("SELECT resources FROM \"groups\" WHERE id = '" + g.id + "'") ==
          R"([{"ID":"res1","Type":"host"}])");
    const auto public_id = s.text("SELECT public_id FROM \"groups\" WHERE id = '" + g.id + "'");
    CHECK(public_id.size() == 20);

    // Replacing: new name, members exactly the new list, public_id kept.
    g.name = "Servers (prod)";
    g.peers = {"pa2"};
    g.resources.clear();
    auto replaced = cfg.save_group(g);
    CHECK(replaced.id == g.id);
    CHECK(replaced.serial == 7);
    a = s.load("acc-a");
    CHECK(*by_id(a.groups, g.id) == g);
    CHECK(a.groups.size() == 2);
    CHECK(s.count("group_peers", "group_id = '" + g.id + "'") == 1);
    CHECK(s.text("SELECT public_id FROM \"groups\" WHERE id = '" + g.id + "'") == public_id);
    CHECK(by_id(a.groups, "all-acc-a")->peers == std::vector<std::string>{"pa1", "pa2"});

    // A caller-chosen id is kept.
    core::group named = g;
    named.id = "grp-fixed";
    named.peers = {};
    CHECK(cfg.save_group(named).id == "grp-fixed");
    CHECK(s.serial("acc-a") == 8);

    // Delete: the row and its memberships; once.
    CHECK(cfg.delete_group("acc-a", g.id) == std::optional<std::uint64_t>(9));
    a = s.load("acc-a");
    CHECK(by_id(a.groups, g.id) == nullptr);
    CHECK(s.count("group_peers", "group_id = '" + g.id + "'") == 0);
    CHECK(s.count("group_peers", "group_id = 'all-acc-a'") == 2);
    CHECK_FALSE(cfg.delete_group("acc-a", g.id).has_value());
    CHECK_FALSE(cfg.delete_group("acc-a", "no-such-group").has_value());
    // Another account's group is "not found" from here and stays.
    CHECK_FALSE(cfg.delete_group("acc-a", "all-acc-b").has_value());
    CHECK(s.serial("acc-a") == 9);
    CHECK(s.serial("acc-b") == 0);
    CHECK(by_id(s.load("acc-b").groups, "all-acc-b") != nullptr);
  }
}

TEST_CASE("config_store: replacing a policy replaces all its rules; delete takes the rules along") {
  for (const auto& opts : test::fresh_backends("cfg_policies")) {
    INFO(test::backend_name(opts));
    seeded s(opts);
    auto cfg = s.config();

    core::policy p;
    p.account_id = "acc-a";
    p.name = "web";
    p.description = "web servers";
    p.enabled = true;
    auto tcp = rule("", "tcp", {"80", "443"});
    tcp.port_ranges = {{8000, 8100}};
    tcp.destination_resource = {"res1", "host"};
    p.rules = {tcp, rule("", "icmp")};
    auto made = cfg.save_policy(p);
    CHECK(made.serial == 6);
    REQUIRE(made.id.size() == 20);
    auto a = s.load("acc-a");
    const auto* back = by_id(a.policies, made.id);
    REQUIRE(back != nullptr);
    REQUIRE(back->rules.size() == 2);
    // Empty rule ids: the first gets the policy's id (NetBird's API does so), the next a fresh one.
    const auto* first = by_id(back->rules, made.id);
    REQUIRE(first != nullptr);
    CHECK(first->protocol == "tcp");
    const std::string second_id =
        (back->rules[0].id == made.id ? back->rules[1] : back->rules[0]).id;
    CHECK(second_id.size() == 20);
    CHECK(second_id != made.id);
    p.id = made.id;
    p.rules[0].id = made.id;
    p.rules[1].id = second_id;
    for (auto& r : p.rules)
      r.policy_id = made.id;
    std::sort(p.rules.begin(), p.rules.end(),
              [](const auto& x, const auto& y) { return x.id < y.id; });
    CHECK(*back == p);
    CHECK(s.text("SELECT port_ranges FROM policy_rules WHERE id = '" + made.id + "'") ==
          R"([{"Start":8000,"End":8100}])");
    CHECK(s.text("SELECT ports FROM policy_rules WHERE id = '" + made.id + "'") ==
          R"(["80","443"])");
    CHECK(s.text("SELECT authorized_groups FROM policy_rules WHERE id = '" + made.id + "'") ==
          "null");
    const auto public_id = s.text("SELECT public_id FROM policies WHERE id = '" + made.id + "'");

    // Replace with one new rule: both old rules are gone.
    p.name = "web only";
    p.enabled = false;
    p.rules = {rule("r-new", "udp", {"53"})};
    p.rules[0].policy_id = p.id;
    CHECK(cfg.save_policy(p).serial == 7);
    a = s.load("acc-a");
    CHECK(*by_id(a.policies, p.id) == p);
    CHECK(s.count("policy_rules", "policy_id = '" + p.id + "'") == 1);
    CHECK(s.count("policy_rules", "id = '" + made.id + "' OR id = '" + second_id + "'") == 0);
    CHECK(s.text("SELECT public_id FROM policies WHERE id = '" + p.id + "'") == public_id);

    // A rule's stored policy_id is the policy's, whatever the model said.
    auto stray = p;
    stray.rules[0].policy_id = "something-else";
    CHECK(cfg.save_policy(stray).serial == 8);
    CHECK(*by_id(s.load("acc-a").policies, p.id) == p);

    CHECK(cfg.delete_policy("acc-a", p.id) == std::optional<std::uint64_t>(9));
    CHECK(by_id(s.load("acc-a").policies, p.id) == nullptr);
    CHECK(s.count("policy_rules", "policy_id = '" + p.id + "'") == 0);
    CHECK_FALSE(cfg.delete_policy("acc-a", p.id).has_value());
    CHECK_FALSE(cfg.delete_policy("acc-b", "anything").has_value());
    CHECK(s.serial("acc-a") == 9);
    CHECK(s.serial("acc-b") == 0);
  }
}

TEST_CASE("config_store: routes and nameserver groups round-trip, replace and delete") {
  for (const auto& opts : test::fresh_backends("cfg_routes_ns")) {
    INFO(test::backend_name(opts));
    seeded s(opts);
    auto cfg = s.config();

    auto r = office_route("");
    auto made = cfg.save_route(r);
    CHECK(made.serial == 6);
    r.id = made.id;
    CHECK(*by_id(s.load("acc-a").routes, r.id) == r);
    CHECK(s.text("SELECT network FROM routes WHERE id = '" + r.id + "'") == "\"10.10.0.0/24\"");
    CHECK(s.text("SELECT peer_groups FROM routes WHERE id = '" + r.id + "'") == "[]");
    r.peer.clear();
    r.peer_groups = {"all-acc-a"};
    r.metric = 100;
    r.access_control_groups = {"all-acc-a"};
    r.enabled = false;
    CHECK(cfg.save_route(r).serial == 7);
    CHECK(*by_id(s.load("acc-a").routes, r.id) == r);
    CHECK(s.load("acc-a").routes.size() == 1);
    CHECK(cfg.delete_route("acc-a", r.id) == std::optional<std::uint64_t>(8));
    CHECK(s.load("acc-a").routes.empty());
    CHECK_FALSE(cfg.delete_route("acc-a", r.id).has_value());

    auto ns = google_dns("");
    auto ns_made = cfg.save_nameserver_group(ns);
    CHECK(ns_made.serial == 9);
    ns.id = ns_made.id;
    CHECK(*by_id(s.load("acc-a").nameserver_groups, ns.id) == ns);
    CHECK(s.text("SELECT name_servers FROM name_server_groups WHERE id = '" + ns.id + "'") ==
          R"([{"IP":"8.8.8.8","NSType":1,"Port":53},{"IP":"8.8.4.4","NSType":1,"Port":5353}])");
    ns.primary = false;
    ns.domains = {"corp.example"};
    ns.search_domains_enabled = true;
    ns.nameservers = {{"1.1.1.1", 1, 53}};
    CHECK(cfg.save_nameserver_group(ns).serial == 10);
    CHECK(*by_id(s.load("acc-a").nameserver_groups, ns.id) == ns);
    CHECK(cfg.delete_nameserver_group("acc-a", ns.id) == std::optional<std::uint64_t>(11));
    CHECK(s.load("acc-a").nameserver_groups.empty());
    CHECK_FALSE(cfg.delete_nameserver_group("acc-a", ns.id).has_value());
    CHECK(s.serial("acc-a") == 11);
    CHECK(s.serial("acc-b") == 0);
  }
}

TEST_CASE("config_store: settings and DNS settings of the account") {
  for (const auto& opts : test::fresh_backends("cfg_settings")) {
    INFO(test::backend_name(opts));
    seeded s(opts);
    auto cfg = s.config();
    const auto before = s.load("acc-a");

    core::account_settings set;
    set.peer_login_expiration_enabled = true;
    set.peer_login_expiration_ns = 3600000000000;
    set.peer_inactivity_expiration_enabled = true;
    set.peer_inactivity_expiration_ns = 600000000000;
    set.regular_users_view_blocked = true;
    set.jwt_groups_enabled = true;
    set.jwt_groups_claim_name = "roles";
    set.jwt_allow_groups = {"admins", "ops"};
    set.dns_domain = "corp.example";
    set.extra_integrated_validator_groups = {"all-acc-a"};
    set.lazy_connection_enabled = true;
    CHECK(cfg.update_settings("acc-a", set) == std::optional<std::uint64_t>(6));
    auto a = s.load("acc-a");
    CHECK(a.settings == set);
    CHECK(a.net.serial == 6);
    // Nothing else of the account changed.
    auto expected = before;
    expected.settings = set;
    expected.net.serial = 6;
    CHECK(a == expected);

    CHECK(cfg.update_dns_settings("acc-a", {"all-acc-a"}) == std::optional<std::uint64_t>(7));
    a = s.load("acc-a");
    CHECK(a.dns_disabled_management_groups == std::vector<std::string>{"all-acc-a"});
    CHECK(a.settings == set);
    CHECK(s.text("SELECT dns_settings_disabled_management_groups FROM accounts WHERE id = "
                 "'acc-a'") == R"(["all-acc-a"])");
    CHECK(cfg.update_dns_settings("acc-a", {}) == std::optional<std::uint64_t>(8));
    CHECK(s.load("acc-a").dns_disabled_management_groups.empty());

    CHECK_FALSE(cfg.update_settings("no-account", set).has_value());
    CHECK_FALSE(cfg.update_dns_settings("no-account", {"x"}).has_value());
    CHECK(s.serial("acc-a") == 8);
    CHECK(s.load("acc-b").settings == core::account_settings{});
  }
}

TEST_CASE("config_store: objects of an unknown account, or ids of another account, are refused") {
  for (const auto& opts : test::fresh_backends("cfg_refused")) {
    INFO(test::backend_name(opts));
    seeded s(opts);
    auto cfg = s.config();

    core::group g;
    g.account_id = "nope";
    g.name = "ghost";
    g.peers = {"pa1"};
    CHECK_THROWS_WITH_AS(cfg.save_group(g), doctest::Contains("no account 'nope'"),
                         storage::store_error);
    core::policy p;
    p.account_id = "nope";
    p.name = "ghost";
    p.rules = {rule("", "all")};
    CHECK_THROWS_AS(cfg.save_policy(p), storage::store_error);
    auto r = office_route("");
    r.account_id = "nope";
    CHECK_THROWS_AS(cfg.save_route(r), storage::store_error);
    auto ns = google_dns("");
    ns.account_id = "";
    CHECK_THROWS_AS(cfg.save_nameserver_group(ns), storage::store_error);
    CHECK(s.count("groups", "account_id = 'nope'") == 0);
    CHECK(s.count("group_peers", "account_id = 'nope'") == 0);
    CHECK(s.count("policies", "account_id = 'nope'") == 0);
    CHECK(s.count("policy_rules", "1 = 1") == 0);
    CHECK(s.count("routes", "1 = 1") == 0);
    CHECK(s.count("name_server_groups", "1 = 1") == 0);

    // acc-a cannot take over acc-b's group by saving one with its id.
    core::group steal;
    steal.id = "all-acc-b";
    steal.account_id = "acc-a";
    steal.name = "mine now";
    CHECK_THROWS_WITH_AS(cfg.save_group(steal), doctest::Contains("another account"),
                         storage::store_error);
    CHECK(by_id(s.load("acc-b").groups, "all-acc-b")->name == "All");
    CHECK(s.count("group_peers", "group_id = 'all-acc-b'") == 2);
    CHECK(s.serial("acc-a") == 5);
    CHECK(s.serial("acc-b") == 0);
  }
}

TEST_CASE("config_store: a row the database rejects leaves nothing half-written") {
  for (const auto& opts : test::fresh_backends("cfg_atomic")) {
    INFO(test::backend_name(opts));
    seeded s(opts);
    auto cfg = s.config();

    // A new policy whose second rule repeats the first rule's id: the policy row and the first
    // rule were written before the database refused the second; none of it stays.
    core::policy p;
    p.account_id = "acc-a";
    p.name = "dup rules";
    p.enabled = true;
    p.rules = {rule("dup", "tcp", {"22"}), rule("dup", "udp", {"53"})};
    CHECK_THROWS_WITH_AS(cfg.save_policy(p), doctest::Contains("save policy"),
                         storage::store_error);
    CHECK(s.count("policies", "name = 'dup rules'") == 0);
    CHECK(s.count("policy_rules", "id = 'dup'") == 0);
    CHECK(s.serial("acc-a") == 5);

    // Replacing a stored policy fails half-way (its new rule's id is another policy's rule): the
    // stored policy keeps its name and its old rules.
    core::policy other;
    other.account_id = "acc-a";
    other.name = "other";
    other.rules = {rule("taken", "all")};
    auto other_id = cfg.save_policy(other).id;
    core::policy kept;
    kept.id = "pol-kept";
    kept.account_id = "acc-a";
    kept.name = "kept";
    kept.enabled = true;
    kept.rules = {rule("kept-1", "tcp", {"443"}), rule("kept-2", "icmp")};
    CHECK(cfg.save_policy(kept).serial == 7);
    const auto snapshot = s.load("acc-a");
    auto broken = kept;
    broken.name = "renamed";
    broken.rules = {rule("fresh", "udp"), rule("taken", "tcp")};
    CHECK_THROWS_AS(cfg.save_policy(broken), storage::store_error);
    const auto after = s.load("acc-a");
    CHECK(after == snapshot);
    CHECK(by_id(after.policies, "pol-kept")->name == "kept");
    CHECK(by_id(after.policies, "pol-kept")->rules.size() == 2);
    CHECK(s.count("policy_rules", "id = 'fresh'") == 0);
    CHECK(by_id(after.policies, other_id)->rules.size() == 1);
    CHECK(after.net.serial == 7);

    // The session is usable after the rollback.
    CHECK(cfg.delete_policy("acc-a", "pol-kept") == std::optional<std::uint64_t>(8));
  }
}

TEST_CASE("config_store: concurrent writers on their own sessions bump once per write") {
  for (const auto& opts : test::fresh_backends("cfg_concurrent")) {
    INFO(test::backend_name(opts));
    { seeded s(opts); }
    constexpr int threads = 4, writes = 5;
    std::mutex m;
    std::vector<std::string> errors;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        try {
          soci::session sql;
          storage::open_session(sql, opts);
          config_store cfg(sql, opts.kind);
          for (int i = 0; i < writes; ++i) {
            core::group g;
            g.id = "g-" + std::to_string(t) + "-" + std::to_string(i);
            g.account_id = "acc-a";
            g.name = g.id;
            g.peers = {"pa1"};
            cfg.save_group(g);
          }
        } catch (const std::exception& e) {
          std::lock_guard lock(m);
          errors.push_back(e.what());
        }
      });
    for (auto& th : pool)
      th.join();
    CHECK(errors == std::vector<std::string>{});
    stores s(opts);
    CHECK(s.serial("acc-a") == 5 + threads * writes);
    CHECK(s.load("acc-a").groups.size() == 1 + threads * writes);
  }
}
