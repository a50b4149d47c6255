// Golden maps on the fixture stores (tests/fixtures, NetBird's SQLite schema): the account as
// stored, and for named peers the map NetBird's rules (networkmap_components.go) give, each
// expectation with its reason.
#include "core/network_map.hpp"
#include "core/registration.hpp"
#include "tests/storage/store_fixtures.hpp"

#include <doctest/doctest.h>

using namespace nbm;

namespace {

std::chrono::system_clock::time_point utc(const char* text) {
  auto t = core::parse_store_time(text);
  REQUIRE(t.has_value());
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::duration<double>(*t)));
}

std::vector<std::string> ids(const core::account_view& v, const std::vector<std::uint32_t>& idx) {
  std::vector<std::string> out;
  for (auto i : idx)
    out.push_back(v.acc().peers[i].id);
  return out;
}

core::network_map map_of(const core::account_view& v, const std::string& id) {
  auto i = v.peer_index(id);
  REQUIRE(i.has_value());
  return v.map_for(*i);
}

// store_login_expiry.sql holds five peers and no groups or policies. Give it the defaults of a new
// NetBird account: group All with every peer, policy Default
// All <-> All (all protocols, bidirectional, accept).
core::account with_defaults(core::account a) {
  core::group all;
  all.id = "all-group";
  all.account_id = a.id;
  all.name = "All";
  for (const auto& p : a.peers)
    all.peers.push_back(p.id);
  a.groups.push_back(all);
  core::policy pol;
  pol.id = "default-policy";
  pol.account_id = a.id;
  pol.name = "Default";
  pol.enabled = true;
  core::policy_rule r;
  r.id = "default-rule";
  r.policy_id = pol.id;
  r.enabled = true;
  r.action = "accept";
  r.protocol = "all";
  r.bidirectional = true;
  r.sources = r.destinations = {all.id};
  pol.rules.push_back(r);
  a.policies.push_back(pol);
  return a;
}

} // namespace

