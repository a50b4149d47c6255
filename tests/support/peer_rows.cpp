#include "tests/support/peer_rows.hpp"

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
  std::tm tm{};
  int y, mo, d, h, mi;
  double s;
  if (std::sscanf(text.c_str(), "%d-%d-%d %d:%d:%lf", &y, &mo, &d, &h, &mi, &s) != 6)
    throw std::runtime_error("not a database time: " + text);
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  double t = static_cast<double>(timegm(&tm)) + s;
  // Offset: the first '+' or '-' after the time part.
  auto pos = text.find_first_of("+-", 19);
  if (pos != std::string::npos) {
    int oh = 0, om = 0;
    std::sscanf(text.c_str() + pos + 1, "%d:%d", &oh, &om);
    double off = oh * 3600.0 + om * 60.0;
    t += text[pos] == '+' ? -off : off;
  }
  return t;
}

} // namespace nbm::test
