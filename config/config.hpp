// NetBird's management.json as typed structs (management/internals/server/config/config.go and the
// types it references), read with yaml-cpp, so the same settings may also be written as YAML.
//
// Reading follows Go's encoding/json as NetBird uses it:
// - keys match field names case-insensitively ("DataDir" sets Datadir); a repeated key: last wins;
// - null leaves a string/bool/number as it is and empties a list, a map or an object;
// - a value of the wrong JSON type (a number for a string, a string for a bool, "7" for an int, a
//   fraction for an int, a list for an object, ...) is an error, as are out-of-range numbers and
//   malformed durations and IP prefixes;
// - durations (util.Duration) are a Go duration string ("1h30m") or a number of nanoseconds;
// - unknown keys are ignored by Go; here they are collected as warnings (path and line).
// Before parsing, the text is run through NetBird's environment substitution ({{ .VAR }}).
// Errors are config_error, whose message names the file, the field path and the line.
#pragma once

#include <chrono>
#include <cstdint>
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

// Host (STUN, TURN, Signal).
struct host {
  std::string proto; // Proto: udp, dtls, tcp, http, https (not validated, as in NetBird)
  std::string uri;   // URI, e.g. stun:stun.netbird.io:3478 or signal.netbird.io:10000
  std::string username;
  std::string password;

  bool operator==(const host&) const = default;
};

// TURNConfig.
struct turn_config {
  bool time_based_credentials = false;
  duration credentials_ttl{0}; // <= 0 becomes 12h (NetBird's token manager default)
  std::string secret;
  std::vector<host> turns;

  bool operator==(const turn_config&) const = default;
};

// Relay.
struct relay_config {
  std::vector<std::string> addresses;
  duration credentials_ttl{0}; // <= 0 becomes 12h
  std::string secret;

  bool operator==(const relay_config&) const = default;
};

// HttpConfig (HttpServerConfig).
struct http_config {
  std::string lets_encrypt_domain;           // LetsEncryptDomain
  std::string cert_file;                     // CertFile
  std::string cert_key;                      // CertKey
  std::string auth_client_id;                // AuthClientID
  std::string auth_audience;                 // AuthAudience
  std::string cli_auth_audience;             // CLIAuthAudience
  std::string auth_issuer;                   // AuthIssuer
  std::string auth_user_id_claim;            // AuthUserIDClaim
  std::string auth_keys_location;            // AuthKeysLocation
  std::string oidc_config_endpoint;          // OIDCConfigEndpoint
  bool idp_sign_key_refresh_enabled = false; // IdpSignKeyRefreshEnabled
  std::string extra_auth_audience;           // ExtraAuthAudience
  std::string auth_callback_url;             // AuthCallbackURL

  bool operator==(const http_config&) const = default;
};

// IdpManagerConfig.ClientConfig.
struct idp_client_config {
  std::string issuer, token_endpoint, client_id, client_secret, grant_type;

  bool operator==(const idp_client_config&) const = default;
};
// IdpManagerConfig.Auth0ClientCredentials.
struct auth0_client_config {
  std::string audience, auth_issuer, client_id, client_secret, grant_type;

  bool operator==(const auth0_client_config&) const = default;
};
// IdpManagerConfig.AzureClientCredentials.
struct azure_client_config {
  std::string client_id, client_secret, object_id, graph_api_endpoint, token_endpoint, grant_type;

  bool operator==(const azure_client_config&) const = default;
};
// IdpManagerConfig.KeycloakClientCredentials.
struct keycloak_client_config {
  std::string client_id, client_secret, admin_endpoint, token_endpoint, grant_type;

  bool operator==(const keycloak_client_config&) const = default;
};
// IdpManagerConfig.ZitadelClientCredentials.
struct zitadel_client_config {
  std::string client_id, client_secret, grant_type, token_endpoint, management_endpoint, pat;

  bool operator==(const zitadel_client_config&) const = default;
};

// IdpManagerConfig (idp.Config).
struct idp_manager_config {
  std::string manager_type;                        // ManagerType (none, auth0, azure, ...)
  std::optional<idp_client_config> client_config;  // ClientConfig
  std::map<std::string, std::string> extra_config; // ExtraConfig
  std::optional<auth0_client_config> auth0;        // Auth0ClientCredentials
  std::optional<azure_client_config> azure;        // AzureClientCredentials
  std::optional<keycloak_client_config> keycloak;  // KeycloakClientCredentials
  std::optional<zitadel_client_config> zitadel;    // ZitadelClientCredentials

  bool operator==(const idp_manager_config&) const = default;
};

// ProviderConfig of the device and PKCE flows.
struct provider_config {
  std::string client_id;                  // ClientID
  std::string client_secret;              // ClientSecret
  std::string domain;                     // Domain (deprecated in NetBird)
  std::string audience;                   // Audience
  std::string token_endpoint;             // TokenEndpoint
  std::string device_auth_endpoint;       // DeviceAuthEndpoint
  std::string authorization_endpoint;     // AuthorizationEndpoint
  std::string scope;                      // Scope
  bool use_id_token = false;              // UseIDToken
  std::vector<std::string> redirect_urls; // RedirectURLs
  bool disable_prompt_login = false;      // DisablePromptLogin
  int login_flag = 0; // LoginFlag (Go uint8: 0 prompt=login, 1 max_age=0, 2 none)

