#include "config/config.hpp"

#include <nlohmann/json.hpp>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>
#include <type_traits>

namespace nbm::config {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// 1-based line of `pos` in `text`.
std::size_t line_of(const std::string& text, std::size_t pos) {
  return 1 + static_cast<std::size_t>(
                 std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(pos), '\n'));
}

// --- what a YAML node holds, in JSON terms --------------------------------------------------

// JSON's number grammar (what Go's decoder accepts as a number).
bool is_json_number(const std::string& s) {
  static const std::regex number(R"(-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?)");
  return std::regex_match(s, number);
}
bool is_json_integer(const std::string& s) {
  static const std::regex integer(R"(-?(0|[1-9][0-9]*))");
  return std::regex_match(s, integer);
}
// YAML 1.2 core-schema numbers, broader than JSON's (so `Secret: 0x1F` is not taken for text).
bool is_yaml_number(const std::string& s) {
  static const std::regex number(
      R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|0o[0-7]+|0x[0-9a-fA-F]+|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN))");
  return std::regex_match(s, number);
}
std::optional<bool> yaml_bool(const std::string& s) {
  if (s == "true" || s == "True" || s == "TRUE")
    return true;
  if (s == "false" || s == "False" || s == "FALSE")
    return false;
  return std::nullopt;
}

enum class kind { null, string, number, boolean, list, object };

bool is_null(const YAML::Node& n) {
  return !n || !n.IsDefined() || n.IsNull();
}

// A quoted scalar is JSON text; a plain one is a number, a boolean or (YAML only) bare text.
kind kind_of(const YAML::Node& n) {
  if (is_null(n))
    return kind::null;
  if (n.IsSequence())
    return kind::list;
  if (n.IsMap())
    return kind::object;
  if (n.Tag() != "?")
    return kind::string;
  if (yaml_bool(n.Scalar()))
    return kind::boolean;
  if (is_yaml_number(n.Scalar()))
    return kind::number;
  return kind::string;
}

std::string describe(const YAML::Node& n) {
  switch (kind_of(n)) {
  case kind::null:
    return "null";
  case kind::list:
    return "a list";
  case kind::object:
    return "an object";
  case kind::boolean:
    return n.Scalar();
  case kind::number:
    return "the number " + n.Scalar();
  case kind::string:
    break;
  }
  return "the string \"" + n.Scalar() + "\"";
}

void json_escape(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      if (c < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      } else {
        out += static_cast<char>(c);
      }
    }
  }
  out += '"';
}

// A YAML node as JSON text (for values NetBird keeps as arbitrary JSON).
void to_json(std::string& out, const YAML::Node& n) {
  switch (kind_of(n)) {
  case kind::null:
    out += "null";
    return;
  case kind::boolean:
    out += *yaml_bool(n.Scalar()) ? "true" : "false";
    return;
  case kind::number:
    if (is_json_number(n.Scalar()))
      out += n.Scalar();
    else
      json_escape(out, n.Scalar());
    return;
  case kind::string:
    json_escape(out, n.Scalar());
    return;
  case kind::list: {
    out += '[';
    bool first = true;
    for (const auto& item : n) {
      if (!first)
        out += ',';
      first = false;
      to_json(out, item);
    }
    out += ']';
    return;
  }
  case kind::object: {
    out += '{';
    bool first = true;
    for (const auto& kv : n) {
      if (!first)
        out += ',';
      first = false;
      json_escape(out, kv.first.Scalar());
      out += ':';
      to_json(out, kv.second);
    }
    out += '}';
    return;
  }
  }
}

// --- the reader ------------------------------------------------------------------------------

struct reader;
using handler = std::function<void(const reader&, const YAML::Node&, const std::string&)>;
struct field {
  const char* name;
  handler read;
};

struct reader {
  std::string origin;
  std::vector<std::string>* warnings;

  [[noreturn]] void fail(const std::string& path, const YAML::Node& n,
                         const std::string& what) const {
    std::ostringstream os;
    os << origin << ": " << (path.empty() ? "<top level>" : path);
    if (n && n.Mark().line >= 0)
      os << " (line " << n.Mark().line + 1 << ")";
    os << ": " << what;
    throw config_error(os.str());
  }
  [[noreturn]] void wrong_type(const std::string& path, const YAML::Node& n,
                               const std::string& expected) const {
    fail(path, n, "expected " + expected + ", got " + describe(n));
  }

  // string: JSON text; null leaves it as it is.
  void read(const YAML::Node& n, const std::string& path, std::string& out) const {
    const auto k = kind_of(n);
    if (k == kind::null)
      return;
    if (k != kind::string)
      wrong_type(path, n, "a string");
    out = n.Scalar();
  }

  void read(const YAML::Node& n, const std::string& path, bool& out) const {
    const auto k = kind_of(n);
    if (k == kind::null)
      return;
    if (k != kind::boolean)
      wrong_type(path, n, "true or false");
    out = *yaml_bool(n.Scalar());
  }

