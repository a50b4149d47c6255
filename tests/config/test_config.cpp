// management.json (and YAML) reading, NetBird's store choice, and the command line.
#include "config/config.hpp"
#include "server/cli.hpp"
#include "tests/support/test_db.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <map>

using namespace nbm;
using namespace std::chrono_literals;

namespace {

config::env_getter env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& k) -> std::optional<std::string> {
    auto it = vars.find(k);
    if (it == vars.end())
      return std::nullopt;
    return it->second;
  };
}

const config::env_getter no_env = env_of({});

server::parse_result cli(std::vector<const char*> args) {
  args.insert(args.begin(), "netbird-mgmt");
  return server::parse_cli(static_cast<int>(args.size()), args.data());
}

} // namespace

TEST_CASE("config: NetBird's test management.json loads with its values") {
  auto c = config::load_file(test::fixture("management.json"), no_env);
  REQUIRE(c.stuns.size() == 1);
  CHECK(c.stuns[0].proto == "udp");
  CHECK(c.stuns[0].uri == "stun:stun.netbird.io:3468");
  CHECK(c.stuns[0].password.empty()); // null
  REQUIRE(c.turn.has_value());
  CHECK(c.turn->time_based_credentials);
  CHECK(c.turn->credentials_ttl == 1h);
  CHECK(c.turn->secret == "c29tZV9wYXNzd29yZA==");
  REQUIRE(c.turn->turns.size() == 1);
  CHECK(c.turn->turns[0].username == "some_user");
  REQUIRE(c.relay.has_value());
  CHECK(c.relay->addresses == std::vector<std::string>{"rel://test.com:3535"});
  CHECK(c.relay->credentials_ttl == 2h);
  CHECK(c.relay->secret == "netbird");
  REQUIRE(c.signal.has_value());
  CHECK(c.signal->proto == "http");
  CHECK(c.signal->uri == "signal.netbird.io:10000");
  CHECK(c.datadir.empty()); // "DataDir": "" matched case-insensitively
  REQUIRE(c.http.has_value());
  CHECK(c.http->auth_audience == "<PASTE YOUR AUTH0 AUDIENCE HERE>");
  CHECK(c.http->auth_keys_location == "<PASTE YOUR AUTH0 PUBLIC JWT KEYS LOCATION HERE>");
  REQUIRE(c.idp_manager.has_value());
  CHECK(c.idp_manager->manager_type == "<none|auth0>");
  REQUIRE(c.idp_manager->auth0.has_value());
  CHECK(c.idp_manager->auth0->grant_type == "client_credentials");
  // HttpConfig.Address is not a NetBird field: a warning with its line, not an error.
  REQUIRE(c.warnings.size() == 1);
  CHECK(c.warnings[0].find("HttpConfig.Address") != std::string::npos);
  CHECK(c.warnings[0].find("line 37") != std::string::npos);
  // Defaults NetBird applies.
  CHECK(c.reverse_proxy.access_log_retention_days == 7);
  CHECK_FALSE(c.device_auth_flow.has_value());
}

TEST_CASE("config: the same settings as YAML load equal") {
  const std::string yaml = R"(
Stuns:
  - Proto: udp
    URI: "stun:stun.netbird.io:3468"
TURNConfig:
  TimeBasedCredentials: true
  CredentialsTTL: 1h
  Turns: []
Relay:
  Addresses: ["rel://test.com:3535"]
  CredentialsTTL: 2h
StoreConfig:
  Engine: postgres
DeviceAuthorizationFlow:
  Provider: hosted
  ProviderConfig:
    ClientID: cli
    RedirectURLs: ["http://localhost:53000"]
    UseIDToken: true
PerAccountHighestSupportedSyncMessageVersion:
  acc1: 1
HighestSupportedSyncMessageVersion: 0
)";
  auto c = config::load_text(yaml, "inline.yaml", no_env);
  CHECK(c.stuns.at(0).uri == "stun:stun.netbird.io:3468");
  CHECK(c.turn->credentials_ttl == 1h);
  CHECK(c.relay->credentials_ttl == 2h);
  CHECK(c.store.engine == "postgres");
  REQUIRE(c.device_auth_flow.has_value());
  CHECK(c.device_auth_flow->config.client_id == "cli");
  CHECK(c.device_auth_flow->config.use_id_token);
  CHECK(c.device_auth_flow->config.scope == "openid"); // NetBird's default scope
  CHECK(c.device_auth_flow->config.redirect_urls.size() == 1);
  CHECK(c.per_account_highest_supported_sync_message_version.at("acc1") == 1);
  CHECK(c.highest_supported_sync_message_version == 0);
  CHECK(c.warnings.empty());
}

