#include "server/admin.hpp"

#include "core/activity.hpp"
#include "core/cluster_note.hpp"
#include "core/validate.hpp"
#include "crypto/crypto.hpp"
#include "server/run.hpp"
#include "storage/account_store.hpp"
#include "storage/admin_store.hpp"
#include "storage/config_store.hpp"
#include "storage/event_store.hpp"
#include "storage/notify_link.hpp"
#include "storage/schema.hpp"
#include "storage/store_info.hpp"

#include <arpa/inet.h>
#include <soci/soci.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <set>
#include <stdexcept>

namespace nbm::server {

namespace {

// Input the admin must correct: printed as "Error: <message>", exit code 1, nothing written.
struct bad_input : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& x : v)
    out += (out.empty() ? "" : ",") + x;
  return out;
}

const char* yes_no(bool b) {
  return b ? "true" : "false";
}

bool listed(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A decimal in [lo, hi] without sign or leading zeros; nullopt otherwise.
std::optional<long> small_number(const std::string& s, long lo, long hi) {
  if (!all_digits(s) || s.size() > 5 || (s.size() > 1 && s[0] == '0'))
    return std::nullopt;
  const long v = std::stol(s);
  return v >= lo && v <= hi ? std::optional<long>(v) : std::nullopt;
}

const core::group* find_group(const core::account& a, const std::string& id) {
  for (const auto& g : a.groups)
    if (g.id == id)
      return &g;
  return nullptr;
}

core::account load_account(storage::account_store& accounts, const std::string& id) {
  auto a = accounts.load_account(id);
  if (!a)
    throw bad_input("no account " + id);
  return *a;
}

// --- objects by id or name ---------------------------------------------------------------

// `text` as an object of `items`: its id when some item has that id, else the id of the one
// item one of whose names (names_of) is `text`; an unknown `text` is returned as given (the
// validation that follows says it is not found); a name several items share is refused.
template <class T, class Names>
std::string resolve_ref(const std::vector<T>& items, const std::string& text, const char* what,
                        const std::string& flag, Names names_of) {
  for (const auto& i : items)
    if (i.id == text)
      return text;
  std::vector<std::string> ids;
  for (const auto& i : items)
    for (const std::string& n : names_of(i))
      if (!n.empty() && n == text) {
        if (!listed(ids, i.id))
          ids.push_back(i.id);
        break;
      }
  if (ids.size() > 1)
    throw bad_input(flag + ": " + what + " name " + text + " is ambiguous (" + joined(ids) +
                    "); give the id");
  return ids.empty() ? text : ids.front();
}

std::string group_ref(const core::account& a, const std::string& text, const std::string& flag) {
  return resolve_ref(a.groups, text, "group", flag,
                     [](const core::group& g) { return std::vector<std::string>{g.name}; });
}

std::vector<std::string> group_refs(const core::account& a, const std::vector<std::string>& list,
                                    const std::string& flag) {
  std::vector<std::string> out;
  for (const auto& x : list)
    out.push_back(group_ref(a, x, flag));
  return out;
}

// A peer by id, name or DNS label.
std::string peer_ref(const core::account& a, const std::string& text, const std::string& flag) {
  return resolve_ref(a.peers, text, "peer", flag, [](const core::peer& p) {
    return std::vector<std::string>{p.name, p.dns_label};
  });
}

// The groups' names, sorted.
std::string group_names(const core::account& a, const std::vector<std::string>& ids) {
  std::vector<std::string> names;
  for (const auto& id : ids) {
    const auto* g = find_group(a, id);
    names.push_back(g ? g->name : id);
  }
  std::sort(names.begin(), names.end());
  return joined(names);
}

// An account by id, or by its domain when that names exactly one account.
std::string resolve_account(soci::session& sql, const std::string& text) {
  std::vector<std::string> ids;
  {
    soci::rowset<std::string> rows =
        (sql.prepare << "SELECT id FROM accounts WHERE id = :t", soci::use(text, "t"));
    for (const auto& id : rows)
      ids.push_back(id);
  }
  if (!ids.empty())
    return ids.front();
  soci::rowset<std::string> rows =
      (sql.prepare << "SELECT id FROM accounts WHERE LOWER(domain) = LOWER(:t) ORDER BY id",
       soci::use(text, "t"));
  for (const auto& id : rows)
    ids.push_back(id);
  if (ids.size() > 1)
    throw bad_input("--account: the domain " + text + " names " + std::to_string(ids.size()) +
                    " accounts (" + joined(ids) + "); give the id");
  if (ids.empty())
    throw bad_input("no account " + text +
                    " in this store (neither an id nor a domain; `admin account list` shows them)");
  return ids.front();
}

// An IP address in its canonical text (IPv6 as inet_ntop writes it), with its family.
std::optional<std::pair<std::string, int>> parse_ip(const std::string& text) {
  const int family = text.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  unsigned char buf[16];
  if (text.find('%') != std::string::npos || inet_pton(family, text.c_str(), buf) != 1)
    return std::nullopt;
  char out[INET6_ADDRSTRLEN];
  inet_ntop(family, buf, out, sizeof out);
  return std::make_pair(std::string(out), family);
}

// NetBird's route.ParseNetwork (masked; network_type 1 for IPv4, 2 for IPv6).
std::pair<std::string, int> parse_network(const std::string& text) {
  auto prefix = core::canonical_prefix(text);
  if (!prefix)
    throw bad_input("--network: invalid network " + text +
                    " (want a prefix such as 10.0.0.0/24 or fd00::/64)");
  return *prefix;
}

// What core/validate refuses, as the admin sees it.
void check(const core::verdict& v) {
  if (v)
    throw bad_input(v->message);
}

// "8.8.8.8", "8.8.8.8:5353", "2001:db8::1", "[2001:db8::1]:53" -> a UDP nameserver (port 53).
core::nameserver parse_nameserver(const std::string& text) {
  std::string host = text, port = "53";
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos)
      throw bad_input("--nameservers: invalid nameserver " + text);
    host = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':')
        throw bad_input("--nameservers: invalid nameserver " + text);
      port = text.substr(close + 2);
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    host = text.substr(0, text.find(':'));
    port = text.substr(text.find(':') + 1);
  }
  const auto ip = parse_ip(host);
  if (!ip)
    throw bad_input("--nameservers: invalid nameserver IP " + host);
  const auto p = small_number(port, 1, 65535);
  if (!p)
    throw bad_input("--nameservers: invalid nameserver port " + port + " in " + text);
  return {ip->first, 1, static_cast<int>(*p)};
}

