// A network map on the wire: the SyncResponse our splicing encoder writes parses with the
// generated code into exactly the message one would build field by field; shared remote-peer
// encodings are the receiver-independent parts; NetbirdConfig only in a stream's first message.
#include "api/grpc/wire_map.hpp"

#include <doctest/doctest.h>

#include <google/protobuf/util/message_differencer.h>

using namespace nbm;

namespace {

core::peer make_peer(const std::string& id, const std::string& ip, const std::string& version) {
  core::peer p;
  p.id = id;
  p.account_id = "acc";
  p.key = "key-" + id;
  p.ip = ip;
  p.name = id;
  p.dns_label = id;
  p.ssh_key = "ssh-" + id;
  p.meta.wt_version = version;
  return p;
}

std::shared_ptr<actors::account_change> change_of(core::account a) {
  auto ch = std::make_shared<actors::account_change>();
  core::map_context ctx;
  ctx.dns_domain = "netbird.test";
  ch->view = std::make_shared<core::account_view>(
      std::make_shared<const core::account>(std::move(a)), ctx);
  return ch;
}

core::account three_peers() {
  core::account a;
  a.id = "acc";
  a.net.net = "100.64.0.0/16";
  a.net.serial = 42;
  a.peers = {make_peer("a", "100.64.0.1", "0.60.0"), make_peer("b", "100.64.0.2", "0.28.0"),
             make_peer("c", "100.64.0.3", "0.61.0")};
  core::group all;
  all.id = "all";
  all.account_id = "acc";
  all.name = "All";
  all.peers = {"a", "b", "c"};
  a.groups.push_back(all);
  return a;
}

} // namespace

