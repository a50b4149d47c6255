#include "api/grpc/wire_map.hpp"

// NetBird still fills FirewallRule.PeerIP and DNSConfig.ForwarderPort, deprecated in the proto, for
// the clients that read them.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace nbm::api {

namespace {

// Field numbers of the messages the splice writes by hand.
constexpr int sync_remote_peers = 3, sync_network_map = 5;
constexpr int map_remote_peers = 3, map_offline_peers = 7;

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

// A length-delimited field (wire type 2).
void put_bytes_field(std::string& out, int field, std::string_view bytes) {
  put_varint(out, (static_cast<std::uint64_t>(field) << 3) | 2);
  put_varint(out, bytes.size());
  out += bytes;
}

// proto3 scalars: a zero value is not written.
void put_uint_field(std::string& out, int field, std::uint64_t v) {
  if (v == 0)
    return;
  put_varint(out, static_cast<std::uint64_t>(field) << 3);
  put_varint(out, v);
}

void put_string_field(std::string& out, int field, std::string_view s) {
  if (!s.empty())
    put_bytes_field(out, field, s);
}

// The hot messages (many per map) are written by hand, field numbers from management.proto; the
// tests compare the result with protobuf's own encoding of the same message.
constexpr int map_dns_config = 6, map_firewall_rules = 8;

// SimpleRecord{Name=1, Type=2, Class=3, TTL=4, RData=5}.
void encode_record(std::string& out, const core::dns_record& r) {
  put_string_field(out, 1, r.name);
  put_uint_field(out, 2, static_cast<std::uint64_t>(r.type));
  put_string_field(out, 3, r.record_class);
  put_uint_field(out, 4, static_cast<std::uint64_t>(r.ttl));
  put_string_field(out, 5, r.rdata);
}

// FirewallRule{PeerIP=1, Direction=2, Action=3, Protocol=4, Port=5, PortInfo=6, PolicyID=7};
// PortInfo{port=1, range=2}, Range{start=1, end=2}.
void encode_firewall_rule(std::string& out, const core::firewall_rule& fr) {
  put_string_field(out, 1, fr.peer_ip);
  put_uint_field(out, 2, static_cast<std::uint64_t>(fr.direction));
  put_uint_field(out, 3, static_cast<std::uint64_t>(fr.action));
  put_uint_field(out, 4, static_cast<std::uint64_t>(fr.protocol));
  put_string_field(out, 5, fr.port);
  if (fr.port.empty() &&
      (fr.protocol == core::rule_protocol::tcp || fr.protocol == core::rule_protocol::udp)) {
    std::string info;
    if (fr.range) {
      std::string range;
      put_uint_field(range, 1, fr.range->start);
      put_uint_field(range, 2, fr.range->end);
      put_bytes_field(info, 2, range);
    }
    put_bytes_field(out, 6, info);
  }
  put_string_field(out, 7, fr.policy_id);
}

management::RuleProtocol protocol_of(core::rule_protocol p) {
  switch (p) {
  case core::rule_protocol::all:
    return management::RuleProtocol::ALL;
  case core::rule_protocol::tcp:
    return management::RuleProtocol::TCP;
  case core::rule_protocol::udp:
    return management::RuleProtocol::UDP;
  case core::rule_protocol::icmp:
    return management::RuleProtocol::ICMP;
  default:
    return management::RuleProtocol::UNKNOWN;
  }
}

void fill_port_info(management::PortInfo& pi, const std::string& port,
                    const std::optional<core::port_range>& range) {
  if (!port.empty()) {
    pi.set_port(static_cast<std::uint32_t>(std::stoul(port)));
  } else if (range) {
    pi.mutable_range()->set_start(range->start);
    pi.mutable_range()->set_end(range->end);
  }
}

management::RemotePeerConfig remote_peer_of(const core::account_view& view, std::uint32_t i) {
  const auto& p = view.acc().peers[i];
  management::RemotePeerConfig r;
  r.set_wgpubkey(p.key);
  r.add_allowedips(p.ip + "/32");
  r.mutable_sshconfig()->set_sshpubkey(p.ssh_key);
  r.set_fqdn(view.fqdn(i));
  r.set_agentversion(p.meta.wt_version);
  return r;
}

// Each peer's peers-zone records as CustomZone.Records (field 2) entries, once per change.
const std::vector<std::string>& rendered_records(actors::account_change& ch) {
  std::call_once(ch.records_once, [&ch] {
    const auto& view = *ch.view;
    const auto n = view.acc().peers.size();
    ch.rendered_records.resize(n);
    std::string body;
    for (std::uint32_t i = 0; i < n; ++i)
      for (const auto& rec : view.peer_records(i)) {
        body.clear();
        encode_record(body, rec);
        put_bytes_field(ch.rendered_records[i], 2, body);
      }
  });
  return ch.rendered_records;
}

// DNSConfig{ServiceEnable=1, NameServerGroups=2, CustomZones=3, ForwarderPort=4};
// CustomZone{Domain=1, Records=2}.
void append_dns_config(std::string& map_bytes, const actors::map_update& u) {
  const auto& dns = u.map.dns;
  std::string d;
  put_uint_field(d, 1, dns.service_enable ? 1 : 0);
  for (const auto& g : dns.nameserver_groups) {
    management::NameServerGroup o;
    for (const auto& ns : g.nameservers) {
      auto* n = o.add_nameservers();
      n->set_ip(ns.ip);
      n->set_nstype(ns.ns_type);
      n->set_port(ns.port);
    }
    o.set_primary(g.primary);
    for (const auto& dom : g.domains)
      o.add_domains(dom);
    o.set_searchdomainsenabled(g.search_domains_enabled);
    put_bytes_field(d, 2, o.SerializeAsString());
  }
  if (!dns.custom_zones.empty()) {
    const auto& records = rendered_records(*u.change);
    std::string zone, body;
    for (const auto& z : dns.custom_zones) {
      zone.clear();
      put_string_field(zone, 1, z.domain);
      for (auto p : z.peers)
        zone += records[p];
      for (const auto& rec : z.records) {
        body.clear();
        encode_record(body, rec);
        put_bytes_field(zone, 2, body);
      }
      put_bytes_field(d, 3, zone);
    }
  }
  put_uint_field(d, 4, static_cast<std::uint64_t>(dns.forwarder_port));
  put_bytes_field(map_bytes, map_dns_config, d);
}

void append_firewall_rules(std::string& map_bytes, const core::network_map& m) {
  std::string rule;
  for (const auto& fr : m.firewall_rules) {
    rule.clear();
    encode_firewall_rule(rule, fr);
    put_bytes_field(map_bytes, map_firewall_rules, rule);
  }
}

const std::vector<std::string>& rendered_peers(actors::account_change& ch) {
  std::call_once(ch.rendered_once, [&ch] {
    const auto& view = *ch.view;
    const auto n = view.acc().peers.size();
    ch.rendered_peers.resize(n);
    for (std::uint32_t i = 0; i < n; ++i)
      ch.rendered_peers[i] = remote_peer_of(view, i).SerializeAsString();
  });
  return ch.rendered_peers;
}

// Everything of the response except the remote/offline peer lists.
management::SyncResponse skeleton(const actors::map_update& u,
                                  const management::NetbirdConfig* config) {
  const auto& view = *u.change->view;
  const auto& m = u.map;
  management::SyncResponse r;
  if (config)
    *r.mutable_netbirdconfig() = *config;
  *r.mutable_peerconfig() = peer_config_of(view, u.peer, m.ssh_enabled);
  r.set_remotepeersisempty(m.remote_peers.empty());
  for (const auto& files : m.checks) { // what the client reports in its meta (process checks)
    auto* c = r.add_checks();
    for (const auto& f : files)
      c->add_files(f);
  }
  auto* nm = r.mutable_networkmap();
  nm->set_serial(m.serial);
  *nm->mutable_peerconfig() = r.peerconfig();
  nm->set_remotepeersisempty(m.remote_peers.empty());
  for (const auto& rt : m.routes) {
    auto* o = nm->add_routes();
    o->set_id(rt.id);
    o->set_network(rt.network);
    o->set_networktype(rt.network_type);
    o->set_peer(rt.peer_key);
    o->set_metric(rt.metric);
    o->set_masquerade(rt.masquerade);
    o->set_netid(rt.net_id);
    for (const auto& d : rt.domains)
      o->add_domains(d);
    o->set_keeproute(rt.keep_route);
    o->set_skipautoapply(rt.skip_auto_apply);
  }
  nm->set_firewallrulesisempty(m.firewall_rules.empty());
  for (const auto& rr : m.route_firewall_rules) {
    auto* o = nm->add_routesfirewallrules();
    for (const auto& s : rr.source_ranges)
      o->add_sourceranges(s);
    o->set_action(static_cast<management::RuleAction>(rr.action));
    o->set_destination(rr.destination);
    o->set_protocol(protocol_of(rr.protocol));
    fill_port_info(*o->mutable_portinfo(), rr.port, rr.range);
    o->set_isdynamic(rr.is_dynamic);
    for (const auto& d : rr.domains)
      o->add_domains(d);
    o->set_policyid(rr.policy_id);
    o->set_routeid(rr.route_id);
  }
  nm->set_routesfirewallrulesisempty(m.route_firewall_rules.empty());
  return r;
}

} // namespace