std::string nameserver_text(const core::nameserver& n) {
  const bool v6 = n.ip.find(':') != std::string::npos;
  return (v6 ? "[" + n.ip + "]" : n.ip) + ":" + std::to_string(n.port);
}

void print_saved(const storage::saved& s) {
  std::cout << "id: " << s.id << "\nnetwork_serial: " << s.serial << "\n";
}

int print_deleted(const std::optional<std::uint64_t>& serial, const std::string& what,
                  const admin_command& cmd) {
  if (!serial)
    throw bad_input("no " + what + " " + cmd.object_id + " in account " + cmd.account_id);
  std::cout << "deleted: " << cmd.object_id << "\nnetwork_serial: " << *serial << "\n";
  return 0;
}

// --- groups ---------------------------------------------------------------------------------

int group_command(const admin_command& cmd, storage::account_store& accounts,
                  storage::config_store& config) {
  const auto a = load_account(accounts, cmd.account_id);
  if (cmd.action == "group-list") {
    for (const auto& g : a.groups)
      std::cout << g.id << " name=" << g.name << " peers=" << joined(g.peers) << "\n";
    return 0;
  }
  if (cmd.action == "group-delete") {
    admin_command c = cmd;
    c.object_id = group_ref(a, cmd.object_id, "--group-id");
    if (!find_group(a, c.object_id))
      throw bad_input("no group " + c.object_id + " in account " + c.account_id);
    check(core::validate_group_delete(a, c.object_id));
    return print_deleted(config.delete_group(c.account_id, c.object_id), "group", c);
  }
  core::group g;
  g.account_id = a.id;
  g.name = cmd.name;
  g.issued = "api";
  for (const auto& text : cmd.peers)
    if (const auto p = peer_ref(a, text, "--peers"); !listed(g.peers, p))
      g.peers.push_back(p);
  check(core::validate_group(a, g));
  print_saved(config.save_group(g));
  return 0;
}

// --- policies -------------------------------------------------------------------------------

core::port_range parse_port_range(const std::string& text) {
  const auto dash = text.find('-');
  const auto bad = bad_input("--port-range: invalid port range " + text +
                             " (want START-END, 1 <= START <= END <= 65535)");
  if (dash == std::string::npos)
    throw bad;
  const auto start = small_number(text.substr(0, dash), 1, 65535);
  const auto end = small_number(text.substr(dash + 1), 1, 65535);
  if (!start || !end || *start > *end)
    throw bad;
  return {static_cast<std::uint16_t>(*start), static_cast<std::uint16_t>(*end)};
}

