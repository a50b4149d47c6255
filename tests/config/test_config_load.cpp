// management.json (and YAML) reading as NetBird's Go decoder reads it.
#include "config/config.hpp"
#include "tests/config/config_env.hpp"
#include "tests/support/test_db.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include <sys/wait.h>
#include <unistd.h>

using namespace nbm;
using namespace std::chrono_literals;
using test::env_of;
using test::error_of;
using test::no_env;

namespace {

config::management_config load(const std::string& text) {
  return config::load_text(text, "test.json", no_env());
}

std::string load_error(const std::string& text) {
  return error_of([&] { config::load_text(text, "/etc/netbird/management.json", no_env()); });
}

std::string write_temp(const std::string& name, const std::string& text) {
  const auto path = (std::filesystem::path(test::temp_dir()) / name).string();
  std::ofstream(path) << text;
  return path;
}

// tests/fixtures/management.json, as YAML.
const char* fixture_as_yaml = R"(# the same settings as management.json
Stuns:
  - Proto: udp
    URI: "stun:stun.fixture.test:3478"
    Username: ""
    Password: null
TURNConfig:
  Turns:
    - Proto: udp
      URI: "turn:turn.fixture.test:3478"
      Username: fixture_turn_user
      Password: fixture_turn_password
  CredentialsTTL: 1h
  Secret: Zml4dHVyZS10dXJuLXNlY3JldA==
  TimeBasedCredentials: true
Relay:
  Addresses: ["rels://relay.fixture.test:443"]
  CredentialsTTL: 2h
  Secret: fixture-relay-secret
Signal:
  Proto: http
  URI: signal.fixture.test:10000
  Username: ""
  Password:
DataDir: ""
HttpConfig:
  LetsEncryptDomain: ""
  Address: "0.0.0.0:33073"
  AuthIssuer: "https://idp.fixture.test/"
  AuthAudience: fixture-dashboard
  AuthKeysLocation: "http://127.0.0.1:9/fixture-jwks.json"
IdpManagerConfig:
  ManagerType: none
  Auth0ClientCredentials:
    Audience: fixture-audience
    AuthIssuer: "https://auth0.fixture.test"
    ClientID: fixture-client-id
    ClientSecret: fixture-client-secret
    GrantType: client_credentials
)";

} // namespace

TEST_CASE("config: the fixture management.json (NetBird's layout) loads with its values") {
  const auto c = config::load_file(test::fixture("management.json"), no_env());
  REQUIRE(c.stuns.size() == 1);
  CHECK(c.stuns[0].proto == "udp");
  CHECK(c.stuns[0].uri == "stun:stun.fixture.test:3478");
  CHECK(c.stuns[0].username.empty());
  CHECK(c.stuns[0].password.empty()); // null
  REQUIRE(c.turn.has_value());
  CHECK(c.turn->time_based_credentials);
  CHECK(c.turn->credentials_ttl == 1h);
  CHECK(c.turn->secret == "Zml4dHVyZS10dXJuLXNlY3JldA==");
  REQUIRE(c.turn->turns.size() == 1);
  CHECK(c.turn->turns[0].uri == "turn:turn.fixture.test:3478");
  CHECK(c.turn->turns[0].username == "fixture_turn_user");
  CHECK(c.turn->turns[0].password == "fixture_turn_password");
  REQUIRE(c.relay.has_value());
  CHECK(c.relay->addresses == std::vector<std::string>{"rels://relay.fixture.test:443"});
  CHECK(c.relay->credentials_ttl == 2h);
  CHECK(c.relay->secret == "fixture-relay-secret");
  REQUIRE(c.signal.has_value());
  CHECK(c.signal->proto == "http");
  CHECK(c.signal->uri == "signal.fixture.test:10000");
  CHECK(c.datadir.empty()); // "DataDir": "" matched case-insensitively
  REQUIRE(c.http.has_value());
  CHECK(c.http->lets_encrypt_domain.empty());
  CHECK(c.http->auth_issuer == "https://idp.fixture.test/");
  CHECK(c.http->auth_audience == "fixture-dashboard");
  CHECK(c.http->auth_keys_location == "http://127.0.0.1:9/fixture-jwks.json");
  REQUIRE(c.idp_manager.has_value());
  CHECK(c.idp_manager->manager_type == "none");
  CHECK_FALSE(c.idp_manager->client_config.has_value());
  REQUIRE(c.idp_manager->auth0.has_value());
  CHECK(c.idp_manager->auth0->client_id == "fixture-client-id");
  CHECK(c.idp_manager->auth0->auth_issuer == "https://auth0.fixture.test");
  CHECK(c.idp_manager->auth0->grant_type == "client_credentials");
  CHECK_FALSE(c.idp_manager->azure.has_value());
  // Absent sections stay absent.
  CHECK_FALSE(c.device_auth_flow.has_value());
  CHECK_FALSE(c.pkce_auth_flow.has_value());
  CHECK_FALSE(c.embedded_idp.has_value());
  CHECK_FALSE(c.highest_supported_sync_message_version.has_value());
  CHECK(c.store.engine.empty());
  CHECK_FALSE(c.disable_default_policy);
  // Defaults NetBird applies where the values are used.
  CHECK(c.reverse_proxy.access_log_retention_days == 7);
  CHECK(c.reverse_proxy.access_log_cleanup_interval_hours == 24);
  // HttpConfig.Address is not a NetBird field: a warning with its line, not an error.
  REQUIRE(c.warnings.size() == 1);
  CHECK(c.warnings[0] == "unknown field HttpConfig.Address (line 37)");
}

