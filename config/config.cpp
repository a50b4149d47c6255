#include "config/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

namespace nbm::config {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Reading context: where we are, for error messages and warnings.
struct reader {
  std::string origin;
  std::vector<std::string>* warnings;

  [[noreturn]] void fail(const std::string& path, const YAML::Node& n,
                         const std::string& what) const {
    std::ostringstream os;
    os << origin << ": field " << (path.empty() ? "<root>" : path);
    if (n.Mark().line >= 0)
      os << " (line " << n.Mark().line + 1 << ")";
    os << ": " << what;
    throw config_error(os.str());
  }

  static bool is_null(const YAML::Node& n) { return !n || n.IsNull(); }
  // A quoted scalar (JSON string); plain scalars are JSON numbers, booleans or YAML plain text.
  static bool quoted(const YAML::Node& n) { return n.Tag() == "!"; }
  static bool looks_numeric_or_bool(const std::string& s) {
    static const std::regex number(R"(-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?)");
    return s == "true" || s == "false" || std::regex_match(s, number);
  }

  void read(const YAML::Node& n, const std::string& path, std::string& out) const {
    if (is_null(n))
      return;
    if (!n.IsScalar())
      fail(path, n, "expected a string");
    if (!quoted(n) && looks_numeric_or_bool(n.Scalar()))
      fail(path, n, "expected a string, got " + n.Scalar());
    out = n.Scalar();
  }
  void read(const YAML::Node& n, const std::string& path, bool& out) const {
    if (is_null(n))
      return;
    const auto v = n.IsScalar() && !quoted(n) ? lower(n.Scalar()) : std::string();
    if (v == "true")
      out = true;
    else if (v == "false")
      out = false;
    else
      fail(path, n, "expected true or false");
  }
  template <class Int>
  void read_int(const YAML::Node& n, const std::string& path, Int& out) const {
    if (is_null(n))
      return;
    if (!n.IsScalar() || quoted(n))
      fail(path, n, "expected a number");
    try {
      std::size_t pos = 0;
      long long v = std::stoll(n.Scalar(), &pos);
      if (pos != n.Scalar().size())
        throw std::invalid_argument("trailing characters");
      if constexpr (std::is_unsigned_v<Int>)
        if (v < 0)
          throw std::out_of_range("negative");
      out = static_cast<Int>(v);
    } catch (const std::exception&) {
      fail(path, n, "expected a whole number, got '" + n.Scalar() + "'");
    }
  }
  void read(const YAML::Node& n, const std::string& path, int& out) const {
    read_int(n, path, out);
  }
  void read(const YAML::Node& n, const std::string& path, unsigned& out) const {
    read_int(n, path, out);
  }
  void read(const YAML::Node& n, const std::string& path, duration& out) const {
    if (is_null(n))
      return;
    if (!n.IsScalar())
      fail(path, n, "expected a duration such as \"1h\" or a number of nanoseconds");
    const auto& s = n.Scalar();
    try {
      if (!s.empty() && (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-') &&
          s.find_first_not_of("-0123456789") == std::string::npos)
        out = duration(std::stoll(s));
      else
        out = parse_go_duration(s);
    } catch (const std::exception&) {
      fail(path, n,
           "expected a duration such as \"1h\" or a number of nanoseconds, got '" + s + "'");
    }
  }
  template <class T>
  void read(const YAML::Node& n, const std::string& path, std::vector<T>& out) const {
    if (is_null(n))
      return;
    if (!n.IsSequence())
      fail(path, n, "expected a list");
    out.clear();
    for (std::size_t i = 0; i < n.size(); ++i) {
      T item{};
      read(n[i], path + "[" + std::to_string(i) + "]", item);
      out.push_back(std::move(item));
    }
  }
  template <class T>
  void read(const YAML::Node& n, const std::string& path, std::map<std::string, T>& out) const {
    if (is_null(n))
      return;
    if (!n.IsMap())
      fail(path, n, "expected an object");
    for (const auto& kv : n) {
      T v{};
      read(kv.second, path + "." + kv.first.Scalar(), v);
      out[kv.first.Scalar()] = std::move(v);
    }
  }
  template <class T>
  void read(const YAML::Node& n, const std::string& path, std::optional<T>& out) const {
    if (is_null(n))
      return;
    T v{};
    read(n, path, v);
    out = std::move(v);
  }

  // An object: each known key (case-insensitive) goes to its handler; others become warnings.
  using field = std::pair<const char*, std::function<void(const YAML::Node&, const std::string&)>>;
  void object(const YAML::Node& n, const std::string& path,
              const std::vector<field>& fields) const {
    if (is_null(n))
      return;
    if (!n.IsMap())
      fail(path, n, "expected an object");
    for (const auto& kv : n) {
      const std::string key = kv.first.Scalar();
      const std::string sub = path.empty() ? key : path + "." + key;
      bool known = false;
      for (const auto& [name, handler] : fields)
        if (lower(name) == lower(key)) {
          handler(kv.second, sub);
          known = true;
          break;
        }
      if (!known && warnings) {
        std::string w = "unknown field " + sub;
        if (kv.first.Mark().line >= 0)
          w += " (line " + std::to_string(kv.first.Mark().line + 1) + ")";
        warnings->push_back(w);
      }
    }
  }
  // Reads a field into `target` through the matching overload.
  template <class T>
  field f(const char* name, T& target) const {
    return {name,
            [this, &target](const YAML::Node& n, const std::string& p) { read(n, p, target); }};
  }

  void read(const YAML::Node& n, const std::string& path, host& h) const {
    object(n, path,
           {f("Proto", h.proto), f("URI", h.uri), f("Username", h.username),
            f("Password", h.password)});
  }
  void read(const YAML::Node& n, const std::string& path, turn_config& t) const {
    object(n, path,
           {f("TimeBasedCredentials", t.time_based_credentials),
            f("CredentialsTTL", t.credentials_ttl), f("Secret", t.secret), f("Turns", t.turns)});
  }
  void read(const YAML::Node& n, const std::string& path, relay_config& r) const {
    object(n, path,
           {f("Addresses", r.addresses), f("CredentialsTTL", r.credentials_ttl),
            f("Secret", r.secret)});
  }
  void read(const YAML::Node& n, const std::string& path, http_config& h) const {
    object(n, path,
           {f("LetsEncryptDomain", h.lets_encrypt_domain), f("CertFile", h.cert_file),
            f("CertKey", h.cert_key), f("AuthClientID", h.auth_client_id),
            f("AuthAudience", h.auth_audience), f("CLIAuthAudience", h.cli_auth_audience),
            f("AuthIssuer", h.auth_issuer), f("AuthUserIDClaim", h.auth_user_id_claim),
            f("AuthKeysLocation", h.auth_keys_location),
            f("OIDCConfigEndpoint", h.oidc_config_endpoint),
            f("IdpSignKeyRefreshEnabled", h.idp_sign_key_refresh_enabled),
            f("ExtraAuthAudience", h.extra_auth_audience),
            f("AuthCallbackURL", h.auth_callback_url)});
  }
  void read(const YAML::Node& n, const std::string& path, idp_client_config& c) const {
    object(n, path,
           {f("Issuer", c.issuer), f("TokenEndpoint", c.token_endpoint), f("ClientID", c.client_id),
            f("ClientSecret", c.client_secret), f("GrantType", c.grant_type)});
  }
  void read(const YAML::Node& n, const std::string& path, auth0_client_config& c) const {
    object(n, path,
           {f("Audience", c.audience), f("AuthIssuer", c.auth_issuer), f("ClientID", c.client_id),
            f("ClientSecret", c.client_secret), f("GrantType", c.grant_type)});
  }
  void read(const YAML::Node& n, const std::string& path, azure_client_config& c) const {
    object(n, path,
           {f("ClientID", c.client_id), f("ClientSecret", c.client_secret),
            f("ObjectID", c.object_id), f("GraphAPIEndpoint", c.graph_api_endpoint),
            f("TokenEndpoint", c.token_endpoint), f("GrantType", c.grant_type)});
  }
  void read(const YAML::Node& n, const std::string& path, keycloak_client_config& c) const {
    object(n, path,
           {f("ClientID", c.client_id), f("ClientSecret", c.client_secret),
            f("AdminEndpoint", c.admin_endpoint), f("TokenEndpoint", c.token_endpoint),
            f("GrantType", c.grant_type)});
  }
  void read(const YAML::Node& n, const std::string& path, zitadel_client_config& c) const {
    object(n, path,
           {f("ClientID", c.client_id), f("ClientSecret", c.client_secret),
            f("GrantType", c.grant_type), f("TokenEndpoint", c.token_endpoint),
            f("ManagementEndpoint", c.management_endpoint), f("PAT", c.pat)});
  }
  void read(const YAML::Node& n, const std::string& path, idp_manager_config& c) const {
    object(n, path,
           {f("ManagerType", c.manager_type), f("ClientConfig", c.client_config),
            f("ExtraConfig", c.extra_config), f("Auth0ClientCredentials", c.auth0),
            f("AzureClientCredentials", c.azure), f("KeycloakClientCredentials", c.keycloak),
            f("ZitadelClientCredentials", c.zitadel)});
  }
  void read(const YAML::Node& n, const std::string& path, provider_config& c) const {
    object(n, path,
           {f("ClientID", c.client_id), f("ClientSecret", c.client_secret), f("Domain", c.domain),
            f("Audience", c.audience), f("TokenEndpoint", c.token_endpoint),
            f("DeviceAuthEndpoint", c.device_auth_endpoint),
            f("AuthorizationEndpoint", c.authorization_endpoint), f("Scope", c.scope),
            f("UseIDToken", c.use_id_token), f("RedirectURLs", c.redirect_urls),
            f("DisablePromptLogin", c.disable_prompt_login), f("LoginFlag", c.login_flag)});
  }
  void read(const YAML::Node& n, const std::string& path, device_authorization_flow& d) const {
    object(n, path, {f("Provider", d.provider), f("ProviderConfig", d.config)});
  }
  void read(const YAML::Node& n, const std::string& path, pkce_authorization_flow& d) const {
    object(n, path, {f("ProviderConfig", d.config)});
  }
  void read(const YAML::Node& n, const std::string& path, store_config& s) const {
    object(n, path, {f("Engine", s.engine)});
  }
  void read(const YAML::Node& n, const std::string& path, reverse_proxy_config& r) const {
    object(n, path,
           {f("TrustedHTTPProxies", r.trusted_http_proxies),
            f("TrustedHTTPProxiesCount", r.trusted_http_proxies_count),
            f("TrustedPeers", r.trusted_peers),
            f("AccessLogRetentionDays", r.access_log_retention_days),
            f("AccessLogCleanupIntervalHours", r.access_log_cleanup_interval_hours)});
  }
  void read(const YAML::Node& n, const std::string& path, embedded_idp_config& e) const {
    object(n, path,
           {f("Enabled", e.enabled),
            f("Issuer", e.issuer),
            f("LocalAddress", e.local_address),
            {"Storage",
             [&](const YAML::Node& s, const std::string& p) {
               object(s, p,
                      {f("Type", e.storage_type),
                       {"Config", [&](const YAML::Node& c, const std::string& cp) {
                          object(c, cp, {f("File", e.storage_file), f("DSN", e.storage_dsn)});
                        }}});
             }},
            f("DashboardRedirectURIs", e.dashboard_redirect_uris),
            f("CLIRedirectURIs", e.cli_redirect_uris),
            {"Owner",
             [&](const YAML::Node& o, const std::string& p) {
               object(o, p,
                      {f("Email", e.owner_email), f("Hash", e.owner_hash),
                       f("Username", e.owner_username)});
             }},
            f("SignKeyRefreshEnabled", e.sign_key_refresh_enabled),
            f("LocalAuthDisabled", e.local_auth_disabled),
            f("MfaSessionMaxLifetime", e.mfa_session_max_lifetime),
            f("MfaSessionIdleTimeout", e.mfa_session_idle_timeout),
            f("MfaSessionRememberMe", e.mfa_session_remember_me),
            f("SessionCookieEncryptionKey", e.session_cookie_encryption_key),
            f("DashboardPostLogoutRedirectURIs", e.dashboard_post_logout_redirect_uris),
            {"StaticConnectors",
             [&](const YAML::Node& c, const std::string&) {
               YAML::Emitter em;
               em << YAML::DoubleQuoted << YAML::Flow << c;
               e.static_connectors_json = em.c_str();
             }},
            f("GrantTypes", e.grant_types)});
  }

  void read(const YAML::Node& n, management_config& c) const {
    object(n, "",
           {f("Stuns", c.stuns),
            f("TURNConfig", c.turn),
            f("Relay", c.relay),
            f("Signal", c.signal),
            f("Datadir", c.datadir),
            f("DataStoreEncryptionKey", c.data_store_encryption_key),
            f("HttpConfig", c.http),
            f("IdpManagerConfig", c.idp_manager),
            f("DeviceAuthorizationFlow", c.device_auth_flow),
            f("PKCEAuthorizationFlow", c.pkce_auth_flow),
            f("StoreConfig", c.store),
            f("ReverseProxy", c.reverse_proxy),
            {"AgentNetwork",
             [&](const YAML::Node& a, const std::string& p) {
               object(a, p, {f("PricingDefaultsFile", c.agent_network_pricing_defaults_file)});
             }},
            f("DisableDefaultPolicy", c.disable_default_policy),
            f("EmbeddedIdP", c.embedded_idp),
            f("HighestSupportedSyncMessageVersion", c.highest_supported_sync_message_version),
            f("PerAccountHighestSupportedSyncMessageVersion",
              c.per_account_highest_supported_sync_message_version)});
  }
};

std::string substitute_env(const std::string& text, const env_getter& env) {
  static const std::regex placeholder(R"(\{\{\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\})");
  std::string out;
  auto begin = std::sregex_iterator(text.begin(), text.end(), placeholder);
  std::size_t last = 0;
  for (auto it = begin; it != std::sregex_iterator(); ++it) {
    out += text.substr(last, static_cast<std::size_t>(it->position()) - last);
    out += env((*it)[1].str()).value_or("");
    last = static_cast<std::size_t>(it->position() + it->length());
  }
  out += text.substr(last);
  return out;
}

void apply_defaults(management_config& c) {
  constexpr auto twelve_hours = std::chrono::hours(12);
  if (c.turn && c.turn->credentials_ttl <= duration::zero())
    c.turn->credentials_ttl = twelve_hours;
  if (c.relay && c.relay->credentials_ttl <= duration::zero())
    c.relay->credentials_ttl = twelve_hours;
  if (c.device_auth_flow && c.device_auth_flow->config.scope.empty())
    c.device_auth_flow->config.scope = "openid";
  if (c.reverse_proxy.access_log_retention_days <= 0)
    c.reverse_proxy.access_log_retention_days = 7;
  if (c.reverse_proxy.access_log_cleanup_interval_hours <= 0)
    c.reverse_proxy.access_log_cleanup_interval_hours = 24;
}

} // namespace

env_getter process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v)
      return std::nullopt;
    return std::string(v);
  };
}

