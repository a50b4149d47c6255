#include "server/cli.hpp"

#include "config/logging.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cctype>
#include <regex>

#ifndef NBM_VERSION
#define NBM_VERSION "dev"
#endif

namespace nbm::server {

namespace {

// pflag's IntVar: strconv.ParseInt(s, 0, 64), so 0x50 and 010 are numbers too.
CLI::Validator port_validator() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        try {
          std::size_t pos = 0;
          const long long port = std::stoll(v, &pos, 0);
          if (pos == v.size() && port >= 1 && port <= 65535)
            return {};
        } catch (const std::exception&) {
        }
        return "invalid port \"" + v + "\": expected a number from 1 to 65535";
      },
      "PORT");
}

void add_management_flags(CLI::App& cmd, management_options& o) {
  cmd.add_option("--port", o.port,
                 "server port to listen on (netbird-mgmt's default 33073; NetBird's Go server "
                 "defaults to 443 if TLS is enabled, 80 otherwise)")
      ->capture_default_str()
      ->check(port_validator());
  cmd.add_flag("--disable-legacy-port", o.disable_legacy_port,
               "disabling the old legacy port (33073)");
  cmd.add_option("--metrics-port", o.metrics_port,
                 "metrics endpoint http port. Metrics are accessible under "
                 "host:metrics-port/metrics")
      ->capture_default_str()
      ->check(port_validator());
  cmd.add_option("--api-port", o.api_port,
                 "serve the REST API (/api) on a port of its own (netbird-mgmt; by default it is "
                 "served on --port next to gRPC, as NetBird serves it)")
      ->check(port_validator());
  cmd.add_option("--datadir", o.datadir, "server data directory location")->capture_default_str();
  cmd.add_option("--letsencrypt-domain", o.letsencrypt_domain,
                 "a domain to issue Let's Encrypt certificate for. Enables TLS using Let's "
                 "Encrypt. Will fetch and renew certificate, and run the server with TLS");
  cmd.add_option("--single-account-mode-domain", o.single_account_mode_domain,
                 "Enables single account mode. This means that all the users will be under the "
                 "same account grouped by the specified domain. If the installation has more than "
                 "one account, the property is ineffective. Enabled by default with the default "
                 "domain netbird.selfhosted")
      ->capture_default_str();
  cmd.add_flag("--disable-single-account-mode", o.disable_single_account_mode,
               "If set to true, disables single account mode. The --single-account-mode-domain "
               "property will be ignored and every new user will have a separate NetBird account.");
  cmd.add_option("--cert-file", o.cert_file,
                 "Location of your SSL certificate. Can be used when you have an existing "
                 "certificate and don't want a new certificate be generated automatically. If "
                 "letsencrypt-domain is specified this property has no effect");
  cmd.add_option("--cert-key", o.cert_key,
                 "Location of your SSL certificate private key. Can be used when you have an "
                 "existing certificate and don't want a new certificate be generated "
                 "automatically. If letsencrypt-domain is specified this property has no effect");
  cmd.add_flag("--disable-anonymous-metrics", o.disable_anonymous_metrics,
               "disables push of anonymous usage metrics to NetBird");
  cmd.add_option("--dns-domain", o.dns_domain,
                 "Domain used for peer resolution. This is appended to the peer's name, e.g. "
                 "pi-server.netbird.selfhosted. Max length is 192 characters to allow appending "
                 "to a peer name with up to 63 characters.")
      ->capture_default_str();
  cmd.add_flag("--idp-sign-key-refresh-enabled", o.idp_sign_key_refresh_enabled,
               "Enable cache headers evaluation to determine signing key rotation period. This "
               "will refresh the signing key upon expiry.");
  cmd.add_flag("--user-delete-from-idp", o.user_delete_from_idp,
               "Allows to delete user from IDP when user is deleted from account");
  cmd.add_flag("--disable-geolite-update", o.disable_geolite_update,
               "disables automatic updates to the Geolite2 geolocation databases (default true; "
               "--disable-geolite-update=false enables them)");
  cmd.add_option_function<std::string>(
      "--inspector-addr", [&o](const std::string& v) { o.inspector_addr = v; },
      "where the inspector console (netbird-mgmt inspect) listens, host:port (port 0: "
      "any; \"off\" turns it off); netbird-mgmt's own. Before NBM_INSPECTOR_ADDR and "
      "the config's InspectorAddress; default 127.0.0.1:33079");
}

