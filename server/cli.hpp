// The command line, as NetBird's cobra commands define it (management/cmd/root.go, management.go):
// `netbird-mgmt management [flags]`, the global --config, --log-file, --log-level, and
// `netbird-mgmt --version`; plus this project's `admin` commands. Parsing never exits: it returns
// what to do or what to print.
#pragma once

#include "config/config.hpp"

#include <optional>
#include <string>
#include <vector>

namespace nbm::server {

// `netbird-mgmt management`: the flags as given (with NetBird's defaults).
struct management_options {
  std::string config_path = "/etc/netbird/management.json"; // --config
  std::string log_file = "/var/log/netbird/management.log"; // --log-file ("console" = stdout)
  std::string log_level = "info";                           // --log-level (logrus names)
  std::string datadir = "/var/lib/netbird/";                // --datadir
  // --port. This project documents 33073; NetBird's Go server now defaults to 80, or 443 with TLS
  // when the flag is not given (port_set tells whether it was).
  int port = 33073;
  std::string cert_file, cert_key,
      letsencrypt_domain;  // --cert-file, --cert-key, --letsencrypt-domain
  int metrics_port = 9090; // --metrics-port
  int api_port = 0; // --api-port: the REST API on a port of its own (0: on --port, as NetBird)
  bool disable_legacy_port = false;                              // --disable-legacy-port
  std::string single_account_mode_domain = "netbird.selfhosted"; // --single-account-mode-domain
  bool disable_single_account_mode = false;                      // --disable-single-account-mode
  std::string dns_domain = "netbird.selfhosted"; // --dns-domain (validated as NetBird does)
  bool disable_anonymous_metrics = false;        // --disable-anonymous-metrics
  bool idp_sign_key_refresh_enabled = false;     // --idp-sign-key-refresh-enabled
  bool user_delete_from_idp = false;             // --user-delete-from-idp
  bool disable_geolite_update = true;            // --disable-geolite-update
  // --inspector-addr (netbird-mgmt): where the inspector console listens; unset: see
  // resolve_inspector_address.
  std::optional<std::string> inspector_addr;

  std::string program = "netbird-mgmt"; // argv[0], for the commands the server suggests