TEST_CASE("config: the fixture written as YAML loads equal, from text and from a .yaml file") {
  auto json = config::load_file(test::fixture("management.json"), no_env());
  auto yaml = config::load_text(fixture_as_yaml, "management.yaml", no_env());
  REQUIRE(yaml.warnings.size() == 1);
  CHECK(yaml.warnings[0] == "unknown field HttpConfig.Address (line 28)");
  json.warnings.clear();
  yaml.warnings.clear();
  CHECK(json == yaml);

  auto from_file = config::load_file(write_temp("management.yaml", fixture_as_yaml), no_env());
  from_file.warnings.clear();
  CHECK(from_file == yaml);
  // And a change is seen.
  yaml.relay->secret = "other";
  CHECK_FALSE(json == yaml);
}

TEST_CASE("config: every section and field of config.go is read") {
  const auto c = load(R"({
    "Stuns": [{"Proto": "udp", "URI": "stun:a:3478"}, {"Proto": "tcp", "URI": "stun:b:3478"}],
    "TURNConfig": {"TimeBasedCredentials": false, "CredentialsTTL": "30m", "Secret": "s",
                   "Turns": []},
    "Relay": {"Addresses": ["rels://r1:443", "rel://r2:80"], "CredentialsTTL": "24h",
              "Secret": "rs"},
    "Signal": {"Proto": "https", "URI": "signal.example.com:443", "Username": "u",
               "Password": "p"},
    "Datadir": "/srv/netbird",
    "DataStoreEncryptionKey": "X4kQ0yVh1H8m1pmRq3nH8V1dBu9Z9vF2Xr6x3fXc2Ws=",
    "HttpConfig": {"LetsEncryptDomain": "le.example.com", "CertFile": "/c.pem",
                   "CertKey": "/k.pem", "AuthClientID": "cid", "AuthAudience": "aud",
                   "CLIAuthAudience": "cli-aud", "AuthIssuer": "https://issuer",
                   "AuthUserIDClaim": "sub", "AuthKeysLocation": "https://issuer/keys",
                   "OIDCConfigEndpoint": "https://issuer/.well-known/openid-configuration",
                   "IdpSignKeyRefreshEnabled": true, "ExtraAuthAudience": "extra",
                   "AuthCallbackURL": "https://cb"},
    "IdpManagerConfig": {
      "ManagerType": "zitadel",
      "ClientConfig": {"Issuer": "https://z", "TokenEndpoint": "https://z/token",
                       "ClientID": "zc", "ClientSecret": "zs", "GrantType": "client_credentials"},
      "ExtraConfig": {"ManagementEndpoint": "https://z/management/v1", "PAT": "pat"},
      "AzureClientCredentials": {"ClientID": "a", "ClientSecret": "b", "ObjectID": "o",
                                 "GraphAPIEndpoint": "g", "TokenEndpoint": "t",
                                 "GrantType": "gt"},
      "KeycloakClientCredentials": {"ClientID": "k", "ClientSecret": "ks",
                                    "AdminEndpoint": "ka", "TokenEndpoint": "kt",
                                    "GrantType": "kg"},
      "ZitadelClientCredentials": {"ClientID": "zz", "ClientSecret": "zzs", "GrantType": "zg",
                                   "TokenEndpoint": "zt", "ManagementEndpoint": "zm",
                                   "PAT": "zp"}},
    "DeviceAuthorizationFlow": {"Provider": "hosted", "ProviderConfig": {
      "ClientID": "dc", "ClientSecret": "ds", "Domain": "d.example", "Audience": "da",
      "TokenEndpoint": "dt", "DeviceAuthEndpoint": "dd", "AuthorizationEndpoint": "dz",
      "Scope": "openid profile", "UseIDToken": true, "RedirectURLs": ["http://localhost:53000"],
      "DisablePromptLogin": true, "LoginFlag": 1}},
    "PKCEAuthorizationFlow": {"ProviderConfig": {"ClientID": "pc", "Audience": "pa",
      "RedirectURLs": ["http://localhost:53000", "http://localhost:54000"], "LoginFlag": 2}},
    "StoreConfig": {"Engine": "postgres"},
    "ReverseProxy": {"TrustedHTTPProxies": ["10.0.0.0/8", "2001:db8::/32"],
                     "TrustedHTTPProxiesCount": 2, "TrustedPeers": ["192.168.1.1/32"],
                     "AccessLogRetentionDays": -1, "AccessLogCleanupIntervalHours": 6},
    "AgentNetwork": {"PricingDefaultsFile": "pricing.yaml"},
    "DisableDefaultPolicy": true,
    "EmbeddedIdP": {"Enabled": true, "Issuer": "https://nb.example.com/oauth2",
      "LocalAddress": "x", "Storage": {"Type": "postgres", "Config": {"File": "f", "DSN": "dsn"}},
      "DashboardRedirectURIs": ["https://nb/nb-auth"], "CLIRedirectURIs": ["http://localhost:53000/"],
      "Owner": {"Email": "admin@example.com", "Hash": "$2a$10$abc", "Username": "admin"},
      "SignKeyRefreshEnabled": true, "LocalAuthDisabled": true, "MfaSessionMaxLifetime": "12h",
      "MfaSessionIdleTimeout": "30m", "MfaSessionRememberMe": true,
      "SessionCookieEncryptionKey": "k", "DashboardPostLogoutRedirectURIs": ["https://nb/"],
      "StaticConnectors": [{"type": "oidc", "name": "Google", "id": "google",
        "config": {"issuer": "https://accounts.google.com", "scopes": ["openid", "email"],
                   "insecureSkipEmailVerified": true, "n": 5, "none": null, "q": "a\"b"}}],
      "GrantTypes": ["authorization_code", "refresh_token"]},
    "HighestSupportedSyncMessageVersion": 1,
    "PerAccountHighestSupportedSyncMessageVersion": {"acc-1": 0, "acc-2": 1}
  })");
  CHECK(c.warnings.empty());
  REQUIRE(c.stuns.size() == 2);
  CHECK(c.stuns[1].proto == "tcp");
  CHECK(c.turn->credentials_ttl == 30min);
  CHECK_FALSE(c.turn->time_based_credentials);
  CHECK(c.turn->turns.empty());
  CHECK(c.relay->addresses.size() == 2);
  CHECK(c.relay->credentials_ttl == 24h);
  CHECK(c.signal->password == "p");
  CHECK(c.datadir == "/srv/netbird");
  CHECK(c.data_store_encryption_key == "X4kQ0yVh1H8m1pmRq3nH8V1dBu9Z9vF2Xr6x3fXc2Ws=");
  const auto& h = *c.http;
  CHECK(h.lets_encrypt_domain == "le.example.com");
  CHECK(h.cert_file == "/c.pem");
  CHECK(h.cert_key == "/k.pem");
  CHECK(h.auth_client_id == "cid");
  CHECK(h.cli_auth_audience == "cli-aud");
  CHECK(h.auth_user_id_claim == "sub");
  CHECK(h.oidc_config_endpoint == "https://issuer/.well-known/openid-configuration");
  CHECK(h.idp_sign_key_refresh_enabled);
  CHECK(h.extra_auth_audience == "extra");
  CHECK(h.auth_callback_url == "https://cb");
  const auto& idp = *c.idp_manager;
  CHECK(idp.manager_type == "zitadel");
  CHECK(idp.client_config->token_endpoint == "https://z/token");
  CHECK(idp.extra_config.at("PAT") == "pat");
  CHECK(idp.azure->graph_api_endpoint == "g");
  CHECK(idp.azure->object_id == "o");
  CHECK(idp.keycloak->admin_endpoint == "ka");
  CHECK(idp.zitadel->management_endpoint == "zm");
  CHECK(idp.zitadel->pat == "zp");
  CHECK_FALSE(idp.auth0.has_value());
  const auto& d = c.device_auth_flow->config;
  CHECK(c.device_auth_flow->provider == "hosted");
  CHECK(d.client_secret == "ds");
  CHECK(d.domain == "d.example");
  CHECK(d.device_auth_endpoint == "dd");
  CHECK(d.authorization_endpoint == "dz");
  CHECK(d.scope == "openid profile");
  CHECK(d.use_id_token);
  CHECK(d.disable_prompt_login);
  CHECK(d.login_flag == 1);
  CHECK(c.pkce_auth_flow->config.redirect_urls.size() == 2);
  CHECK(c.pkce_auth_flow->config.login_flag == 2);
  CHECK(c.pkce_auth_flow->config.scope.empty()); // no default outside the OIDC discovery
  CHECK(c.store.engine == "postgres");
  CHECK(c.reverse_proxy.trusted_http_proxies ==
        std::vector<std::string>{"10.0.0.0/8", "2001:db8::/32"});
  CHECK(c.reverse_proxy.trusted_http_proxies_count == 2);
  CHECK(c.reverse_proxy.trusted_peers == std::vector<std::string>{"192.168.1.1/32"});
  CHECK(c.reverse_proxy.access_log_retention_days == -1); // negative: kept (no cleanup)
  CHECK(c.reverse_proxy.access_log_cleanup_interval_hours == 6);
  CHECK(c.agent_network.pricing_defaults_file == "pricing.yaml");
  CHECK(c.disable_default_policy);
  const auto& e = *c.embedded_idp;
  CHECK(e.enabled);
  CHECK(e.issuer == "https://nb.example.com/oauth2");
  CHECK(e.storage.type == "postgres");
  CHECK(e.storage.file == "f");
  CHECK(e.storage.dsn == "dsn");
  CHECK(e.dashboard_redirect_uris.size() == 1);
  CHECK(e.cli_redirect_uris.size() == 1);
  REQUIRE(e.owner.has_value());
  CHECK(e.owner->email == "admin@example.com");
  CHECK(e.owner->hash == "$2a$10$abc");
  CHECK(e.sign_key_refresh_enabled);
  CHECK(e.local_auth_disabled);
  CHECK(e.mfa_session_max_lifetime == "12h");
  CHECK(e.mfa_session_idle_timeout == "30m");
  CHECK(e.mfa_session_remember_me);
  CHECK(e.session_cookie_encryption_key == "k");
  CHECK(e.dashboard_post_logout_redirect_uris.size() == 1);
  REQUIRE(e.static_connectors.size() == 1);
  CHECK(e.static_connectors[0].type == "oidc");
  CHECK(e.static_connectors[0].name == "Google");
  CHECK(e.static_connectors[0].id == "google");
  CHECK(e.static_connectors[0].config_json ==
        R"({"issuer":"https://accounts.google.com","scopes":["openid","email"],)"
        R"("insecureSkipEmailVerified":true,"n":5,"none":null,"q":"a\"b"})");
  CHECK(e.grant_types.size() == 2);
  CHECK(c.highest_supported_sync_message_version == 1);
  CHECK(c.per_account_highest_supported_sync_message_version.at("acc-2") == 1);
  CHECK(c.per_account_highest_supported_sync_message_version.size() == 2);
}

