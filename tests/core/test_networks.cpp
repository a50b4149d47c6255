// Networks in maps (network resources and routers): each expectation is what NetBird's Calculate
// (shared/management/types/networkmap_components.go: getNetworkResourcesRoutesToSync,
// getPeerNetworkResourceFirewallRules, addNetworksRoutingPeers) gives for the same account.
#include "core/network_map.hpp"

#include <doctest/doctest.h>

#include <algorithm>

using namespace nbm::core;

namespace {

// Peers p at 100.64.0.(i+1) in the order added, label "h-<id>", agent 0.60.0.
struct builder {
  account a;

  builder() {
    a.id = "acc";
    a.net.net = "100.64.0.0/16";
    a.net.serial = 3;
  }
  peer& add_peer(const std::string& id) {
    peer p;
    p.id = id;
    p.account_id = a.id;
    p.key = "key-" + id;
    p.ip = "100.64.0." + std::to_string(a.peers.size() + 1);
    p.dns_label = "h-" + id;
    p.meta.wt_version = "0.60.0";
    a.peers.push_back(p);
    return a.peers.back();
  }
  group& add_group(const std::string& id, std::vector<std::string> peers,
                   std::vector<std::string> resources = {}) {
    group g;
    g.id = id;
    g.name = id;
    g.peers = std::move(peers);
    for (auto& r : resources)
      g.resources.push_back({r, "host"});
    a.groups.push_back(g);
    return a.groups.back();
  }
  policy& add_policy(const std::string& id, std::vector<std::string> src,
                     std::vector<std::string> dst, std::string protocol = "all") {
    policy p;
    p.id = id;
    p.enabled = true;
    policy_rule r;
    r.id = id + "-rule";
    r.policy_id = id;
    r.enabled = true;
    r.action = "accept";
    r.protocol = std::move(protocol);
    r.sources = std::move(src);
    r.destinations = std::move(dst);
    p.rules.push_back(r);
    a.policies.push_back(p);
    return a.policies.back();
  }
  network_resource& add_resource(const std::string& id, const std::string& net,
                                 const std::string& type, const std::string& address) {
    network_resource r;
    r.id = id;
    r.network_id = net;
    r.account_id = a.id;
    r.name = "name-" + id;
    r.type = type;
    (type == "domain" ? r.domain : r.prefix) = address;
    a.network_resources.push_back(r);
    return a.network_resources.back();
  }
  network_router& add_router(const std::string& id, const std::string& net, std::string peer,
                             std::vector<std::string> groups = {}) {
    network_router r;
    r.id = id;
    r.network_id = net;
    r.account_id = a.id;
    r.peer = std::move(peer);
    r.peer_groups = std::move(groups);
    r.metric = 100;
    a.network_routers.push_back(r);
    return a.network_routers.back();
  }
  account_view view() const { return account_view(std::make_shared<const account>(a), {}); }
};

network_map map_of(const account_view& v, const std::string& peer_id) {
  auto i = v.peer_index(peer_id);
  REQUIRE(i.has_value());
  return v.map_for(*i);
}

std::vector<std::string> ids(const account_view& v, const std::vector<std::uint32_t>& idx) {
  std::vector<std::string> out;
  for (auto i : idx)
    out.push_back(v.acc().peers[i].id);
  return out;
}

std::vector<std::string> route_ids(const network_map& m) {
  std::vector<std::string> out;
  for (const auto& r : m.routes)
    out.push_back(r.id);
  return out;
}

std::vector<std::string> zone_peers(const account_view& v, const network_map& m) {
  if (m.dns.custom_zones.empty())
    return {};
  return ids(v, m.dns.custom_zones[0].peers);
}

// Client c (group devs), router r, bystander x; network n1 with host resource res1 held by group
// "printers"; policy devs -> printers.
builder office() {
  builder b;
  b.add_peer("c");
  b.add_peer("r");
  b.add_peer("x");
  b.add_group("devs", {"c"});
  b.add_group("printers", {}, {"res1"});
  b.add_policy("pol", {"devs"}, {"printers"});
  b.add_resource("res1", "n1", "host", "10.0.0.20/32");
  b.add_router("rt1", "n1", "r").masquerade = true;
  return b;
}

} // namespace