int policy_command(const admin_command& cmd, storage::account_store& accounts,
                   storage::config_store& config) {
  const auto a = load_account(accounts, cmd.account_id);
  if (cmd.action == "policy-list") {
    for (const auto& p : a.policies) {
      std::cout << p.id << " name=" << p.name << " enabled=" << yes_no(p.enabled)
                << " rules=" << p.rules.size() << "\n";
      for (const auto& r : p.rules) {
        std::vector<std::string> ranges;
        for (const auto& pr : r.port_ranges)
          ranges.push_back(std::to_string(pr.start) + "-" + std::to_string(pr.end));
        std::cout << "  rule " << r.id << " name=" << r.name << " action=" << r.action
                  << " protocol=" << r.protocol << " sources=" << joined(r.sources)
                  << " destinations=" << joined(r.destinations) << " ports=" << joined(r.ports)
                  << " port_ranges=" << joined(ranges)
                  << " bidirectional=" << yes_no(r.bidirectional)
                  << " enabled=" << yes_no(r.enabled) << "\n";
      }
    }
    return 0;
  }
  if (cmd.action == "policy-delete") {
    admin_command c = cmd;
    c.object_id =
        resolve_ref(a.policies, cmd.object_id, "policy", "--policy-id",
                    [](const core::policy& p) { return std::vector<std::string>{p.name}; });
    return print_deleted(config.delete_policy(c.account_id, c.object_id), "policy", c);
  }

  // NetBird's savePolicy handler and validatePolicy (core/validate; an unknown group is refused).
  if (!cmd.ports.empty() && !cmd.port_ranges.empty())
    throw bad_input("specify either individual ports (--ports) or port ranges (--port-range), "
                    "not both");
  core::policy_rule rule;
  rule.name = cmd.name;
  rule.description = cmd.description;
  rule.enabled = !cmd.disabled;
  rule.action = cmd.rule_action;
  rule.protocol = cmd.protocol;
  rule.bidirectional = cmd.bidirectional;
  rule.ports = cmd.ports;
  for (const auto& r : cmd.port_ranges)
    rule.port_ranges.push_back(parse_port_range(r));
  rule.sources = group_refs(a, cmd.sources, "--source");
  rule.destinations = group_refs(a, cmd.destinations, "--destination");
  core::policy p;
  p.account_id = a.id;
  p.name = cmd.name;
  p.description = cmd.description;
  p.enabled = !cmd.disabled;
  p.rules = {rule};
  check(core::validate_policy(a, p));
  print_saved(config.save_policy(p));
  return 0;
}

// --- routes ---------------------------------------------------------------------------------

int route_command(const admin_command& cmd, storage::account_store& accounts,
                  storage::config_store& config) {
  const auto a = load_account(accounts, cmd.account_id);
  if (cmd.action == "route-list") {
    for (const auto& r : a.routes)
      std::cout << r.id << " net_id=" << r.net_id << " network=" << r.network << " peer=" << r.peer
                << " peer_groups=" << joined(r.peer_groups) << " groups=" << joined(r.groups)
                << " metric=" << r.metric << " masquerade=" << yes_no(r.masquerade)
                << " access_control_groups=" << joined(r.access_control_groups)
                << " enabled=" << yes_no(r.enabled) << "\n";
    return 0;
  }
  if (cmd.action == "route-delete") {
    admin_command c = cmd;
    c.object_id =
        resolve_ref(a.routes, cmd.object_id, "route", "--route-id",
                    [](const core::route& r) { return std::vector<std::string>{r.net_id}; });
    return print_deleted(config.delete_route(c.account_id, c.object_id), "route", c);
  }

  // NetBird's route handler and account manager (validateRoute: core/validate).
  core::route r;
  const auto [prefix, type] = parse_network(cmd.network);
  r.network = prefix;
  r.network_type = type;
  r.account_id = a.id;
  r.net_id = cmd.net_id;
  r.description = cmd.description;
  r.peer = cmd.peer.empty() ? "" : peer_ref(a, cmd.peer, "--peer");
  r.peer_groups = group_refs(a, cmd.peer_groups, "--peer-groups");
  r.groups = group_refs(a, cmd.groups, "--groups");
  r.access_control_groups = group_refs(a, cmd.access_control_groups, "--access-control-groups");
  r.metric = cmd.metric;
  r.masquerade = cmd.masquerade;
  r.enabled = !cmd.disabled;
  check(core::validate_route(a, r));
  print_saved(config.save_route(r));
  return 0;
}

