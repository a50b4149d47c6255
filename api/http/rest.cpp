#include "api/http/rest.hpp"

#include "api/http/decode.hpp"
#include "api/http/rest_events.hpp"
#include "api/http/rest_locations.hpp"
#include "api/http/rest_networks.hpp"
#include "api/http/rest_posture.hpp"
#include "core/jwt_groups.hpp"
#include "core/network_map.hpp"
#include "core/registration.hpp"
#include "core/validate.hpp"
#include "crypto/crypto.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <ctime>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <unordered_map>

namespace nbm::api::http {

using json = nlohmann::json;

namespace {

// A refusal on its way to the client: NetBird's {"message","code"} body.
struct http_error : std::runtime_error {
  int status;
  http_error(int s, const std::string& m) : std::runtime_error(m), status(s) {}
};

[[noreturn]] void fail(int status, const std::string& message) {
  throw http_error(status, message);
}
[[noreturn]] void fail(const core::problem& p) {
  throw http_error(p.status, p.message);
}

// Invalid UTF-8 in stored text (a peer's hostname, say) is answered as U+FFFD, never as an error.
std::string dump(const json& body) {
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

response json_response(const json& body) {
  return {200, dump(body), {}};
}

// "/api/<kind>[/<a>[/<b>[/<c>]]][/]" -> {kind, a, b, c} (absent parts empty); kind is [a-z-]+,
// the others non-empty and without '/'. Linear, no regex: a path of any length is cheap.
std::optional<std::vector<std::string>> split_path(std::string_view p) {
  constexpr std::string_view prefix = "/api/";
  if (p.substr(0, prefix.size()) != prefix)
    return std::nullopt;
  p.remove_prefix(prefix.size());
  if (!p.empty() && p.back() == '/')
    p.remove_suffix(1);
  std::vector<std::string> parts;
  for (;;) {
    const auto slash = p.find('/');
    const auto part = p.substr(0, slash);
    if (part.empty() || parts.size() == 4) // an empty or a fifth part
      return std::nullopt;
    parts.emplace_back(part);
    if (slash == std::string_view::npos)
      break;
    p.remove_prefix(slash + 1);
  }
  if (!std::all_of(parts[0].begin(), parts[0].end(),
                   [](char c) { return (c >= 'a' && c <= 'z') || c == '-'; }))
    return std::nullopt;
  parts.resize(4);
  return parts;
}

// Every unavailable answer says when to come back.
constexpr const char* retry_after_seconds = "2";

response error_response(int status, const std::string& message) {
  response r{status, dump(json{{"message", message}, {"code", status}}), {}};
  if (status == 503)
    r.headers.emplace_back("Retry-After", retry_after_seconds);
  return r;
}

using decode::clip;

// JSON text written directly, for the large lists (GET /api/peers on thousands of peers), where
// building a document first would cost more than the rest of the request. Strings are escaped as
// JSON requires; invalid UTF-8 becomes U+FFFD, as dump() does.
class json_writer {
public:
  explicit json_writer(std::string& out) : out_(out) {}
  json_writer& begin_object() { return open('{'); }
  json_writer& end_object() { return close('}'); }
  json_writer& begin_array() { return open('['); }
  json_writer& end_array() { return close(']'); }
  json_writer& key(std::string_view k) {
    comma();
    string(k);
    out_.push_back(':');
    fresh_ = true;
    return *this;
  }
  json_writer& value(std::string_view v) {
    comma();
    string(v);
    return *this;
  }
  json_writer& value(const char* v) { return value(std::string_view(v)); }
  json_writer& value(bool v) {
    comma();
    out_ += v ? "true" : "false";
    return *this;
  }
  json_writer& value(std::uint64_t v) {
    comma();
    out_ += std::to_string(v);
    return *this;
  }
  json_writer& value(const std::vector<std::string>& v) {
    begin_array();
    for (const auto& x : v)
      value(x);
    return end_array();
  }
  template <class V>
  json_writer& field(std::string_view k, const V& v) {
    key(k);
    return value(v);
  }

private:
  json_writer& open(char c) {
    comma();
    out_.push_back(c);
    fresh_ = true;
    return *this;
  }
  json_writer& close(char c) {
    out_.push_back(c);
    fresh_ = false;
    return *this;
  }
  void comma() {
    if (!fresh_)
      out_.push_back(',');
    fresh_ = false;
  }
  // The length of the valid UTF-8 sequence at s[i] (lead byte >= 0x80), or 0.
  static std::size_t utf8_length(std::string_view s, std::size_t i) {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = b(i);
    std::size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
      n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
      n = 3;
      lo = c == 0xE0 ? 0xA0 : 0x80;
      hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 4;
      lo = c == 0xF0 ? 0x90 : 0x80;
      hi = c == 0xF4 ? 0x8F : 0xBF;
    } else
      return 0;
    if (i + n > s.size() || b(i + 1) < lo || b(i + 1) > hi)
      return 0;
    for (std::size_t k = 2; k < n; ++k)
      if (b(i + k) < 0x80 || b(i + k) > 0xBF)
        return 0;
    return n;
  }
  void string(std::string_view v) {
    out_.push_back('"');
    for (std::size_t i = 0; i < v.size();) {
      const auto c = static_cast<unsigned char>(v[i]);
      if (c >= 0x80) {
        if (const auto n = utf8_length(v, i)) {
          out_.append(v.substr(i, n));
          i += n;
        } else {
          out_ += "\xEF\xBF\xBD"; // U+FFFD
          ++i;
        }
        continue;
      }
      switch (c) {
      case '"':
        out_ += "\\\"";
        break;
      case '\\':
        out_ += "\\\\";
        break;
      case '\n':
        out_ += "\\n";
        break;
      case '\r':
        out_ += "\\r";
        break;
      case '\t':
        out_ += "\\t";
        break;
      default:
        if (c < 0x20) {
          static const char* hex = "0123456789abcdef";
          out_ += "\\u00";
          out_.push_back(hex[c >> 4]);
          out_.push_back(hex[c & 15]);
        } else {
          out_.push_back(static_cast<char>(c));
        }
      }
      ++i;
    }
    out_.push_back('"');
  }

  std::string& out_;
  bool fresh_ = true;
};

// Store text -> RFC 3339 ("2023-03-07 09:02:47.44+01:00" -> "2023-03-07T09:02:47.44+01:00";
// SQLite's CURRENT_TIMESTAMP has no zone: UTC).
json rfc3339(const core::opt_time& t) {
  if (!t || t->size() < 19)
    return "0001-01-01T00:00:00Z";
  std::string s = *t;
  s[10] = 'T';
  if (s.size() == 19)
    s += "Z";
  return s;
}

// "2006-01-02T15:04:05[.frac](Z|+hh:mm|-hh:mm)" with every field in its range (what any store
// takes as a time).
bool rfc3339_time(const std::string& t) {
  const auto digits = [&](std::size_t at, std::size_t n, int lo, int hi) {
    if (at + n > t.size())
      return false;
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
      if (t[i] < '0' || t[i] > '9')
        return false;
      v = v * 10 + (t[i] - '0');
    }
    return v >= lo && v <= hi;
  };
  if (t.size() < 20 || !digits(0, 4, 1, 9999) || t[4] != '-' || !digits(5, 2, 1, 12) ||
      t[7] != '-' || !digits(8, 2, 1, 31) || (t[10] != 'T' && t[10] != 't') ||
      !digits(11, 2, 0, 23) || t[13] != ':' || !digits(14, 2, 0, 59) || t[16] != ':' ||
      !digits(17, 2, 0, 60))
    return false;
  std::size_t i = 19;
  if (i < t.size() && t[i] == '.') {
    ++i;
    const auto from = i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9')
      ++i;
    if (i == from || i - from > 9)
      return false;
  }
  if (i + 1 == t.size() && (t[i] == 'Z' || t[i] == 'z'))
    return true;
  return i + 6 == t.size() && (t[i] == '+' || t[i] == '-') && digits(i + 1, 2, 0, 23) &&
         t[i + 3] == ':' && digits(i + 4, 2, 0, 59);
}

// --- responses
// -------------------------------------------------------------------------------------

const core::group* find_group(const core::account& a, const std::string& id) {
  for (const auto& g : a.groups)
    if (g.id == id)
      return &g;
  return nullptr;
}

json group_minimum(const core::group& g) {
  return {{"id", g.id},
          {"name", g.name},
          {"peers_count", g.peers.size()},
          {"resources_count", g.resources.size()},
          {"issued", g.issued.empty() ? "api" : g.issued}};
}

json group_minimums(const core::account& a, const std::vector<std::string>& ids) {
  json out = json::array();
  for (const auto& id : ids)
    if (const auto* g = find_group(a, id))
      out.push_back(group_minimum(*g));
  return out;
}

// Lookups over one loaded account, so lists stay linear in its size; each built on its first use
// (most requests need neither: a change's checks, policies, routes).
class account_index {
public:
  explicit account_index(const core::account& a) : a_(a) {}

