#include "storage/notify_link.hpp"

#include "storage/database.hpp"

#include <libpq-fe.h>

#include <cstdint>

namespace nbm::storage {

namespace {

// libpq's message without the DSN (libpq never quotes a password in its errors, but a message is
// cut to one line and a few hundred characters all the same).
std::string pq_message(PGconn* c) {
  std::string m = c ? PQerrorMessage(c) : "out of memory";
  while (!m.empty() && (m.back() == '\n' || m.back() == ' '))
    m.pop_back();
  if (auto nl = m.find('\n'); nl != std::string::npos)
    m = m.substr(0, nl);
  if (m.size() > 300)
    m = m.substr(0, 300) + "...";
  return m;
}

std::string hex64(std::uint64_t v) {
  static const char* d = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4)
    s[static_cast<std::size_t>(i)] = d[v & 15];
  return s;
}

} // namespace

std::string cluster_channel(const std::string& schema) {
  std::uint64_t h = 1469598103934665603ull; // FNV-1a
  for (unsigned char c : schema) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return "nbm_cluster_" + hex64(h);
}

struct notify_link::impl {
  std::string dsn;
  PGconn* conn = nullptr;
  std::string channel;

  void fail(const std::string& what) {
    const auto m = pq_message(conn);
    if (conn)
      PQfinish(conn);
    conn = nullptr;
    throw store_error("cluster channel: " + what + ": " + m);
  }

  // A statement whose result we only check.
  void exec(const char* sql, int nparams = 0, const char* const* params = nullptr,
            std::string* first = nullptr) {
    PGresult* r = PQexecParams(conn, sql, nparams, nullptr, params, nullptr, nullptr, 0);
    const auto st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      PQclear(r);
      fail(std::string("statement failed (") + sql + ")");
    }
    if (first && PQntuples(r) > 0 && PQnfields(r) > 0)
      *first = PQgetvalue(r, 0, 0);
    PQclear(r);
  }
};

notify_link::notify_link(std::string dsn) : impl_(std::make_unique<impl>()) {
  impl_->dsn = std::move(dsn);
}

notify_link::~notify_link() {
  close();
}

void notify_link::open() {
  close();
  // The DSN first (expand_dbname), then keepalives: a dead server or network is noticed in about
  // 15 s instead of the system's two hours.
  // A connect_timeout the DSN does not set is 10 s (libpq would wait for TCP's own timeout).
  const char* keys[] = {
      "connect_timeout",     "dbname",           "keepalives",       "keepalives_idle",
      "keepalives_interval", "keepalives_count", "application_name", nullptr};
  const char* vals[] = {"10", impl_->dsn.c_str(),     "1",    "5", "2",
                        "3",  "netbird-mgmt cluster", nullptr};
  impl_->conn = PQconnectdbParams(keys, vals, 1);
  if (!impl_->conn || PQstatus(impl_->conn) != CONNECTION_OK)
    impl_->fail("cannot connect");
  // The store's schema names the channel (as the presence lock is keyed by it).
  std::string schema;
  impl_->exec("SELECT COALESCE(current_schema(), '')", 0, nullptr, &schema);
  impl_->channel = cluster_channel(schema);
  impl_->exec(("LISTEN " + impl_->channel).c_str());
  if (PQsetnonblocking(impl_->conn, 0) != 0)
    impl_->fail("cannot set blocking mode");
}

bool notify_link::is_open() const {
  return impl_->conn != nullptr;
}

void notify_link::close() {
  if (impl_->conn)
    PQfinish(impl_->conn);
  impl_->conn = nullptr;
}

int notify_link::socket() const {
  return impl_->conn ? PQsocket(impl_->conn) : -1;
}

const std::string& notify_link::channel() const {
  return impl_->channel;
}

void notify_link::notify(const std::string& payload) {
  if (!impl_->conn)
    throw store_error("cluster channel: not connected");
  const char* params[] = {impl_->channel.c_str(), payload.c_str()};
  impl_->exec("SELECT pg_notify($1, $2)", 2, params);
}

std::vector<std::string> notify_link::take() {
  std::vector<std::string> out;
  if (!impl_->conn)
    throw store_error("cluster channel: not connected");
  if (!PQconsumeInput(impl_->conn))
    impl_->fail("connection lost");
  while (PGnotify* n = PQnotifies(impl_->conn)) {
    if (impl_->channel == n->relname)
      out.emplace_back(n->extra);
    PQfreemem(n);
  }
  if (PQstatus(impl_->conn) != CONNECTION_OK)
    impl_->fail("connection lost");
  return out;
}

void notify_link::ping() {
  if (!impl_->conn)
    throw store_error("cluster channel: not connected");
  impl_->exec("SELECT 1");
}

} // namespace nbm::storage
