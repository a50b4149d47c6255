// The commit of an administrator's change of an account (core::admin_change, decided by the
// account's actor with core::prepare_change): one transaction through config_store, admin_store
// and account_store, in NetBird's encodings. What it wrote is named by account_store::part bits,
// so the caller reads back exactly those parts.
#pragma once

#include "core/change.hpp"
#include "storage/database.hpp"

#include <string>

namespace soci {
class session;
}

namespace nbm::storage {

struct change_commit {
  bool found = true;     // false: the object (or the account) was gone: nothing was written
  unsigned parts = 0;    // the account_store::part bits the commit wrote
  std::string id;        // the saved or created object's id
  std::string plain_key; // a created setup key's plain text, shown once (never logged)
};

// Commits `c` (prepare_change accepted it against `a`, the account as its actor holds it). Throws
// store_error or soci_error when the database fails or refuses a row; nothing is written then.
change_commit commit_change(soci::session& sql, engine kind, const core::account& a,
                            const core::admin_change& c);

} // namespace nbm::storage