  bool operator==(const provider_config&) const = default;
};

// DeviceAuthorizationFlow.
struct device_authorization_flow {
  std::string provider;   // Provider: "hosted" or "none"
  provider_config config; // ProviderConfig

  bool operator==(const device_authorization_flow&) const = default;
};

// PKCEAuthorizationFlow.
struct pkce_authorization_flow {
  provider_config config; // ProviderConfig

  bool operator==(const pkce_authorization_flow&) const = default;
};

// StoreConfig.
struct store_config {
  std::string engine; // Engine: "" (environment, then sqlite), sqlite, postgres, mysql, jsonfile

  bool operator==(const store_config&) const = default;
};

// ReverseProxy.
struct reverse_proxy_config {
  std::vector<std::string> trusted_http_proxies; // TrustedHTTPProxies (IP prefixes, validated)
  std::uint64_t trusted_http_proxies_count = 0;  // TrustedHTTPProxiesCount
  std::vector<std::string> trusted_peers; // TrustedPeers (empty: NetBird uses 0.0.0.0/0, ::/0)
  int access_log_retention_days = 0;      // AccessLogRetentionDays: 0 -> 7; negative: keep forever
  int access_log_cleanup_interval_hours = 0; // AccessLogCleanupIntervalHours: <= 0 -> 24

  bool operator==(const reverse_proxy_config&) const = default;
};

// AgentNetwork.
struct agent_network_config {
  std::string pricing_defaults_file; // PricingDefaultsFile

  bool operator==(const agent_network_config&) const = default;
};

// EmbeddedIdP.Storage.
struct embedded_storage_config {
  std::string type; // Type: sqlite3 (default when the IdP is enabled) or postgres
  std::string file; // Config.File (default <Datadir>/idp.db when the IdP is enabled)
  std::string dsn;  // Config.DSN

  bool operator==(const embedded_storage_config&) const = default;
};

// EmbeddedIdP.Owner.
struct embedded_owner_config {
  std::string email, hash, username;

  bool operator==(const embedded_owner_config&) const = default;
};

// EmbeddedIdP.StaticConnectors[] (dex.Connector).
struct dex_connector {
  std::string type, name, id;
  std::string config_json = "null"; // Config: an arbitrary JSON object, kept as JSON text

  bool operator==(const dex_connector&) const = default;
};

// EmbeddedIdP (idp.EmbeddedIdPConfig).
struct embedded_idp_config {
  bool enabled = false;
  std::string issuer;
  std::string local_address;
  embedded_storage_config storage;
  std::vector<std::string> dashboard_redirect_uris; // DashboardRedirectURIs
  std::vector<std::string> cli_redirect_uris;       // CLIRedirectURIs
  std::optional<embedded_owner_config> owner;
  bool sign_key_refresh_enabled = false;
  bool local_auth_disabled = false;
  std::string mfa_session_max_lifetime; // MfaSessionMaxLifetime (Go duration text, "" = 24h)
  std::string mfa_session_idle_timeout; // MfaSessionIdleTimeout ("" = 1h)
  bool mfa_session_remember_me = false;
  std::string session_cookie_encryption_key;
  std::vector<std::string> dashboard_post_logout_redirect_uris;
  std::vector<dex_connector> static_connectors;
  std::vector<std::string> grant_types;

  bool operator==(const embedded_idp_config&) const = default;
};

// Config: the whole management.json.
struct management_config {
  std::vector<host> stuns;                                   // Stuns
  std::optional<turn_config> turn;                           // TURNConfig
  std::optional<relay_config> relay;                         // Relay
  std::optional<host> signal;                                // Signal
  std::string datadir;                                       // Datadir
  std::string data_store_encryption_key;                     // DataStoreEncryptionKey
  std::optional<http_config> http;                           // HttpConfig
  std::optional<idp_manager_config> idp_manager;             // IdpManagerConfig
  std::optional<device_authorization_flow> device_auth_flow; // DeviceAuthorizationFlow
  std::optional<pkce_authorization_flow> pkce_auth_flow;     // PKCEAuthorizationFlow
  store_config store;                                        // StoreConfig
  reverse_proxy_config reverse_proxy;                        // ReverseProxy
  agent_network_config agent_network;                        // AgentNetwork
  bool disable_default_policy = false;                       // DisableDefaultPolicy
  std::optional<embedded_idp_config> embedded_idp;           // EmbeddedIdP
  // HighestSupportedSyncMessageVersion: unset = 0 (legacy maps); validated to 0..1.
  std::optional<int> highest_supported_sync_message_version;
  // PerAccountHighestSupportedSyncMessageVersion: account id -> version (0..1).
  std::map<std::string, int> per_account_highest_supported_sync_message_version;
  // InspectorAddress: netbird-mgmt's own key (NetBird ignores it, as any unknown key): where the
  // inspector console listens, "host:port" (port 0: any), "off" or "" turns it off. Unset: the
  // environment (NBM_INSPECTOR_ADDR) or the default decides (server/cli.hpp,
  // resolve_inspector_address).
  std::optional<std::string> inspector_address;