// --- nameserver groups ----------------------------------------------------------------------

int nameserver_command(const admin_command& cmd, storage::account_store& accounts,
                       storage::config_store& config) {
  const auto a = load_account(accounts, cmd.account_id);
  if (cmd.action == "nameserver-list") {
    for (const auto& g : a.nameserver_groups) {
      std::vector<std::string> servers;
      for (const auto& n : g.nameservers)
        servers.push_back(nameserver_text(n));
      std::cout << g.id << " name=" << g.name << " nameservers=" << joined(servers)
                << " groups=" << joined(g.groups) << " domains=" << joined(g.domains)
                << " primary=" << yes_no(g.primary)
                << " search_domains=" << yes_no(g.search_domains_enabled)
                << " enabled=" << yes_no(g.enabled) << "\n";
    }
    return 0;
  }
  if (cmd.action == "nameserver-delete") {
    admin_command c = cmd;
    c.object_id = resolve_ref(
        a.nameserver_groups, cmd.object_id, "nameserver group", "--nameserver-group-id",
        [](const core::nameserver_group& g) { return std::vector<std::string>{g.name}; });
    return print_deleted(config.delete_nameserver_group(c.account_id, c.object_id),
                         "nameserver group", c);
  }

  // NetBird's validateNameServerGroup (core/validate).
  core::nameserver_group g;
  for (const auto& n : cmd.nameservers)
    g.nameservers.push_back(parse_nameserver(n));
  g.account_id = a.id;
  g.name = cmd.name;
  g.description = cmd.description;
  g.groups = group_refs(a, cmd.groups, "--groups");
  g.domains = cmd.domains;
  g.primary = cmd.primary;
  g.search_domains_enabled = cmd.search_domains;
  g.enabled = !cmd.disabled;
  check(core::validate_nameserver_group(a, g));
  print_saved(config.save_nameserver_group(g));
  return 0;
}

// The configuration commands; -1 when `cmd` is none of them.
int run_config_command(const admin_command& cmd, soci::session& sql, storage::engine kind) {
  storage::account_store accounts(sql, kind);
  storage::config_store config(sql, kind);
  const auto kind_of = cmd.action.substr(0, cmd.action.rfind('-'));
  try {
    if (kind_of == "group")
      return group_command(cmd, accounts, config);
    if (kind_of == "policy")
      return policy_command(cmd, accounts, config);
    if (kind_of == "route")
      return route_command(cmd, accounts, config);
    if (kind_of == "nameserver")
      return nameserver_command(cmd, accounts, config);
  } catch (const bad_input& e) {
    std::cerr << "Error: " << e.what() << "\n";
    return 1;
  }
  return -1;
}

// `admin account settings`: the account's peer expiration settings, changed as NetBird's
// UpdateAccountSettings validates them (login expiration 1 h to 180 days); no flags = show them.
int account_settings_command(const admin_command& cmd, soci::session& sql, storage::engine kind) {
  storage::account_store accounts(sql, kind);
  try {
    auto a = load_account(accounts, cmd.account_id);
    auto s = a.settings;
    auto period = [](const std::string& flag, const std::string& text) {
      try {
        return config::parse_go_duration(text).count();
      } catch (const std::exception&) {
        throw bad_input(flag + ": not a duration: " + text);
      }
    };
    const bool change =
        !cmd.peer_login_expiration.empty() || !cmd.peer_login_expiration_enabled.empty() ||
        !cmd.peer_inactivity_expiration.empty() || !cmd.peer_inactivity_expiration_enabled.empty();
    if (!cmd.peer_login_expiration.empty())
      s.peer_login_expiration_ns = period("--peer-login-expiration", cmd.peer_login_expiration);
    if (!cmd.peer_login_expiration_enabled.empty())
      s.peer_login_expiration_enabled = cmd.peer_login_expiration_enabled == "true";
    if (!cmd.peer_inactivity_expiration.empty())
      s.peer_inactivity_expiration_ns =
          period("--peer-inactivity-expiration", cmd.peer_inactivity_expiration);
    if (!cmd.peer_inactivity_expiration_enabled.empty())
      s.peer_inactivity_expiration_enabled = cmd.peer_inactivity_expiration_enabled == "true";
    constexpr std::int64_t hour_ns = 3600LL * 1000 * 1000 * 1000;
    if (s.peer_login_expiration_ns > 180 * 24 * hour_ns)
      throw bad_input("peer login expiration can't be larger than 180 days");
    if (s.peer_login_expiration_ns < hour_ns)
      throw bad_input("peer login expiration can't be smaller than one hour");
    if (s.peer_inactivity_expiration_ns < 0)
      throw bad_input("peer inactivity expiration can't be negative");
    std::uint64_t serial = a.net.serial;
    if (change) {
      auto written = storage::config_store(sql, kind).update_settings(a.id, s);
      if (!written)
        throw bad_input("no account " + cmd.account_id);
      serial = *written;
    }
    auto go = [](std::int64_t ns) {
      return config::format_go_duration(std::chrono::nanoseconds(ns));
    };
    std::cout << "account_id: " << a.id
              << "\npeer_login_expiration_enabled: " << yes_no(s.peer_login_expiration_enabled)
              << "\npeer_login_expiration: " << go(s.peer_login_expiration_ns)
              << "\npeer_inactivity_expiration_enabled: "
              << yes_no(s.peer_inactivity_expiration_enabled)
              << "\npeer_inactivity_expiration: " << go(s.peer_inactivity_expiration_ns)
              << "\nnetwork_serial: " << serial << "\n";
    return 0;
  } catch (const bad_input& e) {
    std::cerr << "Error: " << e.what() << "\n";
    return 1;
  }
}

