#include "storage/account_store.hpp"

#include "crypto/crypto.hpp"
#include "storage/encode.hpp"
#include "storage/schema.hpp"

#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>

#include <bit>
#include <cctype>
#include <cstdio>
#include <map>
#include <utility>

namespace nbm::storage {

namespace {

using json = nlohmann::json;
using detail::cell;
using detail::insert_row;
using detail::pg_time_text;
using detail::row_values;
using detail::sql_ident;

// ------------------------------------------------------------------------------------------------
// Catalog and text conversions

struct column_info {
  std::string name;
  std::string type; // as the catalog says: SQLite's declared type, PostgreSQL's data_type
};

std::vector<column_info> catalog_columns(soci::session& sql, engine kind,
                                         const std::string& table) {
  std::vector<column_info> out;
  if (kind == engine::sqlite) {
    soci::rowset<soci::row> rs = (sql.prepare << "PRAGMA table_info(" + sql_ident(table) + ")");
    for (const auto& r : rs) {
      std::string type = r.get<std::string>(2, ""); // as declared; SQLite upper-cases INTEGER
      for (auto& ch : type)
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      out.push_back({r.get<std::string>(1), type});
    }
  } else {
    std::string t = table;
    soci::rowset<soci::row> rs =
        (sql.prepare << "SELECT column_name, data_type FROM information_schema.columns "
                        "WHERE table_schema = current_schema() AND table_name = :t "
                        "ORDER BY ordinal_position",
         soci::use(t, "t"));
    for (const auto& r : rs)
      out.push_back({r.get<std::string>(0), r.get<std::string>(1)});
  }
  return out;
}

// The columns of a table of a migrated store, read from the catalog once per engine and table:
// every store this process reads has been through ensure_schema, which forgets the cache.
std::mutex column_cache_mu;
std::map<std::pair<int, std::string>, std::shared_ptr<const std::vector<column_info>>> column_cache;

std::shared_ptr<const std::vector<column_info>> cached_columns(soci::session& sql, engine kind,
                                                               const std::string& table) {
  const auto key = std::pair(static_cast<int>(kind), table);
  {
    std::lock_guard<std::mutex> lk(column_cache_mu);
    if (auto it = column_cache.find(key); it != column_cache.end())
      return it->second;
  }
  auto cols = std::make_shared<const std::vector<column_info>>(catalog_columns(sql, kind, table));
  std::lock_guard<std::mutex> lk(column_cache_mu);
  column_cache[key] = cols;
  return cols;
}

bool is_pg_timestamp(const std::string& type) {
  return type.rfind("timestamp", 0) == 0;
}

// PostgreSQL's "YYYY-MM-DD HH:MM:SS.ffffff" (UTC) -> Go's "2006-01-02 15:04:05.999999999-07:00"
// form in UTC: trailing zeros of the fraction go, "+00:00" follows.
std::string go_utc_time(std::string t) {
  auto dot = t.find('.');
  if (dot != std::string::npos) {
    while (!t.empty() && t.back() == '0')
      t.pop_back();
    if (t.size() == dot + 1)
      t.pop_back();
  }
  return t + "+00:00";
}

// Rows as text, keyed by column name: one reading path for both engines (booleans come back as
// "1"/"0" from SQLite and "true"/"false" from PostgreSQL; times as NetBird's text).
struct text_row {
  // Column name -> position, shared by every row of one SELECT.
  std::shared_ptr<const std::unordered_map<std::string, std::size_t>> index;
  std::vector<cell> values;

