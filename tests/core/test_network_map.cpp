// Network maps, rule kind by rule kind: each expectation is what NetBird's Calculate
// (shared/management/types/networkmap_components.go) gives for the same account.
#include "core/network_map.hpp"

#include <doctest/doctest.h>

#include <algorithm>

using namespace nbm::core;

namespace {

// A small account: peers p0..pN-1 at 100.64.0.(i+1), label "h<i>", agent 0.60.0; groups by id.
struct builder {
  account a;

  builder() {
    a.id = "acc";
    a.net.net = "100.64.0.0/16";
    a.net.serial = 7;
  }
  peer& add_peer(const std::string& id, const std::string& version = "0.60.0") {
    peer p;
    p.id = id;
    p.account_id = a.id;
    p.key = "key-" + id;
    p.ip = "100.64.0." + std::to_string(a.peers.size() + 1);
    p.dns_label = "h-" + id;
    p.meta.wt_version = version;
    a.peers.push_back(p);
    return a.peers.back();
  }
  group& add_group(const std::string& id, std::vector<std::string> peers, std::string name = "") {
    group g;
    g.id = id;
    g.name = name.empty() ? id : name;
    g.peers = std::move(peers);
    a.groups.push_back(g);
    return a.groups.back();
  }
  policy_rule& add_policy(const std::string& id, std::vector<std::string> src,
                          std::vector<std::string> dst, std::string protocol = "all",
                          bool bidirectional = false) {
    policy p;
    p.id = id;
    p.enabled = true;
    policy_rule r;
    r.id = id + "-rule";
    r.policy_id = id;
    r.enabled = true;
    r.action = "accept";
    r.protocol = std::move(protocol);
    r.bidirectional = bidirectional;
    r.sources = std::move(src);
    r.destinations = std::move(dst);
    p.rules.push_back(r);
    a.policies.push_back(p);
    return a.policies.back().rules.back();
  }
  route& add_route(const std::string& id, const std::string& network,
                   std::vector<std::string> groups) {
    route r;
    r.id = id;
    r.network = network;
    r.network_type = 1;
    r.net_id = "net-" + id;
    r.metric = 9999;
    r.enabled = true;
    r.groups = std::move(groups);
    a.routes.push_back(r);
    return a.routes.back();
  }
  account_view view(map_context ctx = {}) const {
    return account_view(std::make_shared<const account>(a), std::move(ctx));
  }
};

std::vector<std::string> ids(const account_view& v, const std::vector<std::uint32_t>& idx) {
  std::vector<std::string> out;
  for (auto i : idx)
    out.push_back(v.acc().peers[i].id);
  return out;
}

// A zone's records as they reach the wire: its peers' records, then its own.
std::vector<dns_record> zone_records(const account_view& v, const custom_zone& z) {
  std::vector<dns_record> out;
  for (auto p : z.peers)
    for (auto& r : v.peer_records(p))
      out.push_back(std::move(r));
  out.insert(out.end(), z.records.begin(), z.records.end());
  return out;
}

network_map map_of(const account_view& v, const std::string& peer_id) {
  auto i = v.peer_index(peer_id);
  REQUIRE(i.has_value());
  return v.map_for(*i);
}

std::vector<std::string> rule_lines(const network_map& m) {
  std::vector<std::string> out;
  for (const auto& r : m.firewall_rules)
    out.push_back(
        r.peer_ip + (r.direction == rule_direction::in ? " in " : " out ") +
        std::to_string(static_cast<int>(r.protocol)) +
        (r.action == rule_action::drop ? " drop" : " accept") + " port=" + r.port +
        (r.range ? " range=" + std::to_string(r.range->start) + "-" + std::to_string(r.range->end)
                 : "") +
        " " + r.policy_id);
  return out;
}

} // namespace

