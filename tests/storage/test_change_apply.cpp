// An admin change applied in memory (storage::apply_commit) against the same change read back from
// the store after its commit: for every kind apply_commit handles, the two accounts are equal in
// every field (core::account's ==, the maps' and REST's whole input), on SQLite and PostgreSQL.
// Creations get their ids at the commit, members come unsorted and twice, a policy's rules get
// ids and order from the store, network changes regroup resources.
#include "core/change.hpp"
#include "storage/change_store.hpp"
#include "tests/storage/store_fixtures.hpp"
#include "tests/support/account_world.hpp"

#include <doctest/doctest.h>
#include <soci/soci.h>

#include <string>
#include <vector>

using namespace nbm;

namespace {

// Part by part (a failure names the part), then the whole.
void check_same(const core::account& mem, const core::account& back) {
  CHECK(mem.id == back.id);
  CHECK(mem.net == back.net);
  CHECK(mem.settings == back.settings);
  CHECK(mem.dns_disabled_management_groups == back.dns_disabled_management_groups);
  CHECK(mem.peers == back.peers);
  CHECK(mem.users == back.users);
  CHECK(mem.tokens == back.tokens);
  CHECK(mem.setup_keys == back.setup_keys);
  CHECK(mem.groups == back.groups);
  CHECK(mem.policies == back.policies);
  CHECK(mem.routes == back.routes);
  CHECK(mem.nameserver_groups == back.nameserver_groups);
  CHECK(mem.posture_checks == back.posture_checks);
  CHECK(mem.networks == back.networks);
  CHECK(mem.network_resources == back.network_resources);
  CHECK(mem.network_routers == back.network_routers);
  CHECK(mem == back);
}

struct world : test::account_world {
  std::string owner;

  explicit world(storage::db_options o) : account_world(std::move(o)) {
    *sql << "SELECT id FROM users WHERE account_id = :a", soci::use(account), soci::into(owner);
    for (int i = 0; i < 6; ++i) {
      core::peer p;
      p.id = "p" + std::to_string(i);
      p.account_id = account;
      p.key = "key-" + p.id;
      p.ip = "100.64.0." + std::to_string(i + 1);
      p.name = p.id;
      p.dns_label = p.id;
      p.meta.hostname = p.id;
      p.meta.wt_version = "0.60.0";
      p.user_id = i % 2 ? owner : "";
      accounts().insert_peer(p);
      accounts().add_group_peer(account, all_group, p.id);
    }
    for (const auto* g : {"g1", "g2", "g3"}) {
      core::group x;
      x.id = g;
      x.account_id = account;
      x.name = g;
      x.issued = "api";
      x.peers = {"p1", "p2"};
      accounts().insert_group(x);
    }
    accounts().insert_posture_check(
        {"pc1", account, "version", "", R"({"NBVersionCheck":{"MinVersion":"0.26.0"}})"});
  }

  core::account load() { return test::load_account(db, account); }

  // `what` committed, applied in memory to the account it was decided on, and read back: the two
  // must be equal. Returns the change's id (a created object's).
  std::string both_ways(core::change_kind what) {
    auto before = load();
    core::admin_change ch{owner, std::move(what)};
    const auto bad = core::prepare_change(before, ch);
    REQUIRE_MESSAGE(!bad, (bad ? bad->message : std::string()));
    const auto commit = storage::commit_change(*sql, db.kind, before, ch);
    REQUIRE(commit.found);
    CHECK(commit.serial_after == before.net.serial + 1);
    auto mem = before;
    REQUIRE(storage::apply_commit(mem, ch, commit));
    mem.net.serial = commit.serial_after;
    check_same(mem, load());
    return commit.id;
  }
};

core::policy_rule rule(const std::string& name, const std::string& protocol,
                       std::vector<std::string> src, std::vector<std::string> dst) {
  core::policy_rule r;
  r.name = name;
  r.description = name + " rule";
  r.enabled = true;
  r.action = "accept";
  r.protocol = protocol;
  r.bidirectional = protocol == "all";
  r.sources = std::move(src);
  r.destinations = std::move(dst);
  return r;
}

} // namespace

