#include "storage/admin_store.hpp"

#include "storage/encode.hpp"

#include "crypto/crypto.hpp"
#include "storage/account_store.hpp"

#include <nlohmann/json.hpp>
#include <soci/soci.h>
#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <ctime>
#include <map>

namespace nbm::storage {

using detail::row_values;
using detail::update_row;

namespace {

using json = nlohmann::json;

// Placeholders typed per engine: PostgreSQL needs casts from bound text, SQLite stores by affinity.
std::string as_time(engine k, const std::string& ph) {
  return k == engine::postgres ? "CAST(:" + ph + " AS timestamptz)" : ":" + ph;
}
std::string as_bool(engine k, const std::string& ph) {
  return k == engine::postgres ? "CAST(:" + ph + " AS boolean)" : ":" + ph;
}
// Bound values must outlive the statement (SOCI binds by reference): static strings, never
// temporaries.
const std::string& b(bool v) {
  static const std::string one = "1", zero = "0";
  return v ? one : zero;
}

} // namespace

std::string store_time(std::int64_t offset_seconds) {
  using namespace std::chrono;
  const auto now = system_clock::now() + seconds(offset_seconds);
  const std::time_t t = system_clock::to_time_t(now);
  const auto micros = duration_cast<microseconds>(now.time_since_epoch()).count() % 1000000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d.%06lld", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(micros));
  // Go's layout: no trailing zeros in the fraction (a PostgreSQL timestamptz is read back that way,
  // so memory and a read of the store hold the same text).
  std::string out = buf;
  while (out.back() == '0')
    out.pop_back();
  if (out.back() == '.')
    out.pop_back();
  return out + "+00:00";
}

created_account admin_store::create_account(const new_account& spec) {
  created_account out;
  out.account_id = crypto::random_id();
  out.owner_user_id = spec.owner_user_id.empty() ? crypto::random_id() : spec.owner_user_id;
  out.all_group_id = crypto::random_id();
  // NetBird's NewNetwork: one random /16 out of 100.64.0.0/10.
  const int second_octet = 64 + static_cast<int>(randombytes_uniform(64));
  const std::string ip = "100." + std::to_string(second_octet) + ".0.0";
  out.network = ip + "/16";
  const std::string net_json = json{{"IP", ip}, {"Mask", "//8AAA=="}}.dump();
  const std::string now = store_time();
  const std::string identifier = crypto::random_id();
  const std::string empty_list = "[]";
  const std::string all_list = json::array({out.all_group_id}).dump();

  soci::transaction tr(sql_);
  sql_
      << "INSERT INTO accounts (id, created_by, created_at, domain, domain_category, "
         "is_domain_primary_account, network_identifier, network_net, network_dns, network_serial, "
         "dns_settings_disabled_management_groups, settings_peer_login_expiration_enabled, "
         "settings_peer_login_expiration, settings_peer_inactivity_expiration_enabled, "
         "settings_peer_inactivity_expiration, settings_regular_users_view_blocked, "
         "settings_groups_propagation_enabled, settings_routing_peer_dns_resolution_enabled, "
         "settings_extra_user_approval_required, settings_lazy_connection_enabled, "
         "settings_ipv6_enabled_groups) VALUES (:id, :owner, " +
             as_time(kind_, "now") + ", :domain, 'private', " + as_bool(kind_, "t1") +
             ", :ident, :net, '', 0, :empty, " + as_bool(kind_, "t2") + ", 86400000000000, " +
             as_bool(kind_, "f1") + ", 600000000000, " + as_bool(kind_, "t3") + ", " +
             as_bool(kind_, "t4") + ", " + as_bool(kind_, "t5") + ", " + as_bool(kind_, "t6") +
             ", " + as_bool(kind_, "t7") + ", :all)",
      soci::use(out.account_id, "id"), soci::use(out.owner_user_id, "owner"), soci::use(now, "now"),
      soci::use(spec.domain, "domain"), soci::use(b(true), "t1"), soci::use(identifier, "ident"),
      soci::use(net_json, "net"), soci::use(empty_list, "empty"), soci::use(b(true), "t2"),
      soci::use(b(false), "f1"), soci::use(b(true), "t3"), soci::use(b(true), "t4"),
      soci::use(b(true), "t5"), soci::use(b(true), "t6"), soci::use(b(true), "t7"),
      soci::use(all_list, "all");
  sql_ << "INSERT INTO \"groups\" (id, account_id, name, issued, resources) VALUES (:id, :acc, "
          "'All', "
          "'api', '[]')",
      soci::use(out.all_group_id, "id"), soci::use(out.account_id, "acc");
  if (spec.default_policy) {
    const std::string policy_id = crypto::random_id(), rule_id = crypto::random_id();
    const std::string text =
        "This is a default rule that allows connections between all the resources";
    sql_ << "INSERT INTO policies (id, account_id, name, description, enabled, "
            "source_posture_checks) "
            "VALUES (:id, :acc, 'Default', :d, " +
                as_bool(kind_, "e") + ", '[]')",
        soci::use(policy_id, "id"), soci::use(out.account_id, "acc"), soci::use(text, "d"),
        soci::use(b(true), "e");
    sql_ << "INSERT INTO policy_rules (id, policy_id, name, description, enabled, action, "
            "destinations, "
            "sources, bidirectional, protocol) VALUES (:id, :pid, 'Default', :d, " +
                as_bool(kind_, "e") + ", 'accept', :all, :all, " + as_bool(kind_, "bi") +
                ", 'all')",
        soci::use(rule_id, "id"), soci::use(policy_id, "pid"), soci::use(text, "d"),
        soci::use(b(true), "e"), soci::use(all_list, "all"), soci::use(b(true), "bi");
  }
  sql_ << "INSERT INTO users (id, account_id, role, is_service_user, non_deletable, "
          "service_user_name, "
          "auto_groups, blocked, pending_approval, created_at, issued, name, email) VALUES (:id, "
          ":acc, "
          "'owner', " +
              as_bool(kind_, "f1") + ", " + as_bool(kind_, "f2") + ", '', '[]', " +
              as_bool(kind_, "f3") + ", " + as_bool(kind_, "f4") + ", " + as_time(kind_, "now") +
              ", 'api', :name, :email)",
      soci::use(out.owner_user_id, "id"), soci::use(out.account_id, "acc"),
      soci::use(b(false), "f1"), soci::use(b(false), "f2"), soci::use(b(false), "f3"),
      soci::use(b(false), "f4"), soci::use(now, "now"), soci::use(spec.owner_name, "name"),
      soci::use(spec.owner_email, "email");
  if (spec.with_pat) {
    auto token = crypto::make_pat();
    const std::string pat_id = crypto::random_id();
    const std::string expires = store_time(365LL * 24 * 3600);
    sql_ << "INSERT INTO personal_access_tokens (id, user_id, name, hashed_token, expiration_date, "
            "created_by, created_at) VALUES (:id, :user, 'bootstrap', :hash, " +
                as_time(kind_, "exp") + ", :user, " + as_time(kind_, "now") + ")",
        soci::use(pat_id, "id"), soci::use(out.owner_user_id, "user"),
        soci::use(token.hashed, "hash"), soci::use(expires, "exp"), soci::use(now, "now");
    out.pat = token.plain;
  }
  tr.commit();
  return out;
}

std::string admin_store::any_account_domain() {
  std::string domain;
  soci::indicator ind = soci::i_null;
  sql_ << "SELECT domain FROM accounts ORDER BY created_at, id LIMIT 1", soci::into(domain, ind);
  return sql_.got_data() && ind == soci::i_ok ? domain : std::string();
}

std::string admin_store::primary_domain_account(const std::string& domain) {
  std::string id, lower = domain;
  for (auto& c : lower)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  soci::indicator ind = soci::i_null;
  sql_ << "SELECT id FROM accounts WHERE domain = :d AND domain_category = 'private' AND "
          "is_domain_primary_account = " +
              as_bool(kind_, "t") + " ORDER BY created_at, id LIMIT 1",
      soci::use(lower, "d"), soci::use(b(true), "t"), soci::into(id, ind);
  return sql_.got_data() && ind == soci::i_ok ? id : std::string();
}

void admin_store::add_regular_user(const std::string& account_id, const std::string& user_id,
                                   const std::string& email, const std::string& name,
                                   bool& pending) {
  int approval = 0;
  soci::indicator ind = soci::i_null;
  sql_ << "SELECT CASE WHEN settings_extra_user_approval_required THEN 1 ELSE 0 END FROM accounts "
          "WHERE id = :id",
      soci::use(account_id, "id"), soci::into(approval, ind);
  pending = sql_.got_data() && ind == soci::i_ok && approval == 1;
  const std::string now = store_time();
  sql_ << "INSERT INTO users (id, account_id, role, is_service_user, non_deletable, "
          "service_user_name, auto_groups, blocked, pending_approval, created_at, issued, name, "
          "email) VALUES (:id, :acc, 'user', " +
              as_bool(kind_, "f1") + ", " + as_bool(kind_, "f2") + ", '', '[]', " +
              as_bool(kind_, "bl") + ", " + as_bool(kind_, "pa") + ", " + as_time(kind_, "now") +
              ", 'api', :name, :email)",
      soci::use(user_id, "id"), soci::use(account_id, "acc"), soci::use(b(false), "f1"),
      soci::use(b(false), "f2"), soci::use(b(pending), "bl"), soci::use(b(pending), "pa"),
      soci::use(now, "now"), soci::use(name, "name"), soci::use(email, "email");
}

std::pair<core::setup_key, std::string> admin_store::create_setup_key(const new_setup_key& spec) {
  account_store accounts(sql_, kind_);
  auto account = accounts.load_account(spec.account_id);
  if (!account)
    throw store_error("no account " + spec.account_id);
  for (const auto& g : spec.auto_groups) {
    bool found = false;
    for (const auto& have : account->groups)
      found = found || have.id == g;
    if (!found)
      throw store_error("auto-group " + g + " does not exist in account " + spec.account_id);
  }
  return insert_setup_key(spec);
}

std::pair<core::setup_key, std::string> admin_store::insert_setup_key(const new_setup_key& spec) {
  if (spec.usage_limit < 0)
    throw store_error("usage limit must not be negative");
  const std::string plain = crypto::random_uuid_upper();
  core::setup_key k;
  k.id = crypto::random_id();
  k.account_id = spec.account_id;
  k.key = crypto::sha256_base64(plain);
  k.key_secret = plain.substr(0, 5) + "****";
  k.name = spec.name;
  k.type = spec.reusable ? "reusable" : "one-off";
  k.created_at = k.updated_at = store_time();
  k.expires_at = spec.expires_in_seconds > 0 ? store_time(spec.expires_in_seconds)
                                             : std::string("0001-01-01 00:00:00+00:00");
  k.usage_limit = spec.reusable ? spec.usage_limit : 1;
  k.auto_groups = spec.auto_groups;
  k.ephemeral = spec.ephemeral;
  k.allow_extra_dns_labels = spec.allow_extra_dns_labels;
  const std::string groups = json(k.auto_groups).dump();
  const long long limit = k.usage_limit;
  sql_ << "INSERT INTO setup_keys (id, account_id, \"key\", key_secret, name, type, created_at, "
          "expires_at, updated_at, revoked, used_times, auto_groups, usage_limit, ephemeral, "
          "allow_extra_dns_labels) VALUES (:id, :acc, :key, :secret, :name, :type, " +
              as_time(kind_, "created") + ", " + as_time(kind_, "expires") + ", " +
              as_time(kind_, "created") + ", " + as_bool(kind_, "rev") + ", 0, :groups, :lim, " +
              as_bool(kind_, "eph") + ", " + as_bool(kind_, "extra") + ")",
      soci::use(k.id, "id"), soci::use(k.account_id, "acc"), soci::use(k.key, "key"),
      soci::use(k.key_secret, "secret"), soci::use(k.name, "name"), soci::use(k.type, "type"),
      soci::use(*k.created_at, "created"), soci::use(*k.expires_at, "expires"),
      soci::use(b(false), "rev"), soci::use(groups, "groups"), soci::use(limit, "lim"),
      soci::use(b(k.ephemeral), "eph"), soci::use(b(k.allow_extra_dns_labels), "extra");
  return {k, plain};
}

std::vector<core::setup_key> admin_store::list_setup_keys(const std::string& account_id) {
  account_store accounts(sql_, kind_);
  auto account = accounts.load_account(account_id);
  if (!account)
    throw store_error("no account " + account_id);
  return account->setup_keys;
}

bool admin_store::revoke_setup_key(const std::string& account_id, const std::string& key_id) {
  const std::string now = store_time();
  soci::statement st = (sql_.prepare << "UPDATE setup_keys SET revoked = " + as_bool(kind_, "t") +
                                            ", updated_at = " + as_time(kind_, "now") +
                                            " WHERE account_id = :acc AND id = :id",
                        soci::use(b(true), "t"), soci::use(now, "now"),
                        soci::use(account_id, "acc"), soci::use(key_id, "id"));
  st.execute(true);
  return st.get_affected_rows() > 0;
}

std::optional<core::setup_key> admin_store::setup_key_by_plain(const std::string& plain) {
  std::string upper = plain;
  for (auto& c : upper)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const std::string hashed = crypto::sha256_base64(upper);
  // One indexed read of the key's own row (never the account around it).
  return account_store(sql_, kind_).setup_key_by_hashed_key(hashed);
}

bool admin_store::use_setup_key(const std::string& key_id) {
  // One guarded UPDATE (not revoked, not expired, under its limit): see
  // account_store::use_setup_key.
  return account_store(sql_, kind_).use_setup_key(key_id);
}

namespace {

bool unique_violation(const soci::soci_error& e) {
  const std::string what = e.what();
  // Unique violations: PostgreSQL 23505, SQLite "UNIQUE constraint failed".
  return what.find("23505") != std::string::npos || what.find("UNIQUE") != std::string::npos ||
         what.find("unique") != std::string::npos;
}

} // namespace

admin_store::register_result admin_store::register_peer(const core::peer& p,
                                                        const std::vector<std::string>& group_ids,
                                                        const std::string& setup_key_id) {
  try {
    soci::transaction tr(sql_);
    if (!setup_key_id.empty() && !use_setup_key(setup_key_id)) {
      tr.rollback();
      return register_result::key_refused;
    }
    insert_registered_peers({{p, group_ids, setup_key_id}});
    sql_ << "UPDATE accounts SET network_serial = COALESCE(network_serial, 0) + 1 WHERE id = :acc",
        soci::use(p.account_id, "acc");
    tr.commit();
    return register_result::registered;
  } catch (const soci::soci_error& e) {
    if (unique_violation(e))
      return register_result::conflict;
    throw;
  }
}

namespace {

// One registered peer as the JSON object of its row. JSON columns hold JSON: an empty value is
// written as null (Go's decoder rejects ''). Its last login is also its creation and last-seen
// time: the account actor holds the same values without reading them back.
json registered_peer_row(const core::peer& p) {
  const std::string now = p.last_login ? *p.last_login : store_time();
  auto js = [](const std::string& v) { return v.empty() ? std::string("null") : v; };
  const auto& m = p.meta;
  return json{{"id", p.id},
              {"account_id", p.account_id},
              {"key", p.key},
              {"ip", json(p.ip).dump()},
              {"ipv6", json(p.ipv6).dump()},
              {"name", p.name},
              {"dns_label", p.dns_label},
              {"user_id", p.user_id},
              {"ssh_key", p.ssh_key},
              {"ssh_enabled", p.ssh_enabled},
              {"login_expiration_enabled", p.login_expiration_enabled},
              {"inactivity_expiration_enabled", p.inactivity_expiration_enabled},
              {"last_login", now},
              {"created_at", now},
              {"ephemeral", p.ephemeral},
              {"extra_dns_labels", json(p.extra_dns_labels).dump()},
              {"allow_extra_dns_labels", false},
              {"meta_hostname", m.hostname},
              {"meta_go_os", m.go_os},
              {"meta_kernel", m.kernel},
              {"meta_core", m.core},
              {"meta_platform", m.platform},
              {"meta_os", m.os},
              {"meta_os_version", m.os_version},
              {"meta_wt_version", m.wt_version},
              {"meta_ui_version", m.ui_version},
              {"meta_kernel_version", m.kernel_version},
              {"meta_system_serial_number", m.system_serial_number},
              {"meta_system_product_name", m.system_product_name},
              {"meta_system_manufacturer", m.system_manufacturer},
              {"meta_network_addresses", js(m.network_addresses_json)},
              {"meta_environment", js(m.environment_json)},
              {"meta_flags", js(m.flags_json)},
              {"meta_files", js(m.files_json)},
              {"meta_capabilities", js(m.capabilities_json)},
              {"peer_status_last_seen", now},
              {"peer_status_session_started_at", 0},
              {"peer_status_connected", false},
              {"peer_status_login_expired", false},
              {"peer_status_requires_approval", false}};
}

// INSERT INTO <table> of every object of the JSON array `rows`, bound as :rows, in one statement;
// the columns are the keys of its objects (all alike). PostgreSQL converts each value with its
// column's input function (json_populate_recordset over the table's row type), SQLite takes
// json_extract's value (a JSON true is 1, as the per-row statements store it).
std::string insert_from_json(engine kind, const std::string& table, const json& rows,
                             const std::string& tail) {
  std::string names, values;
  for (const auto& [c, _] : rows.front().items()) {
    const std::string quoted = "\"" + c + "\"";
    names += (names.empty() ? "" : ", ") + quoted;
    values += (values.empty() ? "" : ", ") +
              (kind == engine::postgres ? quoted : "json_extract(value, '$.\"" + c + "\"')");
  }
  const std::string source =
      kind == engine::postgres
          ? " FROM json_populate_recordset(NULL::\"" + table + "\", CAST(:rows AS json))"
          : " FROM json_each(:rows) WHERE true"; // WHERE: SQLite's upsert parse needs it
  return "INSERT INTO \"" + table + "\" (" + names + ") SELECT " + values + source + tail;
}

} // namespace

void admin_store::insert_registered_peers(const std::vector<registration>& batch) {
  json peers = json::array(), members = json::array();
  for (const auto& r : batch) {
    peers.push_back(registered_peer_row(r.peer));
    for (const auto& g : r.group_ids)
      members.push_back(
          json{{"account_id", r.peer.account_id}, {"group_id", g}, {"peer_id", r.peer.id}});
  }
  if (peers.empty())
    return;
  const std::string peer_rows = peers.dump(), member_rows = members.dump();
  sql_ << insert_from_json(kind_, "peers", peers, ""), soci::use(peer_rows, "rows");
  if (!members.empty())
    sql_ << insert_from_json(kind_, "group_peers", members, " ON CONFLICT DO NOTHING"),
        soci::use(member_rows, "rows");
}

// The whole batch at once: one guarded use per setup key (all of its uses or none), one INSERT of
// the peers, one of their memberships. False (and nothing written) when a key has not enough uses
// left or a row conflicts (key, IP or label taken meanwhile by another replica): the caller then
// goes row by row, which sorts out which ones.
bool admin_store::register_all(const std::vector<registration>& batch) {
  std::map<std::string, long long> uses;
  for (const auto& r : batch)
    if (!r.setup_key_id.empty())
      ++uses[r.setup_key_id];
  sql_ << "SAVEPOINT nbm_register_all";
  try {
    for (const auto& [key_id, n] : uses)
      if (!account_store(sql_, kind_).use_setup_key(key_id, n)) {
        sql_ << "ROLLBACK TO SAVEPOINT nbm_register_all";
        sql_ << "RELEASE SAVEPOINT nbm_register_all";
        return false;
      }
    insert_registered_peers(batch);
  } catch (const soci::soci_error& e) {
    if (!unique_violation(e))
      throw; // the transaction rolls back: nothing of the batch is written
    sql_ << "ROLLBACK TO SAVEPOINT nbm_register_all";
    sql_ << "RELEASE SAVEPOINT nbm_register_all";
    return false;
  }
  sql_ << "RELEASE SAVEPOINT nbm_register_all";
  return true;
}

std::vector<admin_store::register_result>
admin_store::register_peers(const std::string& account_id, const std::vector<registration>& batch,
                            std::uint64_t& serial_after) {
  std::vector<register_result> out(batch.size(), register_result::conflict);
  soci::transaction tr(sql_);
  long long registered = 0;
  if (batch.size() > 1 && register_all(batch)) {
    std::fill(out.begin(), out.end(), register_result::registered);
    registered = static_cast<long long>(batch.size());
  } else {
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const auto& r = batch[i];
      sql_ << "SAVEPOINT nbm_register";
      try {
        if (!r.setup_key_id.empty() && !use_setup_key(r.setup_key_id)) {
          sql_ << "ROLLBACK TO SAVEPOINT nbm_register";
          out[i] = register_result::key_refused;
        } else {
          insert_registered_peers({r});
          out[i] = register_result::registered;
          ++registered;
        }
      } catch (const soci::soci_error& e) {
        if (!unique_violation(e))
          throw; // the transaction rolls back: nothing of the batch is written
        sql_ << "ROLLBACK TO SAVEPOINT nbm_register";
        out[i] = register_result::conflict;
      }
      sql_ << "RELEASE SAVEPOINT nbm_register";
    }
  }
  if (registered > 0)
    sql_ << "UPDATE accounts SET network_serial = COALESCE(network_serial, 0) + :n WHERE id = "
            ":acc",
        soci::use(registered, "n"), soci::use(account_id, "acc");
  long long serial = 0;
  soci::indicator ind = soci::i_null;
  sql_ << "SELECT network_serial FROM accounts WHERE id = :acc", soci::use(account_id, "acc"),
      soci::into(serial, ind);
  serial_after = ind == soci::i_ok ? static_cast<std::uint64_t>(serial) : 0;
  tr.commit();
  return out;
}