duration parse_go_duration(const std::string& text) {
  static const std::vector<std::pair<std::string, double>> units = {
      {"ns", 1.0}, {"us", 1e3}, {"\xC2\xB5s", 1e3}, {"ms", 1e6},
      {"s", 1e9},  {"m", 60e9}, {"h", 3600e9}};
  if (text.empty())
    throw std::invalid_argument("empty duration");
  std::size_t i = 0;
  bool negative = false;
  if (text[0] == '-' || text[0] == '+') {
    negative = text[0] == '-';
    ++i;
  }
  if (text.substr(i) == "0")
    return duration(0);
  double total = 0;
  bool any = false;
  while (i < text.size()) {
    std::size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
      ++i;
    if (start == i)
      throw std::invalid_argument("bad duration: " + text);
    double value = std::stod(text.substr(start, i - start));
    std::size_t ustart = i;
    while (i < text.size() && !std::isdigit(static_cast<unsigned char>(text[i])) && text[i] != '.')
      ++i;
    const std::string unit = text.substr(ustart, i - ustart);
    auto it =
        std::find_if(units.begin(), units.end(), [&](const auto& u) { return u.first == unit; });
    if (it == units.end())
      throw std::invalid_argument("bad duration unit '" + unit + "' in " + text);
    total += value * it->second;
    any = true;
  }
  if (!any)
    throw std::invalid_argument("bad duration: " + text);
  return duration(static_cast<long long>(negative ? -total : total));
}

