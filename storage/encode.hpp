// Internal to storage/: NetBird's row encodings of the configuration objects (groups, policies and
// their rules, routes, nameserver groups, account settings) and the typed INSERT / UPDATE that
// writes them on either engine. account_store and config_store both write through these, so an
// object is encoded one way only. Not for use outside storage/*.cpp.
#pragma once

#include "core/model.hpp"
#include "storage/database.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace soci {
class session;
}

namespace nbm::storage::detail {

using cell = std::optional<std::string>;

// "name" -> "\"name\"" (quoted: several NetBird columns are SQL keywords: key, primary, groups).
std::string sql_ident(const std::string& ident);

// A time bound for PostgreSQL: text without a zone (SQLite's CURRENT_TIMESTAMP) is UTC, not the
// session's time zone.
std::string pg_time_text(const std::string& t);

// `id`, or a fresh NetBird-style (xid-shaped) id when it is empty.
std::string or_new_id(const std::string& id);

// One row to write: values as text (NULL = nullopt), typed per engine at bind time from the
// schema's column types (PostgreSQL casts the text; SQLite's column affinity converts it).
struct row_values {
  std::vector<std::string> cols;
  std::vector<cell> vals;

  void put(const std::string& c, cell v) {
    cols.push_back(c);
    vals.push_back(std::move(v));
  }
  void text(const std::string& c, const std::string& v) { put(c, v); }
  void flag(const std::string& c, bool v) { put(c, std::string(v ? "1" : "0")); }
  void number(const std::string& c, std::int64_t v) { put(c, std::to_string(v)); }
  void time(const std::string& c, const core::opt_time& v) { put(c, v); }
  void json_text(const std::string& c, const std::string& dumped) { put(c, dumped); }
  void strings(const std::string& c, const std::vector<std::string>& v); // a JSON array
};

// INSERT INTO table (...) VALUES (...) [suffix]; returns the rows inserted.
std::size_t insert_row(soci::session& sql, engine kind, const std::string& table,
                       const row_values& r, const std::string& suffix = "");

// UPDATE table SET <every column of r except `keys` and `keep`> WHERE <each key column = its
// value in r>; returns the rows updated (0: no such row).
std::size_t update_row(soci::session& sql, engine kind, const std::string& table,
                       const row_values& r, const std::vector<std::string>& keys,
                       const std::vector<std::string>& keep = {});

// --- NetBird's rows ---------------------------------------------------------------------------
// Each row carries a fresh public_id (NetBird's PublicID): an INSERT keeps it, a replacing UPDATE
// passes keep = {"public_id"} so the stored one stays.
row_values group_row(const core::group& g);   // groups (members are group_peers rows)
row_values policy_row(const core::policy& p); // policies (rules are policy_rules rows)
row_values policy_rule_row(const core::policy_rule& x, const std::string& policy_id);
row_values route_row(const core::route& x);                       // routes
row_values nameserver_group_row(const core::nameserver_group& g); // name_server_groups
row_values network_row(const core::network_def& n);               // networks
row_values network_resource_row(const core::network_resource& x); // network_resources
row_values network_router_row(const core::network_router& x);     // network_routers
// The settings_* columns of accounts, appended to `r`.
void put_settings(row_values& r, const core::account_settings& s);

// One group_peers row (ON CONFLICT DO NOTHING); false when it was there already.
bool write_group_peer(soci::session& sql, engine kind, const std::string& account_id,
                      const std::string& group_id, const std::string& peer_id);

} // namespace nbm::storage::detail