TEST_CASE("a host resource behind a peer router: the client's route, the router's rules") {
  auto b = office();
  auto v = b.view();

  auto c = map_of(v, "c");
  // The policy's destination group holds the resource: the client gets the route through the
  // router, as NetworkResource.ToRoute builds it (id resource:peer, NetID = the resource's name,
  // KeepRoute, the router's metric and masquerade, the router peer's key).
  REQUIRE(c.routes.size() == 1);
  const auto& r = c.routes[0];
  CHECK(r.id == "res1:r");
  CHECK(r.network == "10.0.0.20/32");
  CHECK(r.network_type == 1);
  CHECK(r.peer_key == "key-r");
  CHECK(r.metric == 100);
  CHECK(r.masquerade);
  CHECK(r.net_id == "name-res1");
  CHECK(r.keep_route);
  CHECK(r.domains.empty());
  // No policy connects c and r as peers, yet c must reach r: addNetworksRoutingPeers adds it,
  // without a peer firewall rule.
  CHECK(ids(v, c.remote_peers) == std::vector<std::string>{"r"});
  CHECK(c.firewall_rules.empty());
  // The client gets no route firewall rules (it serves nothing).
  CHECK(c.route_firewall_rules.empty());
  // The router is in the client's DNS view.
  CHECK(zone_peers(v, c) == std::vector<std::string>{"c", "r"});

  auto rm = map_of(v, "r");
  // The router serves the resource itself ...
  REQUIRE(rm.routes.size() == 1);
  CHECK(rm.routes[0].id == "res1:r");
  CHECK(rm.routes[0].peer_key == "key-r");
  // ... admits the policy's sources to it (one rule: no ports; the policy id, the route id) ...
  REQUIRE(rm.route_firewall_rules.size() == 1);
  const auto& fr = rm.route_firewall_rules[0];
  CHECK(fr.source_ranges == std::vector<std::string>{"100.64.0.1/32"});
  CHECK(fr.destination == "10.0.0.20/32");
  CHECK(fr.policy_id == "pol");
  CHECK(fr.route_id == "res1:r");
  CHECK(fr.protocol == rule_protocol::all);
  CHECK(fr.action == rule_action::accept);
  CHECK_FALSE(fr.is_dynamic);
  // ... and connects to them.
  CHECK(ids(v, rm.remote_peers) == std::vector<std::string>{"c"});
  CHECK(zone_peers(v, rm) == std::vector<std::string>{"c", "r"});

  // x is in no source group: nothing of the network reaches it.
  auto x = map_of(v, "x");
  CHECK(x.routes.empty());
  CHECK(x.remote_peers.empty());
  CHECK(zone_peers(v, x) == std::vector<std::string>{"x"});
}

TEST_CASE("subnet and domain resources through a peer-group router: one route per routing peer") {
  builder b;
  for (auto id : {"c", "r1", "r2"})
    b.add_peer(id);
  b.add_group("devs", {"c"});
  b.add_group("gw", {"r2", "r1"});
  b.add_group("dst", {}, {"sub", "dom"});
  b.add_policy("pol", {"devs"}, {"dst"});
  b.add_resource("sub", "n1", "subnet", "10.1.0.0/16");
  b.add_resource("dom", "n1", "domain", "Intra.Example.COM");
  b.add_router("rt", "n1", "", {"gw"});
  auto v = b.view();

  auto c = map_of(v, "c");
  // Resources in the account's order, each through every routing peer (peers in id order).
  CHECK(route_ids(c) == std::vector<std::string>{"sub:r1", "sub:r2", "dom:r1", "dom:r2"});
  CHECK(c.routes[0].network == "10.1.0.0/16");
  // A domain resource: NetBird's placeholder network, type domain, the domain in lower case.
  CHECK(c.routes[2].network == "192.0.2.0/32");
  CHECK(c.routes[2].network_type == 3);
  CHECK(c.routes[2].domains == std::vector<std::string>{"intra.example.com"});
  CHECK(c.routes[2].net_id == "name-dom");
  CHECK(ids(v, c.remote_peers) == std::vector<std::string>{"r1", "r2"});

  auto r1 = map_of(v, "r1");
  CHECK(route_ids(r1) == std::vector<std::string>{"sub:r1", "dom:r1"});
  REQUIRE(r1.route_firewall_rules.size() == 2);
  CHECK(r1.route_firewall_rules[1].is_dynamic);
  CHECK(r1.route_firewall_rules[1].destination == "192.0.2.0/32");
  CHECK(r1.route_firewall_rules[1].domains == std::vector<std::string>{"intra.example.com"});
  // The other router of the network is in its DNS view, not among its peers.
  CHECK(ids(v, r1.remote_peers) == std::vector<std::string>{"c"});
  CHECK(zone_peers(v, r1) == std::vector<std::string>{"c", "r1", "r2"});
}

TEST_CASE("a destination resource, ports, and a peer that already connects to the router") {
  auto b = office();
  b.a.policies.clear();
  auto& pol = b.add_policy("direct", {"devs"}, {});
  pol.rules[0].destination_resource = {"res1", "host"};
  pol.rules[0].protocol = "tcp";
  pol.rules[0].ports = {"631", "9100", "631"};
  // And a peer policy devs -> router: c already connects to r.
  b.add_group("routers", {"r"});
  b.add_policy("peers", {"devs"}, {"routers"});
  auto v = b.view();

  auto c = map_of(v, "c");
  CHECK(route_ids(c) == std::vector<std::string>{"res1:r"});
  // r came through the peer policy; the network adds it once only.
  CHECK(ids(v, c.remote_peers) == std::vector<std::string>{"r"});
  CHECK(c.firewall_rules.size() == 1);

  auto r = map_of(v, "r");
  // One route rule per distinct port, tcp.
  REQUIRE(r.route_firewall_rules.size() == 2);
  CHECK(r.route_firewall_rules[0].port == "631");
  CHECK(r.route_firewall_rules[1].port == "9100");
  CHECK(r.route_firewall_rules[0].protocol == rule_protocol::tcp);
  CHECK(r.route_firewall_rules[0].policy_id == "direct");
}