TEST_CASE("config: keys match case-insensitively, exact match first, last key wins") {
  auto c = load(R"({"turnconfig": {"credentialsttl": 90000000000, "TIMEBASEDCREDENTIALS": true},
                    "RELAY": {"CredentialsTTL": "1h30m"}, "datadir": "/srv/nb",
                    "storeconfig": {"engine": "sqlite"}, "httpconfig": {"authaudience": "a"}})");
  CHECK(c.turn->credentials_ttl == 90s);
  CHECK(c.turn->time_based_credentials);
  CHECK(c.relay->credentials_ttl == 90min);
  CHECK(c.datadir == "/srv/nb");
  CHECK(c.store.engine == "sqlite");
  CHECK(c.http->auth_audience == "a");
  CHECK(c.warnings.empty());
  // Go applies repeated keys in order: the last one wins.
  CHECK(load(R"({"Datadir": "/a", "DataDir": "/b"})").datadir == "/b");
  // An object given twice fills the same struct (Go decodes into the existing pointer).
  c = load(R"({"Signal": {"URI": "s:1"}, "signal": {"Proto": "udp"}})");
  CHECK(c.signal->uri == "s:1");
  CHECK(c.signal->proto == "udp");
  // Unknown keys at any depth are warnings with their path and line.
  c = load("{\n\"Bogus\": 1,\n\"Relay\": {\"Adresses\": []}\n}");
  REQUIRE(c.warnings.size() == 2);
  CHECK(c.warnings[0] == "unknown field Bogus (line 2)");
  CHECK(c.warnings[1] == "unknown field Relay.Adresses (line 3)");
}

