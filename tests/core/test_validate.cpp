// NetBird's validation of groups, policies, routes and nameserver groups (status and message).
#include "core/validate.hpp"

#include <doctest/doctest.h>

using namespace nbm::core;

namespace {

account sample() {
  account a;
  a.id = "acc";
  peer p;
  p.id = "p1";
  a.peers.push_back(p);
  group all;
  all.id = "gall";
  all.name = "All";
  all.peers = {"p1"};
  group devs;
  devs.id = "gdev";
  devs.name = "devs";
  a.groups = {all, devs};
  policy pol;
  pol.id = "pol";
  pol.name = "Default";
  policy_rule r;
  r.name = "Default";
  r.action = "accept";
  r.protocol = "all";
  r.sources = r.destinations = {"gall"};
  pol.rules = {r};
  a.policies = {pol};
  return a;
}

policy_rule tcp_rule() {
  policy_rule r;
  r.name = "web";
  r.action = "accept";
  r.protocol = "tcp";
  r.sources = r.destinations = {"gdev"};
  return r;
}

void check(const verdict& v, int status, const std::string& message) {
  REQUIRE(v.has_value());
  CHECK(v->status == status);
  CHECK(v->message == message);
}

} // namespace

TEST_CASE("validate: groups") {
  auto a = sample();
  group g;
  g.name = "ops";
  CHECK_FALSE(validate_group(a, g));
  g.name = "devs";
  check(validate_group(a, g), 409, "group with name devs already exists");
  g.name = "";
  check(validate_group(a, g), 422, "group name shouldn't be empty");
  g.name = "ops";
  g.peers = {"ghost"};
  check(validate_group(a, g), 422, "peer with ID ghost not found");
  group all = a.groups[0];
  all.name = "Everyone";
  check(validate_group(a, all), 422, "updating group ALL is not allowed");
  check(validate_group_delete(a, "gall"), 400, "deleting group ALL is not allowed");
  check(validate_group_delete(a, "nope"), 404, "group: nope not found");
  CHECK_FALSE(validate_group_delete(a, "gdev"));
  a.policies[0].rules[0].sources = {"gdev"};
  check(validate_group_delete(a, "gdev"), 400, "group has been linked to policy: Default");
  // NetBird's order: a route before a policy, a nameserver group before a policy; settings last.
  route r;
  r.net_id = "office";
  r.groups = {"gdev"};
  a.routes.push_back(r);
  check(validate_group_delete(a, "gdev"), 400, "group has been linked to route: office");
  a.routes.clear();
  nameserver_group n;
  n.name = "corp";
  n.groups = {"gdev"};
  a.nameserver_groups.push_back(n);
  check(validate_group_delete(a, "gdev"), 400, "group has been linked to name server groups: corp");
  a.nameserver_groups.clear();
  a.policies[0].rules[0].sources = {"gall"};
  a.dns_disabled_management_groups = {"gdev"};
  check(validate_group_delete(a, "gdev"), 400,
        "group has been linked to disabled DNS management groups: devs");
}

TEST_CASE("validate: policy rules") {
  auto a = sample();
  policy p;
  p.name = "web";
  p.rules = {tcp_rule()};
  CHECK_FALSE(validate_policy(a, p));
  p.rules[0].ports = {"80", "65535"};
  CHECK_FALSE(validate_policy(a, p));
  p.rules[0].ports = {"0"};
  check(validate_policy(a, p), 422, "valid port value is in 1..65535 range");
  p.rules[0].ports = {"80a"};
  check(validate_policy(a, p), 422, "valid port value is in 1..65535 range");
  p.rules[0].ports = {"80"};
  p.rules[0].port_ranges = {{1, 2}};
  check(validate_policy(a, p), 422, "specify either ports or port ranges, not both");
  p.rules[0].ports.clear();
  p.rules[0].port_ranges = {{20, 10}};
  check(validate_policy(a, p), 422, "valid port value is in 1..65535 range");
  p.rules[0] = tcp_rule();
  p.rules[0].protocol = "icmp";
  p.rules[0].ports = {"1"};
  check(validate_policy(a, p), 422, "for ALL or ICMP protocol ports is not allowed");
  p.rules[0] = tcp_rule();
  p.rules[0].protocol = "sctp";
  check(validate_policy(a, p), 422, "unknown protocol type: sctp");
  p.rules[0] = tcp_rule();
  p.rules[0].action = "allow";
  check(validate_policy(a, p), 422, "unknown action type allow");
  p.rules[0] = tcp_rule();
  p.rules[0].destinations = {"ghost"};
  check(validate_policy(a, p), 422, "group ghost not found");
  p.rules[0] = tcp_rule();
  p.rules[0].source_resource = {"p1", "peer"};
  check(validate_policy(a, p), 422, "specify either sources or source resource, not both");
  p.rules[0].sources.clear();
  CHECK_FALSE(validate_policy(a, p));
  p.rules[0].source_resource = {"ghost", "peer"};
  check(validate_policy(a, p), 422, "peer with ID ghost not found");
  p.rules.clear();
  check(validate_policy(a, p), 422, "policy rules shouldn't be empty");
  p.name = "";
  check(validate_policy(a, p), 422, "policy name shouldn't be empty");
}

