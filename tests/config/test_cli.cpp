// The command line as NetBird's cobra commands parse it, and the flags over the config file.
#include "config/config.hpp"
#include "server/cli.hpp"
#include "tests/config/config_env.hpp"
#include "tests/support/test_db.hpp"

#include <doctest/doctest.h>

#include <vector>

using namespace nbm;
using test::error_of;
using test::no_env;

namespace {

server::parse_result cli(std::vector<const char*> args) {
  args.insert(args.begin(), "netbird-mgmt");
  return server::parse_cli(static_cast<int>(args.size()), args.data());
}

server::management_options options(std::vector<const char*> args) {
  args.insert(args.begin(), "management");
  auto r = cli(args);
  INFO(r.err);
  REQUIRE(r.options.has_value());
  return *r.options;
}

void check_fails(const std::vector<const char*>& args, const std::string& message) {
  auto r = cli(args);
  std::string joined;
  for (const auto* a : args)
    joined += std::string(a) + " ";
  INFO(joined);
  INFO(r.err);
  CHECK_FALSE(r.options.has_value());
  CHECK_FALSE(r.admin.has_value());
  CHECK(r.exit_code == 1);
  CHECK(r.out.empty());
  CHECK(r.err.rfind("Error: ", 0) == 0);
  CHECK(r.err.find(message) != std::string::npos);
  CHECK(r.err.find("Usage") != std::string::npos);
}

} // namespace

TEST_CASE("cli: defaults are NetBird's, the port is 33073 as this project documents") {
  const auto o = options({});
  CHECK(o.port == 33073);
  CHECK_FALSE(o.port_set);
  CHECK(o.datadir == "/var/lib/netbird/");
  CHECK_FALSE(o.datadir_set);
  CHECK(o.config_path == "/etc/netbird/management.json");
  CHECK(o.log_file == "/var/log/netbird/management.log");
  CHECK(o.log_level == "info");
  CHECK(o.metrics_port == 9090);
  CHECK_FALSE(o.disable_legacy_port);
  CHECK(o.single_account_mode_domain == "netbird.selfhosted");
  CHECK_FALSE(o.disable_single_account_mode);
  CHECK(o.dns_domain == "netbird.selfhosted");
  CHECK_FALSE(o.disable_anonymous_metrics);
  CHECK_FALSE(o.idp_sign_key_refresh_enabled);
  CHECK_FALSE(o.idp_sign_key_refresh_enabled_set);
  CHECK_FALSE(o.user_delete_from_idp);
  CHECK(o.disable_geolite_update);
  CHECK(o.cert_file.empty());
  CHECK(o.cert_key.empty());
  CHECK(o.letsencrypt_domain.empty());
}

TEST_CASE("cli: every flag parses; global flags before or after the subcommand") {
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
                "--user-delete-from-idp",
                "--disable-geolite-update=false"});
  INFO(r.err);
  REQUIRE(r.options.has_value());
  const auto& o = *r.options;
  CHECK(o.config_path == "/tmp/m.json");
  CHECK(o.port == 443);
  CHECK(o.port_set);
  CHECK(o.datadir == "/srv/nb");
  CHECK(o.datadir_set);
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
  CHECK(o.idp_sign_key_refresh_enabled_set);
  CHECK(o.user_delete_from_idp);
  CHECK_FALSE(o.disable_geolite_update);

  // --config and the log flags after the subcommand, --flag=value forms, pflag's base-0 ints.
  const auto p =
      options({"--config=/etc/nb.json", "--log-level=TRACE", "--log-file", "syslog", "--port=0x50",
               "--disable-legacy-port=true", "--idp-sign-key-refresh-enabled=false"});
  CHECK(p.config_path == "/etc/nb.json");
  CHECK(p.log_level == "TRACE"); // logrus levels are case-insensitive
  CHECK(p.log_file == "syslog");
  CHECK(p.port == 80);
  CHECK(p.disable_legacy_port);
  CHECK_FALSE(p.idp_sign_key_refresh_enabled);
  CHECK(p.idp_sign_key_refresh_enabled_set);
  // The container's command line: ENTRYPOINT management, CMD --log-file console.
  CHECK(options({"--log-file", "console"}).log_file == "console");
  for (const char* level : {"panic", "fatal", "error", "warn", "warning", "info", "debug", "trace"})
    CHECK(options({"--log-level", level}).log_level == level);
}

