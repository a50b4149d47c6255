// What the admin CLI says about a store before it touches it: which store it is (never with a
// password) and whether it holds NetBird's tables yet.
#pragma once

#include "storage/database.hpp"

#include <string>

namespace nbm::storage {

// "sqlite /abs/path/store.db" or "postgres host=H port=P dbname=D user=U" (what the DSN leaves to
// libpq's defaults is left out; never the password).
std::string describe(const db_options& opts);

// Whether the session's database already holds a NetBird store (its accounts table, in the
// session's schema on PostgreSQL).
bool has_store_tables(soci::session& sql, engine kind);

} // namespace nbm::storage