bool admin_store::delete_peer(const std::string& account_id, const std::string& peer_id,
                              std::uint64_t* serial_after) {
  soci::transaction tr(sql_);
  sql_ << "DELETE FROM group_peers WHERE account_id = :acc AND peer_id = :id",
      soci::use(account_id, "acc"), soci::use(peer_id, "id");
  soci::statement st = (sql_.prepare << "DELETE FROM peers WHERE account_id = :acc AND id = :id",
                        soci::use(account_id, "acc"), soci::use(peer_id, "id"));
  st.execute(true);
  const bool deleted = st.get_affected_rows() > 0;
  if (deleted)
    sql_ << "UPDATE accounts SET network_serial = COALESCE(network_serial, 0) + 1 WHERE id = :acc",
        soci::use(account_id, "acc");
  if (serial_after) {
    long long serial = 0;
    soci::indicator ind = soci::i_null;
    sql_ << "SELECT network_serial FROM accounts WHERE id = :acc", soci::use(account_id, "acc"),
        soci::into(serial, ind);
    *serial_after = ind == soci::i_ok ? static_cast<std::uint64_t>(serial) : 0;
  }
  tr.commit();
  return deleted;
}

bool admin_store::update_user(const core::user& u) {
  row_values r;
  r.text("id", u.id);
  r.text("account_id", u.account_id);
  r.text("role", u.role);
  r.strings("auto_groups", u.auto_groups);
  r.flag("blocked", u.blocked);
  return update_row(sql_, kind_, "users", r, {"id", "account_id"}) > 0;
}

