// NetBird's management.json as typed structs, read with yaml-cpp (so YAML works too). Keys match
// case-insensitively as Go's JSON decoder matches them; unknown keys are warnings; a wrong type or
// a malformed file is a config_error naming the file, the field and the line.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace nbm::config {

struct config_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using duration = std::chrono::nanoseconds;

struct host {
  std::string proto; // udp, dtls, tcp, http, https
  std::string uri;
  std::string username;
  std::string password;
};

struct turn_config {
  bool time_based_credentials = false;
  duration credentials_ttl{0};
  std::string secret;
  std::vector<host> turns;
};

struct relay_config {
  std::vector<std::string> addresses;
  duration credentials_ttl{0};
  std::string secret;
};

struct http_config {
  std::string lets_encrypt_domain, cert_file, cert_key, auth_client_id, auth_audience,
      cli_auth_audience, auth_issuer, auth_user_id_claim, auth_keys_location, oidc_config_endpoint,
      extra_auth_audience, auth_callback_url;
  bool idp_sign_key_refresh_enabled = false;
};

struct idp_client_config {
  std::string issuer, token_endpoint, client_id, client_secret, grant_type;
};
struct auth0_client_config {
  std::string audience, auth_issuer, client_id, client_secret, grant_type;
};
struct azure_client_config {
  std::string client_id, client_secret, object_id, graph_api_endpoint, token_endpoint, grant_type;
};
struct keycloak_client_config {
  std::string client_id, client_secret, admin_endpoint, token_endpoint, grant_type;
};
struct zitadel_client_config {
  std::string client_id, client_secret, grant_type, token_endpoint, management_endpoint, pat;
};

struct idp_manager_config {
  std::string manager_type;
  std::optional<idp_client_config> client_config;
  std::map<std::string, std::string> extra_config;
  std::optional<auth0_client_config> auth0;
  std::optional<azure_client_config> azure;
  std::optional<keycloak_client_config> keycloak;
  std::optional<zitadel_client_config> zitadel;
};

struct provider_config {
  std::string client_id, client_secret, domain, audience, token_endpoint, device_auth_endpoint,
      authorization_endpoint, scope;
  bool use_id_token = false;
  std::vector<std::string> redirect_urls;
  bool disable_prompt_login = false;
  int login_flag = 0;
};

struct device_authorization_flow {
  std::string provider;
  provider_config config;
};

struct pkce_authorization_flow {
  provider_config config;
};

struct store_config {
  std::string engine; // "", sqlite, postgres, mysql
};

struct reverse_proxy_config {
  std::vector<std::string> trusted_http_proxies;
  unsigned trusted_http_proxies_count = 0;
  std::vector<std::string> trusted_peers;
  int access_log_retention_days = 0;
  int access_log_cleanup_interval_hours = 0;
};

struct embedded_idp_config {
  bool enabled = false;
  std::string issuer, local_address;
  std::string storage_type, storage_file, storage_dsn;
  std::vector<std::string> dashboard_redirect_uris, cli_redirect_uris,
      dashboard_post_logout_redirect_uris, grant_types;
  std::string owner_email, owner_hash, owner_username;
  bool sign_key_refresh_enabled = false, local_auth_disabled = false,
       mfa_session_remember_me = false;
  std::string mfa_session_max_lifetime, mfa_session_idle_timeout, session_cookie_encryption_key;
  std::string static_connectors_json; // Dex connectors, kept as given
};

struct management_config {
  std::vector<host> stuns;
  std::optional<turn_config> turn;
  std::optional<relay_config> relay;
  std::optional<host> signal;
  std::string datadir;
  std::string data_store_encryption_key;
  std::optional<http_config> http;
  std::optional<idp_manager_config> idp_manager;
  std::optional<device_authorization_flow> device_auth_flow;
  std::optional<pkce_authorization_flow> pkce_auth_flow;
  store_config store;
  reverse_proxy_config reverse_proxy;
  std::string agent_network_pricing_defaults_file;
  bool disable_default_policy = false;
  std::optional<embedded_idp_config> embedded_idp;
  std::optional<int> highest_supported_sync_message_version;
  std::map<std::string, int> per_account_highest_supported_sync_message_version;

  // Unknown keys met while reading, as "path (line N)".
  std::vector<std::string> warnings;
};

// Looks up an environment variable; injectable for tests.
using env_getter = std::function<std::optional<std::string>(const std::string&)>;
env_getter process_env();

// Reads `path`: {{ .VAR }} placeholders are replaced from `env` first (NetBird runs its config file
// through a Go template with the environment), then the text is parsed; NetBird's defaults are
// applied.
management_config load_file(const std::string& path, const env_getter& env = process_env());
management_config load_text(const std::string& text, const std::string& origin,
                            const env_getter& env = process_env());

// Go duration syntax ("1h30m", "500ms", "2h") -> nanoseconds; throws std::invalid_argument.
duration parse_go_duration(const std::string& text);

// The store NetBird would open for this config: engine from StoreConfig.Engine, else
// NETBIRD_STORE_ENGINE (an unknown value means sqlite), else sqlite. SQLite lives at
// <datadir>/store.db unless NB_STORE_ENGINE_SQLITE_FILE says otherwise (relative to datadir);
// PostgreSQL's DSN comes from NB_STORE_ENGINE_POSTGRES_DSN or NETBIRD_STORE_ENGINE_POSTGRES_DSN.
struct store_choice {
  std::string engine; // "sqlite" or "postgres"
  std::string target; // file path or DSN
};
store_choice resolve_store(const management_config& cfg, const env_getter& env = process_env());

} // namespace nbm::config
