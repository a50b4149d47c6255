#include "storage/change_store.hpp"

#include "core/networks.hpp"
#include "storage/account_store.hpp"
#include "storage/admin_store.hpp"
#include "storage/config_store.hpp"
#include "storage/encode.hpp"
#include "storage/network_store.hpp"

#include "crypto/crypto.hpp"

#include <nlohmann/json.hpp>

#include <soci/soci.h>

#include <algorithm>
#include <type_traits>

namespace nbm::storage {

namespace {

using parts = account_store;

struct committer {
  soci::session& sql;
  engine kind;
  const core::account& a;
  const std::string& caller;

  config_store cfg() const { return config_store(sql, kind); }
  admin_store admin() const { return admin_store(sql, kind); }

  static change_commit wrote(unsigned p, std::string id = {}) {
    change_commit out;
    out.parts = p;
    out.id = std::move(id);
    return out;
  }
  static change_commit gone() {
    change_commit out;
    out.found = false;
    return out;
  }
  static change_commit removed(bool found, unsigned p) { return found ? wrote(p) : gone(); }

  change_commit operator()(const core::change::save_group& c) const {
    return wrote(parts::part_groups, cfg().save_group(c.g).id);
  }
  change_commit operator()(const core::change::delete_group& c) const {
    return removed(cfg().delete_group(a.id, c.id).has_value(), parts::part_groups);
  }
  change_commit operator()(const core::change::save_policy& c) const {
    const auto p = config_store::as_saved(c.p); // the rules' ids are chosen here
    auto out = wrote(parts::part_policies, cfg().save_policy(p).id);
    for (const auto& x : p.rules)
      out.rule_ids.push_back(x.id);
    return out;
  }
  change_commit operator()(const core::change::delete_policy& c) const {
    return removed(cfg().delete_policy(a.id, c.id).has_value(), parts::part_policies);
  }
  change_commit operator()(const core::change::save_route& c) const {
    return wrote(parts::part_routes, cfg().save_route(c.r).id);
  }
  change_commit operator()(const core::change::delete_route& c) const {
    return removed(cfg().delete_route(a.id, c.id).has_value(), parts::part_routes);
  }
  change_commit operator()(const core::change::save_nameservers& c) const {
    return wrote(parts::part_nameservers, cfg().save_nameserver_group(c.g).id);
  }
  change_commit operator()(const core::change::delete_nameservers& c) const {
    return removed(cfg().delete_nameserver_group(a.id, c.id).has_value(), parts::part_nameservers);
  }
  change_commit operator()(const core::change::dns_settings& c) const {
    return removed(cfg().update_dns_settings(a.id, c.disabled_management_groups).has_value(),
                   parts::part_account);
  }
  change_commit operator()(const core::change::settings& c) const {
    return removed(cfg().update_settings(a.id, c.s).has_value(), parts::part_account);
  }
  change_commit operator()(const core::change::update_peer& c) const {
    return removed(admin().update_peer(c.result).has_value(), parts::part_peers);
  }
  change_commit operator()(const core::change::delete_peer& c) const {
    return removed(admin().delete_peer(a.id, c.id), parts::part_peers | parts::part_groups);
  }
  change_commit operator()(const core::change::create_setup_key& c) const {
    new_setup_key spec;
    spec.account_id = a.id;
    spec.name = c.name;
    spec.reusable = c.reusable;
    spec.expires_in_seconds = c.expires_in_seconds;
    spec.usage_limit = c.usage_limit;
    spec.auto_groups = c.auto_groups;
    spec.ephemeral = c.ephemeral;
    spec.allow_extra_dns_labels = c.allow_extra_dns_labels;
    auto [key, plain] = admin().insert_setup_key(spec);
    auto out = wrote(parts::part_principals, key.id);
    out.plain_key = std::move(plain);
    return out;
  }
  change_commit operator()(const core::change::update_setup_key& c) const {
    const core::setup_key* key = nullptr;
    for (const auto& k : a.setup_keys)
      if (k.id == c.id)
        key = &k;
    if (!key)
      return gone();
    // Both columns in one transaction.
    soci::transaction tr(sql);
    bool found = true;
    if (c.auto_groups != key->auto_groups)
      found = admin().update_setup_key_groups(a.id, c.id, c.auto_groups);
    if (found && c.revoked && !key->revoked)
      found = admin().revoke_setup_key(a.id, c.id);
    if (!found)
      return gone(); // rolled back
    tr.commit();
    return wrote(parts::part_principals, c.id);
  }
  change_commit operator()(const core::change::delete_setup_key& c) const {
    return removed(admin().delete_setup_key(a.id, c.id), parts::part_principals);
  }
  change_commit operator()(const core::change::create_user& c) const {
    core::user u;
    u.id = c.id;
    u.account_id = a.id;
    u.role = c.role;
    u.auto_groups = c.auto_groups;
    u.is_service_user = true;
    u.service_user_name = c.name;
    u.name = c.name;
    u.issued = "api";
    u.created_at = store_time();
    account_store(sql, kind).insert_user(u);
    return wrote(parts::part_principals, u.id);
  }
  change_commit operator()(const core::change::update_user& c) const {
    return removed(admin().update_user(c.result), parts::part_principals);
  }
  change_commit operator()(const core::change::delete_user& c) const {
    return removed(admin().delete_user(a.id, c.id), parts::part_principals);
  }
  change_commit operator()(const core::change::create_token& c) const {
    core::personal_access_token t;
    t.id = c.id;
    t.user_id = c.user_id;
    t.name = c.name;
    t.hashed_token = c.hashed_token;
    t.created_by = caller;
    t.created_at = store_time();
    t.expiration_date = store_time(c.expires_in_days * 86400);
    account_store(sql, kind).insert_token(t);
    return wrote(parts::part_principals, t.id);
  }
  change_commit operator()(const core::change::delete_token& c) const {
    return removed(admin().delete_token(c.user_id, c.id), parts::part_principals);
  }
  network_store nets() const { return network_store(sql, kind); }
  static constexpr unsigned net_parts = parts::part_networks | parts::part_groups;
  change_commit saved_as(std::string id, unsigned p) const {
    return id.empty() ? gone() : wrote(p, std::move(id));
  }
  change_commit operator()(const core::change::save_network& c) const {
    return saved_as(nets().save_network(c.n), parts::part_networks);
  }
  change_commit operator()(const core::change::delete_network& c) const {
    return removed(nets().delete_network(a.id, c.id, c.touched), net_parts);
  }
  change_commit operator()(const core::change::save_resource& c) const {
    auto r = c.r;
    auto touched = c.touched;
    if (r.id.empty()) { // a new resource: its id first, then the groups that take it
      r.id = detail::or_new_id("");
      touched = core::regroup_resource(a, {r.id, r.type}, c.groups);
    }
    auto out = saved_as(nets().save_resource(r, touched), net_parts);
    out.regrouped = std::move(touched);
    return out;
  }
  change_commit operator()(const core::change::delete_resource& c) const {
    return removed(nets().delete_resource(a.id, c.id, c.touched), net_parts);
  }
  change_commit operator()(const core::change::save_router& c) const {
    return saved_as(nets().save_router(c.r), parts::part_networks);
  }
  change_commit operator()(const core::change::delete_router& c) const {
    return removed(nets().delete_router(a.id, c.id), parts::part_networks);
  }
  change_commit operator()(const core::change::save_posture_check& c) const {
    return saved_as(nets().save_posture_check(c.c), parts::part_posture);
  }
  change_commit operator()(const core::change::delete_posture_check& c) const {
    return removed(nets().delete_posture_check(a.id, c.id), parts::part_posture);
  }
  change_commit operator()(const core::change::approve_user& c) const {
    int n = 0;
    sql << "UPDATE users SET blocked = " + std::string(kind == engine::postgres ? "false" : "0") +
               ", pending_approval = " + (kind == engine::postgres ? "false" : "0") +
               " WHERE id = :id AND account_id = :acc",
        soci::use(c.id, "id"), soci::use(a.id, "acc");
    sql << "SELECT COUNT(*) FROM users WHERE id = :id AND account_id = :acc", soci::use(c.id, "id"),
        soci::use(a.id, "acc"), soci::into(n);
    return n > 0 ? wrote(parts::part_principals, c.id) : gone();
  }
  change_commit operator()(const core::change::reject_user& c) const {
    return removed(admin().delete_user(a.id, c.id), parts::part_principals);
  }
  change_commit operator()(const core::change::dashboard_login& c) const {
    int n = 0;
    sql << std::string("UPDATE users SET last_login = ") +
               (kind == engine::postgres ? "CAST(:w AS timestamptz)" : ":w") +
               " WHERE id = :id AND account_id = :acc",
        soci::use(c.at, "w"), soci::use(c.user_id, "id"), soci::use(a.id, "acc");
    sql << "SELECT COUNT(*) FROM users WHERE id = :id AND account_id = :acc",
        soci::use(c.user_id, "id"), soci::use(a.id, "acc"), soci::into(n);
    return n > 0 ? wrote(parts::part_principals, c.user_id) : gone();
  }
  change_commit operator()(const core::change::delete_account&) const {
    return removed(admin().delete_account(a.id), parts::part_all);
  }
  // NetBird's syncJWTGroups, in one transaction: the new groups (issued "jwt"), the user's
  // auto-groups, and with propagation the user's peers in the groups added and out of the ones
  // removed; the serial moves by one.
  change_commit operator()(const core::change::jwt_groups& c) const {
    std::vector<std::string> peers;
    for (const auto& p : a.peers)
      if (p.user_id == c.user_id)
        peers.push_back(p.id);
    auto auto_groups = c.auto_groups;
    soci::transaction tr(sql);
    for (const auto& name : c.create) {
      const std::string id = crypto::random_id();
      core::group g;
      g.id = id;
      g.account_id = a.id;
      g.name = name;
      g.issued = "jwt";
      detail::insert_row(sql, kind, "groups", detail::group_row(g));
      auto_groups.push_back(id);
      if (c.propagate)
        for (const auto& pid : peers)
          detail::write_group_peer(sql, kind, a.id, id, pid);
    }
    if (c.propagate) {
      for (const auto& gid : c.add)
        for (const auto& pid : peers)
          detail::write_group_peer(sql, kind, a.id, gid, pid);
      for (const auto& gid : c.remove)
        for (const auto& pid : peers)
          sql << "DELETE FROM group_peers WHERE group_id = :g AND peer_id = :p",
              soci::use(gid, "g"), soci::use(pid, "p");
    }
    const std::string list = nlohmann::json(auto_groups).dump();
    int found = 0;
    sql << "UPDATE users SET auto_groups = :ag WHERE id = :id AND account_id = :acc",
        soci::use(list, "ag"), soci::use(c.user_id, "id"), soci::use(a.id, "acc");
    sql << "SELECT COUNT(*) FROM users WHERE id = :id AND account_id = :acc",
        soci::use(c.user_id, "id"), soci::use(a.id, "acc"), soci::into(found);
    if (found == 0)
      return gone(); // rolled back
    sql << "UPDATE accounts SET network_serial = network_serial + 1 WHERE id = :acc",
        soci::use(a.id, "acc");
    tr.commit();
    return wrote(parts::part_groups | parts::part_principals | parts::part_account, c.user_id);
  }
};

} // namespace

change_commit commit_change(soci::session& sql, engine kind, const core::account& a,
                            const core::admin_change& c) {
  auto out = std::visit(committer{sql, kind, a, c.caller}, c.what);
  if (!out.found)
    return out;
  // Committed: a failure from here on leaves serial_after 0, and the caller reads back.
  try {
    long long serial = 0;
    soci::indicator ind = soci::i_null;
    sql << "SELECT network_serial FROM accounts WHERE id = :acc", soci::use(a.id, "acc"),
        soci::into(serial, ind);
    out.serial_after = sql.got_data() && ind == soci::i_ok ? static_cast<std::uint64_t>(serial) : 0;
  } catch (const std::exception&) {
    out.serial_after = 0;
  }
  return out;
}

namespace {

// An object in a list load_parts reads in id order: the one of its id replaced, else inserted
// before the first with a greater id (byte order, as the read's ORDER BY).
template <class T>
void put_by_id(std::vector<T>& v, T x) {
  for (auto& y : v)
    if (y.id == x.id) {
      y = std::move(x);
      return;
    }
  const auto pos = std::find_if(v.begin(), v.end(), [&](const T& y) { return x.id < y.id; });
  v.insert(pos, std::move(x));
}

template <class T>
void erase_by_id(std::vector<T>& v, const std::string& id) {
  std::erase_if(v, [&](const T& y) { return y.id == id; });
}

struct applier {
  core::account& a;
  const change_commit& commit;