TEST_CASE("wire map: spliced remote peers parse into the message built field by field") {
  auto ch = change_of(three_peers());
  actors::map_update u;
  u.change = ch;
  u.peer = 0;
  u.map.serial = 42;
  u.map.remote_peers = {1, 2};
  u.map.offline_peers = {};
  core::firewall_rule fr;
  fr.peer_ip = "100.64.0.2";
  fr.direction = core::rule_direction::out;
  fr.protocol = core::rule_protocol::tcp;
  fr.range = core::port_range{8000, 8080};
  fr.policy_id = "rule-1";
  u.map.firewall_rules.push_back(fr);
  core::firewall_rule single = fr;
  single.port = "22";
  single.range.reset();
  u.map.firewall_rules.push_back(single);
  core::map_route rt;
  rt.id = "r1";
  rt.network = "10.0.0.0/24";
  rt.network_type = 1;
  rt.peer_key = "key-c";
  rt.metric = 9999;
  rt.net_id = "office";
  u.map.routes.push_back(rt);
  // A tcp rule without port or range: an empty PortInfo (as protobuf writes mutable_portinfo());
  // icmp: no PortInfo at all.
  core::firewall_rule bare = fr;
  bare.range.reset();
  bare.direction = core::rule_direction::in;
  u.map.firewall_rules.push_back(bare);
  core::firewall_rule icmp = bare;
  icmp.protocol = core::rule_protocol::icmp;
  icmp.action = core::rule_action::drop;
  u.map.firewall_rules.push_back(icmp);
  // The peers zone: b's and c's records rendered from the account, then a record of the zone's own.
  core::custom_zone peers_zone;
  peers_zone.domain = "netbird.test.";
  peers_zone.peers = {1, 2};
  peers_zone.records = {{"alias.netbird.test", 5, "IN", 60, "b.netbird.test."}};
  u.map.dns.custom_zones.push_back(peers_zone);
  u.map.dns.nameserver_groups.push_back({{{"1.1.1.1", 1, 53}}, false, {"corp.test"}, true});

  management::NetbirdConfig cfg;
  cfg.add_stuns()->set_uri("stun:127.0.0.1:3478");
  auto got = api::to_sync_response(u, &cfg);

  management::SyncResponse want;
  *want.mutable_netbirdconfig() = cfg;
  auto* pc = want.mutable_peerconfig();
  pc->set_address("100.64.0.1/16");
  pc->set_fqdn("a.netbird.test");
  pc->mutable_sshconfig()->set_sshenabled(false);
  want.set_remotepeersisempty(false);
  auto* nm = want.mutable_networkmap();
  nm->set_serial(42);
  *nm->mutable_peerconfig() = *pc;
  for (const char* id : {"b", "c"}) {
    auto* r = nm->add_remotepeers();
    r->set_wgpubkey(std::string("key-") + id);
    r->add_allowedips(std::string("100.64.0.") + (id[0] == 'b' ? "2" : "3") + "/32");
    r->mutable_sshconfig()->set_sshpubkey(std::string("ssh-") + id);
    r->set_fqdn(std::string(id) + ".netbird.test");
    r->set_agentversion(id[0] == 'b' ? "0.28.0" : "0.61.0");
  }
  nm->set_remotepeersisempty(false);
  auto* route = nm->add_routes();
  route->set_id("r1");
  route->set_network("10.0.0.0/24");
  route->set_networktype(1);
  route->set_peer("key-c");
  route->set_metric(9999);
  route->set_netid("office");
  auto* dns = nm->mutable_dnsconfig();
  dns->set_serviceenable(true);
  auto* zone = dns->add_customzones();
  zone->set_domain("netbird.test.");
  for (const char* id : {"b", "c"}) {
    auto* rec = zone->add_records();
    rec->set_name(std::string(id) + ".netbird.test");
    rec->set_type(1);
    rec->set_class_("IN");
    rec->set_ttl(300);
    rec->set_rdata(std::string("100.64.0.") + (id[0] == 'b' ? "2" : "3"));
  }
  auto* alias = zone->add_records();
  alias->set_name("alias.netbird.test");
  alias->set_type(5);
  alias->set_class_("IN");
  alias->set_ttl(60);
  alias->set_rdata("b.netbird.test.");
  auto* nsg = dns->add_nameservergroups();
  auto* ns = nsg->add_nameservers();
  ns->set_ip("1.1.1.1");
  ns->set_nstype(1);
  ns->set_port(53);
  nsg->add_domains("corp.test");
  nsg->set_searchdomainsenabled(true);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  dns->set_forwarderport(5353);
  auto* f1 = nm->add_firewallrules();
  f1->set_peerip("100.64.0.2");
  f1->set_direction(management::RuleDirection::OUT);
  f1->set_action(management::RuleAction::ACCEPT);
  f1->set_protocol(management::RuleProtocol::TCP);
  f1->mutable_portinfo()->mutable_range()->set_start(8000); // a range: PortInfo, no Port
  f1->mutable_portinfo()->mutable_range()->set_end(8080);
  f1->set_policyid("rule-1");
  auto* f2 = nm->add_firewallrules();
  f2->set_peerip("100.64.0.2");
  f2->set_direction(management::RuleDirection::OUT);
  f2->set_action(management::RuleAction::ACCEPT);
  f2->set_protocol(management::RuleProtocol::TCP);
  f2->set_port("22"); // a single port: Port, no PortInfo
  f2->set_policyid("rule-1");
  auto* f3 = nm->add_firewallrules();
  f3->set_peerip("100.64.0.2");
  f3->set_direction(management::RuleDirection::IN);
  f3->set_protocol(management::RuleProtocol::TCP);
  f3->mutable_portinfo(); // present and empty
  f3->set_policyid("rule-1");
  auto* f4 = nm->add_firewallrules();
  f4->set_peerip("100.64.0.2");
  f4->set_direction(management::RuleDirection::IN);
  f4->set_action(management::RuleAction::DROP);
  f4->set_protocol(management::RuleProtocol::ICMP);
  f4->set_policyid("rule-1");
#pragma GCC diagnostic pop
  nm->set_firewallrulesisempty(false);
  nm->set_routesfirewallrulesisempty(true);

  std::string diff;
  google::protobuf::util::MessageDifferencer md;
  md.ReportDifferencesToString(&diff);
  CHECK_MESSAGE(md.Compare(want, got), diff);
  // Presence matters too: the empty PortInfo is there, icmp has none.
  REQUIRE(got.networkmap().firewallrules_size() == 4);
  CHECK(got.networkmap().firewallrules(2).has_portinfo());
  CHECK_FALSE(got.networkmap().firewallrules(3).has_portinfo());

  // The shared encodings were made once for the change: every peer of the account, receiver-free.
  CHECK(ch->rendered_peers.size() == 3);
  CHECK(ch->rendered_records.size() == 3);
}

TEST_CASE("wire map: an update without config, empty lists flagged empty") {
  auto ch = change_of(three_peers());
  actors::map_update u;
  u.change = ch;
  u.peer = 1;
  u.map.serial = 7;
  auto got = api::to_sync_response(u, nullptr);
  CHECK_FALSE(got.has_netbirdconfig());
  CHECK(got.remotepeersisempty());
  CHECK(got.networkmap().remotepeersisempty());
  CHECK(got.networkmap().firewallrulesisempty());
  CHECK(got.networkmap().routesfirewallrulesisempty());
  CHECK(got.networkmap().remotepeers_size() == 0);
  CHECK(got.networkmap().serial() == 7);
  CHECK(got.peerconfig().address() == "100.64.0.2/16");

  // Offline (login-expired) peers go to offlinePeers, with the same shared encoding.
  u.map.offline_peers = {2};
  got = api::to_sync_response(u, nullptr);
  REQUIRE(got.networkmap().offlinepeers_size() == 1);
  CHECK(got.networkmap().offlinepeers(0).wgpubkey() == "key-c");
  CHECK(got.networkmap().offlinepeers(0).fqdn() == "c.netbird.test");
}

TEST_CASE("wire map: SSH turned on by a policy reaches PeerConfig") {
  auto ch = change_of(three_peers());
  actors::map_update u;
  u.change = ch;
  u.peer = 0;
  u.map.ssh_enabled = true;
  auto got = api::to_sync_response(u, nullptr);
  CHECK(got.peerconfig().sshconfig().sshenabled());
  CHECK(got.networkmap().peerconfig().sshconfig().sshenabled());
}
