// Typed reads of NetBird's core objects, column-scoped peer writes that never touch the
// session-status columns, and a whole-store copy between engines (SQLite -> PostgreSQL migration).
#pragma once

#include "core/model.hpp"
#include "storage/database.hpp"

#include <optional>
#include <string>
#include <vector>

namespace soci {
class session;
}

namespace nbm::storage {

class account_store {
public:
  account_store(soci::session& sql, engine kind) : sql_(sql), kind_(kind) {}

  std::vector<std::string> account_ids();
  // The account with every child object (peers, users, tokens, groups with members, policies with
  // rules, setup keys, routes, nameserver groups, posture checks); nullopt if it does not exist.
  std::optional<core::account> load_account(const std::string& account_id);
  std::optional<core::peer> peer_by_key(const std::string& wg_key);
  std::optional<core::peer> peer_by_id(const std::string& account_id, const std::string& peer_id);

  // Column-scoped peer writes: each updates only its own columns, never connected, last_seen,
  // session_started_at or login_expired (those belong to the fenced status writes). Return rows
  // changed.
  bool update_peer_meta(const std::string& account_id, const std::string& peer_id,
                        const core::peer_meta& meta);
  bool rename_peer(const std::string& account_id, const std::string& peer_id,
                   const std::string& name, const std::string& dns_label);
  bool update_last_login(const std::string& account_id, const std::string& peer_id,
                         const std::string& when);
  bool update_location(const std::string& account_id, const std::string& peer_id,
                       const core::peer_location& loc);

private:
  soci::session& sql_;
  engine kind_;
};

// Copies every row of the core tables from `src` into `dst` (whose schema ensure_schema made),
// converting column types per engine (numeric 0/1 <-> boolean, datetime text <-> timestamptz).
// Columns only one side has are skipped. Returns the number of rows copied. Runs in one transaction
// on `dst`.
std::size_t copy_store(soci::session& src, engine src_kind, soci::session& dst, engine dst_kind);

} // namespace nbm::storage