TEST_CASE(
    "a one-way rule: the source connects out, the destination accepts in, others see nothing") {
  builder b;
  b.add_peer("a");
  b.add_peer("b");
  b.add_peer("c");
  b.add_group("g1", {"a"});
  b.add_group("g2", {"b"});
  b.add_group("gall", {"a", "b", "c"}, "All");
  b.add_policy("p", {"g1"}, {"g2"}, "tcp").ports = {"80"};
  auto v = b.view();

  auto ma = map_of(v, "a");
  CHECK(ma.serial == 7);
  CHECK(ids(v, ma.remote_peers) == std::vector<std::string>{"b"});
  // a is a source: OUT rules towards the destination's IP.
  CHECK(rule_lines(ma) == std::vector<std::string>{"100.64.0.2 out 2 accept port=80 p-rule"});

  auto mb = map_of(v, "b");
  CHECK(ids(v, mb.remote_peers) == std::vector<std::string>{"a"});
  CHECK(rule_lines(mb) == std::vector<std::string>{"100.64.0.1 in 2 accept port=80 p-rule"});

  auto mc = map_of(v, "c");
  CHECK(mc.remote_peers.empty());
  CHECK(mc.firewall_rules.empty());
}

TEST_CASE("bidirectional All<->All: every other peer, IN and OUT once each, in that order") {
  builder b;
  for (auto id : {"a", "b", "c"})
    b.add_peer(id);
  b.add_group("all", {"a", "b", "c"}, "All");
  b.add_policy("default", {"all"}, {"all"}, "all", true);
  auto v = b.view();
  auto m = map_of(v, "b");
  CHECK(ids(v, m.remote_peers) == std::vector<std::string>{"a", "c"});
  // NetBird generates (dest, IN), (src, OUT), then (dest, OUT) and (src, IN) again, which its
  // dedup key (rule, peer IP, direction, protocol, action, ports) drops.
  CHECK(rule_lines(m) == std::vector<std::string>{
                             "100.64.0.1 in 1 accept port= default-rule",
                             "100.64.0.3 in 1 accept port= default-rule",
                             "100.64.0.1 out 1 accept port= default-rule",
                             "100.64.0.3 out 1 accept port= default-rule",
                         });
  // Protocol "all" implies legacy SSH, but only for a target that has SSH enabled.
  CHECK_FALSE(m.ssh_enabled);
  b.a.peers[1].ssh_enabled = true;
  CHECK(map_of(b.view(), "b").ssh_enabled);
}

TEST_CASE(
    "group expansion: several groups are united, but an All group (or a lone group) stands alone") {
  builder b;
  for (auto id : {"a", "b", "c", "d"})
    b.add_peer(id);
  b.add_group("g1", {"b"});
  b.add_group("g2", {"c"});
  b.add_group("gall", {"a", "b", "c", "d"}, "All");
  b.add_group("gempty", {});
  b.add_group("gd", {"d"});
  b.add_policy("p1", {"g1", "g2"}, {"gd"});
  auto v = b.view();
  CHECK(ids(v, map_of(v, "d").remote_peers) == std::vector<std::string>{"b", "c"});

  // [g1, All]: reaching All returns All's peers alone (a superset here).
  b.a.policies[0].rules[0].sources = {"g1", "gall"};
  v = b.view();
  CHECK(ids(v, map_of(v, "d").remote_peers) == std::vector<std::string>{"a", "b", "c"});

  // Unknown group ids are skipped.
  b.a.policies[0].rules[0].sources = {"nope", "gempty"};
  v = b.view();
  CHECK(map_of(v, "d").remote_peers.empty());
}

TEST_CASE("disabled policies and disabled rules give nothing") {
  builder b;
  b.add_peer("a");
  b.add_peer("b");
  b.add_group("all", {"a", "b"}, "All");
  b.add_policy("p", {"all"}, {"all"}, "all", true);
  b.a.policies[0].enabled = false;
  CHECK(map_of(b.view(), "a").remote_peers.empty());
  b.a.policies[0].enabled = true;
  b.a.policies[0].rules[0].enabled = false;
  CHECK(map_of(b.view(), "a").remote_peers.empty());
  b.a.policies[0].rules[0].enabled = true;
  CHECK(map_of(b.view(), "a").remote_peers.size() == 1);
}

TEST_CASE("source posture checks: a failing source peer loses the policy; an unknown id passes") {
  builder b;
  b.add_peer("a");
  b.add_peer("b");
  b.add_group("all", {"a", "b"}, "All");
  b.add_policy("p", {"all"}, {"all"}, "all", true);
  CHECK(map_of(b.view(), "a").remote_peers.size() == 1);
  // NetBird skips a posture check id the account does not hold.
  b.a.policies[0].source_posture_checks = {"check-1"};
  CHECK(map_of(b.view(), "a").remote_peers.size() == 1);
  // Both peers run 0.60.0: a minimum of 0.61.0 fails both, so neither is a source any more.
  b.a.posture_checks.push_back(
      {"check-1", "acc", "min", "", R"({"NBVersionCheck":{"MinVersion":"0.61.0"}})"});
  CHECK(map_of(b.view(), "a").remote_peers.empty());
  CHECK(map_of(b.view(), "a").firewall_rules.empty());
}

