// A change of an account's configuration as an administrator asks for it (NetBird's REST API): one
// typed value per kind, decoded by the api layer and decided by the account's actor against the
// account it holds (prepare_change), then committed by its store worker (storage/change_store).
// Pure data and pure functions: the standard library and core/ only.
#pragma once

#include "core/model.hpp"
#include "core/validate.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace nbm::core {

namespace change {

// Groups, policies, routes and nameserver groups: `id` of the object empty = a new one (the store
// gives it an id); otherwise the stored one of that id is replaced.
struct save_group {
  group g;
};
struct delete_group {
  std::string id;
};
struct save_policy {
  policy p;
};
struct delete_policy {
  std::string id;
};
struct save_route {
  route r;
};
struct delete_route {
  std::string id;
};
struct save_nameservers {
  nameserver_group g;
};
struct delete_nameservers {
  std::string id;
};
struct dns_settings {
  std::vector<std::string> disabled_management_groups;
};
// The account's settings as a whole (NetBird's handler replaces them); `account_id`: the account
// the request names.
struct settings {
  std::string account_id;
  account_settings s;
};
// What a peer update names (absent: unchanged); `result` is the peer after it (prepare_change).
struct update_peer {
  std::string id;
  std::optional<std::string> name;
  std::optional<bool> ssh_enabled, login_expiration_enabled, inactivity_expiration_enabled,
      approval_required;
  peer result;
};
struct delete_peer {
  std::string id;
};
struct create_setup_key {
  std::string name;
  bool reusable = false;
  std::int64_t expires_in_seconds = 0; // 0: never
  std::int64_t usage_limit = 0;        // 0: unlimited
  std::vector<std::string> auto_groups;
  bool ephemeral = false, allow_extra_dns_labels = false;
};
struct update_setup_key {
  std::string id;
  bool revoked = false;
  std::vector<std::string> auto_groups;
};
struct delete_setup_key {
  std::string id;
};
// A service user (`id` given by the asker); NetBird invites other users through an IdP.
struct create_user {
  std::string id, role, name;
  std::vector<std::string> auto_groups;
  bool is_service_user = false;
};
struct update_user {
  std::string id;
  std::optional<std::string> role;
  std::optional<std::vector<std::string>> auto_groups;
  std::optional<bool> blocked;
  user result; // the user after it (prepare_change)
};
struct delete_user {
  std::string id;
};
// A personal access token of `user_id`: only its hash travels (the plain text stays with the
// asker, who shows it once).
struct create_token {
  std::string user_id, id, name, hashed_token;
  std::int64_t expires_in_days = 0;
};
struct delete_token {
  std::string user_id, id;
};

// Networks (management/server/networks): `id` empty = a new one. A resource's `address` is
// classified by prepare_change into its type, prefix or domain; `touched` are the groups whose
// resources prepare_change changed (the resource joins `groups` and leaves the others).
struct save_network {
  network_def n;
};
struct delete_network {
  std::string id;
  std::vector<group> touched; // groups that held one of its resources, without them
};
struct save_resource {
  network_resource r;
  std::string address;
  std::vector<std::string> groups;
  std::vector<group> touched;
};
struct delete_resource {
  std::string network_id, id;
  std::vector<group> touched;
};
struct save_router {
  network_router r;
};
struct delete_router {
  std::string network_id, id;
};
// Posture checks (management/server/posture_checks.go): `c.id` empty = a new one; `c.checks_json`
// as NetBird stores it (core/posture: posture_definition_json).
struct save_posture_check {
  posture_check c;
};
struct delete_posture_check {
  std::string id;
};
// NetBird's JWT group sync at a user's login (settings.jwt_groups_enabled; core/jwt_groups):
// `names` from the token's groups claim, the rest derived by prepare_change.
struct jwt_groups {
  std::string user_id;
  std::vector<std::string> names;
  std::vector<std::string> create;      // group names to create (issued "jwt")
  std::vector<std::string> auto_groups; // the user's auto groups after it, without `create`
  std::vector<std::string> add, remove; // existing JWT groups the user joins / leaves
  bool propagate = false;               // groups_propagation_enabled: the user's peers follow
};

// NetBird's ApproveUser / RejectUser: a user pending approval is unblocked, or deleted.
struct approve_user {
  std::string id;
};
struct reject_user {
  std::string id;
};

// NetBird's DeleteAccount (owner only): the account and everything in it (peers, users and their
// tokens, groups, policies, routes, nameserver groups, setup keys, posture checks, networks); its
// activity log stays.
struct delete_account {
  std::string account_id; // the account the request names
};

// NetBird's GetUserFromUserAuth: a JWT's last-login claim newer than the user's last login is
// stored (DashboardLogin recorded when the user had logged in before).
struct dashboard_login {
  std::string user_id;
  std::string at;       // store text of the claim's time
  std::string as_given; // the claim as the token carried it (the event's meta)
};

} // namespace change

using change_kind = std::variant<
    change::save_group, change::delete_group, change::save_policy, change::delete_policy,
    change::save_route, change::delete_route, change::save_nameservers, change::delete_nameservers,
    change::dns_settings, change::settings, change::update_peer, change::delete_peer,
    change::create_setup_key, change::update_setup_key, change::delete_setup_key,
    change::create_user, change::update_user, change::delete_user, change::create_token,
    change::delete_token, change::save_network, change::delete_network, change::save_resource,
    change::delete_resource, change::save_router, change::delete_router, change::jwt_groups,
    change::approve_user, change::reject_user, change::save_posture_check,
    change::delete_posture_check, change::delete_account, change::dashboard_login>;

struct admin_change {
  std::string caller; // the id of the user who asks (a user of the account, not blocked)
  change_kind what;
};

// Decides `c` against `a` as NetBird's handlers do: the caller's rights, the objects it names
// exist, references resolve, names are free; and completes what it derives (a renamed peer's DNS
// label, the fields of a group an update keeps, the user or peer after an update). nullopt: it
// may be committed. A refusal carries NetBird's HTTP status and message; nothing is changed.
verdict prepare_change(const account& a, admin_change& c);

// Whether committing `c` moves the account's network serial (users, tokens and setup keys do not:
// NetBird's rule).
bool moves_serial(const admin_change& c);

// NetBird's "<what>: <id> not found" (404) for the object `c` names; for a commit that found the
// object gone meanwhile.
problem not_found_problem(const admin_change& c);

// At most `n` bytes of client text, then "..." when it was longer (for messages).
std::string clip(std::string_view text, std::size_t n = 64);

} // namespace nbm::core