  // Integers as Go decodes them: a JSON integer literal within the type's range.
  template <class Int>
  void read_integer(const YAML::Node& n, const std::string& path, Int& out, long long lo,
                    unsigned long long hi, const char* type_name) const {
    const auto k = kind_of(n);
    if (k == kind::null)
      return;
    if (k != kind::number || !is_json_integer(n.Scalar()))
      wrong_type(path, n, std::string("a whole number (") + type_name + ")");
    const auto& s = n.Scalar();
    errno = 0;
    if (s[0] == '-') {
      const long long v = std::strtoll(s.c_str(), nullptr, 10);
      if (errno == ERANGE || v < lo)
        fail(path, n, s + " is out of range for " + type_name);
      out = static_cast<Int>(v);
    } else {
      const unsigned long long v = std::strtoull(s.c_str(), nullptr, 10);
      if (errno == ERANGE || v > hi)
        fail(path, n, s + " is out of range for " + type_name);
      out = static_cast<Int>(v);
    }
  }
  void read(const YAML::Node& n, const std::string& path, int& out) const {
    read_integer(n, path, out, std::numeric_limits<int>::min(),
                 static_cast<unsigned long long>(std::numeric_limits<int>::max()), "int");
  }
  void read(const YAML::Node& n, const std::string& path, std::uint64_t& out) const {
    read_integer(n, path, out, 0, std::numeric_limits<std::uint64_t>::max(), "uint");
  }

  // util.Duration: a number of nanoseconds or a Go duration string; null is "invalid duration".
  void read(const YAML::Node& n, const std::string& path, duration& out) const {
    const auto k = kind_of(n);
    if (k == kind::number && is_json_number(n.Scalar())) {
      const double v = std::strtod(n.Scalar().c_str(), nullptr);
      if (!std::isfinite(v) || v >= 9.223372036854775807e18 || v < -9.223372036854775808e18)
        fail(path, n, "duration " + n.Scalar() + " ns is out of range");
      out = duration(static_cast<long long>(v));
      return;
    }
    if (k != kind::string && k != kind::number)
      fail(path, n,
           "invalid duration: expected a duration such as \"1h\" or a number of nanoseconds, got " +
               describe(n));
    try {
      out = parse_go_duration(n.Scalar());
    } catch (const std::invalid_argument& e) {
      fail(path, n, e.what());
    }
  }

  template <class T>
  void read(const YAML::Node& n, const std::string& path, std::vector<T>& out) const {
    const auto k = kind_of(n);
    if (k == kind::null) { // null sets a Go slice to nil
      out.clear();
      return;
    }
    if (k != kind::list)
      wrong_type(path, n, "a list");
    out.clear();
    for (std::size_t i = 0; i < n.size(); ++i) {
      const auto item = n[i];
      const auto item_path = path + "[" + std::to_string(i) + "]";
      if constexpr (!std::is_same_v<T, std::string>)
        if (is_null(item))
          fail(item_path, item, "null is not allowed in this list");
      T value{};
      read(item, item_path, value);
      out.push_back(std::move(value));
    }
  }

  // A Go map: null empties it; an object adds its entries (Go merges into an existing map).
  template <class T>
  void read(const YAML::Node& n, const std::string& path, std::map<std::string, T>& out) const {
    const auto k = kind_of(n);
    if (k == kind::null) {
      out.clear();
      return;
    }
    if (k != kind::object)
      wrong_type(path, n, "an object");
    for (const auto& kv : n) {
      T value{};
      read(kv.second, path + "." + kv.first.Scalar(), value);
      out[kv.first.Scalar()] = std::move(value);
    }
  }

  // A Go pointer to a struct: null sets it to nil; an object fills it (allocated when nil).
  template <class T>
  void read(const YAML::Node& n, const std::string& path, std::optional<T>& out) const {
    if (is_null(n)) {
      out.reset();
      return;
    }
    if (!out)
      out.emplace();
    read(n, path, *out);
  }

  // An object: each key goes to the field whose name matches it case-insensitively (an exact
  // match first, as Go); others become warnings. Paths use NetBird's field names.
  void object(const YAML::Node& n, const std::string& path,
              const std::vector<field>& fields) const {
    const auto k = kind_of(n);
    if (k == kind::null) // null into a Go struct value: no effect
      return;
    if (k != kind::object)
      wrong_type(path, n, "an object");
    for (const auto& kv : n) {
      const std::string key = kv.first.Scalar();
      const field* match = nullptr;
      for (const auto& f : fields)
        if (key == f.name) {
          match = &f;
          break;
        }
      if (!match) {
        const auto folded = lower(key);
        for (const auto& f : fields)
          if (folded == lower(f.name)) {
            match = &f;
            break;
          }
      }
      if (match) {
        match->read(*this, kv.second, path.empty() ? match->name : path + "." + match->name);
      } else if (warnings) {
        std::string w = "unknown field " + (path.empty() ? key : path + "." + key);
        if (kv.first.Mark().line >= 0)
          w += " (line " + std::to_string(kv.first.Mark().line + 1) + ")";
        warnings->push_back(std::move(w));
      }
    }
  }

  // --- NetBird's types ---

