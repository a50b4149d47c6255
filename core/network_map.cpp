#include "core/network_map.hpp"

#include "core/posture.hpp"
#include "core/registration.hpp"

#include <algorithm>
#include <cctype>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

// NetBird's rules (shared/management/types/networkmap_components.go, firewall_helpers.go,
// firewall_rule.go, management/server/types/account_components.go), computed over indexes built
// once per account version. Where NetBird's order comes from Go map iteration (random), ours is
// the peers' order in the account.

namespace nbm::core {

namespace {

constexpr std::string_view all_group_name = "All";

struct version_number {
  long major = 0, minor = 0, patch = 0;
  bool prerelease = false;

  auto key() const { return std::tuple(major, minor, patch, !prerelease); }
};

bool is_development_version(std::string_view v) {
  return v.starts_with("development") || v.starts_with("ci-") || v.starts_with("dev-");
}

// Digits-and-dots versions with an optional "v"; `strict` follows Go's semver.Canonical (at most
// three parts, no leading zeros, a "-prerelease" allowed), the loose form hashicorp/go-version on
// NetBird's sanitized text (everything from the first '-' dropped).
std::optional<version_number> parse_version(std::string_view s, bool strict) {
  if (!strict) {
    s = s.substr(0, s.find('-'));
    if (auto plus = s.find('+'); plus != std::string_view::npos)
      s = s.substr(0, plus);
  }
  if (s.starts_with('v'))
    s.remove_prefix(1);
  version_number v;
  long* parts[3] = {&v.major, &v.minor, &v.patch};
  std::size_t i = 0;
  for (int part = 0;; ++part) {
    const auto start = i;
    long n = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      n = n * 10 + (s[i] - '0');
      if (n > 1'000'000'000)
        return std::nullopt;
      ++i;
    }
    if (i == start)
      return std::nullopt;
    if (strict && (i - start > 1 && s[start] == '0'))
      return std::nullopt;
    if (part < 3)
      *parts[part] = n;
    else if (strict)
      return std::nullopt;
    if (i == s.size())
      return v;
    if (s[i] == '.') {
      ++i;
      continue;
    }
    if (strict && (s[i] == '-' || s[i] == '+')) {
      v.prerelease = s[i] == '-' && i + 1 < s.size();
      return i + 1 < s.size() ? std::optional(v) : std::nullopt;
    }
    return std::nullopt;
  }
}

bool meets_min_version(std::string_view min, const std::string& agent) {
  auto have = parse_version(agent, false);
  auto want = parse_version(min, false);
  return have && want && have->key() >= want->key();
}

rule_protocol protocol_of(const std::string& p) {
  if (p == "all")
    return rule_protocol::all;
  if (p == "tcp" || p == "netbird-ssh")
    return rule_protocol::tcp;
  if (p == "udp")
    return rule_protocol::udp;
  if (p == "icmp")
    return rule_protocol::icmp;
  return rule_protocol::unknown;
}

rule_action action_of(const std::string& a) {
  return a == "drop" ? rule_action::drop : rule_action::accept;
}

// PeerSystemMeta.Flags.ServerSSHAllowed, from the stored flags JSON.
bool server_ssh_allowed(const std::string& flags_json) {
  constexpr std::string_view key = "\"ServerSSHAllowed\"";
  auto at = flags_json.find(key);
  if (at == std::string::npos)
    return false;
  at += key.size();
  while (at < flags_json.size() && (flags_json[at] == ' ' || flags_json[at] == ':'))
    ++at;
  return flags_json.compare(at, 4, "true") == 0;
}

bool is_v6_network(const std::string& prefix) {
  return prefix.find(':') != std::string::npos;
}

bool covers(const firewall_rule& r, std::string_view port, std::uint16_t n) {
  return r.port == port || (r.range && r.range->start <= n && n <= r.range->end);
}

struct hasher {
  std::uint64_t h = 1469598103934665603ull;

  void bytes(std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ull;
    }
    num(s.size());
  }
  void num(std::uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h *= 1099511628211ull;
  }
};

} // namespace

struct account_view::indexes {
  struct features {
    bool port_ranges = false, native_ssh = false, server_ssh = false;
  };
  struct compiled_rule {
    const policy* pol = nullptr;
    const policy_rule* rule = nullptr;
    std::vector<std::uint32_t> sources, destinations; // ascending peer indices, validated
    rule_protocol protocol = rule_protocol::all;
    rule_action action = rule_action::accept;
    bool netbird_ssh = false, legacy_ssh = false;
  };
  struct route_entry {
    std::uint32_t route;
    bool via_group;
  };

  std::string dns_domain;
  std::unordered_map<std::string_view, std::uint32_t> peer_by_id, peer_by_key, group_by_id;
  std::vector<std::vector<std::uint32_t>> group_members; // per group, stored order
  std::vector<std::vector<std::uint32_t>> peer_groups;   // per peer, ascending group indices
  std::vector<std::uint8_t> valid, expired, dns_disabled_group;
  // Peers in id order (the store's order), so a map does not depend on the order in which an
  // account's peers were loaded or added: rank[i] is peer i's place, by_rank the inverse.
  std::vector<std::uint32_t> rank, by_rank;
  std::vector<features> feat;
  std::vector<compiled_rule> rules;
  std::vector<std::vector<std::uint32_t>> peer_rules; // per peer, ascending rule indices
  std::vector<std::vector<route_entry>> routes_by_peer;
  std::vector<std::string> route_ha;                      // per route
  std::vector<std::vector<std::uint32_t>> route_dist;     // per route: members of its groups
  std::vector<std::vector<std::uint32_t>> route_acg_pols; // per route: policy indices
  std::vector<std::vector<std::uint32_t>> route_groups;   // per route: its distribution groups
  // per group: the routes it is a peer group of, or an enabled route's distribution group of
  std::vector<std::vector<std::uint32_t>> group_routes;
  std::int64_t forwarder_port = 5353;

