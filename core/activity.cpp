#include "core/activity.hpp"

#include "core/registration.hpp"

#include <algorithm>
#include <iterator>
#include <set>

namespace nbm::core::activity {

namespace {

struct named {
  int activity;
  const char* message;
  const char* code;
};

// NetBird's activityMap (management/server/activity/codes.go), by value.
constexpr named table[] = {
    {0, "Peer added", "peer.user.add"},
    {1, "Peer added", "peer.setupkey.add"},
    {2, "User joined", "user.join"},
    {3, "User invited", "user.invite"},
    {4, "Account created", "account.create"},
    {5, "Peer deleted", "user.peer.delete"},
    {6, "Rule added", "rule.add"},
    {7, "Rule updated", "rule.update"},
    {8, "Rule deleted", "rule.delete"},
    {9, "Policy added", "policy.add"},
    {10, "Policy updated", "policy.update"},
    {11, "Policy deleted", "policy.delete"},
    {12, "Setup key created", "setupkey.add"},
    {13, "Setup key updated", "setupkey.update"},
    {14, "Setup key revoked", "setupkey.revoke"},
    {15, "Setup key overused", "setupkey.overuse"},
    {16, "Group created", "group.add"},
    {17, "Group updated", "group.update"},
    {18, "Group added to peer", "peer.group.add"},
    {19, "Group removed from peer", "peer.group.delete"},
    {20, "Group added to user", "user.group.add"},
    {21, "Group removed from user", "user.group.delete"},
    {22, "User role updated", "user.role.update"},
    {23, "Group added to setup key", "setupkey.group.add"},
    {24, "Group removed from user setup key", "setupkey.group.delete"},
    {25, "Group added to disabled management DNS setting",
     "dns.setting.disabled.management.group.add"},
    {26, "Group removed from disabled management DNS setting",
     "dns.setting.disabled.management.group.delete"},
    {27, "Route created", "route.add"},
    {28, "Route deleted", "route.delete"},
    {29, "Route updated", "route.update"},
    {30, "Peer SSH server enabled", "peer.ssh.enable"},
    {31, "Peer SSH server disabled", "peer.ssh.disable"},
    {32, "Peer renamed", "peer.rename"},
    {33, "Peer login expiration enabled", "peer.login.expiration.enable"},
    {34, "Peer login expiration disabled", "peer.login.expiration.disable"},
    {35, "Nameserver group created", "nameserver.group.add"},
    {36, "Nameserver group deleted", "nameserver.group.delete"},
    {37, "Nameserver group updated", "nameserver.group.update"},
    {38, "Account peer login expiration enabled", "account.setting.peer.login.expiration.enable"},
    {39, "Account peer login expiration disabled", "account.setting.peer.login.expiration.disable"},
    {40, "Account peer login expiration duration updated",
     "account.setting.peer.login.expiration.update"},
    {41, "Personal access token created", "personal.access.token.create"},
    {42, "Personal access token deleted", "personal.access.token.delete"},
    {43, "Service user created", "service.user.create"},
    {44, "Service user deleted", "service.user.delete"},
    {45, "User blocked", "user.block"},
    {46, "User unblocked", "user.unblock"},
    {47, "User deleted", "user.delete"},
    {48, "Group deleted", "group.delete"},
    {49, "User logged in peer", "user.peer.login"},
    {50, "Peer login expired", "peer.login.expire"},
    {51, "Dashboard login", "dashboard.login"},
    {52, "Integration created", "integration.create"},
    {53, "Integration updated", "integration.update"},
    {54, "Integration deleted", "integration.delete"},
    {55, "Account peer approval enabled", "account.setting.peer.approval.enable"},
    {56, "Account peer approval disabled", "account.setting.peer.approval.disable"},
    {57, "Peer approved", "peer.approve"},
    {58, "Peer approval revoked", "peer.approval.revoke"},
    {59, "Transferred owner role", "transferred.owner.role"},
    {60, "Posture check created", "posture.check.create"},
    {61, "Posture check updated", "posture.check.update"},
    {62, "Posture check deleted", "posture.check.delete"},
    {63, "Peer inactivity expiration enabled", "peer.inactivity.expiration.enable"},
    {64, "Peer inactivity expiration disabled", "peer.inactivity.expiration.disable"},
    {65, "Account peer inactivity expiration enabled", "account.peer.inactivity.expiration.enable"},
    {66, "Account peer inactivity expiration disabled",
     "account.peer.inactivity.expiration.disable"},
    {67, "Account peer inactivity expiration duration updated",
     "account.peer.inactivity.expiration.update"},
    {68, "Setup key deleted", "setupkey.delete"},
    {69, "User group propagation enabled", "account.setting.group.propagation.enable"},
    {70, "User group propagation disabled", "account.setting.group.propagation.disable"},
    {71, "Account routing peer DNS resolution enabled",
     "account.setting.routing.peer.dns.resolution.enable"},
    {72, "Account routing peer DNS resolution disabled",
     "account.setting.routing.peer.dns.resolution.disable"},
    {73, "Network created", "network.create"},
    {74, "Network updated", "network.update"},
    {75, "Network deleted", "network.delete"},
    {76, "Network resource created", "network.resource.create"},
    {77, "Network resource updated", "network.resource.update"},
    {78, "Network resource deleted", "network.resource.delete"},
    {79, "Network router created", "network.router.create"},
    {80, "Network router updated", "network.router.update"},
    {81, "Network router deleted", "network.router.delete"},
    {82, "Resource added to group", "resource.group.add"},
    {83, "Resource removed from group", "resource.group.delete"},
    {84, "Account DNS domain updated", "account.dns.domain.update"},
    {85, "Account lazy connection enabled", "account.setting.lazy.connection.enable"},
    {86, "Account lazy connection disabled", "account.setting.lazy.connection.disable"},
    {87, "Account network range updated", "account.network.range.update"},
    {88, "Peer IP updated", "peer.ip.update"},
    {89, "User approved", "user.approve"},
    {90, "User rejected", "user.reject"},
    {91, "User created", "user.create"},
    {92, "Account AutoUpdate Version updated", "account.settings.auto.version.update"},
    {93, "Identity provider created", "identityprovider.create"},
    {94, "Identity provider updated", "identityprovider.update"},
    {95, "Identity provider deleted", "identityprovider.delete"},
    {96, "DNS zone created", "dns.zone.create"},
    {97, "DNS zone updated", "dns.zone.update"},
    {98, "DNS zone deleted", "dns.zone.delete"},
    {99, "DNS zone record created", "dns.zone.record.create"},
    {100, "DNS zone record updated", "dns.zone.record.update"},
    {101, "DNS zone record deleted", "dns.zone.record.delete"},
    {102, "Create Job for peer", "peer.job.create"},
    {103, "User password changed", "user.password.change"},
    {104, "User invite link created", "user.invite.link.create"},
    {105, "User invite link accepted", "user.invite.link.accept"},
    {106, "User invite link regenerated", "user.invite.link.regenerate"},
    {107, "User invite link deleted", "user.invite.link.delete"},
    {108, "Service created", "service.create"},
    {109, "Service updated", "service.update"},
    {110, "Service deleted", "service.delete"},
    {111, "Peer exposed service", "service.peer.expose"},
    {112, "Peer unexposed service", "service.peer.unexpose"},
    {113, "Peer exposed service expired", "service.peer.expose.expire"},
    {114, "Account peer expose enabled", "account.setting.peer.expose.enable"},
    {115, "Account peer expose disabled", "account.setting.peer.expose.disable"},
    {116, "Account auto-update always enabled", "account.setting.auto.update.always.enable"},
    {117, "Account auto-update always disabled", "account.setting.auto.update.always.disable"},
    {118, "Domain added", "domain.add"},
    {119, "Domain deleted", "domain.delete"},
    {120, "Domain validated", "domain.validate"},
    {121, "Account IPv6 overlay enabled", "account.setting.ipv6.enable"},
    {122, "Account IPv6 overlay disabled", "account.setting.ipv6.disable"},
    {123, "Account local MFA enabled", "account.setting.local.mfa.enable"},
    {124, "Account local MFA disabled", "account.setting.local.mfa.disable"},
    {125, "User extended peer session", "user.peer.session.extend"},
    {126, "Agent Network provider created", "agent_network.provider.create"},
    {127, "Agent Network provider updated", "agent_network.provider.update"},
    {128, "Agent Network provider deleted", "agent_network.provider.delete"},
    {129, "Agent Network policy created", "agent_network.policy.create"},
    {130, "Agent Network policy updated", "agent_network.policy.update"},
    {131, "Agent Network policy deleted", "agent_network.policy.delete"},
    {132, "Agent Network guardrail created", "agent_network.guardrail.create"},
    {133, "Agent Network guardrail updated", "agent_network.guardrail.update"},
    {134, "Agent Network guardrail deleted", "agent_network.guardrail.delete"},
    {135, "Agent Network budget rule created", "agent_network.budget_rule.create"},
    {136, "Agent Network budget rule updated", "agent_network.budget_rule.update"},
    {137, "Agent Network budget rule deleted", "agent_network.budget_rule.delete"},
    {139, "Agent Network settings updated", "agent_network.settings.update"},
    {140, "Account metrics push enabled", "account.setting.metrics.push.enable"},
    {141, "Account metrics push disabled", "account.setting.metrics.push.disable"},
    {142, "Agent Network settings deleted", "agent_network.settings.delete"},
    {99999, "Account deleted", "account.delete"},
};

const named* find(int activity) {
  for (const auto& n : table)
    if (n.activity == activity)
      return &n;
  return nullptr;
}

template <class T>
const T* by_id(const std::vector<T>& list, const std::string& id) {
  for (const auto& x : list)
    if (x.id == id)
      return &x;
  return nullptr;
}

// The elements of `a` not in `b`, in `a`'s order (NetBird's util.Difference).
std::vector<std::string> difference(const std::vector<std::string>& a,
                                    const std::vector<std::string>& b) {
  const std::set<std::string> in_b(b.begin(), b.end());
  std::vector<std::string> out;
  for (const auto& x : a)
    if (!in_b.count(x))
      out.push_back(x);
  return out;
}

std::string fqdn(const peer& p, const std::string& dns_domain) {
  return dns_domain.empty() ? p.dns_label : p.dns_label + "." + dns_domain;
}

// NetBird's Peer.EventMeta.
meta peer_meta_of(const peer& p, const std::string& dns_domain) {
  return {{"name", p.name},
          {"fqdn", fqdn(p, dns_domain)},
          {"ip", p.ip},
          {"created_at", p.created_at.value_or("")},
          {"location_city_name", p.location.city_name},
          {"location_country_code", p.location.country_code},
          {"location_geo_name_id", static_cast<std::int64_t>(p.location.geo_name_id)},
          {"location_connection_ip", p.location.connection_ip}};
}

// NetBird's Route.EventMeta (peer_groups as text: its %v of a list).
meta route_meta(const route& r) {
  std::string domains, groups = "[";
  for (std::size_t i = 0; i < r.domains.size(); ++i)
    domains += (i ? ", " : "") + r.domains[i];
  for (std::size_t i = 0; i < r.peer_groups.size(); ++i)
    groups += (i ? " " : "") + r.peer_groups[i];
  groups += "]";
  return {{"name", r.net_id},
          {"network_range", r.network_type == 3 ? std::string("invalid Prefix") : r.network},
          {"domains", domains},
          {"peer_id", r.peer},
          {"peer_groups", groups}};
}

meta setup_key_meta(const setup_key& k) {
  return {{"name", k.name}, {"type", k.type}, {"key", k.key_secret}};
}

struct builder {
  const admin_change& c;
  const account& before;
  const account& after;
  const std::string& new_id;
  const std::string& dns_domain;
  std::vector<event> out;