parse_result failure(const std::string& message, const CLI::App& usage_of) {
  parse_result r;
  r.exit_code = 1; // NetBird's main: os.Exit(1) on any command error
  r.err = "Error: " + message + "\n\n" + usage_of.help();
  return r;
}

} // namespace

inspector_address_choice resolve_inspector_address(const std::optional<std::string>& flag,
                                                   const std::optional<std::string>& env,
                                                   const std::optional<std::string>& config) {
  inspector_address_choice c;
  const std::optional<std::string>* from = nullptr;
  if (flag) {
    from = &flag;
    c.source = "--inspector-addr";
  } else if (env) {
    from = &env;
    c.source = "NBM_INSPECTOR_ADDR";
  } else if (config) {
    from = &config;
    c.source = "InspectorAddress";
  } else {
    c.source = "default";
    c.address = default_inspector_address;
    return c;
  }
  const auto& v = **from;
  if (v.empty() || v == "off" || v == "0" || v == "false" || v == "disabled")
    return c; // off
  c.address = v;
  return c;
}

bool valid_log_level(const std::string& level) {
  return config::parse_log_level(level).has_value();
}

bool valid_dns_domain(const std::string& domain) {
  if (domain.empty() || domain.rfind("*.", 0) == 0)
    return false;
  static const std::regex pattern(
      R"(^(?:\*\.)?(?:(?:xn--)?[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)*(?:xn--)?[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$)");
  std::string lowered = domain;
  std::transform(lowered.begin(), lowered.end(), lowered.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return std::regex_match(lowered, pattern);
}

std::string effective_datadir(const std::string& flag, bool flag_given,
                              const std::string& from_config) {
  if (flag_given)
    return flag.empty() ? from_config : flag; // `--datadir ""` keeps the file's, as NetBird
  return from_config.empty() ? flag : from_config;
}

parse_result parse_cli(int argc, const char* const* argv) {
  management_options o;
  CLI::App app{"netbird-mgmt: the NetBird management server (C++ actor system)", "netbird-mgmt"};
  app.set_version_flag("-v,--version", std::string("netbird-mgmt version ") + NBM_VERSION,
                       "version for netbird-mgmt");
  // Flags of the root may also follow the subcommand (cobra's persistent flags; cobra also lets
  // `--config` come before `management`).
  app.fallthrough();
  app.add_option("--config", o.config_path,
                 "Netbird config file location. Config params specified via command line (e.g. "
                 "datadir) have a precedence over configuration from this file")
      ->capture_default_str();
  app.add_option("--log-file", o.log_file,
                 "sets Netbird log path. If console is specified the log will be output to stdout")
      ->capture_default_str();
  app.add_option("--log-level", o.log_level,
                 "log level: panic, fatal, error, warn, info, debug or trace")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            return valid_log_level(v) ? std::string()
                                      : "not a valid logrus Level: \"" + v +
                                            "\" (use panic, fatal, error, warn, info, debug or "
                                            "trace)";
          },
          "LEVEL"));

  auto* mgmt = app.add_subcommand("management", "start NetBird Management Server");
  add_management_flags(*mgmt, o);
  // cobra lists the root's persistent flags under the subcommand's own.
  mgmt->footer("Global Flags:\n"
               "  --config TEXT [/etc/netbird/management.json]\n"
               "                              Netbird config file location\n"
               "  --log-file TEXT [/var/log/netbird/management.log]\n"
               "                              sets Netbird log path (console = stdout)\n"
               "  --log-level LEVEL [info]    panic, fatal, error, warn, info, debug or trace\n"
               "  -v,--version                version for netbird-mgmt");

  admin_command ac;
  auto* admin = app.add_subcommand(
      "admin", "administer the server's store without an IdP (the store the server opens with the "
               "same --config and --datadir; only `account create` may create one)");
  admin->require_subcommand(1);
  admin->add_option("--datadir", ac.datadir,
                    "server data directory location (default: the config's Datadir when it names "
                    "one, else /var/lib/netbird/)");
  // --account everywhere (an account id or its domain); --account-id, the old spelling of some
  // commands, stays accepted but hidden.
  std::vector<CLI::App*> need_account;
  auto account_flag = [&](CLI::App* sub) {
    sub->add_option("--account", ac.account_id, "account id or domain (required)");
    sub->add_option("--account-id", ac.account_id, "same as --account")->group("");
    need_account.push_back(sub);
  };
  auto* account = admin->add_subcommand("account", "accounts")->require_subcommand(1);
  auto* acc_create =
      account->add_subcommand("create", "create an account with an owner and print a PAT");
  acc_create->add_option("--domain", ac.domain, "the account's domain")->required();
  acc_create->add_option("--owner-email", ac.owner_email, "the owner's email");
  acc_create->add_option("--owner-name", ac.owner_name, "the owner's name");
  acc_create->add_flag("--no-default-policy", ac.no_default_policy,
                       "do not create the default All<->All policy");
  acc_create->add_flag("--allow-duplicate-domain", ac.allow_duplicate_domain,
                       "create it even when an account with this domain exists");
  auto* acc_list = account->add_subcommand("list", "list the store's accounts, one per line");
  auto* acc_settings = account->add_subcommand(
      "settings", "show or change an account's peer expiration settings (bumps its serial)");
  account_flag(acc_settings);
  acc_settings->add_option("--peer-login-expiration", ac.peer_login_expiration,
                           "how long an SSO peer's login lasts (Go duration, 1h to 180 days)");
  acc_settings
      ->add_option("--peer-login-expiration-enabled", ac.peer_login_expiration_enabled,
                   "true or false")
      ->check(CLI::IsMember({"true", "false"}));
  acc_settings->add_option("--peer-inactivity-expiration", ac.peer_inactivity_expiration,
                           "how long an SSO peer may stay disconnected (Go duration)");
  acc_settings
      ->add_option("--peer-inactivity-expiration-enabled", ac.peer_inactivity_expiration_enabled,
                   "true or false")
      ->check(CLI::IsMember({"true", "false"}));
  auto* users = admin->add_subcommand("user", "users")->require_subcommand(1);
  auto* user_list = users->add_subcommand("list", "list an account's users, one per line");
  account_flag(user_list);
  auto* tokens = admin->add_subcommand("token", "personal access tokens")->require_subcommand(1);
  auto* token_create =
      tokens->add_subcommand("create", "create a personal access token for a user and print it");
  token_create->add_option("--user", ac.user, "the user: id, email or name")->required();
  token_create->add_option("--account", ac.account_id,
                           "account id or domain (needed only when --user is ambiguous)");
  token_create->add_option("--name", ac.token_name, "the token's name")->capture_default_str();
  token_create->add_option("--expires-in", ac.expires_in_days, "validity in days, 1 to 365")
      ->capture_default_str()
      ->check(CLI::Range(1LL, 365LL));
  auto* peers = admin->add_subcommand("peer", "peers")->require_subcommand(1);
  auto* peer_list = peers->add_subcommand("list", "list an account's peers, one per line");
  account_flag(peer_list);

  auto* keys = admin->add_subcommand("setup-key", "setup keys")->require_subcommand(1);
  auto* key_create = keys->add_subcommand("create", "create a setup key and print it");
  account_flag(key_create);
  key_create->add_option("--name", ac.name, "key name")->required();
  key_create->add_flag("--reusable", ac.reusable, "reusable instead of one-off");
  key_create->add_option("--expires-in", ac.expires_in, "validity (Go duration; 0 = never)")
      ->capture_default_str();
  key_create
      ->add_option("--usage-limit", ac.usage_limit,
                   "uses allowed for a reusable key (0 = unlimited)")
      ->check(CLI::NonNegativeNumber);
  key_create->add_option("--auto-groups", ac.auto_groups, "groups (ids or names) new peers join")
      ->delimiter(',');
  key_create->add_flag("--ephemeral", ac.ephemeral, "peers registered with it are ephemeral");
  key_create->add_flag("--allow-extra-dns-labels", ac.allow_extra_dns_labels,
                       "allow extra DNS labels");
  auto* key_list = keys->add_subcommand("list", "list an account's setup keys");
  account_flag(key_list);
  auto* key_revoke = keys->add_subcommand("revoke", "revoke a setup key");
  account_flag(key_revoke);
  key_revoke->add_option("--id", ac.key_id, "setup key id")->required();

  // Configuration objects of one account: <kind> create | list | delete.
  struct object_commands {
    std::string kind;
    CLI::App *parent, *create, *list, *del;
  };
  auto objects = [&](const std::string& kind, const std::string& plural,
                     const std::string& id_flag) {
    object_commands c{kind, admin->add_subcommand(kind, plural), nullptr, nullptr, nullptr};
    c.parent->require_subcommand(1);
    c.create = c.parent->add_subcommand("create", "create one; prints its id");
    c.list = c.parent->add_subcommand("list", "list the account's " + plural + ", one per line");
    c.del = c.parent->add_subcommand("delete", "delete one");
    for (auto* sub : {c.create, c.list, c.del})
      account_flag(sub);
    c.del->add_option(id_flag, ac.object_id, "id or name of the " + kind + " to delete")
        ->required();
    return c;
  };
  auto group = objects("group", "groups", "--group-id");
  group.create->add_option("--name", ac.name, "group name (unique in the account)")->required();
  group.create->add_option("--peers", ac.peers, "peers (ids, names or DNS labels), comma-separated")
      ->delimiter(',');

  auto policy = objects("policy", "policies (one rule each, named like the policy)", "--policy-id");
  policy.create->add_option("--name", ac.name, "policy name")->required();
  policy.create->add_option("--description", ac.description, "policy description");
  policy.create->add_option("--source", ac.sources, "source groups (ids or names)")
      ->delimiter(',')
      ->required();
  policy.create->add_option("--destination", ac.destinations, "destination groups (ids or names)")
      ->delimiter(',')
      ->required();
  policy.create->add_option("--protocol", ac.protocol, "all, tcp, udp or icmp")
      ->capture_default_str();
  policy.create->add_option("--ports", ac.ports, "ports, comma-separated (tcp/udp only)")
      ->delimiter(',');
  policy.create
      ->add_option("--port-range", ac.port_ranges, "port ranges START-END, comma-separated")
      ->delimiter(',');
  policy.create->add_option("--action", ac.rule_action, "accept or drop")->capture_default_str();
  policy.create->add_flag("--bidirectional", ac.bidirectional, "traffic in both directions");
  policy.create->add_flag("--disabled", ac.disabled, "create the policy disabled");

  auto route = objects("route", "network routes", "--route-id");
  route.create->add_option("--network", ac.network, "IPv4 or IPv6 prefix (CIDR)")->required();
  route.create->add_option("--net-id", ac.net_id, "network identifier (1-40 characters)")
      ->required();
  route.create->add_option("--description", ac.description, "route description");
  auto* route_peer =
      route.create->add_option("--peer", ac.peer, "routing peer (id, name or DNS label)");
  route.create->add_option("--peer-groups", ac.peer_groups, "routing peer groups (ids or names)")
      ->delimiter(',')
      ->excludes(route_peer);
  route.create->add_option("--groups", ac.groups, "distribution groups (ids or names)")
      ->delimiter(',')
      ->required();
  route.create->add_option("--metric", ac.metric, "route metric, 1-9999")->capture_default_str();
  route.create->add_flag("--masquerade", ac.masquerade, "masquerade traffic to the network");
  route.create
      ->add_option("--access-control-groups", ac.access_control_groups,
                   "access control groups (ids or names)")
      ->delimiter(',');
  route.create->add_flag("--disabled", ac.disabled, "create the route disabled");

  auto ns = objects("nameserver", "nameserver groups", "--nameserver-group-id");
  ns.create->add_option("--name", ac.name, "nameserver group name (1-40 characters)")->required();
  ns.create->add_option("--description", ac.description, "description");
  ns.create->add_option("--nameservers", ac.nameservers, "IP[:port] (IPv6: [IP]:port), 1 to 3")
      ->delimiter(',')
      ->required();
  ns.create->add_option("--groups", ac.groups, "distribution groups (ids or names)")
      ->delimiter(',')
      ->required();
  ns.create->add_option("--domains", ac.domains, "match domains (none: --primary)")->delimiter(',');
  ns.create->add_flag("--primary", ac.primary, "resolve every domain with these nameservers");
  ns.create->add_flag("--search-domains", ac.search_domains,
                      "add the match domains as search "
                      "domains");
  ns.create->add_flag("--disabled", ac.disabled, "create the nameserver group disabled");

  const std::vector<object_commands> object_kinds = {group, policy, route, ns};
  std::vector<const CLI::App*> commands = {mgmt,       admin,    account,      keys,     acc_create,
                                           key_create, key_list, key_revoke,   acc_list, users,
                                           user_list,  tokens,   token_create, peers,    peer_list};
  for (const auto& c : object_kinds)
    commands.insert(commands.end(), {c.parent, c.create, c.list, c.del});
  commands.push_back(acc_settings);
  parse_result r;

  // cobra's `help [command [subcommand...]]`.
  if (argc >= 2 && std::string(argv[1]) == "help") {
    CLI::App* asked = &app;
    for (int i = 2; i < argc; ++i) {
      try {
        asked = asked->get_subcommand(argv[i]);
      } catch (const CLI::Error&) {
        return failure("unknown help topic \"" + std::string(argv[i]) + "\"", *asked);
      }
    }
    r.out = asked->help();
    return r;
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    // The help of the deepest command given, as cobra prints it.
    const CLI::App* asked = &app;
    for (const CLI::App* c : commands)
      if (c->parsed())
        asked = c;
    r.out = asked->help();
    return r;
  } catch (const CLI::CallForVersion&) {
    r.out = app.version() + "\n";
    return r;
  } catch (const CLI::ParseError& e) {
    const CLI::App* deepest = &app;
    for (const CLI::App* c : commands)
      if (c->parsed())
        deepest = c;
    return failure(e.what(), *deepest);
  }

  if (admin->parsed()) {
    for (const CLI::App* c : need_account)
      if (c->parsed() && ac.account_id.empty())
        return failure("--account is required (an account id or domain; `admin account list` "
                       "shows them)",
                       *c);
    ac.config_path = o.config_path;
    ac.datadir_set = admin->get_option("--datadir")->count() > 0;
    if (app.get_option("--log-level")->count() > 0)
      ac.log_level = o.log_level;
    ac.action = acc_create->parsed()     ? "account-create"
                : acc_list->parsed()     ? "account-list"
                : acc_settings->parsed() ? "account-settings"
                : user_list->parsed()    ? "user-list"
                : token_create->parsed() ? "token-create"
                : peer_list->parsed()    ? "peer-list"
                : key_create->parsed()   ? "setup-key-create"
                : key_list->parsed()     ? "setup-key-list"
                                         : "setup-key-revoke";
    for (const auto& c : object_kinds)
      if (c.parent->parsed())
        ac.action = c.kind + (c.create->parsed() ? "-create"
                              : c.list->parsed() ? "-list"
                                                 : "-delete");
    r.admin = ac;
    return r;
  }
  if (!mgmt->parsed()) {
    // cobra: a root command that cannot run itself prints its help, and the exit status is 0.
    r.out = app.help();
    return r;
  }
  // NetBird's PreRunE validates the DNS domain before anything starts.
  if (!valid_dns_domain(o.dns_domain))
    return failure("invalid dns-domain: " + o.dns_domain, *mgmt);
  o.program = argc > 0 && argv[0] && *argv[0] ? argv[0] : "netbird-mgmt";
  o.port_set = mgmt->get_option("--port")->count() > 0;
  o.datadir_set = mgmt->get_option("--datadir")->count() > 0;
  o.idp_sign_key_refresh_enabled_set =
      mgmt->get_option("--idp-sign-key-refresh-enabled")->count() > 0;
  r.options = o;
  return r;
}