TEST_CASE("cli: --version, --help, help, and the bare command") {
  for (const char* flag : {"--version", "-v"}) {
    auto v = cli({flag});
    CHECK_FALSE(v.options.has_value());
    CHECK(v.exit_code == 0);
    CHECK(v.out == std::string("netbird-mgmt version ") + NBM_VERSION + "\n");
    CHECK(v.err.empty());
  }
  auto h = cli({"management", "--help"});
  CHECK(h.exit_code == 0);
  CHECK_FALSE(h.options.has_value());
  for (const char* flag : {"--port", "--datadir", "--cert-file", "--cert-key",
                           "--letsencrypt-domain", "--metrics-port", "--dns-domain",
                           "--disable-geolite-update", "--config", "--log-file", "--log-level"})
    CHECK_MESSAGE(h.out.find(flag) != std::string::npos, std::string(flag));
  CHECK(cli({"-h"}).out.find("management") != std::string::npos);
  CHECK(cli({"help", "management"}).out.find("--letsencrypt-domain") != std::string::npos);
  CHECK(cli({"help"}).exit_code == 0);
  CHECK(cli({"help", "nope"}).exit_code == 1);
  CHECK(cli({"help", "admin", "setup-key", "create"}).out.find("--usage-limit") !=
        std::string::npos);
  // cobra: a root command without a Run prints its help and exits 0.
  auto bare = cli({});
  CHECK(bare.exit_code == 0);
  CHECK_FALSE(bare.options.has_value());
  CHECK(bare.out.find("management") != std::string::npos);
  CHECK(bare.err.empty());
}

TEST_CASE("cli: bad input is an error with the usage and exit status 1") {
  check_fails({"management", "--bogus"}, "--bogus");
  check_fails({"frobnicate"}, "frobnicate");
  check_fails({"management", "--port", "abc"}, "invalid port \"abc\"");
  check_fails({"management", "--port", "70000"}, "invalid port \"70000\"");
  check_fails({"management", "--port", "0"}, "invalid port");
  check_fails({"management", "--port", "-1"}, "invalid port");
  check_fails({"management", "--port"}, "--port");
  check_fails({"management", "--metrics-port", "65536"}, "invalid port");
  check_fails({"--log-level", "loud", "management"}, "not a valid logrus Level");
  check_fails({"management", "--log-level", "verbose"}, "not a valid logrus Level");
  check_fails({"management", "--disable-legacy-port=maybe"}, "--disable-legacy-port");
  check_fails({"management", "--dns-domain", "*.example.com"}, "invalid dns-domain");
  check_fails({"management", "--dns-domain", "bad domain"}, "invalid dns-domain");
  check_fails({"management", "--dns-domain", ""}, "invalid dns-domain");
  check_fails({"management", "stray"}, "stray");
  // The usage is the subcommand's when the error is in it.
  CHECK(cli({"management", "--bogus"}).err.find("--letsencrypt-domain") != std::string::npos);
}