  void read(const YAML::Node& n, const std::string& path, host& v) const {
    object(n, path,
           {f("Proto", v.proto), f("URI", v.uri), f("Username", v.username),
            f("Password", v.password)});
  }
  void read(const YAML::Node& n, const std::string& path, turn_config& v) const {
    object(n, path,
           {f("TimeBasedCredentials", v.time_based_credentials),
            f("CredentialsTTL", v.credentials_ttl), f("Secret", v.secret), f("Turns", v.turns)});
  }
  void read(const YAML::Node& n, const std::string& path, relay_config& v) const {
    object(n, path,
           {f("Addresses", v.addresses), f("CredentialsTTL", v.credentials_ttl),
            f("Secret", v.secret)});
  }
  void read(const YAML::Node& n, const std::string& path, http_config& v) const {
    object(n, path,
           {f("LetsEncryptDomain", v.lets_encrypt_domain), f("CertFile", v.cert_file),
            f("CertKey", v.cert_key), f("AuthClientID", v.auth_client_id),
            f("AuthAudience", v.auth_audience), f("CLIAuthAudience", v.cli_auth_audience),
            f("AuthIssuer", v.auth_issuer), f("AuthUserIDClaim", v.auth_user_id_claim),
            f("AuthKeysLocation", v.auth_keys_location),
            f("OIDCConfigEndpoint", v.oidc_config_endpoint),
            f("IdpSignKeyRefreshEnabled", v.idp_sign_key_refresh_enabled),
            f("ExtraAuthAudience", v.extra_auth_audience),
            f("AuthCallbackURL", v.auth_callback_url)});
  }
  void read(const YAML::Node& n, const std::string& path, idp_client_config& v) const {
    object(n, path,
           {f("Issuer", v.issuer), f("TokenEndpoint", v.token_endpoint), f("ClientID", v.client_id),
            f("ClientSecret", v.client_secret), f("GrantType", v.grant_type)});
  }
  void read(const YAML::Node& n, const std::string& path, auth0_client_config& v) const {
    object(n, path,
           {f("Audience", v.audience), f("AuthIssuer", v.auth_issuer), f("ClientID", v.client_id),
            f("ClientSecret", v.client_secret), f("GrantType", v.grant_type)});
  }
  void read(const YAML::Node& n, const std::string& path, azure_client_config& v) const {
    object(n, path,
           {f("ClientID", v.client_id), f("ClientSecret", v.client_secret),
            f("ObjectID", v.object_id), f("GraphAPIEndpoint", v.graph_api_endpoint),
            f("TokenEndpoint", v.token_endpoint), f("GrantType", v.grant_type)});
  }
  void read(const YAML::Node& n, const std::string& path, keycloak_client_config& v) const {
    object(n, path,
           {f("ClientID", v.client_id), f("ClientSecret", v.client_secret),
            f("AdminEndpoint", v.admin_endpoint), f("TokenEndpoint", v.token_endpoint),
            f("GrantType", v.grant_type)});
  }
  void read(const YAML::Node& n, const std::string& path, zitadel_client_config& v) const {
    object(n, path,
           {f("ClientID", v.client_id), f("ClientSecret", v.client_secret),
            f("GrantType", v.grant_type), f("TokenEndpoint", v.token_endpoint),
            f("ManagementEndpoint", v.management_endpoint), f("PAT", v.pat)});
  }
  void read(const YAML::Node& n, const std::string& path, idp_manager_config& v) const {
    object(n, path,
           {f("ManagerType", v.manager_type), f("ClientConfig", v.client_config),
            f("ExtraConfig", v.extra_config), f("Auth0ClientCredentials", v.auth0),
            f("AzureClientCredentials", v.azure), f("KeycloakClientCredentials", v.keycloak),
            f("ZitadelClientCredentials", v.zitadel)});
  }
  void read(const YAML::Node& n, const std::string& path, provider_config& v) const {
    object(n, path,
           {f("ClientID", v.client_id),
            f("ClientSecret", v.client_secret),
            f("Domain", v.domain),
            f("Audience", v.audience),
            f("TokenEndpoint", v.token_endpoint),
            f("DeviceAuthEndpoint", v.device_auth_endpoint),
            f("AuthorizationEndpoint", v.authorization_endpoint),
            f("Scope", v.scope),
            f("UseIDToken", v.use_id_token),
            f("RedirectURLs", v.redirect_urls),
            f("DisablePromptLogin", v.disable_prompt_login),
            {"LoginFlag", [&v](const reader& r, const YAML::Node& node, const std::string& p) {
               r.read_integer(node, p, v.login_flag, 0, 255, "uint8"); // common.LoginFlag
             }}});
  }
  void read(const YAML::Node& n, const std::string& path, device_authorization_flow& v) const {
    object(n, path, {f("Provider", v.provider), f("ProviderConfig", v.config)});
  }
  void read(const YAML::Node& n, const std::string& path, pkce_authorization_flow& v) const {
    object(n, path, {f("ProviderConfig", v.config)});
  }
  void read(const YAML::Node& n, const std::string& path, store_config& v) const {
    object(n, path, {f("Engine", v.engine)});
  }
  // []netip.Prefix: strings Go's ParsePrefix accepts ("" is the zero prefix).
  void read_prefixes(const YAML::Node& n, const std::string& path,
                     std::vector<std::string>& out) const {
    read(n, path, out);
    for (std::size_t i = 0; i < out.size(); ++i)
      if (!out[i].empty() && !valid_ip_prefix(out[i]))
        fail(path + "[" + std::to_string(i) + "]", n[i],
             "invalid IP prefix \"" + out[i] + "\" (expected e.g. 10.0.0.0/8 or 2001:db8::/32)");
  }
  void read(const YAML::Node& n, const std::string& path, reverse_proxy_config& v) const {
    object(n, path,
           {{"TrustedHTTPProxies",
             [&v](const reader& r, const YAML::Node& node, const std::string& p) {
               r.read_prefixes(node, p, v.trusted_http_proxies);
             }},
            f("TrustedHTTPProxiesCount", v.trusted_http_proxies_count),
            {"TrustedPeers",
             [&v](const reader& r, const YAML::Node& node, const std::string& p) {
               r.read_prefixes(node, p, v.trusted_peers);
             }},
            f("AccessLogRetentionDays", v.access_log_retention_days),
            f("AccessLogCleanupIntervalHours", v.access_log_cleanup_interval_hours)});
  }
  void read(const YAML::Node& n, const std::string& path, agent_network_config& v) const {
    object(n, path, {f("PricingDefaultsFile", v.pricing_defaults_file)});
  }
  void read(const YAML::Node& n, const std::string& path, embedded_storage_config& v) const {
    object(n, path,
           {f("Type", v.type),
            {"Config", [&v](const reader& r, const YAML::Node& node, const std::string& p) {
               r.object(node, p, {f("File", v.file), f("DSN", v.dsn)});
             }}});
  }
  void read(const YAML::Node& n, const std::string& path, embedded_owner_config& v) const {
    object(n, path, {f("Email", v.email), f("Hash", v.hash), f("Username", v.username)});
  }
  void read(const YAML::Node& n, const std::string& path, dex_connector& v) const {
    object(n, path,
           {f("type", v.type),
            f("name", v.name),
            f("id", v.id),
            {"config", [&v](const reader& r, const YAML::Node& node, const std::string& p) {
               const auto k = kind_of(node);
               if (k == kind::null) {
                 v.config_json = "null";
                 return;
               }
               if (k != kind::object)
                 r.wrong_type(p, node, "an object");
               v.config_json.clear();
               to_json(v.config_json, node);
             }}});
  }
  void read(const YAML::Node& n, const std::string& path, embedded_idp_config& v) const {
    object(n, path,
           {f("Enabled", v.enabled), f("Issuer", v.issuer), f("LocalAddress", v.local_address),
            f("Storage", v.storage), f("DashboardRedirectURIs", v.dashboard_redirect_uris),
            f("CLIRedirectURIs", v.cli_redirect_uris), f("Owner", v.owner),
            f("SignKeyRefreshEnabled", v.sign_key_refresh_enabled),
            f("LocalAuthDisabled", v.local_auth_disabled),
            f("MfaSessionMaxLifetime", v.mfa_session_max_lifetime),
            f("MfaSessionIdleTimeout", v.mfa_session_idle_timeout),
            f("MfaSessionRememberMe", v.mfa_session_remember_me),
            f("SessionCookieEncryptionKey", v.session_cookie_encryption_key),
            f("DashboardPostLogoutRedirectURIs", v.dashboard_post_logout_redirect_uris),
            f("StaticConnectors", v.static_connectors), f("GrantTypes", v.grant_types)});
  }

