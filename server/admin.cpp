#include "server/admin.hpp"

#include "core/validate.hpp"
#include "server/run.hpp"
#include "storage/account_store.hpp"
#include "storage/admin_store.hpp"
#include "storage/config_store.hpp"
#include "storage/schema.hpp"

#include <arpa/inet.h>
#include <soci/soci.h>

#include <algorithm>
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
    if (!find_group(a, cmd.object_id))
      throw bad_input("no group " + cmd.object_id + " in account " + cmd.account_id);
    check(core::validate_group_delete(a, cmd.object_id));
    return print_deleted(config.delete_group(cmd.account_id, cmd.object_id), "group", cmd);
  }
  core::group g;
  g.account_id = a.id;
  g.name = cmd.name;
  g.issued = "api";
  for (const auto& p : cmd.peers)
    if (!listed(g.peers, p))
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
  if (cmd.action == "policy-delete")
    return print_deleted(config.delete_policy(cmd.account_id, cmd.object_id), "policy", cmd);

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
  rule.sources = cmd.sources;
  rule.destinations = cmd.destinations;
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
  if (cmd.action == "route-delete")
    return print_deleted(config.delete_route(cmd.account_id, cmd.object_id), "route", cmd);

  // NetBird's route handler and account manager (validateRoute: core/validate).
  core::route r;
  const auto [prefix, type] = parse_network(cmd.network);
  r.network = prefix;
  r.network_type = type;
  r.account_id = a.id;
  r.net_id = cmd.net_id;
  r.description = cmd.description;
  r.peer = cmd.peer;
  r.peer_groups = cmd.peer_groups;
  r.groups = cmd.groups;
  r.access_control_groups = cmd.access_control_groups;
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
  if (cmd.action == "nameserver-delete")
    return print_deleted(config.delete_nameserver_group(cmd.account_id, cmd.object_id),
                         "nameserver group", cmd);

  // NetBird's validateNameServerGroup (core/validate).
  core::nameserver_group g;
  for (const auto& n : cmd.nameservers)
    g.nameservers.push_back(parse_nameserver(n));
  g.account_id = a.id;
  g.name = cmd.name;
  g.description = cmd.description;
  g.groups = cmd.groups;
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

} // namespace

int run_admin(const admin_command& cmd, config::management_config cfg) {
  management_options as_server;
  as_server.datadir = cmd.datadir;
  apply_flags(as_server, cfg);
  std::filesystem::create_directories(cfg.datadir);
  const auto db = store_options(cfg);
  soci::session sql;
  storage::open_session(sql, db);
  storage::ensure_schema(sql, db.kind);
  storage::admin_store admin(sql, db.kind);

  if (cmd.action == "account-create") {
    auto made = admin.create_account(
        {cmd.domain, cmd.owner_email, cmd.owner_name, !cmd.no_default_policy, true, ""});
    std::cout << "account_id: " << made.account_id << "\nowner_user_id: " << made.owner_user_id
              << "\nall_group_id: " << made.all_group_id << "\nnetwork: " << made.network
              << "\npersonal_access_token: " << made.pat << "\n";
    return 0;
  }
  if (cmd.action == "setup-key-create") {
    storage::new_setup_key spec;
    spec.account_id = cmd.account_id;
    spec.name = cmd.name;
    spec.reusable = cmd.reusable;
    try {
      spec.expires_in_seconds = std::chrono::duration_cast<std::chrono::seconds>(
                                    config::parse_go_duration(cmd.expires_in))
                                    .count();
    } catch (const std::exception&) {
      std::cerr << "Error: --expires-in: not a duration: " << cmd.expires_in << "\n";
      return 1;
    }
    if (spec.expires_in_seconds < 0) {
      std::cerr << "Error: --expires-in must not be negative\n";
      return 1;
    }
    spec.usage_limit = cmd.usage_limit;
    spec.auto_groups = cmd.auto_groups;
    spec.ephemeral = cmd.ephemeral;
    spec.allow_extra_dns_labels = cmd.allow_extra_dns_labels;
    auto [key, plain] = admin.create_setup_key(spec);
    std::cout << "id: " << key.id << "\nsetup_key: " << plain << "\ntype: " << key.type
              << "\nexpires_at: " << key.expires_at.value_or("") << "\n";
    return 0;
  }
  if (cmd.action == "setup-key-list") {
    for (const auto& k : admin.list_setup_keys(cmd.account_id))
      std::cout << k.id << " name=" << k.name << " type=" << k.type << " key=" << k.key_secret
                << " revoked=" << (k.revoked ? "true" : "false") << " used=" << k.used_times
                << " limit=" << k.usage_limit << " ephemeral=" << (k.ephemeral ? "true" : "false")
                << " expires_at=" << k.expires_at.value_or("") << "\n";
    return 0;
  }
  if (cmd.action == "setup-key-revoke") {
    if (!admin.revoke_setup_key(cmd.account_id, cmd.key_id)) {
      std::cerr << "Error: no setup key " << cmd.key_id << " in account " << cmd.account_id << "\n";
      return 1;
    }
    std::cout << "revoked: " << cmd.key_id << "\n";
    return 0;
  }
  if (cmd.action == "account-settings")
    return account_settings_command(cmd, sql, db.kind);
  if (const int rc = run_config_command(cmd, sql, db.kind); rc >= 0)
    return rc;
  std::cerr << "Error: unknown admin action " << cmd.action << "\n";
  return 2;
}

} // namespace nbm::server