  void add(int activity, std::string target, meta m = {}) {
    event e;
    e.activity = activity;
    e.initiator_id = c.caller;
    e.target_id = std::move(target);
    e.account_id = after.id.empty() ? before.id : after.id; // a deleted account: `after` is empty
    e.m = std::move(m);
    out.push_back(std::move(e));
  }

  void group_peer_events(const group& g, const std::vector<std::string>& added,
                         const std::vector<std::string>& removed) {
    for (const auto* list : {&added, &removed})
      for (const auto& pid : *list) {
        const peer* p = by_id(after.peers, pid);
        if (!p)
          p = by_id(before.peers, pid);
        if (!p)
          continue;
        add(list == &added ? group_added_to_peer : group_removed_from_peer, p->id,
            {{"group", g.name},
             {"group_id", g.id},
             {"peer_ip", p->ip},
             {"peer_fqdn", fqdn(*p, dns_domain)}});
      }
  }

  void groups_of(int added_code, int removed_code, const std::string& target,
                 const std::vector<std::string>& old_groups,
                 const std::vector<std::string>& new_groups, bool with_name) {
    for (const auto& gid : difference(old_groups, new_groups)) {
      const group* g = by_id(after.groups, gid);
      if (!g)
        g = by_id(before.groups, gid);
      meta m = {{"group", g ? g->name : std::string()}, {"group_id", gid}};
      if (with_name)
        m.insert(m.begin(), {"setupkey", by_id(after.setup_keys, target)
                                             ? by_id(after.setup_keys, target)->name
                                             : std::string()});
      add(removed_code, target, std::move(m));
    }
    for (const auto& gid : difference(new_groups, old_groups)) {
      const group* g = by_id(after.groups, gid);
      meta m = {{"group", g ? g->name : std::string()}, {"group_id", gid}};
      if (with_name)
        m.insert(m.begin(), {"setupkey", by_id(after.setup_keys, target)
                                             ? by_id(after.setup_keys, target)->name
                                             : std::string()});
      add(added_code, target, std::move(m));
    }
  }