TEST_CASE("config: null as Go's decoder treats it") {
  auto c = load(R"({"Relay": null, "Signal": null, "Stuns": null, "Datadir": null,
                    "DisableDefaultPolicy": null, "HighestSupportedSyncMessageVersion": null,
                    "StoreConfig": null, "IdpManagerConfig": {"ExtraConfig": {"A": null}}})");
  CHECK_FALSE(c.relay.has_value());
  CHECK_FALSE(c.signal.has_value());
  CHECK(c.stuns.empty());
  CHECK(c.datadir.empty());
  CHECK_FALSE(c.highest_supported_sync_message_version.has_value());
  CHECK(c.idp_manager->extra_config.at("A").empty());
  // A later null resets a pointer section and empties a list; a string keeps its value.
  c = load(R"({"Relay": {"Secret": "x"}, "Relay": null,
               "Stuns": [{"URI": "a"}], "Stuns": null, "Datadir": "/a", "Datadir": null})");
  CHECK_FALSE(c.relay.has_value());
  CHECK(c.stuns.empty());
  CHECK(c.datadir == "/a");
  // An empty top level (JSON null) is an empty config; an empty file is an error.
  CHECK(load("null").stuns.empty());
  CHECK(load_error("").find("empty") != std::string::npos);
  CHECK(load_error("  \n# only a comment\n").find("empty") != std::string::npos);
}

TEST_CASE("config: durations take Go strings or integers of nanoseconds") {
  CHECK(load(R"({"Relay": {"CredentialsTTL": 3600000000000}})").relay->credentials_ttl == 1h);
  CHECK(load(R"({"Relay": {"CredentialsTTL": 1.5e9}})").relay->credentials_ttl == 1500ms);
  CHECK(load(R"({"Relay": {"CredentialsTTL": "500ms"}})").relay->credentials_ttl == 500ms);
  CHECK(load(R"({"Relay": {"CredentialsTTL": "1h30m"}})").relay->credentials_ttl == 90min);
  CHECK(load("Relay:\n  CredentialsTTL: 45m\n").relay->credentials_ttl == 45min); // YAML plain
  // TTL <= 0 (absent, zero, negative) becomes 12h, as NetBird's token manager does.
  CHECK(load(R"({"TURNConfig": {}})").turn->credentials_ttl == 12h);
  CHECK(load(R"({"TURNConfig": {"CredentialsTTL": "0s"}})").turn->credentials_ttl == 12h);
  CHECK(load(R"({"Relay": {"CredentialsTTL": "-5m"}})").relay->credentials_ttl == 12h);
  CHECK(load(R"({"Relay": {"CredentialsTTL": 0}})").relay->credentials_ttl == 12h);
  // A quoted number has no unit (Go: time.ParseDuration fails); null and booleans are invalid.
  auto e = load_error(R"({"Relay": {"CredentialsTTL": "3600000000000"}})");
  CHECK(e.find("Relay.CredentialsTTL") != std::string::npos);
  CHECK(e.find("missing unit") != std::string::npos);
  CHECK(load_error(R"({"Relay": {"CredentialsTTL": null}})").find("invalid duration") !=
        std::string::npos);
  CHECK(load_error(R"({"Relay": {"CredentialsTTL": true}})").find("invalid duration") !=
        std::string::npos);
  CHECK(load_error(R"({"Relay": {"CredentialsTTL": [1]}})").find("Relay.CredentialsTTL") !=
        std::string::npos);
}

