// A PostgreSQL connection of its own for LISTEN/NOTIFY (libpq, no SOCI): the cluster channel of
// the replicas serving one store. The channel is named after the store's schema, so stores in
// different schemas of one database never hear each other. Blocking calls: use it from one thread
// of its own (actors/cluster runs it off the CAF scheduler).
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace nbm::storage {

// The channel of the store whose schema is `schema` (current_schema()).
std::string cluster_channel(const std::string& schema);

class notify_link {
public:
  // `dsn`: a libpq keyword/value DSN or a postgres:// URL (never logged: it may hold a password).
  explicit notify_link(std::string dsn);
  ~notify_link();
  notify_link(const notify_link&) = delete;
  notify_link& operator=(const notify_link&) = delete;

  // Connects (TCP keepalives on) and LISTENs on the store's channel; throws store_error with a
  // message that never holds the DSN's password.
  void open();
  bool is_open() const;
  void close();
  // The connection's socket (-1 when closed), to wait on for notifications.
  int socket() const;
  // The channel's name (after open()).
  const std::string& channel() const;
  // Publishes `payload` (at most 8000 bytes) on the channel; throws store_error (and closes) when
  // the connection failed.
  void notify(const std::string& payload);
  // The payloads that arrived (reads what the socket holds; never waits); throws store_error (and
  // closes) when the connection was lost.
  std::vector<std::string> take();
  // One round trip (SELECT 1): throws store_error (and closes) when the connection is dead.
  void ping();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace nbm::storage
