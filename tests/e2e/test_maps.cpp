// Network maps end to end: the real binary, three peers on live Sync streams, changes made through
// the admin subcommands (another process, on the same store) reaching exactly the affected peers.
#include "tests/e2e/harness.hpp"

// FirewallRule.PeerIP is deprecated in the proto but is what NetBird fills (and clients read).
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

using namespace nbm;
using namespace nbm::e2e;

namespace {

std::string first_word_of_line_with(const std::string& text, const std::string& needle) {
  auto pos = text.find(needle);
  if (pos == std::string::npos)
    return "";
  auto start = text.rfind('\n', pos);
  start = start == std::string::npos ? 0 : start + 1;
  return text.substr(start, text.find(' ', start) - start);
}

std::vector<std::string> route_networks(const management::SyncResponse& r) {
  std::vector<std::string> out;
  for (const auto& rt : r.networkmap().routes())
    out.push_back(rt.network() + " via " + rt.peer());
  return out;
}

std::size_t ns_groups(const management::SyncResponse& r) {
  return static_cast<std::size_t>(r.networkmap().dnsconfig().nameservergroups_size());
}

} // namespace

TEST_CASE("maps: policies, routes and nameserver groups reach exactly the peers they concern") {
  for (auto kind : engines()) {
    INFO(std::string(storage::to_string(kind)));
    server s(kind);
    const auto g1 = field(s.admin("group create --account-id " + s.account + " --name g1"), "id");
    const auto g2 = field(s.admin("group create --account-id " + s.account + " --name g2"), "id");
    REQUIRE(g1.size() == 20);
    REQUIRE(g2.size() == 20);
    // A in g1 and g2, B in g1, C in g2 (each also in All, NetBird's default).
    const auto key_a = s.setup_key("--name a --auto-groups " + s.all_group + "," + g1 + "," + g2);
    const auto key_b = s.setup_key("--name b --auto-groups " + s.all_group + "," + g1);
    const auto key_c = s.setup_key("--name c --auto-groups " + s.all_group + "," + g2);
    tools::peer_client a(s.target()), b(s.target()), c(s.target());
    REQUIRE(a.login(key_a, "alpha").ok());
    REQUIRE(b.login(key_b, "beta").ok());
    REQUIRE(c.login(key_c, "gamma").ok());
    const auto pc = *s.peer_by_key(c.public_key_b64());

    stream sa(a, "alpha"), sb(b, "beta"), sc(c, "gamma");
    // The default All<->All policy: everyone sees the two others.
    for (auto* st : {&sa, &sb, &sc})
      REQUIRE(eventually([&] { return st->last().size() == 2; }, 5000ms));
    std::this_thread::sleep_for(700ms); // past a few serial polls: nothing else is on its way
    auto na = sa.count(), nb = sb.count(), nc = sc.count();

    // 1. A policy inside g2 (tcp/80): A and C get a new map (more rules), B gets nothing.
    auto out = s.admin("policy create --account-id " + s.account + " --name web --source " + g2 +
                       " --destination " + g2 + " --protocol tcp --ports 80");
    const auto web = field(out, "id");
    REQUIRE_MESSAGE(web.size() == 20, out);
    REQUIRE(sa.wait_maps(na + 1, 3000ms));
    REQUIRE(sc.wait_maps(nc + 1, 3000ms));
    std::this_thread::sleep_for(700ms);
    CHECK(sa.count() == na + 1);
    CHECK(sc.count() == nc + 1);
    CHECK(sb.count() == nb); // k = 2 of n = 3
    na = sa.count(), nb = sb.count(), nc = sc.count();

    // 2. Delete the default policy: B is cut off from A (and from C); A keeps C with the web
    // rules only: OUT to C (A is a source) and IN from C (A is a destination), tcp/80, the rule id.
    const auto def =
        first_word_of_line_with(s.admin("policy list --account-id " + s.account), " name=Default ");
    REQUIRE(def.size() == 20);
    out = s.admin("policy delete --account-id " + s.account + " --policy-id " + def);
    REQUIRE_MESSAGE(out.find("deleted") != std::string::npos, out);
    REQUIRE(eventually([&] { return sa.last().size() == 1; }, 3000ms));
    CHECK(sa.last() == std::vector<std::string>{"gamma.netbird.selfhosted"});
    REQUIRE(eventually([&] { return sb.last().empty() && sb.count() > nb; }, 3000ms));
    REQUIRE(eventually([&] { return sc.last().size() == 1; }, 3000ms));
    CHECK(sc.last() == std::vector<std::string>{"alpha.netbird.selfhosted"});
    {
      const auto m = sa.last_response().networkmap();
      REQUIRE(m.firewallrules_size() == 2);
      CHECK(m.firewallrules(0).direction() == management::RuleDirection::OUT);
      CHECK(m.firewallrules(1).direction() == management::RuleDirection::IN);
      for (const auto& fr : m.firewallrules()) {
        CHECK(fr.peerip() == pc.ip);
        CHECK(fr.protocol() == management::RuleProtocol::TCP);
        CHECK(fr.port() == "80");
        CHECK(fr.action() == management::RuleAction::ACCEPT);
        CHECK(fr.policyid() ==
              web); // NetBird sends the rule id; our CLI's first rule id = policy id
      }
      CHECK_FALSE(m.firewallrulesisempty());
      // B's map has no rules left.
      CHECK(sb.last_response().networkmap().firewallrules_size() == 0);
      CHECK(sb.last_response().networkmap().remotepeersisempty());
    }
    std::this_thread::sleep_for(700ms);
    CHECK(sa.count() == na + 1); // each affected peer got the change once
    CHECK(sb.count() == nb + 1);
    CHECK(sc.count() == nc + 1);
    na = sa.count(), nb = sb.count(), nc = sc.count();

    // 3. A route served by C, distributed to g2: A (in g2, connected to C) gets it via C's key,
    // C gets it as its router; B is in neither and gets nothing.
    out = s.admin("route create --account-id " + s.account +
                  " --network 10.10.0.0/24 --net-id office --peer " + pc.id + " --groups " + g2);
    REQUIRE_MESSAGE(field(out, "id").size() == 20, out);
    REQUIRE(eventually([&] { return route_networks(sa.last_response()).size() == 1; }, 3000ms));
    CHECK(route_networks(sa.last_response()) ==
          std::vector<std::string>{"10.10.0.0/24 via " + c.public_key_b64()});
    REQUIRE(eventually([&] { return route_networks(sc.last_response()).size() == 1; }, 3000ms));
    {
      // The router permits the route's traffic (no access-control groups: a default permit).
      const auto m = sc.last_response().networkmap();
      REQUIRE(m.routesfirewallrules_size() == 1);
      CHECK(m.routesfirewallrules(0).destination() == "10.10.0.0/24");
      CHECK(m.routesfirewallrules(0).sourceranges(0) == "0.0.0.0/0");
    }
    std::this_thread::sleep_for(700ms);
    CHECK(sa.count() == na + 1);
    CHECK(sc.count() == nc + 1);
    CHECK(sb.count() == nb);
    CHECK(route_networks(sb.last_response()).empty());
    na = sa.count(), nb = sb.count(), nc = sc.count();

    // 4. A nameserver group for g1: A and B get it, C does not.
    out =
        s.admin("nameserver create --account-id " + s.account +
                " --name corp --nameservers 10.10.0.53 --groups " + g1 + " --domains corp.example");
    REQUIRE_MESSAGE(field(out, "id").size() == 20, out);
    REQUIRE(eventually([&] { return ns_groups(sa.last_response()) == 1; }, 3000ms));
    REQUIRE(eventually([&] { return ns_groups(sb.last_response()) == 1; }, 3000ms));
    {
      const auto g = sb.last_response().networkmap().dnsconfig().nameservergroups(0);
      REQUIRE(g.nameservers_size() == 1);
      CHECK(g.nameservers(0).ip() == "10.10.0.53");
      CHECK(g.nameservers(0).port() == 53);
      CHECK(g.domains(0) == "corp.example");
    }
    std::this_thread::sleep_for(700ms);
    CHECK(sa.count() == na + 1);
    CHECK(sb.count() == nb + 1);
    CHECK(sc.count() == nc);
    CHECK(ns_groups(sc.last_response()) == 0);
    // Everyone's map carries the new serial; B's own zone lists only B (it sees nobody).
    CHECK(sa.last_response().networkmap().serial() == sb.last_response().networkmap().serial());
    const auto last_b = sb.last_response();
    const auto& zones = last_b.networkmap().dnsconfig().customzones();
    REQUIRE(zones.size() == 1);
    CHECK(zones[0].records_size() == 1);
    CHECK(zones[0].records(0).name() == "beta.netbird.selfhosted");
  }
}
