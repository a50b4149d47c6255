// NetBird's store schema for the core tables, created when missing and brought forward the way
// NetBird's start-up brings it forward (gorm AutoMigrate adds missing tables and columns and never
// drops data; the named migrations below rename, backfill and move legacy data).
#pragma once

#include "storage/database.hpp"

#include <optional>
#include <string>
#include <vector>

namespace soci {
class session;
}

namespace nbm::storage {

// Creates or migrates the schema on `sql`. Idempotent; on PostgreSQL serialized across processes by
// an advisory lock, so replicas starting together do not race. Throws store_error naming the failed
// step.
void ensure_schema(soci::session& sql, engine kind);

// Convenience: one pooled session of `db`.
void ensure_schema(database& db);

// The core tables this schema manages, in creation order.
std::vector<std::string> core_tables();

// Logical column types, stored as gorm stores Go types: SQLite text/numeric/integer/datetime,
// PostgreSQL text/boolean/bigint/timestamptz.
enum class column_type { text, boolean, integer, datetime };

// The columns this schema gives `table` (empty for a table it does not manage), in order.
std::vector<std::string> schema_columns(const std::string& table);
// The type of one of them; nullopt for a column the schema does not define.
std::optional<column_type> schema_column_type(const std::string& table, const std::string& column);

// Columns of `table` as the database has them now (empty if the table does not exist).
std::vector<std::string> existing_columns(soci::session& sql, engine kind,
                                          const std::string& table);

} // namespace nbm::storage
