// NetBird's core objects as plain values (the domain model; no I/O). Field names follow NetBird's;
// times are kept as the store's text (NetBird writes "2006-01-02 15:04:05.999999999-07:00",
// SQLite's CURRENT_TIMESTAMP "2006-01-02 15:04:05"), JSON-encoded columns are decoded where the
// core reasons about them.
#pragma once

#include "core/session_token.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace nbm::core {

using opt_time = std::optional<std::string>;

struct account_settings {
  bool peer_login_expiration_enabled = false;
  std::int64_t peer_login_expiration_ns = 0;
  bool peer_inactivity_expiration_enabled = false;
  std::int64_t peer_inactivity_expiration_ns = 0;
  bool regular_users_view_blocked = false;
  bool groups_propagation_enabled = false;
  bool jwt_groups_enabled = false;
  std::string jwt_groups_claim_name;
  std::vector<std::string> jwt_allow_groups;
  bool routing_peer_dns_resolution_enabled = false;
  std::string dns_domain;
  bool extra_peer_approval_enabled = false;
  bool extra_user_approval_required = false;
  std::string extra_integrated_validator;
  std::vector<std::string> extra_integrated_validator_groups;
  bool lazy_connection_enabled = false;

  bool operator==(const account_settings&) const = default;
};

struct network {
  std::string identifier;
  std::string net; // IPv4 prefix, e.g. "100.64.0.0/10"
  std::string dns;
  std::uint64_t serial = 0;

  bool operator==(const network&) const = default;
};

struct peer_meta {
  std::string hostname, go_os, kernel, core, platform, os, os_version, wt_version, ui_version,
      kernel_version, system_serial_number, system_product_name, system_manufacturer;
  std::string network_addresses_json, environment_json, flags_json, files_json, capabilities_json;

  bool operator==(const peer_meta&) const = default;
};

struct peer_status {
  opt_time last_seen;
  session_token session_started_at = 0;
  bool connected = false;
  bool login_expired = false;
  bool requires_approval = false;

  bool operator==(const peer_status&) const = default;
};

struct peer_location {
  std::string connection_ip; // "" when unknown
  std::string country_code;
  std::string city_name;
  std::uint64_t geo_name_id = 0;

  bool operator==(const peer_location&) const = default;
};

struct peer {
  std::string id, account_id, key, ip, ipv6, name, dns_label, user_id, ssh_key;
  bool ssh_enabled = false;
  bool login_expiration_enabled = false;
  bool inactivity_expiration_enabled = false;
  opt_time last_login, created_at;
  bool ephemeral = false;
  std::vector<std::string> extra_dns_labels;
  peer_meta meta;
  peer_status status;
  peer_location location;
  bool allow_extra_dns_labels = false;

  bool operator==(const peer&) const = default;
};

struct user {
  std::string id, account_id, role, service_user_name, issued, name, email;
  bool is_service_user = false, non_deletable = false, blocked = false, pending_approval = false;
  std::vector<std::string> auto_groups;
  opt_time last_login, created_at;

  bool operator==(const user&) const = default;
};

struct personal_access_token {
  std::string id, user_id, name, hashed_token, created_by;
  opt_time expiration_date, created_at, last_used;

  bool operator==(const personal_access_token&) const = default;
};

// A network resource a group holds or a rule names: NetBird's {"ID": ..., "Type": ...}
// ("host" | "subnet" | "domain" | "peer"); an empty id means none.
struct resource {
  std::string id, type;

  bool operator==(const resource&) const = default;
};

struct group {
  std::string id, account_id, name, issued;
  std::vector<std::string> peers; // from group_peers
  std::vector<resource> resources;

  bool operator==(const group&) const = default;
};

struct port_range {
  std::uint16_t start = 0, end = 0;

  bool operator==(const port_range&) const = default;
};

struct policy_rule {
  std::string id, policy_id, name, description, action, protocol;
  bool enabled = false, bidirectional = false;
  std::vector<std::string> sources, destinations, ports;
  std::vector<port_range> port_ranges;
  resource source_resource, destination_resource;
  // SSH rules: group id -> local users it may log in as; or one user.
  std::map<std::string, std::vector<std::string>> authorized_groups;
  std::string authorized_user;

  bool operator==(const policy_rule&) const = default;
};

struct policy {
  std::string id, account_id, name, description;
  bool enabled = false;
  std::vector<std::string> source_posture_checks;
  std::vector<policy_rule> rules;

  bool operator==(const policy&) const = default;
};

struct setup_key {
  std::string id, account_id, key, key_secret, name, type;
  opt_time created_at, expires_at, updated_at, last_used;
  bool revoked = false, ephemeral = false, allow_extra_dns_labels = false;
  std::int64_t used_times = 0, usage_limit = 0;
  std::vector<std::string> auto_groups;

  bool operator==(const setup_key&) const = default;
};

struct route {
  std::string id, account_id, network, net_id, description, peer;
  std::vector<std::string> domains, peer_groups, groups, access_control_groups;
  bool keep_route = false, masquerade = false, enabled = false, skip_auto_apply = false;
  std::int64_t network_type = 0, metric = 0;

  bool operator==(const route&) const = default;
};

struct nameserver {
  std::string ip;
  int ns_type = 1;
  int port = 53;

  bool operator==(const nameserver&) const = default;
};

struct nameserver_group {
  std::string id, account_id, name, description;
  std::vector<nameserver> nameservers;
  std::vector<std::string> groups, domains;
  bool primary = false, enabled = false, search_domains_enabled = false;

  bool operator==(const nameserver_group&) const = default;
};

struct posture_check {
  std::string id, account_id, name, description, checks_json;

  bool operator==(const posture_check&) const = default;
};

// NetBird's networks (management/server/networks): a network groups resources (a host or subnet
// prefix, or a domain) and the routers (a peer, or every peer of some groups) that reach them.
struct network_def {
  std::string id, account_id, name, description;

  bool operator==(const network_def&) const = default;
};

struct network_resource {
  std::string id, network_id, account_id, name, description;
  std::string type;   // "host" | "subnet" | "domain"
  std::string domain; // a domain resource's domain
  std::string prefix; // a host's or subnet's prefix ("10.0.0.1/32"); "" for a domain
  bool enabled = true;

  bool operator==(const network_resource&) const = default;
};

struct network_router {
  std::string id, network_id, account_id, peer; // `peer` or `peer_groups`, never both
  std::vector<std::string> peer_groups;
  bool masquerade = false;
  std::int64_t metric = 9999;
  bool enabled = true;

  bool operator==(const network_router&) const = default;
};

struct account {
  std::string id, created_by, domain, domain_category;
  opt_time created_at;
  bool is_domain_primary_account = false;
  network net;
  std::vector<std::string> dns_disabled_management_groups;
  account_settings settings;
  std::vector<peer> peers;
  std::vector<user> users;
  std::vector<personal_access_token> tokens;
  std::vector<group> groups;
  std::vector<policy> policies;
  std::vector<setup_key> setup_keys;
  std::vector<route> routes;
  std::vector<nameserver_group> nameserver_groups;
  std::vector<posture_check> posture_checks;
  std::vector<network_def> networks;
  std::vector<network_resource> network_resources;
  std::vector<network_router> network_routers;

  const peer* find_peer(const std::string& peer_id) const;
  const group* find_group_by_name(const std::string& name) const;

  bool operator==(const account&) const = default;
};

} // namespace nbm::core