TEST_CASE("config: Go's time.ParseDuration and Duration.String") {
  using config::parse_go_duration;
  CHECK(parse_go_duration("0") == 0ns);
  CHECK(parse_go_duration("-0") == 0ns);
  CHECK(parse_go_duration("1h") == 1h);
  CHECK(parse_go_duration("30m") == 30min);
  CHECK(parse_go_duration("1h30m") == 90min);
  CHECK(parse_go_duration("500ms") == 500ms);
  CHECK(parse_go_duration("2h45m30.5s") == 2h + 45min + 30s + 500ms);
  CHECK(parse_go_duration("1.5h") == 90min);
  CHECK(parse_go_duration(".5s") == 500ms);
  CHECK(parse_go_duration("1.s") == 1s);
  CHECK(parse_go_duration("+3s") == 3s);
  CHECK(parse_go_duration("-1.5s") == -1500ms);
  CHECK(parse_go_duration("10us") == 10us);
  CHECK(parse_go_duration("10\xC2\xB5s") == 10us); // U+00B5
  CHECK(parse_go_duration("10\xCE\xBCs") == 10us); // U+03BC
  CHECK(parse_go_duration("7ns") == 7ns);
  CHECK(parse_go_duration("1h1h") == 2h);
  CHECK(parse_go_duration("9223372036854775807ns").count() == INT64_MAX);
  CHECK(parse_go_duration("-9223372036854775808ns").count() == INT64_MIN);
  CHECK(parse_go_duration("2562047h47m16.854775807s").count() == INT64_MAX);
  for (const char* bad : {"", "1", "h", "1x", "5 parsecs", "1h ", " 1h", ".", "-", "1..5s",
                          "9223372036854775808ns", "2562048h", "1e3s", "--1s"}) {
    INFO(bad);
    CHECK_THROWS_AS(parse_go_duration(bad), std::invalid_argument);
  }
  using config::format_go_duration;
  CHECK(format_go_duration(0ns) == "0s");
  CHECK(format_go_duration(1h) == "1h0m0s");
  CHECK(format_go_duration(12h) == "12h0m0s");
  CHECK(format_go_duration(90s) == "1m30s");
  CHECK(format_go_duration(1500ms) == "1.5s");
  CHECK(format_go_duration(500ms) == "500ms");
  CHECK(format_go_duration(1500ns) == "1.5\xC2\xB5s");
  CHECK(format_go_duration(7ns) == "7ns");
  CHECK(format_go_duration(-2s) == "-2s");
  CHECK(format_go_duration(2h + 45min + 30s + 500ms) == "2h45m30.5s");
}

TEST_CASE("config: {{ .VAR }} placeholders come from the environment before parsing") {
  auto env = env_of(
      {{"NB_SECRET", "s3cr3t"}, {"NB_HOST", "stun.example.org"}, {"NB_FLAG", "1"}, {"EMPTY", ""}});
  auto c = config::load_text(R"({"Relay": {"Secret": "{{ .NB_SECRET }}"},
      "Stuns": [{"URI": "stun:{{.NB_HOST}}:3478"}],
      "PKCEAuthorizationFlow": {"ProviderConfig": {"LoginFlag": {{ .NB_FLAG }},
                                                   "ClientID": "{{.EMPTY}}"}},
      "Datadir": "/data{{/* a comment */}}",
      "Signal": {"URI": "  {{- .NB_HOST -}}  "}})",
                             "env.json", env);
  CHECK(c.relay->secret == "s3cr3t");
  CHECK(c.stuns.at(0).uri == "stun:stun.example.org:3478");
  CHECK(c.pkce_auth_flow->config.login_flag == 1); // substituted before parsing: a number
  CHECK(c.pkce_auth_flow->config.client_id.empty());
  CHECK(c.datadir == "/data");
  CHECK(c.signal->uri == "stun.example.org"); // trim markers ate the spaces
  CHECK(c.warnings.empty());

  // An unset variable: Go's template prints "<no value>"; we do the same and warn.
  c = config::load_text("{\n\"DataStoreEncryptionKey\": \"{{ .UNSET_VAR }}\"\n}", "env.json", env);
  CHECK(c.data_store_encryption_key == "<no value>");
  REQUIRE(c.warnings.size() == 1);
  CHECK(c.warnings[0].find("UNSET_VAR") != std::string::npos);
  CHECK(c.warnings[0].find("line 2") != std::string::npos);

  // Other template actions and unclosed ones are errors with the line.
  auto e = error_of([&] { config::load_text("{\n\"A\": \"{{ if .X }}\"}", "t.json", env); });
  CHECK(e.find("t.json") != std::string::npos);
  CHECK(e.find("line 2") != std::string::npos);
  CHECK(e.find("{{ if .X }}") != std::string::npos);
  e = error_of([&] { config::load_text("{\"A\": \"{{ .X \"}", "t.json", env); });
  CHECK(e.find("unclosed") != std::string::npos);
  // The process environment is the default getter.
  CHECK(config::substitute_env("x", config::process_env()) == "x");
}