  // grpc.ValidateSyncMessageVersion: 0 (legacy maps) .. 1 (component network map).
  void read_sync_version(const YAML::Node& n, const std::string& path, int& out,
                         const std::string& account) const {
    read(n, path, out);
    if (out < 0 || out > 1)
      fail(path, n,
           (account.empty() ? std::string()
                            : "unrecognized sync message version for account " + account + ": ") +
               "sync message version must be between 0 and 1, got " + std::to_string(out));
  }

  void read(const YAML::Node& n, management_config& v) const {
    object(n, "",
           {f("Stuns", v.stuns),
            f("TURNConfig", v.turn),
            f("Relay", v.relay),
            f("Signal", v.signal),
            f("Datadir", v.datadir),
            f("DataStoreEncryptionKey", v.data_store_encryption_key),
            f("HttpConfig", v.http),
            f("IdpManagerConfig", v.idp_manager),
            f("DeviceAuthorizationFlow", v.device_auth_flow),
            f("PKCEAuthorizationFlow", v.pkce_auth_flow),
            f("StoreConfig", v.store),
            f("ReverseProxy", v.reverse_proxy),
            f("AgentNetwork", v.agent_network),
            f("DisableDefaultPolicy", v.disable_default_policy),
            f("EmbeddedIdP", v.embedded_idp),
            f("InspectorAddress", v.inspector_address), // netbird-mgmt's own
            {"HighestSupportedSyncMessageVersion",
             [&v](const reader& r, const YAML::Node& node, const std::string& p) {
               if (is_null(node)) { // *int: null is nil
                 v.highest_supported_sync_message_version.reset();
                 return;
               }
               int version = 0;
               r.read_sync_version(node, p, version, "");
               v.highest_supported_sync_message_version = version;
             }},
            {"PerAccountHighestSupportedSyncMessageVersion",
             [&v](const reader& r, const YAML::Node& node, const std::string& p) {
               auto& out = v.per_account_highest_supported_sync_message_version;
               const auto k = kind_of(node);
               if (k == kind::null) {
                 out.clear();
                 return;
               }
               if (k != kind::object)
                 r.wrong_type(p, node, "an object");
               for (const auto& kv : node) {
                 const auto account = kv.first.Scalar();
                 int version = 0;
                 r.read_sync_version(kv.second, p + "." + account, version, account);
                 out[account] = version;
               }
             }}});
  }

  // A field read into `target` through the matching overload of read().
  template <class T>
  static field f(const char* name, T& target) {
    return {name, [&target](const reader& r, const YAML::Node& n, const std::string& p) {
              r.read(n, p, target);
            }};
  }
};