  // Not part of the file: what the reader noticed but NetBird ignores (unknown keys, unset
  // environment variables), each with its line, e.g. "unknown field HttpConfig.Address (line 37)".
  std::vector<std::string> warnings;

  bool operator==(const management_config&) const = default;
};

// Looks up an environment variable (nullopt = unset, which differs from set-but-empty).
// Injectable so tests never depend on the machine's environment.
using env_getter = std::function<std::optional<std::string>(const std::string&)>;
env_getter process_env();

// Reads the file at `path`: environment substitution, parsing, NetBird's load-time checks
// (sync message versions) and defaults (TURN/Relay CredentialsTTL <= 0 -> 12h, access-log
// retention 0 -> 7 days and cleanup interval <= 0 -> 24 h). Throws config_error.
management_config load_file(const std::string& path, const env_getter& env = process_env());
// The same for text already in memory; `origin` names it in messages.
management_config load_text(const std::string& text, const std::string& origin,
                            const env_getter& env = process_env());

// NetBird's util.ReadJsonWithEnvSub runs the file through Go's text/template with the environment
// as data. Supported here: {{ .NAME }} / {{.NAME}} (with optional {{- and -}} trim markers) and
// {{/* comments */}}. As in Go, an unset variable becomes the text "<no value>" (a warning is
// added to `warnings`). Any other template action is a config_error (Go would evaluate it).
std::string substitute_env(const std::string& text, const env_getter& env,
                           std::vector<std::string>* warnings = nullptr,
                           const std::string& origin = "config");

// Go's time.ParseDuration ("1h30m", "500ms", "1.5h", "-2s", "0"); throws std::invalid_argument.
duration parse_go_duration(const std::string& text);
// Go's time.Duration.String() ("1h30m0s", "500ms", "0s").
std::string format_go_duration(duration d);

// Go's netip.ParsePrefix: "10.0.0.0/8", "::/0" (host bits may be set; no zones, no leading zeros).
bool valid_ip_prefix(const std::string& text);

// Config.GetAuthAudiences: HttpConfig.AuthAudience, ExtraAuthAudience and the device flow's
// Audience when set.
std::vector<std::string> auth_audiences(const management_config& cfg);

// What NetBird reads from HttpConfig.OIDCConfigEndpoint
// (<issuer>/.well-known/openid-configuration).
struct oidc_configuration {
  std::string issuer, token_endpoint, device_auth_endpoint, jwks_uri, authorization_endpoint;
};
// NetBird's ApplyOIDCConfig once the document is fetched (fetching is the caller's, over HTTP):
// overrides AuthIssuer, AuthKeysLocation, the device flow's endpoints, Domain (the endpoint's
// host) and empty Scope ("openid"), and the PKCE flow's endpoints. No-op when the embedded IdP is
// enabled or OIDCConfigEndpoint is empty.
void apply_oidc_configuration(management_config& cfg, const oidc_configuration& oidc);

// NetBird's ApplyEmbeddedIdPConfig: when EmbeddedIdP.Enabled, sets LocalAddress to
// localhost:<port>, storage defaults (sqlite3, <Datadir>/idp.db) and overwrites HttpConfig from
// the issuer. Returns true when it applied (the caller then forces user deletion from the IdP,
// as NetBird does). Throws config_error when `disable_single_account_mode` (NetBird refuses).
bool apply_embedded_idp(management_config& cfg, int port, bool disable_single_account_mode);

// Which store NetBird opens for `cfg` (store.NewStore / getStoreEngine / NewSqliteStore):
// - engine: StoreConfig.Engine as written (case-sensitive, as in NetBird); if empty, env
//   NETBIRD_STORE_ENGINE lower-cased, where any value other than sqlite/postgres/mysql means
//   sqlite; if unset, sqlite;
// - sqlite: <Datadir>/store.db, or NB_STORE_ENGINE_SQLITE_FILE (relative -> under Datadir); a
//   "?query" suffix is split off into sqlite_query;
// - postgres: DSN from NB_STORE_ENGINE_POSTGRES_DSN if set, else NETBIRD_STORE_ENGINE_POSTGRES_DSN.
// Errors (config_error): mysql (not supported by netbird-mgmt), jsonfile, any other engine
// written in the config, postgres without a DSN (or an empty one), and a legacy store.json that
// NetBird would have migrated (engine defaulted, store.json present, store.db absent).
enum class store_engine { sqlite, postgres };
struct store_choice {
  store_engine kind = store_engine::sqlite;
  std::string engine;       // "sqlite" or "postgres"
  std::string target;       // sqlite: the database file; postgres: the DSN
  std::string sqlite_query; // sqlite: the "?..." part of NB_STORE_ENGINE_SQLITE_FILE, without '?'
};
store_choice resolve_store(const management_config& cfg, const env_getter& env = process_env());

} // namespace nbm::config
