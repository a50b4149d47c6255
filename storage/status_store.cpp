#include "storage/status_store.hpp"

#include <soci/soci.h>

#include <algorithm>
#include <stdexcept>
#include <unordered_map>

namespace nbm::storage {

namespace {

constexpr const char* connect_sql =
    "UPDATE peers SET peer_status_connected = true, peer_status_last_seen = CURRENT_TIMESTAMP, "
    "peer_status_login_expired = false, peer_status_session_started_at = :tok "
    "WHERE (account_id = :acc AND id = :id) AND peer_status_session_started_at < :tok";

constexpr const char* disconnect_sql =
    "UPDATE peers SET peer_status_connected = false, peer_status_last_seen = CURRENT_TIMESTAMP, "
    "peer_status_session_started_at = 0 "
    "WHERE (account_id = :acc AND id = :id) AND peer_status_session_started_at = :tok";

// One statement for a whole batch on PostgreSQL. The arrays arrive as text literals and are
// unnested in step, so the statement text never changes with the batch size (one prepared plan).
constexpr const char* pg_batch_sql =
    "UPDATE peers AS p SET "
    "peer_status_connected = v.conn, "
    "peer_status_login_expired = CASE WHEN v.conn THEN false ELSE p.peer_status_login_expired END, "
    "peer_status_session_started_at = CASE WHEN v.conn THEN v.tok ELSE 0 END, "
    "peer_status_last_seen = CURRENT_TIMESTAMP "
    "FROM unnest(CAST(:accs AS text[]), CAST(:ids AS text[]), CAST(:toks AS bigint[]), "
    "CAST(:conns AS boolean[])) AS v(acc, id, tok, conn) "
    "WHERE p.account_id = v.acc AND p.id = v.id AND "
    "((v.conn AND p.peer_status_session_started_at < v.tok) OR "
    "(NOT v.conn AND v.tok <> 0 AND p.peer_status_session_started_at = v.tok)) "
    "RETURNING p.id";

// The same, recording sessions for a replica: a landed connect upserts the peer's session row
// (a newer token only), a landed disconnect deletes the row that holds its token. One statement,
// so a connect never lands unrecorded.
constexpr const char* pg_batch_recording_sql =
    "WITH v AS (SELECT * FROM unnest(CAST(:accs AS text[]), CAST(:ids AS text[]), "
    "CAST(:toks AS bigint[]), CAST(:conns AS boolean[])) AS v(acc, id, tok, conn)), "
    "u AS (UPDATE peers AS p SET "
    "peer_status_connected = v.conn, "
    "peer_status_login_expired = CASE WHEN v.conn THEN false ELSE p.peer_status_login_expired END, "
    "peer_status_session_started_at = CASE WHEN v.conn THEN v.tok ELSE 0 END, "
    "peer_status_last_seen = CURRENT_TIMESTAMP "
    "FROM v WHERE p.account_id = v.acc AND p.id = v.id AND "
    "((v.conn AND p.peer_status_session_started_at < v.tok) OR "
    "(NOT v.conn AND v.tok <> 0 AND p.peer_status_session_started_at = v.tok)) "
    "RETURNING p.account_id AS acc, p.id AS id, v.tok AS tok, v.conn AS conn), "
    "ins AS (INSERT INTO nbm_replica_sessions AS r (peer_id, account_id, token, replica_id) "
    "SELECT id, acc, tok, CAST(:rep AS text) FROM u WHERE conn "
    "ON CONFLICT (peer_id) DO UPDATE SET account_id = EXCLUDED.account_id, "
    "token = EXCLUDED.token, replica_id = EXCLUDED.replica_id WHERE r.token < EXCLUDED.token), "
    "del AS (DELETE FROM nbm_replica_sessions AS r USING u "
    "WHERE NOT u.conn AND r.peer_id = u.id AND r.token = u.tok) "
    "SELECT id FROM u";

// PostgreSQL array literal element: always quoted, with " and \ escaped.
void append_pg_element(std::string& out, const std::string& s) {
  if (out.size() > 1)
    out += ',';
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  out += '"';
}

constexpr const char* leftover_select_sql =
    "SELECT account_id, id, CAST(COALESCE(peer_status_session_started_at, 0) AS TEXT) FROM peers "
    "WHERE peer_status_connected = true";

// NetBird's own server writes connected without a token: such a row is ended only as it was read.
constexpr const char* tokenless_disconnect_sql =
    "UPDATE peers SET peer_status_connected = false, peer_status_last_seen = CURRENT_TIMESTAMP "
    "WHERE (account_id = :acc AND id = :id) AND peer_status_connected = true AND "
    "COALESCE(peer_status_session_started_at, 0) = 0";

} // namespace

struct status_store::impl {
  std::unique_ptr<soci::session> owned; // its own session (none: a borrowed one)
  soci::session* sql = nullptr;
  // Bound variables of the prepared single-row statements.
  std::string acc, id;
  long long tok = 0;
  std::unique_ptr<soci::statement> connect_st, disconnect_st;
  // PostgreSQL group commit: one prepared statement, arrays bound as text, landed ids fetched in
  // bulk.
  std::string accs, ids, toks, conns, rep;
  std::vector<std::string> landed_ids;
  std::unique_ptr<soci::statement> batch_st;