TEST_CASE("config: keys match case-insensitively, durations take Go strings or nanoseconds") {
  auto c = config::load_text(
      R"({"turnconfig": {"credentialsttl": 90000000000}, "RELAY": {"CredentialsTTL": "1h30m"},
                                 "datadir": "/srv/nb"})",
      "x.json", no_env);
  CHECK(c.turn->credentials_ttl == 90s);
  CHECK(c.relay->credentials_ttl == 90min);
  CHECK(c.datadir == "/srv/nb");
  // TTL <= 0 becomes 12h, as NetBird.
  auto d = config::load_text(R"({"TURNConfig": {"CredentialsTTL": "0s"}})", "y.json", no_env);
  CHECK(d.turn->credentials_ttl == 12h);
  CHECK(config::parse_go_duration("500ms") == 500ms);
  CHECK(config::parse_go_duration("2h45m30s") == 2h + 45min + 30s);
  CHECK(config::parse_go_duration("1.5h") == 90min);
  CHECK_THROWS(config::parse_go_duration("5 parsecs"));
  CHECK_THROWS(config::parse_go_duration("h"));
}

TEST_CASE("config: {{ .VAR }} placeholders come from the environment") {
  auto env = env_of({{"NB_SECRET", "s3cr3t"}, {"NB_HOST", "stun.example.org"}});
  auto c = config::load_text(R"({"Relay": {"Secret": "{{ .NB_SECRET }}"},
                                 "Stuns": [{"URI": "stun:{{.NB_HOST}}:3478"}],
                                 "DataStoreEncryptionKey": "{{ .UNSET_VAR }}"})",
                             "env.json", env);
  CHECK(c.relay->secret == "s3cr3t");
  CHECK(c.stuns.at(0).uri == "stun:stun.example.org:3478");
  CHECK(c.data_store_encryption_key.empty());
}