  // The groups whose resources column a network change rewrote (write_group_resources).
  void regroup(const std::vector<core::group>& touched) const {
    for (const auto& t : touched)
      for (auto& g : a.groups)
        if (g.id == t.id && g.account_id == t.account_id)
          g.resources = t.resources;
  }

  bool operator()(const core::change::save_group& c) const {
    auto g = c.g;
    g.id = commit.id;
    // group_peers: one row per member (its key), read back in peer id order.
    std::sort(g.peers.begin(), g.peers.end());
    g.peers.erase(std::unique(g.peers.begin(), g.peers.end()), g.peers.end());
    put_by_id(a.groups, std::move(g));
    return true;
  }
  bool operator()(const core::change::delete_group& c) const {
    erase_by_id(a.groups, c.id);
    return true;
  }
  bool operator()(const core::change::save_policy& c) const {
    if (commit.rule_ids.size() != c.p.rules.size())
      return false;
    auto p = c.p;
    p.id = commit.id;
    for (std::size_t i = 0; i < p.rules.size(); ++i) {
      p.rules[i].id = commit.rule_ids[i];
      p.rules[i].policy_id = p.id;
    }
    std::sort(p.rules.begin(), p.rules.end(),
              [](const core::policy_rule& x, const core::policy_rule& y) { return x.id < y.id; });
    put_by_id(a.policies, std::move(p));
    return true;
  }
  bool operator()(const core::change::delete_policy& c) const {
    erase_by_id(a.policies, c.id);
    return true;
  }
  bool operator()(const core::change::save_route& c) const {
    auto r = c.r;
    r.id = commit.id;
    put_by_id(a.routes, std::move(r));
    return true;
  }
  bool operator()(const core::change::delete_route& c) const {
    erase_by_id(a.routes, c.id);
    return true;
  }
  bool operator()(const core::change::save_nameservers& c) const {
    auto g = c.g;
    g.id = commit.id;
    put_by_id(a.nameserver_groups, std::move(g));
    return true;
  }
  bool operator()(const core::change::delete_nameservers& c) const {
    erase_by_id(a.nameserver_groups, c.id);
    return true;
  }
  bool operator()(const core::change::dns_settings& c) const {
    a.dns_disabled_management_groups = c.disabled_management_groups;
    return true;
  }
  bool operator()(const core::change::settings& c) const {
    a.settings = c.s; // update_settings writes every settings_* column
    return true;
  }
  bool operator()(const core::change::update_peer& c) const {
    for (auto& p : a.peers)
      if (p.id == c.result.id) {
        // The columns admin_store::update_peer writes; the session status stays as it is.
        p.name = c.result.name;
        p.dns_label = c.result.dns_label;
        p.ssh_enabled = c.result.ssh_enabled;
        p.login_expiration_enabled = c.result.login_expiration_enabled;
        p.inactivity_expiration_enabled = c.result.inactivity_expiration_enabled;
        p.status.requires_approval = c.result.status.requires_approval;
      }
    return true;
  }
  bool operator()(const core::change::delete_peer& c) const {
    erase_by_id(a.peers, c.id);
    for (auto& g : a.groups)
      std::erase(g.peers, c.id);
    return true;
  }
  bool operator()(const core::change::save_network& c) const {
    auto n = c.n;
    n.id = commit.id;
    put_by_id(a.networks, std::move(n));
    return true;
  }
  bool operator()(const core::change::delete_network& c) const {
    erase_by_id(a.networks, c.id);
    std::erase_if(a.network_resources,
                  [&](const core::network_resource& r) { return r.network_id == c.id; });
    std::erase_if(a.network_routers,
                  [&](const core::network_router& r) { return r.network_id == c.id; });
    regroup(c.touched);
    return true;
  }
  bool operator()(const core::change::save_resource& c) const {
    auto r = c.r;
    r.id = commit.id;
    put_by_id(a.network_resources, std::move(r));
    regroup(commit.regrouped);
    return true;
  }
  bool operator()(const core::change::delete_resource& c) const {
    erase_by_id(a.network_resources, c.id);
    regroup(c.touched);
    return true;
  }
  bool operator()(const core::change::save_router& c) const {
    auto r = c.r;
    r.id = commit.id;
    put_by_id(a.network_routers, std::move(r));
    return true;
  }
  bool operator()(const core::change::delete_router& c) const {
    erase_by_id(a.network_routers, c.id);
    return true;
  }
  bool operator()(const core::change::save_posture_check& c) const {
    auto pc = c.c;
    pc.id = commit.id;
    put_by_id(a.posture_checks, std::move(pc));
    return true;
  }
  bool operator()(const core::change::delete_posture_check& c) const {
    erase_by_id(a.posture_checks, c.id);
    return true;
  }
  // Users, tokens and setup keys (times and keys made by the store), JWT groups (ids made in the
  // transaction), a deleted account: read back.
  template <class Other>
  bool operator()(const Other&) const {
    return false;
  }
};

} // namespace

bool apply_commit(core::account& a, const core::admin_change& c, const change_commit& commit) {
  if (!commit.found)
    return false;
  return std::visit(applier{a, commit}, c.what);
}

} // namespace nbm::storage