TEST_CASE("ports and port ranges by the target's agent version; drop and icmp") {
  builder b;
  b.add_peer("a", "0.47.9");
  b.add_peer("b", "0.48.0");
  b.add_group("ga", {"a"});
  b.add_group("gb", {"b"});
  auto& r = b.add_policy("p", {"ga"}, {"gb"}, "udp");
  r.port_ranges = {{1000, 2000}, {53, 53}};
  auto v = b.view();
  // 0.48.0 receives ranges as they are.
  CHECK(rule_lines(map_of(v, "b")) ==
        std::vector<std::string>{"100.64.0.1 in 3 accept port= range=1000-2000 p-rule",
                                 "100.64.0.1 in 3 accept port= range=53-53 p-rule"});
  // An older agent only gets single-port ranges, as ports.
  CHECK(rule_lines(map_of(v, "a")) ==
        std::vector<std::string>{"100.64.0.2 out 3 accept port=53 p-rule"});

  // Ports win over ranges.
  b.a.policies[0].rules[0].ports = {"80", "443"};
  v = b.view();
  CHECK(rule_lines(map_of(v, "b")) ==
        std::vector<std::string>{"100.64.0.1 in 3 accept port=80 p-rule",
                                 "100.64.0.1 in 3 accept port=443 p-rule"});

  auto& d = b.a.policies[0].rules[0];
  d.ports.clear();
  d.port_ranges.clear();
  d.protocol = "icmp";
  d.action = "drop";
  v = b.view();
  CHECK(rule_lines(map_of(v, "b")) ==
        std::vector<std::string>{"100.64.0.1 in 4 drop port= p-rule"});
}

TEST_CASE("direct peer resources as sources and destinations") {
  builder b;
  for (auto id : {"a", "b", "c"})
    b.add_peer(id);
  b.add_group("gbc", {"b", "c"});
  auto& r = b.add_policy("p", {}, {"gbc"}, "tcp");
  r.source_resource = {"a", "peer"};
  auto v = b.view();
  CHECK(ids(v, map_of(v, "a").remote_peers) == std::vector<std::string>{"b", "c"});
  CHECK(ids(v, map_of(v, "c").remote_peers) == std::vector<std::string>{"a"});
  // A peer resource that does not exist names nobody.
  b.a.policies[0].rules[0].source_resource = {"ghost", "peer"};
  CHECK(map_of(b.view(), "c").remote_peers.empty());
}

TEST_CASE("login-expired peers go to offline peers; peers awaiting approval are nowhere") {
  builder b;
  for (auto id : {"a", "b", "c", "d"})
    b.add_peer(id);
  b.add_group("all", {"a", "b", "c", "d"}, "All");
  b.add_policy("default", {"all"}, {"all"}, "all", true);
  b.a.settings.peer_login_expiration_enabled = true;
  b.a.settings.peer_login_expiration_ns = 3600'000'000'000;
  // b: added by a user, expiration on, last login 2 hours before `now`.
  auto& pb = b.a.peers[1];
  pb.user_id = "u1";
  pb.login_expiration_enabled = true;
  pb.last_login = "2026-01-01 10:00:00+00:00";
  // c: same last login but added with a setup key: never expires.
  b.a.peers[2].login_expiration_enabled = true;
  b.a.peers[2].last_login = "2026-01-01 10:00:00+00:00";
  // d: waits for approval.
  b.a.peers[3].status.requires_approval = true;
  map_context ctx;
  ctx.now = std::chrono::system_clock::from_time_t(1767268800); // 2026-01-01 12:00:00 UTC
  auto v = b.view(ctx);
  auto m = map_of(v, "a");
  CHECK(ids(v, m.remote_peers) == std::vector<std::string>{"c"});
  CHECK(ids(v, m.offline_peers) == std::vector<std::string>{"b"});
  // Firewall rules are still made for the expired peer (NetBird filters the peer list only).
  CHECK(rule_lines(m).size() == 4);

  auto md = map_of(v, "d");
  CHECK(md.remote_peers.empty());
  CHECK(md.firewall_rules.empty());
  CHECK_FALSE(md.dns.service_enable);

  // Within the hour, b is back among the remote peers; with the account setting off, always.
  ctx.now = std::chrono::system_clock::from_time_t(1767263400); // 10:30
  CHECK(map_of(b.view(ctx), "a").offline_peers.empty());
  b.a.settings.peer_login_expiration_enabled = false;
  ctx.now = std::chrono::system_clock::from_time_t(1767268800);
  CHECK(map_of(b.view(ctx), "a").offline_peers.empty());
}

