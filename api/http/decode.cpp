#include "api/http/decode.hpp"
#include "api/http/decode_posture.hpp"

#include "core/validate.hpp"

#include <nlohmann/json.hpp>

#include <limits>

namespace nbm::api::http::decode {

namespace {

using json = nlohmann::json;

constexpr const char* unparsable = "couldn't parse JSON request";

[[noreturn]] void bad_json() {
  throw decode_error(400, unparsable);
}
[[noreturn]] void invalid(std::string message) {
  throw decode_error(422, std::move(message));
}

// Whether no array or object in `s` opens deeper than `limit`, brackets inside strings aside. A
// cheap scan before parsing: whatever it lets through is at most `limit` deep, valid JSON or not.
bool nesting_within(std::string_view s, int limit) {
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\')
        ++i; // the escaped character, whatever it is
      else if (c == '"')
        in_string = false;
      continue;
    }
    switch (c) {
    case '"':
      in_string = true;
      break;
    case '[':
    case '{':
      if (++depth > limit)
        return false;
      break;
    case ']':
    case '}':
      if (depth > 0)
        --depth;
      break;
    default:
      break;
    }
  }
  return true;
}

json parse(std::string_view body) {
  if (body.size() > max_body_bytes || !nesting_within(body, max_depth))
    bad_json();
  auto j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    bad_json();
  return j;
}

// The member `name` of object `o`, or null when it is absent or JSON null.
const json* member(const json& o, const char* name) {
  const auto it = o.find(name);
  if (it == o.end() || it->is_null())
    return nullptr;
  return &*it;
}

std::optional<std::string> opt_string(const json& o, const char* name) {
  const auto* v = member(o, name);
  if (!v)
    return std::nullopt;
  if (!v->is_string())
    bad_json();
  return v->get_ref<const std::string&>();
}
std::string string(const json& o, const char* name, const std::string& fallback = {}) {
  auto v = opt_string(o, name);
  return v ? std::move(*v) : fallback;
}

std::optional<bool> opt_boolean(const json& o, const char* name) {
  const auto* v = member(o, name);
  if (!v)
    return std::nullopt;
  if (!v->is_boolean())
    bad_json();
  return v->get<bool>();
}
bool boolean(const json& o, const char* name, bool fallback = false) {
  return opt_boolean(o, name).value_or(fallback);
}

// An integer literal that fits int64 (Go's int); anything else is Go's decode error.
std::optional<std::int64_t> opt_integer(const json& o, const char* name) {
  const auto* v = member(o, name);
  if (!v)
    return std::nullopt;
  if (v->is_number_unsigned()) {
    const auto u = v->get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      bad_json();
    return static_cast<std::int64_t>(u);
  }
  if (v->is_number_integer())
    return v->get<std::int64_t>();
  bad_json(); // floats (1.5, 1e308), strings, booleans, arrays, objects
}
std::int64_t integer(const json& o, const char* name, std::int64_t fallback = 0) {
  return opt_integer(o, name).value_or(fallback);
}

std::optional<std::vector<std::string>> opt_strings(const json& o, const char* name) {
  const auto* v = member(o, name);
  if (!v)
    return std::nullopt;
  if (!v->is_array())
    bad_json();
  std::vector<std::string> out;
  out.reserve(v->size());
  for (const auto& x : *v) {
    if (!x.is_string())
      bad_json();
    out.push_back(x.get_ref<const std::string&>());
  }
  return out;
}
std::vector<std::string> strings(const json& o, const char* name) {
  auto v = opt_strings(o, name);
  return v ? std::move(*v) : std::vector<std::string>{};
}

// An array member (absent or null: none), its elements objects.
const json* objects(const json& o, const char* name) {
  const auto* v = member(o, name);
  if (!v)
    return nullptr;
  if (!v->is_array())
    bad_json();
  for (const auto& x : *v)
    if (!x.is_object())
      bad_json();
  return v;
}

core::resource resource(const json& o, const char* name) {
  const auto* v = member(o, name);
  if (!v)
    return {};
  if (!v->is_object())
    bad_json();
  return {string(*v, "id"), string(*v, "type")};
}

bool known_role(const std::string& r) {
  return r == "owner" || r == "admin" || r == "user" || r == "billing_admin" || r == "auditor" ||
         r == "network_admin";
}

} // namespace

std::string clip(std::string_view text, std::size_t n) {
  if (text.size() <= n)
    return std::string(text);
  return std::string(text.substr(0, n)) + "...";
}

void check_body(std::string_view body) {
  (void)parse(body);
}

core::group group(std::string_view body, const std::string& account_id, const std::string& id) {
  const auto j = parse(body);
  core::group g;
  g.id = id;
  g.account_id = account_id;
  g.name = string(j, "name");
  g.issued = "api";
  g.peers = strings(j, "peers");
  return g;
}

