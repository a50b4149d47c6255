// NetBird's activity store (management/server/activity/store): the `events` table (and its
// `deleted_users`) in a database of its own, as NetBird keeps it: `<datadir>/events.db` (SQLite,
// NB_ACTIVITY_EVENT_SQLITE_FILE overrides the name or path) unless
// NB_ACTIVITY_EVENT_STORE_ENGINE=postgres, then NB_ACTIVITY_EVENT_POSTGRES_DSN.
#pragma once

#include "core/activity.hpp"
#include "storage/database.hpp"

#include <cstddef>
#include <string>
#include <vector>

namespace nbm::storage {

// Where NetBird keeps the events for `datadir` (throws store_error as NetBird fails: an unknown
// engine, PostgreSQL without its DSN).
db_options events_db_options(const std::string& datadir);

class event_store {
public:
  // `encryption_key_b64`: DataStoreEncryptionKey (base64 of 32 bytes), which NetBird encrypts the
  // deleted users' names and emails with; "" (or not a key): they stay in the events' meta.
  event_store(soci::session& sql, engine kind, const std::string& encryption_key_b64 = {});

  // The tables and index as NetBird's AutoMigrate makes them (kept when they exist).
  void ensure_schema();
  // In one transaction, in order; an event without a timestamp gets now (UTC). As NetBird's Save:
  // an event whose meta holds "email" and "name" (a deleted user) keeps them encrypted in
  // deleted_users under its target id, and they leave the meta.
  void append(const std::vector<core::activity::event>& events);
  // NetBird's Get: an account's events ordered by timestamp (then id), newest first unless
  // `descending` is false; a deleted target's name and email as the meta's "username" and
  // "email", a deleted initiator's as initiator_name and initiator_email.
  std::vector<core::activity::event> list(const std::string& account_id, std::size_t offset,
                                          std::size_t limit, bool descending = true);

private:
  soci::session& sql_;
  engine kind_;
  std::string key_; // 32 bytes, or "" (no encryption: nothing goes to deleted_users)
};

} // namespace nbm::storage