TEST_CASE("config: wrong types and malformed files name the file, the field and the line") {
  auto err = [](const std::string& text) {
    try {
      config::load_text(text, "/etc/netbird/management.json", no_env);
    } catch (const config::config_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  auto e1 = err("{\n  \"TURNConfig\": {\n    \"CredentialsTTL\": \"forever\"\n  }\n}");
  CHECK(e1.find("/etc/netbird/management.json") != std::string::npos);
  CHECK(e1.find("TURNConfig.CredentialsTTL") != std::string::npos);
  CHECK(e1.find("line 3") != std::string::npos);
  auto e2 = err("{\n \"Stuns\": {\"URI\": \"x\"}\n}");
  CHECK(e2.find("Stuns") != std::string::npos);
  CHECK(e2.find("expected a list") != std::string::npos);
  auto e3 = err("{\"Signal\": {\"URI\": 10000}}"); // a number where Go wants a string
  CHECK(e3.find("Signal.URI") != std::string::npos);
  auto e4 = err("{\"DisableDefaultPolicy\": \"yes\"}");
  CHECK(e4.find("DisableDefaultPolicy") != std::string::npos);
  auto e5 = err("{\n  \"Stuns\": [\n  \"oops\n}");
  CHECK(e5.find("malformed") != std::string::npos);
  CHECK(e5.find("line") != std::string::npos);
  auto e6 = err("[1, 2]");
  CHECK(e6.find("top level") != std::string::npos);
  auto e7 = err("{\"ReverseProxy\": {\"AccessLogRetentionDays\": \"7\"}}");
  CHECK(e7.find("ReverseProxy.AccessLogRetentionDays") != std::string::npos);
  CHECK_THROWS_WITH_AS(config::load_file("/nonexistent/dir/management.json", no_env),
                       doctest::Contains("/nonexistent/dir/management.json"), config::config_error);
}

TEST_CASE("store choice follows NetBird: config engine, then NETBIRD_STORE_ENGINE, then sqlite") {
  config::management_config c;
  c.datadir = "/var/lib/netbird";
  auto s = config::resolve_store(c, no_env);
  CHECK(s.engine == "sqlite");
  CHECK(s.target == "/var/lib/netbird/store.db");
  s = config::resolve_store(c, env_of({{"NETBIRD_STORE_ENGINE", "postgres"},
                                       {"NB_STORE_ENGINE_POSTGRES_DSN", "host=db dbname=nb"}}));
  CHECK(s.engine == "postgres");
  CHECK(s.target == "host=db dbname=nb");
  // The fallback DSN variable.
  s = config::resolve_store(c, env_of({{"NETBIRD_STORE_ENGINE", "POSTGRES"},
                                       {"NETBIRD_STORE_ENGINE_POSTGRES_DSN", "host=other"}}));
  CHECK(s.target == "host=other");
  // An unknown env value means sqlite.
  CHECK(config::resolve_store(c, env_of({{"NETBIRD_STORE_ENGINE", "oracle"}})).engine == "sqlite");
  // The config field wins over the environment.
  c.store.engine = "sqlite";
  CHECK(config::resolve_store(c, env_of({{"NETBIRD_STORE_ENGINE", "postgres"}})).engine ==
        "sqlite");
  // NB_STORE_ENGINE_SQLITE_FILE: relative to datadir, or absolute.
  CHECK(config::resolve_store(c, env_of({{"NB_STORE_ENGINE_SQLITE_FILE", "other.db"}})).target ==
        "/var/lib/netbird/other.db");
  CHECK(config::resolve_store(c, env_of({{"NB_STORE_ENGINE_SQLITE_FILE", "/tmp/x.db"}})).target ==
        "/tmp/x.db");
  // postgres without a DSN, mysql, and nonsense are clear errors.
  c.store.engine = "postgres";
  CHECK_THROWS_WITH_AS(config::resolve_store(c, no_env),
                       doctest::Contains("NB_STORE_ENGINE_POSTGRES_DSN"), config::config_error);
  c.store.engine = "mysql";
  CHECK_THROWS_WITH_AS(config::resolve_store(c, no_env), doctest::Contains("not supported"),
                       config::config_error);
  c.store.engine = "oracle";
  CHECK_THROWS_AS(config::resolve_store(c, no_env), config::config_error);
}

TEST_CASE("cli: defaults match NetBird's (port 33073 as documented)") {
  auto r = cli({"management"});
  REQUIRE(r.options.has_value());
  const auto& o = *r.options;
  CHECK(o.port == 33073);
  CHECK(o.datadir == "/var/lib/netbird/");
  CHECK(o.config_path == "/etc/netbird/management.json");
  CHECK(o.log_file == "/var/log/netbird/management.log");
  CHECK(o.log_level == "info");
  CHECK(o.metrics_port == 9090);
  CHECK(o.disable_geolite_update);
  CHECK(o.dns_domain == "netbird.selfhosted");
}

TEST_CASE("cli: every flag parses, global flags before or after the subcommand") {
  auto r = cli({"--config",
                "/tmp/m.json",
                "management",
                "--port",
                "443",
                "--datadir",
                "/srv/nb",
                "--cert-file",
                "c.pem",
                "--cert-key",
                "k.pem",
                "--letsencrypt-domain",
                "nb.example.com",
                "--log-file",
                "console",
                "--log-level",
                "debug",
                "--metrics-port",
                "9191",
                "--disable-legacy-port",
                "--single-account-mode-domain",
                "corp.example",
                "--disable-single-account-mode",
                "--dns-domain",
                "nb.internal",
                "--disable-anonymous-metrics",
                "--idp-sign-key-refresh-enabled",
                "--user-delete-from-idp"});
  REQUIRE(r.options.has_value());
  const auto& o = *r.options;
  CHECK(o.config_path == "/tmp/m.json");
  CHECK(o.port == 443);
  CHECK(o.datadir == "/srv/nb");
  CHECK(o.cert_file == "c.pem");
  CHECK(o.cert_key == "k.pem");
  CHECK(o.letsencrypt_domain == "nb.example.com");
  CHECK(o.log_file == "console");
  CHECK(o.log_level == "debug");
  CHECK(o.metrics_port == 9191);
  CHECK(o.disable_legacy_port);
  CHECK(o.single_account_mode_domain == "corp.example");
  CHECK(o.disable_single_account_mode);
  CHECK(o.dns_domain == "nb.internal");
  CHECK(o.disable_anonymous_metrics);
  CHECK(o.idp_sign_key_refresh_enabled);
  CHECK(o.user_delete_from_idp);
}

TEST_CASE("cli: --version, --help, and bad input with usage and a non-zero exit") {
  auto v = cli({"--version"});
  CHECK_FALSE(v.options.has_value());
  CHECK(v.exit_code == 0);
  CHECK(v.out.find("0.") != std::string::npos);
  auto h = cli({"management", "--help"});
  CHECK(h.exit_code == 0);
  CHECK(h.out.find("--letsencrypt-domain") != std::string::npos);
  for (auto args : std::vector<std::vector<const char*>>{{"management", "--bogus"},
                                                         {"management", "--port", "abc"},
                                                         {"management", "--port", "70000"},
                                                         {"management", "--port", "0"},
                                                         {"--log-level", "loud", "management"},
                                                         {},
                                                         {"frobnicate"}}) {
    auto r = cli(args);
    INFO(r.err);
    CHECK_FALSE(r.options.has_value());
    CHECK(r.exit_code != 0);
    CHECK(r.err.find("Usage") != std::string::npos);
  }
}

TEST_CASE("cli: admin subcommands parse into one command each") {
  auto r = cli({"--config", "/tmp/m.json", "admin", "--datadir", "/srv/nb", "setup-key", "create",
                "--account", "acc1", "--name", "fleet", "--reusable", "--usage-limit", "5",
                "--auto-groups", "g1,g2", "--ephemeral", "--expires-in", "24h"});
  REQUIRE(r.admin.has_value());
  CHECK_FALSE(r.options.has_value());
  const auto& a = *r.admin;
  CHECK(a.action == "setup-key-create");
  CHECK(a.config_path == "/tmp/m.json");
  CHECK(a.datadir == "/srv/nb");
  CHECK(a.account_id == "acc1");
  CHECK(a.reusable);
  CHECK(a.ephemeral);
  CHECK(a.usage_limit == 5);
  CHECK(a.auto_groups == std::vector<std::string>{"g1", "g2"});
  CHECK(a.expires_in == "24h");
  CHECK(cli({"admin", "account", "create", "--domain", "x.com"}).admin->action == "account-create");
  CHECK(cli({"admin", "setup-key", "list", "--account", "a"}).admin->action == "setup-key-list");
  CHECK(cli({"admin", "setup-key", "revoke", "--account", "a", "--id", "k"}).admin->action ==
        "setup-key-revoke");
  for (auto args :
       std::vector<std::vector<const char*>>{{"admin"},
                                             {"admin", "account", "create"}, // --domain required
                                             {"admin", "setup-key", "revoke", "--account", "a"},
                                             {"admin", "setup-key", "create", "--account", "a",
                                              "--name", "n", "--usage-limit", "-1"}}) {
    auto bad = cli(args);
    CHECK_FALSE(bad.admin.has_value());
    CHECK(bad.exit_code != 0);
  }
}