  // Networks. An enabled resource with the policies that apply to it
  // (GetPoliciesForNetworkResource: a rule whose destination resource is it, or whose destination
  // groups hold it; NetBird lists a policy once per such rule, so a policy may repeat) and the
  // routers of its network.
  struct resource_entry {
    std::uint32_t res = 0;
    std::uint32_t net = 0; // index into net_routers
    std::vector<std::uint32_t> pols;
  };
  struct router_entry {
    std::uint32_t peer;
    const network_router* router;
  };
  std::vector<resource_entry> resources;
  // Per network: its routing peers (GetResourceRoutersMap: enabled routers, a peer or the members
  // of its peer groups; a peer two routers name takes the later one), in rank order.
  std::vector<std::vector<router_entry>> net_routers;
  // Per policy applied to a resource: getResourcePolicyPeers (the first rule's source peer, else
  // the members of every rule's source groups), validated peers in rank order.
  std::vector<std::vector<std::uint32_t>> res_pol_peers;
  // Per peer: the entries of `resources` (ascending) it is a routing peer of or a policy of which
  // admits it; the others add nothing to its map.
  std::vector<std::vector<std::uint32_t>> peer_resources;

  const account* acc = nullptr;
  // Posture checks: per check an enabled policy names, whether each peer passes it; per policy
  // the checks it names that exist (an unknown id passes, as NetBird skips it).
  std::vector<std::vector<std::uint8_t>> check_pass;
  std::vector<std::vector<std::uint32_t>> policy_checks;
  // What a peer must report (NetBird's getPeerPostureChecks): per group, the slots in
  // `check_files` (ascending: the account's order of checks) of the checks with process files that
  // an enabled policy names whose enabled rules have the group as a source.
  std::vector<std::vector<std::uint32_t>> group_checks;
  bool any_reported = false;
  std::vector<std::vector<std::string>> check_files; // per posture check of the account
  // Whether peer p passes the source posture checks of policy pol.
  bool posture_ok(std::uint32_t pol, std::uint32_t p) const;

  bool before(std::uint32_t x, std::uint32_t y) const { return rank[x] < rank[y]; }
  void sort_unique(std::vector<std::uint32_t>& v) const {
    std::sort(v.begin(), v.end(), [this](auto x, auto y) { return before(x, y); });
    v.erase(std::unique(v.begin(), v.end()), v.end());
  }
  bool has(const std::vector<std::uint32_t>& sorted, std::uint32_t p) const {
    return std::binary_search(sorted.begin(), sorted.end(), p,
                              [this](auto x, auto y) { return before(x, y); });
  }

  std::optional<std::uint32_t> group(const std::string& id) const {
    auto it = group_by_id.find(id);
    return it == group_by_id.end() ? std::nullopt : std::optional(it->second);
  }
  std::optional<std::uint32_t> peer(const std::string& id) const {
    auto it = peer_by_id.find(id);
    return it == peer_by_id.end() ? std::nullopt : std::optional(it->second);
  }
  bool in_group(std::uint32_t p, std::uint32_t g) const {
    return std::binary_search(peer_groups[p].begin(), peer_groups[p].end(), g);
  }
  bool in_any(std::uint32_t p, const std::vector<std::uint32_t>& groups) const {
    for (auto g : groups)
      if (in_group(p, g))
        return true;
    return false;
  }
  bool in_any(std::uint32_t p, const std::vector<std::string>& group_ids) const {
    for (const auto& id : group_ids)
      if (auto g = group(id); g && in_group(p, *g))
        return true;
    return false;
  }

  // getUniquePeerIDsFromGroupsIDs: a single group, or the first "All" reached, stands alone.
  std::vector<std::uint32_t> expand(const account& a, const std::vector<std::string>& ids) const {
    std::vector<std::uint32_t> out;
    for (const auto& id : ids) {
      auto g = group(id);
      if (!g)
        continue;
      const auto& members = group_members[*g];
      if (a.groups[*g].name == all_group_name || ids.size() == 1) {
        out = members;
        break;
      }
      out.insert(out.end(), members.begin(), members.end());
    }
    sort_unique(out);
    std::erase_if(out, [&](std::uint32_t p) { return !valid[p]; });
    return out;
  }

  std::vector<std::uint32_t> rule_side(const account& a, const resource& res,
                                       const std::vector<std::string>& groups) const {
    if (res.type == "peer" && !res.id.empty()) {
      auto p = peer(res.id);
      if (p && valid[*p])
        return {*p};
      return {};
    }
    return expand(a, groups);
  }
};