void apply_defaults(management_config& c) {
  // NetBird's token manager: a TTL that is not set or not positive means 12 hours.
  constexpr auto twelve_hours = std::chrono::hours(12);
  if (c.turn && c.turn->credentials_ttl <= duration::zero())
    c.turn->credentials_ttl = twelve_hours;
  if (c.relay && c.relay->credentials_ttl <= duration::zero())
    c.relay->credentials_ttl = twelve_hours;
  // The access-log cleanup: retention 0 -> 7 days (negative: keep forever), interval <= 0 -> 24h.
  if (c.reverse_proxy.access_log_retention_days == 0)
    c.reverse_proxy.access_log_retention_days = 7;
  if (c.reverse_proxy.access_log_cleanup_interval_hours <= 0)
    c.reverse_proxy.access_log_cleanup_interval_hours = 24;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool is_identifier(const std::string& s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0])))
    return false;
  return std::all_of(s.begin(), s.end(),
                     [](unsigned char c) { return std::isalnum(c) || c == '_'; });
}

// The host of a URL as Go's url.Parse reports it ("" without a scheme).
std::string url_host(const std::string& url) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos)
    return {};
  auto rest = url.substr(scheme + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (const auto at = rest.rfind('@'); at != std::string::npos)
    rest = rest.substr(at + 1);
  return rest;
}