bool admin_store::delete_user(const std::string& account_id, const std::string& user_id) {
  soci::transaction tr(sql_);
  soci::statement st = (sql_.prepare << "DELETE FROM users WHERE account_id = :acc AND id = :id",
                        soci::use(account_id, "acc"), soci::use(user_id, "id"));
  st.execute(true);
  const bool deleted = st.get_affected_rows() > 0;
  if (deleted)
    sql_ << "DELETE FROM personal_access_tokens WHERE user_id = :id", soci::use(user_id, "id");
  tr.commit();
  return deleted;
}

bool admin_store::delete_account(const std::string& account_id) {
  soci::transaction tr(sql_);
  // The account row first: a concurrent change of the account waits for this transaction (and then
  // finds nothing), and a second delete finds nothing here.
  soci::statement st =
      (sql_.prepare << "DELETE FROM accounts WHERE id = :acc", soci::use(account_id, "acc"));
  st.execute(true);
  if (st.get_affected_rows() == 0)
    return false; // rolled back
  sql_ << "DELETE FROM personal_access_tokens WHERE user_id IN (SELECT id FROM users WHERE "
          "account_id = :acc)",
      soci::use(account_id, "acc");
  sql_ << "DELETE FROM policy_rules WHERE policy_id IN (SELECT id FROM policies WHERE account_id "
          "= :acc)",
      soci::use(account_id, "acc");
  for (const char* table : {"users", "group_peers", "\"groups\"", "policies", "setup_keys", "peers",
                            "routes", "name_server_groups", "posture_checks", "network_routers",
                            "network_resources", "networks", "account_onboardings"})
    sql_ << std::string("DELETE FROM ") + table + " WHERE account_id = :acc",
        soci::use(account_id, "acc");
  if (kind_ == engine::postgres)
    sql_ << "DELETE FROM nbm_replica_sessions WHERE account_id = :acc",
        soci::use(account_id, "acc");
  tr.commit();
  return true;
}

