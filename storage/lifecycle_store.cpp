#include "storage/lifecycle_store.hpp"

#include <soci/soci.h>

namespace nbm::storage {

namespace {

bool truthy(const soci::row& r, std::size_t i) {
  if (r.get_indicator(i) == soci::i_null)
    return false;
  const auto v = r.get<std::string>(i);
  return v == "1" || v == "true" || v == "t" || v == "TRUE" || v == "1.0";
}

std::int64_t integer(const soci::row& r, std::size_t i) {
  if (r.get_indicator(i) == soci::i_null)
    return 0;
  const auto v = r.get<std::string>(i);
  try {
    return static_cast<std::int64_t>(std::stoll(v));
  } catch (...) {
    try {
      return static_cast<std::int64_t>(std::stod(v)); // SQLite numeric affinity: "1.0"
    } catch (...) {
      return 0;
    }
  }
}

core::opt_time text(const soci::row& r, std::size_t i) {
  if (r.get_indicator(i) == soci::i_null)
    return std::nullopt;
  return r.get<std::string>(i);
}

// The candidate filter (core::lifecycle_candidate, in SQL).
constexpr const char* candidate_sql =
    "(p.ephemeral = true OR (COALESCE(p.user_id, '') <> '' AND "
    "(p.login_expiration_enabled = true OR p.inactivity_expiration_enabled = true)))";

} // namespace

std::string lifecycle_store::time_expr(const std::string& column) const {
  // Read and compared in one text form per engine: PostgreSQL's UTC with microseconds (all it
  // stores), SQLite's text as written.
  if (kind_ == engine::postgres)
    return "to_char(" + column + " AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')";
  return "CAST(" + column + " AS TEXT)";
}

std::vector<core::lifecycle_facts> lifecycle_store::select(const std::string& where,
                                                           const std::string& account,
                                                           const std::string& peer) {
  const std::string q =
      "SELECT p.account_id, p.id, COALESCE(p.user_id, ''), "
      "CAST(p.login_expiration_enabled AS TEXT), CAST(p.inactivity_expiration_enabled AS TEXT), "
      "CAST(p.ephemeral AS TEXT), CAST(p.peer_status_connected AS TEXT), "
      "CAST(p.peer_status_login_expired AS TEXT), "
      "CAST(p.peer_status_session_started_at AS TEXT), " +
      time_expr("p.last_login") + ", " + time_expr("p.peer_status_last_seen") +
      ", CAST(a.settings_peer_login_expiration_enabled AS TEXT), "
      "CAST(a.settings_peer_login_expiration AS TEXT), "
      "CAST(a.settings_peer_inactivity_expiration_enabled AS TEXT), "
      "CAST(a.settings_peer_inactivity_expiration AS TEXT) "
      "FROM peers p JOIN accounts a ON a.id = p.account_id WHERE " +
      where + " ORDER BY p.account_id, p.id";
  std::vector<core::lifecycle_facts> out;
  auto consume = [&](soci::rowset<soci::row>& rs) {
    for (const auto& r : rs) {
      core::lifecycle_facts f;
      f.account_id = r.get<std::string>(0);
      f.peer_id = r.get<std::string>(1);
      f.sso = !r.get<std::string>(2).empty();
      f.login_expiration_enabled = truthy(r, 3);
      f.inactivity_expiration_enabled = truthy(r, 4);
      f.ephemeral = truthy(r, 5);
      f.connected = truthy(r, 6);
      f.login_expired = truthy(r, 7);
      f.session_started_at = integer(r, 8);
      f.last_login = text(r, 9);
      f.last_seen = text(r, 10);
      f.settings.login_enabled = truthy(r, 11);
      f.settings.login_period_ns = integer(r, 12);
      f.settings.inactivity_enabled = truthy(r, 13);
      f.settings.inactivity_period_ns = integer(r, 14);
      out.push_back(std::move(f));
    }
  };
  std::string acc = account, id = peer;
  if (!peer.empty()) {
    soci::rowset<soci::row> rs = (sql_.prepare << q, soci::use(acc, "acc"), soci::use(id, "id"));
    consume(rs);
  } else if (!account.empty()) {
    soci::rowset<soci::row> rs = (sql_.prepare << q, soci::use(acc, "acc"));
    consume(rs);
  } else {
    soci::rowset<soci::row> rs = (sql_.prepare << q);
    consume(rs);
  }
  return out;
}

std::vector<std::pair<std::string, std::uint64_t>> lifecycle_store::account_serials() {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  soci::rowset<soci::row> rs =
      (sql_.prepare << "SELECT id, CAST(COALESCE(network_serial, 0) AS TEXT) FROM accounts");
  for (const auto& r : rs)
    out.emplace_back(r.get<std::string>(0), static_cast<std::uint64_t>(integer(r, 1)));
  return out;
}

std::vector<core::lifecycle_facts> lifecycle_store::candidates() {
  return select(candidate_sql, "", "");
}

std::optional<account_lifecycle> lifecycle_store::account(const std::string& account_id) {
  std::string acc = account_id;
  soci::rowset<soci::row> rs =
      (sql_.prepare << "SELECT CAST(settings_peer_login_expiration_enabled AS TEXT), "
                       "CAST(settings_peer_login_expiration AS TEXT), "
                       "CAST(settings_peer_inactivity_expiration_enabled AS TEXT), "
                       "CAST(settings_peer_inactivity_expiration AS TEXT) "
                       "FROM accounts WHERE id = :acc",
       soci::use(acc, "acc"));
  std::optional<account_lifecycle> out;
  for (const auto& r : rs) {
    out.emplace();
    out->settings.login_enabled = truthy(r, 0);
    out->settings.login_period_ns = integer(r, 1);
    out->settings.inactivity_enabled = truthy(r, 2);
    out->settings.inactivity_period_ns = integer(r, 3);
  }
  if (out)
    out->peers = select(std::string("p.account_id = :acc AND ") + candidate_sql, account_id, "");
  return out;
}

std::optional<core::lifecycle_facts> lifecycle_store::peer(const std::string& account_id,
                                                           const std::string& peer_id) {
  auto rows = select("p.account_id = :acc AND p.id = :id", account_id, peer_id);
  if (rows.empty())
    return std::nullopt;
  return std::move(rows.front());
}

std::uint64_t lifecycle_store::bump_serial(const std::string& account_id) {
  long long serial = 0;
  soci::indicator ind = soci::i_null;
  sql_ << "UPDATE accounts SET network_serial = COALESCE(network_serial, 0) + 1 WHERE id = :acc "
          "RETURNING network_serial",
      soci::use(account_id, "acc"), soci::into(serial, ind);
  return sql_.got_data() && ind == soci::i_ok ? static_cast<std::uint64_t>(serial) : 0;
}

bool lifecycle_store::mark_login_expired(const core::lifecycle_facts& observed,
                                         core::lifecycle_rule rule, std::uint64_t* serial_after) {
  const bool login = rule == core::lifecycle_rule::login;
  if (!login && rule != core::lifecycle_rule::inactivity)
    return false;
  const auto& t = login ? observed.last_login : observed.last_seen;
  if (login && !t)
    return false; // no login on record: nothing expires
  const std::string time_col = login ? "last_login" : "peer_status_last_seen";
  std::string q = "UPDATE peers SET peer_status_login_expired = true, "
                  "peer_status_connected = false "
                  "WHERE account_id = :acc AND id = :id "
                  "AND COALESCE(peer_status_login_expired, false) = false "
                  "AND COALESCE(user_id, '') <> '' AND ";
  q += login ? "login_expiration_enabled = true "
             : "inactivity_expiration_enabled = true "
               "AND COALESCE(peer_status_connected, false) = false ";
  q += t ? "AND " + time_expr(time_col) + " = :t " : "AND " + time_col + " IS NULL ";
  q += login ? "AND EXISTS (SELECT 1 FROM accounts a WHERE a.id = :acc AND "
               "a.settings_peer_login_expiration_enabled = true AND "
               "a.settings_peer_login_expiration = :period)"
             : "AND EXISTS (SELECT 1 FROM accounts a WHERE a.id = :acc AND "
               "a.settings_peer_inactivity_expiration_enabled = true AND "
               "a.settings_peer_inactivity_expiration = :period)";
  std::string acc = observed.account_id, id = observed.peer_id, when = t.value_or("");
  long long period =
      login ? observed.settings.login_period_ns : observed.settings.inactivity_period_ns;
  soci::transaction tr(sql_);
  soci::statement st(sql_);
  if (t)
    st = (sql_.prepare << q, soci::use(acc, "acc"), soci::use(id, "id"), soci::use(when, "t"),
          soci::use(period, "period"));
  else
    st = (sql_.prepare << q, soci::use(acc, "acc"), soci::use(id, "id"),
          soci::use(period, "period"));
  st.execute(true);
  const bool landed = st.get_affected_rows() > 0;
  if (landed) {
    const auto serial = bump_serial(observed.account_id);
    if (serial_after)
      *serial_after = serial;
  }
  tr.commit();
  return landed;
}

bool lifecycle_store::delete_ephemeral(const core::lifecycle_facts& observed,
                                       std::uint64_t* serial_after) {
  const auto& t = observed.last_seen;
  std::string q = "DELETE FROM peers WHERE account_id = :acc AND id = :id AND ephemeral = true "
                  "AND COALESCE(peer_status_connected, false) = false "
                  "AND COALESCE(peer_status_session_started_at, 0) = :tok AND ";
  q += t ? time_expr("peer_status_last_seen") + " = :t" : "peer_status_last_seen IS NULL";
  std::string acc = observed.account_id, id = observed.peer_id, when = t.value_or("");
  long long tok = observed.session_started_at;
  soci::transaction tr(sql_);
  soci::statement st(sql_);
  if (t)
    st = (sql_.prepare << q, soci::use(acc, "acc"), soci::use(id, "id"), soci::use(tok, "tok"),
          soci::use(when, "t"));
  else
    st = (sql_.prepare << q, soci::use(acc, "acc"), soci::use(id, "id"), soci::use(tok, "tok"));
  st.execute(true);
  const bool landed = st.get_affected_rows() > 0;
  if (landed) {
    sql_ << "DELETE FROM group_peers WHERE account_id = :acc AND peer_id = :id",
        soci::use(acc, "acc"), soci::use(id, "id");
    const auto serial = bump_serial(observed.account_id);
    if (serial_after)
      *serial_after = serial;
  }
  tr.commit();
  return landed;
}

bool lifecycle_store::record_login(const std::string& account_id, const std::string& peer_id,
                                   const std::string& when) {
  const std::string q = std::string("UPDATE peers SET last_login = ") +
                        (kind_ == engine::postgres ? "CAST(:w AS timestamptz)" : ":w") +
                        ", peer_status_login_expired = false "
                        "WHERE account_id = :acc AND id = :id";
  std::string acc = account_id, id = peer_id, w = when;
  if (kind_ == engine::postgres && w.find_first_of("+Z", 19) == std::string::npos)
    w += "+00:00"; // zone-less text is UTC
  soci::transaction tr(sql_);
  soci::statement st =
      (sql_.prepare << q, soci::use(w, "w"), soci::use(acc, "acc"), soci::use(id, "id"));
  st.execute(true);
  const bool landed = st.get_affected_rows() > 0;
  if (landed)
    bump_serial(account_id);
  tr.commit();
  return landed;
}

} // namespace nbm::storage