TEST_CASE(
    "SSH: netbird-ssh rules turn SSH on and add the native port; tcp/22 only with ssh enabled") {
  builder b;
  b.add_peer("a");
  auto& srv = b.add_peer("s", "0.60.0");
  srv.meta.flags_json = R"({"RosenpassEnabled":false,"ServerSSHAllowed":true})";
  b.add_group("ga", {"a"});
  b.add_group("gs", {"s"});
  b.add_policy("ssh", {"ga"}, {"gs"}, "netbird-ssh").ports = {"22"};
  auto v = b.view();
  auto m = map_of(v, "s");
  CHECK(m.ssh_enabled);
  // netbird-ssh goes out as tcp; port 22 brings 22022 (NetBird's native SSH server) along.
  CHECK(rule_lines(m) == std::vector<std::string>{"100.64.0.1 in 2 accept port=22 ssh-rule",
                                                  "100.64.0.1 in 2 accept port=22022 ssh-rule"});
  // The source side gets no SSH.
  CHECK_FALSE(map_of(v, "a").ssh_enabled);

  // A plain tcp/22 rule: native port only for an agent >= 0.60.0 with SSH enabled and allowed.
  b.a.policies[0].rules[0].protocol = "tcp";
  CHECK(rule_lines(map_of(b.view(), "s")).size() == 1);
  CHECK_FALSE(map_of(b.view(), "s").ssh_enabled);
  b.a.peers[1].ssh_enabled = true;
  CHECK(rule_lines(map_of(b.view(), "s")).size() == 2);
  CHECK(map_of(b.view(), "s").ssh_enabled);
  b.a.peers[1].meta.wt_version = "0.59.9";
  CHECK(rule_lines(map_of(b.view(), "s")).size() == 1);
}

TEST_CASE(
    "routes: the router's own route with a default permit, distribution groups, HA, peer groups") {
  builder b;
  for (auto id : {"a", "b", "r1", "r2", "x"})
    b.add_peer(id);
  b.add_group("all", {"a", "b", "r1", "r2", "x"}, "All");
  b.add_group("ga", {"a"});
  b.add_group("grouters", {"r1", "r2"});
  b.add_policy("default", {"all"}, {"all"}, "all", true);
  auto& single = b.add_route("rt1", "10.1.0.0/16", {"ga"});
  single.peer = "r1";
  single.masquerade = true;
  auto& ha = b.add_route("rt2", "10.2.0.0/16", {"ga", "grouters"});
  ha.peer_groups = {"grouters"};
  ha.metric = 100;
  b.add_route("off", "10.3.0.0/16", {"ga"}).enabled = false;
  b.a.routes.back().peer = "r1";
  auto v = b.view();

  // a is in the distribution group: rt1 via r1, and rt2 twice (one copy per router of the group).
  auto ma = map_of(v, "a");
  std::vector<std::string> got;
  for (const auto& r : ma.routes)
    got.push_back(r.id + " " + r.network + " " + r.peer_key);
  CHECK(got == std::vector<std::string>{"rt1 10.1.0.0/16 key-r1", "rt2:r1 10.2.0.0/16 key-r1",
                                        "rt2:r2 10.2.0.0/16 key-r2"});
  CHECK(ma.routes[0].masquerade);
  CHECK(ma.routes[1].metric == 100);
  CHECK(ma.route_firewall_rules.empty());

  // b is not in the distribution group: no routes.
  CHECK(map_of(v, "b").routes.empty());

  // r1 serves rt1 and rt2 itself: it gets them (its own are not filtered by distribution), not
  // r2's copy of rt2 although rt2 is distributed to r1's group (same HA set: r1 serves it), and a
  // default permit per served route.
  auto mr = map_of(v, "r1");
  got.clear();
  for (const auto& r : mr.routes)
    got.push_back(r.id);
  CHECK(got == std::vector<std::string>{"rt1", "rt2:r1"});
  REQUIRE(mr.route_firewall_rules.size() == 2);
  CHECK(mr.route_firewall_rules[1].source_ranges == std::vector<std::string>{"0.0.0.0/0"});
  CHECK(mr.route_firewall_rules[1].destination == "10.2.0.0/16");
  CHECK(mr.route_firewall_rules[1].route_id == "rt2:r1");
  CHECK(mr.route_firewall_rules[1].protocol == rule_protocol::all);
  // x is in no distribution group and serves nothing.
  CHECK(map_of(v, "x").routes.empty());
}

