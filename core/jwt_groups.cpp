#include "core/jwt_groups.hpp"

#include <algorithm>
#include <map>
#include <set>

namespace nbm::core {

namespace {

const group* by_id(const account& a, const std::string& id) {
  for (const auto& g : a.groups)
    if (g.id == id)
      return &g;
  return nullptr;
}

// NetBird's separateGroups: the user's auto-groups that are not JWT groups (in order), and its JWT
// groups by name.
void separate(const account& a, const user& u, std::vector<std::string>& other,
              std::map<std::string, std::string>& jwt) {
  for (const auto& gid : u.auto_groups) {
    const auto* g = by_id(a, gid);
    if (g && g->issued == "jwt")
      jwt[g->name] = g->id;
    else
      other.push_back(gid);
  }
}

} // namespace

bool jwt_groups_allowed(const account_settings& s, const std::vector<std::string>& names) {
  if (!s.jwt_groups_enabled || s.jwt_allow_groups.empty())
    return true;
  for (const auto& n : names)
    if (std::find(s.jwt_allow_groups.begin(), s.jwt_allow_groups.end(), n) !=
        s.jwt_allow_groups.end())
      return true;
  return false;
}

bool jwt_groups_change(const account& a, const user& u, const std::vector<std::string>& names) {
  std::vector<std::string> other;
  std::map<std::string, std::string> jwt;
  separate(a, u, other, jwt);
  const std::set<std::string> wanted(names.begin(), names.end());
  std::map<std::string, const group*> by_name;
  for (const auto& g : a.groups)
    by_name.emplace(g.name, &g);
  for (const auto& n : wanted) {
    if (n.empty() || jwt.count(n))
      continue;
    const auto it = by_name.find(n);
    if (it == by_name.end() || it->second->issued == "jwt") // a group of the API's is not taken
      return true;
  }
  for (const auto& [n, id] : jwt)
    if (!wanted.count(n))
      return true;
  return false;
}

verdict prepare_jwt_groups(const account& a, const user& caller, change::jwt_groups& c) {
  if (caller.id != c.user_id)
    return problem{403, "permission denied"};
  std::vector<std::string> other;
  std::map<std::string, std::string> jwt;
  separate(a, caller, other, jwt);
  std::map<std::string, const group*> by_name;
  for (const auto& g : a.groups)
    by_name.emplace(g.name, &g);
  c.create.clear();
  c.add.clear();
  c.remove.clear();
  c.auto_groups = other;
  std::set<std::string> seen;
  for (const auto& n : c.names) {
    if (n.empty() || !seen.insert(n).second || jwt.count(n))
      continue;
    const auto it = by_name.find(n);
    if (it == by_name.end())
      c.create.push_back(n);                // its id is given when it is stored
    else if (it->second->issued == "jwt") { // a group of the API's own is not taken over
      c.add.push_back(it->second->id);
      c.auto_groups.push_back(it->second->id);
    }
  }
  for (const auto& [n, id] : jwt) {
    if (seen.count(n))
      c.auto_groups.push_back(id);
    else
      c.remove.push_back(id);
  }
  c.propagate = a.settings.groups_propagation_enabled;
  return std::nullopt;
}

} // namespace nbm::core
