// NetBird's validation of an account's configuration objects, as its HTTP handlers and account
// manager apply it: a proposed group, policy, route or nameserver group is checked against the
// account it would join. A refusal carries NetBird's HTTP status (422 invalid argument, 409
// conflict, 400 bad request, 404 not found) and message.
#pragma once

#include "core/model.hpp"

#include <optional>
#include <string>

namespace nbm::core {

struct problem {
  int status = 422;
  std::string message;
};

using verdict = std::optional<problem>; // nullopt: acceptable

// `g.id` empty = a new group. "All" cannot be renamed; names are unique in the account; every
// listed peer must exist.
verdict validate_group(const account& a, const group& g);
// Whether a group may be deleted: not All, and not linked to a policy, route, nameserver group,
// setup key, user, DNS setting or the integrated validator (NetBird's order and messages, 400).
verdict validate_group_delete(const account& a, const std::string& group_id);
// Rule ids (update only): the policy's own, once each (422 "invalid rule ID"). Rules: name, action,
// protocol, ports (1-65535; none with all/icmp), port ranges, exclusive sources/sourceResource (and
// destinations), every group known.
verdict validate_policy(const account& a, const policy& p);
// Route: network xor domains, peer xor peer groups, net id 1..40, metric 1..9999, groups known,
// no other route of the same router on the same network (409).
verdict validate_route(const account& a, const route& r);
// Nameserver group: name 1..40 and unique, 1..3 nameservers, groups non-empty and known,
// primary <=> no domains, search domains only with domains.
verdict validate_nameserver_group(const account& a, const nameserver_group& g);
// Canonical "a.b.c.d/n" for an IPv4/IPv6 prefix with its host bits cleared, and its NetBird
// network type (1 IPv4, 2 IPv6); nullopt if it is not a prefix.
std::optional<std::pair<std::string, int>> canonical_prefix(const std::string& text);

} // namespace nbm::core