TEST_CASE("apply_commit: groups, policies, routes, nameservers, DNS and settings, peers, posture "
          "checks and networks in memory equal their read-back") {
  for (const auto& opts : test::fresh_backends("apply_commit")) {
    INFO(test::backend_name(opts));
    world w(opts);

    // Groups: a new one (its id chosen at the commit; members unsorted, one twice), an update.
    core::group devs;
    devs.name = "devs";
    devs.issued = "api";
    devs.peers = {"p4", "p0", "p3", "p0"};
    const auto devs_id = w.both_ways(core::change::save_group{devs});
    core::group g1;
    g1.id = "g1";
    g1.name = "group one";
    g1.peers = {"p5", "p2"};
    w.both_ways(core::change::save_group{g1});

    // Policies: a new one whose rules get the policy's id and a fresh one, then an update that
    // keeps one rule, adds one and lists them out of id order; SSH rules with authorized groups.
    core::policy pol;
    pol.name = "web";
    pol.enabled = true;
    pol.source_posture_checks = {"pc1"};
    pol.rules.push_back(rule("http", "tcp", {"g1"}, {devs_id}));
    pol.rules.back().ports = {"80", "443"};
    pol.rules.push_back(rule("dns", "udp", {"g2"}, {"g1"}));
    pol.rules.back().port_ranges = {{53, 54}, {1000, 2000}};
    const auto pol_id = w.both_ways(core::change::save_policy{pol});
    auto stored = w.load();
    const core::policy* saved = nullptr;
    for (const auto& p : stored.policies)
      if (p.id == pol_id)
        saved = &p;
    REQUIRE(saved);
    REQUIRE(saved->rules.size() == 2);
    core::policy upd;
    upd.id = pol_id;
    upd.name = "web and ssh";
    upd.description = "changed";
    upd.enabled = true;
    upd.rules.push_back(rule("ssh", "netbird-ssh", {devs_id}, {"g2"}));
    upd.rules.back().authorized_groups = {{"g1", {"root", "admin"}}, {"g2", {}}};
    upd.rules.back().authorized_user = "";
    auto kept = saved->rules.back();
    kept.name = "kept";
    upd.rules.push_back(kept);
    upd.rules.push_back(rule("all", "all", {"g3"}, {"g3"}));
    w.both_ways(core::change::save_policy{upd});

    // Routes: new, updated, deleted.
    core::route rt;
    rt.network = "10.10.0.0/16";
    rt.network_type = 1;
    rt.net_id = "office";
    rt.description = "the office";
    rt.peer = "p1";
    rt.metric = 100;
    rt.enabled = true;
    rt.masquerade = true;
    rt.groups = {"g1", devs_id};
    rt.access_control_groups = {"g2"};
    const auto rt_id = w.both_ways(core::change::save_route{rt});
    rt.id = rt_id;
    rt.metric = 200;
    rt.keep_route = true;
    rt.peer.clear();
    rt.peer_groups = {"g3"};
    w.both_ways(core::change::save_route{rt});
    core::route rt2 = rt;
    rt2.id.clear();
    rt2.network = "10.20.0.0/16";
    rt2.net_id = "lab";
    const auto rt2_id = w.both_ways(core::change::save_route{rt2});
    w.both_ways(core::change::delete_route{rt_id});

    // Nameserver groups: new (two nameservers), updated, a second one, one deleted.
    core::nameserver_group ns;
    ns.name = "internal";
    ns.description = "resolvers";
    ns.nameservers = {{"10.0.0.53", 1, 53}, {"10.0.0.54", 1, 5353}};
    ns.groups = {"g1"};
    ns.domains = {"corp.example", "lab.example"};
    ns.enabled = true;
    ns.search_domains_enabled = true;
    const auto ns_id = w.both_ways(core::change::save_nameservers{ns});
    ns.id = ns_id;
    ns.nameservers.pop_back();
    ns.groups = {"g1", "g2"};
    w.both_ways(core::change::save_nameservers{ns});
    core::nameserver_group primary;
    primary.name = "primary";
    primary.nameservers = {{"1.1.1.1", 1, 53}};
    primary.groups = {"g3"};
    primary.primary = true;
    primary.enabled = true;
    w.both_ways(core::change::save_nameservers{primary});
    w.both_ways(core::change::delete_nameservers{ns_id});

    // DNS settings and the account's settings.
    w.both_ways(core::change::dns_settings{{"g2", "g1"}});
    core::change::settings st;
    st.account_id = w.account;
    st.s = w.load().settings;
    st.s.peer_login_expiration_enabled = true;
    st.s.peer_login_expiration_ns = 3600LL * 1000000000LL;
    st.s.peer_inactivity_expiration_enabled = true;
    st.s.peer_inactivity_expiration_ns = 600LL * 1000000000LL;
    st.s.groups_propagation_enabled = true;
    st.s.jwt_groups_enabled = true;
    st.s.jwt_groups_claim_name = "roles";
    st.s.jwt_allow_groups = {"admins", "devs"};
    st.s.routing_peer_dns_resolution_enabled = true;
    st.s.dns_domain = "corp.internal";
    st.s.extra_peer_approval_enabled = true;
    st.s.extra_integrated_validator_groups = {"g3"};
    st.s.lazy_connection_enabled = true;
    w.both_ways(st);

    // Posture checks: new, updated, and one deleted (pc1 stays: the policy names it).
    core::posture_check pc;
    pc.name = "os";
    pc.description = "kernel";
    pc.checks_json = R"({"OSVersionCheck":{"Linux":{"MinKernelVersion":"5.10"}}})";
    const auto pc_id = w.both_ways(core::change::save_posture_check{pc});
    pc.id = pc_id;
    pc.description = "a newer kernel";
    pc.checks_json = R"({"OSVersionCheck":{"Linux":{"MinKernelVersion":"6.1"}}})";
    w.both_ways(core::change::save_posture_check{pc});
    w.both_ways(core::change::delete_posture_check{pc_id});

    // Networks: a network, routers (a peer; peer groups), resources that join groups, an update
    // that moves a resource to other groups, and deletes that take resources out of groups.
    core::network_def net;
    net.name = "datacenter";
    net.description = "dc";
    const auto net_id = w.both_ways(core::change::save_network{net});
    net.id = net_id;
    net.description = "the datacenter";
    w.both_ways(core::change::save_network{net});
    core::network_router router;
    router.network_id = net_id;
    router.peer = "p1";
    router.metric = 10;
    router.masquerade = true;
    const auto router_id = w.both_ways(core::change::save_router{router});
    router.id = router_id;
    router.peer.clear();
    router.peer_groups = {"g2", "g1"};
    router.enabled = false;
    w.both_ways(core::change::save_router{router});
    core::change::save_resource db;
    db.r.network_id = net_id;
    db.r.name = "database";
    db.r.description = "postgres";
    db.address = "10.0.1.5";
    db.groups = {"g2", "g1"};
    const auto db_id = w.both_ways(db);
    core::change::save_resource web;
    web.r.network_id = net_id;
    web.r.name = "web";
    web.address = "web.corp.example";
    web.groups = {"g1"};
    const auto web_id = w.both_ways(web);
    db.r.id = db_id;
    db.address = "10.0.1.0/24";
    db.groups = {"g3"};
    db.r.enabled = false;
    w.both_ways(db);
    core::network_def other;
    other.name = "lab";
    const auto other_id = w.both_ways(core::change::save_network{other});
    core::change::save_resource lab;
    lab.r.network_id = other_id;
    lab.r.name = "lab host";
    lab.address = "192.168.7.7/32";
    lab.groups = {"g1", "g3"};
    const auto lab_id = w.both_ways(lab);
    w.both_ways(core::change::delete_resource{net_id, web_id, {}});
    w.both_ways(core::change::delete_router{net_id, router_id});
    w.both_ways(core::change::delete_network{net_id, {}});
    {
      const auto a = w.load();
      CHECK(a.networks.size() == 1);
      CHECK(a.network_resources.size() == 1);
      bool held = false;
      for (const auto& g : a.groups)
        for (const auto& r : g.resources)
          held = held || r.id == lab_id;
      CHECK(held);
    }

    // Peers: a rename (a new DNS label), SSH on; a delete that takes the peer out of its groups.
    core::change::update_peer ren;
    ren.id = "p2";
    ren.name = "Renamed Peer";
    ren.ssh_enabled = true;
    w.both_ways(ren);
    w.both_ways(core::change::delete_peer{"p2"});

    // Groups and policies deleted last (nothing links them any more).
    w.both_ways(core::change::delete_policy{pol_id});
    w.both_ways(core::change::delete_route{rt2_id});
    w.both_ways(core::change::delete_group{devs_id});
  }
}