management_config load_text(const std::string& text, const std::string& origin,
                            const env_getter& env) {
  YAML::Node root;
  try {
    root = YAML::Load(substitute_env(text, env));
  } catch (const YAML::Exception& e) {
    throw config_error(origin + ": malformed (line " + std::to_string(e.mark.line + 1) +
                       ", column " + std::to_string(e.mark.column + 1) + "): " + e.msg);
  }
  management_config c;
  reader r{origin, &c.warnings};
  if (!root.IsNull() && !root.IsMap())
    throw config_error(origin + ": expected an object at the top level");
  r.read(root, c);
  apply_defaults(c);
  return c;
}

management_config load_file(const std::string& path, const env_getter& env) {
  std::ifstream in(path);
  if (!in)
    throw config_error("failed reading provided config file: " + path + ": " +
                       (std::filesystem::exists(path) ? "permission denied" : "no such file"));
  std::stringstream ss;
  ss << in.rdbuf();
  return load_text(ss.str(), path, env);
}

store_choice resolve_store(const management_config& cfg, const env_getter& env) {
  std::string engine = lower(cfg.store.engine);
  if (engine.empty()) {
    if (auto e = env("NETBIRD_STORE_ENGINE")) {
      engine = lower(*e);
      if (engine != "sqlite" && engine != "postgres" && engine != "mysql")
        engine = "sqlite"; // NetBird: an unknown value means sqlite
    } else {
      engine = "sqlite";
    }
  }
  if (engine == "mysql")
    throw config_error(
        "store engine mysql is not supported by netbird-mgmt (use sqlite or postgres)");
  if (engine == "sqlite") {
    std::filesystem::path file = "store.db";
    if (auto f = env("NB_STORE_ENGINE_SQLITE_FILE"); f && !f->empty())
      file = *f;
    if (file.is_relative())
      file = std::filesystem::path(cfg.datadir) / file;
    return {"sqlite", file.string()};
  }
  if (engine == "postgres") {
    auto dsn = env("NB_STORE_ENGINE_POSTGRES_DSN");
    if (!dsn || dsn->empty())
      dsn = env("NETBIRD_STORE_ENGINE_POSTGRES_DSN");
    if (!dsn || dsn->empty())
      throw config_error("store engine postgres needs a DSN: set NB_STORE_ENGINE_POSTGRES_DSN "
                         "(or NETBIRD_STORE_ENGINE_POSTGRES_DSN)");
    return {"postgres", *dsn};
  }
  throw config_error("unsupported store engine '" + cfg.store.engine +
                     "' in StoreConfig.Engine (use sqlite or postgres)");
}

} // namespace nbm::config