TEST_CASE("what grants nothing: disabled resource, router or policy; no policy; pending peers") {
  SUBCASE("a disabled resource") {
    auto b = office();
    b.a.network_resources[0].enabled = false;
    auto v = b.view();
    CHECK(map_of(v, "c").routes.empty());
    CHECK(map_of(v, "r").routes.empty());
    CHECK(map_of(v, "c").remote_peers.empty());
  }
  SUBCASE("a disabled router: the network has no routing peer") {
    auto b = office();
    b.a.network_routers[0].enabled = false;
    auto v = b.view();
    CHECK(map_of(v, "c").routes.empty());
    CHECK(map_of(v, "c").remote_peers.empty());
    CHECK(map_of(v, "r").routes.empty());
  }
  SUBCASE("a disabled policy: no policy applies, so even the router has no route") {
    auto b = office();
    b.a.policies[0].enabled = false;
    auto v = b.view();
    CHECK(map_of(v, "c").routes.empty());
    CHECK(map_of(v, "r").routes.empty());
    CHECK(map_of(v, "r").route_firewall_rules.empty());
  }
  SUBCASE("a router waiting for approval routes for nobody") {
    auto b = office();
    b.a.peers[1].status.requires_approval = true;
    auto v = b.view();
    CHECK(map_of(v, "c").routes.empty());
    CHECK(map_of(v, "c").remote_peers.empty());
  }
  SUBCASE("a source peer waiting for approval is not admitted by the router") {
    auto b = office();
    b.a.peers[0].status.requires_approval = true;
    auto v = b.view();
    auto r = map_of(v, "r");
    CHECK(route_ids(r) == std::vector<std::string>{"res1:r"}); // the policy still applies
    CHECK(r.route_firewall_rules.empty());                     // a rule without sources is dropped
    CHECK(r.remote_peers.empty());
  }
  SUBCASE("a router whose group the policy does not name, in another network") {
    auto b = office();
    b.a.network_routers[0].network_id = "n2";
    auto v = b.view();
    CHECK(map_of(v, "c").routes.empty());
    CHECK(map_of(v, "r").routes.empty());
  }
}

TEST_CASE("network routes come before the account's routes; the fingerprint sees them") {
  auto b = office();
  b.add_group("all", {"c", "r", "x"});
  route rt;
  rt.id = "lan";
  rt.network = "192.168.0.0/24";
  rt.network_type = 1;
  rt.net_id = "lan";
  rt.enabled = true;
  rt.peer = "c";
  rt.groups = {"all"};
  b.a.routes.push_back(rt);
  auto v = b.view();
  auto c = map_of(v, "c");
  CHECK(route_ids(c) == std::vector<std::string>{"res1:r", "lan"});

  // Moving the resource changes the client's map and its fingerprint.
  const auto before = v.fingerprint(c);
  b.a.network_resources[0].prefix = "10.0.0.21/32";
  auto v2 = b.view();
  CHECK(v2.fingerprint(map_of(v2, "c")) != before);
}

TEST_CASE("a resource policy with a peer as its source") {
  auto b = office();
  b.a.policies[0].rules[0].sources.clear();
  b.a.policies[0].rules[0].source_resource = {"x", "peer"};
  auto v = b.view();
  // The first rule's source peer is the policy's only source.
  CHECK(map_of(v, "c").routes.empty());
  CHECK(route_ids(map_of(v, "x")) == std::vector<std::string>{"res1:r"});
  auto r = map_of(v, "r");
  REQUIRE(r.route_firewall_rules.size() == 1);
  CHECK(r.route_firewall_rules[0].source_ranges == std::vector<std::string>{"100.64.0.3/32"});
}

TEST_CASE("an IPv6 resource: dropped for peers without an IPv6 overlay, as NetBird drops it") {
  // NetBird's Calculate sends a v6 route and its route firewall rules only when the target has an
  // IPv6 overlay address and the capability (includeIPv6); this server assigns none, so neither
  // the client nor the router gets the v6 resource, while the v4 one next to it is unchanged.
  auto b = office();
  b.add_resource("res6", "n1", "subnet", "2001:db8:1::/64");
  b.a.groups[1].resources.push_back({"res6", "subnet"});
  auto v = b.view();
  const auto c = map_of(v, "c");
  CHECK(route_ids(c) == std::vector<std::string>{"res1:r"});
  const auto r = map_of(v, "r");
  CHECK(route_ids(r) == std::vector<std::string>{"res1:r"});
  for (const auto& fr : r.route_firewall_rules)
    CHECK(fr.destination == "10.0.0.20/32");
}