account_view::account_view(std::shared_ptr<const account> acc, map_context ctx)
    : acc_(std::move(acc)), ctx_(std::move(ctx)), ix_(std::make_unique<indexes>()) {
  const auto& a = *acc_;
  auto& ix = *ix_;
  ix.acc = acc_.get();
  const auto n = static_cast<std::uint32_t>(a.peers.size());
  ix.dns_domain = a.settings.dns_domain.empty() ? ctx_.dns_domain : a.settings.dns_domain;
  const double now_unix = std::chrono::duration<double>(ctx_.now.time_since_epoch()).count();

  ix.peer_by_id.reserve(n);
  ix.peer_by_key.reserve(n);
  ix.valid.resize(n);
  ix.expired.resize(n);
  ix.feat.resize(n);
  ix.by_rank.resize(n);
  ix.rank.resize(n);
  for (std::uint32_t i = 0; i < n; ++i)
    ix.by_rank[i] = i;
  // A read puts the peers in id order already (registrations since append theirs at the end).
  const auto by_id = [&](auto x, auto y) { return a.peers[x].id < a.peers[y].id; };
  if (!std::is_sorted(ix.by_rank.begin(), ix.by_rank.end(), by_id))
    std::sort(ix.by_rank.begin(), ix.by_rank.end(), by_id);
  for (std::uint32_t r = 0; r < n; ++r)
    ix.rank[ix.by_rank[r]] = r;
  // What an agent version allows, worked out once per distinct version (an account's peers run a
  // few): the features, and whether it is 0.59.0 or newer (the DNS forwarder port).
  struct version_facts {
    bool dev = false, port_ranges = false, native_ssh = false, new_enough = false;
  };
  std::unordered_map<std::string_view, version_facts> versions;
  bool all_new_enough = n > 0;
  for (std::uint32_t i = 0; i < n; ++i) {
    const auto& p = a.peers[i];
    ix.peer_by_id.emplace(p.id, i);
    ix.peer_by_key.emplace(p.key, i);
    ix.valid[i] = !p.status.requires_approval;
    ix.expired[i] = login_expired(a, p, now_unix);
    const auto& v = p.meta.wt_version;
    auto [known, fresh] = versions.try_emplace(v);
    auto& f = known->second;
    if (fresh) {
      f.dev = is_development_version(v);
      f.port_ranges = f.dev || meets_min_version("0.48.0", v);
      f.native_ssh = f.dev || meets_min_version("0.60.0", v);
      const auto have = parse_version("v" + v, true);
      f.new_enough = have && have->key() >= version_number{0, 59, 0, false}.key();
    }
    ix.feat[i] = {f.port_ranges, f.native_ssh, server_ssh_allowed(p.meta.flags_json)};
    if (!f.dev)
      all_new_enough = all_new_enough && f.new_enough;
  }
  ix.forwarder_port = all_new_enough ? 22054 : 5353;

  const auto ng = static_cast<std::uint32_t>(a.groups.size());
  ix.group_members.resize(ng);
  ix.peer_groups.resize(n);
  ix.dns_disabled_group.resize(ng);
  for (std::uint32_t g = 0; g < ng; ++g) {
    ix.group_by_id.emplace(a.groups[g].id, g);
    for (const auto& pid : a.groups[g].peers) {
      auto p = ix.peer(pid);
      if (!p)
        continue;
      ix.group_members[g].push_back(*p);
      if (ix.peer_groups[*p].empty() || ix.peer_groups[*p].back() != g)
        ix.peer_groups[*p].push_back(g);
    }
  }
  for (const auto& id : a.dns_disabled_management_groups)
    if (auto g = ix.group(id))
      ix.dns_disabled_group[*g] = 1;

  // Posture checks named by enabled policies, evaluated once per peer.
  ix.policy_checks.resize(a.policies.size());
  {
    std::unordered_map<std::string_view, std::uint32_t> check_slot;
    for (std::uint32_t pi = 0; pi < a.policies.size(); ++pi) {
      const auto& pol = a.policies[pi];
      if (!pol.enabled)
        continue;
      for (const auto& id : pol.source_posture_checks) {
        auto it = check_slot.find(id);
        if (it == check_slot.end()) {
          const posture_check* pc = nullptr;
          for (const auto& c : a.posture_checks)
            if (c.id == id)
              pc = &c;
          if (!pc)
            continue;
          auto pass = passes_posture(*pc, a.peers);
          it = check_slot.emplace(id, static_cast<std::uint32_t>(ix.check_pass.size())).first;
          ix.check_pass.push_back(std::move(pass));
        }
        ix.policy_checks[pi].push_back(it->second);
      }
    }
    // The process paths of the checks enabled policies name, for the Checks of the responses.
    ix.check_files.resize(a.posture_checks.size());
    std::vector<std::uint8_t> parsed(a.posture_checks.size(), 0);
    ix.group_checks.resize(ng);
    for (const auto& pol : a.policies) {
      if (!pol.enabled || pol.source_posture_checks.empty())
        continue;
      struct {
        std::vector<std::uint32_t> groups, checks;
      } rc;
      for (const auto& id : pol.source_posture_checks)
        for (std::uint32_t c = 0; c < a.posture_checks.size(); ++c)
          if (a.posture_checks[c].id == id) {
            if (!parsed[c]) {
              parsed[c] = 1;
              ix.check_files[c] = process_files(a.posture_checks[c]);
            }
            if (!ix.check_files[c].empty())
              rc.checks.push_back(c);
          }
      if (rc.checks.empty())
        continue;
      for (const auto& r : pol.rules)
        if (r.enabled)
          for (const auto& gid : r.sources)
            if (auto g = ix.group(gid))
              rc.groups.push_back(*g);
      for (auto g : rc.groups) {
        auto& gc = ix.group_checks[g];
        gc.insert(gc.end(), rc.checks.begin(), rc.checks.end());
        ix.any_reported = true;
      }
    }
    for (auto& gc : ix.group_checks) {
      std::sort(gc.begin(), gc.end());
      gc.erase(std::unique(gc.begin(), gc.end()), gc.end());
    }
  }

  ix.peer_rules.resize(n);
  for (const auto& pol : a.policies) {
    if (!pol.enabled)
      continue;
    const auto pi = static_cast<std::uint32_t>(&pol - a.policies.data());
    for (const auto& r : pol.rules) {
      if (!r.enabled)
        continue;
      indexes::compiled_rule cr;
      cr.pol = &pol;
      cr.rule = &r;
      // A source group's peers that fail the policy's posture checks are left out (a source
      // peer named directly is not checked, as in NetBird's getPeerFromResource).
      cr.sources = ix.rule_side(a, r.source_resource, r.sources);
      if (!ix.policy_checks[pi].empty() &&
          !(r.source_resource.type == "peer" && !r.source_resource.id.empty()))
        std::erase_if(cr.sources, [&](std::uint32_t p) { return !ix.posture_ok(pi, p); });
      cr.destinations = ix.rule_side(a, r.destination_resource, r.destinations);
      cr.protocol = protocol_of(r.protocol);
      cr.action = action_of(r.action);
      cr.netbird_ssh = r.protocol == "netbird-ssh";
      const auto has_ssh_port = [&] {
        for (const auto& p : r.ports)
          if (p == "22" || p == "22022")
            return true;
        for (const auto& pr : r.port_ranges)
          if ((pr.start <= 22 && pr.end >= 22) || (pr.start <= 22022 && pr.end >= 22022))
            return true;
        return false;
      };
      cr.legacy_ssh = r.protocol == "all" || (r.protocol == "tcp" && has_ssh_port());
      const auto ri = static_cast<std::uint32_t>(ix.rules.size());
      for (const auto* side : {&cr.sources, &cr.destinations})
        for (auto p : *side)
          if (ix.peer_rules[p].empty() || ix.peer_rules[p].back() != ri)
            ix.peer_rules[p].push_back(ri);
      ix.rules.push_back(std::move(cr));
    }
  }

  const auto nr = static_cast<std::uint32_t>(a.routes.size());
  ix.routes_by_peer.resize(n);
  ix.route_ha.resize(nr);
  ix.route_dist.resize(nr);
  ix.route_acg_pols.resize(nr);
  ix.route_groups.resize(nr);
  ix.group_routes.resize(ng);
  for (std::uint32_t ri = 0; ri < nr; ++ri) {
    const auto& r = a.routes[ri];
    for (const auto& gid : r.peer_groups)
      if (auto g = ix.group(gid)) {
        for (auto p : ix.group_members[*g])
          ix.routes_by_peer[p].push_back({ri, true});
        auto& gr = ix.group_routes[*g];
        if (gr.empty() || gr.back() != ri)
          gr.push_back(ri);
      }
    for (const auto& gid : r.groups)
      if (auto g = ix.group(gid)) {
        ix.route_groups[ri].push_back(*g);
        auto& gr = ix.group_routes[*g];
        if (r.enabled && (gr.empty() || gr.back() != ri))
          gr.push_back(ri);
      }
    if (!r.peer.empty())
      if (auto p = ix.peer(r.peer))
        ix.routes_by_peer[*p].push_back({ri, false});
    std::string net = r.network;
    if (r.network_type == 3) {
      net.clear();
      for (const auto& d : r.domains)
        net += (net.empty() ? "" : ",") + d;
    }
    ix.route_ha[ri] = r.net_id + "|" + net;
    auto& dist = ix.route_dist[ri];
    for (const auto& gid : r.groups)
      if (auto g = ix.group(gid))
        dist.insert(dist.end(), ix.group_members[*g].begin(), ix.group_members[*g].end());
    std::sort(dist.begin(), dist.end());
    dist.erase(std::unique(dist.begin(), dist.end()), dist.end());
    // getAllRoutePoliciesFromGroups: policies with a rule whose destinations name an access-control
    // group (each policy once; NetBird appends a policy once per matching rule, which only
    // duplicates rules).
    for (const auto& acg : r.access_control_groups)
      for (std::uint32_t pi = 0; pi < a.policies.size(); ++pi)
        for (const auto& rule : a.policies[pi].rules)
          if (std::find(rule.destinations.begin(), rule.destinations.end(), acg) !=
              rule.destinations.end()) {
            auto& pols = ix.route_acg_pols[ri];
            if (std::find(pols.begin(), pols.end(), pi) == pols.end())
              pols.push_back(pi);
            break;
          }
  }

  // Networks: routers per network, policies per enabled resource.
  std::unordered_map<std::string_view, std::uint32_t> net_slot;
  const auto slot_of = [&](const std::string& network_id) {
    auto [it, fresh] = net_slot.emplace(network_id, static_cast<std::uint32_t>(net_slot.size()));
    if (fresh)
      ix.net_routers.emplace_back();
    return it->second;
  };
  {
    std::vector<std::unordered_map<std::uint32_t, const network_router*>> by_peer;
    for (const auto& rt : a.network_routers) {
      if (!rt.enabled)
        continue;
      const auto slot = slot_of(rt.network_id);
      by_peer.resize(ix.net_routers.size());
      if (!rt.peer.empty()) {
        if (auto p = ix.peer(rt.peer))
          by_peer[slot][*p] = &rt;
        continue;
      }
      for (const auto& gid : rt.peer_groups)
        if (auto g = ix.group(gid))
          for (auto p : ix.group_members[*g])
            by_peer[slot][p] = &rt;
    }
    for (std::uint32_t slot = 0; slot < by_peer.size(); ++slot) {
      auto& list = ix.net_routers[slot];
      for (const auto& [p, rt] : by_peer[slot])
        list.push_back({p, rt});
      std::sort(list.begin(), list.end(),
                [&](const auto& x, const auto& y) { return ix.before(x.peer, y.peer); });
    }
  }
  if (!a.network_resources.empty()) {
    std::unordered_map<std::string_view, std::vector<std::uint32_t>> res_groups;
    for (std::uint32_t g = 0; g < ng; ++g)
      for (const auto& r : a.groups[g].resources)
        res_groups[r.id].push_back(g);
    ix.res_pol_peers.resize(a.policies.size());
    std::vector<std::uint8_t> peers_done(a.policies.size(), 0);
    for (std::uint32_t ri = 0; ri < a.network_resources.size(); ++ri) {
      const auto& res = a.network_resources[ri];
      if (!res.enabled)
        continue;
      indexes::resource_entry e;
      e.res = ri;
      e.net = slot_of(res.network_id);
      const auto git = res_groups.find(res.id);
      for (std::uint32_t pi = 0; pi < a.policies.size(); ++pi) {
        const auto& pol = a.policies[pi];
        if (!pol.enabled)
          continue;
        for (const auto& rule : pol.rules) {
          if (!rule.enabled)
            continue;
          if (rule.destination_resource.id == res.id) {
            e.pols.push_back(pi);
            break;
          }
          if (git != res_groups.end())
            for (auto g : git->second)
              if (std::find(rule.destinations.begin(), rule.destinations.end(), a.groups[g].id) !=
                  rule.destinations.end()) {
                e.pols.push_back(pi);
                break;
              }
        }
      }
      // A policy without rules grants nothing (NetBird would index Rules[0]).
      std::erase_if(e.pols, [&](std::uint32_t pi) { return a.policies[pi].rules.empty(); });
      for (auto pi : e.pols) {
        if (peers_done[pi])
          continue;
        peers_done[pi] = 1;
        const auto& pol = a.policies[pi];
        auto& out = ix.res_pol_peers[pi];
        const auto& first = pol.rules.front().source_resource;
        if (first.type == "peer" && !first.id.empty()) {
          if (auto p = ix.peer(first.id))
            out.push_back(*p);
        } else {
          for (const auto& rule : pol.rules)
            for (const auto& gid : rule.sources)
              if (auto g = ix.group(gid))
                out.insert(out.end(), ix.group_members[*g].begin(), ix.group_members[*g].end());
        }
        ix.sort_unique(out);
        std::erase_if(out, [&](std::uint32_t p) { return !ix.valid[p]; });
      }
      ix.resources.push_back(std::move(e));
    }
  }
  ix.peer_resources.resize(n);
  for (std::uint32_t ei = 0; ei < ix.resources.size(); ++ei) {
    const auto& e = ix.resources[ei];
    const auto add = [&](std::uint32_t p) {
      auto& list = ix.peer_resources[p];
      if (list.empty() || list.back() != ei)
        list.push_back(ei);
    };
    for (const auto& r : ix.net_routers[e.net])
      add(r.peer);
    for (auto pi : e.pols)
      for (auto p : ix.res_pol_peers[pi])
        add(p);
  }
}