core::policy policy(std::string_view body, const std::string& account_id, const std::string& id) {
  const auto j = parse(body);
  core::policy p;
  p.id = id;
  p.account_id = account_id;
  p.name = string(j, "name");
  p.description = string(j, "description");
  p.enabled = boolean(j, "enabled");
  p.source_posture_checks = strings(j, "source_posture_checks");
  const auto* rules = objects(j, "rules");
  if (!rules)
    return p;
  p.rules.reserve(rules->size());
  for (const auto& jr : *rules) { // by reference: a request tree is never copied
    core::policy_rule r;
    // A rule id is honoured on update only (NetBird); new rules get ids from the store.
    r.id = id.empty() ? "" : string(jr, "id");
    r.policy_id = id;
    r.name = string(jr, "name");
    r.description = string(jr, "description");
    r.enabled = boolean(jr, "enabled");
    r.action = string(jr, "action");
    r.bidirectional = boolean(jr, "bidirectional");
    r.protocol = string(jr, "protocol");
    r.ports = strings(jr, "ports");
    if (const auto* ranges = objects(jr, "port_ranges")) {
      for (const auto& pr : *ranges) {
        const auto start = integer(pr, "start"), end = integer(pr, "end");
        if (start < 1 || start > 65535 || end < 1 || end > 65535)
          invalid("valid port value is in 1..65535 range");
        r.port_ranges.push_back(
            {static_cast<std::uint16_t>(start), static_cast<std::uint16_t>(end)});
      }
    }
    r.sources = strings(jr, "sources");
    r.destinations = strings(jr, "destinations");
    r.source_resource = resource(jr, "sourceResource");
    r.destination_resource = resource(jr, "destinationResource");
    p.rules.push_back(std::move(r));
  }
  return p;
}

core::route route(std::string_view body, const std::string& account_id, const std::string& id) {
  const auto j = parse(body);
  core::route r;
  r.id = id;
  r.account_id = account_id;
  r.description = string(j, "description");
  r.net_id = string(j, "network_id");
  r.enabled = boolean(j, "enabled");
  r.peer = string(j, "peer");
  r.peer_groups = strings(j, "peer_groups");
  r.domains = strings(j, "domains");
  r.metric = integer(j, "metric"); // 1..9999: core::validate_route
  r.masquerade = boolean(j, "masquerade");
  r.groups = strings(j, "groups");
  r.keep_route = boolean(j, "keep_route");
  r.access_control_groups = strings(j, "access_control_groups");
  r.skip_auto_apply = boolean(j, "skip_auto_apply");
  const auto network = string(j, "network");
  if (!network.empty()) {
    auto canon = core::canonical_prefix(network);
    if (!canon)
      invalid("invalid Prefix");
    r.network = canon->first;
    r.network_type = canon->second;
  } else if (!r.domains.empty()) {
    r.network_type = 3;
    r.network = "192.0.2.0/32"; // NetBird's placeholder prefix of a domain route
  }
  return r;
}

core::nameserver_group nameserver_group(std::string_view body, const std::string& account_id,
                                        const std::string& id) {
  const auto j = parse(body);
  core::nameserver_group g;
  g.id = id;
  g.account_id = account_id;
  g.name = string(j, "name");
  g.description = string(j, "description");
  g.enabled = boolean(j, "enabled");
  g.groups = strings(j, "groups");
  g.primary = boolean(j, "primary");
  g.domains = strings(j, "domains");
  g.search_domains_enabled = boolean(j, "search_domains_enabled");
  if (const auto* list = objects(j, "nameservers")) {
    for (const auto& n : *list) {
      const auto type = string(n, "ns_type", "udp");
      const auto port = integer(n, "port", 53);
      // NetBird parses "<type>://<ip>:<port>" and refuses what does not parse.
      if (type != "udp" || port < 1 || port > 65535)
        invalid("invalid NS servers format");
      g.nameservers.push_back({string(n, "ip"), 1, static_cast<int>(port)});
    }
  }
  return g;
}

std::vector<std::string> dns_settings(std::string_view body) {
  const auto j = parse(body);
  auto groups = opt_strings(j, "disabled_management_groups");
  if (!groups)
    invalid("disabled_management_groups shouldn't be absent");
  return std::move(*groups);
}