TEST_CASE("config: wrong types name the file, the field path and the line") {
  struct row {
    const char* text;
    const char* path;
    const char* line;
    const char* what;
  };
  const row rows[] = {
      {"{\n  \"TURNConfig\": {\n    \"CredentialsTTL\": \"forever\"\n  }\n}",
       "TURNConfig.CredentialsTTL", "line 3", "invalid duration"},
      {"{\n  \"HttpConfig\": \"https://x\"\n}", "HttpConfig", "line 2", "expected an object"},
      {"{\n\n \"DisableDefaultPolicy\": \"yes\"\n}", "DisableDefaultPolicy", "line 3",
       "expected true or false"},
      {"{\"ReverseProxy\": {\n\"AccessLogRetentionDays\": \"7\"}}",
       "ReverseProxy.AccessLogRetentionDays", "line 2", "expected a whole number"},
      {"{\"ReverseProxy\": {\"AccessLogRetentionDays\": 7.5}}",
       "ReverseProxy.AccessLogRetentionDays", "line 1", "expected a whole number"},
      {"{\"ReverseProxy\": {\"TrustedHTTPProxiesCount\": -1}}",
       "ReverseProxy.TrustedHTTPProxiesCount", "line 1", "out of range"},
      {"{\"ReverseProxy\": {\"AccessLogRetentionDays\": 99999999999}}",
       "ReverseProxy.AccessLogRetentionDays", "line 1", "out of range"},
      {"{\"Signal\": {\n\"URI\": 10000}}", "Signal.URI", "line 2", "expected a string"},
      {"{\"Stuns\": {\"URI\": \"x\"}}", "Stuns", "line 1", "expected a list"},
      {"{\"Stuns\": [\n{\"URI\": \"x\"},\n\"udp\"]}", "Stuns[1]", "line 3", "expected an object"},
      {"{\"Stuns\": [null]}", "Stuns[0]", "line 1", "null"},
      {"{\"Relay\": {\"Addresses\": [\"a\", 1]}}", "Relay.Addresses[1]", "line 1",
       "expected a string"},
      {"{\"IdpManagerConfig\": {\"ExtraConfig\": {\"ObjectId\": 5}}}",
       "IdpManagerConfig.ExtraConfig.ObjectId", "line 1", "expected a string"},
      {"{\"PKCEAuthorizationFlow\": {\"ProviderConfig\": {\"LoginFlag\": 256}}}",
       "PKCEAuthorizationFlow.ProviderConfig.LoginFlag", "line 1", "out of range for uint8"},
      {"{\"DeviceAuthorizationFlow\": {\"ProviderConfig\": {\"UseIDToken\": 1}}}",
       "DeviceAuthorizationFlow.ProviderConfig.UseIDToken", "line 1", "expected true or false"},
      {"{\"ReverseProxy\": {\"TrustedPeers\": [\"0.0.0.0/0\", \"10.0.0.0/33\"]}}",
       "ReverseProxy.TrustedPeers[1]", "line 1", "invalid IP prefix"},
      {"{\"ReverseProxy\": {\"TrustedHTTPProxies\": [\"10.0.0.1\"]}}",
       "ReverseProxy.TrustedHTTPProxies[0]", "line 1", "invalid IP prefix"},
      {"{\n\"HighestSupportedSyncMessageVersion\": 2}", "HighestSupportedSyncMessageVersion",
       "line 2", "between 0 and 1"},
      {"{\"PerAccountHighestSupportedSyncMessageVersion\": {\n\"acc-9\": -1}}",
       "PerAccountHighestSupportedSyncMessageVersion.acc-9", "line 2", "account acc-9"},
      {"{\"EmbeddedIdP\": {\"StaticConnectors\": [{\"config\": [1]}]}}",
       "EmbeddedIdP.StaticConnectors[0].config", "line 1", "expected an object"},
      {"{\"turnconfig\": {\"credentialsttl\": \"x\"}}", "TURNConfig.CredentialsTTL", "line 1",
       "invalid duration"},
      {"[1, 2]", "<top level>", "line 1", "expected an object at the top level"},
  };
  for (const auto& r : rows) {
    const auto e = load_error(r.text);
    INFO(r.text);
    INFO(e);
    CHECK(e.find("/etc/netbird/management.json") != std::string::npos);
    CHECK(e.find(r.path) != std::string::npos);
    CHECK(e.find(r.line) != std::string::npos);
    CHECK(e.find(r.what) != std::string::npos);
  }
}