TEST_CASE("cli: NetBird's DNS domain rule") {
  for (const char* ok : {"netbird.selfhosted", "example.com", "a", "xn--bcher-kva.example",
                         "EXAMPLE.COM", "my_host.internal", "nb.cloud"})
    CHECK_MESSAGE(server::valid_dns_domain(ok), std::string(ok));
  for (const char* bad : {"", "*.example.com", "-a.com", "a-.com", "a..com", ".com", "a.com.",
                          "exa mple.com", "ex!ample.com"})
    CHECK_FALSE_MESSAGE(server::valid_dns_domain(bad), std::string(bad));
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
  CHECK(a.log_level == "warn");
  CHECK(a.datadir_set);
  CHECK(cli({"admin", "account", "create", "--domain", "x.com"}).admin->action == "account-create");
  CHECK_FALSE(cli({"admin", "account", "list"}).admin->datadir_set);
  CHECK(cli({"admin", "account", "create", "--domain", "x.com", "--allow-duplicate-domain"})
            .admin->allow_duplicate_domain);
  CHECK(cli({"admin", "account", "list"}).admin->action == "account-list");
  CHECK(cli({"admin", "user", "list", "--account", "a"}).admin->action == "user-list");
  CHECK(cli({"admin", "peer", "list", "--account", "a"}).admin->action == "peer-list");
  {
    auto t = cli({"admin", "token", "create", "--user", "u@x.com", "--expires-in", "7"});
    REQUIRE(t.admin.has_value());
    CHECK(t.admin->action == "token-create");
    CHECK(t.admin->user == "u@x.com");
    CHECK(t.admin->expires_in_days == 7);
    CHECK(t.admin->account_id.empty());
  }
  // One spelling everywhere: --account; the old --account-id still parses (hidden).
  for (const char* flag : {"--account", "--account-id"}) {
    for (auto cmd : std::vector<std::vector<const char*>>{{"admin", "group", "list"},
                                                          {"admin", "policy", "list"},
                                                          {"admin", "route", "list"},
                                                          {"admin", "nameserver", "list"},
                                                          {"admin", "account", "settings"},
                                                          {"admin", "setup-key", "list"}}) {
      cmd.push_back(flag);
      cmd.push_back("acc9");
      auto p = cli(cmd);
      INFO(flag << " " << cmd[1]);
      REQUIRE(p.admin.has_value());
      CHECK(p.admin->account_id == "acc9");
    }
  }
  CHECK(cli({"help", "admin", "group", "list"}).out.find("--account-id") == std::string::npos);
  CHECK(cli({"help", "admin", "group", "list"}).out.find("--account") != std::string::npos);
  CHECK(cli({"admin", "setup-key", "list", "--account", "a"}).admin->action == "setup-key-list");
  CHECK(cli({"--log-level", "debug", "admin", "setup-key", "revoke", "--account", "a", "--id", "k"})
            .admin->log_level == "debug");
  for (auto args : std::vector<std::vector<const char*>>{
           {"admin"},
           {"admin", "account", "create"}, // --domain required
           {"admin", "setup-key", "revoke", "--account", "a"},
           {"admin", "setup-key", "create", "--account", "a", "--name", "n", "--usage-limit", "-1"},
           {"admin", "group", "list"}, // --account required
           {"admin", "token", "create", "--user", "u", "--expires-in", "0"},
           {"admin", "token", "create", "--user", "u", "--expires-in", "366"}}) {
    auto bad = cli(args);
    CHECK_FALSE(bad.admin.has_value());
    CHECK(bad.exit_code == 1);
  }
}

TEST_CASE("cli: flags override the config file as NetBird applies them") {
  const char* text = R"({"Datadir": "/from/config",
                         "HttpConfig": {"LetsEncryptDomain": "cfg.example.com",
                                        "CertFile": "/cfg/c.pem", "CertKey": "/cfg/k.pem",
                                        "IdpSignKeyRefreshEnabled": true}})";
  SUBCASE("defaults: the config's Datadir is kept (no --datadir given), the rest stays") {
    auto o = options({});
    auto c = config::load_text(text, "m.json", no_env());
    server::apply_overrides(o, c);
    // NetBird lets the flag's default win; netbird-mgmt keeps the file's, so that the server and
    // `admin --config F` open one store.
    CHECK(c.datadir == "/from/config");
    CHECK(c.http->lets_encrypt_domain == "cfg.example.com");
    CHECK(c.http->cert_file == "/cfg/c.pem");
    CHECK(c.http->idp_sign_key_refresh_enabled);
    CHECK(o.single_account_mode_domain == "netbird.selfhosted");
  }
  SUBCASE("a config without a Datadir: the flag's default") {
    auto o = options({});
    auto c = config::load_text(R"({"Datadir": ""})", "m.json", no_env());
    server::apply_overrides(o, c);
    CHECK(c.datadir == "/var/lib/netbird/");
  }
  SUBCASE("--datadir \"\" keeps the file's Datadir") {
    auto o = options({"--datadir", ""});
    auto c = config::load_text(text, "m.json", no_env());
    server::apply_overrides(o, c);
    CHECK(c.datadir == "/from/config");
  }
  SUBCASE("given flags win") {
    auto o = options({"--datadir", "/flag/dir", "--letsencrypt-domain", "flag.example.com",
                      "--cert-file", "/f/c.pem", "--cert-key", "/f/k.pem",
                      "--idp-sign-key-refresh-enabled=false", "--disable-single-account-mode"});
    auto c = config::load_text(text, "m.json", no_env());
    server::apply_overrides(o, c);
    CHECK(c.datadir == "/flag/dir");
    CHECK(c.http->lets_encrypt_domain == "flag.example.com");
    CHECK(c.http->cert_file == "/f/c.pem");
    CHECK(c.http->cert_key == "/f/k.pem");
    CHECK_FALSE(c.http->idp_sign_key_refresh_enabled); // given (even =false): it wins
    CHECK(o.single_account_mode_domain.empty());
  }
  SUBCASE("a certificate needs both flags") {
    auto o = options({"--cert-file", "/f/c.pem"});
    auto c = config::load_text(text, "m.json", no_env());
    server::apply_overrides(o, c);
    CHECK(c.http->cert_file == "/cfg/c.pem");
  }
  SUBCASE("TLS asked for: port 443 unless --port was given (NetBird's default)") {
    auto le = options({"--letsencrypt-domain", "le.example.com"});
    auto c1 = config::load_text("{}", "m.json", no_env());
    server::apply_overrides(le, c1);
    CHECK(le.port == 443);
    auto given = options({"--letsencrypt-domain", "le.example.com", "--port", "8443"});
    auto c2 = config::load_text("{}", "m.json", no_env());
    server::apply_overrides(given, c2);
    CHECK(given.port == 8443);
    auto cert = options({});
    auto c3 = config::load_text(text, "m.json", no_env()); // CertFile and CertKey in the file
    server::apply_overrides(cert, c3);
    CHECK(cert.port == 443);
    auto plain = options({});
    auto c4 = config::load_text(R"({"HttpConfig": {"LetsEncryptDomain": "only.in.file"}})",
                                "m.json", no_env());
    server::apply_overrides(plain, c4); // the file's LetsEncryptDomain alone does not (NetBird)
    CHECK(plain.port == 33073);
  }
  SUBCASE("a flag creates HttpConfig when the file has none") {
    auto o = options({"--letsencrypt-domain", "le.example.com"});
    auto c = config::load_text("{}", "m.json", no_env());
    server::apply_overrides(o, c);
    REQUIRE(c.http.has_value());
    CHECK(c.http->lets_encrypt_domain == "le.example.com");
    auto untouched = config::load_text("{}", "m.json", no_env());
    auto plain = options({});
    server::apply_overrides(plain, untouched);
    CHECK_FALSE(untouched.http.has_value());
  }
  SUBCASE("the embedded IdP") {
    const char* idp =
        R"({"EmbeddedIdP": {"Enabled": true, "Issuer": "https://nb.example/oauth2"}})";
    auto o = options({"--port", "8080", "--datadir", "/srv/nb"});
    auto c = config::load_text(idp, "m.json", no_env());
    server::apply_overrides(o, c);
    CHECK(o.user_delete_from_idp); // NetBird turns it on
    CHECK(c.embedded_idp->local_address == "localhost:8080");
    CHECK(c.embedded_idp->storage.file == "/srv/nb/idp.db"); // after the datadir override
    CHECK(c.http->auth_audience == "netbird-dashboard");
    auto refused = options({"--disable-single-account-mode"});
    auto rc = config::load_text(idp, "m.json", no_env());
    CHECK(error_of([&] { server::apply_overrides(refused, rc); }).find("single account mode") !=
          std::string::npos);
  }
}

