// The command line, as NetBird's cobra commands define it: `netbird-mgmt management [flags]` plus
// the global --config, --log-file, --log-level, and `netbird-mgmt --version`.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace nbm::server {

struct management_options {
  std::string config_path = "/etc/netbird/management.json";
  std::string log_file = "/var/log/netbird/management.log";
  std::string log_level = "info";
  std::string datadir = "/var/lib/netbird/";
  int port = 33073;
  std::string cert_file, cert_key, letsencrypt_domain;
  int metrics_port = 9090;
  bool disable_legacy_port = false;
  std::string single_account_mode_domain = "netbird.selfhosted";
  bool disable_single_account_mode = false;
  std::string dns_domain = "netbird.selfhosted";
  bool disable_anonymous_metrics = false;
  bool idp_sign_key_refresh_enabled = false;
  bool user_delete_from_idp = false;
  bool disable_geolite_update = true;
};

// `netbird-mgmt admin ...`: bootstrap and administer the configured store without an IdP.
struct admin_command {
  std::string action; // account-create, setup-key-create, setup-key-list, setup-key-revoke
  std::string config_path = "/etc/netbird/management.json";
  std::string datadir = "/var/lib/netbird/";
  std::string log_level = "warn";
  // account create
  std::string domain, owner_email, owner_name;
  bool no_default_policy = false;
  // setup-key
  std::string account_id, name, key_id;
  bool reusable = false, ephemeral = false, allow_extra_dns_labels = false;
  std::string expires_in = "720h"; // NetBird's default 30 days; 0 = never
  long long usage_limit = 0;
  std::vector<std::string> auto_groups;
};

// Either options to run with, an admin command, or text to print and an exit code (help, version,
// errors).
struct parse_result {
  std::optional<management_options> options;
  std::optional<admin_command> admin;
  int exit_code = 0;
  std::string out; // for stdout
  std::string err; // for stderr
};

parse_result parse_cli(int argc, const char* const* argv);

// The log levels NetBird (logrus) accepts.
bool valid_log_level(const std::string& level);

} // namespace nbm::server