bool admin_store::delete_token(const std::string& user_id, const std::string& token_id) {
  soci::statement st =
      (sql_.prepare << "DELETE FROM personal_access_tokens WHERE user_id = :u AND id = :id",
       soci::use(user_id, "u"), soci::use(token_id, "id"));
  st.execute(true);
  return st.get_affected_rows() > 0;
}

bool admin_store::delete_setup_key(const std::string& account_id, const std::string& key_id) {
  soci::statement st =
      (sql_.prepare << "DELETE FROM setup_keys WHERE account_id = :acc AND id = :id",
       soci::use(account_id, "acc"), soci::use(key_id, "id"));
  st.execute(true);
  return st.get_affected_rows() > 0;
}

bool admin_store::update_setup_key_groups(const std::string& account_id, const std::string& key_id,
                                          const std::vector<std::string>& auto_groups) {
  row_values r;
  r.text("id", key_id);
  r.text("account_id", account_id);
  r.strings("auto_groups", auto_groups);
  r.time("updated_at", store_time());
  return update_row(sql_, kind_, "setup_keys", r, {"id", "account_id"}) > 0;
}

std::optional<std::uint64_t> admin_store::update_peer(const core::peer& p) {
  soci::transaction tr(sql_);
  row_values r;
  r.text("id", p.id);
  r.text("account_id", p.account_id);
  r.text("name", p.name);
  r.text("dns_label", p.dns_label);
  r.flag("ssh_enabled", p.ssh_enabled);
  r.flag("login_expiration_enabled", p.login_expiration_enabled);
  r.flag("inactivity_expiration_enabled", p.inactivity_expiration_enabled);
  r.flag("peer_status_requires_approval", p.status.requires_approval);
  if (update_row(sql_, kind_, "peers", r, {"id", "account_id"}) == 0)
    return std::nullopt;
  sql_ << "UPDATE accounts SET network_serial = COALESCE(network_serial, 0) + 1 WHERE id = :acc",
      soci::use(p.account_id, "acc");
  long long serial = 0;
  sql_ << "SELECT network_serial FROM accounts WHERE id = :acc", soci::use(p.account_id, "acc"),
      soci::into(serial);
  tr.commit();
  return static_cast<std::uint64_t>(serial);
}