TEST_CASE("golden: store_login_expiry.sql, Default policy, login expiration at two instants") {
  auto db = test::fresh_store(storage::engine::sqlite, "golden");
  test::load_fixture("store_login_expiry.sql", db);
  auto acc = with_defaults(test::load_account(db, test::fixture_account));
  REQUIRE(acc.peers.size() == 5);
  // The account expires SSO peers' logins after one hour.
  REQUIRE(acc.settings.peer_login_expiration_enabled);
  REQUIRE(acc.settings.peer_login_expiration_ns == 3600'000'000'000);

  core::map_context ctx;
  // 12:00 UTC on 2024-06-10: p5-fresh (SSO, expiration on) last logged in at 11:29:30 UTC, so it
  // has about half an hour left; p2-stale (SSO, expiration on, last login 2024-06-03) has expired.
  ctx.now = utc("2024-06-10 12:00:00+00:00");
  core::account_view v(std::make_shared<const core::account>(acc), ctx);
  const auto shared = v.shared();

  // The setup-key peer (no user: its login never expires) as the target.
  auto m = map_of(v, "p1-gateway");
  CHECK(m.serial == acc.net.serial);
  // p3-worker and p4-worker have expiration off; p5-fresh has time left. In the account's order.
  CHECK(ids(v, m.remote_peers) == std::vector<std::string>{"p3-worker", "p4-worker", "p5-fresh"});
  // The expired peer is still sent, as an offline peer.
  CHECK(ids(v, m.offline_peers) == std::vector<std::string>{"p2-stale"});
  // Default rule, bidirectional, target in sources and destinations: IN for every other peer
  // (expired included: NetBird filters the peer list, not the rules), then OUT for each; the
  // second (dest, OUT)/(src, IN) pass is removed by NetBird's dedup key.
  std::vector<std::string> rules;
  for (const auto& r : m.firewall_rules)
    rules.push_back(std::string(r.direction == core::rule_direction::in ? "in " : "out ") +
                    r.peer_ip + " " + r.policy_id + (r.port.empty() ? "" : " port"));
  CHECK(rules ==
        std::vector<std::string>{"in 100.64.20.2 default-rule", "in 100.64.20.3 default-rule",
                                 "in 100.64.20.4 default-rule", "in 100.64.20.5 default-rule",
                                 "out 100.64.20.2 default-rule", "out 100.64.20.3 default-rule",
                                 "out 100.64.20.4 default-rule", "out 100.64.20.5 default-rule"});
  for (const auto& r : m.firewall_rules)
    CHECK(r.protocol == core::rule_protocol::all);
  // Protocol all implies legacy SSH only for a target with SSH enabled (p1-gateway has an SSH key
  // but SSH off).
  CHECK_FALSE(m.ssh_enabled);
  // DNS: the peers zone holds the target and every peer it is connected to, expired included
  // (filterDNSRecordsByPeers keeps the component peers); no nameserver groups in this store.
  CHECK(m.dns.service_enable);
  REQUIRE(m.dns.custom_zones.size() == 1);
  CHECK(m.dns.custom_zones[0].domain == "netbird.selfhosted.");
  std::vector<std::string> records;
  for (auto i : m.dns.custom_zones[0].peers)
    for (const auto& r : v.peer_records(i))
      records.push_back(r.name + " " + r.rdata);
  // The target first, then the others in the account's order; p4-worker under its own label.
  CHECK(records == std::vector<std::string>{"gateway.netbird.selfhosted 100.64.20.1",
                                            "stale.netbird.selfhosted 100.64.20.2",
                                            "worker.netbird.selfhosted 100.64.20.3",
                                            "worker-1.netbird.selfhosted 100.64.20.4",
                                            "fresh.netbird.selfhosted 100.64.20.5"});
  CHECK(m.dns.nameserver_groups.empty());
  // p1-gateway runs 0.12.0: the old forwarder port for the whole account.
  CHECK(m.dns.forwarder_port == 5353);
  CHECK(m.routes.empty());

  // An hour later p5-fresh has expired too (11:29:30 + 1 h < 13:00).
  ctx.now = utc("2024-06-10 13:00:00+00:00");
  core::account_view later(shared, ctx);
  auto m2 = map_of(later, "p1-gateway");
  CHECK(ids(later, m2.remote_peers) == std::vector<std::string>{"p3-worker", "p4-worker"});
  CHECK(ids(later, m2.offline_peers) == std::vector<std::string>{"p2-stale", "p5-fresh"});
  // The expired peer itself still gets its map (its own Sync is refused elsewhere, at login).
  auto m3 = map_of(later, "p5-fresh");
  CHECK(m3.remote_peers.size() == 3);
}

TEST_CASE("golden: store_basic.sql, its one peer alone under the Default policy") {
  auto db = test::fresh_store(storage::engine::sqlite, "golden");
  test::load_fixture("store_basic.sql", db);
  auto acc = test::load_account(db, test::fixture_account);
  REQUIRE(acc.peers.size() == 1);
  REQUIRE(acc.policies.size() == 1);
  core::account_view v(std::make_shared<const core::account>(acc), {});
  auto m = map_of(v, "peerfixturesolo00001");
  // Nobody else to see, so no rules either.
  CHECK(m.remote_peers.empty());
  CHECK(m.offline_peers.empty());
  CHECK(m.firewall_rules.empty());
  // Its own record only: label "solo" at its stored address.
  REQUIRE(m.dns.custom_zones.size() == 1);
  REQUIRE(m.dns.custom_zones[0].peers.size() == 1);
  const auto records = v.peer_records(m.dns.custom_zones[0].peers[0]);
  REQUIRE(records.size() == 1);
  CHECK(records[0].name == "solo.netbird.selfhosted");
  CHECK(records[0].rdata == "100.64.10.1");
  CHECK(records[0].type == 1);
  CHECK(records[0].ttl == 300);
  CHECK(records[0].record_class == "IN");
  CHECK(v.fqdn(0) == "solo.netbird.selfhosted");
  // The Office network's router serves group All, which has no members (legacy groups.peers
  // "[]"): the peer neither routes nor reaches the printer resource.
  CHECK(m.routes.empty());
}

TEST_CASE("golden: store_networks.sql, networks with host, subnet and domain resources") {
  auto db = test::fresh_store(storage::engine::sqlite, "golden-networks");
  test::load_fixture("store_networks.sql", db);
  auto acc = test::load_account(db, test::fixture_account);
  // The store as read: two networks, four resources (the prefix column is netip.Prefix's JSON
  // string; a domain resource has none), two routers, the group holding two resources.
  REQUIRE(acc.networks.size() == 2);
  REQUIRE(acc.network_resources.size() == 4);
  REQUIRE(acc.network_routers.size() == 2);
  CHECK(acc.network_resources[2].id == "res-nets-printer");
  CHECK(acc.network_resources[2].prefix == "10.10.0.20/32");
  CHECK(acc.network_resources[2].name == "printer");
  CHECK(acc.network_resources[3].domain == "wiki.office.test");
  CHECK(acc.network_resources[3].prefix.empty());
  CHECK_FALSE(acc.network_resources[0].enabled); // res-nets-labnet
  const auto& office_rt = acc.network_routers[1];
  CHECK(office_rt.id == "rtr-nets-office");
  CHECK(office_rt.peer_groups == std::vector<std::string>{"grp-nets-gateways"});
  CHECK(office_rt.masquerade);
  CHECK(office_rt.metric == 50);
  const auto* res_group = acc.find_group_by_name("office-res");
  REQUIRE(res_group != nullptr);
  CHECK(res_group->resources.size() == 2);

  core::account_view v(std::make_shared<const core::account>(acc), {});
  const auto route_ids = [](const core::network_map& m) {
    std::vector<std::string> out;
    for (const auto& r : m.routes)
      out.push_back(r.id);
    return out;
  };

  // laptop (devs): the devs policy names group office-res, which holds the printer and the wiki:
  // each through both gateways (the router's peer group), resources in id order. The LAN is the
  // kiosks' (a destination resource), not the laptop's.
  auto laptop = map_of(v, "peer-nets-laptop");
  CHECK(route_ids(laptop) == std::vector<std::string>{"res-nets-printer:peer-nets-gw-a",
                                                      "res-nets-printer:peer-nets-gw-b",
                                                      "res-nets-wiki:peer-nets-gw-a",
                                                      "res-nets-wiki:peer-nets-gw-b"});
  CHECK(laptop.routes[0].network == "10.10.0.20/32");
  CHECK(laptop.routes[0].metric == 50);
  CHECK(laptop.routes[0].masquerade);
  CHECK(laptop.routes[0].net_id == "printer");
  CHECK(laptop.routes[2].network_type == 3);
  CHECK(laptop.routes[2].domains == std::vector<std::string>{"wiki.office.test"});
  // The gateways join its peers (addNetworksRoutingPeers); no peer policy connects them.
  CHECK(ids(v, laptop.remote_peers) ==
        std::vector<std::string>{"peer-nets-gw-a", "peer-nets-gw-b"});
  CHECK(laptop.firewall_rules.empty());
  CHECK(laptop.route_firewall_rules.empty());

  // gw-a routes all three enabled resources of Office, each admitting its policy's sources:
  // the LAN the kiosk (all protocols), the printer and the wiki the laptop on tcp/443 (the pending
  // peer of devs awaits approval, so it is not admitted).
  auto gw = map_of(v, "peer-nets-gw-a");
  CHECK(route_ids(gw) == std::vector<std::string>{"res-nets-lan:peer-nets-gw-a",
                                                  "res-nets-printer:peer-nets-gw-a",
                                                  "res-nets-wiki:peer-nets-gw-a"});
  REQUIRE(gw.route_firewall_rules.size() == 3);
  CHECK(gw.route_firewall_rules[0].source_ranges == std::vector<std::string>{"100.64.20.4/32"});
  CHECK(gw.route_firewall_rules[0].destination == "10.10.0.0/24");
  CHECK(gw.route_firewall_rules[0].protocol == core::rule_protocol::all);
  CHECK(gw.route_firewall_rules[0].policy_id == "pol-nets-kiosk");
  CHECK(gw.route_firewall_rules[1].source_ranges == std::vector<std::string>{"100.64.20.1/32"});
  CHECK(gw.route_firewall_rules[1].port == "443");
  CHECK(gw.route_firewall_rules[1].protocol == core::rule_protocol::tcp);
  CHECK(gw.route_firewall_rules[1].route_id == "res-nets-printer:peer-nets-gw-a");
  CHECK(gw.route_firewall_rules[2].is_dynamic);
  CHECK(gw.route_firewall_rules[2].destination == "192.0.2.0/32");
  CHECK(ids(v, gw.remote_peers) == std::vector<std::string>{"peer-nets-kiosk", "peer-nets-laptop"});

  // The kiosk routes for Lab, whose one resource is disabled: nothing to serve. As a source of the
  // LAN policy it reaches the LAN through both gateways.
  auto kiosk = map_of(v, "peer-nets-kiosk");
  CHECK(route_ids(kiosk) ==
        std::vector<std::string>{"res-nets-lan:peer-nets-gw-a", "res-nets-lan:peer-nets-gw-b"});
  CHECK(kiosk.route_firewall_rules.empty());

  // A peer awaiting approval gets nothing.
  CHECK(map_of(v, "peer-nets-pending").routes.empty());
}