bool account_view::indexes::posture_ok(std::uint32_t pol, std::uint32_t p) const {
  for (auto c : policy_checks[pol])
    if (!check_pass[c][p])
      return false;
  return true;
}

account_view::~account_view() = default;
account_view::account_view(account_view&&) noexcept = default;
account_view& account_view::operator=(account_view&&) noexcept = default;

const std::string& account_view::dns_domain() const {
  return ix_->dns_domain;
}

std::string account_view::fqdn(std::uint32_t peer) const {
  const auto& label = acc_->peers[peer].dns_label;
  if (label.empty() || ix_->dns_domain.empty())
    return "";
  return label + "." + ix_->dns_domain;
}

std::vector<dns_record> account_view::peer_records(std::uint32_t peer) const {
  const auto& p = acc_->peers[peer];
  std::vector<dns_record> out;
  if (p.dns_label.empty() || ix_->dns_domain.empty())
    return out;
  const std::string suffix = "." + ix_->dns_domain;
  out.push_back({p.dns_label + suffix, 1, "IN", 300, p.ip});
  for (const auto& extra : p.extra_dns_labels)
    out.push_back({extra + suffix, 1, "IN", 300, p.ip});
  return out;
}

std::optional<std::uint32_t> account_view::peer_index(const std::string& peer_id) const {
  return ix_->peer(peer_id);
}

