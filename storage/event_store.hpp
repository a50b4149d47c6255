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
  event_store(soci::session& sql, engine kind) : sql_(sql), kind_(kind) {}

  // The tables and index as NetBird's AutoMigrate makes them (kept when they exist).
  void ensure_schema();
  // In one transaction, in order; an event without a timestamp gets now (UTC). NetBird keeps a
  // deleted user's email and name encrypted in deleted_users: they are left out of the meta here.
  void append(const std::vector<core::activity::event>& events);
  // NetBird's Get: an account's events ordered by timestamp (then id), newest first unless
  // `descending` is false.
  std::vector<core::activity::event> list(const std::string& account_id, std::size_t offset,
                                          std::size_t limit, bool descending = true);

private:
  soci::session& sql_;
  engine kind_;
};

} // namespace nbm::storage