TEST_CASE("config: malformed files and missing files are clear errors") {
  // JSON's words, with line and column of the token where JSON goes wrong (not YAML's).
  auto e = load_error("{\n  \"Stuns\": [\n    {\"URI\": \"x\"}\n  \"Relay\": {}\n}");
  CHECK(e.find("/etc/netbird/management.json") != std::string::npos);
  CHECK(e.find("invalid JSON at line 4, column 3") != std::string::npos); // the comma is missing
  CHECK(e.find("expected ']'") != std::string::npos);
  CHECK(e.find("YAML") == std::string::npos);
  CHECK(e.find("map") == std::string::npos);
  e = load_error("{\"A\": 1,\n \"B\": [1, 2}\n}");
  CHECK(e.find("invalid JSON at line 2, column 12") != std::string::npos);
  CHECK(e.find("unexpected '}'") != std::string::npos);
  // A string literal the error is in is not echoed (it may be a secret).
  e = load_error("{\"Relay\": {\"Secret\": \"s3cr3t-value\\q\"}}");
  CHECK(e.find("invalid JSON at line 1") != std::string::npos);
  CHECK(e.find("s3cr3t") == std::string::npos);
  // A tab in YAML's indentation: said so, with its place.
  e = load_error("Stuns:\n  - Proto: udp\nSignal:\n\tProto: http\n");
  CHECK(e.find("a tab at line 4, column 1") != std::string::npos);
  CHECK(e.find("spaces only") != std::string::npos);
  // Tabs in JSON are whitespace, as JSON has it; in a YAML value they are text.
  CHECK(load("{\n\t\"Datadir\": \"/a\"\n}").datadir == "/a");
  CHECK(load("Datadir: \"/a\tb\"\n").datadir == "/a\tb");
  // Trailing content after the object (Go: "invalid character after top-level value").
  e = load_error("{\"Datadir\": \"/a\"}\n{\"Datadir\": \"/b\"}");
  CHECK(e.find("line 2") != std::string::npos);
  CHECK(e.find("after the top-level object") != std::string::npos);

  e = error_of([] { config::load_file("/nonexistent/dir/management.json", no_env()); });
  CHECK(e.find("/nonexistent/dir/management.json") != std::string::npos);
  CHECK(e.find("No such file") != std::string::npos);
  e = error_of([] { config::load_file(test::temp_dir(), no_env()); });
  CHECK(e.find("is a directory") != std::string::npos);
  // An error inside a file names the file's path.
  const auto path = write_temp("bad.json", "{\n\"Relay\": {\"Secret\": true}\n}");
  e = error_of([&] { config::load_file(path, no_env()); });
  CHECK(e.find(path) != std::string::npos);
  CHECK(e.find("Relay.Secret (line 2)") != std::string::npos);
}

// Found by tests/fuzz/fuzz_config: yaml-cpp's LoadAll never returned on a stray comma after the
// object (a typo away from a valid management.json), allocating until the machine ran out of
// memory. Each load runs in a child process with a 10 s alarm, so a regression fails this test
// instead of hanging the suite.
TEST_CASE("config: a comma after the top-level object is an error, not an endless parse") {
  auto refused_in_time = [](const std::string& text) {
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      alarm(10);
      const auto e = error_of([&] { config::load_text(text, "management.json", no_env()); });
      std::_Exit(e.find("unexpected content after the top-level object") != std::string::npos ? 0
                                                                                              : 1);
    }
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    INFO("text: " << text);
    CHECK_FALSE(WIFSIGNALED(status)); // SIGALRM: still parsing after 10 s
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
  };
  CHECK(refused_in_time("{\"Datadir\": \"/a\"},"));
  CHECK(refused_in_time("{\"Datadir\": \"/a\"},\n"));
  CHECK(refused_in_time(","));
  CHECK(refused_in_time("[1],"));
  CHECK(refused_in_time("{\"Datadir\": \"/a\"}\n---\nDatadir: /b\n"));
  // What is around those still loads or is refused as before.
  CHECK(load("{\"Datadir\": \"/a\"}").datadir == "/a");
  CHECK(load("{\"Datadir\": \"/a\"}\n# a comment\n").datadir == "/a");
  CHECK(load_error("").find("the file is empty") != std::string::npos);
  CHECK(load_error("# only a comment\n").find("the file is empty") != std::string::npos);
  CHECK(load_error("[1]").find("an object at the top level") != std::string::npos);
}

TEST_CASE("config: IP prefixes as Go's netip.ParsePrefix accepts them") {
  for (const char* ok : {"0.0.0.0/0", "10.0.0.0/8", "10.1.2.3/8", "192.168.1.1/32", "::/0",
                         "2001:db8::/32", "::ffff:10.0.0.0/104", "fe80::1/128"})
    CHECK_MESSAGE(config::valid_ip_prefix(ok), std::string(ok));
  for (const char* bad :
       {"", "10.0.0.0", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/08", "10.0.0.0/+8",
        "010.0.0.0/8", "fe80::1%eth0/64", "example.com/8", "10.0.0/8"})
    CHECK_FALSE_MESSAGE(config::valid_ip_prefix(bad), std::string(bad));
}

