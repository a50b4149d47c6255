#include "server/admin.hpp"

#include "server/run.hpp"
#include "storage/admin_store.hpp"
#include "storage/schema.hpp"

#include <soci/soci.h>

#include <filesystem>
#include <iostream>

namespace nbm::server {

int run_admin(const admin_command& cmd, config::management_config cfg) {
  management_options as_server;
  as_server.datadir = cmd.datadir;
  apply_flags(as_server, cfg);
  std::filesystem::create_directories(cfg.datadir);
  const auto db = store_options(cfg);
  soci::session sql;
  storage::open_session(sql, db);
  storage::ensure_schema(sql, db.kind);
  storage::admin_store admin(sql, db.kind);

  if (cmd.action == "account-create") {
    auto made = admin.create_account(
        {cmd.domain, cmd.owner_email, cmd.owner_name, !cmd.no_default_policy, true});
    std::cout << "account_id: " << made.account_id << "\nowner_user_id: " << made.owner_user_id
              << "\nall_group_id: " << made.all_group_id << "\nnetwork: " << made.network
              << "\npersonal_access_token: " << made.pat << "\n";
    return 0;
  }
  if (cmd.action == "setup-key-create") {
    storage::new_setup_key spec;
    spec.account_id = cmd.account_id;
    spec.name = cmd.name;
    spec.reusable = cmd.reusable;
    try {
      spec.expires_in_seconds = std::chrono::duration_cast<std::chrono::seconds>(
                                    config::parse_go_duration(cmd.expires_in))
                                    .count();
    } catch (const std::exception&) {
      std::cerr << "Error: --expires-in: not a duration: " << cmd.expires_in << "\n";
      return 1;
    }
    if (spec.expires_in_seconds < 0) {
      std::cerr << "Error: --expires-in must not be negative\n";
      return 1;
    }
    spec.usage_limit = cmd.usage_limit;
    spec.auto_groups = cmd.auto_groups;
    spec.ephemeral = cmd.ephemeral;
    spec.allow_extra_dns_labels = cmd.allow_extra_dns_labels;
    auto [key, plain] = admin.create_setup_key(spec);
    std::cout << "id: " << key.id << "\nsetup_key: " << plain << "\ntype: " << key.type
              << "\nexpires_at: " << key.expires_at.value_or("") << "\n";
    return 0;
  }
  if (cmd.action == "setup-key-list") {
    for (const auto& k : admin.list_setup_keys(cmd.account_id))
      std::cout << k.id << " name=" << k.name << " type=" << k.type << " key=" << k.key_secret
                << " revoked=" << (k.revoked ? "true" : "false") << " used=" << k.used_times
                << " limit=" << k.usage_limit << " ephemeral=" << (k.ephemeral ? "true" : "false")
                << " expires_at=" << k.expires_at.value_or("") << "\n";
    return 0;
  }
  if (cmd.action == "setup-key-revoke") {
    if (!admin.revoke_setup_key(cmd.account_id, cmd.key_id)) {
      std::cerr << "Error: no setup key " << cmd.key_id << " in account " << cmd.account_id << "\n";
      return 1;
    }
    std::cout << "revoked: " << cmd.key_id << "\n";
    return 0;
  }
  std::cerr << "Error: unknown admin action " << cmd.action << "\n";
  return 2;
}

} // namespace nbm::server