TEST_CASE("routes with access-control groups: rules from the policies towards those groups") {
  builder b;
  for (auto id : {"a", "b", "c", "r"})
    b.add_peer(id);
  b.add_group("gsrc", {"a", "b"});
  b.add_group("gdist", {"a", "c", "r"});
  b.add_group("gacl", {"r"});
  auto& rule = b.add_policy("web", {"gsrc"}, {"gacl"}, "tcp");
  rule.ports = {"80", "443"};
  auto& rt = b.add_route("rt", "10.9.0.0/24", {"gdist"});
  rt.peer = "r";
  rt.access_control_groups = {"gacl"};
  auto v = b.view();
  auto m = map_of(v, "r");
  // Sources: members of the rule's source groups that the route is distributed to (a, not b).
  REQUIRE(m.route_firewall_rules.size() == 2);
  for (const auto& fr : m.route_firewall_rules) {
    CHECK(fr.source_ranges == std::vector<std::string>{"100.64.0.1/32"});
    CHECK(fr.policy_id == "web"); // the policy id here, not the rule id
    CHECK(fr.destination == "10.9.0.0/24");
    CHECK(fr.protocol == rule_protocol::tcp);
  }
  CHECK(m.route_firewall_rules[0].port == "80");
  CHECK(m.route_firewall_rules[1].port == "443");
  // c is distributed the route, but no policy connects c with r, so c does not see the router.
  CHECK(map_of(v, "c").routes.empty());
  // a reaches r through the policy and is in the distribution group.
  CHECK(map_of(v, "a").routes.size() == 1);
  // Repeated ports count once; a port that is no number is left out (NetBird's ParseUint);
  // port ranges the same way.
  rule.ports = {"80", "0443", "80", "http"};
  auto m2 = map_of(b.view(), "r");
  REQUIRE(m2.route_firewall_rules.size() == 2);
  CHECK(m2.route_firewall_rules[0].port == "80");
  CHECK(m2.route_firewall_rules[1].port == "443");
  rule.ports.clear();
  rule.port_ranges = {{8000, 8100}, {9000, 9000}, {8000, 8100}};
  auto m3 = map_of(b.view(), "r");
  REQUIRE(m3.route_firewall_rules.size() == 2);
  CHECK(m3.route_firewall_rules[0].range == port_range{8000, 8100});
  CHECK(m3.route_firewall_rules[1].range == port_range{9000, 9000});
}

