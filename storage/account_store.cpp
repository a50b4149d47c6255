#include "storage/account_store.hpp"

#include "crypto/crypto.hpp"
#include "storage/schema.hpp"

#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <bit>
#include <cstdio>
#include <map>

namespace nbm::storage {

namespace {

using json = nlohmann::json;
using cell = std::optional<std::string>;

// Rows as text, keyed by column name: one reading path for both engines (booleans come back as
// "1"/"0" from SQLite and "true"/"false" from PostgreSQL; times as each engine prints them).
struct text_row {
  std::map<std::string, cell> cells;

  const cell& at(const std::string& c) const {
    static const cell none;
    auto it = cells.find(c);
    return it == cells.end() ? none : it->second;
  }
  std::string str(const std::string& c) const { return at(c).value_or(""); }
  bool boolean(const std::string& c) const {
    const auto& v = at(c);
    return v && (*v == "1" || *v == "true" || *v == "t" || *v == "TRUE");
  }
  std::int64_t integer(const std::string& c) const {
    const auto& v = at(c);
    if (!v || v->empty())
      return 0;
    try {
      return static_cast<std::int64_t>(std::stoll(*v));
    } catch (...) {
      return static_cast<std::int64_t>(std::stod(*v)); // SQLite numeric affinity may say "1.0"
    }
  }
  core::opt_time time(const std::string& c) const { return at(c); }
  std::vector<std::string> strings(const std::string& c) const {
    std::vector<std::string> out;
    const auto& v = at(c);
    if (!v || v->empty())
      return out;
    auto j = json::parse(*v, nullptr, false);
    if (j.is_array())
      for (const auto& e : j)
        if (e.is_string())
          out.push_back(e.get<std::string>());
    return out;
  }
  json parsed(const std::string& c) const {
    const auto& v = at(c);
    return v && !v->empty() ? json::parse(*v, nullptr, false) : json();
  }
};

std::string sql_ident(const std::string& ident) {
  return "\"" + ident + "\"";
}

// SELECT every column of `table` as text WHERE <where> (with one bound value :v, if given).
std::vector<text_row> select_rows(soci::session& sql, engine kind, const std::string& table,
                                  const std::string& where, const std::string& value) {
  auto cols = existing_columns(sql, kind, table);
  std::string q = "SELECT ";
  for (std::size_t i = 0; i < cols.size(); ++i)
    q += (i ? ", CAST(" : "CAST(") + sql_ident(cols[i]) + " AS TEXT)";
  q += " FROM " + sql_ident(table);
  if (!where.empty())
    q += " WHERE " + where;
  std::vector<text_row> out;
  std::string bound = value;
  auto consume = [&](soci::rowset<soci::row>& rs) {
    for (const auto& r : rs) {
      text_row tr;
      for (std::size_t i = 0; i < cols.size(); ++i)
        tr.cells[cols[i]] =
            r.get_indicator(i) == soci::i_null ? cell{} : cell{r.get<std::string>(i)};
      out.push_back(std::move(tr));
    }
  };
  if (where.empty()) {
    soci::rowset<soci::row> rs = (sql.prepare << q);
    consume(rs);
  } else {
    soci::rowset<soci::row> rs = (sql.prepare << q, soci::use(bound, "v"));
    consume(rs);
  }
  return out;
}

// Go's net.IPNet JSON {"IP":"100.64.0.0","Mask":"//8AAA=="} -> "100.64.0.0/10".
std::string ipnet_to_prefix(const json& j) {
  if (!j.is_object() || !j.contains("IP"))
    return "";
  std::string ip = j.value("IP", "");
  std::string mask_b64 = j.value("Mask", "");
  auto mask = crypto::base64_decode(mask_b64);
  if (!mask)
    return ip;
  int bits = 0;
  for (unsigned char c : *mask)
    bits += std::popcount(static_cast<unsigned>(c));
  return ip + "/" + std::to_string(bits);
}

// A JSON string column ("\"100.64.0.5\"") -> its value; anything else unchanged.
std::string json_string(const cell& v) {
  if (!v || v->empty())
    return "";
  auto j = json::parse(*v, nullptr, false);
  return j.is_string() ? j.get<std::string>() : *v;
}

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
  m.network_addresses_json = r.str("meta_network_addresses");
  m.environment_json = r.str("meta_environment");
  m.flags_json = r.str("meta_flags");
  m.files_json = r.str("meta_files");
  m.capabilities_json = r.str("meta_capabilities");
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

bool affected(soci::statement& st) {
  return st.get_affected_rows() > 0;
}

} // namespace

std::vector<std::string> account_store::account_ids() {
  std::vector<std::string> ids;
  soci::rowset<std::string> rs = (sql_.prepare << "SELECT id FROM accounts ORDER BY id");
  for (const auto& id : rs)
    ids.push_back(id);
  return ids;
}

std::optional<core::account> account_store::load_account(const std::string& id) {
  auto rows = select_rows(sql_, kind_, "accounts", "id = :v", id);
  if (rows.empty())
    return std::nullopt;
  const auto& r = rows.front();
  core::account a;
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
  s.routing_peer_dns_resolution_enabled = r.boolean("settings_routing_peer_dns_resolution_enabled");
  s.dns_domain = r.str("settings_dns_domain");
  s.extra_peer_approval_enabled = r.boolean("settings_extra_peer_approval_enabled");
  s.extra_user_approval_required = r.boolean("settings_extra_user_approval_required");
  s.lazy_connection_enabled = r.boolean("settings_lazy_connection_enabled");

  for (const auto& pr : select_rows(sql_, kind_, "peers", "account_id = :v ORDER BY id", id))
    a.peers.push_back(to_peer(pr));
  for (const auto& ur : select_rows(sql_, kind_, "users", "account_id = :v ORDER BY id", id)) {
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
  for (const auto& tr :
       select_rows(sql_, kind_, "personal_access_tokens",
                   "user_id IN (SELECT id FROM users WHERE account_id = :v) ORDER BY id", id)) {
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
  std::map<std::string, std::vector<std::string>> members;
  for (const auto& m :
       select_rows(sql_, kind_, "group_peers", "account_id = :v ORDER BY peer_id", id))
    members[m.str("group_id")].push_back(m.str("peer_id"));
  for (const auto& gr : select_rows(sql_, kind_, "groups", "account_id = :v ORDER BY id", id)) {
    core::group g;
    g.id = gr.str("id");
    g.account_id = gr.str("account_id");
    g.name = gr.str("name");
    g.issued = gr.str("issued");
    g.peers = members[g.id];
    a.groups.push_back(std::move(g));
  }
  std::map<std::string, std::vector<core::policy_rule>> rules;
  for (const auto& rr : select_rows(
           sql_, kind_, "policy_rules",
           "policy_id IN (SELECT id FROM policies WHERE account_id = :v) ORDER BY id", id)) {
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
    x.ports = rr.strings("ports");
    auto pr = rr.parsed("port_ranges");
    if (pr.is_array())
      for (const auto& e : pr)
        x.port_ranges.push_back(
            {e.value<std::uint16_t>("Start", 0), e.value<std::uint16_t>("End", 0)});
    rules[x.policy_id].push_back(std::move(x));
  }
  for (const auto& pr : select_rows(sql_, kind_, "policies", "account_id = :v ORDER BY id", id)) {
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
  for (const auto& kr : select_rows(sql_, kind_, "setup_keys", "account_id = :v ORDER BY id", id)) {
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
    a.setup_keys.push_back(std::move(k));
  }
  for (const auto& rr : select_rows(sql_, kind_, "routes", "account_id = :v ORDER BY id", id)) {
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
  for (const auto& nr :
       select_rows(sql_, kind_, "name_server_groups", "account_id = :v ORDER BY id", id)) {
    core::nameserver_group g;
    g.id = nr.str("id");
    g.account_id = nr.str("account_id");
    g.name = nr.str("name");
    g.description = nr.str("description");
    auto ns = nr.parsed("name_servers");
    if (ns.is_array())
      for (const auto& e : ns)
        g.nameservers.push_back({e.value("IP", ""), e.value("NSType", 1), e.value("Port", 53)});
    g.groups = nr.strings("groups");
    g.primary = nr.boolean("primary");
    g.domains = nr.strings("domains");
    g.enabled = nr.boolean("enabled");
    g.search_domains_enabled = nr.boolean("search_domains_enabled");
    a.nameserver_groups.push_back(std::move(g));
  }
  for (const auto& cr :
       select_rows(sql_, kind_, "posture_checks", "account_id = :v ORDER BY id", id))
    a.posture_checks.push_back({cr.str("id"), cr.str("account_id"), cr.str("name"),
                                cr.str("description"), cr.str("checks")});
  return a;
}

std::optional<core::peer> account_store::peer_by_key(const std::string& wg_key) {
  auto rows = select_rows(sql_, kind_, "peers", "\"key\" = :v", wg_key);
  if (rows.empty())
    return std::nullopt;
  return to_peer(rows.front());
}

std::optional<core::peer> account_store::peer_by_id(const std::string& account_id,
                                                    const std::string& peer_id) {
  auto rows = select_rows(sql_, kind_, "peers", "id = :v", peer_id);
  if (rows.empty() || rows.front().str("account_id") != account_id)
    return std::nullopt;
  return to_peer(rows.front());
}

bool account_store::update_peer_meta(const std::string& account_id, const std::string& peer_id,
                                     const core::peer_meta& m) {
  std::string acc = account_id, id = peer_id;
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
       soci::use(m.network_addresses_json, "na"), soci::use(m.environment_json, "env"),
       soci::use(m.flags_json, "fl"), soci::use(m.files_json, "fi"),
       soci::use(m.capabilities_json, "cap"), soci::use(acc, "acc"), soci::use(id, "id"));
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
  std::string acc = account_id, id = peer_id, w = when;
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
  std::string ip = json(loc.connection_ip).dump();
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

namespace {

// Declared type of each column of `table` in `kind`'s catalog.
std::map<std::string, std::string> column_types(soci::session& sql, engine kind,
                                                const std::string& table) {
  std::map<std::string, std::string> out;
  if (kind == engine::sqlite) {
    soci::rowset<soci::row> rs = (sql.prepare << "PRAGMA table_info(" + sql_ident(table) + ")");
    for (const auto& r : rs)
      out[r.get<std::string>(1)] = r.get<std::string>(2, "");
  } else {
    std::string t = table;
    soci::rowset<soci::row> rs =
        (sql.prepare << "SELECT column_name, data_type FROM information_schema.columns "
                        "WHERE table_schema = current_schema() AND table_name = :t",
         soci::use(t, "t"));
    for (const auto& r : rs)
      out[r.get<std::string>(0)] = r.get<std::string>(1);
  }
  return out;
}

} // namespace

std::size_t copy_store(soci::session& src, engine src_kind, soci::session& dst, engine dst_kind) {
  std::size_t copied = 0;
  soci::transaction tr(dst);
  for (const auto& table : core_tables()) {
    auto src_types = column_types(src, src_kind, table);
    if (src_types.empty())
      continue;
    auto dst_types = column_types(dst, dst_kind, table);
    std::vector<std::string> cols;
    for (const auto& [c, _] : dst_types)
      if (src_types.count(c))
        cols.push_back(c);
    if (cols.empty())
      continue;
    auto rows = select_rows(src, src_kind, table, "", "");
    std::string q = "INSERT INTO " + sql_ident(table) + " (";
    for (std::size_t i = 0; i < cols.size(); ++i)
      q += (i ? ", " : "") + sql_ident(cols[i]);
    q += ") VALUES (";
    for (std::size_t i = 0; i < cols.size(); ++i) {
      std::string ph = ":c" + std::to_string(i);
      q += (i ? ", " : "");
      q += dst_kind == engine::postgres ? "CAST(" + ph + " AS " + dst_types[cols[i]] + ")" : ph;
    }
    q += ")";
    std::vector<std::string> values(cols.size());
    std::vector<soci::indicator> inds(cols.size());
    soci::statement st(dst);
    st.alloc();
    st.prepare(q);
    for (std::size_t i = 0; i < cols.size(); ++i)
      st.exchange(soci::use(values[i], inds[i], "c" + std::to_string(i)));
    st.define_and_bind();
    for (const auto& r : rows) {
      for (std::size_t i = 0; i < cols.size(); ++i) {
        const auto& v = r.at(cols[i]);
        inds[i] = v ? soci::i_ok : soci::i_null;
        values[i] = v.value_or("");
        const auto& type = dst_types[cols[i]];
        if (v && (type == "numeric" || type == "boolean")) { // booleans across engines
          if (*v == "true" || *v == "t")
            values[i] = dst_kind == engine::postgres ? "true" : "1";
          else if (*v == "false" || *v == "f")
            values[i] = dst_kind == engine::postgres ? "false" : "0";
        }
        if (v && v->empty() && dst_kind == engine::postgres && type != "text")
          inds[i] = soci::i_null; // '' is no bigint/boolean/timestamp
      }
      st.execute(true);
      ++copied;
    }
  }
  tr.commit();
  return copied;
}

} // namespace nbm::storage