admin_store::server_key admin_store::server_key_pair(const std::string& encryption_key_b64) {
  std::optional<std::string> enc_key;
  if (!encryption_key_b64.empty()) {
    enc_key = crypto::base64_decode(encryption_key_b64);
    if (!enc_key || enc_key->size() != 32)
      throw store_error("DataStoreEncryptionKey must be the base64 of 32 bytes");
  }
  auto read = [&]() -> std::optional<server_key> {
    std::string pub, priv;
    int encrypted = 0;
    soci::indicator ip = soci::i_null, iv = soci::i_null;
    sql_ << "SELECT public_key, private_key, CAST(COALESCE(encrypted, " +
                std::string(kind_ == engine::postgres ? "false" : "0") +
                ") AS INTEGER) FROM netbird_mgmt_server_keys WHERE id = 1",
        soci::into(pub, ip), soci::into(priv, iv), soci::into(encrypted);
    if (!sql_.got_data() || ip == soci::i_null || iv == soci::i_null)
      return std::nullopt;
    auto pub_raw = crypto::base64_decode(pub);
    auto priv_raw = crypto::base64_decode(priv);
    if (!pub_raw || !priv_raw)
      throw store_error("the stored server key is not valid base64");
    if (encrypted) {
      if (!enc_key)
        throw store_error(
            "the stored server key is encrypted, but no DataStoreEncryptionKey is set");
      priv_raw = crypto::secret_open(*priv_raw, *enc_key);
      if (!priv_raw)
        throw store_error("DataStoreEncryptionKey does not open the stored server key");
    }
    return server_key{*pub_raw, *priv_raw};
  };
  if (auto existing = read())
    return *existing;
  auto kp = crypto::make_wg_key_pair();
  const std::string pub = crypto::base64_encode(kp.public_key);
  const std::string priv = crypto::base64_encode(
      enc_key ? crypto::secret_seal(kp.private_key, *enc_key) : kp.private_key);
  const std::string now = store_time();
  // Two replicas starting at once: one insert wins, both then read the same row.
  sql_ << "INSERT INTO netbird_mgmt_server_keys (id, public_key, private_key, encrypted, "
          "created_at) "
          "VALUES (1, :pub, :priv, " +
              as_bool(kind_, "enc") + ", " + as_time(kind_, "now") +
              ") ON CONFLICT (id) DO NOTHING",
      soci::use(pub, "pub"), soci::use(priv, "priv"), soci::use(b(enc_key.has_value()), "enc"),
      soci::use(now, "now");
  auto stored = read();
  if (!stored)
    throw store_error("the server key could not be stored");
  return *stored;
}

} // namespace nbm::storage
