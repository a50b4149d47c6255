#include "core/change.hpp"

#include "core/jwt_groups.hpp"
#include "core/networks.hpp"
#include "core/posture.hpp"
#include "core/registration.hpp"

#include <algorithm>
#include <set>

namespace nbm::core {

std::string clip(std::string_view text, std::size_t n) {
  if (text.size() <= n)
    return std::string(text);
  return std::string(text.substr(0, n)) + "...";
}

namespace {

problem fail(int status, std::string message) {
  return {status, std::move(message)};
}

problem permission_denied() {
  return fail(403, "permission denied");
}

template <class T>
const T* by_id(const std::vector<T>& items, const std::string& id) {
  for (const auto& x : items)
    if (x.id == id)
      return &x;
  return nullptr;
}

bool is_admin(const user& u) {
  return u.role == "owner" || u.role == "admin";
}

// The groups a setup key joins its peers to: known, and never All.
verdict check_key_groups(const account& a, const std::vector<std::string>& groups) {
  for (const auto& gid : groups) {
    const auto* g = by_id(a.groups, gid);
    if (!g)
      return fail(422, "invalid auto groups: group " + clip(gid) + " not found");
    if (g->name == "All")
      return fail(422, "can't add 'All' group to the setup key");
  }
  return std::nullopt;
}

verdict check_user_groups(const account& a, const std::vector<std::string>& groups) {
  for (const auto& gid : groups)
    if (!by_id(a.groups, gid))
      return fail(422, "group " + clip(gid) + " not found");
  return std::nullopt;
}

struct preparer {
  const account& a;
  const user& caller;