void apply_overrides(management_options& opts, config::management_config& cfg) {
  auto http = [&cfg]() -> config::http_config& {
    if (!cfg.http)
      cfg.http.emplace();
    return *cfg.http;
  };
  // ApplyCommandLineOverrides.
  if (!opts.letsencrypt_domain.empty())
    http().lets_encrypt_domain = opts.letsencrypt_domain;
  cfg.datadir = effective_datadir(opts.datadir, opts.datadir_set, cfg.datadir);
  if (!opts.cert_key.empty() && !opts.cert_file.empty()) {
    http().cert_file = opts.cert_file;
    http().cert_key = opts.cert_key;
  }
  // NetBird's port default: 443 when TLS is asked for (--letsencrypt-domain, or a certificate in
  // HttpConfig), unless --port was given.
  const bool tls = !opts.letsencrypt_domain.empty() ||
                   (cfg.http && !cfg.http->cert_file.empty() && !cfg.http->cert_key.empty());
  if (tls && !opts.port_set)
    opts.port = 443;
  // ApplyEmbeddedIdPConfig (it also turns user deletion from the IdP on).
  if (config::apply_embedded_idp(cfg, opts.port, opts.disable_single_account_mode))
    opts.user_delete_from_idp = true;
  // The management command's PreRunE, then RunE.
  if (opts.idp_sign_key_refresh_enabled_set)
    http().idp_sign_key_refresh_enabled = opts.idp_sign_key_refresh_enabled;
  if (opts.disable_single_account_mode)
    opts.single_account_mode_domain.clear();
}

} // namespace nbm::server
