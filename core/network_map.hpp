// A peer's network map, computed from its account as NetBird's Go server computes it (policies ->
// remote peers and firewall rules, routes -> routes and route firewall rules, DNS). Pure C++: no
// I/O, no wire types. An `account_view` indexes one immutable account once per change; every
// peer's map is then computed from the shared indexes.
#pragma once

#include "core/model.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace nbm::core {

// Values as on NetBird's wire (RuleDirection, RuleAction, RuleProtocol).
enum class rule_direction : int { in = 0, out = 1 };
enum class rule_action : int { accept = 0, drop = 1 };
enum class rule_protocol : int { unknown = 0, all = 1, tcp = 2, udp = 3, icmp = 4 };

struct firewall_rule {
  std::string peer_ip; // the remote peer's address
  rule_direction direction = rule_direction::in;
  rule_action action = rule_action::accept;
  rule_protocol protocol = rule_protocol::all;
  std::string port;                // one port, or "" (then see `range`)
  std::optional<port_range> range; // PortInfo range: only when `port` is "" and tcp/udp
  std::string policy_id;           // NetBird sends the policy RULE id here

  bool operator==(const firewall_rule&) const = default;
};

struct route_firewall_rule {
  std::vector<std::string> source_ranges; // "<ip>/32", "0.0.0.0/0"
  rule_action action = rule_action::accept;
  std::string destination; // the route's network prefix
  rule_protocol protocol = rule_protocol::all;
  std::string port;                // PortInfo.port ("" = unset)
  std::optional<port_range> range; // PortInfo.range
  bool is_dynamic = false;         // a domain route
  std::vector<std::string> domains;
  std::string policy_id; // the policy id (not the rule id)
  std::string route_id;

  bool operator==(const route_firewall_rule&) const = default;
};

struct map_route {
  std::string id; // route id, or "<routeID>:<peerID>" for a peer-group router's copy
  std::string network;
  std::int64_t network_type = 0; // 0 invalid, 1 IPv4, 2 IPv6, 3 domain
  std::string peer_key;          // the routing peer's WireGuard key
  std::int64_t metric = 0;
  bool masquerade = false;
  std::string net_id;
  std::vector<std::string> domains;
  bool keep_route = false;
  bool skip_auto_apply = false;

  bool operator==(const map_route&) const = default;
};

struct dns_record {
  std::string name;      // FQDN
  std::int64_t type = 1; // 1 A, 5 CNAME, 28 AAAA
  std::string record_class = "IN";
  std::int64_t ttl = 300;
  std::string rdata;

  bool operator==(const dns_record&) const = default;
};

struct custom_zone {
  std::string domain; // FQDN with a trailing dot
  // Peers whose records (an A record for the DNS label and for each extra label) the zone holds,
  // in id order, before `records`: account_view::peer_records renders them, once per account
  // version rather than once per receiving peer.
  std::vector<std::uint32_t> peers;
  std::vector<dns_record> records;

  bool operator==(const custom_zone&) const = default;
};

struct map_nameserver_group {
  std::vector<nameserver> nameservers;
  bool primary = false;
  std::vector<std::string> domains;
  bool search_domains_enabled = false;

  bool operator==(const map_nameserver_group&) const = default;
};

struct dns_config {
  bool service_enable = true;
  std::vector<map_nameserver_group> nameserver_groups;
  std::vector<custom_zone> custom_zones;
  std::int64_t forwarder_port = 5353;

  bool operator==(const dns_config&) const = default;
};

// One peer's view. Peers are indices into the account's `peers` vector; every list is in a
// deterministic order (the same account gives the same map, byte for byte, once encoded).
struct network_map {
  std::uint64_t serial = 0;
  std::uint32_t peer = 0; // the target
  std::vector<std::uint32_t> remote_peers;
  std::vector<std::uint32_t> offline_peers; // login-expired peers the target may see
  std::vector<firewall_rule> firewall_rules;
  std::vector<map_route> routes;
  std::vector<route_firewall_rule> route_firewall_rules;
  dns_config dns;
  bool ssh_enabled = false; // SSH turned on for the target by a policy
  // NetBird's Checks (client_checks in core/posture): per posture check the target is subject to,
  // the process paths it must report in its meta.
  std::vector<std::vector<std::string>> checks;

  bool operator==(const network_map&) const = default;
};

// The server-side inputs of a map that are not in the account.
struct map_context {
  std::string dns_domain = "netbird.selfhosted"; // --dns-domain; the account's setting wins
  std::chrono::system_clock::time_point now = std::chrono::system_clock::now();
};

// Lookups over one immutable account, built once; `map_for` is then cheap and thread-safe (const).
class account_view {
public:
  account_view(std::shared_ptr<const account> acc, map_context ctx);
  ~account_view();
  account_view(const account_view&) = delete;
  account_view& operator=(const account_view&) = delete;
  account_view(account_view&&) noexcept;            // the indexes point into the shared account,
  account_view& operator=(account_view&&) noexcept; // which moves along unchanged

  const account& acc() const { return *acc_; }
  const std::shared_ptr<const account>& shared() const { return acc_; }
  const map_context& context() const { return ctx_; }
  // The DNS domain peers' FQDNs are under (the account's setting, else the server's).
  const std::string& dns_domain() const;
  std::string fqdn(std::uint32_t peer) const;
  // The peers-zone records of one peer (none without a DNS label or domain).
  std::vector<dns_record> peer_records(std::uint32_t peer) const;

  std::optional<std::uint32_t> peer_index(const std::string& peer_id) const;
  std::optional<std::uint32_t> peer_index_by_key(const std::string& wg_key) const;

  network_map map_for(std::uint32_t peer) const;

  // A hash of everything of `m` that reaches the wire except its serial, including the content of
  // every remote/offline peer it names (key, address, FQDN, SSH key, agent version). Two maps with
  // the same fingerprint are the same to the peer.
  std::uint64_t fingerprint(const network_map& m) const;

private:
  struct indexes;
  std::shared_ptr<const account> acc_;
  map_context ctx_;
  std::unique_ptr<indexes> ix_;
};

} // namespace nbm::core
