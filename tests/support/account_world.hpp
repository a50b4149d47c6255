// A store with one fresh account, as the storage and actor suites set it up. Header-only.
#pragma once

#include "storage/account_store.hpp"
#include "storage/admin_store.hpp"
#include "storage/schema.hpp"

#include <soci/soci.h>

#include <memory>
#include <string>

namespace nbm::test {

// A store (schema ensured) with one account made as the admin CLI makes it: an All group and
// NetBird's default All <-> All policy, no PAT.
struct account_world {
  storage::db_options db;
  std::unique_ptr<soci::session> sql;
  std::string account, all_group;

  explicit account_world(storage::db_options o) : db(std::move(o)) {
    storage::database d(db);
    storage::ensure_schema(d);
    sql = std::make_unique<soci::session>();
    storage::open_session(*sql, db);
    storage::new_account spec;
    spec.owner_email = "owner@example.com";
    spec.with_pat = false;
    auto made = storage::admin_store(*sql, db.kind).create_account(spec);
    account = made.account_id;
    all_group = made.all_group_id;
  }
  storage::account_store accounts() { return storage::account_store(*sql, db.kind); }
};

} // namespace nbm::test