  void prepare() {
    connect_st =
        std::make_unique<soci::statement>((sql->prepare << connect_sql, soci::use(tok, "tok"),
                                           soci::use(acc, "acc"), soci::use(id, "id")));
    disconnect_st =
        std::make_unique<soci::statement>((sql->prepare << disconnect_sql, soci::use(tok, "tok"),
                                           soci::use(acc, "acc"), soci::use(id, "id")));
  }

  void prepare_batch() {
    landed_ids.resize(1);
    if (rep.empty())
      batch_st = std::make_unique<soci::statement>(
          (sql->prepare << pg_batch_sql, soci::into(landed_ids), soci::use(accs, "accs"),
           soci::use(ids, "ids"), soci::use(toks, "toks"), soci::use(conns, "conns")));
    else
      batch_st = std::make_unique<soci::statement>(
          (sql->prepare << pg_batch_recording_sql, soci::into(landed_ids), soci::use(accs, "accs"),
           soci::use(ids, "ids"), soci::use(toks, "toks"), soci::use(conns, "conns"),
           soci::use(rep, "rep")));
  }

  bool run(soci::statement& st, const std::string& a, const std::string& p, long long t) {
    acc = a;
    id = p;
    tok = t;
    st.execute(true);
    return st.get_affected_rows() > 0;
  }
};

status_store::status_store(const db_options& opts, std::string replica_id)
    : impl_(std::make_unique<impl>()), kind_(opts.kind) {
  impl_->owned = std::make_unique<soci::session>();
  open_session(*impl_->owned, opts);
  impl_->sql = impl_->owned.get();
  prepare(std::move(replica_id));
}

status_store::status_store(soci::session& sql, engine kind, std::string replica_id)
    : impl_(std::make_unique<impl>()), kind_(kind) {
  impl_->sql = &sql;
  prepare(std::move(replica_id));
}

void status_store::prepare(std::string replica_id) {
  if (kind_ == engine::postgres)
    impl_->rep = std::move(replica_id);
  try {
    impl_->prepare();
    if (kind_ == engine::postgres)
      impl_->prepare_batch();
  } catch (const std::exception& e) {
    throw store_error(std::string("preparing fenced status statements: ") + e.what());
  }
}

status_store::~status_store() = default;

bool status_store::alive() {
  return session_alive(*impl_->sql, kind_);
}

bool status_store::connect(const std::string& account_id, const std::string& peer_id,
                           core::session_token token) {
  ++statements_;
  return impl_->run(*impl_->connect_st, account_id, peer_id, token);
}

bool status_store::disconnect(const std::string& account_id, const std::string& peer_id,
                              core::session_token token) {
  if (token == 0)
    return false;
  ++statements_;
  return impl_->run(*impl_->disconnect_st, account_id, peer_id, token);
}

std::vector<bool> status_store::apply_batch(const std::vector<status_write>& batch) {
  std::vector<bool> landed(batch.size(), false);
  if (batch.empty())
    return landed;
  std::unordered_map<std::string, std::size_t> index;
  index.reserve(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i)
    if (!index.emplace(batch[i].peer_id, i).second)
      throw std::invalid_argument("status batch holds two writes of peer " + batch[i].peer_id);
  // A recording store sends even one write through the batch statement (it records the session).
  if (kind_ == engine::sqlite || (batch.size() == 1 && impl_->rep.empty())) {
    // SQLite: one transaction, so the batch costs one commit (one fsync) instead of one per row.
    std::unique_ptr<soci::transaction> tr;
    if (batch.size() > 1)
      tr = std::make_unique<soci::transaction>(*impl_->sql);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const auto& w = batch[i];
      landed[i] = w.op == status_op::connect ? connect(w.account_id, w.peer_id, w.token)
                                             : disconnect(w.account_id, w.peer_id, w.token);
    }
    if (tr)
      tr->commit();
    return landed;
  }
  auto& m = *impl_;
  m.accs = "{";
  m.ids = "{";
  m.toks = "{";
  m.conns = "{";
  for (const auto& w : batch) {
    append_pg_element(m.accs, w.account_id);
    append_pg_element(m.ids, w.peer_id);
    if (m.toks.size() > 1)
      m.toks += ',';
    m.toks += std::to_string(w.token);
    if (m.conns.size() > 1)
      m.conns += ',';
    m.conns += w.op == status_op::connect ? "t" : "f";
  }
  m.accs += '}';
  m.ids += '}';
  m.toks += '}';
  m.conns += '}';
  ++statements_;
  // Room for every row the statement can return; SOCI shrinks the vector to the rows fetched.
  m.landed_ids.assign(batch.size(), std::string());
  if (!m.batch_st->execute(true))
    m.landed_ids.clear(); // no row passed its fence
  for (const auto& id : m.landed_ids) {
    auto it = index.find(id);
    if (it != index.end())
      landed[it->second] = true;
  }
  return landed;
}