  const core::peer* peer(const std::string& id) const {
    if (!peers_) {
      peers_.emplace();
      peers_->reserve(a_.peers.size());
      for (const auto& p : a_.peers)
        peers_->emplace(p.id, &p);
    }
    auto it = peers_->find(id);
    return it == peers_->end() ? nullptr : it->second;
  }
  // The groups peer `id` is in (null: none).
  const std::vector<const core::group*>* groups_of(const std::string& id) const {
    if (!groups_of_) {
      groups_of_.emplace();
      for (const auto& g : a_.groups)
        for (const auto& pid : g.peers)
          (*groups_of_)[pid].push_back(&g);
    }
    auto it = groups_of_->find(id);
    return it == groups_of_->end() ? nullptr : &it->second;
  }

private:
  const core::account& a_;
  mutable std::optional<std::unordered_map<std::string_view, const core::peer*>> peers_;
  mutable std::optional<std::unordered_map<std::string_view, std::vector<const core::group*>>>
      groups_of_;
};

json group_json(const account_index& ix, const core::group& g) {
  json j = group_minimum(g);
  json peers = json::array();
  for (const auto& pid : g.peers)
    if (const auto* p = ix.peer(pid))
      peers.push_back({{"id", p->id}, {"name", p->name}});
  j["peers"] = peers;
  json res = json::array();
  for (const auto& r : g.resources)
    res.push_back({{"id", r.id}, {"type", r.type}});
  j["resources"] = res;
  return j;
}

json resource_json(const core::resource& r) {
  return {{"id", r.id}, {"type", r.type}};
}

json policy_json(const core::account& a, const core::policy& p) {
  json rules = json::array();
  for (const auto& r : p.rules) {
    json jr = {{"id", r.id},
               {"name", r.name},
               {"description", r.description},
               {"enabled", r.enabled},
               {"action", r.action},
               {"bidirectional", r.bidirectional},
               {"protocol", r.protocol},
               {"sources", group_minimums(a, r.sources)},
               {"destinations", group_minimums(a, r.destinations)}};
    if (!r.ports.empty())
      jr["ports"] = r.ports;
    if (!r.port_ranges.empty()) {
      json pr = json::array();
      for (const auto& x : r.port_ranges)
        pr.push_back({{"start", x.start}, {"end", x.end}});
      jr["port_ranges"] = pr;
    }
    if (!r.source_resource.id.empty())
      jr["sourceResource"] = resource_json(r.source_resource);
    if (!r.destination_resource.id.empty())
      jr["destinationResource"] = resource_json(r.destination_resource);
    rules.push_back(jr);
  }
  return {{"id", p.id},
          {"name", p.name},
          {"description", p.description},
          {"enabled", p.enabled},
          {"source_posture_checks", p.source_posture_checks},
          {"rules", rules}};
}

json route_json(const core::route& r) {
  const char* type = r.network_type == 3 ? "Domain" : r.network_type == 2 ? "IPv6" : "IPv4";
  json j = {{"id", r.id},
            {"network_type", type},
            {"description", r.description},
            {"network_id", r.net_id},
            {"enabled", r.enabled},
            {"metric", r.metric},
            {"masquerade", r.masquerade},
            {"groups", r.groups},
            {"keep_route", r.keep_route},
            {"skip_auto_apply", r.skip_auto_apply}};
  if (!r.peer.empty())
    j["peer"] = r.peer;
  if (!r.peer_groups.empty())
    j["peer_groups"] = r.peer_groups;
  if (r.network_type == 3)
    j["domains"] = r.domains;
  else
    j["network"] = r.network;
  if (!r.access_control_groups.empty())
    j["access_control_groups"] = r.access_control_groups;
  return j;
}

json nameserver_group_json(const core::nameserver_group& g) {
  json ns = json::array();
  for (const auto& n : g.nameservers)
    ns.push_back({{"ip", n.ip}, {"ns_type", "udp"}, {"port", n.port}});
  return {{"id", g.id},
          {"name", g.name},
          {"description", g.description},
          {"nameservers", ns},
          {"enabled", g.enabled},
          {"groups", g.groups},
          {"primary", g.primary},
          {"domains", g.domains},
          {"search_domains_enabled", g.search_domains_enabled}};
}

double now_unix() {
  return static_cast<double>(std::time(nullptr));
}

json setup_key_json(const core::setup_key& k, const std::string& plain = "") {
  const auto verdict = core::check_setup_key(k, now_unix());
  const char* state = "valid";
  switch (verdict) {
  case core::key_verdict::expired:
    state = "expired";
    break;
  case core::key_verdict::revoked:
    state = "revoked";
    break;
  case core::key_verdict::overused:
    state = "overused";
    break;
  default:
    break;
  }
  return {{"id", k.id},
          {"key", plain.empty() ? k.key_secret : plain},
          {"name", k.name},
          {"expires", rfc3339(k.expires_at)},
          {"type", k.type},
          {"valid", verdict == core::key_verdict::valid},
          {"revoked", k.revoked},
          {"used_times", k.used_times},
          {"last_used", rfc3339(k.last_used)},
          {"state", state},
          {"auto_groups", k.auto_groups},
          {"updated_at", rfc3339(k.updated_at)},
          {"usage_limit", k.usage_limit},
          {"ephemeral", k.ephemeral},
          {"allow_extra_dns_labels", k.allow_extra_dns_labels}};
}

// A peer as NetBird's API shows it; `accessible`: its accessible_peers_count (lists only).
void write_peer(json_writer& w, const account_index& ix, const core::peer& p,
                const std::string& dns_domain, std::optional<std::uint64_t> accessible = {}) {
  const auto& m = p.meta;
  const std::string os_version = m.os_version.empty() ? m.core : m.os_version;
  w.begin_object()
      .field("id", p.id)
      .field("name", p.name)
      .field("created_at", rfc3339(p.created_at).get_ref<const std::string&>())
      .field("ip", p.ip)
      .field("connection_ip", p.location.connection_ip)
      .field("connected", p.status.connected)
      .field("last_seen", rfc3339(p.status.last_seen).get_ref<const std::string&>())
      .field("os", m.os + " " + os_version)
      .field("kernel_version", m.kernel_version)
      .field("geoname_id", p.location.geo_name_id)
      .field("version", m.wt_version);
  w.key("groups").begin_array();
  if (const auto* groups = ix.groups_of(p.id))
    for (const auto* g : *groups)
      w.begin_object()
          .field("id", g->id)
          .field("name", g->name)
          .field("peers_count", std::uint64_t{g->peers.size()})
          .field("resources_count", std::uint64_t{g->resources.size()})
          .field("issued", g->issued.empty() ? std::string("api") : g->issued)
          .end_object();
  w.end_array()
      .field("ssh_enabled", p.ssh_enabled)
      .field("user_id", p.user_id)
      .field("hostname", m.hostname)
      .field("ui_version", m.ui_version)
      .field("dns_label", p.dns_label.empty() ? std::string() : p.dns_label + "." + dns_domain)
      .field("extra_dns_labels", p.extra_dns_labels)
      .field("login_expiration_enabled", p.login_expiration_enabled)
      .field("login_expired", p.status.login_expired)
      .field("last_login", rfc3339(p.last_login).get_ref<const std::string&>())
      .field("inactivity_expiration_enabled", p.inactivity_expiration_enabled)
      .field("approval_required", p.status.requires_approval)
      .field("country_code", p.location.country_code)
      .field("city_name", p.location.city_name)
      .field("serial_number", m.system_serial_number)
      .field("ephemeral", p.ephemeral);
  if (accessible)
    w.field("accessible_peers_count", *accessible);
  w.end_object();
}

json peer_json(const account_index& ix, const core::peer& p, const std::string& dns_domain) {
  std::string text;
  json_writer w(text);
  write_peer(w, ix, p, dns_domain);
  return json::parse(text);
}

json settings_json(const core::account_settings& s) {
  return {{"peer_login_expiration_enabled", s.peer_login_expiration_enabled},
          {"peer_login_expiration", s.peer_login_expiration_ns / 1'000'000'000},
          {"peer_inactivity_expiration_enabled", s.peer_inactivity_expiration_enabled},
          {"peer_inactivity_expiration", s.peer_inactivity_expiration_ns / 1'000'000'000},
          {"regular_users_view_blocked", s.regular_users_view_blocked},
          {"groups_propagation_enabled", s.groups_propagation_enabled},
          {"jwt_groups_enabled", s.jwt_groups_enabled},
          {"jwt_groups_claim_name", s.jwt_groups_claim_name},
          {"jwt_allow_groups", s.jwt_allow_groups},
          {"routing_peer_dns_resolution_enabled", s.routing_peer_dns_resolution_enabled},
          {"dns_domain", s.dns_domain},
          {"lazy_connection_enabled", s.lazy_connection_enabled},
          {"peer_expose_enabled", false},
          {"peer_expose_groups", json::array()},
          {"auto_update_version", ""},
          {"auto_update_always", false},
          {"metrics_push_enabled", false},
          {"local_mfa_enabled", false},
          {"ipv6_enabled_groups", json::array()},
          {"extra",
           {{"peer_approval_enabled", s.extra_peer_approval_enabled},
            {"user_approval_required", s.extra_user_approval_required},
            {"network_traffic_logs_enabled", false},
            {"network_traffic_logs_groups", json::array()},
            {"network_traffic_packet_counter_enabled", false}}}};
}

// NetBird's Account: every field its spec requires (onboarding: self-hosted, nothing pending).
json account_json(const core::account& a) {
  json s = settings_json(a.settings);
  s["network_range"] = a.net.net;
  return {{"id", a.id},
          {"domain", a.domain},
          {"domain_category", a.domain_category},
          {"created_at", rfc3339(a.created_at)},
          {"created_by", a.created_by},
          {"settings", s},
          {"onboarding", {{"signup_form_pending", false}, {"onboarding_flow_pending", false}}}};
}

} // namespace

// --- the API
// ----------------------------------------------------------------------------------------

struct rest_api::impl {
  rest_deps deps;
  jwt_verifier jwt;

  std::unique_ptr<geo::geonames> geonames; // NetBird's geonames_*.db; null: none

  explicit impl(rest_deps d)
      : deps(std::move(d)), jwt(deps.jwt), geonames(open_geonames(deps.datadir)) {}

  // Who asks: the account as its actor holds it (users, tokens and setup keys read again for this
  // request, since they change without a serial) and the user.
  struct caller {
    std::shared_ptr<const core::account> acc;
    const core::user* user = nullptr;
    bool admin() const { return user->role == "owner" || user->role == "admin"; }
  };

  std::string dns_domain(const core::account& a) const {
    return a.settings.dns_domain.empty() ? deps.dns_domain : a.settings.dns_domain;
  }

  // The actors could not answer (the store is unreachable, or a deadline passed).
  [[noreturn]] static void unavailable() { fail(503, "service unavailable, please retry"); }

  [[noreturn]] static void store_failed(actors::facade_status s) {
    switch (s) {
    case actors::facade_status::unavailable:
      unavailable();
    case actors::facade_status::duplicate:
      fail(409, "an object with this id already exists");
    default:
      fail(500, "internal server error");
    }
  }

  // The account for this request, as its actor holds it; `peers`: with the peers' status read
  // now; null: the account does not exist.
  std::shared_ptr<const core::account> read(const std::string& account_id, bool peers,
                                            const std::string& token_hash = {}) {
    auto r = deps.facade->read(account_id, peers, token_hash);
    if (r.status != actors::facade_status::ok)
      store_failed(r.status);
    return std::move(r.acc);
  }

  // Authorization: "Token <pat>" or "Bearer <pat>" (a bearer value with NetBird's PAT prefix is a
  // PAT), or "Bearer <jwt>" of the configured IdP.
  caller authenticate(const std::string& header, bool peers) {
    const auto space = header.find(' ');
    if (header.empty() || space == std::string::npos)
      fail(401, "no valid authentication provided");
    std::string scheme = header.substr(0, space);
    std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    const std::string token = header.substr(space + 1);
    if (scheme == "bearer" && token.rfind("nbp_", 0) != 0)
      return authenticate_jwt(token, peers);
    if (scheme != "token" && scheme != "bearer")
      fail(401, "no valid authentication provided");
    if (!crypto::pat_well_formed(token))
      fail(401, "token invalid");
    const auto hashed = crypto::sha256_base64(token);
    const auto found = deps.facade->account_of_token(hashed);
    if (found.status != actors::facade_status::ok)
      store_failed(found.status);
    if (found.account_id.empty())
      fail(401, "token invalid");
    caller c{read(found.account_id, peers, hashed), nullptr};
    if (!c.acc)
      fail(401, "token invalid");
    const core::personal_access_token* pat = nullptr;
    for (const auto& t : c.acc->tokens)
      if (t.hashed_token == hashed)
        pat = &t;
    if (!pat)
      fail(401, "token invalid");
    if (pat->expiration_date) {
      auto exp = core::parse_store_time(*pat->expiration_date);
      if (exp && *exp < now_unix())
        fail(401, "token expired");
    }
    for (const auto& u : c.acc->users)
      if (u.id == pat->user_id)
        c.user = &u;
    if (!c.user || c.user->blocked)
      fail(401, "token invalid");
    return c;
  }

  // A JWT of the configured IdP: its user, or (first login, as NetBird) a new account it owns.
  caller authenticate_jwt(const std::string& token, bool peers) {
    if (!jwt.configured())
      fail(401, "token invalid");
    std::string why;
    auto claims = jwt.verify(token, why);
    if (!claims) {
      spdlog::debug("REST: JWT refused: {}", why);
      fail(401, "token invalid");
    }
    const auto found = deps.facade->account_of_user(claims->user_id, claims->email);
    if (found.status != actors::facade_status::ok)
      store_failed(found.status);
    if (found.account_id.empty())
      fail(401, "token invalid");
    caller c{read(found.account_id, peers), nullptr};
    if (!c.acc)
      fail(401, "token invalid");
    for (const auto& u : c.acc->users)
      if (u.id == claims->user_id)
        c.user = &u;
    if (!c.user)
      fail(401, "token invalid");
    // NetBird's order: the JWT groups allow-list (auth middleware), then the user's state
    // (permissions manager); a blocked user's groups are not synced.
    jwt_groups_allow(c, *claims);
    if (c.user->blocked)
      fail(403, c.user->pending_approval ? "user is pending approval" : "user is blocked");
    sync_jwt_groups(c, *claims);
    dashboard_login(c, *claims);
    return c;
  }

  // NetBird's GetUserFromUserAuth: the token's last-login claim, when newer than the user's last
  // login, becomes it (a DashboardLogin event when the user had logged in before).
  void dashboard_login(caller& c, const jwt_claims& claims) {
    if (!rfc3339_time(claims.last_login))
      return;
    const auto at = core::parse_store_time(claims.last_login);
    if (!at)
      return;
    if (c.user->last_login) {
      const auto was = core::parse_store_time(*c.user->last_login);
      if (was && *at <= *was)
        return;
    }
    // Store text: "2026-11-30 20:50:00+00:00" of "2026-11-30T20:50:00Z".
    std::string text = claims.last_login;
    if (text.size() > 10 && text[10] == 'T')
      text[10] = ' ';
    if (!text.empty() && (text.back() == 'Z' || text.back() == 'z'))
      text = text.substr(0, text.size() - 1) + "+00:00";
    const auto user_id = c.user->id;
    core::change::dashboard_login login{user_id, text, claims.last_login};
    auto out = commit(c, std::move(login));
    c.acc = out.after;
    c.user = nullptr;
    for (const auto& u : c.acc->users)
      if (u.id == user_id)
        c.user = &u;
    if (!c.user)
      fail(401, "token invalid");
  }

  // NetBird's EnsureUserAccessByJWTGroups and syncUserJWTGroups: with JWT groups enabled, a
  // token outside the allow-list is refused, and the groups its claim names become the user's JWT
  // groups (created when new; the user's peers follow with groups propagation).
  static std::vector<std::string> jwt_group_names(const core::account& a,
                                                  const jwt_claims& claims) {
    if (auto it = claims.lists.find(a.settings.jwt_groups_claim_name); it != claims.lists.end())
      return it->second;
    return {};
  }
  void jwt_groups_allow(const caller& c, const jwt_claims& claims) {
    if (!core::jwt_groups_allowed(c.acc->settings, jwt_group_names(*c.acc, claims))) {
      spdlog::debug("REST: user {} is in none of the allowed JWT groups", clip(c.user->id));
      fail(401, "token invalid");
    }
  }
  void sync_jwt_groups(caller& c, const jwt_claims& claims) {
    const auto& s = c.acc->settings;
    if (!s.jwt_groups_enabled)
      return;
    auto names = jwt_group_names(*c.acc, claims);
    if (!core::jwt_groups_change(*c.acc, *c.user, names))
      return;
    const auto user_id = c.user->id;
    core::change::jwt_groups sync;
    sync.user_id = user_id;
    sync.names = std::move(names);
    auto out = commit(c, std::move(sync));
    c.acc = out.after;
    c.user = nullptr;
    for (const auto& u : c.acc->users)
      if (u.id == user_id)
        c.user = &u;
    if (!c.user)
      fail(401, "token invalid");
  }

  // NetBird re-allocates every peer's IP when an account's network range changes; this server
  // does not (yet): a range other than the account's is refused, never dropped. The range as read
  // (what the dashboard sends back) passes.
  static void check_network_range(const core::account& a, const std::string& range) {
    if (range.empty())
      return;
    const auto prefix = core::canonical_prefix(range);
    if (!prefix)
      fail(422, "invalid CIDR format: " + clip(range));
    if (prefix->second != 1)
      fail(422, "network range must be an IPv4 address");
    if (prefix->first != a.net.net)
      fail(422, "changing the network range (re-allocating every peer's IP) is not available on "
                "this server");
  }

  void require_admin(const caller& c) {
    if (!c.admin())
      fail(403, "permission denied");
  }

  // A change handed to the account's actor: decided there (core::prepare_change), committed by its
  // store worker, held and fanned out before the answer. Refusals carry NetBird's status and
  // message; what comes back is the account after the change.
  actors::facade_change commit(const caller& c, core::change_kind what) {
    core::admin_change ch{c.user->id, std::move(what)};
    auto out = deps.facade->change(c.acc->id, std::move(ch));
    if (out.status == actors::facade_status::refused && out.refused)
      fail(*out.refused);
    if (out.status != actors::facade_status::ok)
      store_failed(out.status);
    if (!out.after)
      fail(500, "internal server error");
    return out;
  }

  // The shape NetBird's API gives policies, routes and nameserver groups: list, get, create
  // (POST), replace (PUT), delete; one table entry per kind.
  template <class T>
  struct crud_kind {
    std::string what; // in "<what>: <id> not found"
    std::vector<T> core::account::*list;
    std::function<json(const core::account&, const T&)> to_json;
    // A decode:: function: body -> object (throws decode::decode_error).
    std::function<T(std::string_view body, const std::string& account_id, const std::string& id)>
        from_json;
    std::function<core::verdict(const core::account&, const T&)> validate;
    std::function<core::change_kind(T)> save;
    std::function<core::change_kind(std::string)> remove;
  };
  template <class T>
  response crud(const crud_kind<T>& k, caller& c, const request& req, const core::account& a,
                const std::string& id);

  response route(const request& req);
  response dispatch(caller& c, const request& req, const std::vector<std::string>& path);
  response users(caller& c, const request& req, const std::string& id, const std::string& sub,
                 const std::string& token_id, const core::account& a);
};

rest_api::rest_api(rest_deps deps) : p_(std::make_shared<impl>(std::move(deps))) {}
rest_api::~rest_api() = default;

response rest_api::handle(const request& req) {
  try {
    return p_->route(req);
  } catch (const http_error& e) {
    return error_response(e.status, e.what());
  } catch (const decode::decode_error& e) {
    return error_response(e.status, e.message);
  } catch (const std::exception& e) {
    spdlog::error("REST {} {}: {}", req.method, clip(req.path), e.what());
    return error_response(500, "internal server error");
  }
}

namespace {

const rest_api::impl::crud_kind<core::policy>& policies_kind() {
  static const rest_api::impl::crud_kind<core::policy> k{
      "policy",
      &core::account::policies,
      [](const core::account& a, const core::policy& p) { return policy_json(a, p); },
      decode::policy,
      core::validate_policy,
      [](core::policy p) -> core::change_kind { return core::change::save_policy{std::move(p)}; },
      [](std::string id) -> core::change_kind {
        return core::change::delete_policy{std::move(id)};
      }};
  return k;
}

const rest_api::impl::crud_kind<core::route>& routes_kind() {
  static const rest_api::impl::crud_kind<core::route> k{
      "route",
      &core::account::routes,
      [](const core::account&, const core::route& r) { return route_json(r); },
      decode::route,
      core::validate_route,
      [](core::route r) -> core::change_kind { return core::change::save_route{std::move(r)}; },
      [](std::string id) -> core::change_kind {
        return core::change::delete_route{std::move(id)};
      }};
  return k;
}

const rest_api::impl::crud_kind<core::nameserver_group>& nameservers_kind() {
  static const rest_api::impl::crud_kind<core::nameserver_group> k{
      "nameserver group",
      &core::account::nameserver_groups,
      [](const core::account&, const core::nameserver_group& g) {
        return nameserver_group_json(g);
      },
      decode::nameserver_group,
      core::validate_nameserver_group,
      [](core::nameserver_group g) -> core::change_kind {
        return core::change::save_nameservers{std::move(g)};
      },
      [](std::string id) -> core::change_kind {
        return core::change::delete_nameservers{std::move(id)};
      }};
  return k;
}

} // namespace

template <class T>
response rest_api::impl::crud(const crud_kind<T>& k, caller& c, const request& req,
                              const core::account& a, const std::string& id) {
  const auto& items = a.*(k.list);
  const auto find = [&](const std::string& x) -> const T* {
    for (const auto& o : items)
      if (o.id == x)
        return &o;
    return nullptr;
  };
  const auto not_found = [&] { fail(404, k.what + ": " + clip(id) + " not found"); };
  const auto& method = req.method;
  if (method == "GET" && id.empty()) {
    json out = json::array();
    for (const auto& o : items)
      out.push_back(k.to_json(a, o));
    return json_response(out);
  }
  if (method == "GET") {
    const auto* o = find(id);
    if (!o)
      not_found();
    return json_response(k.to_json(a, *o));
  }
  require_admin(c);
  if ((method == "POST" && id.empty()) || (method == "PUT" && !id.empty())) {
    if (method == "PUT" && !find(id))
      not_found();
    auto obj = k.from_json(req.body, a.id, id);
    if (auto bad = k.validate(a, obj)) // as the actor will: no trip for a plain refusal
      fail(*bad);
    const auto out = commit(c, k.save(std::move(obj)));
    // The answer is the object as stored (ids of policy rules, for one, are given there).
    for (const auto& o : (*out.after).*(k.list))
      if (o.id == out.id)
        return json_response(k.to_json(*out.after, o));
    fail(500, "internal server error");
  }
  if (method == "DELETE" && !id.empty()) {
    commit(c, k.remove(id));
    return json_response(json::object());
  }
  return error_response(405, "method not allowed");
}

response rest_api::impl::route(const request& req) {
  auto path = split_path(req.path);
  if (!path)
    return error_response(404, "not found");
  const auto& kind = (*path)[0];
  // Peers' status, meta and location change without a serial: read them now for peer reads.
  auto c = authenticate(req.authorization, kind == "peers" && req.method == "GET");
  // NetBird's "user" role has no permission on the account's objects: it sees its own peers, its
  // own user and its own tokens.
  // Deleting the account is the owner's alone: its handler answers everyone else as NetBird does.
  const bool account_delete = kind == "accounts" && req.method == "DELETE";
  if (kind != "peers" && kind != "users" && kind != "locations" && !account_delete && !c.admin())
    fail(403, "permission denied");
  return dispatch(c, req, *path);
}

response rest_api::impl::dispatch(caller& c, const request& req,
                                  const std::vector<std::string>& path) {
  const auto acc = c.acc;
  const auto& a = *acc;
  const std::string &kind = path[0], &id = path[1], &sub = path[2], &sub_id = path[3];
  const auto& method = req.method;
  const account_index ix(a);

  const auto not_found = [](const std::string& what, const std::string& which) {
    fail(404, what + ": " + clip(which) + " not found");
  };
  const auto method_not_allowed = [] { return error_response(405, "method not allowed"); };

  // --- accounts
  if (kind == "accounts") {
    if (method == "GET" && id.empty())
      return json_response(json::array({account_json(a)}));
    if (method == "PUT" && !id.empty()) {
      if (id != a.id)
        fail(404, "account not found: " + clip(id));
      require_admin(c);
      std::string range;
      const auto s = decode::account_settings(req.body, a.settings, &range);
      check_network_range(a, range);
      const auto out = commit(c, core::change::settings{id, s});
      return json_response(account_json(*out.after));
    }
    // NetBird's DeleteAccount: the owner deletes the account and everything in it; every stream
    // of its peers ends. Another account's id is not found (nothing of it is shown or changed).
    if (method == "DELETE" && !id.empty()) {
      if (id != a.id)
        fail(404, "account not found: " + clip(id));
      if (c.user->role != "owner")
        fail(403, "user is not allowed to delete account. Only account owner can delete account");
      commit(c, core::change::delete_account{id});
      spdlog::info("REST: account {} deleted by its owner {}", a.id, c.user->id);
      return json_response(json::object());
    }
    return method_not_allowed();
  }

  // --- peers
  // NetBird's GetAccessiblePeers: the peers in the peer's network map (online, then offline).
  if (kind == "peers" && sub == "accessible-peers" && sub_id.empty()) {
    if (method != "GET")
      return method_not_allowed();
    const auto* p = a.find_peer(id);
    if (!c.admin() && a.settings.regular_users_view_blocked)
      return json_response(json::array());
    if (!p)
      fail(404, "peer not found");
    if (!c.admin() && p->user_id != c.user->id)
      return json_response(json::array());
    const auto domain = dns_domain(a);
    core::account_view view(acc, {domain});
    const auto map = view.map_for(static_cast<std::uint32_t>(p - a.peers.data()));
    json out = json::array();
    for (const auto* list : {&map.remote_peers, &map.offline_peers})
      for (const auto i : *list) {
        const auto& q = a.peers[i];
        out.push_back(
            {{"id", q.id},
             {"name", q.name},
             {"ip", q.ip},
             {"ipv6", q.ipv6},
             {"dns_label", q.dns_label.empty() ? std::string() : q.dns_label + "." + domain},
             {"user_id", q.user_id},
             {"os", q.meta.os},
             {"country_code", q.location.country_code},
             {"city_name", q.location.city_name},
             {"geoname_id", q.location.geo_name_id},
             {"connected", q.status.connected},
             {"last_seen", rfc3339(q.status.last_seen)}});
      }
    return json_response(out);
  }
  // --- locations (api/http/rest_locations): NetBird's GeoNames countries and cities
  if (kind == "locations")
    return locations_response(geonames.get(), req, id, sub, sub_id);

  if (kind == "peers" && sub.empty()) {
    const auto visible = [&](const core::peer& p) { return c.admin() || p.user_id == c.user->id; };
    const auto domain = dns_domain(a);
    if (method == "GET" && id.empty()) {
      if (!c.admin() && a.settings.regular_users_view_blocked)
        return json_response(json::array());
      core::account_view view(acc, {domain});
      const auto name = req.query.count("name") ? req.query.at("name") : "";
      const auto ip = req.query.count("ip") ? req.query.at("ip") : "";
      response out;
      out.body.reserve(a.peers.size() * 900);
      json_writer w(out.body);
      w.begin_array();
      for (std::uint32_t i = 0; i < a.peers.size(); ++i) {
        const auto& p = a.peers[i];
        if (!visible(p) || (!name.empty() && p.name != name) || (!ip.empty() && p.ip != ip))
          continue;
        const auto map = view.map_for(i);
        write_peer(w, ix, p, domain, map.remote_peers.size() + map.offline_peers.size());
      }
      w.end_array();
      return out;
    }
    const auto* p = a.find_peer(id);
    if (!p || !visible(*p))
      fail(404, "peer not found: " + clip(id));
    if (method == "GET")
      return json_response(peer_json(ix, *p, domain));
    require_admin(c);
    if (method == "PUT") {
      const auto change = decode::peer_update(req.body);
      core::change::update_peer upd;
      upd.id = id;
      upd.name = change.name;
      upd.ssh_enabled = change.ssh_enabled;
      upd.login_expiration_enabled = change.login_expiration_enabled;
      upd.inactivity_expiration_enabled = change.inactivity_expiration_enabled;
      upd.approval_required = change.approval_required;
      const auto out = commit(c, std::move(upd));
      const auto* after = out.after->find_peer(id);
      if (!after)
        fail(404, "peer not found: " + clip(id));
      return json_response(peer_json(account_index(*out.after), *after, dns_domain(*out.after)));
    }
    if (method == "DELETE") {
      // Its stream ends when the account actor fans out the account without it.
      commit(c, core::change::delete_peer{id});
      return json_response(json::object());
    }
    return method_not_allowed();
  }

  // --- setup keys
  if (kind == "setup-keys" && sub.empty()) {
    require_admin(c);
    if (method == "GET" && id.empty()) {
      json out = json::array();
      for (const auto& k : a.setup_keys)
        out.push_back(setup_key_json(k));
      return json_response(out);
    }
    if (method == "POST" && id.empty()) {
      const auto in = decode::setup_key_create(req.body);
      for (const auto& gid : in.auto_groups) {
        const auto* g = find_group(a, gid);
        if (!g)
          fail(422, "invalid auto groups: group " + clip(gid) + " not found");
        if (g->name == "All")
          fail(422, "can't add 'All' group to the setup key");
      }
      core::change::create_setup_key spec;
      spec.name = in.name;
      spec.reusable = in.reusable;
      spec.expires_in_seconds = in.expires_in_seconds;
      spec.usage_limit = in.usage_limit;
      spec.auto_groups = in.auto_groups;
      spec.ephemeral = in.ephemeral;
      spec.allow_extra_dns_labels = in.allow_extra_dns_labels;
      const auto out = commit(c, std::move(spec));
      for (const auto& k : out.after->setup_keys)
        if (k.id == out.id)
          return json_response(setup_key_json(k, out.plain_key));
      fail(500, "internal server error");
    }
    const core::setup_key* key = nullptr;
    for (const auto& k : a.setup_keys)
      if (k.id == id)
        key = &k;
    if (!key)
      not_found("setup key", id);
    if (method == "GET")
      return json_response(setup_key_json(*key));
    if (method == "PUT") {
      const auto change = decode::setup_key_update(req.body);
      const bool revoked = change.revoked;
      if (key->revoked && !revoked)
        fail(422, "can't un-revoke a revoked setup key");
      const auto& groups = change.auto_groups;
      for (const auto& gid : groups) {
        const auto* g = find_group(a, gid);
        if (!g)
          fail(422, "invalid auto groups: group " + clip(gid) + " not found");
        if (g->name == "All")
          fail(422, "can't add 'All' group to the setup key");
      }
      const auto out = commit(c, core::change::update_setup_key{id, revoked, groups});
      for (const auto& k : out.after->setup_keys)
        if (k.id == id)
          return json_response(setup_key_json(k));
      not_found("setup key", id);
    }
    if (method == "DELETE") {
      commit(c, core::change::delete_setup_key{id});
      return json_response(json::object());
    }
    return method_not_allowed();
  }

  // --- groups
  if (kind == "groups" && sub.empty()) {
    if (method == "GET" && id.empty()) {
      json out = json::array();
      const auto name = req.query.count("name") ? req.query.at("name") : "";
      for (const auto& g : a.groups)
        if (name.empty() || g.name == name)
          out.push_back(group_json(ix, g));
      if (!name.empty() && out.empty())
        fail(404, "group with name " + clip(name) + " not found");
      return json_response(out);
    }
    if (method == "GET") {
      const auto* g = find_group(a, id);
      if (!g)
        not_found("group", id);
      return json_response(group_json(ix, *g));
    }
    require_admin(c);
    if (method == "POST" || method == "PUT") {
      if (method == "PUT" && (id.empty() || !find_group(a, id)))
        not_found("group", id);
      if (method == "POST" && !id.empty())
        return method_not_allowed();
      auto g = decode::group(req.body, a.id, id);
      if (const auto* old = find_group(a, id)) {
        g.issued = old->issued;
        g.resources = old->resources;
        if (old->name == "All")
          fail(422, "updating group ALL is not allowed");
      }
      if (auto bad = core::validate_group(a, g))
        fail(*bad);
      const auto out = commit(c, core::change::save_group{std::move(g)});
      for (const auto& saved : out.after->groups)
        if (saved.id == out.id)
          return json_response(group_json(account_index(*out.after), saved));
      fail(500, "internal server error");
    }
    if (method == "DELETE") {
      if (auto bad = core::validate_group_delete(a, id))
        fail(*bad);
      commit(c, core::change::delete_group{id});
      return json_response(json::object());
    }
    return method_not_allowed();
  }

  // --- policies and routes
  if (kind == "policies" && sub.empty())
    return crud(policies_kind(), c, req, a, id);
  if (kind == "routes" && sub.empty())
    return crud(routes_kind(), c, req, a, id);

  // --- DNS
  if (kind == "dns" && id == "settings" && sub.empty()) {
    if (method == "GET")
      return json_response({{"disabled_management_groups", a.dns_disabled_management_groups}});
    require_admin(c);
    if (method == "PUT") {
      const auto groups = decode::dns_settings(req.body);
      for (const auto& gid : groups)
        if (!find_group(a, gid))
          fail(422, "group " + clip(gid) + " not found");
      const auto out = commit(c, core::change::dns_settings{groups});
      return json_response(
          {{"disabled_management_groups", out.after->dns_disabled_management_groups}});
    }
    return method_not_allowed();
  }
  if (kind == "dns" && id == "nameservers" && sub_id.empty())
    return crud(nameservers_kind(), c, req, a, sub);

  // --- networks, their resources and routers (api/http/rest_networks.cpp)
  if (kind == "networks")
    return networks_api(req, path, a, [&](core::change_kind what) {
      auto out = commit(c, std::move(what));
      return networks_commit{out.after, out.id};
    });
  // --- posture checks (api/http/rest_posture.cpp); the GeoNames database stands for NetBird's
  // geolocation manager (both come from the datadir)
  if (kind == "posture-checks" && sub.empty())
    return posture_checks_api(req, id, a, geonames != nullptr, [&](core::change_kind what) {
      auto out = commit(c, std::move(what));
      return networks_commit{out.after, out.id};
    });
  // --- the activity log (api/http/rest_events)
  if (kind == "events")
    return events_response(*deps.facade, a, req, id, sub);

  // --- users and their personal access tokens
  if (kind == "users")
    return users(c, req, id, sub, sub_id, a);
  return error_response(404, "not found");
}

namespace {

json user_json(const core::user& u, const std::string& caller_id) {
  return {{"id", u.id},
          {"email", u.email},
          {"name", u.is_service_user ? u.service_user_name : u.name},
          {"role", u.role},
          {"status", u.blocked ? "blocked" : "active"},
          {"last_login", rfc3339(u.last_login)},
          {"auto_groups", u.auto_groups},
          {"is_current", u.id == caller_id},
          {"is_service_user", u.is_service_user},
          {"is_blocked", u.blocked},
          {"pending_approval", u.pending_approval},
          {"issued", u.issued.empty() ? "api" : u.issued}};
}

json token_json(const core::personal_access_token& t) {
  return {{"id", t.id},
          {"name", t.name},
          {"expiration_date", rfc3339(t.expiration_date)},
          {"created_by", t.created_by},
          {"created_at", rfc3339(t.created_at)},
          {"last_used", rfc3339(t.last_used)}};
}

} // namespace

response rest_api::impl::users(caller& c, const request& req, const std::string& id,
                               const std::string& sub, const std::string& token_id,
                               const core::account& a) {
  const auto& method = req.method;
  const auto user_of = [](const core::account& after, const std::string& uid) -> const core::user& {
    for (const auto& u : after.users)
      if (u.id == uid)
        return u;
    fail(500, "internal server error");
  };
  if (id == "current" && method == "GET" && sub.empty())
    return json_response(user_json(*c.user, c.user->id));
  // Invites need an IdP manager (NetBird: 412 without one); invite links the embedded IdP.
  if (id == "invites")
    fail(412, "invite links are only available with embedded identity provider");
  if (sub == "invite" && token_id.empty()) {
    if (method != "POST")
      return error_response(405, "method not allowed");
    fail(412, "IdP manager must be enabled to send user invites");
  }
  // NetBird's user approval: POST .../approve answers the user, DELETE .../reject removes it.
  if ((sub == "approve" || sub == "reject") && token_id.empty()) {
    if (method != (sub == "approve" ? "POST" : "DELETE"))
      return error_response(405, "method not allowed");
    require_admin(c);
    if (sub == "reject") {
      commit(c, core::change::reject_user{id});
      return json_response(json::object());
    }
    const auto out = commit(c, core::change::approve_user{id});
    return json_response(user_json(user_of(*out.after, id), c.user->id));
  }
  const auto find = [&](const std::string& uid) -> const core::user* {
    for (const auto& u : a.users)
      if (u.id == uid)
        return &u;
    return nullptr;
  };
  if (sub.empty()) {
    if (method == "GET" && id.empty()) {
      if (!c.admin())
        fail(403, "permission denied");
      const auto filter = req.query.count("service_user") ? req.query.at("service_user") : "";
      json out = json::array();
      for (const auto& u : a.users)
        if (filter.empty() || (filter == "true") == u.is_service_user)
          out.push_back(user_json(u, c.user->id));
      return json_response(out);
    }
    require_admin(c);
    if (method == "POST" && id.empty()) {
      const auto in = decode::user_create(req.body);
      for (const auto& gid : in.auto_groups)
        if (!find_group(a, gid))
          fail(422, "group " + clip(gid) + " not found");
      if (!in.is_service_user)
        fail(412, "IdP manager must be enabled to send user invites");
      core::change::create_user u;
      u.id = crypto::random_uuid_upper();
      std::transform(u.id.begin(), u.id.end(), u.id.begin(),
                     [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
      u.role = in.role;
      u.name = in.name;
      u.auto_groups = in.auto_groups;
      u.is_service_user = true;
      const auto out = commit(c, std::move(u));
      return json_response(user_json(user_of(*out.after, out.id), c.user->id));
    }
    const auto* u = find(id);
    if (!u)
      fail(404, "user: " + clip(id) + " not found");
    if (method == "PUT") {
      const auto change = decode::user_update(req.body);
      core::change::update_user upd;
      upd.id = id;
      upd.role = change.role;
      upd.auto_groups = change.auto_groups;
      upd.blocked = change.blocked;
      const auto caller_id = c.user->id;
      const auto out = commit(c, std::move(upd));
      return json_response(user_json(user_of(*out.after, id), caller_id));
    }
    if (method == "DELETE") {
      if (u->id == c.user->id)
        fail(422, "self deletion is not allowed");
      if (u->role == "owner")
        fail(403, "unable to delete a user with owner role");
      commit(c, core::change::delete_user{id});
      return json_response(json::object());
    }
    return error_response(405, "method not allowed");
  }
  if (sub != "tokens")
    return error_response(404, "not found");
  // Tokens: one's own, or (admins) a service user's.
  const auto* u = find(id);
  if (!u)
    fail(404, "user: " + clip(id) + " not found");
  if (u->id != c.user->id && !(c.admin() && u->is_service_user))
    fail(403, "no permission to manage tokens of this user");
  std::vector<const core::personal_access_token*> mine;
  for (const auto& t : a.tokens)
    if (t.user_id == u->id)
      mine.push_back(&t);
  if (token_id.empty() && method == "GET") {
    json out = json::array();
    for (const auto* t : mine)
      out.push_back(token_json(*t));
    return json_response(out);
  }
  if (token_id.empty() && method == "POST") {
    const auto in = decode::token_create(req.body);
    auto pat = crypto::make_pat();
    core::change::create_token t;
    t.user_id = u->id;
    t.id = crypto::random_id();
    t.name = in.name;
    t.hashed_token = pat.hashed;
    t.expires_in_days = in.expires_in_days;
    const auto out = commit(c, std::move(t));
    for (const auto& created : out.after->tokens)
      if (created.id == out.id)
        return json_response(
            {{"plain_token", pat.plain}, {"personal_access_token", token_json(created)}});
    fail(500, "internal server error");
  }
  const core::personal_access_token* tok = nullptr;
  for (const auto* t : mine)
    if (t->id == token_id)
      tok = t;
  if (!tok)
    fail(404, "PAT: " + clip(token_id) + " not found");
  if (method == "GET")
    return json_response(token_json(*tok));
  if (method == "DELETE") {
    commit(c, core::change::delete_token{u->id, token_id});
    return json_response(json::object());
  }
  return error_response(405, "method not allowed");
}

} // namespace nbm::api::http