// --- accounts, users, tokens, peers --------------------------------------------------------

int account_list_command(soci::session& sql) {
  // Every column as text: the same on SQLite and PostgreSQL.
  soci::rowset<soci::row> rows =
      (sql.prepare << "SELECT a.id, COALESCE(a.domain, ''), "
                      "COALESCE(CAST(a.created_at AS TEXT), ''), "
                      "CAST((SELECT COUNT(*) FROM users u WHERE u.account_id = a.id) AS TEXT), "
                      "CAST((SELECT COUNT(*) FROM peers p WHERE p.account_id = a.id) AS TEXT) "
                      "FROM accounts a ORDER BY a.created_at, a.id");
  for (const auto& r : rows)
    std::cout << r.get<std::string>(0) << " domain=" << r.get<std::string>(1)
              << " created_at=" << r.get<std::string>(2) << " users=" << r.get<std::string>(3)
              << " peers=" << r.get<std::string>(4) << "\n";
  return 0;
}

int user_list_command(const core::account& a) {
  for (const auto& u : a.users) {
    std::size_t tokens = 0;
    for (const auto& t : a.tokens)
      tokens += t.user_id == u.id ? 1 : 0;
    std::cout << u.id << " role=" << u.role << " email=" << u.email << " name=" << u.name
              << " service_user=" << yes_no(u.is_service_user) << " blocked=" << yes_no(u.blocked)
              << " tokens=" << tokens << "\n";
  }
  return 0;
}

int peer_list_command(const core::account& a) {
  for (const auto& p : a.peers) {
    std::vector<std::string> groups;
    for (const auto& g : a.groups)
      if (listed(g.peers, p.id))
        groups.push_back(g.id);
    std::cout << p.id << " name=" << p.name << " dns_label=" << p.dns_label << " ip=" << p.ip
              << " connected=" << yes_no(p.status.connected)
              << " last_seen=" << p.status.last_seen.value_or("")
              << " login_expired=" << yes_no(p.status.login_expired)
              << " ephemeral=" << yes_no(p.ephemeral) << " groups=" << group_names(a, groups)
              << "\n";
  }
  return 0;
}

// A new personal access token for an existing user (as NetBird's POST
// /api/users/{id}/tokens: a name, 1 to 365 days).
// NetBird's CreatePAT event: PersonalAccessTokenCreated, the CLI ("sys") as initiator.
core::activity::event token_created(const core::user& u, const std::string& token_name) {
  core::activity::event e;
  e.activity = core::activity::personal_access_token_created;
  e.initiator_id = core::activity::system_initiator;
  e.target_id = u.id;
  e.account_id = u.account_id;
  e.m = {{"name", token_name},
         {"is_service_user", u.is_service_user},
         {"user_name", u.service_user_name}};
  return e;
}

