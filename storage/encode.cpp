#include "storage/encode.hpp"

#include "crypto/crypto.hpp"
#include "storage/schema.hpp"

#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <algorithm>

namespace nbm::storage::detail {

namespace {

using json = nlohmann::json;

// Go's struct field order for NetBird's {"ID": ..., "Type": ...} resources.
json from_resource(const core::resource& r) {
  return json{{"ID", r.id}, {"Type", r.type}};
}

bool has_zone(const std::string& t) {
  return t.size() > 19 && t.find_first_of("+-Z", 19) != std::string::npos;
}

// Values bound to one statement, each behind a placeholder typed for the engine. SOCI binds by
// reference: bind() only after the last add(), so the vectors no longer move.
class typed_binds {
public:
  typed_binds(engine kind, std::string table) : kind_(kind), table_(std::move(table)) {}

  // The SQL for the placeholder of `v` as column `col` of the table.
  std::string add(const std::string& col, const cell& v) {
    const std::string name = "c" + std::to_string(values_.size());
    values_.push_back(v.value_or(""));
    inds_.push_back(v ? soci::i_ok : soci::i_null);
    auto type = schema_column_type(table_, col).value_or(column_type::text);
    if (kind_ != engine::postgres || type == column_type::text)
      return ":" + name;
    const char* pg = type == column_type::boolean   ? "boolean"
                     : type == column_type::integer ? "bigint"
                                                    : "timestamptz";
    if (type == column_type::datetime && v)
      values_.back() = pg_time_text(values_.back());
    return "CAST(:" + name + " AS " + pg + ")";
  }