setup_key_spec setup_key_create(std::string_view body) {
  const auto j = parse(body);
  setup_key_spec s;
  s.name = string(j, "name");
  if (s.name.empty())
    invalid("setup key name shouldn't be empty");
  const auto type = string(j, "type");
  if (type != "reusable" && type != "one-off")
    invalid("unknown setup key type " + clip(type));
  s.reusable = type == "reusable";
  s.usage_limit = integer(j, "usage_limit");
  if (!s.reusable && s.usage_limit > 1)
    invalid("usage_limit " + std::to_string(s.usage_limit) +
            " is not valid for a one-off setup key, which can be used once; use type reusable "
            "for a key that can be used more than once");
  if (s.usage_limit < 0)
    invalid("usage limit can't be negative");
  s.expires_in_seconds = integer(j, "expires_in");
  if (s.expires_in_seconds < 0)
    invalid("expiresIn can not be in the past");
  if (s.expires_in_seconds > max_duration_seconds)
    invalid("expiresIn can not be more than 100 years");
  s.auto_groups = strings(j, "auto_groups");
  s.ephemeral = boolean(j, "ephemeral");
  s.allow_extra_dns_labels = boolean(j, "allow_extra_dns_labels");
  return s;
}

setup_key_change setup_key_update(std::string_view body) {
  const auto j = parse(body);
  setup_key_change c;
  c.revoked = boolean(j, "revoked");
  auto groups = opt_strings(j, "auto_groups");
  if (!groups)
    throw decode_error(400, "auto_groups field can't be absent");
  c.auto_groups = std::move(*groups);
  return c;
}

// JWT groups and the extra settings (issue 17): what the server honours is taken, what it cannot
// honour is refused (422) when asked for, never dropped; its default values (what the dashboard
// sends back) pass.
static void account_settings_more(const json& js, core::account_settings& s) {
  s.jwt_groups_enabled = boolean(js, "jwt_groups_enabled", s.jwt_groups_enabled);
  s.jwt_groups_claim_name = string(js, "jwt_groups_claim_name", s.jwt_groups_claim_name);
  if (auto g = opt_strings(js, "jwt_allow_groups"))
    s.jwt_allow_groups = std::move(*g);
  if (const auto* extra = member(js, "extra")) {
    if (!extra->is_object())
      bad_json();
    s.extra_user_approval_required =
        boolean(*extra, "user_approval_required", s.extra_user_approval_required);
    if (boolean(*extra, "peer_approval_enabled"))
      invalid("peer approval needs an integrated peer validator, which this server does not have");
    if (boolean(*extra, "network_traffic_logs_enabled") ||
        boolean(*extra, "network_traffic_packet_counter_enabled") ||
        !strings(*extra, "network_traffic_logs_groups").empty())
      invalid("network traffic logs are not available on this server");
  }
  if (boolean(js, "peer_expose_enabled") || !strings(js, "peer_expose_groups").empty())
    invalid("peer expose is not available on this server");
  if (!string(js, "auto_update_version").empty() || boolean(js, "auto_update_always"))
    invalid("automatic client updates are not available on this server");
  if (boolean(js, "local_mfa_enabled"))
    invalid("local MFA is not available on this server");
  if (boolean(js, "metrics_push_enabled"))
    invalid("metrics push is not available on this server");
  if (!strings(js, "ipv6_enabled_groups").empty() || member(js, "network_range_v6"))
    invalid("IPv6 overlay addresses are not available on this server");
}