  void operator()(const change::save_group& x) {
    const auto id = x.g.id.empty() ? new_id : x.g.id;
    const group* now = by_id(after.groups, id);
    if (!now)
      return;
    if (const group* old = by_id(before.groups, id)) {
      if (old->name != now->name)
        add(group_updated, id, {{"old_name", old->name}, {"new_name", now->name}});
      group_peer_events(*now, difference(now->peers, old->peers),
                        difference(old->peers, now->peers));
    } else {
      add(group_created, id, {{"name", now->name}});
      group_peer_events(*now, now->peers, {});
    }
  }
  void operator()(const change::delete_group& x) {
    if (const group* g = by_id(before.groups, x.id))
      add(group_deleted, g->id, {{"name", g->name}});
  }
  void operator()(const change::save_policy& x) {
    const auto id = x.p.id.empty() ? new_id : x.p.id;
    if (const policy* p = by_id(after.policies, id))
      add(by_id(before.policies, id) ? policy_updated : policy_added, id, {{"name", p->name}});
  }
  void operator()(const change::delete_policy& x) {
    if (const policy* p = by_id(before.policies, x.id))
      add(policy_removed, p->id, {{"name", p->name}});
  }
  void operator()(const change::save_route& x) {
    const auto id = x.r.id.empty() ? new_id : x.r.id;
    if (const route* r = by_id(after.routes, id))
      add(by_id(before.routes, id) ? route_updated : route_created, id, route_meta(*r));
  }
  void operator()(const change::delete_route& x) {
    if (const route* r = by_id(before.routes, x.id))
      add(route_removed, r->id, route_meta(*r));
  }
  void operator()(const change::save_nameservers& x) {
    const auto id = x.g.id.empty() ? new_id : x.g.id;
    if (const nameserver_group* g = by_id(after.nameserver_groups, id))
      add(by_id(before.nameserver_groups, id) ? nameserver_group_updated : nameserver_group_created,
          id, {{"name", g->name}});
  }
  void operator()(const change::delete_nameservers& x) {
    if (const nameserver_group* g = by_id(before.nameserver_groups, x.id))
      add(nameserver_group_deleted, g->id, {{"name", g->name}});
  }
  void operator()(const change::dns_settings& x) {
    // NetBird's SaveDNSSettings: added groups, then removed ones; the account is the target.
    for (const auto& gid :
         difference(x.disabled_management_groups, before.dns_disabled_management_groups)) {
      const group* g = by_id(after.groups, gid);
      add(group_added_to_disabled_management_groups, after.id,
          {{"group", g ? g->name : std::string()}, {"group_id", gid}});
    }
    for (const auto& gid :
         difference(before.dns_disabled_management_groups, x.disabled_management_groups)) {
      const group* g = by_id(after.groups, gid);
      add(group_removed_from_disabled_management_groups, after.id,
          {{"group", g ? g->name : std::string()}, {"group_id", gid}});
    }
  }
  void operator()(const change::settings&) {
    const auto& o = before.settings;
    const auto& n = after.settings;
    const auto& id = after.id;
    if (o.routing_peer_dns_resolution_enabled != n.routing_peer_dns_resolution_enabled)
      add(n.routing_peer_dns_resolution_enabled ? account_routing_peer_dns_resolution_enabled
                                                : account_routing_peer_dns_resolution_disabled,
          id);
    if (o.lazy_connection_enabled != n.lazy_connection_enabled)
      add(n.lazy_connection_enabled ? account_lazy_connection_enabled
                                    : account_lazy_connection_disabled,
          id);
    if (o.peer_login_expiration_enabled != n.peer_login_expiration_enabled)
      add(n.peer_login_expiration_enabled ? account_peer_login_expiration_enabled
                                          : account_peer_login_expiration_disabled,
          id);
    if (o.peer_login_expiration_ns != n.peer_login_expiration_ns)
      add(account_peer_login_expiration_duration_updated, id);
    if (o.groups_propagation_enabled != n.groups_propagation_enabled)
      add(n.groups_propagation_enabled ? user_group_propagation_enabled
                                       : user_group_propagation_disabled,
          id);
    if (n.peer_inactivity_expiration_enabled) {
      if (o.peer_inactivity_expiration_ns != n.peer_inactivity_expiration_ns)
        add(account_peer_inactivity_expiration_duration_updated, id);
    } else if (o.peer_inactivity_expiration_enabled != n.peer_inactivity_expiration_enabled) {
      add(account_peer_inactivity_expiration_disabled, id);
    }
    if (o.dns_domain != n.dns_domain)
      add(account_dns_domain_updated, id,
          {{"old_dns_domain", o.dns_domain}, {"new_dns_domain", n.dns_domain}});
  }
  void operator()(const change::update_peer& x) {
    const peer* old = by_id(before.peers, x.id);
    const peer* p = by_id(after.peers, x.id);
    if (!old || !p)
      return;
    const auto m = peer_meta_of(*p, dns_domain);
    if (old->ssh_enabled != p->ssh_enabled)
      add(p->ssh_enabled ? peer_ssh_enabled : peer_ssh_disabled, p->ip, m);
    if (old->dns_label != p->dns_label || old->name != p->name)
      add(peer_renamed, p->id, m);
    if (old->login_expiration_enabled != p->login_expiration_enabled)
      add(p->login_expiration_enabled ? peer_login_expiration_enabled
                                      : peer_login_expiration_disabled,
          p->ip, m);
    if (old->inactivity_expiration_enabled != p->inactivity_expiration_enabled)
      add(p->inactivity_expiration_enabled ? peer_inactivity_expiration_enabled
                                           : peer_inactivity_expiration_disabled,
          p->ip, m);
    if (old->status.requires_approval && !p->status.requires_approval)
      add(peer_approved, p->id, m);
  }
  void operator()(const change::delete_peer& x) {
    if (const peer* p = by_id(before.peers, x.id))
      add(peer_removed_by_user, p->id, peer_meta_of(*p, dns_domain));
  }
  void operator()(const change::create_setup_key&) {
    if (const setup_key* k = by_id(after.setup_keys, new_id))
      add(setup_key_created, k->id, setup_key_meta(*k));
  }
  void operator()(const change::update_setup_key& x) {
    const setup_key* old = by_id(before.setup_keys, x.id);
    const setup_key* k = by_id(after.setup_keys, x.id);
    if (!old || !k)
      return;
    if (!old->revoked && k->revoked)
      add(setup_key_revoked, k->id, setup_key_meta(*k));
    groups_of(group_added_to_setup_key, group_removed_from_setup_key, k->id, old->auto_groups,
              k->auto_groups, true);
  }
  void operator()(const change::delete_setup_key& x) {
    if (const setup_key* k = by_id(before.setup_keys, x.id))
      add(setup_key_deleted, k->id, setup_key_meta(*k));
  }
  void operator()(const change::create_user& x) {
    const auto id = new_id.empty() ? x.id : new_id;
    if (x.is_service_user)
      add(service_user_created, id, {{"name", x.name}});
    else
      add(user_created, id);
  }
  void operator()(const change::update_user& x) {
    const user* old = by_id(before.users, x.id);
    const user* u = by_id(after.users, x.id);
    if (!old || !u)
      return;
    if (old->blocked != u->blocked)
      add(u->blocked ? user_blocked : user_unblocked, u->id);
    if (old->role != u->role) {
      if (u->role == "owner")
        add(transferred_owner_role, u->id);
      else
        add(user_role_updated, u->id, {{"role", u->role}});
    }
    groups_of(group_added_to_user, group_removed_from_user, u->id, old->auto_groups, u->auto_groups,
              false);
  }
  void operator()(const change::delete_user& x) {
    const user* u = by_id(before.users, x.id);
    if (!u)
      return;
    if (u->is_service_user)
      add(service_user_deleted, u->id,
          {{"name", u->service_user_name}, {"created_at", u->created_at.value_or("")}});
    else
      add(user_deleted, u->id,
          {{"name", u->name},
           {"email", u->email},
           {"created_at", u->created_at.value_or("")},
           {"issued", u->issued}});
  }
  void operator()(const change::create_token& x) {
    const user* u = by_id(after.users, x.user_id);
    add(personal_access_token_created, x.user_id,
        {{"name", x.name},
         {"is_service_user", u && u->is_service_user},
         {"user_name", u ? u->service_user_name : std::string()}});
  }
  void operator()(const change::delete_token& x) {
    const user* u = by_id(before.users, x.user_id);
    std::string name;
    for (const auto& t : before.tokens)
      if (t.id == x.id)
        name = t.name;
    add(personal_access_token_deleted, x.user_id,
        {{"name", name},
         {"is_service_user", u && u->is_service_user},
         {"user_name", u ? u->service_user_name : std::string()}});
  }
  void operator()(const change::save_posture_check& x) {
    const auto id = x.c.id.empty() ? new_id : x.c.id;
    if (const posture_check* c = by_id(after.posture_checks, id))
      add(by_id(before.posture_checks, id) ? posture_check_updated : posture_check_created, id,
          {{"name", c->name}});
  }
  void operator()(const change::delete_posture_check& x) {
    if (const posture_check* c = by_id(before.posture_checks, x.id))
      add(posture_check_deleted, c->id, {{"name", c->name}});
  }
  void operator()(const change::approve_user& x) { add(user_approved, x.id); }
  // NetBird's LastDashboardLoginChanged: a newer login of a user who had logged in before.
  void operator()(const change::dashboard_login& x) {
    const user* old = by_id(before.users, x.user_id);
    if (!old || !old->last_login)
      return;
    const auto was = parse_store_time(*old->last_login);
    const auto now = parse_store_time(x.at);
    if (was && now && *now > *was)
      add(dashboard_login, x.user_id, {{"timestamp", x.as_given}});
  }
  // NetBird's DeleteAccount: every other user first (a service user ServiceUserDeleted; a regular
  // user its peers, each PeerRemovedByUser with that user as initiator, then UserDeleted), then
  // the owner who asks, then AccountDeleted.
  void delete_user_and_peers(const user& u) {
    if (u.is_service_user) {
      add(service_user_deleted, u.id,
          {{"name", u.service_user_name}, {"created_at", u.created_at.value_or("")}});
      return;
    }
    for (const auto& p : before.peers)
      if (p.user_id == u.id) {
        add(peer_removed_by_user, p.id, peer_meta_of(p, dns_domain));
        out.back().initiator_id = u.id;
      }
    operator()(change::delete_user{u.id});
  }
  void operator()(const change::delete_account&) {
    for (const auto& u : before.users)
      if (u.id != c.caller)
        delete_user_and_peers(u);
    if (const user* me = by_id(before.users, c.caller))
      delete_user_and_peers(*me);
    add(account_deleted, before.id,
        {{"account_id", before.id},
         {"domain", before.domain},
         {"created_at", before.created_at.value_or("")}});
  }
  void operator()(const change::reject_user& x) {
    // NetBird's RejectUser deletes the user (UserDeleted), then records the rejection.
    operator()(change::delete_user{x.id});
    add(user_rejected, x.id);
  }
  void operator()(const change::jwt_groups& x) {
    // NetBird's syncJWTGroups: the user as initiator and target, added groups first.
    // A user who joined a moment ago may be missing from `before`: it had no groups then.
    const user none;
    const user* old = by_id(before.users, x.user_id);
    const user* u = by_id(after.users, x.user_id);
    if (!u)
      return;
    if (!old)
      old = &none;
    const auto one = [&](int code, const std::string& gid) {
      const group* g = by_id(after.groups, gid);
      if (!g)
        g = by_id(before.groups, gid);
      if (!g)
        return;
      add(code, u->id,
          {{"group", g->name},
           {"group_id", g->id},
           {"is_service_user", u->is_service_user},
           {"user_name", u->service_user_name}});
    };
    for (const auto& gid : difference(u->auto_groups, old->auto_groups))
      one(group_added_to_user, gid);
    for (const auto& gid : difference(old->auto_groups, u->auto_groups))
      one(group_removed_from_user, gid);
  }
  template <class Other>
  void operator()(const Other&) {} // kinds without an activity of their own
};

} // namespace

meta peer_event_meta(const peer& p, const std::string& dns_domain) {
  return peer_meta_of(p, dns_domain);
}

const char* message(int activity) {
  const auto* n = find(activity);
  return n ? n->message : "UNKNOWN_ACTIVITY";
}

const char* string_code(int activity) {
  const auto* n = find(activity);
  return n ? n->code : "UNKNOWN_ACTIVITY";
}

std::vector<event> events_of(const admin_change& c, const account& before, const account& after,
                             const std::string& new_id, const std::string& dns_domain) {
  builder b{c, before, after, new_id, dns_domain, {}};
  std::visit(b, c.what);
  return std::move(b.out);
}

namespace {

template <class T>
bool contains(const std::vector<T>& list, const std::string& id) {
  return by_id(list, id) != nullptr;
}

} // namespace

std::vector<event> events_of_diff(const account& before, const account& after,
                                  const std::string& initiator, const std::string& dns_domain) {
  std::vector<event> out;
  const auto run = [&](change_kind what, const std::string& new_id = {}) {
    admin_change c{initiator, std::move(what)};
    auto evs = events_of(c, before, after, new_id, dns_domain);
    out.insert(out.end(), std::make_move_iterator(evs.begin()), std::make_move_iterator(evs.end()));
  };
  for (const auto& g : after.groups) {
    const group* old = by_id(before.groups, g.id);
    if (!old || !(*old == g))
      run(change::save_group{g});
  }
  for (const auto& g : before.groups)
    if (!contains(after.groups, g.id))
      run(change::delete_group{g.id});
  for (const auto& p : after.policies) {
    const policy* old = by_id(before.policies, p.id);
    if (!old || !(*old == p))
      run(change::save_policy{p});
  }
  for (const auto& p : before.policies)
    if (!contains(after.policies, p.id))
      run(change::delete_policy{p.id});
  for (const auto& r : after.routes) {
    const route* old = by_id(before.routes, r.id);
    if (!old || !(*old == r))
      run(change::save_route{r});
  }
  for (const auto& r : before.routes)
    if (!contains(after.routes, r.id))
      run(change::delete_route{r.id});
  for (const auto& g : after.nameserver_groups) {
    const nameserver_group* old = by_id(before.nameserver_groups, g.id);
    if (!old || !(*old == g))
      run(change::save_nameservers{g});
  }
  for (const auto& g : before.nameserver_groups)
    if (!contains(after.nameserver_groups, g.id))
      run(change::delete_nameservers{g.id});
  for (const auto& k : after.setup_keys) {
    const setup_key* old = by_id(before.setup_keys, k.id);
    if (!old)
      run(change::create_setup_key{}, k.id);
    else if (!(*old == k))
      run(change::update_setup_key{k.id, k.revoked, k.auto_groups});
  }
  for (const auto& k : before.setup_keys)
    if (!contains(after.setup_keys, k.id))
      run(change::delete_setup_key{k.id});
  for (const auto& t : after.tokens)
    if (!contains(before.tokens, t.id))
      run(change::create_token{t.user_id, t.id, t.name, {}, 0});
  for (const auto& t : before.tokens)
    if (!contains(after.tokens, t.id))
      run(change::delete_token{t.user_id, t.id});
  if (!(before.settings == after.settings))
    run(change::settings{after.id, after.settings});
  if (before.dns_disabled_management_groups != after.dns_disabled_management_groups)
    run(change::dns_settings{after.dns_disabled_management_groups});
  return out;
}

} // namespace nbm::core::activity
