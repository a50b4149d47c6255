#include "core/validate.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <regex>
#include <set>
#include <string_view>
#include <unordered_set>

namespace nbm::core {

namespace {

problem invalid(std::string m) {
  return {422, std::move(m)};
}

// Client text in a message: at most a short prefix of it.
std::string clip(const std::string& text) {
  constexpr std::size_t n = 64;
  return text.size() <= n ? text : text.substr(0, n) + "...";
}

const group* find_group(const account& a, const std::string& id) {
  for (const auto& g : a.groups)
    if (g.id == id)
      return &g;
  return nullptr;
}

bool listed(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

std::size_t runes(const std::string& s) {
  return static_cast<std::size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

verdict groups_known(const account& a, const std::vector<std::string>& ids) {
  for (const auto& id : ids)
    if (!find_group(a, id))
      return problem{422, "group " + clip(id) + " not found"};
  return std::nullopt;
}

// A DNS name of labels (letters, digits, '-', '_'; punycode allowed), as NetBird's domain check.
bool domain_name(const std::string& d) {
  static const std::regex pattern(
      R"(^(?:(?:xn--)?[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)*(?:xn--)?[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$)",
      std::regex::icase);
  return !d.empty() && std::regex_match(d, pattern);
}

bool valid_port(const std::string& p) {
  if (p.empty() || p.size() > 5 ||
      !std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  const auto n = std::stoul(p);
  return n >= 1 && n <= 65535;
}

} // namespace

std::optional<std::pair<std::string, int>> canonical_prefix(const std::string& text) {
  const auto slash = text.find('/');
  if (slash == std::string::npos || slash + 1 >= text.size())
    return std::nullopt;
  const std::string addr = text.substr(0, slash), bits_text = text.substr(slash + 1);
  if (bits_text.size() > 3 ||
      !std::all_of(bits_text.begin(), bits_text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  const int bits = std::stoi(bits_text);
  std::array<unsigned char, 16> raw{};
  int family = 0, width = 0;
  if (inet_pton(AF_INET, addr.c_str(), raw.data()) == 1) {
    family = AF_INET;
    width = 32;
  } else if (inet_pton(AF_INET6, addr.c_str(), raw.data()) == 1) {
    family = AF_INET6;
    width = 128;
  } else {
    return std::nullopt;
  }
  if (bits > width)
    return std::nullopt;
  for (int i = bits; i < width; ++i)
    raw[static_cast<std::size_t>(i / 8)] &= static_cast<unsigned char>(~(0x80 >> (i % 8)));
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family, raw.data(), buf, sizeof buf);
  return std::pair{std::string(buf) + "/" + std::to_string(bits), family == AF_INET ? 1 : 2};
}

verdict validate_group(const account& a, const group& g) {
  if (g.name.empty())
    return invalid("group name shouldn't be empty");
  if (!g.id.empty()) {
    const auto* old = find_group(a, g.id);
    if (!old)
      return problem{404, "group: " + clip(g.id) + " not found"};
    if (old->name == "All" && g.name != "All")
      return invalid("updating group ALL is not allowed");
  }
  for (const auto& other : a.groups)
    if (other.id != g.id && other.name == g.name)
      return problem{409, "group with name " + clip(g.name) + " already exists"};
  // A set of the account's peer ids: a group of every peer is checked in linear time.
  std::unordered_set<std::string_view> ids;
  if (!g.peers.empty()) {
    ids.reserve(a.peers.size());
    for (const auto& p : a.peers)
      ids.insert(p.id);
  }
  for (const auto& pid : g.peers)
    if (!ids.count(pid))
      return invalid("peer with ID " + clip(pid) + " not found");
  return std::nullopt;
}

verdict validate_group_delete(const account& a, const std::string& group_id) {
  const auto* g = find_group(a, group_id);
  if (!g)
    return problem{404, "group: " + clip(group_id) + " not found"};
  if (g->name == "All")
    return problem{400, "deleting group ALL is not allowed"};
  // NetBird's validateDeleteGroup, in its order and words (GroupLinkError).
  const auto linked = [](const std::string& what, const std::string& name) {
    return problem{400, "group has been linked to " + what + ": " + clip(name)};
  };
  if (!g->resources.empty())
    return linked("network resource", g->resources.front().id);
  for (const auto& r : a.routes)
    if (listed(r.groups, group_id) || listed(r.peer_groups, group_id) ||
        listed(r.access_control_groups, group_id))
      return linked("route", r.net_id);
  for (const auto& n : a.nameserver_groups)
    if (listed(n.groups, group_id))
      return linked("name server groups", n.name);
  for (const auto& p : a.policies)
    for (const auto& r : p.rules)
      if (listed(r.sources, group_id) || listed(r.destinations, group_id))
        return linked("policy", p.name);
  for (const auto& k : a.setup_keys)
    if (listed(k.auto_groups, group_id))
      return linked("setup key", k.name);
  for (const auto& u : a.users)
    if (listed(u.auto_groups, group_id))
      return linked("user", u.id);
  if (listed(a.dns_disabled_management_groups, group_id))
    return linked("disabled DNS management groups", g->name);
  if (listed(a.settings.extra_integrated_validator_groups, group_id))
    return linked("integrated validator", g->name);
  return std::nullopt;
}

verdict validate_policy(const account& a, const policy& p) {
  if (p.name.empty())
    return invalid("policy name shouldn't be empty");
  if (p.rules.empty())
    return invalid("policy rules shouldn't be empty");
  // NetBird's validatePolicy: a rule id given on update must be one of the policy's own rules
  // (never another policy's, which would collide in the store); each at most once here.
  if (!p.id.empty()) {
    const policy* old = nullptr;
    for (const auto& o : a.policies)
      if (o.id == p.id)
        old = &o;
    std::set<std::string> given;
    for (const auto& r : p.rules) {
      if (r.id.empty())
        continue;
      const bool own = old && std::any_of(old->rules.begin(), old->rules.end(),
                                          [&](const policy_rule& o) { return o.id == r.id; });
      if (!own || !given.insert(r.id).second)
        return invalid("invalid rule ID: " + clip(r.id));
    }
  }
  for (const auto& r : p.rules) {
    if (r.name.empty())
      return invalid("policy rule name shouldn't be empty");
    if (r.action != "accept" && r.action != "drop")
      return invalid("unknown action type " + clip(r.action));
    static const std::array<const char*, 5> protocols = {"all", "tcp", "udp", "icmp",
                                                         "netbird-ssh"};
    if (std::find(protocols.begin(), protocols.end(), r.protocol) == protocols.end())
      return invalid("unknown protocol type: " + clip(r.protocol));
    const bool has_src_res = !r.source_resource.id.empty();
    const bool has_dst_res = !r.destination_resource.id.empty();
    if (has_src_res && !r.sources.empty())
      return invalid("specify either sources or source resource, not both");
    if (has_dst_res && !r.destinations.empty())
      return invalid("specify either destinations or destination resource, not both");
    if (!has_src_res && r.sources.empty())
      return invalid("policy rule sources shouldn't be empty");
    if (!has_dst_res && r.destinations.empty())
      return invalid("policy rule destinations shouldn't be empty");
    if (has_src_res && r.source_resource.type == "peer" && !a.find_peer(r.source_resource.id))
      return invalid("peer with ID " + clip(r.source_resource.id) + " not found");
    if (has_dst_res && r.destination_resource.type == "peer" &&
        !a.find_peer(r.destination_resource.id))
      return invalid("peer with ID " + clip(r.destination_resource.id) + " not found");
    if ((r.protocol == "all" || r.protocol == "icmp") &&
        (!r.ports.empty() || !r.port_ranges.empty()))
      return invalid("for ALL or ICMP protocol ports is not allowed");
    if (!r.ports.empty() && !r.port_ranges.empty())
      return invalid("specify either ports or port ranges, not both");
    for (const auto& port : r.ports)
      if (!valid_port(port))
        return invalid("valid port value is in 1..65535 range");
    for (const auto& pr : r.port_ranges)
      if (pr.start < 1 || pr.end < 1 || pr.start > pr.end)
        return invalid("valid port value is in 1..65535 range");
    if (auto bad = groups_known(a, r.sources))
      return bad;
    if (auto bad = groups_known(a, r.destinations))
      return bad;
  }
  // NetBird drops an unknown posture check id silently (getValidPostureCheckIDs); a policy that
  // names one is refused here, as a policy naming an unknown group is.
  for (const auto& id : p.source_posture_checks)
    if (std::none_of(a.posture_checks.begin(), a.posture_checks.end(),
                     [&](const posture_check& c) { return c.id == id; }))
      return invalid("posture checks: " + clip(id) + " not found");
  return std::nullopt;
}

verdict validate_route(const account& a, const route& r) {
  const bool has_net = !r.network.empty(), has_domains = !r.domains.empty();
  if (has_net && has_domains)
    return invalid("only one of 'network' or 'domains' should be provided");
  if (!has_net && !has_domains)
    return invalid("either 'network' or 'domains' should be provided");
  if (r.domains.size() > 32)
    return invalid("domains list exceeds maximum allowed domains: 32");
  if (has_net && !canonical_prefix(r.network))
    return invalid("invalid Prefix");
  if (r.peer.empty() && r.peer_groups.empty())
    return invalid("either 'peer' or 'peer_groups' should be provided");
  if (!r.peer.empty() && !r.peer_groups.empty())
    return invalid("only one of 'peer' or 'peer_groups' should be provided");
  if (r.net_id.empty() || runes(r.net_id) > 40)
    return invalid("identifier should be between 1 and 40 characters");
  if (r.metric < 1 || r.metric > 9999)
    return invalid("metric should be between 1 and 9999");
  if (r.groups.empty())
    return invalid("route groups shouldn't be empty");
  if (!r.peer.empty() && !a.find_peer(r.peer))
    return invalid("peer with ID " + clip(r.peer) + " not found");
  for (const auto* list : {&r.peer_groups, &r.groups, &r.access_control_groups})
    if (auto bad = groups_known(a, *list))
      return bad;
  const auto same_target = [&](const route& o) {
    return has_net ? o.network == r.network : o.domains == r.domains;
  };
  // NetBird's checkRoutePrefixOrDomainsExistForPeers: a network is routed by a peer at most once,
  // directly or as a member of a routing peer group.
  std::set<std::string> seen_peers, seen_groups;
  for (const auto& o : a.routes) {
    if (o.id == r.id || !same_target(o))
      continue;
    if (!o.peer.empty())
      seen_peers.insert(o.peer);
    for (const auto& gid : o.peer_groups) {
      seen_groups.insert(gid);
      if (const auto* g = find_group(a, gid))
        seen_peers.insert(g->peers.begin(), g->peers.end());
    }
  }
  const std::string refused = "failed to add route with network " + r.network + ": ";
  if (!r.peer.empty() && seen_peers.count(r.peer))
    return problem{409, refused + "the peer already has this route"};
  for (const auto& gid : r.peer_groups) {
    if (seen_groups.count(gid))
      return problem{409, refused + "the peer group already has this route"};
    const auto* g = find_group(a, gid);
    for (const auto& pid : g ? g->peers : std::vector<std::string>{})
      if (seen_peers.count(pid)) {
        const auto* p = a.find_peer(pid);
        return problem{409, refused + "peer " + clip(p ? p->name : pid) + " from the group " +
                                clip(g->name) + " already has this route"};
      }
  }
  return std::nullopt;
}

verdict validate_nameserver_group(const account& a, const nameserver_group& g) {
  if (g.name.empty() || runes(g.name) > 40)
    return invalid("nameserver group name should be between 1 and 40 characters");
  for (const auto& o : a.nameserver_groups)
    if (o.id != g.id && o.name == g.name)
      return invalid("nameserver group with name " + clip(g.name) + " already exists");
  if (g.nameservers.empty() || g.nameservers.size() > 3)
    return invalid("the list of nameservers should be 1 or 3, got " +
                   std::to_string(g.nameservers.size()));
  for (const auto& ns : g.nameservers) {
    std::array<unsigned char, 16> raw{};
    if (inet_pton(AF_INET, ns.ip.c_str(), raw.data()) != 1 &&
        inet_pton(AF_INET6, ns.ip.c_str(), raw.data()) != 1)
      return invalid("invalid nameserver IP " + clip(ns.ip));
    if (ns.port < 1 || ns.port > 65535)
      return invalid("invalid nameserver port " + std::to_string(ns.port));
  }
  if (g.primary && !g.domains.empty())
    return invalid("nameserver group primary status is true and domains are not empty, you "
                   "should set either primary or domain");
  if (!g.primary && g.domains.empty())
    return invalid("nameserver group primary status is false and domains are empty, it should "
                   "be primary or have at least one domain");
  if (g.search_domains_enabled && g.domains.empty())
    return invalid("search domains are enabled but no domains are set");
  for (const auto& d : g.domains) {
    if (d.empty() || d.size() > 255)
      return invalid("domain should consist of 1 to 255 characters: " + clip(d));
    // NetBird's validateDomain: no wildcard; a trailing dot (FQDN form) is fine.
    const std::string bare = d.back() == '.' ? d.substr(0, d.size() - 1) : d;
    if (d.rfind("*.", 0) == 0 || !domain_name(bare))
      return invalid("nameserver group got an invalid domain: " + clip(d));
  }
  if (g.groups.empty())
    return invalid("nameserver group should have at least 1 group");
  for (const auto& id : g.groups)
    if (id.empty())
      return invalid("group ID should not be empty");
  return groups_known(a, g.groups);
}

} // namespace nbm::core