core::account_settings account_settings(std::string_view body,
                                        const core::account_settings& current,
                                        std::string* network_range) {
  const auto j = parse(body);
  const auto* js = member(j, "settings");
  if (!js || !js->is_object())
    invalid("settings shouldn't be empty");
  auto s = current;
  s.peer_login_expiration_enabled =
      boolean(*js, "peer_login_expiration_enabled", s.peer_login_expiration_enabled);
  // Seconds, checked before they become nanoseconds (NetBird's limits and messages).
  const auto login =
      integer(*js, "peer_login_expiration", s.peer_login_expiration_ns / 1'000'000'000);
  if (login > 180LL * 24 * 3600)
    invalid("peer login expiration can't be larger than 180 days");
  if (login < 3600)
    invalid("peer login expiration can't be smaller than one hour");
  s.peer_login_expiration_ns = login * 1'000'000'000;
  s.peer_inactivity_expiration_enabled =
      boolean(*js, "peer_inactivity_expiration_enabled", s.peer_inactivity_expiration_enabled);
  const auto inactivity =
      integer(*js, "peer_inactivity_expiration", s.peer_inactivity_expiration_ns / 1'000'000'000);
  if (inactivity < 0)
    invalid("peer inactivity expiration can't be negative");
  if (inactivity > max_duration_seconds)
    invalid("peer inactivity expiration can't be larger than 100 years");
  s.peer_inactivity_expiration_ns = inactivity * 1'000'000'000;
  s.regular_users_view_blocked =
      boolean(*js, "regular_users_view_blocked", s.regular_users_view_blocked);
  s.groups_propagation_enabled =
      boolean(*js, "groups_propagation_enabled", s.groups_propagation_enabled);
  s.routing_peer_dns_resolution_enabled =
      boolean(*js, "routing_peer_dns_resolution_enabled", s.routing_peer_dns_resolution_enabled);
  s.lazy_connection_enabled = boolean(*js, "lazy_connection_enabled", s.lazy_connection_enabled);
  s.dns_domain = string(*js, "dns_domain", s.dns_domain);
  account_settings_more(*js, s);
  if (network_range)
    *network_range = string(*js, "network_range");
  return s;
}

peer_change peer_update(std::string_view body) {
  const auto j = parse(body);
  peer_change c;
  c.name = opt_string(j, "name");
  c.ssh_enabled = opt_boolean(j, "ssh_enabled");
  c.login_expiration_enabled = opt_boolean(j, "login_expiration_enabled");
  c.inactivity_expiration_enabled = opt_boolean(j, "inactivity_expiration_enabled");
  c.approval_required = opt_boolean(j, "approval_required");
  return c;
}

user_spec user_create(std::string_view body) {
  const auto j = parse(body);
  user_spec u;
  u.role = string(j, "role");
  if (!known_role(u.role))
    invalid("invalid user role " + clip(u.role));
  if (u.role == "owner")
    invalid("can't create user with owner role");
  u.auto_groups = strings(j, "auto_groups");
  u.is_service_user = boolean(j, "is_service_user");
  u.name = string(j, "name");
  return u;
}

user_change user_update(std::string_view body) {
  const auto j = parse(body);
  user_change c;
  c.role = opt_string(j, "role");
  if (c.role && !known_role(*c.role))
    invalid("invalid user role " + clip(*c.role));
  c.auto_groups = opt_strings(j, "auto_groups");
  c.blocked = opt_boolean(j, "is_blocked");
  return c;
}

token_spec token_create(std::string_view body) {
  const auto j = parse(body);
  token_spec t;
  t.name = string(j, "name");
  if (t.name.empty())
    invalid("name for personal access token should not be empty");
  t.expires_in_days = integer(j, "expires_in");
  if (t.expires_in_days < 1 || t.expires_in_days > 365)
    invalid("expiration has to be between 1 and 365");
  return t;
}

} // namespace nbm::api::http::decode

// --- /api/posture-checks (api/http/decode_posture.hpp) ------------------------------------------

namespace nbm::api::http::decode {

namespace {

// An object member (absent or null: none).
const json* object(const json& o, const char* name) {
  const auto* v = member(o, name);
  if (v && !v->is_object())
    bad_json();
  return v;
}

std::optional<std::string> min_of(const json& os, const char* key, const char* field) {
  const auto* v = object(os, key);
  if (!v)
    return std::nullopt;
  return string(*v, field);
}

} // namespace

posture_check_spec posture_check(std::string_view body) {
  using def = core::posture_definition;
  const auto j = parse(body);
  posture_check_spec out;
  out.name = string(j, "name");
  out.description = string(j, "description");
  const auto* checks = object(j, "checks");
  if (!checks)
    return out;
  const auto& c = *checks;
  if (const auto* nb = object(c, "nb_version_check"))
    out.checks.nb_min_version = string(*nb, "min_version");
  if (const auto* os = object(c, "os_version_check")) {
    def::os_versions o;
    o.android = min_of(*os, "android", "min_version");
    o.darwin = min_of(*os, "darwin", "min_version");
    o.ios = min_of(*os, "ios", "min_version");
    o.linux_kernel = min_of(*os, "linux", "min_kernel_version");
    o.windows_kernel = min_of(*os, "windows", "min_kernel_version");
    out.checks.os = std::move(o);
  }
  if (const auto* geo = object(c, "geo_location_check")) {
    def::geo_check g;
    g.action = string(*geo, "action");
    if (const auto* list = objects(*geo, "locations"))
      for (const auto& l : *list)
        g.locations.push_back({string(l, "country_code"), string(l, "city_name")});
    out.checks.geo = std::move(g);
  }
  if (const auto* net = object(c, "peer_network_range_check")) {
    def::range_check r;
    r.action = string(*net, "action");
    out.raw_ranges = strings(*net, "ranges");
    out.checks.network_range = std::move(r);
  }
  if (const auto* proc = object(c, "process_check")) {
    std::vector<def::process> list;
    if (const auto* ps = objects(*proc, "processes"))
      for (const auto& p : *ps)
        list.push_back({string(p, "linux_path"), string(p, "mac_path"), string(p, "windows_path")});
    out.checks.processes = std::move(list);
  }
  return out;
}

void posture_ranges(posture_check_spec& spec) {
  if (!spec.checks.network_range)
    return;
  auto& ranges = spec.checks.network_range->ranges;
  ranges.clear();
  for (const auto& r : spec.raw_ranges) {
    auto p = core::go_prefix(r);
    if (!p)
      invalid("invalid network prefix");
    ranges.push_back(std::move(*p));
  }
}

} // namespace nbm::api::http::decode