  // Whether the flag was on the command line (cobra's Flag.Changed).
  bool port_set = false;
  bool datadir_set = false;
  bool idp_sign_key_refresh_enabled_set = false;
};

// `netbird-mgmt admin ...`: bootstrap and administer the configured store without an IdP.
struct admin_command {
  // account-{create,list,settings}, user-list, token-create, peer-list,
  // setup-key-{create,list,revoke}, and {group,policy,route,nameserver}-{create,list,delete}
  std::string action;
  std::string config_path = "/etc/netbird/management.json";
  // The store as the server finds it (server::apply_flags): --datadir when given, else the
  // config's Datadir when it names one, else this default.
  std::string datadir = "/var/lib/netbird/";
  bool datadir_set = false;
  std::string log_level = "warn";
  // account create
  std::string domain, owner_email, owner_name;
  bool no_default_policy = false;
  bool allow_duplicate_domain = false;
  // token create: the user (id, email or name), the token's name and validity in days (1-365)
  std::string user, token_name = "admin";
  long long expires_in_days = 365;
  // account settings: each empty = unchanged. Durations are Go durations, flags "true" or
  // "false".
  std::string peer_login_expiration, peer_login_expiration_enabled, peer_inactivity_expiration,
      peer_inactivity_expiration_enabled;
  // --account (the old spelling --account-id is a hidden alias): an account id or domain
  std::string account_id;
  // setup-key
  std::string name, key_id;
  bool reusable = false, ephemeral = false, allow_extra_dns_labels = false;
  std::string expires_in = "720h"; // NetBird's default 30 days; 0 = never
  long long usage_limit = 0;
  std::vector<std::string> auto_groups;
  // group / policy / route / nameserver (--account fills account_id, --name name); groups and
  // peers by id or name, resolved and validated by run_admin against the account.
  std::string object_id; // --group-id, --policy-id, --route-id, --nameserver-group-id
  std::string description;
  bool disabled = false;
  std::vector<std::string> peers;                 // group create --peers
  std::vector<std::string> sources, destinations; // policy create
  std::string protocol = "all", rule_action = "accept";
  std::vector<std::string> ports, port_ranges; // "80"; "1000-2000"
  bool bidirectional = false;
  std::string network, net_id, peer; // route create
  std::vector<std::string> peer_groups, groups, access_control_groups;
  long long metric = 9999;
  bool masquerade = false;
  std::vector<std::string> nameservers, domains; // nameserver create: "IP[:port]", match domains
  bool primary = false, search_domains = false;
};

// Either options to run with, an admin command, or text to print and an exit code (help,
// version, errors). Errors: exit_code 1 (as NetBird's main), the message and the usage in `err`.
struct parse_result {
  std::optional<management_options> options;
  std::optional<admin_command> admin;
  int exit_code = 0;
  std::string out; // for stdout
  std::string err; // for stderr
};

// The datadir the flags and the config file name together (see apply_overrides).
std::string effective_datadir(const std::string& flag, bool flag_given,
                              const std::string& from_config);

// argv[0] is the program name. `netbird-mgmt` alone prints the help and exits 0, as cobra does for
// a root command without a Run of its own; `netbird-mgmt help [command]` too.
parse_result parse_cli(int argc, const char* const* argv);

// Where the inspector console (`netbird-mgmt inspect`) listens, first of: the flag
// --inspector-addr, the environment variable NBM_INSPECTOR_ADDR, the config's InspectorAddress,
// the default 127.0.0.1:33079. "off" or "" (also "0", "false", "disabled") turns it off.
struct inspector_address_choice {
  std::string address; // "host:port" (port 0: any); "" when turned off
  std::string source;  // "--inspector-addr", "NBM_INSPECTOR_ADDR", "InspectorAddress" or "default"
  bool configured() const { return source != "default"; }
};
inline constexpr const char* default_inspector_address = "127.0.0.1:33079";
inspector_address_choice resolve_inspector_address(const std::optional<std::string>& flag,
                                                   const std::optional<std::string>& env,
                                                   const std::optional<std::string>& config);

// The log levels NetBird (logrus) accepts, case-insensitively.
bool valid_log_level(const std::string& level);

// shared/management/domain.IsValidDomainNoWildcard, which NetBird applies to --dns-domain.
bool valid_dns_domain(const std::string& domain);

// What NetBird does with the flags once management.json is loaded (LoadMgmtConfig,
// ApplyCommandLineOverrides, ApplyEmbeddedIdPConfig, then the management command itself):
// - --letsencrypt-domain, when not empty, sets HttpConfig.LetsEncryptDomain;
// - --datadir, when given and not empty, sets Datadir; not given, the file's Datadir is kept when
//   it names one, else the flag's default applies. (NetBird's own default always wins over the
//   file's Datadir; netbird-mgmt honours the file so that the server and `admin --config F` agree
//   on the store. `--datadir ""` keeps the file's Datadir, as in NetBird.)
// - --cert-file and --cert-key, when both are given, set HttpConfig.CertFile/CertKey;
// - EmbeddedIdP.Enabled: HttpConfig from the issuer, LocalAddress localhost:<port>, storage
//   defaults, and user deletion from the IdP forced on (refused with
//   --disable-single-account-mode: config_error);
// - --idp-sign-key-refresh-enabled, when given (even =false), sets
//   HttpConfig.IdpSignKeyRefreshEnabled (after the embedded IdP, as in NetBird);
// - --disable-single-account-mode empties single_account_mode_domain.
// HttpConfig is created when a flag needs it (NetBird would dereference nil).
void apply_overrides(management_options& opts, config::management_config& cfg);

} // namespace nbm::server
