#include "server/cli.hpp"

#include <CLI/CLI.hpp>

#include <sstream>

#ifndef NBM_VERSION
#define NBM_VERSION "dev"
#endif

namespace nbm::server {

bool valid_log_level(const std::string& level) {
  for (const char* l : {"panic", "fatal", "error", "warn", "warning", "info", "debug", "trace"})
    if (level == l)
      return true;
  return false;
}

parse_result parse_cli(int argc, const char* const* argv) {
  management_options o;
  CLI::App app{"netbird-mgmt: the NetBird management server (C++ actor system)", "netbird-mgmt"};
  app.set_version_flag("--version", std::string("netbird-mgmt version ") + NBM_VERSION);
  app.require_subcommand(1);
  app.fallthrough(); // global flags may follow the subcommand, as with cobra's persistent flags
  app.add_option("--config", o.config_path, "Netbird config file location")->capture_default_str();
  app.add_option("--log-file", o.log_file,
                 "sets Netbird log path. If console is specified the log will be output to stdout")
      ->capture_default_str();
  app.add_option("--log-level", o.log_level,
                 "log level (panic, fatal, error, warn, info, debug, trace)")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& v) { return valid_log_level(v) ? "" : "unknown log level " + v; },
          "LEVEL"));

  auto* mgmt = app.add_subcommand("management", "start NetBird Management Server");
  mgmt->add_option(
      "--cert-file", o.cert_file,
      "Location of your SSL certificate. Can be used when you have an existing certificate "
      "and don't want a new certificate be generated automatically. If letsencrypt-domain is "
      "specified this property has no effect");
  mgmt->add_option(
      "--cert-key", o.cert_key,
      "Location of your SSL certificate private key. If letsencrypt-domain is specified this "
      "property has no effect");
  mgmt->add_option("--datadir", o.datadir, "server data directory location")->capture_default_str();
  mgmt->add_option(
      "--letsencrypt-domain", o.letsencrypt_domain,
      "a domain to issue Let's Encrypt certificate for. Enables TLS using Let's Encrypt. "
      "Will fetch and renew certificate, and run the server with TLS");
  mgmt->add_option("--port", o.port, "server port to listen on")
      ->capture_default_str()
      ->check(CLI::Range(1, 65535));
  mgmt->add_option("--metrics-port", o.metrics_port, "metrics endpoint http port")
      ->capture_default_str()
      ->check(CLI::Range(1, 65535));
  mgmt->add_flag("--disable-legacy-port", o.disable_legacy_port, "disable the legacy port (33073)");
  mgmt->add_option("--single-account-mode-domain", o.single_account_mode_domain,
                   "domain of the single account mode")
      ->capture_default_str();
  mgmt->add_flag("--disable-single-account-mode", o.disable_single_account_mode,
                 "every new user gets a separate NetBird account");
  mgmt->add_option("--dns-domain", o.dns_domain, "domain used for peer resolution")
      ->capture_default_str();
  mgmt->add_flag("--disable-anonymous-metrics", o.disable_anonymous_metrics,
                 "disables push of anonymous usage metrics");
  mgmt->add_flag("--idp-sign-key-refresh-enabled", o.idp_sign_key_refresh_enabled,
                 "refresh the IdP signing keys when they expire");
  mgmt->add_flag("--user-delete-from-idp", o.user_delete_from_idp,
                 "delete users from the IdP when they are deleted from the account");
  mgmt->add_flag("--disable-geolite-update", o.disable_geolite_update,
                 "disables automatic updates to the Geolite2 geolocation databases")
      ->capture_default_str();

  admin_command ac;
  auto* admin = app.add_subcommand("admin", "administer the configured store without an IdP");
  admin->require_subcommand(1);
  admin->add_option("--datadir", ac.datadir, "server data directory location")
      ->capture_default_str();
  auto* account = admin->add_subcommand("account", "accounts")->require_subcommand(1);
  auto* acc_create =
      account->add_subcommand("create", "create an account with an owner and print a PAT");
  acc_create->add_option("--domain", ac.domain, "the account's domain")->required();
  acc_create->add_option("--owner-email", ac.owner_email, "the owner's email");
  acc_create->add_option("--owner-name", ac.owner_name, "the owner's name");
  acc_create->add_flag("--no-default-policy", ac.no_default_policy,
                       "do not create the default All<->All policy");
  auto* keys = admin->add_subcommand("setup-key", "setup keys")->require_subcommand(1);
  auto* key_create = keys->add_subcommand("create", "create a setup key and print it");
  key_create->add_option("--account", ac.account_id, "account id")->required();
  key_create->add_option("--name", ac.name, "key name")->required();
  key_create->add_flag("--reusable", ac.reusable, "reusable instead of one-off");
  key_create->add_option("--expires-in", ac.expires_in, "validity (Go duration; 0 = never)")
      ->capture_default_str();
  key_create
      ->add_option("--usage-limit", ac.usage_limit,
                   "uses allowed for a reusable key (0 = unlimited)")
      ->check(CLI::NonNegativeNumber);
  key_create->add_option("--auto-groups", ac.auto_groups, "group ids new peers join")
      ->delimiter(',');
  key_create->add_flag("--ephemeral", ac.ephemeral, "peers registered with it are ephemeral");
  key_create->add_flag("--allow-extra-dns-labels", ac.allow_extra_dns_labels,
                       "allow extra DNS labels");
  auto* key_list = keys->add_subcommand("list", "list an account's setup keys");
  key_list->add_option("--account", ac.account_id, "account id")->required();
  auto* key_revoke = keys->add_subcommand("revoke", "revoke a setup key");
  key_revoke->add_option("--account", ac.account_id, "account id")->required();
  key_revoke->add_option("--id", ac.key_id, "setup key id")->required();

  parse_result r;
  std::ostringstream out, err;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    // Help of the subcommand that was asked, as cobra prints it.
    const CLI::App* asked = &app;
    for (const CLI::App* c :
         {static_cast<const CLI::App*>(mgmt), static_cast<const CLI::App*>(admin),
          static_cast<const CLI::App*>(account), static_cast<const CLI::App*>(keys),
          static_cast<const CLI::App*>(acc_create), static_cast<const CLI::App*>(key_create),
          static_cast<const CLI::App*>(key_list), static_cast<const CLI::App*>(key_revoke)})
      if (c->parsed())
        asked = c;
    r.out = asked->help();
    return r;
  } catch (const CLI::CallForVersion& e) {
    r.out = app.version() + "\n";
    return r;
  } catch (const CLI::ParseError& e) {
    r.exit_code = e.get_exit_code() == 0 ? 1 : e.get_exit_code();
    r.err = std::string("Error: ") + e.what() + "\n\nUsage:\n" +
            (mgmt->parsed() ? mgmt->help() : app.help());
    return r;
  }
  if (admin->parsed()) {
    ac.config_path = o.config_path;
    if (app.get_option("--log-level")->count() > 0)
      ac.log_level = o.log_level;
    ac.action = acc_create->parsed()   ? "account-create"
                : key_create->parsed() ? "setup-key-create"
                : key_list->parsed()   ? "setup-key-list"
                                       : "setup-key-revoke";
    r.admin = ac;
    return r;
  }
  r.options = o;
  return r;
}

} // namespace nbm::server