TEST_CASE("validate: policy rule ids on update are the policy's own, once each") {
  auto a = sample();
  a.policies[0].rules[0].id = "pol"; // the Default policy's one rule
  policy other;
  other.id = "other";
  other.name = "other";
  other.rules = {tcp_rule()};
  other.rules[0].id = "other-rule";
  a.policies.push_back(other);
  auto p = other;
  CHECK_FALSE(validate_policy(a, p)); // its own rule id
  p.rules[0].id = "";                 // none: the store gives one
  CHECK_FALSE(validate_policy(a, p));
  p.rules[0].id = "pol"; // another policy's rule: would collide in the store
  check(validate_policy(a, p), 422, "invalid rule ID: pol");
  p.rules = {tcp_rule(), tcp_rule()}; // its own, twice
  p.rules[0].id = p.rules[1].id = "other-rule";
  check(validate_policy(a, p), 422, "invalid rule ID: other-rule");
  p.rules[1].id = std::string(500, 'x'); // unknown, and long: a short prefix in the message
  check(validate_policy(a, p), 422, "invalid rule ID: " + std::string(64, 'x') + "...");
  // A new policy (no id): rule ids are the store's business.
  p.id = "";
  CHECK_FALSE(validate_policy(a, p));
}

TEST_CASE("validate: routes and prefixes") {
  CHECK(canonical_prefix("10.1.2.3/16")->first == "10.1.0.0/16");
  CHECK(canonical_prefix("10.1.2.3/16")->second == 1);
  CHECK(canonical_prefix("fd00::1/64")->first == "fd00::/64");
  CHECK(canonical_prefix("fd00::1/64")->second == 2);
  CHECK_FALSE(canonical_prefix("10.1.2.3/33"));
  CHECK_FALSE(canonical_prefix("10.1.2.3"));
  CHECK_FALSE(canonical_prefix("host/24"));
  auto a = sample();
  route r;
  r.id = "r1";
  r.network = "10.0.0.0/24";
  r.net_id = "office";
  r.peer = "p1";
  r.metric = 9999;
  r.groups = {"gdev"};
  CHECK_FALSE(validate_route(a, r));
  a.routes.push_back(r);
  auto r2 = r;
  r2.id = "r2";
  check(validate_route(a, r2), 409,
        "failed to add route with network 10.0.0.0/24: the peer already has this route");
  CHECK_FALSE(validate_route(a, r)); // an update of itself
  r2.metric = 10000;
  check(validate_route(a, r2), 422, "metric should be between 1 and 9999");
  r2.metric = 1;
  r2.net_id = std::string(41, 'x');
  check(validate_route(a, r2), 422, "identifier should be between 1 and 40 characters");
  r2.net_id = "n";
  r2.peer_groups = {"gdev"};
  check(validate_route(a, r2), 422, "only one of 'peer' or 'peer_groups' should be provided");
  r2.peer.clear();
  r2.groups = {"ghost"};
  check(validate_route(a, r2), 422, "group ghost not found");
  r2.groups = {"gdev"};
  r2.domains = {"example.com"};
  check(validate_route(a, r2), 422, "only one of 'network' or 'domains' should be provided");

  // A peer routes a network once, directly or as a member of a routing peer group (NetBird's
  // checkRoutePrefixOrDomainsExistForPeers), whichever came first.
  a.groups[1].peers = {"p1"}; // devs = {p1}
  a.peers[0].name = "laptop";
  auto via_group = r;
  via_group.id = "r3";
  via_group.peer.clear();
  via_group.peer_groups = {"gdev"};
  check(validate_route(a, via_group), 409,
        "failed to add route with network 10.0.0.0/24: peer laptop from the group devs already "
        "has "
        "this route");
  a.routes = {via_group};
  check(validate_route(a, r), 409,
        "failed to add route with network 10.0.0.0/24: the peer already has this route");
  auto other_net = r;
  other_net.network = "10.1.0.0/24";
  CHECK_FALSE(validate_route(a, other_net));
}

TEST_CASE("validate: nameserver groups") {
  auto a = sample();
  nameserver_group g;
  g.name = "corp";
  g.nameservers = {{"10.0.0.53", 1, 53}};
  g.groups = {"gdev"};
  g.domains = {"corp.example"};
  CHECK_FALSE(validate_nameserver_group(a, g));
  g.nameservers.clear();
  check(validate_nameserver_group(a, g), 422, "the list of nameservers should be 1 or 3, got 0");
  g.nameservers = {{"not-an-ip", 1, 53}};
  check(validate_nameserver_group(a, g), 422, "invalid nameserver IP not-an-ip");
  g.nameservers = {{"10.0.0.53", 1, 53}};
  g.primary = true;
  CHECK(validate_nameserver_group(a, g)->status == 422); // primary with domains
  g.domains.clear();
  CHECK_FALSE(validate_nameserver_group(a, g));
  g.search_domains_enabled = true;
  check(validate_nameserver_group(a, g), 422, "search domains are enabled but no domains are set");
  g.search_domains_enabled = false;
  g.groups = {"ghost"};
  check(validate_nameserver_group(a, g), 422, "group ghost not found");
  g.groups.clear();
  check(validate_nameserver_group(a, g), 422, "nameserver group should have at least 1 group");
  // Domains as NetBird's validateDomain takes them: a trailing dot is fine, a wildcard is not.
  g.groups = {"gdev"};
  g.primary = false;
  g.domains = {"corp.example."};
  CHECK_FALSE(validate_nameserver_group(a, g));
  g.domains = {"*.corp.example"};
  check(validate_nameserver_group(a, g), 422,
        "nameserver group got an invalid domain: *.corp.example");
  g.domains = {"bad domain!"};
  check(validate_nameserver_group(a, g), 422,
        "nameserver group got an invalid domain: bad domain!");
}
