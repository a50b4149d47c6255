#include "core/networks.hpp"

#include <algorithm>
#include <cctype>

namespace nbm::core {

namespace {

problem fail(int status, std::string message) {
  return {status, std::move(message)};
}

template <class T>
const T* by_id(const std::vector<T>& items, const std::string& id) {
  for (const auto& x : items)
    if (x.id == id)
      return &x;
  return nullptr;
}

bool is_address(const std::string& s) {
  return canonical_prefix(s + (s.find(':') != std::string::npos ? "/128" : "/32")).has_value();
}

// NetBird's domain.ValidateDomains for one name: labels of letters, digits and '-', not starting
// or ending with '-', a leading "*." allowed, at least two labels, at most 255 characters.
bool is_domain(std::string d) {
  if (d.starts_with("*."))
    d = d.substr(2);
  if (d.ends_with('.'))
    d.pop_back();
  if (d.empty() || d.size() > 253 || d.find('.') == std::string::npos)
    return false;
  std::size_t start = 0;
  while (start <= d.size()) {
    auto end = d.find('.', start);
    if (end == std::string::npos)
      end = d.size();
    const auto label = std::string_view(d).substr(start, end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
      return false;
    for (unsigned char c : label)
      if (!std::isalnum(c) && c != '-')
        return false;
    start = end + 1;
  }
  return true;
}

// The groups of `a` with resource `id` in exactly `holders` (the others without it); only the
// groups that change.
} // namespace

std::vector<group> regroup_resource(const account& a, const resource& res,
                                    const std::vector<std::string>& holders) {
  std::vector<group> out;
  for (const auto& g : a.groups) {
    const bool holds = std::any_of(g.resources.begin(), g.resources.end(),
                                   [&](const resource& r) { return r.id == res.id; });
    const bool should =
        std::find(holders.begin(), holders.end(), g.id) != holders.end() && !res.id.empty();
    if (holds == should) {
      // The type may have changed with the address.
      if (!holds)
        continue;
      bool same = true;
      for (const auto& r : g.resources)
        if (r.id == res.id && r.type != res.type)
          same = false;
      if (same)
        continue;
    }
    auto changed = g;
    std::erase_if(changed.resources, [&](const resource& r) { return r.id == res.id; });
    if (should)
      changed.resources.push_back(res);
    out.push_back(std::move(changed));
  }
  return out;
}

std::optional<resource_address> classify_resource_address(const std::string& address) {
  if (address.find('/') != std::string::npos) {
    if (!canonical_prefix(address))
      return std::nullopt;
    const auto bits = address.substr(address.find('/') + 1);
    const bool host = bits == "32" || bits == "128";
    return resource_address{host ? "host" : "subnet", "", address};
  }
  if (is_address(address))
    return resource_address{"host", "",
                            address + (address.find(':') != std::string::npos ? "/128" : "/32")};
  if (is_domain(address))
    return resource_address{"domain", address, ""};
  return std::nullopt;
}

std::vector<std::string> resource_groups(const account& a, const std::string& resource_id) {
  std::vector<std::string> out;
  for (const auto& g : a.groups)
    for (const auto& r : g.resources)
      if (r.id == resource_id) {
        out.push_back(g.id);
        break;
      }
  return out;
}

std::vector<std::string> policies_in_network(const account& a, const std::string& network_id) {
  std::vector<std::string> out;
  for (const auto& res : a.network_resources) {
    if (res.network_id != network_id)
      continue;
    const auto groups = resource_groups(a, res.id);
    for (const auto& pol : a.policies) {
      if (!pol.enabled)
        continue;
      const bool applies = std::any_of(pol.rules.begin(), pol.rules.end(), [&](const auto& rule) {
        if (!rule.enabled)
          return false;
        if (rule.destination_resource.id == res.id)
          return true;
        for (const auto& g : groups)
          if (std::find(rule.destinations.begin(), rule.destinations.end(), g) !=
              rule.destinations.end())
            return true;
        return false;
      });
      if (applies && std::find(out.begin(), out.end(), pol.id) == out.end())
        out.push_back(pol.id);
    }
  }
  return out;
}

std::string resource_address_text(const network_resource& r) {
  return r.type == "domain" ? r.domain : r.prefix;
}

verdict prepare_network_change(const account& a, change::save_network& c) {
  c.n.account_id = a.id;
  if (!c.n.id.empty() && !by_id(a.networks, c.n.id))
    return fail(404, "network: " + clip(c.n.id) + " not found");
  return std::nullopt;
}

verdict prepare_network_change(const account& a, change::delete_network& c) {
  if (!by_id(a.networks, c.id))
    return fail(404, "network: " + clip(c.id) + " not found");
  // Its resources leave every group that held them (NetBird deletes them with the network).
  c.touched.clear();
  for (const auto& g : a.groups) {
    auto changed = g;
    std::erase_if(changed.resources, [&](const resource& r) {
      const auto* res = by_id(a.network_resources, r.id);
      return res && res->network_id == c.id;
    });
    if (changed.resources.size() != g.resources.size())
      c.touched.push_back(std::move(changed));
  }
  return std::nullopt;
}

verdict prepare_network_change(const account& a, change::save_resource& c) {
  auto& r = c.r;
  r.account_id = a.id;
  const bool create = r.id.empty();
  const auto kind = classify_resource_address(c.address);
  if (!kind)
    return fail(422, "invalid address: not a valid host, subnet, or domain");
  r.type = kind->type;
  r.domain = kind->domain;
  r.prefix = kind->prefix;
  if (create) {
    for (const auto& x : a.network_resources)
      if (x.name == r.name)
        return fail(422, "resource with name " + clip(r.name) + " already exists");
    if (!by_id(a.networks, r.network_id))
      return fail(404, "network: " + clip(r.network_id) + " not found");
  } else {
    if (!by_id(a.networks, r.network_id))
      return fail(404, "network: " + clip(r.network_id) + " not found");
    const auto* old = by_id(a.network_resources, r.id);
    if (!old)
      return fail(404, "network resource: " + clip(r.id) + " not found");
    if (old->network_id != r.network_id)
      return fail(400,
                  "resource " + clip(r.id) + " is not part of the network " + clip(r.network_id));
    for (const auto& x : a.network_resources)
      if (x.name == r.name && x.id != r.id)
        return fail(422, "new resource name already exists");
  }
  for (const auto& gid : c.groups)
    if (!by_id(a.groups, gid))
      return fail(404, "group: " + clip(gid) + " not found");
  // A new resource gets its id from the store, which then regroups it (regroup_resource).
  if (create)
    return std::nullopt;
  c.touched = regroup_resource(a, {r.id, r.type}, c.groups);
  return std::nullopt;
}

verdict prepare_network_change(const account& a, change::delete_resource& c) {
  const auto* old = by_id(a.network_resources, c.id);
  if (!old)
    return fail(404, "network resource: " + clip(c.id) + " not found");
  if (old->network_id != c.network_id)
    return fail(400,
                "resource " + clip(c.id) + " is not part of the network " + clip(c.network_id));
  c.touched = regroup_resource(a, {c.id, old->type}, {});
  return std::nullopt;
}

verdict prepare_network_change(const account& a, change::save_router& c) {
  auto& r = c.r;
  r.account_id = a.id;
  if (!r.peer.empty() && !r.peer_groups.empty())
    return fail(400, "peer and peer_groups cannot be set at the same time");
  if (r.peer.empty() && r.peer_groups.empty())
    return fail(400, "either peer or peer_groups must be provided");
  if (!by_id(a.networks, r.network_id))
    return fail(404, "network: " + clip(r.network_id) + " not found");
  if (!r.id.empty()) {
    const auto* old = by_id(a.network_routers, r.id);
    if (!old)
      return fail(404, "network router: " + clip(r.id) + " not found");
    if (old->network_id != r.network_id)
      return fail(400,
                  "router " + clip(r.id) + " is not part of the network " + clip(r.network_id));
  }
  if (!r.peer.empty() && !a.find_peer(r.peer))
    return fail(422, "peer " + clip(r.peer) + " not found");
  for (const auto& gid : r.peer_groups)
    if (!by_id(a.groups, gid))
      return fail(422, "group " + clip(gid) + " not found");
  return std::nullopt;
}

verdict prepare_network_change(const account& a, change::delete_router& c) {
  const auto* old = by_id(a.network_routers, c.id);
  if (!old)
    return fail(404, "network router: " + clip(c.id) + " not found");
  if (old->network_id != c.network_id)
    return fail(400, "router " + clip(c.id) + " is not part of the network " + clip(c.network_id));
  return std::nullopt;
}

} // namespace nbm::core