TEST_CASE("apply_commit: users, tokens, setup keys and JWT groups are read back, not applied") {
  for (const auto& opts : test::fresh_backends("apply_commit_not")) {
    INFO(test::backend_name(opts));
    world w(opts);
    auto before = w.load();
    core::change::create_setup_key key;
    key.name = "key";
    key.auto_groups = {"g1"};
    core::admin_change ch{w.owner, key};
    REQUIRE_FALSE(core::prepare_change(before, ch));
    const auto commit = storage::commit_change(*w.sql, opts.kind, before, ch);
    REQUIRE(commit.found);
    CHECK(commit.serial_after == before.net.serial); // moves no serial
    auto mem = before;
    CHECK_FALSE(storage::apply_commit(mem, ch, commit));
    CHECK(mem == before);
    // A commit that found its object gone is not applied either.
    core::admin_change gone{w.owner, core::change::delete_route{"no-such-route"}};
    storage::change_commit missing;
    missing.found = false;
    CHECK_FALSE(storage::apply_commit(mem, gone, missing));
    CHECK(mem == before);
  }
}

TEST_CASE("copy_parts, take_parts and same_parts cover every field of an account, part by part") {
  for (const auto& opts : test::fresh_backends("account_parts")) {
    INFO(test::backend_name(opts));
    world w(opts);
    core::change::save_resource res;
    core::network_def net;
    net.name = "net";
    res.r.network_id = w.both_ways(core::change::save_network{net});
    res.r.name = "host";
    res.address = "10.1.1.1";
    res.groups = {"g1"};
    w.both_ways(res);
    core::change::dns_settings dns{{"g2"}};
    w.both_ways(dns);
    core::route rt;
    rt.network = "10.10.0.0/16";
    rt.network_type = 1;
    rt.net_id = "office";
    rt.peer = "p1";
    rt.metric = 100;
    rt.enabled = true;
    rt.groups = {"g1"};
    w.both_ways(core::change::save_route{rt});
    core::nameserver_group ns;
    ns.name = "primary";
    ns.nameservers = {{"1.1.1.1", 1, 53}};
    ns.groups = {"g3"};
    ns.primary = true;
    ns.enabled = true;
    w.both_ways(core::change::save_nameservers{ns});
    const auto a = w.load();
    using parts = storage::account_store;
    CHECK(storage::copy_parts(a, parts::part_all) == a);
    CHECK(storage::copy_parts(a, 0) == core::account{});
    for (unsigned p = 1; p < parts::part_all; p <<= 1) {
      INFO("part " << p);
      auto rest = storage::copy_parts(a, parts::part_all & ~p);
      CHECK_FALSE(rest == a); // the part was left out (every part of `a` holds something)
      CHECK(storage::same_parts(rest, a, parts::part_all & ~p));
      CHECK_FALSE(storage::same_parts(rest, a, p));
      storage::take_parts(rest, storage::copy_parts(a, p), p);
      CHECK(rest == a);
      CHECK(storage::same_parts(rest, a, parts::part_all));
    }
  }
}
