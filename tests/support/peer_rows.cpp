#include "tests/support/peer_rows.hpp"

#include "core/registration.hpp"
#include "storage/schema.hpp"

#include <soci/soci.h>

#include <ctime>
#include <stdexcept>

namespace nbm::test {

void seed_peers(const storage::db_options& opts, int n, const std::string& account) {
  soci::session sql;
  storage::open_session(sql, opts);
  storage::ensure_schema(sql, opts.kind);
  soci::transaction tr(sql);
  sql << "INSERT INTO accounts (id, domain) VALUES (:a, 'test.example') ON CONFLICT DO NOTHING",
      soci::use(account);
  for (int i = 0; i < n; ++i) {
    std::string id = "p" + std::to_string(i);
    std::string key = account + "-key-" + std::to_string(i);
    std::string ip = "\"100.64.0." + std::to_string(i % 250 + 1) + "\"";
    std::string label = "peer-" + std::to_string(i);
    sql << "INSERT INTO peers (id, account_id, key, ip, name, dns_label, user_id) "
           "VALUES (:id, :acc, :key, :ip, :name, :label, '')",
        soci::use(id, "id"), soci::use(account, "acc"), soci::use(key, "key"), soci::use(ip, "ip"),
        soci::use(label, "name"), soci::use(label, "label");
  }
  tr.commit();
}

peer_status_row read_status(const storage::db_options& opts, const std::string& peer_id) {
  soci::session sql;
  storage::open_session(sql, opts);
  peer_status_row r;
  int connected = 0, expired = 0;
  long long token = 0;
  std::string seen;
  soci::indicator seen_ind = soci::i_ok;
  sql << "SELECT CAST(COALESCE(peer_status_connected, false) AS INTEGER), "
         "peer_status_session_started_at, "
         "CAST(COALESCE(peer_status_login_expired, false) AS INTEGER), "
         "CAST(peer_status_last_seen AS TEXT) FROM peers WHERE id = :id",
      soci::into(connected), soci::into(token), soci::into(expired), soci::into(seen, seen_ind),
      soci::use(peer_id);
  if (!sql.got_data())
    throw std::runtime_error("no peer " + peer_id);
  r.connected = connected != 0;
  r.token = token;
  r.login_expired = expired != 0;
  r.last_seen = seen_ind == soci::i_null ? "" : seen;
  return r;
}

void exec_sql(const storage::db_options& opts, const std::string& statement) {
  soci::session sql;
  storage::open_session(sql, opts);
  sql << statement;
}

double db_now(const storage::db_options& opts) {
  soci::session sql;
  storage::open_session(sql, opts);
  std::string now;
  sql << "SELECT CAST(CURRENT_TIMESTAMP AS TEXT)", soci::into(now);
  return parse_db_time(now);
}

double parse_db_time(const std::string& text) {
  auto t = core::parse_store_time(text);
  if (!t)
    throw std::runtime_error("not a database time: " + text);
  return *t;
}

} // namespace nbm::test