TEST_CASE(
    "DNS: the peers zone of what the peer sees, nameserver groups by group, disabled management") {
  builder b;
  for (auto id : {"a", "b", "c"})
    b.add_peer(id);
  b.a.peers[1].extra_dns_labels = {"web"};
  b.add_group("gab", {"a", "b"});
  b.add_group("gc", {"c"});
  b.add_policy("p", {"gab"}, {"gab"}, "all", true);
  nameserver_group ns;
  ns.id = "ns1";
  ns.enabled = true;
  ns.primary = true;
  ns.nameservers = {{"8.8.8.8", 1, 53}};
  ns.groups = {"gab"};
  ns.domains = {"corp.example"};
  b.a.nameserver_groups.push_back(ns);
  ns.id = "ns-off";
  ns.enabled = false;
  b.a.nameserver_groups.push_back(ns);
  ns.id = "ns-self"; // served by c itself: not sent to c
  ns.enabled = true;
  ns.nameservers = {{"100.64.0.3", 1, 53}};
  ns.groups = {"gc"};
  b.a.nameserver_groups.push_back(ns);
  auto v = b.view();

  auto ma = map_of(v, "a");
  CHECK(ma.dns.service_enable);
  REQUIRE(ma.dns.custom_zones.size() == 1);
  CHECK(ma.dns.custom_zones[0].domain == "netbird.selfhosted.");
  std::vector<std::string> names;
  for (const auto& r : zone_records(v, ma.dns.custom_zones[0]))
    names.push_back(r.name + "=" + r.rdata);
  // a itself and b (with its extra label); c is not in a's view.
  CHECK(names == std::vector<std::string>{"h-a.netbird.selfhosted=100.64.0.1",
                                          "h-b.netbird.selfhosted=100.64.0.2",
                                          "web.netbird.selfhosted=100.64.0.2"});
  REQUIRE(ma.dns.nameserver_groups.size() == 1);
  CHECK(ma.dns.nameserver_groups[0].domains == std::vector<std::string>{"corp.example"});

  auto mc = map_of(v, "c");
  CHECK(mc.dns.nameserver_groups.empty());
  REQUIRE(mc.dns.custom_zones.size() == 1);
  CHECK(zone_records(v, mc.dns.custom_zones[0]).size() == 1);

  // The account's domain wins over the server's.
  b.a.settings.dns_domain = "corp.internal";
  CHECK(map_of(b.view(), "a").dns.custom_zones[0].domain == "corp.internal.");
  CHECK(b.view().fqdn(0) == "h-a.corp.internal");

  // A peer in a DNS-management-disabled group: service off, nothing else.
  b.a.dns_disabled_management_groups = {"gab"};
  auto off = map_of(b.view(), "a");
  CHECK_FALSE(off.dns.service_enable);
  CHECK(off.dns.custom_zones.empty());
  CHECK(off.dns.nameserver_groups.empty());
  CHECK(off.remote_peers.size() == 1); // the rest of the map is unaffected
}

TEST_CASE("DNS forwarder port: 22054 only when every peer runs 0.59.0 or newer") {
  builder b;
  b.add_peer("a", "0.59.0");
  b.add_peer("b", "development");
  CHECK(map_of(b.view(), "a").dns.forwarder_port == 22054);
  b.add_peer("c", "0.58.9");
  CHECK(map_of(b.view(), "a").dns.forwarder_port == 5353);
  b.a.peers[2].meta.wt_version = "0.59.0-rc1"; // a pre-release sorts before the release
  CHECK(map_of(b.view(), "a").dns.forwarder_port == 5353);
  b.a.peers[2].meta.wt_version = "1.2.3";
  CHECK(map_of(b.view(), "a").dns.forwarder_port == 22054);
  b.a.peers[2].meta.wt_version = "";
  CHECK(map_of(b.view(), "a").dns.forwarder_port == 5353);
}

TEST_CASE("fingerprints: equal maps match; what a peer would see differently does not") {
  builder b;
  for (auto id : {"a", "b", "c"})
    b.add_peer(id);
  b.add_group("all", {"a", "b", "c"}, "All");
  b.add_policy("default", {"all"}, {"all"}, "all", true);
  auto v1 = b.view();
  const auto fp = v1.fingerprint(map_of(v1, "a"));
  CHECK(fp == v1.fingerprint(map_of(v1, "a")));
  CHECK(fp != v1.fingerprint(map_of(v1, "b")));

  b.a.net.serial = 8; // the serial alone changes nothing for the peer
  auto v2 = b.view();
  CHECK(v2.fingerprint(map_of(v2, "a")) == fp);

  b.a.peers[1].key = "rotated"; // b's content changed: a must be told
  auto v3 = b.view();
  CHECK(v3.fingerprint(map_of(v3, "a")) != fp);

  b.a.peers[1].key = "key-b";
  b.a.peers[2].status.connected = true; // status is in no map
  b.a.peers[2].status.session_started_at = 12345;
  auto v4 = b.view();
  CHECK(v4.fingerprint(map_of(v4, "a")) == fp);
}

TEST_CASE("the same account gives the same maps (deterministic order)") {
  builder b;
  for (int i = 0; i < 40; ++i)
    b.add_peer("p" + std::to_string(i));
  std::vector<std::string> g1, g2;
  for (int i = 0; i < 40; ++i)
    (i % 3 ? g1 : g2).push_back("p" + std::to_string(39 - i));
  b.add_group("g1", g1);
  b.add_group("g2", g2);
  b.add_policy("x", {"g1", "g2"}, {"g2"}, "all", true);
  auto v1 = b.view();
  auto v2 = b.view();
  for (std::uint32_t i = 0; i < 40; ++i)
    CHECK(v1.map_for(i) == v2.map_for(i));
}