// Counts the documents of a YAML stream (up to two) and notes where the second begins.
struct document_counter : YAML::EventHandler {
  int documents = 0;
  YAML::Mark second;
  void OnDocumentStart(const YAML::Mark& mark) override {
    if (documents++ == 1)
      second = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// The first document of `text` and how many there are (0, 1, or 2 for "more than one").
// yaml-cpp 0.7's LoadAll never returns on a flow indicator after the last document ("{...},", or
// "," alone): the parser yields an empty document there without consuming the token, and LoadAll
// asks for the next one forever, allocating as it goes (found by tests/fuzz/fuzz_config). So the
// parser is asked for at most two documents here, and the first is read with Load.
struct first_document {
  YAML::Node root;
  int documents = 0;
  YAML::Mark second;
};
first_document read_first_document(const std::string& text) {
  first_document out;
  std::istringstream in(text);
  YAML::Parser parser(in);
  document_counter counter;
  while (counter.documents < 2 && parser.HandleNextDocument(counter)) {
  }
  out.documents = counter.documents;
  out.second = counter.second;
  if (out.documents > 0)
    out.root = YAML::Load(text);
  return out;
}

// A file that opens with '{' is JSON, which NetBird reads with Go's encoding/json: a syntax error
// yaml-cpp finds is told in JSON's words with line and column when it is not JSON either (what
// YAML tolerates beyond JSON, a comment after the object say, still loads as before).
// A SAX pass (no document built, no recursion) that only notes the first error.
struct json_syntax_check : nlohmann::json_sax<nlohmann::json> {
  std::size_t byte = 0;
  std::string what;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    byte = position;
    what = ex.what();
    return false;
  }
};

void check_json_syntax(const std::string& text, const std::string& origin) {
  json_syntax_check check;
  if (nlohmann::json::sax_parse(text, &check))
    return;
  // nlohmann's text: "[json.exception.parse_error.101] parse error at line L, column C: <why>;
  // last read: '<token>'". The why stays; the token (file content, maybe a secret) does not.
  std::string why = check.what;
  if (auto at = why.find("column"); at != std::string::npos)
    if (auto colon = why.find(": ", at); colon != std::string::npos)
      why = why.substr(colon + 2);
  // nlohmann stands at the end of the offending token: the place given is its start.
  std::size_t token = 1;
  if (auto last = why.find("; last read: '"); last != std::string::npos) {
    const auto read = why.substr(last + 14, why.size() - last - 15);
    if (read.find("<U+") == std::string::npos && !read.empty())
      token = read.size();
    why.resize(last);
  }
  if (why.find("; expected end of input") != std::string::npos)
    why = "unexpected content after the top-level object";
  std::size_t pos = std::min(check.byte > 0 ? check.byte - 1 : 0, text.size());
  pos = pos + 1 >= token ? pos + 1 - token : 0;
  if (token == 1 && pos < text.size()) { // an unexpected string, number or word: back to its start
    const auto word = [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '+' || c == '-';
    };
    if (text[pos] == '"') {
      for (std::size_t i = pos; i-- > 0;)
        if (text[i] == '"' && (i == 0 || text[i - 1] != '\\')) {
          pos = i;
          break;
        }
    } else {
      while (pos > 0 && word(text[pos]) && word(text[pos - 1]))
        --pos;
    }
  }
  const auto nl = pos == 0 ? std::string::npos : text.rfind('\n', pos - 1);
  const std::size_t column = nl == std::string::npos ? pos + 1 : pos - nl;
  throw config_error(origin + ": invalid JSON at line " + std::to_string(line_of(text, pos)) +
                     ", column " + std::to_string(column) + ": " + why);
}

// YAML indents with spaces only: a line that starts with a tab is refused with its place (yaml-cpp
// would report something else, or read the line as text).
void check_yaml_tabs(const std::string& text, const std::string& origin) {
  std::size_t line = 1;
  for (std::size_t i = 0; i < text.size(); ++line) {
    const auto end = std::min(text.find('\n', i), text.size());
    if (text[i] == '\t' && text.find_first_not_of(" \t\r", i) < end)
      throw config_error(origin + ": a tab at line " + std::to_string(line) +
                         ", column 1: YAML indents with spaces only (replace the tab with spaces)");
    i = end + 1;
  }
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

std::string substitute_env(const std::string& text, const env_getter& env,
                           std::vector<std::string>* warnings, const std::string& origin) {
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  while (true) {
    const auto open = text.find("{{", pos);
    if (open == std::string::npos) {
      out.append(text, pos, std::string::npos);
      return out;
    }
    out.append(text, pos, open - pos);
    const auto close = text.find("}}", open + 2);
    const auto line = std::to_string(line_of(text, open));
    if (close == std::string::npos)
      throw config_error(origin + ": template (line " + line + "): unclosed action \"{{\"");
    std::string inner = text.substr(open + 2, close - open - 2);
    const std::string action = "{{" + inner + "}}";
    // Trim markers: "{{- " removes the white space before, " -}}" the white space after.
    bool trim_left = false, trim_right = false;
    if (inner.size() >= 2 && inner[0] == '-' && is_space(inner[1])) {
      trim_left = true;
      inner.erase(0, 2);
    }
    if (inner.size() >= 2 && inner.back() == '-' && is_space(inner[inner.size() - 2])) {
      trim_right = true;
      inner.pop_back();
    }
    if (trim_left)
      while (!out.empty() && is_space(out.back()))
        out.pop_back();
    pos = close + 2;
    if (trim_right)
      while (pos < text.size() && is_space(text[pos]))
        ++pos;

    const bool comment = inner.size() >= 4 && inner.compare(0, 2, "/*") == 0 &&
                         inner.compare(inner.size() - 2, 2, "*/") == 0;
    if (comment)
      continue;
    const auto first = inner.find_first_not_of(" \t\r\n");
    const auto last = inner.find_last_not_of(" \t\r\n");
    const std::string expr =
        first == std::string::npos ? std::string() : inner.substr(first, last - first + 1);
    if (expr.size() < 2 || expr[0] != '.' || !is_identifier(expr.substr(1)))
      throw config_error(origin + ": template (line " + line + "): unsupported action " + action +
                         " (netbird-mgmt substitutes only {{ .VARIABLE }} from the environment)");
    const auto name = expr.substr(1);
    if (auto value = env(name)) {
      out += *value;
    } else {
      // Go's text/template prints a missing map key as "<no value>".
      out += "<no value>";
      if (warnings)
        warnings->push_back("environment variable " + name + " is not set: " + action +
                            " became \"<no value>\" as in NetBird (line " + line + ")");
    }
  }
}

duration parse_go_duration(const std::string& text) {
  // time.ParseDuration: [-+]?([0-9]*(\.[0-9]*)?[a-z]+)+, or "0".
  const auto bad = [&](const std::string& why) {
    return std::invalid_argument(
        "invalid duration \"" + text + "\"" + (why.empty() ? "" : ": " + why) +
        " (expected e.g. \"1h30m\", \"500ms\" or a number of nanoseconds)");
  };
  constexpr std::uint64_t limit = std::uint64_t{1} << 63;
  std::string s = text;
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.erase(0, 1);
  }
  if (s == "0")
    return duration(0);
  if (s.empty())
    throw bad("");
  std::uint64_t total = 0;
  std::size_t i = 0;
  while (i < s.size()) {
    if (!(s[i] == '.' || std::isdigit(static_cast<unsigned char>(s[i]))))
      throw bad("");
    // The integer part.
    std::uint64_t whole = 0;
    const std::size_t int_start = i;
    for (; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])); ++i) {
      if (whole > limit / 10)
        throw bad("overflow");
      whole = whole * 10 + static_cast<std::uint64_t>(s[i] - '0');
      if (whole > limit)
        throw bad("overflow");
    }
    const bool had_int = i > int_start;
    // The fraction (digits beyond what fits are ignored, as in Go).
    std::uint64_t frac = 0;
    double scale = 1;
    bool had_frac = false;
    if (i < s.size() && s[i] == '.') {
      ++i;
      const std::size_t frac_start = i;
      bool overflow = false;
      for (; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])); ++i) {
        if (overflow)
          continue;
        if (frac > (limit - 1) / 10) {
          overflow = true;
          continue;
        }
        const std::uint64_t next = frac * 10 + static_cast<std::uint64_t>(s[i] - '0');
        if (next > limit) {
          overflow = true;
          continue;
        }
        frac = next;
        scale *= 10;
      }
      had_frac = i > frac_start;
    }
    if (!had_int && !had_frac)
      throw bad("");
    // The unit: everything up to the next digit or '.'.
    const std::size_t unit_start = i;
    while (i < s.size() && s[i] != '.' && !std::isdigit(static_cast<unsigned char>(s[i])))
      ++i;
    const std::string unit = s.substr(unit_start, i - unit_start);
    if (unit.empty())
      throw bad("missing unit");
    std::uint64_t scale_ns = 0;
    if (unit == "ns")
      scale_ns = 1;
    else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") // us, U+00B5 s, U+03BC s
      scale_ns = 1000;
    else if (unit == "ms")
      scale_ns = 1000000;
    else if (unit == "s")
      scale_ns = 1000000000;
    else if (unit == "m")
      scale_ns = 60ull * 1000000000;
    else if (unit == "h")
      scale_ns = 3600ull * 1000000000;
    else
      throw bad("unknown unit \"" + unit + "\"");
    if (whole > limit / scale_ns)
      throw bad("overflow");
    whole *= scale_ns;
    if (frac > 0) {
      whole += static_cast<std::uint64_t>(static_cast<double>(frac) *
                                          (static_cast<double>(scale_ns) / scale));
      if (whole > limit)
        throw bad("overflow");
    }
    total += whole;
    if (total > limit)
      throw bad("overflow");
  }
  if (negative)
    return duration(total == limit ? std::numeric_limits<long long>::min()
                                   : -static_cast<long long>(total));
  if (total > limit - 1)
    throw bad("overflow");
  return duration(static_cast<long long>(total));
}

