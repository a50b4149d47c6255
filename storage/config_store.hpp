// The write path of an account's configuration objects: groups (with their members), policies
// (with their rules), routes, nameserver groups, the account's settings and DNS settings. Each
// write is ONE transaction that also bumps accounts.network_serial by exactly 1 (NetBird's
// IncrementNetworkSerial on every such change) and returns the new serial; a write that fails
// leaves nothing behind (no row, no bump). Rows are written in NetBird's encodings through the
// same encoders account_store uses, so account_store::load_account reads them back unchanged.
//
// Validation (names, protocols, ports, group references, ...) belongs to the callers. The store
// itself only refuses what would corrupt the account:
//   - save_*: throws store_error when the object's account does not exist, when the id belongs to
//     an object of another account, or when the database rejects a row (e.g. a rule id another
//     policy already uses); the message names the object.
//   - delete_* and update_*: return std::nullopt when the object (for update_*: the account) is
//     not there; nothing is written and the serial stays. Database failures throw store_error.
#pragma once

#include "core/model.hpp"
#include "storage/database.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace soci {
class session;
}

namespace nbm::storage {

// What a save wrote: the object's id (generated NetBird-style when it was empty) and the
// account's network serial after the write.
struct saved {
  std::string id;
  std::uint64_t serial = 0;
};

class config_store {
public:
  config_store(soci::session& sql, engine kind) : sql_(sql), kind_(kind) {}

  // Inserts the group or replaces the stored one of that id (its public_id stays), and makes its
  // group_peers rows exactly g.peers.
  saved save_group(const core::group& g);
  // The group and its memberships. References to it elsewhere (policies, routes, ...) are the
  // caller's to check first, as NetBird refuses to delete a linked group.
  std::optional<std::uint64_t> delete_group(const std::string& account_id,
                                            const std::string& group_id);

  // Inserts the policy or replaces the stored one of that id, and replaces ALL its rules with
  // p.rules (rules that are no longer listed are gone). Rules with an empty id get one: the first
  // the policy's own id (what NetBird's API gives the rule of a one-rule policy), any further one
  // a fresh id. policy_id of every rule is the policy's id whatever the model says.
  saved save_policy(const core::policy& p);
  // The policy as save_policy writes it: its id (a new one when empty), its rules' ids as above
  // and their policy_id. Applied to a policy that has them all, it changes nothing.
  static core::policy as_saved(const core::policy& p);
  std::optional<std::uint64_t> delete_policy(const std::string& account_id,
                                             const std::string& policy_id);

  saved save_route(const core::route& r);
  std::optional<std::uint64_t> delete_route(const std::string& account_id,
                                            const std::string& route_id);

  saved save_nameserver_group(const core::nameserver_group& g);
  std::optional<std::uint64_t> delete_nameserver_group(const std::string& account_id,
                                                       const std::string& id);

  // The settings_* columns of the account.
  std::optional<std::uint64_t> update_settings(const std::string& account_id,
                                               const core::account_settings& s);
  // accounts.dns_settings_disabled_management_groups.
  std::optional<std::uint64_t>
  update_dns_settings(const std::string& account_id,
                      const std::vector<std::string>& disabled_management_groups);

private:
  soci::session& sql_;
  engine kind_;
};

} // namespace nbm::storage