int token_create_command(const admin_command& cmd, soci::session& sql, storage::engine kind,
                         std::vector<core::activity::event>& evs) {
  if (cmd.token_name.empty())
    throw bad_input("--name: the token needs a name");
  if (cmd.expires_in_days < 1 || cmd.expires_in_days > 365)
    throw bad_input("--expires-in: expiration has to be between 1 and 365 days");
  const std::string account =
      cmd.account_id.empty() ? std::string() : resolve_account(sql, cmd.account_id);
  std::vector<std::pair<std::string, std::string>> found; // user id, account id
  {
    soci::rowset<soci::row> rows =
        (sql.prepare << "SELECT id, account_id FROM users WHERE (id = :u1 OR email = :u2 OR "
                        "name = :u3) AND (:a1 = '' OR account_id = :a2) ORDER BY id",
         soci::use(cmd.user, "u1"), soci::use(cmd.user, "u2"), soci::use(cmd.user, "u3"),
         soci::use(account, "a1"), soci::use(account, "a2"));
    for (const auto& r : rows)
      found.emplace_back(r.get<std::string>(0), r.get<std::string>(1));
  }
  // An id is exact: it wins over an email or name that happens to equal it.
  for (const auto& f : found)
    if (f.first == cmd.user)
      found = {f};
  if (found.empty())
    throw bad_input("no user " + cmd.user +
                    (account.empty() ? std::string() : " in account " + account) +
                    " (an id, email or name; `admin user list --account A` shows them)");
  if (found.size() > 1) {
    std::vector<std::string> ids;
    for (const auto& f : found)
      ids.push_back(f.first + " (account " + f.second + ")");
    throw bad_input("--user " + cmd.user + " names " + std::to_string(found.size()) +
                    " users: " + joined(ids) + "; give the id, or --account");
  }
  storage::account_store accounts(sql, kind);
  const auto a = load_account(accounts, found.front().second);
  const core::user* u = nullptr;
  for (const auto& x : a.users)
    if (x.id == found.front().first)
      u = &x;
  if (!u)
    throw bad_input("no user " + cmd.user);
  if (u->blocked)
    throw bad_input("user " + u->id + " is blocked: its tokens would be refused");
  auto pat = crypto::make_pat();
  core::personal_access_token t;
  t.id = crypto::random_id();
  t.user_id = u->id;
  t.name = cmd.token_name;
  t.hashed_token = pat.hashed;
  t.created_by = u->id;
  t.created_at = storage::store_time();
  t.expiration_date = storage::store_time(cmd.expires_in_days * 86400);
  accounts.insert_token(t);
  evs.push_back(token_created(*u, t.name));
  evs.back().account_id = a.id;
  std::cout << "id: " << t.id << "\nuser_id: " << u->id << "\naccount_id: " << a.id
            << "\npersonal_access_token: " << pat.plain << "\nexpires_at: " << *t.expiration_date
            << "\n";
  return 0;
}

// The expiration of the user's (newest) personal access token, as text.
std::string pat_expiry(soci::session& sql, const std::string& user_id) {
  std::string when;
  soci::indicator ind = soci::i_null;
  sql << "SELECT CAST(expiration_date AS TEXT) FROM personal_access_tokens WHERE user_id = :u "
         "ORDER BY created_at DESC LIMIT 1",
      soci::use(user_id, "u"), soci::into(when, ind);
  return sql.got_data() && ind == soci::i_ok ? when : std::string();
}

// The activity log of the store's datadir (storage/event_store), as the server records it; a
// failure is a warning: the change itself is done.
void record_events(const std::string& datadir, const std::string& key,
                   const std::vector<core::activity::event>& evs) {
  const char* enabled = std::getenv("NB_EVENT_ACTIVITY_LOG_ENABLED");
  if (evs.empty() || (enabled && *enabled && std::string(enabled) != "true"))
    return;
  try {
    const auto opts = storage::events_db_options(datadir);
    soci::session sql;
    storage::open_session(sql, opts);
    storage::event_store events(sql, opts.kind, key);
    events.ensure_schema();
    events.append(evs);
  } catch (const std::exception& e) {
    std::cerr << "warning: the change is done, but its activity events were not recorded: "
              << e.what() << "\n";
  }
}