std::optional<std::uint32_t> account_view::peer_index_by_key(const std::string& wg_key) const {
  auto it = ix_->peer_by_key.find(wg_key);
  return it == ix_->peer_by_key.end() ? std::nullopt : std::optional(it->second);
}

namespace {

// Per-thread scratch marks, so a map costs no allocation proportional to the account.
struct scratch {
  std::vector<std::uint64_t> seen_peer, seen_in, seen_out, seen_route;
  std::uint64_t generation = 0;

  void fit_routes(std::size_t n) {
    if (seen_route.size() < n)
      seen_route.resize(n, 0);
  }
  void fit(std::size_t n) {
    if (seen_peer.size() < n) {
      seen_peer.resize(n, 0);
      seen_in.resize(n, 0);
      seen_out.resize(n, 0);
    }
  }
};

thread_local scratch marks;

} // namespace

namespace {

// Calls f once per distinct element of v, in first-seen order.
template <class T, class F>
void for_each_distinct(const std::vector<T>& v, F&& f) {
  for (auto it = v.begin(); it != v.end(); ++it)
    if (std::find(v.begin(), it, *it) == it)
      f(*it);
}

// A rule's port as a number (NetBird's strconv.ParseUint(port, 10, 16)); nullopt if it is none.
std::optional<unsigned long> port_number(const std::string& port) {
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  const auto value = std::stoul(port);
  return value <= 65535 ? std::optional<unsigned long>(value) : std::nullopt;
}

// NetworkResource.ToRoute: the route to `res` through routing peer `p`.
map_route resource_route(const network_resource& res, const peer& p, const network_router& rt) {
  map_route r;
  r.id = res.id + ":" + p.id;
  r.peer_key = p.key;
  r.metric = rt.metric;
  r.masquerade = rt.masquerade;
  r.net_id = res.name;
  r.keep_route = true;
  if (res.type == "host" || res.type == "subnet") {
    r.network = res.prefix;
    r.network_type = is_v6_network(res.prefix) ? 2 : 1;
  } else if (res.type == "domain") {
    std::string d = res.domain;
    std::transform(d.begin(), d.end(), d.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    r.domains = {std::move(d)};
    r.network_type = 3;
    r.network = "192.0.2.0/32"; // NetBird's placeholder for a domain network
  }
  return r;
}

// GenerateRouteFirewallRules for one rule and its source addresses: one rule per distinct port,
// else per distinct port range, else one.
void append_route_rules(std::vector<route_firewall_rule>& out, route_firewall_rule fr,
                        const policy_rule& rule) {
  fr.action = action_of(rule.action);
  fr.protocol = protocol_of(rule.protocol);
  if (!rule.ports.empty()) {
    for_each_distinct(rule.ports, [&](const std::string& port) {
      if (auto value = port_number(port)) {
        auto one = fr;
        one.port = std::to_string(*value);
        out.push_back(std::move(one));
      }
    });
  } else if (!rule.port_ranges.empty()) {
    for_each_distinct(rule.port_ranges, [&](const port_range& pr) {
      auto one = fr;
      one.range = pr;
      out.push_back(std::move(one));
    });
  } else {
    out.push_back(std::move(fr));
  }
}

} // namespace

network_map account_view::map_for(std::uint32_t t) const {
  const auto& a = *acc_;
  const auto& ix = *ix_;
  const auto& target = a.peers[t];
  network_map m;
  m.serial = a.net.serial;
  m.peer = t;
  m.dns.forwarder_port = ix.forwarder_port;
  if (!ix.valid[t]) {
    // A peer waiting for approval gets the network and nothing else.
    m.dns.service_enable = false;
    return m;
  }

  if (ix.any_reported) {
    std::vector<std::uint8_t> wanted(a.posture_checks.size(), 0);
    for (auto g : ix.peer_groups[t])
      for (auto c : ix.group_checks[g])
        wanted[c] = 1;
    for (std::size_t c = 0; c < wanted.size(); ++c)
      if (wanted[c])
        m.checks.push_back(ix.check_files[c]);
  }

  auto& s = marks;
  s.fit(a.peers.size());
  const auto map_gen = ++s.generation;
  std::vector<std::uint32_t> acl; // peers in first-seen order
  const auto& tf = ix.feat[t];

  const auto emit = [&](const indexes::compiled_rule& cr, std::uint32_t p, rule_direction dir) {
    const auto& r = *cr.rule;
    firewall_rule base;
    base.peer_ip = a.peers[p].ip;
    base.direction = dir;
    base.action = cr.action;
    base.protocol = cr.protocol;
    base.policy_id = r.id;
    if (r.ports.empty() && r.port_ranges.empty()) {
      m.firewall_rules.push_back(std::move(base));
      return;
    }
    const auto first = m.firewall_rules.size();
    for (const auto& port : r.ports) {
      auto fr = base;
      fr.port = port;
      m.firewall_rules.push_back(std::move(fr));
    }
    if (r.ports.empty())
      for (const auto& pr : r.port_ranges) {
        auto fr = base;
        if (tf.port_ranges)
          fr.range = pr;
        else if (pr.start == pr.end)
          fr.port = std::to_string(pr.start);
        else
          continue;
        m.firewall_rules.push_back(std::move(fr));
      }
    const bool native_ssh =
        (tf.native_ssh && target.ssh_enabled && tf.server_ssh && r.protocol == "tcp") ||
        cr.netbird_ssh;
    if (native_ssh) {
      bool has22 = false;
      for (auto i = first; i < m.firewall_rules.size(); ++i) {
        if (covers(m.firewall_rules[i], "22022", 22022))
          return;
        has22 = has22 || covers(m.firewall_rules[i], "22", 22);
      }
      if (has22) {
        base.port = "22022";
        m.firewall_rules.push_back(std::move(base));
      }
    }
  };

  for (auto ri : ix.peer_rules[t]) {
    const auto& cr = ix.rules[ri];
    const bool in_src = ix.has(cr.sources, t);
    const bool in_dst = ix.has(cr.destinations, t);
    const auto rule_gen = ++s.generation;
    const auto generate = [&](const std::vector<std::uint32_t>& peers, rule_direction dir) {
      auto& seen = dir == rule_direction::in ? s.seen_in : s.seen_out;
      for (auto p : peers) {
        if (p == t)
          continue;
        if (s.seen_peer[p] != map_gen) {
          s.seen_peer[p] = map_gen;
          acl.push_back(p);
        }
        if (seen[p] == rule_gen)
          continue;
        seen[p] = rule_gen;
        emit(cr, p, dir);
      }
    };
    if (cr.rule->bidirectional) {
      if (in_src)
        generate(cr.destinations, rule_direction::in);
      if (in_dst)
        generate(cr.sources, rule_direction::out);
    }
    if (in_src)
      generate(cr.destinations, rule_direction::out);
    if (in_dst)
      generate(cr.sources, rule_direction::in);
    if (in_dst && (cr.netbird_ssh || (cr.legacy_ssh && target.ssh_enabled)))
      m.ssh_enabled = true;
  }

  for (auto p : acl)
    (ix.expired[p] ? m.offline_peers : m.remote_peers).push_back(p);

  // Routes: the target's own, then the enabled routes of the peers it connects to that are
  // distributed to one of its groups and not in an HA set the target serves itself.
  struct served {
    std::uint32_t route;
    map_route r;
  };
  const auto routes_of = [&](std::uint32_t p, std::vector<served>& out,
                             std::vector<std::string>* disabled_ha) {
    const auto& entries = ix.routes_by_peer[p];
    for (std::size_t k = 0; k < entries.size(); ++k) {
      const auto& e = entries[k];
      const auto& r = a.routes[e.route];
      // The same route reached twice (two of its peer groups hold p): one copy.
      bool dup = false;
      for (std::size_t j = 0; j < k && !dup; ++j)
        dup = entries[j].route == e.route && entries[j].via_group == e.via_group;
      if (dup)
        continue;
      std::string id = e.via_group ? r.id + ":" + a.peers[p].id : r.id;
      if (!r.enabled) {
        if (disabled_ha)
          disabled_ha->push_back(ix.route_ha[e.route]);
        continue;
      }
      map_route mr{std::move(id), r.network, r.network_type, a.peers[p].key, r.metric,
                   r.masquerade,  r.net_id,  r.domains,      r.keep_route,   r.skip_auto_apply};
      out.push_back({e.route, std::move(mr)});
    }
  };
  std::vector<served> own;
  std::vector<std::string> own_ha;
  routes_of(t, own, &own_ha);
  for (const auto& o : own)
    own_ha.push_back(ix.route_ha[o.route]);
  for (const auto& o : own)
    if (!is_v6_network(o.r.network))
      m.routes.push_back(o.r);
  for (auto p : m.remote_peers) {
    if (ix.routes_by_peer[p].empty())
      continue;
    std::vector<served> theirs;
    routes_of(p, theirs, nullptr);
    for (auto& o : theirs) {
      if (!ix.in_any(t, ix.route_groups[o.route]))
        continue;
      if (std::find(own_ha.begin(), own_ha.end(), ix.route_ha[o.route]) != own_ha.end())
        continue;
      if (!is_v6_network(o.r.network))
        m.routes.push_back(std::move(o.r));
    }
  }

  // Route firewall rules, for the routes the target serves.
  for (const auto& o : own) {
    const auto& r = a.routes[o.route];
    const bool v6 = is_v6_network(r.network);
    route_firewall_rule base;
    base.destination = r.network;
    base.domains = r.domains;
    base.is_dynamic = r.network_type == 3;
    base.route_id = o.r.id;
    if (r.access_control_groups.empty()) {
      if (v6)
        continue;
      base.source_ranges = {"0.0.0.0/0"};
      m.route_firewall_rules.push_back(std::move(base));
      continue;
    }
    if (v6)
      continue;
    const auto& dist = ix.route_dist[o.route];
    for (auto pi : ix.route_acg_pols[o.route]) {
      const auto& pol = a.policies[pi];
      if (!pol.enabled)
        continue;
      for (const auto& rule : pol.rules) {
        if (!rule.enabled)
          continue;
        std::vector<std::uint32_t> sources;
        const auto admit = [&](std::uint32_t p) {
          if (p != t && ix.valid[p] && std::binary_search(dist.begin(), dist.end(), p) &&
              ix.posture_ok(pi, p))
            sources.push_back(p);
        };
        for (const auto& gid : rule.sources)
          if (auto g = ix.group(gid))
            for (auto p : ix.group_members[*g])
              admit(p);
        if (rule.source_resource.type == "peer" && !rule.source_resource.id.empty())
          if (auto p = ix.peer(rule.source_resource.id))
            admit(*p);
        ix.sort_unique(sources);
        auto fr = base;
        for (auto p : sources)
          fr.source_ranges.push_back(a.peers[p].ip + "/32");
        fr.policy_id = pol.id;
        append_route_rules(m.route_firewall_rules, std::move(fr), rule);
      }
    }
  }

  // Networks (getNetworkResourcesRoutesToSync): a routing peer of a resource's network gets the
  // route to it through itself, the firewall rules admitting the resource policies' source peers
  // and those peers to connect to; a peer a resource policy admits gets the route through every
  // routing peer of the network and those peers to connect to. Both come before the routes above.
  std::vector<map_route> res_routes;
  std::vector<route_firewall_rule> res_rules;
  std::vector<std::uint32_t> res_peers;      // routing peers of the routes
  std::vector<std::uint32_t> res_sources;    // a routing peer's source peers
  std::vector<std::uint32_t> res_zone_peers; // the DNS view the networks add
  bool is_router = false;
  for (auto ei : ix.peer_resources[t]) {
    const auto& e = ix.resources[ei];
    const auto& res = a.network_resources[e.res];
    const auto& routers = ix.net_routers[e.net];
    const auto mine =
        std::find_if(routers.begin(), routers.end(), [&](const auto& r) { return r.peer == t; });
    if (mine != routers.end()) {
      is_router = true;
      for (const auto& r : routers)
        if (ix.valid[r.peer])
          res_zone_peers.push_back(r.peer);
      for (auto pi : e.pols)
        for (auto p : ix.res_pol_peers[pi])
          if (ix.posture_ok(pi, p)) {
            res_sources.push_back(p);
            res_zone_peers.push_back(p);
          }
      if (e.pols.empty())
        continue;
      auto route = resource_route(res, target, *mine->router);
      res_peers.push_back(t);
      // getPeerNetworkResourceFirewallRules: every enabled rule of the resource's policies, its
      // source peers that pass the policy's posture checks (the router itself left out); a rule
      // left without sources is dropped.
      if (!is_v6_network(route.network)) {
        route_firewall_rule base;
        base.destination = route.network;
        base.domains = route.domains;
        base.is_dynamic = route.network_type == 3;
        base.route_id = route.id;
        for (auto pi : e.pols) {
          const auto& pol = a.policies[pi];
          for (const auto& rule : pol.rules) {
            if (!rule.enabled)
              continue;
            std::vector<std::uint32_t> sources;
            const auto admit = [&](std::uint32_t p) {
              if (p != t && ix.valid[p] && ix.posture_ok(pi, p))
                sources.push_back(p);
            };
            for (const auto& gid : rule.sources)
              if (auto g = ix.group(gid))
                for (auto p : ix.group_members[*g])
                  admit(p);
            if (rule.source_resource.type == "peer" && !rule.source_resource.id.empty())
              if (auto p = ix.peer(rule.source_resource.id))
                admit(*p);
            if (sources.empty())
              continue;
            ix.sort_unique(sources);
            auto fr = base;
            for (auto p : sources)
              fr.source_ranges.push_back(a.peers[p].ip + "/32");
            fr.policy_id = pol.id;
            append_route_rules(res_rules, std::move(fr), rule);
          }
        }
      }
      res_routes.push_back(std::move(route));
      continue;
    }
    for (auto pi : e.pols) {
      if (!ix.has(ix.res_pol_peers[pi], t) || !ix.posture_ok(pi, t))
        continue;
      for (const auto& r : routers)
        if (ix.valid[r.peer]) {
          res_routes.push_back(resource_route(res, a.peers[r.peer], *r.router));
          res_peers.push_back(r.peer);
          res_zone_peers.push_back(r.peer);
        }
      break;
    }
  }
  std::erase_if(res_routes, [](const map_route& r) { return is_v6_network(r.network); });
  if (!res_routes.empty())
    m.routes.insert(m.routes.begin(), std::make_move_iterator(res_routes.begin()),
                    std::make_move_iterator(res_routes.end()));
  if (!res_rules.empty())
    m.route_firewall_rules.insert(m.route_firewall_rules.begin(),
                                  std::make_move_iterator(res_rules.begin()),
                                  std::make_move_iterator(res_rules.end()));
  // addNetworksRoutingPeers: the routing peers (and a router's source peers) the target does not
  // already connect to join its peers.
  if (!res_peers.empty() || is_router) {
    std::vector<std::uint32_t> missing = res_peers;
    if (is_router)
      missing.insert(missing.end(), res_sources.begin(), res_sources.end());
    const auto gen = ++s.generation;
    s.seen_in[t] = gen;
    for (auto p : acl)
      s.seen_in[p] = gen;
    std::erase_if(missing, [&](std::uint32_t p) { return s.seen_in[p] == gen; });
    ix.sort_unique(missing);
    m.remote_peers.insert(m.remote_peers.end(), missing.begin(), missing.end());
  }

  // DNS.
  for (auto g : ix.peer_groups[t])
    if (ix.dns_disabled_group[g]) {
      m.dns.service_enable = false;
      return m;
    }
  // The peers zone holds the peers of the target's view: itself, those it connects to, and the
  // routing peers of the routes that concern it.
  const auto view_gen = ++s.generation;
  std::vector<std::uint32_t> zone_peers;
  zone_peers.reserve(acl.size() + 1);
  const auto in_view = [&](std::uint32_t p) {
    if (s.seen_peer[p] != view_gen) {
      s.seen_peer[p] = view_gen;
      zone_peers.push_back(p);
    }
  };
  in_view(t);
  for (auto p : acl)
    in_view(p);
  for (auto p : res_zone_peers)
    in_view(p);
  const auto add_advertisers = [&](std::uint32_t ri) {
    if (s.seen_route[ri] == view_gen)
      return;
    s.seen_route[ri] = view_gen;
    const auto& r = a.routes[ri];
    if (auto p = ix.peer(r.peer); p && ix.valid[*p])
      in_view(*p);
    for (const auto& gid : r.peer_groups)
      if (auto g = ix.group(gid))
        for (auto p : ix.group_members[*g])
          if (ix.valid[p])
            in_view(p);
  };
  s.fit_routes(a.routes.size());
  for (const auto& e : ix.routes_by_peer[t]) // routes the target serves (as peer or peer group)
    add_advertisers(e.route);
  for (auto g : ix.peer_groups[t]) // routes distributed to one of its groups
    for (auto ri : ix.group_routes[g])
      add_advertisers(ri);
  if (!ix.dns_domain.empty()) {
    std::erase_if(zone_peers, [&](std::uint32_t p) { return a.peers[p].dns_label.empty(); });
    if (!zone_peers.empty()) {
      ix.sort_unique(zone_peers);
      custom_zone zone;
      zone.domain = ix.dns_domain + ".";
      zone.peers = std::move(zone_peers);
      m.dns.custom_zones.push_back(std::move(zone));
    }
  }
  for (const auto& ns : a.nameserver_groups) {
    if (!ns.enabled || !ix.in_any(t, ns.groups))
      continue;
    const bool self_serves = std::any_of(ns.nameservers.begin(), ns.nameservers.end(),
                                         [&](const nameserver& n) { return n.ip == target.ip; });
    if (!self_serves)
      m.dns.nameserver_groups.push_back(
          {ns.nameservers, ns.primary, ns.domains, ns.search_domains_enabled});
  }
  return m;
}

std::uint64_t account_view::fingerprint(const network_map& m) const {
  const auto& a = *acc_;
  hasher h;
  const auto peer = [&](std::uint32_t i) {
    const auto& p = a.peers[i];
    h.bytes(p.key);
    h.bytes(p.ip);
    h.bytes(p.dns_label);
    h.bytes(p.ssh_key);
    h.bytes(p.meta.wt_version);
  };
  // The target's own PeerConfig.
  peer(m.peer);
  h.num(a.peers[m.peer].ssh_enabled);
  h.bytes(a.net.net);
  h.bytes(ix_->dns_domain);
  h.num(a.settings.routing_peer_dns_resolution_enabled);
  h.num(a.settings.lazy_connection_enabled);
  h.num(m.ssh_enabled);
  h.num(m.remote_peers.size());
  for (auto i : m.remote_peers)
    peer(i);
  h.num(m.offline_peers.size());
  for (auto i : m.offline_peers)
    peer(i);
  h.num(m.firewall_rules.size());
  for (const auto& r : m.firewall_rules) {
    h.bytes(r.peer_ip);
    h.num(static_cast<std::uint64_t>(r.direction) << 16 |
          static_cast<std::uint64_t>(r.action) << 8 | static_cast<std::uint64_t>(r.protocol));
    h.bytes(r.port);
    h.num(r.range ? (std::uint64_t{1} << 32 | r.range->start << 16 | r.range->end) : 0);
    h.bytes(r.policy_id);
  }
  h.num(m.routes.size());
  for (const auto& r : m.routes) {
    h.bytes(r.id);
    h.bytes(r.network);
    h.num(static_cast<std::uint64_t>(r.network_type));
    h.bytes(r.peer_key);
    h.num(static_cast<std::uint64_t>(r.metric));
    h.num(r.masquerade | r.keep_route << 1 | r.skip_auto_apply << 2);
    h.bytes(r.net_id);
    h.num(r.domains.size());
    for (const auto& d : r.domains)
      h.bytes(d);
  }
  h.num(m.route_firewall_rules.size());
  for (const auto& r : m.route_firewall_rules) {
    h.num(r.source_ranges.size());
    for (const auto& s : r.source_ranges)
      h.bytes(s);
    h.num(static_cast<std::uint64_t>(r.action) << 8 | static_cast<std::uint64_t>(r.protocol));
    h.bytes(r.destination);
    h.bytes(r.port);
    h.num(r.range ? (std::uint64_t{1} << 32 | r.range->start << 16 | r.range->end) : 0);
    h.num(r.is_dynamic);
    h.num(r.domains.size());
    for (const auto& d : r.domains)
      h.bytes(d);
    h.bytes(r.policy_id);
    h.bytes(r.route_id);
  }
  h.num(m.checks.size());
  for (const auto& files : m.checks) {
    h.num(files.size());
    for (const auto& f : files)
      h.bytes(f);
  }
  h.num(m.dns.service_enable);
  h.num(static_cast<std::uint64_t>(m.dns.forwarder_port));
  h.num(m.dns.nameserver_groups.size());
  for (const auto& g : m.dns.nameserver_groups) {
    h.num(g.nameservers.size());
    for (const auto& n : g.nameservers) {
      h.bytes(n.ip);
      h.num(static_cast<std::uint64_t>(n.ns_type) << 32 | static_cast<std::uint32_t>(n.port));
    }
    h.num(g.primary | g.search_domains_enabled << 1);
    h.num(g.domains.size());
    for (const auto& d : g.domains)
      h.bytes(d);
  }
  h.num(m.dns.custom_zones.size());
  for (const auto& z : m.dns.custom_zones) {
    h.bytes(z.domain);
    h.num(z.peers.size());
    for (auto i : z.peers) {
      const auto& p = a.peers[i];
      h.bytes(p.dns_label);
      h.bytes(p.ip);
      h.num(p.extra_dns_labels.size());
      for (const auto& l : p.extra_dns_labels)
        h.bytes(l);
    }
    h.num(z.records.size());
    for (const auto& r : z.records) {
      h.bytes(r.name);
      h.num(static_cast<std::uint64_t>(r.type) << 32 | static_cast<std::uint64_t>(r.ttl));
      h.bytes(r.record_class);
      h.bytes(r.rdata);
    }
  }
  return h.h;
}

} // namespace nbm::core
