// The commit of an administrator's change of an account (core::admin_change, decided by the
// account's actor with core::prepare_change): one transaction through config_store, admin_store
// and account_store, in NetBird's encodings. What it wrote is named by account_store::part bits,
// so the caller reads back exactly those parts.
#pragma once

#include "core/change.hpp"
#include "storage/database.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace soci {
class session;
}

namespace nbm::storage {

struct change_commit {
  bool found = true;     // false: the object (or the account) was gone: nothing was written
  unsigned parts = 0;    // the account_store::part bits the commit wrote
  std::string id;        // the saved or created object's id
  std::string plain_key; // a created setup key's plain text, shown once (never logged)
  // The account's network serial read right after the commit (0: the account is gone, or the read
  // failed). One more than before it when no other writer moved it meanwhile.
  std::uint64_t serial_after = 0;
  // What the commit chose that the change does not say, for apply_commit: a saved policy's rule
  // ids (in the order of its rules), the groups a new network resource joined (as written).
  std::vector<std::string> rule_ids;
  std::vector<core::group> regrouped;
};

// Commits `c` (prepare_change accepted it against `a`, the account as its actor holds it). Throws
// store_error or soci_error when the database fails or refuses a row; nothing is written then.
change_commit commit_change(soci::session& sql, engine kind, const core::account& a,
                            const core::admin_change& c);

// Puts what `commit` (commit_change of `c` against `a`, found) wrote into `a`, as
// account_store::load_parts would read it back: the ids chosen at the commit, objects in id order,
// a group's members sorted and once each, the groups whose resources a network change rewrote.
// Leaves the serial alone (the caller knows whether the commit's is the next one). False for the
// kinds it does not apply (users, tokens, setup keys, JWT groups, a deleted account): `a` is
// unchanged then, and the caller reads `commit.parts` back.
bool apply_commit(core::account& a, const core::admin_change& c, const change_commit& commit);

} // namespace nbm::storage