int account_create_command(const admin_command& cmd, soci::session& sql, storage::engine kind,
                           const std::string& datadir, const std::string& key) {
  if (!cmd.allow_duplicate_domain) {
    std::vector<std::string> ids;
    soci::rowset<std::string> rows =
        (sql.prepare << "SELECT id FROM accounts WHERE LOWER(domain) = LOWER(:d) ORDER BY id",
         soci::use(cmd.domain, "d"));
    for (const auto& id : rows)
      ids.push_back(id);
    if (!ids.empty())
      throw bad_input("an account with the domain " + cmd.domain + " exists already (" +
                      joined(ids) +
                      "); `admin token create --user ...` gives its users a new token, "
                      "--allow-duplicate-domain creates another account anyway");
  }
  storage::admin_store admin(sql, kind);
  auto made = admin.create_account(
      {cmd.domain, cmd.owner_email, cmd.owner_name, !cmd.no_default_policy, true, ""});
  std::cout << "account_id: " << made.account_id << "\nowner_user_id: " << made.owner_user_id
            << "\nall_group_id: " << made.all_group_id << "\nnetwork: " << made.network
            << "\npersonal_access_token: " << made.pat
            << "\npersonal_access_token_expires_at: " << pat_expiry(sql, made.owner_user_id)
            << "\n";
  // NetBird's newAccount: AccountCreated by its owner.
  core::activity::event created;
  created.activity = core::activity::account_created;
  created.initiator_id = made.owner_user_id;
  created.target_id = made.account_id;
  created.account_id = made.account_id;
  std::vector<core::activity::event> evs = {created};
  if (!made.pat.empty()) { // the owner's bootstrap token, made by the CLI
    core::user owner;
    owner.id = made.owner_user_id;
    owner.account_id = made.account_id;
    evs.push_back(token_created(owner, "bootstrap"));
  }
  record_events(datadir, key, evs);
  return 0;
}

int setup_key_command(const admin_command& cmd, soci::session& sql, storage::engine kind) {
  storage::admin_store admin(sql, kind);
  storage::account_store accounts(sql, kind);
  if (cmd.action == "setup-key-create") {
    const auto a = load_account(accounts, cmd.account_id);
    storage::new_setup_key spec;
    spec.account_id = cmd.account_id;
    spec.name = cmd.name;
    spec.reusable = cmd.reusable;
    try {
      spec.expires_in_seconds = std::chrono::duration_cast<std::chrono::seconds>(
                                    config::parse_go_duration(cmd.expires_in))
                                    .count();
    } catch (const std::exception&) {
      throw bad_input("--expires-in: not a duration: " + cmd.expires_in);
    }
    if (spec.expires_in_seconds < 0)
      throw bad_input("--expires-in must not be negative");
    spec.usage_limit = cmd.usage_limit;
    spec.auto_groups = group_refs(a, cmd.auto_groups, "--auto-groups");
    spec.ephemeral = cmd.ephemeral;
    spec.allow_extra_dns_labels = cmd.allow_extra_dns_labels;
    auto [key, plain] = admin.create_setup_key(spec);
    std::cout << "id: " << key.id << "\nsetup_key: " << plain << "\ntype: " << key.type
              << "\nexpires_at: " << key.expires_at.value_or("") << "\n";
    return 0;
  }
  const auto keys = admin.list_setup_keys(cmd.account_id);
  if (cmd.action == "setup-key-list") {
    for (const auto& k : keys)
      std::cout << k.id << " name=" << k.name << " type=" << k.type << " key=" << k.key_secret
                << " revoked=" << yes_no(k.revoked) << " used=" << k.used_times
                << " limit=" << k.usage_limit << " ephemeral=" << yes_no(k.ephemeral)
                << " expires_at=" << k.expires_at.value_or("") << "\n";
    return 0;
  }
  // setup-key-revoke: by id or name
  const auto id = resolve_ref(keys, cmd.key_id, "setup key", "--id", [](const core::setup_key& k) {
    return std::vector<std::string>{k.name};
  });
  if (!admin.revoke_setup_key(cmd.account_id, id))
    throw bad_input("no setup key " + cmd.key_id + " in account " + cmd.account_id);
  std::cout << "revoked: " << id << "\n";
  return 0;
}

} // namespace

// A change the admin command committed to `account_id` on PostgreSQL: the running replicas are told
// on the cluster channel (they read the account again) instead of finding it at their next serial
// poll. A failure only costs that: it is reported, the command has succeeded.
static void tell_replicas(soci::session& sql, const std::string& account_id) {
  try {
    std::string schema;
    sql << "SELECT COALESCE(current_schema(), '')", soci::into(schema);
    const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    for (auto& payload : core::encode_cluster("admin-cli", now, {{account_id, 0, 0, 0, {}}}, {})) {
      std::string channel = storage::cluster_channel(schema);
      sql << "SELECT pg_notify(:c, :p)", soci::use(channel, "c"), soci::use(payload, "p");
    }
  } catch (const std::exception& e) {
    std::cerr << "warning: the running replicas were not told of the change (they find it at "
                 "their next serial poll): "
              << e.what() << "\n";
  }
}