  verdict operator()(change::save_group& c) const {
    if (!is_admin(caller))
      return permission_denied();
    auto& g = c.g;
    g.account_id = a.id;
    if (!g.id.empty()) {
      const auto* old = by_id(a.groups, g.id);
      if (!old)
        return fail(404, "group: " + clip(g.id) + " not found");
      g.issued = old->issued;
      g.resources = old->resources;
      if (old->name == "All")
        return fail(422, "updating group ALL is not allowed");
    }
    return validate_group(a, g);
  }
  verdict operator()(change::delete_group& c) const {
    if (!is_admin(caller))
      return permission_denied();
    return validate_group_delete(a, c.id);
  }
  verdict operator()(change::save_policy& c) const {
    if (!is_admin(caller))
      return permission_denied();
    c.p.account_id = a.id;
    if (!c.p.id.empty() && !by_id(a.policies, c.p.id))
      return fail(404, "policy: " + clip(c.p.id) + " not found");
    return validate_policy(a, c.p);
  }
  verdict operator()(change::delete_policy& c) const {
    if (!is_admin(caller))
      return permission_denied();
    if (!by_id(a.policies, c.id))
      return fail(404, "policy: " + clip(c.id) + " not found");
    return std::nullopt;
  }
  verdict operator()(change::save_route& c) const {
    if (!is_admin(caller))
      return permission_denied();
    c.r.account_id = a.id;
    if (!c.r.id.empty() && !by_id(a.routes, c.r.id))
      return fail(404, "route: " + clip(c.r.id) + " not found");
    return validate_route(a, c.r);
  }
  verdict operator()(change::delete_route& c) const {
    if (!is_admin(caller))
      return permission_denied();
    if (!by_id(a.routes, c.id))
      return fail(404, "route: " + clip(c.id) + " not found");
    return std::nullopt;
  }
  verdict operator()(change::save_nameservers& c) const {
    if (!is_admin(caller))
      return permission_denied();
    c.g.account_id = a.id;
    if (!c.g.id.empty() && !by_id(a.nameserver_groups, c.g.id))
      return fail(404, "nameserver group: " + clip(c.g.id) + " not found");
    return validate_nameserver_group(a, c.g);
  }
  verdict operator()(change::delete_nameservers& c) const {
    if (!is_admin(caller))
      return permission_denied();
    if (!by_id(a.nameserver_groups, c.id))
      return fail(404, "nameserver group: " + clip(c.id) + " not found");
    return std::nullopt;
  }
  verdict operator()(change::dns_settings& c) const {
    if (!is_admin(caller))
      return permission_denied();
    for (const auto& gid : c.disabled_management_groups)
      if (!by_id(a.groups, gid))
        return fail(422, "group " + clip(gid) + " not found");
    return std::nullopt;
  }
  verdict operator()(change::settings& c) const {
    if (c.account_id != a.id)
      return fail(404, "account not found: " + clip(c.account_id));
    if (!is_admin(caller))
      return permission_denied();
    return std::nullopt;
  }
  verdict operator()(change::update_peer& c) const {
    const auto* p = a.find_peer(c.id);
    if (!p || !(is_admin(caller) || p->user_id == caller.id))
      return fail(404, "peer not found: " + clip(c.id));
    if (!is_admin(caller))
      return permission_denied();
    auto upd = *p;
    upd.name = c.name.value_or(p->name);
    if (upd.name.empty())
      return fail(422, "peer name shouldn't be empty");
    upd.ssh_enabled = c.ssh_enabled.value_or(p->ssh_enabled);
    upd.login_expiration_enabled = c.login_expiration_enabled.value_or(p->login_expiration_enabled);
    upd.inactivity_expiration_enabled =
        c.inactivity_expiration_enabled.value_or(p->inactivity_expiration_enabled);
    // Expiration applies to peers a user added with an SSO login only (NetBird's rule).
    if (p->user_id.empty() && upd.login_expiration_enabled != p->login_expiration_enabled)
      return fail(412, "this peer hasn't been added with the SSO login, therefore the login "
                       "expiration can't be updated");
    if (p->user_id.empty() && upd.inactivity_expiration_enabled != p->inactivity_expiration_enabled)
      return fail(412, "this peer hasn't been added with the SSO login, therefore the inactivity "
                       "expiration can't be updated");
    // Approval: "approval_required": false lets a peer that waits for approval in (it then gets
    // its map and the others see it); an approved peer stays approved.
    if (p->status.requires_approval && !c.approval_required.value_or(true))
      upd.status.requires_approval = false;
    if (upd.name != p->name) {
      // NetBird derives a new DNS label from the new name; when another peer has it, the label
      // gets the last two octets of the peer's address ("name-0-5").
      auto label = parsed_domain_label(upd.name);
      if (!label)
        return fail(422, "invalid peer name " + clip(upd.name));
      std::set<std::string> taken;
      for (const auto& q : a.peers)
        if (q.id != p->id)
          taken.insert(q.dns_label);
      if (taken.count(*label)) {
        const auto dot2 = p->ip.rfind('.', p->ip.rfind('.') - 1);
        std::string octets = dot2 == std::string::npos ? "" : p->ip.substr(dot2 + 1);
        std::replace(octets.begin(), octets.end(), '.', '-');
        *label += "-" + octets;
      }
      auto unique = unique_host_label(*label, taken);
      if (!unique)
        return fail(409, "peer name " + clip(upd.name) + " is taken");
      upd.dns_label = *unique;
    }
    c.result = std::move(upd);
    return std::nullopt;
  }
  verdict operator()(change::delete_peer& c) const {
    const auto* p = a.find_peer(c.id);
    if (!p || !(is_admin(caller) || p->user_id == caller.id))
      return fail(404, "peer not found: " + clip(c.id));
    if (!is_admin(caller))
      return permission_denied();
    return std::nullopt;
  }
  verdict operator()(change::create_setup_key& c) const {
    if (!is_admin(caller))
      return permission_denied();
    return check_key_groups(a, c.auto_groups);
  }
  verdict operator()(change::update_setup_key& c) const {
    if (!is_admin(caller))
      return permission_denied();
    const auto* key = by_id(a.setup_keys, c.id);
    if (!key)
      return fail(404, "setup key: " + clip(c.id) + " not found");
    if (key->revoked && !c.revoked)
      return fail(422, "can't un-revoke a revoked setup key");
    return check_key_groups(a, c.auto_groups);
  }
  verdict operator()(change::delete_setup_key& c) const {
    if (!is_admin(caller))
      return permission_denied();
    if (!by_id(a.setup_keys, c.id))
      return fail(404, "setup key: " + clip(c.id) + " not found");
    return std::nullopt;
  }
  verdict operator()(change::create_user& c) const {
    if (!is_admin(caller))
      return permission_denied();
    if (auto bad = check_user_groups(a, c.auto_groups))
      return bad;
    if (!c.is_service_user)
      return fail(412, "IdP manager must be enabled to send user invites");
    if (c.id.empty() || by_id(a.users, c.id))
      return fail(409, "an object with this id already exists");
    return std::nullopt;
  }
  verdict operator()(change::update_user& c) const {
    if (!is_admin(caller))
      return permission_denied();
    const auto* u = by_id(a.users, c.id);
    if (!u)
      return fail(404, "user: " + clip(c.id) + " not found");
    auto upd = *u;
    upd.role = c.role.value_or(u->role);
    upd.auto_groups = c.auto_groups.value_or(u->auto_groups);
    if (auto bad = check_user_groups(a, upd.auto_groups))
      return bad;
    upd.blocked = c.blocked.value_or(u->blocked);
    if (u->id == caller.id && upd.blocked)
      return fail(422, "unable to block own user");
    if (u->id == caller.id && upd.role != u->role)
      return fail(403, "admins can't change their own role");
    if ((u->role == "owner" || upd.role == "owner") && caller.role != "owner")
      return fail(403, "only an owner can change an owner's role");
    c.result = std::move(upd);
    return std::nullopt;
  }
  verdict operator()(change::delete_user& c) const {
    if (!is_admin(caller))
      return permission_denied();
    const auto* u = by_id(a.users, c.id);
    if (!u)
      return fail(404, "user: " + clip(c.id) + " not found");
    if (u->id == caller.id)
      return fail(422, "self deletion is not allowed");
    if (u->role == "owner")
      return fail(403, "unable to delete a user with owner role");
    return std::nullopt;
  }
  // Tokens: one's own, or (admins) a service user's.
  verdict token_owner(const std::string& user_id) const {
    const auto* u = by_id(a.users, user_id);
    if (!u)
      return fail(404, "user: " + clip(user_id) + " not found");
    if (u->id != caller.id && !(is_admin(caller) && u->is_service_user))
      return fail(403, "no permission to manage tokens of this user");
    return std::nullopt;
  }
  verdict operator()(change::create_token& c) const {
    if (auto bad = token_owner(c.user_id))
      return bad;
    if (c.id.empty() || by_id(a.tokens, c.id))
      return fail(409, "an object with this id already exists");
    return std::nullopt;
  }
  template <class C>
  auto operator()(C& c) const -> decltype(prepare_network_change(a, c)) {
    if (!is_admin(caller))
      return permission_denied();
    return prepare_network_change(a, c);
  }
  verdict operator()(change::save_posture_check& c) const {
    if (!is_admin(caller))
      return permission_denied();
    return prepare_posture_change(a, c);
  }
  verdict operator()(change::delete_posture_check& c) const {
    if (!is_admin(caller))
      return permission_denied();
    return prepare_posture_change(a, c);
  }
  verdict operator()(change::jwt_groups& c) const { return prepare_jwt_groups(a, caller, c); }
  verdict pending_user(const std::string& id) const {
    if (!is_admin(caller))
      return permission_denied();
    const auto* u = by_id(a.users, id);
    if (!u)
      return fail(404, "user: " + clip(id) + " not found");
    if (!u->pending_approval)
      return fail(422, "user " + clip(id) + " is not pending approval");
    return std::nullopt;
  }
  verdict operator()(change::delete_account& c) const {
    if (c.account_id != a.id)
      return fail(404, "account not found: " + clip(c.account_id));
    if (caller.role != "owner")
      return fail(403, "user is not allowed to delete account. Only account owner can delete "
                       "account");
    return std::nullopt;
  }
  verdict operator()(change::dashboard_login& c) const {
    if (c.user_id != caller.id)
      return permission_denied();
    return std::nullopt;
  }
  verdict operator()(change::approve_user& c) const { return pending_user(c.id); }
  verdict operator()(change::reject_user& c) const { return pending_user(c.id); }
  verdict operator()(change::delete_token& c) const {
    if (auto bad = token_owner(c.user_id))
      return bad;
    const auto* t = by_id(a.tokens, c.id);
    if (!t || t->user_id != c.user_id)
      return fail(404, "PAT: " + clip(c.id) + " not found");
    return std::nullopt;
  }
};

} // namespace

verdict prepare_change(const account& a, admin_change& c) {
  const auto* caller = by_id(a.users, c.caller);
  if (!caller || caller->blocked)
    return fail(401, "token invalid");
  return std::visit(preparer{a, *caller}, c.what);
}

bool moves_serial(const admin_change& c) {
  return std::visit(
      [](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        return !(
            std::is_same_v<T, change::create_setup_key> ||
            std::is_same_v<T, change::update_setup_key> ||
            std::is_same_v<T, change::delete_setup_key> || std::is_same_v<T, change::create_user> ||
            std::is_same_v<T, change::update_user> || std::is_same_v<T, change::delete_user> ||
            std::is_same_v<T, change::create_token> || std::is_same_v<T, change::delete_token> ||
            std::is_same_v<T, change::approve_user> || std::is_same_v<T, change::reject_user> ||
            std::is_same_v<T, change::dashboard_login>);
      },
      c.what);
}

problem not_found_problem(const admin_change& c) {
  struct namer {
    problem operator()(const change::save_group& x) const { return nf("group", x.g.id); }
    problem operator()(const change::delete_group& x) const { return nf("group", x.id); }
    problem operator()(const change::save_policy& x) const { return nf("policy", x.p.id); }
    problem operator()(const change::delete_policy& x) const { return nf("policy", x.id); }
    problem operator()(const change::save_route& x) const { return nf("route", x.r.id); }
    problem operator()(const change::delete_route& x) const { return nf("route", x.id); }
    problem operator()(const change::save_nameservers& x) const {
      return nf("nameserver group", x.g.id);
    }
    problem operator()(const change::delete_nameservers& x) const {
      return nf("nameserver group", x.id);
    }
    problem operator()(const change::dns_settings&) const { return account_gone(); }
    problem operator()(const change::settings& x) const {
      return {404, "account not found: " + clip(x.account_id)};
    }
    problem operator()(const change::update_peer& x) const {
      return {404, "peer not found: " + clip(x.id)};
    }
    problem operator()(const change::delete_peer& x) const {
      return {404, "peer not found: " + clip(x.id)};
    }
    problem operator()(const change::create_setup_key&) const { return account_gone(); }
    problem operator()(const change::update_setup_key& x) const { return nf("setup key", x.id); }
    problem operator()(const change::delete_setup_key& x) const { return nf("setup key", x.id); }
    problem operator()(const change::create_user&) const { return account_gone(); }
    problem operator()(const change::update_user& x) const { return nf("user", x.id); }
    problem operator()(const change::delete_user& x) const { return nf("user", x.id); }
    problem operator()(const change::create_token& x) const { return nf("user", x.user_id); }
    problem operator()(const change::delete_token& x) const { return nf("PAT", x.id); }
    problem operator()(const change::save_network& x) const { return nf("network", x.n.id); }
    problem operator()(const change::delete_network& x) const { return nf("network", x.id); }
    problem operator()(const change::save_resource& x) const {
      return nf("network resource", x.r.id);
    }
    problem operator()(const change::delete_resource& x) const {
      return nf("network resource", x.id);
    }
    problem operator()(const change::save_router& x) const { return nf("network router", x.r.id); }
    problem operator()(const change::delete_router& x) const { return nf("network router", x.id); }
    problem operator()(const change::save_posture_check& x) const {
      return nf("posture checks", x.c.id);
    }
    problem operator()(const change::delete_posture_check& x) const {
      return nf("posture checks", x.id);
    }
    problem operator()(const change::jwt_groups& x) const { return nf("user", x.user_id); }
    problem operator()(const change::approve_user& x) const { return nf("user", x.id); }
    problem operator()(const change::reject_user& x) const { return nf("user", x.id); }
    problem operator()(const change::dashboard_login& x) const { return nf("user", x.user_id); }
    problem operator()(const change::delete_account& x) const {
      return {404, "account not found: " + clip(x.account_id)};
    }

    static problem nf(const char* what, const std::string& id) {
      return {404, std::string(what) + ": " + clip(id) + " not found"};
    }
    static problem account_gone() { return {404, "account not found"}; }
  };
  return std::visit(namer{}, c.what);
}

} // namespace nbm::core
