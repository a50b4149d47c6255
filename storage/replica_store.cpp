#include "storage/replica_store.hpp"

#include <soci/soci.h>

namespace nbm::storage {

void ensure_replica_tables(soci::session& sql) {
  sql << "CREATE TABLE IF NOT EXISTS nbm_replicas (id text PRIMARY KEY, address text NOT NULL, "
         "host text NOT NULL, pid bigint NOT NULL DEFAULT 0, started_at timestamptz NOT NULL, "
         "heartbeat_at timestamptz NOT NULL)";
  sql << "CREATE TABLE IF NOT EXISTS nbm_replica_sessions (peer_id text PRIMARY KEY, "
         "account_id text NOT NULL, token bigint NOT NULL, replica_id text NOT NULL)";
  sql << "CREATE INDEX IF NOT EXISTS idx_nbm_replica_sessions_replica "
         "ON nbm_replica_sessions (replica_id)";
}

namespace {

constexpr const char* sweep_pick_sql =
    "SELECT id, address, CAST(EXTRACT(EPOCH FROM (now() - heartbeat_at)) * 1000 AS bigint) "
    "FROM nbm_replicas WHERE id <> :self AND "
    "heartbeat_at < now() - CAST(:lease AS bigint) * interval '1 millisecond' "
    "ORDER BY heartbeat_at LIMIT 1 FOR UPDATE SKIP LOCKED";

// The dead replica's session rows go, and each peer whose row still holds exactly that token is
// disconnected (a newer session elsewhere is not touched): one statement.
constexpr const char* sweep_end_sql =
    "WITH s AS (DELETE FROM nbm_replica_sessions WHERE replica_id = :id "
    "RETURNING account_id, peer_id, token) "
    "UPDATE peers AS p SET peer_status_connected = false, "
    "peer_status_last_seen = CURRENT_TIMESTAMP, peer_status_session_started_at = 0 "
    "FROM s WHERE p.account_id = s.account_id AND p.id = s.peer_id AND s.token <> 0 AND "
    "p.peer_status_session_started_at = s.token "
    "RETURNING p.account_id, p.id, CAST(s.token AS text)";

} // namespace

struct replica_store::impl {
  soci::session sql;
};

replica_store::replica_store(const db_options& opts) : impl_(std::make_unique<impl>()) {
  if (opts.kind != engine::postgres)
    throw store_error("replica liveness is for PostgreSQL stores only");
  open_session(impl_->sql, opts);
}

replica_store::~replica_store() = default;

bool replica_store::alive() {
  return session_alive(impl_->sql, engine::postgres);
}

void replica_store::enroll(const replica_info& self) {
  long long pid = self.pid;
  std::string id = self.id, address = self.address, host = self.host;
  impl_->sql << "INSERT INTO nbm_replicas (id, address, host, pid, started_at, heartbeat_at) "
                "VALUES (:id, :address, :host, :pid, now(), now()) ON CONFLICT (id) DO UPDATE SET "
                "address = EXCLUDED.address, host = EXCLUDED.host, pid = EXCLUDED.pid, "
                "heartbeat_at = now()",
      soci::use(id, "id"), soci::use(address, "address"), soci::use(host, "host"),
      soci::use(pid, "pid");
}

bool replica_store::heartbeat(const std::string& id) {
  std::string i = id;
  soci::statement st =
      (impl_->sql.prepare << "UPDATE nbm_replicas SET heartbeat_at = now() WHERE id = :id",
       soci::use(i, "id"));
  st.execute(true);
  return st.get_affected_rows() > 0;
}

std::optional<dead_replica> replica_store::sweep_one(const std::string& self,
                                                     std::int64_t lease_ms) {
  auto& sql = impl_->sql;
  soci::transaction tr(sql);
  dead_replica d;
  std::string me = self;
  long long lease = lease_ms, silent = 0;
  soci::indicator ind = soci::i_null;
  sql << sweep_pick_sql, soci::use(me, "self"), soci::use(lease, "lease"), soci::into(d.id, ind),
      soci::into(d.address), soci::into(silent);
  if (!sql.got_data() || ind != soci::i_ok) {
    tr.rollback();
    return std::nullopt;
  }
  d.silent_ms = silent;
  long long recorded = 0;
  sql << "SELECT count(*) FROM nbm_replica_sessions WHERE replica_id = :id", soci::use(d.id, "id"),
      soci::into(recorded);
  d.recorded = static_cast<std::size_t>(recorded);
  {
    soci::rowset<soci::row> rows = (sql.prepare << sweep_end_sql, soci::use(d.id, "id"));
    for (const auto& r : rows) {
      status_write w;
      w.account_id = r.get<std::string>(0);
      w.peer_id = r.get<std::string>(1);
      w.token = std::stoll(r.get<std::string>(2));
      w.op = status_op::disconnect;
      d.ended.push_back(std::move(w));
    }
  }
  sql << "DELETE FROM nbm_replicas WHERE id = :id", soci::use(d.id, "id");
  tr.commit();
  return d;
}

std::size_t replica_store::held(const std::string& id) {
  std::string i = id;
  long long n = 0;
  impl_->sql << "SELECT count(*) FROM nbm_replica_sessions s JOIN peers p ON p.id = s.peer_id "
                "AND p.account_id = s.account_id WHERE s.replica_id = :id AND "
                "p.peer_status_connected = true AND p.peer_status_session_started_at = s.token",
      soci::use(i, "id"), soci::into(n);
  return static_cast<std::size_t>(n);
}

std::size_t replica_store::alive_replicas(std::int64_t lease_ms) {
  long long lease = lease_ms, n = 0;
  impl_->sql << "SELECT count(*) FROM nbm_replicas WHERE "
                "heartbeat_at >= now() - CAST(:lease AS bigint) * interval '1 millisecond'",
      soci::use(lease, "lease"), soci::into(n);
  return static_cast<std::size_t>(n);
}

std::vector<replica_row> replica_store::list() {
  std::vector<replica_row> out;
  soci::rowset<soci::row> rows =
      impl_->sql.prepare
      << "SELECT r.id, r.address, r.host, r.pid, "
         "CAST(EXTRACT(EPOCH FROM r.started_at) * 1000 AS bigint), "
         "CAST(EXTRACT(EPOCH FROM r.heartbeat_at) * 1000 AS bigint), "
         "CAST(EXTRACT(EPOCH FROM (now() - r.heartbeat_at)) * 1000 AS bigint), "
         "(SELECT count(*) FROM nbm_replica_sessions s WHERE s.replica_id = r.id), "
         "(SELECT count(*) FROM nbm_replica_sessions s JOIN peers p ON p.id = s.peer_id AND "
         "p.account_id = s.account_id WHERE s.replica_id = r.id AND "
         "p.peer_status_connected = true AND p.peer_status_session_started_at = s.token) "
         "FROM nbm_replicas r ORDER BY r.id";
  for (const auto& r : rows) {
    replica_row x;
    x.id = r.get<std::string>(0);
    x.address = r.get<std::string>(1);
    x.host = r.get<std::string>(2);
    x.pid = r.get<long long>(3);
    x.started_at_ms = r.get<long long>(4);
    x.heartbeat_at_ms = r.get<long long>(5);
    x.heartbeat_age_ms = r.get<long long>(6);
    x.sessions_recorded = r.get<long long>(7);
    x.peers_held = r.get<long long>(8);
    out.push_back(std::move(x));
  }
  return out;
}

void replica_store::resign(const std::string& id) {
  std::string i = id;
  impl_->sql << "UPDATE nbm_replicas SET heartbeat_at = TIMESTAMPTZ 'epoch' WHERE id = :id",
      soci::use(i, "id");
}

void replica_store::forget_all() {
  soci::transaction tr(impl_->sql);
  impl_->sql << "DELETE FROM nbm_replica_sessions";
  impl_->sql << "DELETE FROM nbm_replicas";
  tr.commit();
}

} // namespace nbm::storage