status_store::sweep_result status_store::end_leftover_sessions() {
  const auto sessions = connected_sessions();
  return {sessions.size(), end_sessions(sessions)};
}

std::vector<status_write> status_store::connected_sessions() {
  std::vector<status_write> out;
  soci::rowset<soci::row> rows = (impl_->sql->prepare << leftover_select_sql);
  ++statements_;
  for (const auto& r : rows) {
    status_write w;
    w.account_id = r.get<std::string>(0);
    w.peer_id = r.get<std::string>(1);
    // As text: SOCI's SQLite backend would read the 64-bit token into an int.
    w.token = std::stoll(r.get<std::string>(2));
    w.op = status_op::disconnect;
    out.push_back(std::move(w));
  }
  return out;
}

std::size_t status_store::end_sessions(const std::vector<status_write>& sessions,
                                       std::size_t batch) {
  batch = std::max<std::size_t>(batch, 1);
  std::size_t ended = 0;
  std::vector<status_write> fenced;
  std::vector<const status_write*> tokenless;
  fenced.reserve(sessions.size());
  for (const auto& w : sessions) {
    if (w.token == 0)
      tokenless.push_back(&w);
    else
      fenced.push_back({w.account_id, w.peer_id, w.token, status_op::disconnect});
  }
  // Peer ids are unique in the table, so a batch never holds two writes of one peer.
  for (std::size_t at = 0; at < fenced.size(); at += batch) {
    const auto end = std::min(fenced.size(), at + batch);
    const std::vector<status_write> part(fenced.begin() + static_cast<std::ptrdiff_t>(at),
                                         fenced.begin() + static_cast<std::ptrdiff_t>(end));
    for (bool landed : apply_batch(part))
      ended += landed ? 1 : 0;
  }
  for (const auto* w : tokenless) {
    std::string a = w->account_id, p = w->peer_id;
    soci::statement st =
        (impl_->sql->prepare << tokenless_disconnect_sql, soci::use(a, "acc"), soci::use(p, "id"));
    st.execute(true);
    ++statements_;
    ended += st.get_affected_rows() > 0 ? 1 : 0;
  }
  return ended;
}

} // namespace nbm::storage
