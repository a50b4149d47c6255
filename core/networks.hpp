// NetBird's networks as an administrator changes them (management/server/networks): what a
// resource's address is, which policies apply in a network, and the decisions on a change of a
// network, a resource or a router (the account actor's prepare_change calls these).
#pragma once

#include "core/change.hpp"

#include <optional>
#include <string>
#include <vector>

namespace nbm::core {

struct resource_address {
  std::string type;   // "host" | "subnet" | "domain"
  std::string domain; // a domain's
  std::string prefix; // a host's or subnet's ("10.0.0.1/32")
};
// GetResourceType: a prefix (/32 or /128: host, else subnet), an address (host), or a domain;
// nullopt for anything else.
std::optional<resource_address> classify_resource_address(const std::string& address);

// GetPoliciesAppliedInNetwork: the enabled policies with an enabled rule whose destination is a
// resource of the network or a group holding one, in the account's order.
std::vector<std::string> policies_in_network(const account& a, const std::string& network_id);
// The groups holding resource `id`, in the account's order.
std::vector<std::string> resource_groups(const account& a, const std::string& resource_id);
// The address NetBird's API shows for a resource (its prefix, or its domain).
std::string resource_address_text(const network_resource& r);

// The groups of `a` whose resources change when resource `res` is held by exactly `holders`.
std::vector<group> regroup_resource(const account& a, const resource& res,
                                    const std::vector<std::string>& holders);

verdict prepare_network_change(const account& a, change::save_network& c);
verdict prepare_network_change(const account& a, change::delete_network& c);
verdict prepare_network_change(const account& a, change::save_resource& c);
verdict prepare_network_change(const account& a, change::delete_resource& c);
verdict prepare_network_change(const account& a, change::save_router& c);
verdict prepare_network_change(const account& a, change::delete_router& c);

} // namespace nbm::core