management::PeerConfig peer_config_of(const core::account_view& view, std::uint32_t peer,
                                      bool ssh_from_policies) {
  const auto& a = view.acc();
  const auto& p = a.peers[peer];
  management::PeerConfig pc;
  const auto slash = a.net.net.find('/');
  pc.set_address(p.ip + (slash == std::string::npos ? "/32" : a.net.net.substr(slash)));
  pc.set_fqdn(view.fqdn(peer));
  pc.mutable_sshconfig()->set_sshenabled(p.ssh_enabled || ssh_from_policies);
  pc.set_routingpeerdnsresolutionenabled(a.settings.routing_peer_dns_resolution_enabled);
  pc.set_lazyconnectionenabled(a.settings.lazy_connection_enabled);
  return pc;
}

std::string encode_sync_response(const actors::map_update& u,
                                 const management::NetbirdConfig* config) {
  const auto& peers = rendered_peers(*u.change);
  auto r = skeleton(u, config);
  std::string map_bytes = r.networkmap().SerializeAsString();
  r.clear_networkmap();
  std::size_t extra = 0;
  for (auto i : u.map.remote_peers)
    extra += peers[i].size() + 6;
  for (auto i : u.map.offline_peers)
    extra += peers[i].size() + 6;
  map_bytes.reserve(map_bytes.size() + extra);
  for (auto i : u.map.remote_peers)
    put_bytes_field(map_bytes, map_remote_peers, peers[i]);
  for (auto i : u.map.offline_peers)
    put_bytes_field(map_bytes, map_offline_peers, peers[i]);
  append_dns_config(map_bytes, u);
  append_firewall_rules(map_bytes, u.map);
  std::string out = r.SerializeAsString();
  out.reserve(out.size() + map_bytes.size() + 6);
  put_bytes_field(out, sync_network_map, map_bytes);
  (void)sync_remote_peers; // top-level legacy copy: only for agents older than 0.29.3 (not sent)
  return out;
}

management::SyncResponse to_sync_response(const actors::map_update& u,
                                          const management::NetbirdConfig* config) {
  management::SyncResponse r;
  if (!r.ParseFromString(encode_sync_response(u, config)))
    throw std::runtime_error("encoded SyncResponse does not parse");
  return r;
}

} // namespace nbm::api