std::string format_go_duration(duration d) {
  const long long ns = d.count();
  if (ns == 0)
    return "0s";
  std::uint64_t u =
      ns < 0 ? static_cast<std::uint64_t>(-(ns + 1)) + 1 : static_cast<std::uint64_t>(ns);
  std::string out = ns < 0 ? "-" : "";
  // whole.fraction with the fraction's trailing zeros dropped.
  const auto with_fraction = [](std::uint64_t value, std::uint64_t unit, int digits) {
    std::string r = std::to_string(value / unit);
    std::string frac = std::to_string(value % unit);
    frac.insert(0, static_cast<std::size_t>(digits) - frac.size(), '0');
    while (!frac.empty() && frac.back() == '0')
      frac.pop_back();
    if (!frac.empty())
      r += "." + frac;
    return r;
  };
  if (u < 1000)
    return out + std::to_string(u) + "ns";
  if (u < 1000000)
    return out + with_fraction(u, 1000, 3) + "\xC2\xB5s";
  if (u < 1000000000)
    return out + with_fraction(u, 1000000, 6) + "ms";
  const std::uint64_t secs = u / 1000000000;
  const std::uint64_t hours = secs / 3600, minutes = secs / 60 % 60;
  if (hours > 0)
    out += std::to_string(hours) + "h" + std::to_string(minutes) + "m";
  else if (minutes > 0)
    out += std::to_string(minutes) + "m";
  return out + with_fraction(secs % 60 * 1000000000 + u % 1000000000, 1000000000, 9) + "s";
}

bool valid_ip_prefix(const std::string& text) {
  const auto slash = text.rfind('/');
  if (slash == std::string::npos)
    return false;
  const std::string addr = text.substr(0, slash), bits = text.substr(slash + 1);
  // Go: no sign, no leading zeros, 1..3 digits.
  if (bits.empty() || bits.size() > 3 ||
      !std::all_of(bits.begin(), bits.end(), [](unsigned char c) { return std::isdigit(c); }) ||
      (bits.size() > 1 && bits[0] == '0'))
    return false;
  const int n = std::stoi(bits);
  unsigned char buf[16];
  if (addr.find(':') == std::string::npos)
    return inet_pton(AF_INET, addr.c_str(), buf) == 1 && n <= 32;
  return inet_pton(AF_INET6, addr.c_str(), buf) == 1 && n <= 128;
}

std::vector<std::string> auth_audiences(const management_config& cfg) {
  std::vector<std::string> out;
  if (cfg.http) {
    out.push_back(cfg.http->auth_audience);
    if (!cfg.http->extra_auth_audience.empty())
      out.push_back(cfg.http->extra_auth_audience);
  } else {
    out.emplace_back();
  }
  if (cfg.device_auth_flow && !cfg.device_auth_flow->config.audience.empty())
    out.push_back(cfg.device_auth_flow->config.audience);
  return out;
}

management_config load_text(const std::string& text, const std::string& origin,
                            const env_getter& env) {
  management_config c;
  const std::string substituted = substitute_env(text, env, &c.warnings, origin);
  const auto first = substituted.find_first_not_of(" \t\r\n");
  const bool json = first != std::string::npos && substituted[first] == '{';
  if (!json)
    check_yaml_tabs(substituted, origin);
  first_document docs;
  try {
    docs = read_first_document(substituted);
  } catch (const YAML::Exception& e) {
    if (json) // told in JSON's words when it is not JSON either
      check_json_syntax(substituted, origin);
    std::ostringstream os;
    os << origin << ": malformed JSON/YAML";
    if (e.mark.line >= 0)
      os << " (line " << e.mark.line + 1 << ", column " << e.mark.column + 1 << ")";
    os << ": " << e.msg;
    throw config_error(os.str());
  }
  if (docs.documents == 0)
    throw config_error(origin + ": the file is empty (expected a JSON object)");
  if (docs.documents > 1) {
    std::string where;
    if (docs.second.line >= 0)
      where = " (line " + std::to_string(docs.second.line + 1) + ")";
    throw config_error(origin + ": malformed JSON/YAML" + where +
                       ": unexpected content after the top-level object");
  }
  const YAML::Node& root = docs.root;
  reader r{origin, &c.warnings};
  const auto k = kind_of(root);
  if (k != kind::null && k != kind::object)
    r.wrong_type("", root, "an object at the top level");
  try {
    r.read(root, c);
  } catch (const YAML::Exception& e) {
    throw config_error(origin + ": " + e.what());
  }
  apply_defaults(c);
  return c;
}

management_config load_file(const std::string& path, const env_getter& env) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw config_error("failed reading provided config file: " + path + ": is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    throw config_error("failed reading provided config file: " + path + ": " +
                       (err != 0 ? std::strerror(err) : "cannot open"));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return load_text(ss.str(), path, env);
}