TEST_CASE("config: helpers NetBird applies after loading") {
  SUBCASE("auth audiences") {
    auto c = load(R"({"HttpConfig": {"AuthAudience": "a", "ExtraAuthAudience": "b"},
                      "DeviceAuthorizationFlow": {"ProviderConfig": {"Audience": "c"}}})");
    CHECK(config::auth_audiences(c) == std::vector<std::string>{"a", "b", "c"});
    c = load(R"({"HttpConfig": {"AuthAudience": "a"}})");
    CHECK(config::auth_audiences(c) == std::vector<std::string>{"a"});
  }
  SUBCASE("OIDC discovery overrides the endpoints") {
    auto c = load(R"({"HttpConfig": {"AuthIssuer": "old",
                        "OIDCConfigEndpoint": "https://idp.example.com:8443/.well-known/openid-configuration"},
                      "DeviceAuthorizationFlow": {"Provider": "hosted", "ProviderConfig": {}},
                      "PKCEAuthorizationFlow": {"ProviderConfig": {"Scope": "x"}}})");
    config::oidc_configuration oidc{"https://idp.example.com", "https://idp/token",
                                    "https://idp/device", "https://idp/jwks", "https://idp/auth"};
    config::apply_oidc_configuration(c, oidc);
    CHECK(c.http->auth_issuer == "https://idp.example.com");
    CHECK(c.http->auth_keys_location == "https://idp/jwks");
    const auto& d = c.device_auth_flow->config;
    CHECK(d.token_endpoint == "https://idp/token");
    CHECK(d.device_auth_endpoint == "https://idp/device");
    CHECK(d.domain == "idp.example.com:8443");
    CHECK(d.scope == "openid");
    CHECK(c.pkce_auth_flow->config.token_endpoint == "https://idp/token");
    CHECK(c.pkce_auth_flow->config.authorization_endpoint == "https://idp/auth");
    CHECK(c.pkce_auth_flow->config.scope == "x");
    // Provider "none": the device flow is left alone.
    auto n = load(R"({"HttpConfig": {"OIDCConfigEndpoint": "https://i/x"},
                      "DeviceAuthorizationFlow": {"Provider": "NONE"}})");
    config::apply_oidc_configuration(n, oidc);
    CHECK(n.device_auth_flow->config.token_endpoint.empty());
    CHECK(n.http->auth_issuer == "https://idp.example.com");
  }
  SUBCASE("the embedded IdP rewrites HttpConfig") {
    auto c = load(R"({"Datadir": "/var/lib/netbird", "HttpConfig": {"AuthAudience": "x"},
                      "EmbeddedIdP": {"Enabled": true, "Issuer": "https://nb.example.com/oauth2"}})");
    CHECK(config::apply_embedded_idp(c, 443, false));
    const auto& h = *c.http;
    CHECK(h.auth_issuer == "https://nb.example.com/oauth2");
    CHECK(h.auth_audience == "netbird-dashboard");
    CHECK(h.auth_client_id == "netbird-dashboard");
    CHECK(h.cli_auth_audience == "netbird-cli");
    CHECK(h.auth_user_id_claim == "sub");
    CHECK(h.auth_keys_location == "https://nb.example.com/oauth2/keys");
    CHECK(h.oidc_config_endpoint ==
          "https://nb.example.com/oauth2/.well-known/openid-configuration");
    CHECK(h.idp_sign_key_refresh_enabled);
    CHECK(h.auth_callback_url == "https://nb.example.com/api/reverse-proxy/callback");
    CHECK(c.embedded_idp->local_address == "localhost:443");
    CHECK(c.embedded_idp->storage.type == "sqlite3");
    CHECK(c.embedded_idp->storage.file == "/var/lib/netbird/idp.db");
    CHECK(c.warnings.size() == 1); // HttpConfig was given and is ignored
    auto disabled = load(R"({"EmbeddedIdP": {"Enabled": false}})");
    CHECK_FALSE(config::apply_embedded_idp(disabled, 443, false));
    CHECK_FALSE(disabled.http.has_value());
    auto refused = load(R"({"EmbeddedIdP": {"Enabled": true, "Issuer": "https://x/oauth2"}})");
    CHECK(error_of([&] {
            config::apply_embedded_idp(refused, 443, true);
          }).find("single account mode") != std::string::npos);
  }
}

TEST_CASE("config: InspectorAddress, netbird-mgmt's own key: a string, unset differs from \"\"") {
  CHECK_FALSE(load("{}").inspector_address.has_value());
  CHECK(load(R"({"InspectorAddress": "127.0.0.1:4000"})").inspector_address == "127.0.0.1:4000");
  CHECK(load(R"({"inspectoraddress": "off"})").inspector_address == "off");
  CHECK(load(R"({"InspectorAddress": ""})").inspector_address == "");
  CHECK_FALSE(load(R"({"InspectorAddress": null})").inspector_address.has_value());
  CHECK(load(R"({"InspectorAddress": "x"})").warnings.empty()); // known: no warning
  CHECK(load_error(R"({"InspectorAddress": 33079})").find("InspectorAddress") != std::string::npos);
  auto yaml = config::load_text("InspectorAddress: \"127.0.0.1:5\"\n", "m.yaml", no_env());
  CHECK(yaml.inspector_address == "127.0.0.1:5");
}
