// NetBird's activity log (management/server/activity): its activity codes with their messages and
// string codes, an event as NetBird's `events` table keeps it, and the events an admin change
// causes (the meta NetBird writes for each). Pure: the standard library and core/ only.
#pragma once

#include "core/change.hpp"
#include "core/model.hpp"

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace nbm::core::activity {

// NetBird's Activity values (stored as integers: never renumbered).
enum code : int {
  peer_added_by_user = 0,
  peer_added_with_setup_key = 1,
  user_joined = 2,
  account_created = 4,
  peer_removed_by_user = 5,
  policy_added = 9,
  policy_updated = 10,
  policy_removed = 11,
  setup_key_created = 12,
  setup_key_updated = 13,
  setup_key_revoked = 14,
  group_created = 16,
  group_updated = 17,
  group_added_to_peer = 18,
  group_removed_from_peer = 19,
  group_added_to_user = 20,
  group_removed_from_user = 21,
  user_role_updated = 22,
  group_added_to_setup_key = 23,
  group_removed_from_setup_key = 24,
  group_added_to_disabled_management_groups = 25,
  group_removed_from_disabled_management_groups = 26,
  route_created = 27,
  route_removed = 28,
  route_updated = 29,
  peer_ssh_enabled = 30,
  peer_ssh_disabled = 31,
  peer_renamed = 32,
  peer_login_expiration_enabled = 33,
  peer_login_expiration_disabled = 34,
  nameserver_group_created = 35,
  nameserver_group_deleted = 36,
  nameserver_group_updated = 37,
  account_peer_login_expiration_enabled = 38,
  account_peer_login_expiration_disabled = 39,
  account_peer_login_expiration_duration_updated = 40,
  personal_access_token_created = 41,
  personal_access_token_deleted = 42,
  service_user_created = 43,
  service_user_deleted = 44,
  user_blocked = 45,
  user_unblocked = 46,
  user_deleted = 47,
  group_deleted = 48,
  user_logged_in_peer = 49,
  peer_login_expired = 50,
  dashboard_login = 51,
  peer_approved = 57,
  peer_approval_revoked = 58,
  transferred_owner_role = 59,
  posture_check_created = 60,
  posture_check_updated = 61,
  posture_check_deleted = 62,
  peer_inactivity_expiration_enabled = 63,
  peer_inactivity_expiration_disabled = 64,
  account_peer_inactivity_expiration_enabled = 65,
  account_peer_inactivity_expiration_disabled = 66,
  account_peer_inactivity_expiration_duration_updated = 67,
  setup_key_deleted = 68,
  user_group_propagation_enabled = 69,
  user_group_propagation_disabled = 70,
  account_routing_peer_dns_resolution_enabled = 71,
  account_routing_peer_dns_resolution_disabled = 72,
  account_dns_domain_updated = 84,
  account_lazy_connection_enabled = 85,
  account_lazy_connection_disabled = 86,
  user_approved = 89,
  user_rejected = 90,
  user_created = 91,
  account_deleted = 99999,
};

// NetBird's Message() and StringCode(): "UNKNOWN_ACTIVITY" for a value it does not name.
const char* message(int activity);
const char* string_code(int activity);

// A meta value as NetBird stores it (JSON): text, a boolean or an integer.
using meta_value = std::variant<std::string, bool, std::int64_t>;
using meta = std::vector<std::pair<std::string, meta_value>>;

// One row of NetBird's `events` table.
struct event {
  std::uint64_t id = 0;  // given by the store
  std::string timestamp; // store text (UTC), given when written when empty
  int activity = 0;
  std::string initiator_id, target_id, account_id;
  meta m;
  // Read back only: a deleted initiator's name and email as NetBird keeps them (deleted_users).
  std::string initiator_name, initiator_email;
};

// "sys": NetBird's initiator of what the system does itself (expirations).
inline constexpr const char* system_initiator = "sys";

// NetBird's Peer.EventMeta: name, fqdn, ip, created_at and location.
meta peer_event_meta(const peer& p, const std::string& dns_domain);

// The events NetBird records for `c` (decided and committed), in NetBird's order: `before` and
// `after` are the account around the commit, `new_id` the created object's id, `dns_domain` the
// peers' domain (for fqdn metas).
std::vector<event> events_of(const admin_change& c, const account& before, const account& after,
                             const std::string& new_id, const std::string& dns_domain);

// The events of whatever turned `before` into `after` (another process's change, the admin CLI):
// each object created, changed or deleted as if changed one at a time by `initiator`.
std::vector<event> events_of_diff(const account& before, const account& after,
                                  const std::string& initiator, const std::string& dns_domain);

} // namespace nbm::core::activity