  std::size_t execute(soci::session& sql, const std::string& query) {
    soci::statement st(sql);
    st.alloc();
    st.prepare(query);
    for (std::size_t i = 0; i < values_.size(); ++i)
      st.exchange(soci::use(values_[i], inds_[i], "c" + std::to_string(i)));
    st.define_and_bind();
    st.execute(true);
    return static_cast<std::size_t>(st.get_affected_rows());
  }

private:
  engine kind_;
  std::string table_;
  std::vector<std::string> values_;
  std::vector<soci::indicator> inds_;
};

bool listed(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

} // namespace

std::string sql_ident(const std::string& ident) {
  return "\"" + ident + "\"";
}

std::string pg_time_text(const std::string& t) {
  return has_zone(t) ? t : t + "+00:00";
}

std::string or_new_id(const std::string& id) {
  return id.empty() ? crypto::random_id() : id;
}

void row_values::strings(const std::string& c, const std::vector<std::string>& v) {
  json_text(c, json(v).dump());
}

std::size_t insert_row(soci::session& sql, engine kind, const std::string& table,
                       const row_values& r, const std::string& suffix) {
  typed_binds binds(kind, table);
  std::string q = "INSERT INTO " + sql_ident(table) + " (";
  std::string v = ") VALUES (";
  for (std::size_t i = 0; i < r.cols.size(); ++i) {
    q += (i ? ", " : "") + sql_ident(r.cols[i]);
    v += (i ? ", " : "") + binds.add(r.cols[i], r.vals[i]);
  }
  q += v + ")" + (suffix.empty() ? "" : " " + suffix);
  return binds.execute(sql, q);
}

std::size_t update_row(soci::session& sql, engine kind, const std::string& table,
                       const row_values& r, const std::vector<std::string>& keys,
                       const std::vector<std::string>& keep) {
  typed_binds binds(kind, table);
  std::string set, where;
  for (std::size_t i = 0; i < r.cols.size(); ++i) {
    const auto& c = r.cols[i];
    if (listed(keys, c) || listed(keep, c))
      continue;
    set += (set.empty() ? "" : ", ") + sql_ident(c) + " = " + binds.add(c, r.vals[i]);
  }
  for (const auto& k : keys) {
    auto it = std::find(r.cols.begin(), r.cols.end(), k);
    if (it == r.cols.end())
      throw store_error("update_row: key column " + k + " has no value");
    const auto& value = r.vals[static_cast<std::size_t>(it - r.cols.begin())];
    where += (where.empty() ? "" : " AND ") + sql_ident(k) + " = " + binds.add(k, value);
  }
  if (set.empty() || where.empty())
    throw store_error("update_row: nothing to update in " + table);
  return binds.execute(sql, "UPDATE " + sql_ident(table) + " SET " + set + " WHERE " + where);
}

row_values group_row(const core::group& g) {
  row_values r;
  r.text("id", g.id);
  r.text("account_id", g.account_id);
  r.text("public_id", crypto::random_id());
  r.text("name", g.name);
  r.text("issued", g.issued);
  json res = json::array();
  for (const auto& x : g.resources)
    res.push_back(from_resource(x));
  r.json_text("resources", res.dump());
  return r;
}

row_values policy_row(const core::policy& p) {
  row_values r;
  r.text("id", p.id);
  r.text("public_id", crypto::random_id());
  r.text("account_id", p.account_id);
  r.text("name", p.name);
  r.text("description", p.description);
  r.flag("enabled", p.enabled);
  r.strings("source_posture_checks", p.source_posture_checks);
  return r;
}

row_values policy_rule_row(const core::policy_rule& x, const std::string& policy_id) {
  row_values q;
  q.text("id", or_new_id(x.id));
  q.text("policy_id", policy_id);
  q.text("name", x.name);
  q.text("description", x.description);
  q.flag("enabled", x.enabled);
  q.text("action", x.action);
  q.strings("destinations", x.destinations);
  q.json_text("destination_resource", from_resource(x.destination_resource).dump());
  q.strings("sources", x.sources);
  q.json_text("source_resource", from_resource(x.source_resource).dump());
  q.flag("bidirectional", x.bidirectional);
  q.text("protocol", x.protocol);
  q.strings("ports", x.ports);
  nlohmann::ordered_json ranges = nlohmann::ordered_json::array(); // Go's field order
  for (const auto& pr : x.port_ranges)
    ranges.push_back(nlohmann::ordered_json{{"Start", pr.start}, {"End", pr.end}});
  q.json_text("port_ranges", ranges.dump());
  q.json_text("authorized_groups",
              x.authorized_groups.empty() ? "null" : json(x.authorized_groups).dump());
  q.text("authorized_user", x.authorized_user);
  return q;
}

row_values route_row(const core::route& x) {
  row_values r;
  r.text("id", x.id);
  r.text("account_id", x.account_id);
  r.text("public_id", crypto::random_id());
  r.json_text("network", json(x.network).dump()); // netip.Prefix JSON: "\"10.10.0.0/16\""
  r.strings("domains", x.domains);
  r.flag("keep_route", x.keep_route);
  r.text("net_id", x.net_id);
  r.text("description", x.description);
  r.text("peer", x.peer);
  r.strings("peer_groups", x.peer_groups);
  r.number("network_type", x.network_type);
  r.flag("masquerade", x.masquerade);
  r.number("metric", x.metric);
  r.flag("enabled", x.enabled);
  r.strings("groups", x.groups);
  r.strings("access_control_groups", x.access_control_groups);
  r.flag("skip_auto_apply", x.skip_auto_apply);
  return r;
}

row_values network_row(const core::network_def& n) {
  row_values r;
  r.text("id", n.id);
  r.text("account_id", n.account_id);
  r.text("public_id", crypto::random_id());
  r.text("name", n.name);
  r.text("description", n.description);
  return r;
}

row_values network_resource_row(const core::network_resource& x) {
  row_values r;
  r.text("id", x.id);
  r.text("network_id", x.network_id);
  r.text("account_id", x.account_id);
  r.text("public_id", crypto::random_id());
  r.text("name", x.name);
  r.text("description", x.description);
  r.text("type", x.type);
  r.text("domain", x.domain);
  r.json_text("prefix", json(x.prefix).dump()); // netip.Prefix JSON: "\"10.0.0.0/24\"" ("" none)
  r.flag("enabled", x.enabled);
  return r;
}

row_values network_router_row(const core::network_router& x) {
  row_values r;
  r.text("id", x.id);
  r.text("network_id", x.network_id);
  r.text("account_id", x.account_id);
  r.text("public_id", crypto::random_id());
  r.text("peer", x.peer);
  r.strings("peer_groups", x.peer_groups);
  r.flag("masquerade", x.masquerade);
  r.number("metric", x.metric);
  r.flag("enabled", x.enabled);
  return r;
}

row_values nameserver_group_row(const core::nameserver_group& g) {
  row_values r;
  r.text("id", g.id);
  r.text("account_id", g.account_id);
  r.text("public_id", crypto::random_id());
  r.text("name", g.name);
  r.text("description", g.description);
  json ns = json::array();
  for (const auto& n : g.nameservers)
    ns.push_back(json{{"IP", n.ip}, {"NSType", n.ns_type}, {"Port", n.port}});
  r.json_text("name_servers", ns.dump());
  r.strings("groups", g.groups);
  r.flag("primary", g.primary);
  r.strings("domains", g.domains);
  r.flag("enabled", g.enabled);
  r.flag("search_domains_enabled", g.search_domains_enabled);
  return r;
}

void put_settings(row_values& r, const core::account_settings& s) {
  r.flag("settings_peer_login_expiration_enabled", s.peer_login_expiration_enabled);
  r.number("settings_peer_login_expiration", s.peer_login_expiration_ns);
  r.flag("settings_peer_inactivity_expiration_enabled", s.peer_inactivity_expiration_enabled);
  r.number("settings_peer_inactivity_expiration", s.peer_inactivity_expiration_ns);
  r.flag("settings_regular_users_view_blocked", s.regular_users_view_blocked);
  r.flag("settings_groups_propagation_enabled", s.groups_propagation_enabled);
  r.flag("settings_jwt_groups_enabled", s.jwt_groups_enabled);
  r.text("settings_jwt_groups_claim_name", s.jwt_groups_claim_name);
  r.strings("settings_jwt_allow_groups", s.jwt_allow_groups);
  r.flag("settings_routing_peer_dns_resolution_enabled", s.routing_peer_dns_resolution_enabled);
  r.text("settings_dns_domain", s.dns_domain);
  r.flag("settings_extra_peer_approval_enabled", s.extra_peer_approval_enabled);
  r.flag("settings_extra_user_approval_required", s.extra_user_approval_required);
  r.text("settings_extra_integrated_validator", s.extra_integrated_validator);
  r.strings("settings_extra_integrated_validator_groups", s.extra_integrated_validator_groups);
  r.flag("settings_lazy_connection_enabled", s.lazy_connection_enabled);
}

bool write_group_peer(soci::session& sql, engine kind, const std::string& account_id,
                      const std::string& group_id, const std::string& peer_id) {
  row_values r;
  r.text("account_id", account_id);
  r.text("group_id", group_id);
  r.text("peer_id", peer_id);
  return insert_row(sql, kind, "group_peers", r, "ON CONFLICT DO NOTHING") > 0;
}

} // namespace nbm::storage::detail