void apply_oidc_configuration(management_config& cfg, const oidc_configuration& oidc) {
  if (!cfg.http || cfg.http->oidc_config_endpoint.empty())
    return;
  if (cfg.embedded_idp && cfg.embedded_idp->enabled)
    return;
  cfg.http->auth_issuer = oidc.issuer;
  cfg.http->auth_keys_location = oidc.jwks_uri;
  if (cfg.device_auth_flow && lower(cfg.device_auth_flow->provider) != "none") {
    auto& pc = cfg.device_auth_flow->config;
    pc.token_endpoint = oidc.token_endpoint;
    pc.device_auth_endpoint = oidc.device_auth_endpoint;
    pc.domain = url_host(cfg.http->oidc_config_endpoint);
    if (pc.scope.empty())
      pc.scope = "openid";
  }
  if (cfg.pkce_auth_flow) {
    cfg.pkce_auth_flow->config.token_endpoint = oidc.token_endpoint;
    cfg.pkce_auth_flow->config.authorization_endpoint = oidc.authorization_endpoint;
  }
}

bool apply_embedded_idp(management_config& cfg, int port, bool disable_single_account_mode) {
  if (!cfg.embedded_idp || !cfg.embedded_idp->enabled)
    return false;
  if (disable_single_account_mode)
    throw config_error("embedded IdP requires single account mode; multiple account mode is not "
                       "supported with embedded IdP. Please remove --disable-single-account-mode "
                       "flag");
  auto& idp = *cfg.embedded_idp;
  idp.local_address = "localhost:" + std::to_string(port);
  if (idp.storage.type.empty())
    idp.storage.type = "sqlite3";
  if (idp.storage.file.empty() && !cfg.datadir.empty())
    idp.storage.file = (std::filesystem::path(cfg.datadir) / "idp.db").string();
  if (cfg.http)
    cfg.warnings.push_back("HttpConfig is ignored when EmbeddedIdP is enabled (overridden from "
                           "EmbeddedIdP.Issuer); remove the HttpConfig section");
  else
    cfg.http.emplace();
  auto& h = *cfg.http;
  const std::string issuer = idp.issuer;
  h.auth_issuer = issuer;
  h.auth_audience = "netbird-dashboard";
  h.auth_client_id = h.auth_audience;
  h.cli_auth_audience = "netbird-cli";
  h.auth_user_id_claim = "sub";
  h.auth_keys_location = issuer + "/keys";
  h.oidc_config_endpoint = issuer + "/.well-known/openid-configuration";
  h.idp_sign_key_refresh_enabled = true;
  std::string callback = issuer;
  if (callback.size() >= 7 && callback.compare(callback.size() - 7, 7, "/oauth2") == 0)
    callback.erase(callback.size() - 7);
  h.auth_callback_url = callback + "/api/reverse-proxy/callback";
  return true;
}

store_choice resolve_store(const management_config& cfg, const env_getter& env) {
  namespace fs = std::filesystem;
  const fs::path datadir = cfg.datadir;
  std::string engine = cfg.store.engine; // as written: NetBird does not lower-case it
  if (engine.empty()) {
    if (auto e = env("NETBIRD_STORE_ENGINE")) {
      engine = lower(*e);
      if (engine != "sqlite" && engine != "postgres" && engine != "mysql")
        engine = "sqlite"; // NetBird: an unknown value means sqlite
    } else {
      engine = "sqlite";
      // NetBird migrates a legacy store.json on the first run; we cannot.
      std::error_code ec;
      const auto json_store = datadir / "store.json";
      if (fs::exists(json_store, ec) && !fs::exists(datadir / "store.db", ec))
        throw config_error("found the legacy JSON store " + json_store.string() +
                           " and no store.db: NetBird would migrate it to SQLite on this start, "
                           "netbird-mgmt cannot; migrate it with NetBird's `netbird-mgmt "
                           "sqlite-migration upgrade` first");
    }
  }

  if (engine == "sqlite") {
    std::string file = "store.db";
    if (auto f = env("NB_STORE_ENGINE_SQLITE_FILE"); f && !f->empty())
      file = *f;
    store_choice c;
    c.kind = store_engine::sqlite;
    c.engine = "sqlite";
    if (const auto q = file.find('?'); q != std::string::npos) {
      c.sqlite_query = file.substr(q + 1);
      file.erase(q);
    }
    fs::path p = file;
    if (p.is_relative())
      p = datadir / p;
    c.target = p.string();
    return c;
  }
  if (engine == "postgres") {
    auto dsn = env("NB_STORE_ENGINE_POSTGRES_DSN");
    const char* from = "NB_STORE_ENGINE_POSTGRES_DSN";
    if (!dsn) {
      dsn = env("NETBIRD_STORE_ENGINE_POSTGRES_DSN");
      from = "NETBIRD_STORE_ENGINE_POSTGRES_DSN";
    }
    if (!dsn)
      throw config_error("store engine postgres: NB_STORE_ENGINE_POSTGRES_DSN is not set (nor "
                         "NETBIRD_STORE_ENGINE_POSTGRES_DSN)");
    if (dsn->empty())
      throw config_error(std::string("store engine postgres: ") + from + " is set but empty");
    store_choice c;
    c.kind = store_engine::postgres;
    c.engine = "postgres";
    c.target = *dsn;
    return c;
  }
  if (engine == "mysql")
    throw config_error("store engine mysql is not supported by netbird-mgmt (use sqlite or "
                       "postgres)");
  if (engine == "jsonfile") {
    std::error_code ec;
    if (fs::exists(datadir / "store.json", ec))
      throw config_error("jsonfile is not supported. Please refer to the documentation for "
                         "migrating to SQLite: https://docs.netbird.io/selfhosted/sqlite-store"
                         "#migrating-from-json-store-to-sq-lite-store");
  }
  throw config_error("unsupported kind of store: " + engine +
                     " (StoreConfig.Engine; netbird-mgmt supports sqlite and postgres)");
}

} // namespace nbm::config