// Whether an admin action writes (every action but the lists and shows).
static bool writes(const admin_command& c) {
  if (c.action.size() >= 5 && c.action.compare(c.action.size() - 5, 5, "-list") == 0)
    return false;
  return true;
}

int run_admin(const admin_command& cmd, config::management_config cfg) {
  // The store the server opens with the same --config and --datadir (run.cpp's apply_flags).
  const std::string config_datadir = cfg.datadir;
  management_options as_server;
  as_server.datadir = cmd.datadir;
  as_server.datadir_set = cmd.datadir_set;
  apply_flags(as_server, cfg);
  const auto db = store_options(cfg);
  const std::string where = storage::describe(db);
  const bool creates = cmd.action == "account-create";
  bool created = false;
  if (db.kind == storage::engine::sqlite) {
    const bool exists = std::filesystem::exists(db.target);
    if (!exists && !creates) {
      const char* from = cmd.datadir_set && !cmd.datadir.empty() ? "--datadir"
                         : !config_datadir.empty()               ? "the Datadir of the config file"
                                                   : "the default, as the config names none";
      std::cerr << "Error: no store at " << where.substr(7) << " (datadir "
                << std::filesystem::absolute(cfg.datadir).lexically_normal().string() << " from "
                << from << "; config " << cmd.config_path
                << "). Give the --config and --datadir the server runs with; only `admin "
                   "account create` creates a store.\n";
      return 1;
    }
    if (!exists) {
      std::filesystem::create_directories(std::filesystem::path(db.target).parent_path().empty()
                                              ? std::filesystem::path(".")
                                              : std::filesystem::path(db.target).parent_path());
      created = true;
    }
  }
  soci::session sql;
  storage::open_session(sql, db);
  if (!storage::has_store_tables(sql, db.kind)) {
    if (!creates) {
      std::cerr << "Error: no store at " << where
                << ": it has no NetBird tables (the server creates them at its first start; "
                   "only `admin account create` creates a store)\n";
      return 1;
    }
    created = true;
  }
  storage::ensure_schema(sql, db.kind);
  // Which store: on stderr, so that stdout stays the command's answer.
  std::cerr << "store: " << where << (created ? " (created)" : "") << "\n";

  try {
    if (cmd.action == "account-create")
      return account_create_command(cmd, sql, db.kind, cfg.datadir, cfg.data_store_encryption_key);
    if (cmd.action == "account-list")
      return account_list_command(sql);
    if (cmd.action == "token-create") {
      std::vector<core::activity::event> evs;
      const int rc = token_create_command(cmd, sql, db.kind, evs);
      if (rc == 0)
        record_events(cfg.datadir, cfg.data_store_encryption_key, evs);
      return rc;
    }
    admin_command c = cmd;
    c.account_id = resolve_account(sql, cmd.account_id);
    storage::account_store accounts(sql, db.kind);
    if (c.action == "user-list")
      return user_list_command(load_account(accounts, c.account_id));
    if (c.action == "peer-list")
      return peer_list_command(load_account(accounts, c.account_id));
    const auto told = [&](int rc) {
      if (rc == 0 && db.kind == storage::engine::postgres && writes(c))
        tell_replicas(sql, c.account_id);
      return rc;
    };
    // What a command changed goes to the activity log as NetBird's events (initiator "sys").
    const auto before = load_account(accounts, c.account_id);
    const auto recorded = [&](int rc) {
      if (rc == 0)
        record_events(cfg.datadir, cfg.data_store_encryption_key,
                      core::activity::events_of_diff(before, load_account(accounts, c.account_id),
                                                     core::activity::system_initiator,
                                                     before.settings.dns_domain.empty()
                                                         ? std::string("netbird.selfhosted")
                                                         : before.settings.dns_domain));
      return told(rc);
    };
    if (c.action.rfind("setup-key-", 0) == 0)
      return recorded(setup_key_command(c, sql, db.kind));
    if (c.action == "account-settings")
      return recorded(account_settings_command(c, sql, db.kind));
    if (const int rc = run_config_command(c, sql, db.kind); rc >= 0)
      return recorded(rc);
  } catch (const bad_input& e) {
    std::cerr << "Error: " << e.what() << "\n";
    return 1;
  }
  std::cerr << "Error: unknown admin action " << cmd.action << "\n";
  return 2;
}

} // namespace nbm::server