TEST_CASE("cli: the inspector's address: --inspector-addr, NBM_INSPECTOR_ADDR, InspectorAddress, "
          "the default, in that order; off turns it off") {
  CHECK_FALSE(options({}).inspector_addr.has_value());
  CHECK(options({"--inspector-addr", "127.0.0.1:4000"}).inspector_addr == "127.0.0.1:4000");
  CHECK(options({"--inspector-addr", "off"}).inspector_addr == "off");
  check_fails({"management", "--inspector-addr"}, "--inspector-addr");

  using std::nullopt;
  using opt = std::optional<std::string>;
  auto pick = [](opt flag, opt env, opt cfg) {
    return server::resolve_inspector_address(flag, env, cfg);
  };
  auto d = pick(nullopt, nullopt, nullopt);
  CHECK(d.address == "127.0.0.1:33079");
  CHECK(d.source == "default");
  CHECK_FALSE(d.configured());
  auto c = pick(nullopt, nullopt, opt("127.0.0.1:1"));
  CHECK(c.address == "127.0.0.1:1");
  CHECK(c.source == "InspectorAddress");
  CHECK(c.configured());
  auto e = pick(nullopt, opt("[::1]:2"), opt("127.0.0.1:1"));
  CHECK(e.address == "[::1]:2");
  CHECK(e.source == "NBM_INSPECTOR_ADDR");
  auto f = pick(opt("127.0.0.1:3"), opt("[::1]:2"), opt("127.0.0.1:1"));
  CHECK(f.address == "127.0.0.1:3");
  CHECK(f.source == "--inspector-addr");
  for (const char* off : {"off", "", "0", "false", "disabled"}) {
    INFO(off);
    CHECK(pick(opt(off), opt("[::1]:2"), nullopt).address.empty());
    CHECK(pick(nullopt, opt(off), opt("127.0.0.1:1")).address.empty());
    auto o = pick(nullopt, nullopt, opt(off));
    CHECK(o.address.empty());
    CHECK(o.source == "InspectorAddress");
  }
}