  const cell& at(const std::string& c) const {
    static const cell none;
    auto it = index->find(c);
    return it == index->end() ? none : values[it->second];
  }
  std::string str(const std::string& c) const { return at(c).value_or(""); }
  bool boolean(const std::string& c) const {
    const auto& v = at(c);
    return v && (*v == "1" || *v == "true" || *v == "t" || *v == "TRUE" || *v == "1.0");
  }
  std::int64_t integer(const std::string& c) const {
    const auto& v = at(c);
    if (!v || v->empty())
      return 0;
    try {
      return static_cast<std::int64_t>(std::stoll(*v));
    } catch (...) {
      try {
        return static_cast<std::int64_t>(std::stod(*v)); // SQLite numeric affinity: "1.0"
      } catch (...) {
        return 0;
      }
    }
  }
  core::opt_time time(const std::string& c) const { return at(c); }
  json parsed(const std::string& c) const {
    const auto& v = at(c);
    return v && !v->empty() ? json::parse(*v, nullptr, false) : json();
  }
  std::vector<std::string> strings(const std::string& c) const {
    std::vector<std::string> out;
    auto j = parsed(c);
    if (j.is_array())
      for (const auto& e : j)
        if (e.is_string())
          out.push_back(e.get<std::string>());
    return out;
  }
};

// SELECT every column of `table` as text WHERE <where> (with one bound value :v, if given). With
// `one`, at most one row, read by a one-shot statement: one round trip, where a rowset prepares,
// executes and deallocates a named statement (three on PostgreSQL).
std::vector<text_row> select_rows(soci::session& sql, engine kind, const std::string& table,
                                  const std::string& where, const std::string& value,
                                  bool one = false) {
  const auto cols_ptr = cached_columns(sql, kind, table);
  const auto& cols = *cols_ptr;
  std::vector<bool> pg_time(cols.size(), false);
  std::string q = "SELECT ";
  for (std::size_t i = 0; i < cols.size(); ++i) {
    const std::string c = sql_ident(cols[i].name);
    q += i ? ", " : "";
    if (kind == engine::postgres && is_pg_timestamp(cols[i].type)) {
      pg_time[i] = true;
      q += "to_char(" + c +
           (cols[i].type == "timestamp with time zone" ? " AT TIME ZONE 'UTC'" : "") +
           ", 'YYYY-MM-DD HH24:MI:SS.US')";
    } else {
      q += "CAST(" + c + " AS TEXT)";
    }
  }
  q += " FROM " + sql_ident(table);
  if (!where.empty())
    q += " WHERE " + where;
  std::vector<text_row> out;
  std::string bound = value;
  auto index = std::make_shared<std::unordered_map<std::string, std::size_t>>();
  for (std::size_t i = 0; i < cols.size(); ++i)
    index->emplace(cols[i].name, i);
  auto take = [&](const soci::row& r) {
    text_row tr;
    tr.index = index;
    tr.values.resize(cols.size());
    for (std::size_t i = 0; i < cols.size(); ++i) {
      if (r.get_indicator(i) == soci::i_null)
        continue;
      auto& v = tr.values[i];
      v = r.get<std::string>(i);
      if (pg_time[i])
        v = go_utc_time(*v);
    }
    out.push_back(std::move(tr));
  };
  const bool has_value = where.find(":v") != std::string::npos;
  if (one) {
    soci::row r;
    q += " LIMIT 1";
    if (has_value)
      sql << q, soci::use(bound, "v"), soci::into(r);
    else
      sql << q, soci::into(r);
    if (sql.got_data())
      take(r);
    return out;
  }
  if (!has_value) {
    soci::rowset<soci::row> rs = (sql.prepare << q);
    for (const auto& r : rs)
      take(r);
  } else {
    soci::rowset<soci::row> rs = (sql.prepare << q, soci::use(bound, "v"));
    for (const auto& r : rs)
      take(r);
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// NetBird's JSON encodings

// Go's net.IPNet JSON {"IP":"100.64.0.0","Mask":"//8AAA=="} -> "100.64.0.0/10".
std::string ipnet_to_prefix(const json& j) {
  if (!j.is_object() || !j.contains("IP"))
    return "";
  std::string ip = j.value("IP", "");
  auto mask = crypto::base64_decode(j.value("Mask", ""));
  if (!mask)
    return ip;
  int bits = 0;
  for (unsigned char c : *mask)
    bits += std::popcount(static_cast<unsigned>(c));
  return ip + "/" + std::to_string(bits);
}

// "100.64.0.0/10" -> {"IP":"100.64.0.0","Mask":"/8AAAA=="} (an IPv4 net: a 4-byte mask).
json prefix_to_ipnet(const std::string& prefix) {
  auto slash = prefix.find('/');
  if (slash == std::string::npos)
    return nullptr;
  int bits = std::stoi(prefix.substr(slash + 1));
  const bool v6 = prefix.find(':') != std::string::npos;
  std::string mask(v6 ? 16 : 4, '\0');
  for (int i = 0; i < bits && i < static_cast<int>(mask.size()) * 8; ++i)
    mask[static_cast<std::size_t>(i / 8)] |= static_cast<char>(0x80 >> (i % 8));
  return json{{"IP", prefix.substr(0, slash)}, {"Mask", crypto::base64_encode(mask)}};
}

// A JSON string column ("\"100.64.0.5\"") -> its value; anything else unchanged.
std::string json_string(const cell& v) {
  if (!v || v->empty())
    return "";
  auto j = json::parse(*v, nullptr, false);
  if (j.is_null())
    return "";
  return j.is_string() ? j.get<std::string>() : *v;
}

// A raw JSON text kept by the model; "" (nothing known) is stored as null, which every Go decoder
// accepts (an empty string would fail json.Unmarshal).
std::string raw_json(const std::string& text) {
  return text.empty() ? "null" : text;
}

core::resource to_resource(const json& j) {
  if (!j.is_object())
    return {};
  return {j.value("ID", ""), j.value("Type", "")};
}

// ------------------------------------------------------------------------------------------------
// Rows -> model

core::peer to_peer(const text_row& r) {
  core::peer p;
  p.id = r.str("id");
  p.account_id = r.str("account_id");
  p.key = r.str("key");
  p.ip = json_string(r.at("ip"));
  p.ipv6 = json_string(r.at("ipv6"));
  p.name = r.str("name");
  p.dns_label = r.str("dns_label");
  p.user_id = r.str("user_id");
  p.ssh_key = r.str("ssh_key");
  p.ssh_enabled = r.boolean("ssh_enabled");
  p.login_expiration_enabled = r.boolean("login_expiration_enabled");
  p.inactivity_expiration_enabled = r.boolean("inactivity_expiration_enabled");
  p.last_login = r.time("last_login");
  p.created_at = r.time("created_at");
  p.ephemeral = r.boolean("ephemeral");
  p.extra_dns_labels = r.strings("extra_dns_labels");
  p.allow_extra_dns_labels = r.boolean("allow_extra_dns_labels");
  auto& m = p.meta;
  m.hostname = r.str("meta_hostname");
  m.go_os = r.str("meta_go_os");
  m.kernel = r.str("meta_kernel");
  m.core = r.str("meta_core");
  m.platform = r.str("meta_platform");
  m.os = r.str("meta_os");
  m.os_version = r.str("meta_os_version");
  m.wt_version = r.str("meta_wt_version");
  m.ui_version = r.str("meta_ui_version");
  m.kernel_version = r.str("meta_kernel_version");
  m.system_serial_number = r.str("meta_system_serial_number");
  m.system_product_name = r.str("meta_system_product_name");
  m.system_manufacturer = r.str("meta_system_manufacturer");
  auto raw = [&](const char* c) {
    auto v = r.str(c);
    return v == "null" ? std::string() : v;
  };
  m.network_addresses_json = raw("meta_network_addresses");
  m.environment_json = raw("meta_environment");
  m.flags_json = raw("meta_flags");
  m.files_json = raw("meta_files");
  m.capabilities_json = raw("meta_capabilities");
  auto& s = p.status;
  s.last_seen = r.time("peer_status_last_seen");
  s.session_started_at = r.integer("peer_status_session_started_at");
  s.connected = r.boolean("peer_status_connected");
  s.login_expired = r.boolean("peer_status_login_expired");
  s.requires_approval = r.boolean("peer_status_requires_approval");
  p.location.connection_ip = json_string(r.at("location_connection_ip"));
  p.location.country_code = r.str("location_country_code");
  p.location.city_name = r.str("location_city_name");
  p.location.geo_name_id = static_cast<std::uint64_t>(r.integer("location_geo_name_id"));
  return p;
}

core::setup_key to_setup_key(const text_row& kr) {
  core::setup_key k;
  k.id = kr.str("id");
  k.account_id = kr.str("account_id");
  k.key = kr.str("key");
  k.key_secret = kr.str("key_secret");
  k.name = kr.str("name");
  k.type = kr.str("type");
  k.created_at = kr.time("created_at");
  k.expires_at = kr.time("expires_at");
  k.updated_at = kr.time("updated_at");
  k.last_used = kr.time("last_used");
  k.revoked = kr.boolean("revoked");
  k.used_times = kr.integer("used_times");
  k.usage_limit = kr.integer("usage_limit");
  k.ephemeral = kr.boolean("ephemeral");
  k.allow_extra_dns_labels = kr.boolean("allow_extra_dns_labels");
  k.auto_groups = kr.strings("auto_groups");
  return k;
}

// ------------------------------------------------------------------------------------------------
// Model -> rows

// The group row and its memberships (the caller holds the transaction).
void write_group(soci::session& sql, engine kind, const core::group& g) {
  insert_row(sql, kind, "groups", detail::group_row(g));
  for (const auto& p : g.peers)
    detail::write_group_peer(sql, kind, g.account_id, g.id, p);
}

// The policy row and its rules (the caller holds the transaction).
void write_policy(soci::session& sql, engine kind, const core::policy& p) {
  insert_row(sql, kind, "policies", detail::policy_row(p));
  for (const auto& x : p.rules)
    insert_row(sql, kind, "policy_rules", detail::policy_rule_row(x, p.id));
}

bool affected(soci::statement& st) {
  return st.get_affected_rows() > 0;
}

// " ORDER BY <col>" in byte order on both engines: SQLite's default, PostgreSQL's "C" collation
// whatever the database's is. A change applied in memory (storage/change_store: apply_commit) puts
// its objects where a read puts them.
std::string order_by(engine kind, const char* col) {
  return std::string(" ORDER BY ") + col + (kind == engine::postgres ? " COLLATE \"C\"" : "");
}

} // namespace

// ------------------------------------------------------------------------------------------------
// Reads

std::vector<std::string> account_store::account_ids() {
  std::vector<std::string> ids;
  soci::rowset<std::string> rs = (sql_.prepare << "SELECT id FROM accounts ORDER BY id");
  for (const auto& id : rs)
    ids.push_back(id);
  return ids;
}

std::optional<core::account> account_store::load_account(const std::string& id) {
  core::account a;
  a.id = id;
  if (!load_parts(a, part_all))
    return std::nullopt;
  return a;
}

bool account_store::load_parts(core::account& a, unsigned parts) {
  const std::string id = a.id;
  if (parts & part_account) {
    auto rows = select_rows(sql_, kind_, "accounts", "id = :v", id, true);
    if (rows.empty())
      return false;
    const auto& r = rows.front();
    a.id = r.str("id");
    a.created_by = r.str("created_by");
    a.created_at = r.time("created_at");
    a.domain = r.str("domain");
    a.domain_category = r.str("domain_category");
    a.is_domain_primary_account = r.boolean("is_domain_primary_account");
    a.net.identifier = r.str("network_identifier");
    a.net.net = ipnet_to_prefix(r.parsed("network_net"));
    a.net.dns = r.str("network_dns");
    a.net.serial = static_cast<std::uint64_t>(r.integer("network_serial"));
    a.dns_disabled_management_groups = r.strings("dns_settings_disabled_management_groups");
    auto& s = a.settings;
    s.peer_login_expiration_enabled = r.boolean("settings_peer_login_expiration_enabled");
    s.peer_login_expiration_ns = r.integer("settings_peer_login_expiration");
    s.peer_inactivity_expiration_enabled = r.boolean("settings_peer_inactivity_expiration_enabled");
    s.peer_inactivity_expiration_ns = r.integer("settings_peer_inactivity_expiration");
    s.regular_users_view_blocked = r.boolean("settings_regular_users_view_blocked");
    s.groups_propagation_enabled = r.boolean("settings_groups_propagation_enabled");
    s.jwt_groups_enabled = r.boolean("settings_jwt_groups_enabled");
    s.jwt_groups_claim_name = r.str("settings_jwt_groups_claim_name");
    s.jwt_allow_groups = r.strings("settings_jwt_allow_groups");
    s.routing_peer_dns_resolution_enabled =
        r.boolean("settings_routing_peer_dns_resolution_enabled");
    s.dns_domain = r.str("settings_dns_domain");
    s.extra_peer_approval_enabled = r.boolean("settings_extra_peer_approval_enabled");
    s.extra_user_approval_required = r.boolean("settings_extra_user_approval_required");
    s.extra_integrated_validator = r.str("settings_extra_integrated_validator");
    s.extra_integrated_validator_groups = r.strings("settings_extra_integrated_validator_groups");
    s.lazy_connection_enabled = r.boolean("settings_lazy_connection_enabled");
  }
  if (parts & part_peers) {
    a.peers.clear();
    for (const auto& pr :
         select_rows(sql_, kind_, "peers", "account_id = :v" + order_by(kind_, "id"), id))
      a.peers.push_back(to_peer(pr));
  }
  if (parts & part_principals) {
    a.users.clear();
    a.tokens.clear();
    a.setup_keys.clear();
    for (const auto& ur :
         select_rows(sql_, kind_, "users", "account_id = :v" + order_by(kind_, "id"), id)) {
      core::user u;
      u.id = ur.str("id");
      u.account_id = ur.str("account_id");
      u.role = ur.str("role");
      u.is_service_user = ur.boolean("is_service_user");
      u.non_deletable = ur.boolean("non_deletable");
      u.service_user_name = ur.str("service_user_name");
      u.auto_groups = ur.strings("auto_groups");
      u.blocked = ur.boolean("blocked");
      u.pending_approval = ur.boolean("pending_approval");
      u.last_login = ur.time("last_login");
      u.created_at = ur.time("created_at");
      u.issued = ur.str("issued");
      u.name = ur.str("name");
      u.email = ur.str("email");
      a.users.push_back(std::move(u));
    }
    for (const auto& tr : select_rows(sql_, kind_, "personal_access_tokens",
                                      "user_id IN (SELECT id FROM users WHERE account_id = :v)" +
                                          order_by(kind_, "id"),
                                      id)) {
      core::personal_access_token t;
      t.id = tr.str("id");
      t.user_id = tr.str("user_id");
      t.name = tr.str("name");
      t.hashed_token = tr.str("hashed_token");
      t.expiration_date = tr.time("expiration_date");
      t.created_by = tr.str("created_by");
      t.created_at = tr.time("created_at");
      t.last_used = tr.time("last_used");
      a.tokens.push_back(std::move(t));
    }
    for (const auto& kr :
         select_rows(sql_, kind_, "setup_keys", "account_id = :v" + order_by(kind_, "id"), id))
      a.setup_keys.push_back(to_setup_key(kr));
  }
  if (parts & part_groups) {
    a.groups.clear();
    std::map<std::string, std::vector<std::string>> members;
    for (const auto& m : select_rows(sql_, kind_, "group_peers",
                                     "account_id = :v" + order_by(kind_, "peer_id"), id))
      members[m.str("group_id")].push_back(m.str("peer_id"));
    for (const auto& gr :
         select_rows(sql_, kind_, "groups", "account_id = :v" + order_by(kind_, "id"), id)) {
      core::group g;
      g.id = gr.str("id");
      g.account_id = gr.str("account_id");
      g.name = gr.str("name");
      g.issued = gr.str("issued");
      g.peers = members[g.id];
      auto res = gr.parsed("resources");
      if (res.is_array())
        for (const auto& e : res)
          g.resources.push_back(to_resource(e));
      a.groups.push_back(std::move(g));
    }
  }
  if (parts & part_policies) {
    a.policies.clear();
    std::map<std::string, std::vector<core::policy_rule>> rules;
    for (const auto& rr : select_rows(
             sql_, kind_, "policy_rules",
             "policy_id IN (SELECT id FROM policies WHERE account_id = :v)" + order_by(kind_, "id"),
             id)) {
      core::policy_rule x;
      x.id = rr.str("id");
      x.policy_id = rr.str("policy_id");
      x.name = rr.str("name");
      x.description = rr.str("description");
      x.enabled = rr.boolean("enabled");
      x.action = rr.str("action");
      x.protocol = rr.str("protocol");
      x.bidirectional = rr.boolean("bidirectional");
      x.sources = rr.strings("sources");
      x.destinations = rr.strings("destinations");
      x.source_resource = to_resource(rr.parsed("source_resource"));
      x.destination_resource = to_resource(rr.parsed("destination_resource"));
      x.ports = rr.strings("ports");
      auto pr = rr.parsed("port_ranges");
      if (pr.is_array())
        for (const auto& e : pr)
          if (e.is_object())
            x.port_ranges.push_back(
                {e.value<std::uint16_t>("Start", 0), e.value<std::uint16_t>("End", 0)});
      auto ag = rr.parsed("authorized_groups");
      if (ag.is_object())
        for (const auto& [group, users] : ag.items()) {
          auto& list = x.authorized_groups[group];
          if (users.is_array())
            for (const auto& u : users)
              if (u.is_string())
                list.push_back(u.get<std::string>());
        }
      x.authorized_user = rr.str("authorized_user");
      rules[x.policy_id].push_back(std::move(x));
    }
    for (const auto& pr :
         select_rows(sql_, kind_, "policies", "account_id = :v" + order_by(kind_, "id"), id)) {
      core::policy p;
      p.id = pr.str("id");
      p.account_id = pr.str("account_id");
      p.name = pr.str("name");
      p.description = pr.str("description");
      p.enabled = pr.boolean("enabled");
      p.source_posture_checks = pr.strings("source_posture_checks");
      p.rules = rules[p.id];
      a.policies.push_back(std::move(p));
    }
  }
  if (parts & part_routes) {
    a.routes.clear();
    for (const auto& rr :
         select_rows(sql_, kind_, "routes", "account_id = :v" + order_by(kind_, "id"), id)) {
      core::route x;
      x.id = rr.str("id");
      x.account_id = rr.str("account_id");
      x.network = json_string(rr.at("network"));
      x.domains = rr.strings("domains");
      x.keep_route = rr.boolean("keep_route");
      x.net_id = rr.str("net_id");
      x.description = rr.str("description");
      x.peer = rr.str("peer");
      x.peer_groups = rr.strings("peer_groups");
      x.network_type = rr.integer("network_type");
      x.masquerade = rr.boolean("masquerade");
      x.metric = rr.integer("metric");
      x.enabled = rr.boolean("enabled");
      x.groups = rr.strings("groups");
      x.access_control_groups = rr.strings("access_control_groups");
      x.skip_auto_apply = rr.boolean("skip_auto_apply");
      a.routes.push_back(std::move(x));
    }
  }
  if (parts & part_nameservers) {
    a.nameserver_groups.clear();
    for (const auto& nr : select_rows(sql_, kind_, "name_server_groups",
                                      "account_id = :v" + order_by(kind_, "id"), id)) {
      core::nameserver_group g;
      g.id = nr.str("id");
      g.account_id = nr.str("account_id");
      g.name = nr.str("name");
      g.description = nr.str("description");
      auto ns = nr.parsed("name_servers");
      if (ns.is_array())
        for (const auto& e : ns)
          if (e.is_object())
            g.nameservers.push_back({e.value("IP", ""), e.value("NSType", 1), e.value("Port", 53)});
      g.groups = nr.strings("groups");
      g.primary = nr.boolean("primary");
      g.domains = nr.strings("domains");
      g.enabled = nr.boolean("enabled");
      g.search_domains_enabled = nr.boolean("search_domains_enabled");
      a.nameserver_groups.push_back(std::move(g));
    }
  }
  if (parts & part_posture) {
    a.posture_checks.clear();
    for (const auto& cr :
         select_rows(sql_, kind_, "posture_checks", "account_id = :v" + order_by(kind_, "id"), id))
      a.posture_checks.push_back({cr.str("id"), cr.str("account_id"), cr.str("name"),
                                  cr.str("description"), cr.str("checks")});
  }
  if (parts & part_networks) {
    a.networks.clear();
    a.network_resources.clear();
    a.network_routers.clear();
    for (const auto& nr :
         select_rows(sql_, kind_, "networks", "account_id = :v" + order_by(kind_, "id"), id))
      a.networks.push_back(
          {nr.str("id"), nr.str("account_id"), nr.str("name"), nr.str("description")});
    for (const auto& rr : select_rows(sql_, kind_, "network_resources",
                                      "account_id = :v" + order_by(kind_, "id"), id)) {
      core::network_resource x;
      x.id = rr.str("id");
      x.network_id = rr.str("network_id");
      x.account_id = rr.str("account_id");
      x.name = rr.str("name");
      x.description = rr.str("description");
      x.type = rr.str("type");
      x.domain = rr.str("domain");
      x.prefix = json_string(rr.at("prefix"));
      // A store from NetBird's first networks release keeps the resource in `address` (no
      // prefix or domain column yet): read it as NetBird's GetResourceType would.
      if (const auto addr = rr.str("address");
          !addr.empty() && x.prefix.empty() && x.domain.empty()) {
        if (x.type == "domain")
          x.domain = addr;
        else
          x.prefix = addr.find('/') != std::string::npos   ? addr
                     : addr.find(':') != std::string::npos ? addr + "/128"
                                                           : addr + "/32";
      }
      // A NULL enabled (a store from before the column) is enabled, as NetBird's migration sets.
      x.enabled = !rr.at("enabled") || rr.boolean("enabled");
      a.network_resources.push_back(std::move(x));
    }
    for (const auto& rr : select_rows(sql_, kind_, "network_routers",
                                      "account_id = :v" + order_by(kind_, "id"), id)) {
      core::network_router x;
      x.id = rr.str("id");
      x.network_id = rr.str("network_id");
      x.account_id = rr.str("account_id");
      x.peer = rr.str("peer");
      x.peer_groups = rr.strings("peer_groups");
      x.masquerade = rr.boolean("masquerade");
      x.metric = rr.integer("metric");
      x.enabled = !rr.at("enabled") || rr.boolean("enabled");
      a.network_routers.push_back(std::move(x));
    }
  }
  return true;
}

namespace {

// Calls `f` with a pointer to each field of core::account in `parts`: every field belongs to the
// part load_parts reads it in (a field added to core::account is added here too).
template <class F>
void each_field(unsigned parts, F&& f) {
  using A = core::account;
  if (parts & account_store::part_account) {
    f(&A::id);
    f(&A::created_by);
    f(&A::domain);
    f(&A::domain_category);
    f(&A::created_at);
    f(&A::is_domain_primary_account);
    f(&A::net);
    f(&A::dns_disabled_management_groups);
    f(&A::settings);
  }
  if (parts & account_store::part_peers)
    f(&A::peers);
  if (parts & account_store::part_principals) {
    f(&A::users);
    f(&A::tokens);
    f(&A::setup_keys);
  }
  if (parts & account_store::part_groups)
    f(&A::groups);
  if (parts & account_store::part_policies)
    f(&A::policies);
  if (parts & account_store::part_routes)
    f(&A::routes);
  if (parts & account_store::part_nameservers)
    f(&A::nameserver_groups);
  if (parts & account_store::part_posture)
    f(&A::posture_checks);
  if (parts & account_store::part_networks) {
    f(&A::networks);
    f(&A::network_resources);
    f(&A::network_routers);
  }
}

} // namespace

core::account copy_parts(const core::account& a, unsigned parts) {
  core::account out;
  each_field(parts, [&](auto field) { out.*field = a.*field; });
  return out;
}

void take_parts(core::account& dst, core::account&& src, unsigned parts) {
  each_field(parts, [&](auto field) { dst.*field = std::move(src.*field); });
}

bool same_parts(const core::account& a, const core::account& b, unsigned parts) {
  bool same = true;
  each_field(parts, [&](auto field) { same = same && a.*field == b.*field; });
  return same;
}

std::optional<core::peer> account_store::peer_by_key(const std::string& wg_key) {
  auto rows = select_rows(sql_, kind_, "peers", "\"key\" = :v", wg_key, true);
  if (rows.empty())
    return std::nullopt;
  return to_peer(rows.front());
}

std::optional<account_store::peer_ref> account_store::peer_ref_by_key(const std::string& wg_key) {
  peer_ref r;
  soci::indicator id_ind = soci::i_null, acc_ind = soci::i_null, user_ind = soci::i_null;
  sql_ << "SELECT id, account_id, user_id FROM peers WHERE \"key\" = :k", soci::use(wg_key, "k"),
      soci::into(r.id, id_ind), soci::into(r.account_id, acc_ind), soci::into(r.user_id, user_ind);
  if (!sql_.got_data() || id_ind != soci::i_ok)
    return std::nullopt;
  if (acc_ind != soci::i_ok)
    r.account_id.clear();
  if (user_ind != soci::i_ok)
    r.user_id.clear();
  return r;
}

std::optional<core::peer> account_store::peer_by_id(const std::string& account_id,
                                                    const std::string& peer_id) {
  auto rows = select_rows(sql_, kind_, "peers", "id = :v", peer_id, true);
  if (rows.empty() || rows.front().str("account_id") != account_id)
    return std::nullopt;
  return to_peer(rows.front());
}

std::optional<std::string> account_store::account_of_token(const std::string& hashed_token) {
  std::string account_id;
  soci::indicator ind = soci::i_null;
  sql_ << "SELECT u.account_id FROM personal_access_tokens t JOIN users u ON u.id = t.user_id "
          "WHERE t.hashed_token = :h",
      soci::use(hashed_token), soci::into(account_id, ind);
  if (!sql_.got_data() || ind != soci::i_ok)
    return std::nullopt;
  return account_id;
}

std::optional<std::string> account_store::account_of_user(const std::string& user_id) {
  std::string account_id;
  soci::indicator ind = soci::i_null;
  sql_ << "SELECT account_id FROM users WHERE id = :id", soci::use(user_id),
      soci::into(account_id, ind);
  if (!sql_.got_data() || ind != soci::i_ok)
    return std::nullopt;
  return account_id;
}

std::optional<core::setup_key> account_store::setup_key_by_hashed_key(const std::string& hashed) {
  auto rows = select_rows(sql_, kind_, "setup_keys", "\"key\" = :v", hashed, true);
  if (rows.empty())
    return std::nullopt;
  return to_setup_key(rows.front());
}

std::optional<core::setup_key> account_store::setup_key_by_id(const std::string& account_id,
                                                              const std::string& key_id) {
  auto rows = select_rows(sql_, kind_, "setup_keys", "id = :v", key_id, true);
  if (rows.empty() || rows.front().str("account_id") != account_id)
    return std::nullopt;
  return to_setup_key(rows.front());
}

// ------------------------------------------------------------------------------------------------
// Inserts

void account_store::insert_account(const core::account& a) {
  row_values r;
  r.text("id", a.id);
  r.text("created_by", a.created_by);
  r.time("created_at", a.created_at);
  r.text("domain", a.domain);
  r.text("domain_category", a.domain_category);
  r.flag("is_domain_primary_account", a.is_domain_primary_account);
  r.text("network_identifier", a.net.identifier);
  r.json_text("network_net", prefix_to_ipnet(a.net.net).dump());
  r.text("network_dns", a.net.dns);
  r.number("network_serial", static_cast<std::int64_t>(a.net.serial));
  r.strings("dns_settings_disabled_management_groups", a.dns_disabled_management_groups);
  detail::put_settings(r, a.settings);
  insert_row(sql_, kind_, "accounts", r);
}

void account_store::insert_account_tree(const core::account& a) {
  soci::transaction tr(sql_);
  insert_account(a);
  for (const auto& u : a.users)
    insert_user(u);
  for (const auto& t : a.tokens)
    insert_token(t);
  for (const auto& p : a.peers)
    insert_peer(p);
  for (const auto& g : a.groups)
    write_group(sql_, kind_, g);
  for (const auto& p : a.policies)
    write_policy(sql_, kind_, p);
  for (const auto& k : a.setup_keys)
    insert_setup_key(k);
  for (const auto& x : a.routes)
    insert_route(x);
  for (const auto& g : a.nameserver_groups)
    insert_nameserver_group(g);
  for (const auto& c : a.posture_checks)
    insert_posture_check(c);
  for (const auto& n : a.networks)
    insert_network(n);
  for (const auto& x : a.network_resources)
    insert_network_resource(x);
  for (const auto& x : a.network_routers)
    insert_network_router(x);
  tr.commit();
}

void account_store::insert_peer(const core::peer& p) {
  row_values r;
  r.text("id", p.id);
  r.text("account_id", p.account_id);
  r.text("key", p.key);
  r.json_text("ip", json(p.ip).dump()); // NetBird's netip.Addr JSON: "\"100.64.0.5\""
  r.json_text("ipv6", json(p.ipv6).dump());
  r.text("name", p.name);
  r.text("dns_label", p.dns_label);
  r.text("user_id", p.user_id);
  r.text("ssh_key", p.ssh_key);
  r.flag("ssh_enabled", p.ssh_enabled);
  r.flag("login_expiration_enabled", p.login_expiration_enabled);
  r.flag("inactivity_expiration_enabled", p.inactivity_expiration_enabled);
  r.time("last_login", p.last_login);
  r.time("created_at", p.created_at);
  r.flag("ephemeral", p.ephemeral);
  r.strings("extra_dns_labels", p.extra_dns_labels);
  r.flag("allow_extra_dns_labels", p.allow_extra_dns_labels);
  const auto& m = p.meta;
  r.text("meta_hostname", m.hostname);
  r.text("meta_go_os", m.go_os);
  r.text("meta_kernel", m.kernel);
  r.text("meta_core", m.core);
  r.text("meta_platform", m.platform);
  r.text("meta_os", m.os);
  r.text("meta_os_version", m.os_version);
  r.text("meta_wt_version", m.wt_version);
  r.text("meta_ui_version", m.ui_version);
  r.text("meta_kernel_version", m.kernel_version);
  r.text("meta_network_addresses", raw_json(m.network_addresses_json));
  r.text("meta_system_serial_number", m.system_serial_number);
  r.text("meta_system_product_name", m.system_product_name);
  r.text("meta_system_manufacturer", m.system_manufacturer);
  r.text("meta_environment", raw_json(m.environment_json));
  r.text("meta_flags", raw_json(m.flags_json));
  r.text("meta_files", raw_json(m.files_json));
  r.text("meta_capabilities", raw_json(m.capabilities_json));
  r.time("peer_status_last_seen", p.status.last_seen);
  r.number("peer_status_session_started_at", p.status.session_started_at);
  r.flag("peer_status_connected", p.status.connected);
  r.flag("peer_status_login_expired", p.status.login_expired);
  r.flag("peer_status_requires_approval", p.status.requires_approval);
  r.json_text("location_connection_ip", json(p.location.connection_ip).dump());
  r.text("location_country_code", p.location.country_code);
  r.text("location_city_name", p.location.city_name);
  r.number("location_geo_name_id", static_cast<std::int64_t>(p.location.geo_name_id));
  insert_row(sql_, kind_, "peers", r);
}

void account_store::insert_user(const core::user& u) {
  row_values r;
  r.text("id", u.id);
  r.text("account_id", u.account_id);
  r.text("role", u.role);
  r.flag("is_service_user", u.is_service_user);
  r.flag("non_deletable", u.non_deletable);
  r.text("service_user_name", u.service_user_name);
  r.strings("auto_groups", u.auto_groups);
  r.flag("blocked", u.blocked);
  r.flag("pending_approval", u.pending_approval);
  r.time("last_login", u.last_login);
  r.time("created_at", u.created_at);
  r.text("issued", u.issued.empty() ? "api" : u.issued);
  r.text("name", u.name);
  r.text("email", u.email);
  insert_row(sql_, kind_, "users", r);
}

void account_store::insert_token(const core::personal_access_token& t) {
  row_values r;
  r.text("id", t.id);
  r.text("user_id", t.user_id);
  r.text("name", t.name);
  r.text("hashed_token", t.hashed_token);
  r.time("expiration_date", t.expiration_date);
  r.text("created_by", t.created_by);
  r.time("created_at", t.created_at);
  r.time("last_used", t.last_used);
  insert_row(sql_, kind_, "personal_access_tokens", r);
}

void account_store::insert_group(const core::group& g) {
  soci::transaction tr(sql_);
  write_group(sql_, kind_, g);
  tr.commit();
}

bool account_store::add_group_peer(const std::string& account_id, const std::string& group_id,
                                   const std::string& peer_id) {
  return detail::write_group_peer(sql_, kind_, account_id, group_id, peer_id);
}

bool account_store::remove_group_peer(const std::string& account_id, const std::string& group_id,
                                      const std::string& peer_id) {
  std::string acc = account_id, g = group_id, p = peer_id;
  soci::statement st =
      (sql_.prepare
           << "DELETE FROM group_peers WHERE account_id = :acc AND group_id = :g AND peer_id = :p",
       soci::use(acc, "acc"), soci::use(g, "g"), soci::use(p, "p"));
  st.execute(true);
  return affected(st);
}

void account_store::insert_policy(const core::policy& p) {
  soci::transaction tr(sql_);
  write_policy(sql_, kind_, p);
  tr.commit();
}

void account_store::insert_setup_key(const core::setup_key& k) {
  row_values r;
  r.text("id", k.id);
  r.text("account_id", k.account_id);
  r.text("key", k.key);
  r.text("key_secret", k.key_secret);
  r.text("name", k.name);
  r.text("type", k.type);
  r.time("created_at", k.created_at);
  r.time("expires_at", k.expires_at);
  r.time("updated_at", k.updated_at);
  r.flag("revoked", k.revoked);
  r.number("used_times", k.used_times);
  r.time("last_used", k.last_used);
  r.strings("auto_groups", k.auto_groups);
  r.number("usage_limit", k.usage_limit);
  r.flag("ephemeral", k.ephemeral);
  r.flag("allow_extra_dns_labels", k.allow_extra_dns_labels);
  insert_row(sql_, kind_, "setup_keys", r);
}

void account_store::insert_route(const core::route& x) {
  insert_row(sql_, kind_, "routes", detail::route_row(x));
}

void account_store::insert_nameserver_group(const core::nameserver_group& g) {
  insert_row(sql_, kind_, "name_server_groups", detail::nameserver_group_row(g));
}

void account_store::insert_network(const core::network_def& n) {
  insert_row(sql_, kind_, "networks", detail::network_row(n));
}

void account_store::insert_network_resource(const core::network_resource& x) {
  insert_row(sql_, kind_, "network_resources", detail::network_resource_row(x));
}

void account_store::insert_network_router(const core::network_router& x) {
  insert_row(sql_, kind_, "network_routers", detail::network_router_row(x));
}

void account_store::insert_posture_check(const core::posture_check& c) {
  row_values r;
  r.text("id", c.id);
  r.text("name", c.name);
  r.text("description", c.description);
  r.text("account_id", c.account_id);
  r.text("public_id", crypto::random_id());
  r.text("checks", raw_json(c.checks_json));
  insert_row(sql_, kind_, "posture_checks", r);
}

// ------------------------------------------------------------------------------------------------
// Setup keys

bool account_store::use_setup_key(const std::string& key_id, long long uses) {
  // NetBird's IsValid (not revoked, not expired, not over-used) as the guard of the increment, so
  // check and count are one statement and concurrent uses cannot overshoot the limit. One-shot
  // with RETURNING (PostgreSQL, SQLite >= 3.35): no prepared statement to deallocate afterwards.
  const bool pg = kind_ == engine::postgres;
  const std::string now = pg ? "CURRENT_TIMESTAMP" : "strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')";
  const std::string not_revoked =
      pg ? "COALESCE(revoked, false) = false" : "COALESCE(revoked, 0) = 0";
  const std::string not_expired =
      pg ? "(expires_at IS NULL OR expires_at < TIMESTAMPTZ '0002-01-01 00:00:00+00' OR "
           "expires_at > CURRENT_TIMESTAMP)"
         : "(expires_at IS NULL OR julianday(expires_at) IS NULL OR "
           "julianday(expires_at) < julianday('0002-01-01') OR "
           "julianday(expires_at) > julianday('now'))";
  const std::string limit = "(CASE WHEN type = 'one-off' THEN 1 ELSE COALESCE(usage_limit, 0) END)";
  std::string id = key_id;
  long long n = uses;
  std::string landed;
  soci::indicator ind = soci::i_null;
  sql_ << "UPDATE setup_keys SET used_times = COALESCE(used_times, 0) + :n, last_used = " + now +
              " WHERE id = :id AND " + not_revoked + " AND " + not_expired + " AND (" + limit +
              " = 0 OR COALESCE(used_times, 0) + :n2 <= " + limit + ") RETURNING id",
      soci::use(n, "n"), soci::use(id, "id"), soci::use(n, "n2"), soci::into(landed, ind);
  return sql_.got_data() && ind == soci::i_ok;
}

bool account_store::mark_token_used(const std::string& token_id) {
  const std::string now = kind_ == engine::postgres ? "CURRENT_TIMESTAMP"
                                                    : "strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')";
  std::string id = token_id;
  soci::statement st =
      (sql_.prepare << "UPDATE personal_access_tokens SET last_used = " + now + " WHERE id = :id",
       soci::use(id, "id"));
  st.execute(true);
  return affected(st);
}

// ------------------------------------------------------------------------------------------------
// Column-scoped peer writes

bool account_store::update_peer_meta(const std::string& account_id, const std::string& peer_id,
                                     const core::peer_meta& m) {
  std::string acc = account_id, id = peer_id;
  std::string na = raw_json(m.network_addresses_json), env = raw_json(m.environment_json),
              fl = raw_json(m.flags_json), fi = raw_json(m.files_json),
              cap = raw_json(m.capabilities_json);
  soci::statement st =
      (sql_.prepare
           << "UPDATE peers SET meta_hostname = :h, meta_go_os = :goos, meta_kernel = :k, "
              "meta_core = :c, meta_platform = :pl, meta_os = :os, meta_os_version = :osv, "
              "meta_wt_version = :wt, meta_ui_version = :ui, meta_kernel_version = :kv, "
              "meta_system_serial_number = :sn, meta_system_product_name = :pn, "
              "meta_system_manufacturer = :mf, meta_network_addresses = :na, "
              "meta_environment = :env, meta_flags = :fl, meta_files = :fi, "
              "meta_capabilities = :cap WHERE account_id = :acc AND id = :id",
       soci::use(m.hostname, "h"), soci::use(m.go_os, "goos"), soci::use(m.kernel, "k"),
       soci::use(m.core, "c"), soci::use(m.platform, "pl"), soci::use(m.os, "os"),
       soci::use(m.os_version, "osv"), soci::use(m.wt_version, "wt"), soci::use(m.ui_version, "ui"),
       soci::use(m.kernel_version, "kv"), soci::use(m.system_serial_number, "sn"),
       soci::use(m.system_product_name, "pn"), soci::use(m.system_manufacturer, "mf"),
       soci::use(na, "na"), soci::use(env, "env"), soci::use(fl, "fl"), soci::use(fi, "fi"),
       soci::use(cap, "cap"), soci::use(acc, "acc"), soci::use(id, "id"));
  st.execute(true);
  return affected(st);
}

bool account_store::rename_peer(const std::string& account_id, const std::string& peer_id,
                                const std::string& name, const std::string& dns_label) {
  std::string acc = account_id, id = peer_id, n = name, l = dns_label;
  soci::statement st =
      (sql_.prepare << "UPDATE peers SET name = :n, dns_label = :l "
                       "WHERE account_id = :acc AND id = :id",
       soci::use(n, "n"), soci::use(l, "l"), soci::use(acc, "acc"), soci::use(id, "id"));
  st.execute(true);
  return affected(st);
}

bool account_store::update_last_login(const std::string& account_id, const std::string& peer_id,
                                      const std::string& when) {
  std::string acc = account_id, id = peer_id;
  std::string w = kind_ == engine::postgres ? pg_time_text(when) : when;
  const char* q = kind_ == engine::postgres
                      ? "UPDATE peers SET last_login = CAST(:w AS timestamptz) "
                        "WHERE account_id = :acc AND id = :id"
                      : "UPDATE peers SET last_login = :w WHERE account_id = :acc AND id = :id";
  soci::statement st =
      (sql_.prepare << q, soci::use(w, "w"), soci::use(acc, "acc"), soci::use(id, "id"));
  st.execute(true);
  return affected(st);
}

bool account_store::update_location(const std::string& account_id, const std::string& peer_id,
                                    const core::peer_location& loc) {
  std::string acc = account_id, id = peer_id;
  std::string ip = json(loc.connection_ip).dump(); // net.IP JSON: "\"203.0.113.7\""
  std::string cc = loc.country_code, city = loc.city_name;
  long long geo = static_cast<long long>(loc.geo_name_id);
  soci::statement st =
      (sql_.prepare
           << "UPDATE peers SET location_connection_ip = :ip, location_country_code = :cc, "
              "location_city_name = :city, location_geo_name_id = :geo "
              "WHERE account_id = :acc AND id = :id",
       soci::use(ip, "ip"), soci::use(cc, "cc"), soci::use(city, "city"), soci::use(geo, "geo"),
       soci::use(acc, "acc"), soci::use(id, "id"));
  st.execute(true);
  return affected(st);
}

// ------------------------------------------------------------------------------------------------
// Copy between stores

void forget_catalog() {
  std::lock_guard<std::mutex> lk(column_cache_mu);
  column_cache.clear();
}

std::size_t copy_store(soci::session& src, engine src_kind, soci::session& dst, engine dst_kind) {
  std::size_t copied = 0;
  std::string table;
  try {
    soci::transaction tr(dst);
    for (const auto& t : core_tables()) {
      table = t;
      auto src_cols = catalog_columns(src, src_kind, table);
      if (src_cols.empty())
        continue; // an older source without this table
      auto dst_cols = catalog_columns(dst, dst_kind, table);
      if (dst_cols.empty())
        throw store_error("destination has no table " + table + " (run ensure_schema first)");
      long long present = 0;
      dst << "SELECT COUNT(*) FROM " + sql_ident(table), soci::into(present);
      if (present > 0)
        throw store_error("destination table " + table + " is not empty (" +
                          std::to_string(present) + " rows)");
      std::map<std::string, std::string> dst_type;
      for (const auto& c : dst_cols)
        dst_type[c.name] = c.type;
      std::vector<std::string> cols;
      for (const auto& c : src_cols)
        if (dst_type.count(c.name))
          cols.push_back(c.name);
      if (cols.empty())
        continue;
      std::string q = "INSERT INTO " + sql_ident(table) + " (";
      std::string v = ") VALUES (";
      for (std::size_t i = 0; i < cols.size(); ++i) {
        const std::string ph = ":c" + std::to_string(i);
        q += (i ? ", " : "") + sql_ident(cols[i]);
        v += i ? ", " : "";
        const auto& type = dst_type[cols[i]];
        v += dst_kind == engine::postgres && type != "text" ? "CAST(" + ph + " AS " + type + ")"
                                                            : ph;
      }
      q += v + ")";
      std::vector<std::string> values(cols.size());
      std::vector<soci::indicator> inds(cols.size());
      soci::statement st(dst);
      st.alloc();
      st.prepare(q);
      for (std::size_t i = 0; i < cols.size(); ++i)
        st.exchange(soci::use(values[i], inds[i], "c" + std::to_string(i)));
      st.define_and_bind();
      for (const auto& r : select_rows(src, src_kind, table, "", "")) {
        for (std::size_t i = 0; i < cols.size(); ++i) {
          const auto& val = r.at(cols[i]);
          const auto& type = dst_type[cols[i]];
          inds[i] = val ? soci::i_ok : soci::i_null;
          values[i] = val.value_or("");
          if (!val)
            continue;
          if (type == "numeric" || type == "boolean") { // booleans across engines
            if (*val == "true" || *val == "t")
              values[i] = dst_kind == engine::postgres ? "true" : "1";
            else if (*val == "false" || *val == "f")
              values[i] = dst_kind == engine::postgres ? "false" : "0";
          }
          if (dst_kind == engine::postgres && is_pg_timestamp(type) && !val->empty())
            values[i] = pg_time_text(*val);
          if (val->empty() && dst_kind == engine::postgres && type != "text")
            inds[i] = soci::i_null; // '' is no bigint/boolean/timestamp
        }
        st.execute(true);
        ++copied;
      }
    }
    table.clear();
    tr.commit();
  } catch (const store_error& e) {
    throw store_error(std::string("copy_store: ") + e.what());
  } catch (const std::exception& e) {
    throw store_error("copy_store: table " + table + ": " + e.what());
  }
  return copied;
}

} // namespace nbm::storage
