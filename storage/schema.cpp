#include "storage/schema.hpp"

#include "storage/replica_store.hpp"

#include "storage/account_store.hpp"

#include "crypto/crypto.hpp"

#include <nlohmann/json.hpp>
#include <soci/soci.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <set>

namespace nbm::storage {

namespace {

using ct = column_type;

struct column_def {
  const char* name;
  ct type;
  const char* default_sql = nullptr; // DEFAULT clause value, as SQL
  bool not_null = false;
};

struct table_def {
  const char* name;
  std::vector<column_def> columns;
  std::vector<const char*> primary_key;
};

// clang-format off
const std::vector<table_def>& tables() {
  static const std::vector<table_def> defs = {
    {"accounts", {
      {"id", ct::text}, {"created_by", ct::text}, {"created_at", ct::datetime}, {"domain", ct::text},
      {"domain_category", ct::text}, {"is_domain_primary_account", ct::boolean},
      {"network_identifier", ct::text}, {"network_net", ct::text}, {"network_net_v6", ct::text},
      {"network_dns", ct::text}, {"network_serial", ct::integer},
      {"dns_settings_disabled_management_groups", ct::text},
      {"settings_peer_login_expiration_enabled", ct::boolean},
      {"settings_peer_login_expiration", ct::integer},
      {"settings_peer_inactivity_expiration_enabled", ct::boolean},
      {"settings_peer_inactivity_expiration", ct::integer},
      {"settings_regular_users_view_blocked", ct::boolean},
      {"settings_groups_propagation_enabled", ct::boolean},
      {"settings_jwt_groups_enabled", ct::boolean}, {"settings_jwt_groups_claim_name", ct::text},
      {"settings_jwt_allow_groups", ct::text},
      {"settings_routing_peer_dns_resolution_enabled", ct::boolean},
      {"settings_dns_domain", ct::text}, {"settings_network_range", ct::text},
      {"settings_network_range_v6", ct::text}, {"settings_peer_expose_enabled", ct::boolean},
      {"settings_peer_expose_groups", ct::text},
      {"settings_extra_peer_approval_enabled", ct::boolean},
      {"settings_extra_user_approval_required", ct::boolean},
      {"settings_extra_integrated_validator", ct::text},
      {"settings_extra_integrated_validator_groups", ct::text},
      {"settings_lazy_connection_enabled", ct::boolean, "false"},
      {"settings_auto_update_version", ct::text, "'disabled'"},
      {"settings_auto_update_always", ct::boolean, "false"},
      {"settings_ipv6_enabled_groups", ct::text},
      {"settings_metrics_push_enabled", ct::boolean, "false"},
      {"settings_agent_network_only", ct::boolean, "false"},
      {"settings_dashboard_features", ct::text}, {"settings_local_mfa_enabled", ct::boolean},
      {"reverse_proxy_free_domain_nonce", ct::text},
    }, {"id"}},
    {"users", {
      {"id", ct::text}, {"account_id", ct::text}, {"role", ct::text}, {"is_service_user", ct::boolean},
      {"non_deletable", ct::boolean}, {"service_user_name", ct::text}, {"auto_groups", ct::text},
      {"blocked", ct::boolean}, {"pending_approval", ct::boolean}, {"last_login", ct::datetime},
      {"created_at", ct::datetime}, {"issued", ct::text, "'api'"}, {"integration_ref_id", ct::integer},
      {"integration_ref_integration_type", ct::text}, {"name", ct::text, "''"},
      {"email", ct::text, "''"},
    }, {"id"}},
    {"personal_access_tokens", {
      {"id", ct::text}, {"user_id", ct::text}, {"name", ct::text}, {"hashed_token", ct::text},
      {"expiration_date", ct::datetime}, {"created_by", ct::text}, {"created_at", ct::datetime},
      {"last_used", ct::datetime},
    }, {"id"}},
    {"peers", {
      {"id", ct::text}, {"account_id", ct::text}, {"key", ct::text}, {"ip", ct::text}, {"ipv6", ct::text},
      {"name", ct::text}, {"dns_label", ct::text}, {"user_id", ct::text}, {"ssh_key", ct::text},
      {"ssh_enabled", ct::boolean}, {"login_expiration_enabled", ct::boolean},
      {"inactivity_expiration_enabled", ct::boolean}, {"last_login", ct::datetime},
      {"created_at", ct::datetime}, {"ephemeral", ct::boolean}, {"extra_dns_labels", ct::text},
      {"allow_extra_dns_labels", ct::boolean},
      {"meta_hostname", ct::text}, {"meta_go_os", ct::text}, {"meta_kernel", ct::text},
      {"meta_core", ct::text}, {"meta_platform", ct::text}, {"meta_os", ct::text},
      {"meta_os_version", ct::text}, {"meta_wt_version", ct::text}, {"meta_ui_version", ct::text},
      {"meta_kernel_version", ct::text}, {"meta_network_addresses", ct::text},
      {"meta_system_serial_number", ct::text}, {"meta_system_product_name", ct::text},
      {"meta_system_manufacturer", ct::text}, {"meta_environment", ct::text}, {"meta_flags", ct::text},
      {"meta_files", ct::text}, {"meta_capabilities", ct::text},
      {"meta_sync_message_version", ct::integer},
      {"peer_status_last_seen", ct::datetime},
      {"peer_status_session_started_at", ct::integer, "0", true},
      {"peer_status_connected", ct::boolean}, {"peer_status_login_expired", ct::boolean},
      {"peer_status_requires_approval", ct::boolean},
      {"location_connection_ip", ct::text}, {"location_country_code", ct::text},
      {"location_city_name", ct::text}, {"location_geo_name_id", ct::integer},
      {"proxy_meta_embedded", ct::boolean}, {"proxy_meta_cluster", ct::text},
    }, {"id"}},
    {"groups", {
      {"id", ct::text}, {"account_id", ct::text}, {"public_id", ct::text}, {"name", ct::text},
      {"issued", ct::text}, {"resources", ct::text}, {"integration_ref_id", ct::integer},
      {"integration_ref_integration_type", ct::text},
    }, {"id"}},
    {"group_peers", {
      {"account_id", ct::text}, {"group_id", ct::text}, {"peer_id", ct::text},
    }, {"group_id", "peer_id"}},
    {"policies", {
      {"id", ct::text}, {"public_id", ct::text}, {"account_id", ct::text}, {"name", ct::text},
      {"description", ct::text}, {"enabled", ct::boolean}, {"source_posture_checks", ct::text},
    }, {"id"}},
    {"policy_rules", {
      {"id", ct::text}, {"policy_id", ct::text}, {"name", ct::text}, {"description", ct::text},
      {"enabled", ct::boolean}, {"action", ct::text}, {"destinations", ct::text},
      {"destination_resource", ct::text}, {"sources", ct::text}, {"source_resource", ct::text},
      {"bidirectional", ct::boolean}, {"protocol", ct::text}, {"ports", ct::text},
      {"port_ranges", ct::text}, {"authorized_groups", ct::text}, {"authorized_user", ct::text},
    }, {"id"}},
    {"setup_keys", {
      {"id", ct::text}, {"account_id", ct::text}, {"key", ct::text}, {"key_secret", ct::text},
      {"name", ct::text}, {"type", ct::text}, {"created_at", ct::datetime},
      {"expires_at", ct::datetime}, {"updated_at", ct::datetime}, {"revoked", ct::boolean},
      {"used_times", ct::integer}, {"last_used", ct::datetime}, {"auto_groups", ct::text},
      {"usage_limit", ct::integer}, {"ephemeral", ct::boolean},
      {"allow_extra_dns_labels", ct::boolean},
    }, {"id"}},
    {"routes", {
      {"id", ct::text}, {"account_id", ct::text}, {"public_id", ct::text}, {"network", ct::text},
      {"domains", ct::text}, {"keep_route", ct::boolean}, {"net_id", ct::text},
      {"description", ct::text}, {"peer", ct::text}, {"peer_groups", ct::text},
      {"network_type", ct::integer}, {"masquerade", ct::boolean}, {"metric", ct::integer},
      {"enabled", ct::boolean}, {"groups", ct::text}, {"access_control_groups", ct::text},
      {"skip_auto_apply", ct::boolean},
    }, {"id"}},
    {"name_server_groups", {
      {"id", ct::text}, {"account_id", ct::text}, {"public_id", ct::text}, {"name", ct::text},
      {"description", ct::text}, {"name_servers", ct::text}, {"groups", ct::text},
      {"primary", ct::boolean}, {"domains", ct::text}, {"enabled", ct::boolean},
      {"search_domains_enabled", ct::boolean},
    }, {"id"}},
    {"posture_checks", {
      {"id", ct::text}, {"name", ct::text}, {"description", ct::text}, {"account_id", ct::text},
      {"public_id", ct::text}, {"checks", ct::text},
    }, {"id"}},
    {"networks", {
      {"id", ct::text}, {"account_id", ct::text}, {"public_id", ct::text}, {"name", ct::text},
      {"description", ct::text},
    }, {"id"}},
    {"network_routers", {
      {"id", ct::text}, {"network_id", ct::text}, {"account_id", ct::text}, {"public_id", ct::text},
      {"peer", ct::text}, {"peer_groups", ct::text}, {"masquerade", ct::boolean},
      {"metric", ct::integer}, {"enabled", ct::boolean, "true"},
    }, {"id"}},
    {"network_resources", {
      {"id", ct::text}, {"network_id", ct::text}, {"account_id", ct::text}, {"public_id", ct::text},
      {"name", ct::text}, {"description", ct::text}, {"type", ct::text}, {"domain", ct::text},
      {"prefix", ct::text}, {"enabled", ct::boolean, "true"},
    }, {"id"}},
    {"account_onboardings", {
      {"account_id", ct::text}, {"onboarding_flow_pending", ct::boolean},
      {"signup_form_pending", ct::boolean}, {"created_at", ct::datetime},
      {"updated_at", ct::datetime},
    }, {"account_id"}},
    {"installations", {
      {"id", ct::integer}, {"installation_id_value", ct::text},
    }, {"id"}},
    // Ours, not NetBird's: the server's WireGuard key pair, shared by every replica and every restart.
    {"netbird_mgmt_server_keys", {
      {"id", ct::integer}, {"public_key", ct::text}, {"private_key", ct::text},
      {"encrypted", ct::boolean}, {"created_at", ct::datetime},
    }, {"id"}},
  };
  return defs;
}

struct index_def {
  const char* name;
  const char* table;
  const char* columns;
  bool unique = false;
};

const std::vector<index_def>& indexes() {
  static const std::vector<index_def> defs = {
    {"idx_accounts_domain", "accounts", "\"domain\""},
    {"idx_users_account_id", "users", "\"account_id\""},
    {"idx_personal_access_tokens_user_id", "personal_access_tokens", "\"user_id\""},
    {"idx_peers_account_id", "peers", "\"account_id\""},
    {"idx_peers_name", "peers", "\"name\""},
    {"idx_peers_ephemeral", "peers", "\"ephemeral\""},
    {"idx_peers_proxy_meta_embedded", "peers", "\"proxy_meta_embedded\""},
    {"idx_peers_proxy_meta_cluster", "peers", "\"proxy_meta_cluster\""},
    {"idx_peers_key_unique", "peers", "\"key\"", true},
    {"idx_account_ip", "peers", "\"account_id\", \"ip\"", true},
    {"idx_account_dnslabel", "peers", "\"account_id\", \"dns_label\"", true},
    {"idx_groups_account_id", "groups", "\"account_id\""},
    {"idx_group_peers_account_id", "group_peers", "\"account_id\""},
    {"idx_policies_account_id", "policies", "\"account_id\""},
    {"idx_policy_rules_policy_id", "policy_rules", "\"policy_id\""},
    {"idx_setup_keys_account_id", "setup_keys", "\"account_id\""},
    {"idx_setup_keys_key_secret", "setup_keys", "\"key_secret\""},
    {"idx_routes_account_id", "routes", "\"account_id\""},
    {"idx_name_server_groups_account_id", "name_server_groups", "\"account_id\""},
    {"idx_posture_checks_account_id", "posture_checks", "\"account_id\""},
    {"idx_networks_account_id", "networks", "\"account_id\""},
    {"idx_network_routers_account_id", "network_routers", "\"account_id\""},
    {"idx_network_routers_network_id", "network_routers", "\"network_id\""},
    {"idx_network_resources_account_id", "network_resources", "\"account_id\""},
    {"idx_network_resources_network_id", "network_resources", "\"network_id\""},
  };
  return defs;
}
// clang-format on

std::string sql_type(ct t, engine kind) {
  const bool pg = kind == engine::postgres;
  switch (t) {
  case ct::text:
    return "text";
  case ct::boolean:
    return pg ? "boolean" : "numeric";
  case ct::integer:
    return pg ? "bigint" : "integer";
  case ct::datetime:
    return pg ? "timestamptz" : "datetime";
  }
  return "text";
}

std::string quote(const std::string& ident) {
  return "\"" + ident + "\"";
}

std::string column_sql(const column_def& c, engine kind) {
  std::string s = quote(c.name) + " " + sql_type(c.type, kind);
  if (c.not_null)
    s += " NOT NULL";
  if (c.default_sql)
    s += std::string(" DEFAULT ") + c.default_sql;
  return s;
}

bool has_table(soci::session& sql, engine kind, const std::string& table) {
  int n = 0;
  if (kind == engine::sqlite)
    sql << "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = :t",
        soci::use(table), soci::into(n);
  else
    sql << "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() "
           "AND table_name = :t",
        soci::use(table), soci::into(n);
  return n > 0;
}

void create_table(soci::session& sql, engine kind, const table_def& t) {
  std::string s = "CREATE TABLE IF NOT EXISTS " + quote(t.name) + " (";
  for (const auto& c : t.columns)
    s += column_sql(c, kind) + ", ";
  s += "PRIMARY KEY (";
  for (std::size_t i = 0; i < t.primary_key.size(); ++i)
    s += (i ? ", " : "") + quote(t.primary_key[i]);
  s += "))";
  sql << s;
}

// peer_status_required_approval (a misspelling older stores carry) ->
// peer_status_requires_approval.
void migrate_requires_approval(soci::session& sql, engine kind) {
  auto cols = existing_columns(sql, kind, "peers");
  auto has = [&](const char* c) { return std::find(cols.begin(), cols.end(), c) != cols.end(); };
  if (!has("peer_status_required_approval"))
    return;
  if (!has("peer_status_requires_approval")) {
    spdlog::info("store migration: renaming peers.peer_status_required_approval to "
                 "peer_status_requires_approval");
    sql << "ALTER TABLE peers RENAME COLUMN peer_status_required_approval TO "
           "peer_status_requires_approval";
  } else {
    spdlog::info("store migration: folding peers.peer_status_required_approval into "
                 "peer_status_requires_approval");
    sql << "UPDATE peers SET peer_status_requires_approval = peer_status_required_approval "
           "WHERE peer_status_requires_approval IS NULL";
    sql << "ALTER TABLE peers DROP COLUMN peer_status_required_approval";
  }
}

void add_missing_columns(soci::session& sql, engine kind, const table_def& t) {
  auto cols = existing_columns(sql, kind, t.name);
  std::set<std::string> have(cols.begin(), cols.end());
  for (const auto& c : t.columns) {
    if (have.count(c.name))
      continue;
    spdlog::info("store migration: adding column {}.{}", t.name, c.name);
    sql << "ALTER TABLE " + quote(t.name) + " ADD COLUMN " +
               (kind == engine::postgres ? "IF NOT EXISTS " : "") + column_sql(c, kind);
  }
}

// NetBird's MigrateNewField: rows an older store left NULL get the new field's default.
void backfill_new_fields(soci::session& sql, engine kind) {
  // peer_status_session_started_at: bigint NOT NULL DEFAULT 0, NULLs of older rows become 0.
  sql << "UPDATE peers SET peer_status_session_started_at = 0 "
         "WHERE peer_status_session_started_at IS NULL";
  if (kind == engine::postgres) {
    sql << "ALTER TABLE peers ALTER COLUMN peer_status_session_started_at SET DEFAULT 0";
    sql << "ALTER TABLE peers ALTER COLUMN peer_status_session_started_at SET NOT NULL";
  }
  sql << "UPDATE users SET name = '' WHERE name IS NULL";
  sql << "UPDATE users SET email = '' WHERE email IS NULL";
  const std::string yes = kind == engine::postgres ? "true" : "1";
  sql << "UPDATE network_resources SET enabled = " + yes + " WHERE enabled IS NULL";
  sql << "UPDATE network_routers SET enabled = " + yes + " WHERE enabled IS NULL";
}

// Plain setup keys (a '-' as 9th character: the UUID form of old stores) are replaced by
// base64(SHA-256(key as stored)), and key_secret shows the first five characters and four '*'.
std::size_t hash_plain_setup_keys(soci::session& sql) {
  std::vector<std::pair<std::string, std::string>> plain;
  soci::rowset<soci::row> rs =
      (sql.prepare
       << "SELECT id, \"key\" FROM setup_keys WHERE (key_secret IS NULL OR key_secret = '') "
          "AND SUBSTR(\"key\", 9, 1) = '-'");
  for (const auto& r : rs)
    plain.emplace_back(r.get<std::string>(0), r.get<std::string>(1));
  for (auto& [id, key] : plain) {
    std::string secret = key.substr(0, 5) + "****";
    std::string hashed = crypto::sha256_base64(key);
    sql << "UPDATE setup_keys SET key_secret = :s, \"key\" = :k WHERE id = :id",
        soci::use(secret, "s"), soci::use(hashed, "k"), soci::use(id, "id");
  }
  if (!plain.empty())
    spdlog::info("store migration: hashed {} plain setup key(s)", plain.size());
  return plain.size();
}

// Indexes NetBird drops: the non-unique key index (replaced by idx_peers_key_unique) and the
// redundant id indexes of the networks tables.
void drop_legacy_indexes(soci::session& sql) {
  for (const char* ix :
       {"idx_peers_key", "idx_networks_id", "idx_network_resources_id", "idx_network_routers_id"})
    sql << std::string("DROP INDEX IF EXISTS ") + ix;
}

// NetBird's RemoveDuplicatePeerKeys: of peers sharing a WireGuard key, the one seen last stays
// (never-seen ones count as oldest on both engines), the others go, with their group memberships.
void remove_duplicate_peer_keys(soci::session& sql, engine kind) {
  std::vector<std::string> keys;
  soci::rowset<std::string> rs =
      (sql.prepare << "SELECT \"key\" FROM peers WHERE \"key\" IS NOT NULL GROUP BY \"key\" "
                      "HAVING COUNT(*) > 1");
  for (const auto& k : rs)
    keys.push_back(k);
  if (keys.empty())
    return;
  spdlog::warn("store migration: {} WireGuard key(s) shared by several peers; keeping the peer "
               "seen last of each",
               keys.size());
  const std::string seen =
      kind == engine::sqlite ? "julianday(peer_status_last_seen)" : "peer_status_last_seen";
  for (const auto& key : keys) {
    std::vector<std::string> ids;
    std::string k = key;
    soci::rowset<std::string> peers =
        (sql.prepare << "SELECT id FROM peers WHERE \"key\" = :k ORDER BY " + seen +
                            " DESC NULLS LAST, id",
         soci::use(k, "k"));
    for (const auto& id : peers)
      ids.push_back(id);
    for (std::size_t i = 1; i < ids.size(); ++i) {
      spdlog::warn("store migration: deleting peer {} (duplicate of {})", ids[i], ids[0]);
      sql << "DELETE FROM group_peers WHERE peer_id = :id", soci::use(ids[i], "id");
      sql << "DELETE FROM peers WHERE id = :id", soci::use(ids[i], "id");
    }
  }
}

// NetBird's BackfillPublicIDs: every row of these tables carries an xid-shaped public_id.
void backfill_public_ids(soci::session& sql) {
  for (const char* table : {"policies", "groups", "routes", "network_resources", "network_routers",
                            "name_server_groups", "networks", "posture_checks"}) {
    std::vector<std::string> ids;
    soci::rowset<std::string> rs =
        (sql.prepare << "SELECT id FROM " + quote(table) +
                            " WHERE public_id IS NULL OR public_id = ''");
    for (const auto& id : rs)
      ids.push_back(id);
    for (const auto& id : ids) {
      std::string pub = crypto::random_id();
      sql << "UPDATE " + quote(table) + " SET public_id = :p WHERE id = :id", soci::use(pub, "p"),
          soci::use(id, "id");
    }
    if (!ids.empty())
      spdlog::info("store migration: gave {} row(s) of {} a public_id", ids.size(), table);
  }
}

// Legacy groups.peers JSON lists -> group_peers rows; then the column goes, as NetBird drops it.
void migrate_group_peers(soci::session& sql, engine kind) {
  auto cols = existing_columns(sql, kind, "groups");
  if (std::find(cols.begin(), cols.end(), "peers") == cols.end())
    return;
  struct row_t {
    std::string id, account, peers;
  };
  std::vector<row_t> rows;
  soci::rowset<soci::row> rs =
      (sql.prepare << "SELECT id, account_id, peers FROM \"groups\" WHERE peers IS NOT NULL");
  for (const auto& r : rs)
    rows.push_back({r.get<std::string>(0), r.get<std::string>(1, ""), r.get<std::string>(2, "")});
  std::size_t moved = 0;
  for (const auto& g : rows) {
    if (g.peers.empty())
      continue;
    auto arr = nlohmann::json::parse(g.peers, nullptr, false);
    if (!arr.is_array())
      throw store_error("groups.peers of group " + g.id + " is not a JSON array: " + g.peers);
    for (const auto& p : arr) {
      if (!p.is_string())
        continue;
      std::string peer = p.get<std::string>();
      sql << "INSERT INTO group_peers (account_id, group_id, peer_id) VALUES (:a, :g, :p) "
             "ON CONFLICT DO NOTHING",
          soci::use(g.account, "a"), soci::use(g.id, "g"), soci::use(peer, "p");
      ++moved;
    }
  }
  spdlog::info("store migration: moved {} group membership(s) from groups.peers to group_peers",
               moved);
  sql << "ALTER TABLE \"groups\" DROP COLUMN peers";
}

// Inside the migration transaction. A unique index that an old store's duplicates violate must not
// stop the server (NetBird would refuse to start): a savepoint keeps the transaction usable and a
// warning names the index.
void create_indexes(soci::session& sql) {
  for (const auto& ix : indexes()) {
    const std::string stmt = std::string("CREATE ") + (ix.unique ? "UNIQUE " : "") +
                             "INDEX IF NOT EXISTS " + ix.name + " ON " + quote(ix.table) + " (" +
                             ix.columns + ")";
    if (!ix.unique) {
      sql << stmt;
      continue;
    }
    sql << "SAVEPOINT nbm_unique_index";
    try {
      sql << stmt;
      sql << "RELEASE SAVEPOINT nbm_unique_index";
    } catch (const soci::soci_error& e) {
      sql << "ROLLBACK TO SAVEPOINT nbm_unique_index";
      sql << "RELEASE SAVEPOINT nbm_unique_index";
      spdlog::warn("store migration: cannot create unique index {} (duplicate rows?): {}", ix.name,
                   e.what());
    }
  }
}

void run_step(const char* what, const std::function<void()>& step) {
  try {
    step();
  } catch (const store_error&) {
    throw;
  } catch (const std::exception& e) {
    throw store_error(std::string("store schema: ") + what + ": " + e.what());
  }
}

} // namespace

std::vector<std::string> core_tables() {
  std::vector<std::string> out;
  for (const auto& t : tables())
    out.emplace_back(t.name);
  return out;
}

std::vector<std::string> schema_columns(const std::string& table) {
  std::vector<std::string> out;
  for (const auto& t : tables())
    if (table == t.name)
      for (const auto& c : t.columns)
        out.emplace_back(c.name);
  return out;
}

std::optional<column_type> schema_column_type(const std::string& table, const std::string& column) {
  for (const auto& t : tables())
    if (table == t.name)
      for (const auto& c : t.columns)
        if (column == c.name)
          return c.type;
  return std::nullopt;
}

std::vector<std::string> existing_columns(soci::session& sql, engine kind,
                                          const std::string& table) {
  std::vector<std::string> cols;
  if (kind == engine::sqlite) {
    soci::rowset<soci::row> rs = (sql.prepare << "PRAGMA table_info(" + quote(table) + ")");
    for (const auto& r : rs)
      cols.push_back(r.get<std::string>(1));
  } else {
    soci::rowset<std::string> rs =
        (sql.prepare << "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                        "current_schema() AND table_name = :t ORDER BY ordinal_position",
         soci::use(table));
    for (const auto& c : rs)
      cols.push_back(c);
  }
  return cols;
}

void ensure_schema(soci::session& sql, engine kind) {
  // One transaction (DDL is transactional on both engines): a failed step leaves the store as it
  // was.
  std::optional<soci::transaction> tr;
  run_step("starting the migration transaction", [&] { tr.emplace(sql); });
  if (kind == engine::postgres) // replicas starting together migrate one after another
    run_step("taking the migration lock", [&] { sql << "SELECT pg_advisory_xact_lock(7336151)"; });
  if (has_table(sql, kind, "peers"))
    run_step("peer_status_requires_approval", [&] { migrate_requires_approval(sql, kind); });
  for (const auto& t : tables()) {
    run_step(t.name, [&] {
      if (has_table(sql, kind, t.name))
        add_missing_columns(sql, kind, t);
      else
        create_table(sql, kind, t);
    });
  }
  run_step("defaults of new columns", [&] { backfill_new_fields(sql, kind); });
  run_step("hashing plain setup keys", [&] {
    // As NetBird: once plain keys were hashed, the peers' legacy plain setup_key column goes too.
    if (hash_plain_setup_keys(sql) > 0) {
      auto cols = existing_columns(sql, kind, "peers");
      if (std::find(cols.begin(), cols.end(), "setup_key") != cols.end())
        sql << "ALTER TABLE peers DROP COLUMN setup_key";
    }
  });
  run_step("dropping legacy indexes", [&] { drop_legacy_indexes(sql); });
  run_step("duplicate peer keys", [&] { remove_duplicate_peer_keys(sql, kind); });
  run_step("public ids", [&] { backfill_public_ids(sql); });
  run_step("groups.peers to group_peers", [&] { migrate_group_peers(sql, kind); });
  run_step("indexes", [&] { create_indexes(sql); });
  if (kind == engine::postgres) // ours, next to NetBird's: replica liveness
    run_step("replica tables", [&] { ensure_replica_tables(sql); });
  run_step("committing", [&] { tr->commit(); });
  forget_catalog();
}

void ensure_schema(database& db) {
  soci::session sql(db.pool());
  ensure_schema(sql, db.kind());
}

} // namespace nbm::storage
