#include "core/posture.hpp"

#include "core/validate.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <regex>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace nbm::core {

namespace {

// A small JSON reader for the checks column (objects, arrays, strings, numbers, literals).
struct jvalue {
  enum kind_t { null, boolean, number, string, array, object } kind = null;
  bool b = false;
  std::string s; // string, or a number's text
  std::vector<jvalue> items;
  // An object's members as two parallel lists: a pair of a key and an incomplete jvalue would not
  // compile with clang's view of libstdc++ (a vector of jvalue may hold an incomplete type).
  std::vector<std::string> keys;
  std::vector<jvalue> values;

  // Go's encoding/json matches keys case-insensitively.
  const jvalue* get(std::string_view key) const {
    if (kind != object)
      return nullptr;
    for (std::size_t i = 0; i < keys.size(); ++i)
      if (const auto& k = keys[i];
          k.size() == key.size() &&
          std::equal(k.begin(), k.end(), key.begin(), [](unsigned char x, unsigned char y) {
            return std::tolower(x) == std::tolower(y);
          }))
        return &values[i];
    return nullptr;
  }
  std::string str(std::string_view key) const {
    const auto* v = get(key);
    return v && v->kind == string ? v->s : "";
  }
};

struct reader {
  std::string_view t;
  std::size_t i = 0;
  int depth = 0;

  void ws() {
    while (i < t.size() && std::isspace(static_cast<unsigned char>(t[i])))
      ++i;
  }
  bool lit(std::string_view w) {
    if (t.substr(i, w.size()) != w)
      return false;
    i += w.size();
    return true;
  }
  std::optional<std::uint32_t> hex4() {
    if (i + 4 > t.size())
      return std::nullopt;
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = t[i++];
      const int d = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
      if (d < 0)
        return std::nullopt;
      v = v << 4 | static_cast<std::uint32_t>(d);
    }
    return v;
  }
  static void utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | cp >> 6);
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | cp >> 12);
      out += static_cast<char>(0x80 | (cp >> 6 & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | cp >> 18);
      out += static_cast<char>(0x80 | (cp >> 12 & 0x3f));
      out += static_cast<char>(0x80 | (cp >> 6 & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }
  std::optional<std::string> str() {
    if (i >= t.size() || t[i] != '"')
      return std::nullopt;
    ++i;
    std::string out;
    while (i < t.size() && t[i] != '"') {
      char c = t[i++];
      if (c == '\\') {
        if (i >= t.size())
          return std::nullopt;
        char e = t[i++];
        switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'u': { // Go's decoder: UTF-16 (a pair for a surrogate), a lone surrogate U+FFFD
          auto cp = hex4();
          if (!cp)
            return std::nullopt;
          if (*cp >= 0xd800 && *cp < 0xdc00 && t.substr(i, 2) == "\\u") {
            const auto save = i;
            i += 2;
            auto lo = hex4();
            if (lo && *lo >= 0xdc00 && *lo < 0xe000)
              cp = 0x10000 + ((*cp - 0xd800) << 10) + (*lo - 0xdc00);
            else
              i = save;
          }
          if (*cp >= 0xd800 && *cp < 0xe000)
            cp = 0xfffd;
          utf8(out, *cp);
          break;
        }
        default:
          out += e;
        }
      } else {
        out += c;
      }
    }
    if (i >= t.size())
      return std::nullopt;
    ++i;
    return out;
  }
  std::optional<jvalue> value() {
    if (++depth > 32)
      return std::nullopt;
    ws();
    jvalue v;
    if (i >= t.size())
      return std::nullopt;
    const char c = t[i];
    if (c == '{') {
      v.kind = jvalue::object;
      ++i;
      ws();
      if (i < t.size() && t[i] == '}') {
        ++i;
      } else {
        for (;;) {
          ws();
          auto k = str();
          ws();
          if (!k || i >= t.size() || t[i] != ':')
            return std::nullopt;
          ++i;
          auto x = value();
          if (!x)
            return std::nullopt;
          v.keys.push_back(std::move(*k));
          v.values.push_back(std::move(*x));
          ws();
          if (i < t.size() && t[i] == ',') {
            ++i;
            continue;
          }
          if (i < t.size() && t[i] == '}') {
            ++i;
            break;
          }
          return std::nullopt;
        }
      }
    } else if (c == '[') {
      v.kind = jvalue::array;
      ++i;
      ws();
      if (i < t.size() && t[i] == ']') {
        ++i;
      } else {
        for (;;) {
          auto x = value();
          if (!x)
            return std::nullopt;
          v.items.push_back(std::move(*x));
          ws();
          if (i < t.size() && t[i] == ',') {
            ++i;
            continue;
          }
          if (i < t.size() && t[i] == ']') {
            ++i;
            break;
          }
          return std::nullopt;
        }
      }
    } else if (c == '"') {
      auto s = str();
      if (!s)
        return std::nullopt;
      v.kind = jvalue::string;
      v.s = std::move(*s);
    } else if (lit("true") || lit("false")) {
      v.kind = jvalue::boolean;
      v.b = t[i - 1] == 'e' && t[i - 2] == 'u';
    } else if (lit("null")) {
      v.kind = jvalue::null;
    } else {
      const auto start = i;
      while (i < t.size() && (std::isdigit(static_cast<unsigned char>(t[i])) || t[i] == '-' ||
                              t[i] == '+' || t[i] == '.' || t[i] == 'e' || t[i] == 'E'))
        ++i;
      if (i == start)
        return std::nullopt;
      v.kind = jvalue::number;
      v.s = std::string(t.substr(start, i - start));
    }
    --depth;
    return v;
  }
};

std::optional<jvalue> parse_json(std::string_view text) {
  reader r{text};
  auto v = r.value();
  r.ws();
  if (!v || r.i != text.size())
    return std::nullopt;
  return v;
}

// hashicorp/go-version: an optional "v", numeric segments, an optional "-prerelease" and
// "+metadata". Segments compare numerically, missing ones as 0; a prerelease sorts before its
// release.
struct version {
  std::vector<std::uint64_t> seg;
  std::string pre;
};

std::optional<version> parse_version(std::string_view s) {
  if (s.starts_with('v'))
    s.remove_prefix(1);
  if (auto plus = s.find('+'); plus != std::string_view::npos)
    s = s.substr(0, plus);
  version v;
  if (auto dash = s.find('-'); dash != std::string_view::npos) {
    v.pre = std::string(s.substr(dash + 1));
    s = s.substr(0, dash);
    if (v.pre.empty())
      return std::nullopt;
  }
  std::size_t i = 0;
  for (;;) {
    const auto start = i;
    std::uint64_t n = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      n = n * 10 + static_cast<std::uint64_t>(s[i] - '0');
      if (n > 1'000'000'000'000ull)
        return std::nullopt;
      ++i;
    }
    if (i == start)
      return std::nullopt;
    v.seg.push_back(n);
    if (i == s.size())
      break;
    if (s[i] != '.')
      return std::nullopt;
    ++i;
  }
  return v;
}

// `have` >= `min`, as go-version's ">= min" constraint (a prerelease `have` only satisfies a
// constraint on the same release with a prerelease).
bool at_least(const std::string& have_text, const std::string& min_text) {
  auto have = parse_version(have_text);
  auto min = parse_version(min_text);
  if (!have || !min)
    return false;
  const auto n = std::max(have->seg.size(), min->seg.size());
  have->seg.resize(n, 0);
  min->seg.resize(n, 0);
  if (!have->pre.empty() && (min->pre.empty() || have->seg != min->seg))
    return false;
  if (have->seg != min->seg)
    return have->seg > min->seg;
  if (have->pre.empty() || min->pre.empty())
    return have->pre.empty() || !min->pre.empty();
  return have->pre >= min->pre;
}

// NetBird's version.MeetsMinVersion: both sanitized (everything from the first '-' dropped).
bool meets_min(std::string min, std::string have) {
  min = min.substr(0, min.find('-'));
  have = have.substr(0, have.find('-'));
  return at_least(have, min);
}

bool nb_version(const jvalue& c, const peer& p) {
  return meets_min(c.str("MinVersion"), p.meta.wt_version);
}

bool os_version(const jvalue& c, const peer& p) {
  const auto& os = p.meta.go_os;
  const auto min_of = [&](const char* name, const char* field) -> std::optional<std::string> {
    const auto* x = c.get(name);
    if (!x || x->kind != jvalue::object)
      return std::nullopt; // the OS is not allowed
    return x->str(field);
  };
  if (os == "android" || os == "darwin" || os == "ios") {
    auto min = min_of(os == "android"  ? "Android"
                      : os == "darwin" ? "Darwin"
                                       : "Ios",
                      "MinVersion");
    return min && at_least(p.meta.os_version, *min);
  }
  if (os == "linux") {
    auto min = min_of("Linux", "MinKernelVersion");
    const auto kernel = p.meta.kernel_version.substr(0, p.meta.kernel_version.find('-'));
    return min && at_least(kernel, *min);
  }
  if (os == "windows") {
    auto min = min_of("Windows", "MinKernelVersion");
    return min && at_least(p.meta.kernel_version, *min);
  }
  return true;
}

bool geo_location(const jvalue& c, const peer& p) {
  const auto& loc = p.location;
  if (loc.country_code.empty() && loc.city_name.empty())
    return false; // not evaluated: deny
  const auto action = c.str("Action");
  if (action != "allow" && action != "deny")
    return false;
  if (const auto* list = c.get("Locations"); list && list->kind == jvalue::array)
    for (const auto& l : list->items)
      if (l.str("CountryCode") == loc.country_code &&
          (l.str("CityName").empty() || l.str("CityName") == loc.city_name))
        return action == "allow";
  return action == "deny";
}

// Go's netip.Prefix: an IPv4 (the first 4 bytes of `addr`) or IPv6 address and its bit count.
struct ip_prefix {
  std::array<unsigned char, 16> addr{};
  int bits = 0;
  bool v4 = false;
};

// Go's netip.ParseAddr: four decimal octets without leading zeros (inet_pton's IPv4 form), or
// IPv6 text (an IPv4-mapped one stays IPv6); no zone.
std::optional<ip_prefix> parse_ip(std::string_view text) {
  if (text.empty() || text.size() > 45 || text.find('%') != std::string_view::npos)
    return std::nullopt;
  const std::string s(text);
  ip_prefix out;
  if (s.find(':') == std::string::npos) {
    if (s.find('.') == std::string::npos || ::inet_pton(AF_INET, s.c_str(), out.addr.data()) != 1)
      return std::nullopt;
    out.v4 = true;
    out.bits = 32;
    return out;
  }
  if (::inet_pton(AF_INET6, s.c_str(), out.addr.data()) != 1)
    return std::nullopt;
  out.bits = 128;
  return out;
}

bool v4_mapped(const ip_prefix& p) {
  return !p.v4 && std::all_of(p.addr.begin(), p.addr.begin() + 10, [](auto x) { return !x; }) &&
         p.addr[10] == 0xff && p.addr[11] == 0xff;
}

// Go's netip.ParsePrefix: an address, "/", and a decimal bit count without sign or leading zero,
// at most the address's length.
std::optional<ip_prefix> parse_prefix(std::string_view text) {
  const auto slash = text.rfind('/');
  if (slash == std::string_view::npos)
    return std::nullopt;
  const auto bits = text.substr(slash + 1);
  if (bits.empty() || bits.size() > 3 || (bits.size() > 1 && bits[0] == '0') ||
      !std::all_of(bits.begin(), bits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  auto p = parse_ip(text.substr(0, slash));
  if (!p)
    return std::nullopt;
  int n = 0;
  for (char c : bits)
    n = n * 10 + (c - '0');
  if (n > (p->v4 ? 32 : 128))
    return std::nullopt;
  p->bits = n;
  return p;
}

// A connection address (net.IP's text) as a /32 or /128, an IPv4-mapped one unmapped (Go's
// Addr.Unmap).
std::optional<ip_prefix> parse_addr(std::string_view text) {
  auto p = parse_ip(text);
  if (p && v4_mapped(*p)) {
    std::copy(p->addr.begin() + 12, p->addr.end(), p->addr.begin());
    std::fill(p->addr.begin() + 4, p->addr.end(), 0);
    p->v4 = true;
    p->bits = 32;
  }
  return p;
}

// NetBird's prefixContains: the same family, `outer` no more specific than `inner`, and inner's
// network inside outer (both masked: only outer's leading bits are compared).
bool prefix_contains(const ip_prefix& outer, const ip_prefix& inner) {
  if (outer.v4 != inner.v4 || outer.bits > inner.bits)
    return false;
  const int whole = outer.bits / 8, rest = outer.bits % 8;
  if (!std::equal(outer.addr.begin(), outer.addr.begin() + whole, inner.addr.begin()))
    return false;
  if (rest == 0)
    return true;
  const unsigned mask = (0xffu << (8 - rest)) & 0xffu;
  return ((outer.addr[whole] ^ inner.addr[whole]) & mask) == 0;
}

bool network_range(const jvalue& c, const peer& p) {
  // The peer's interface prefixes (NetBird keeps those Go's ParsePrefix reads when the meta
  // arrives and drops the rest: an unparsable one here is as if dropped) and its connection
  // address as a /32 or /128, an IPv4-mapped one unmapped so that an IPv4 range matches it.
  std::vector<ip_prefix> mine;
  if (auto addrs = parse_json(p.meta.network_addresses_json); addrs && addrs->kind == jvalue::array)
    for (const auto& a : addrs->items)
      if (auto x = parse_prefix(a.str("NetIP")))
        mine.push_back(*x);
  if (auto conn = parse_addr(p.location.connection_ip))
    mine.push_back(*conn);
  if (mine.empty())
    return false; // NetBird's error: no addresses to test
  const auto action = c.str("Action");
  if (action != "allow" && action != "deny")
    return false;
  std::vector<ip_prefix> ranges;
  if (const auto* list = c.get("Ranges"); list && list->kind == jvalue::array)
    for (const auto& r : list->items)
      if (auto x = parse_prefix(r.s))
        ranges.push_back(*x);
  for (const auto& mine_prefix : mine)
    for (const auto& range : ranges)
      if (prefix_contains(range, mine_prefix))
        return action == "allow";
  return action == "deny";
}

bool process(const jvalue& c, const peer& p) {
  const auto& os = p.meta.go_os;
  const char* field = os == "linux"     ? "LinuxPath"
                      : os == "darwin"  ? "MacPath"
                      : os == "windows" ? "WindowsPath"
                                        : nullptr;
  if (!field)
    return false;
  std::vector<std::string> running;
  if (auto files = parse_json(p.meta.files_json); files && files->kind == jvalue::array)
    for (const auto& f : files->items)
      if (const auto* r = f.get("ProcessIsRunning"); r && r->kind == jvalue::boolean && r->b)
        running.push_back(f.str("Path"));
  if (const auto* list = c.get("Processes"); list && list->kind == jvalue::array)
    for (const auto& proc : list->items) {
      const auto path = proc.str(field);
      if (path.empty() || std::find(running.begin(), running.end(), path) == running.end())
        return false;
    }
  return true;
}

} // namespace

namespace {

// A check's kinds, looked up once (nullptr: the check does not hold that kind).
struct check_kinds {
  bool valid = false; // the JSON is an object
  const jvalue *nb = nullptr, *os = nullptr, *geo = nullptr, *range = nullptr, *proc = nullptr;

  explicit check_kinds(const std::optional<jvalue>& checks) {
    if (!checks || checks->kind != jvalue::object)
      return;
    valid = true;
    const auto present = [&](const char* name) -> const jvalue* {
      const auto* v = checks->get(name);
      return v && v->kind == jvalue::object ? v : nullptr;
    };
    nb = present("NBVersionCheck");
    os = present("OSVersionCheck");
    geo = present("GeoLocationCheck");
    range = present("PeerNetworkRangeCheck");
    proc = present("ProcessCheck");
  }
};

bool passes_kinds(const check_kinds& k, const peer& p) {
  if (!k.valid)
    return false;
  if (k.nb && !nb_version(*k.nb, p))
    return false;
  if (k.os && !os_version(*k.os, p))
    return false;
  if (k.geo && !geo_location(*k.geo, p))
    return false;
  if (k.range && !network_range(*k.range, p))
    return false;
  if (k.proc && !process(*k.proc, p))
    return false;
  return true;
}

// The peer fields a check's verdict depends on, by kind (NB version: the agent version; OS
// version: the OS, its version and kernel; geo: the location; process: the OS and the files the
// peer reported); the fields a kind does not read are left empty. Peers of an account share
// few distinct values of these (agent versions, OS releases, the same process paths reported), so
// the verdict is computed once per distinct key.
struct verdict_key {
  std::array<std::string_view, 7> f;
  bool operator==(const verdict_key&) const = default;
};
struct verdict_key_hash {
  std::size_t operator()(const verdict_key& k) const noexcept {
    std::size_t h = 0;
    for (const auto& x : k.f)
      h = h * 1099511628211ull ^ std::hash<std::string_view>{}(x);
    return h;
  }
};

verdict_key key_of(const check_kinds& k, const peer& p) {
  verdict_key key;
  if (k.nb)
    key.f[0] = p.meta.wt_version;
  if (k.os || k.proc)
    key.f[1] = p.meta.go_os;
  if (k.os) {
    key.f[2] = p.meta.os_version;
    key.f[3] = p.meta.kernel_version;
  }
  if (k.geo) {
    key.f[4] = p.location.country_code;
    key.f[5] = p.location.city_name;
  }
  if (k.proc)
    key.f[6] = p.meta.files_json;
  return key;
}

} // namespace

bool passes_posture(const posture_check& c, const peer& p) {
  const auto checks = parse_json(c.checks_json);
  return passes_kinds(check_kinds(checks), p);
}

std::vector<std::uint8_t> passes_posture(const posture_check& c, const std::vector<peer>& peers) {
  const auto checks = parse_json(c.checks_json); // once for every peer
  const check_kinds kinds(checks);
  std::vector<std::uint8_t> out(peers.size(), 0);
  if (!kinds.valid)
    return out;
  if (kinds.range) { // interface and connection addresses: nearly one of a kind per peer
    for (std::size_t i = 0; i < peers.size(); ++i)
      out[i] = passes_kinds(kinds, peers[i]);
    return out;
  }
  std::unordered_map<verdict_key, std::uint8_t, verdict_key_hash> seen;
  for (std::size_t i = 0; i < peers.size(); ++i) {
    auto [it, fresh] = seen.try_emplace(key_of(kinds, peers[i]), 0);
    if (fresh)
      it->second = passes_kinds(kinds, peers[i]);
    out[i] = it->second;
  }
  return out;
}

namespace {

// --- the definition as NetBird stores it ------------------------------------------------------

std::optional<std::string> opt_string(const jvalue* v, std::string_view key) {
  if (!v || v->kind != jvalue::object)
    return std::nullopt;
  return v->str(key);
}

// A JSON string as Go's encoder writes it (without its HTML escapes, which Go's reader and ours
// read back the same).
void put_string(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

void put_min(std::string& out, const char* key, const char* field,
             const std::optional<std::string>& v, bool first) {
  if (!first)
    out += ',';
  out += '"';
  out += key;
  out += "\":";
  if (!v) {
    out += "null";
    return;
  }
  out += "{\"";
  out += field;
  out += "\":";
  put_string(out, *v);
  out += '}';
}

// hashicorp/go-version's NewVersion pattern.
bool valid_version(const std::string& v) {
  static const std::regex pattern(
      R"(^v?([0-9]+(\.[0-9]+)*?)(-([0-9]+[0-9A-Za-z\-~]*(\.[0-9A-Za-z\-~]+)*)|(-?([A-Za-z\-~]+[0-9A-Za-z\-~]*(\.[0-9A-Za-z\-~]+)*)))?(\+([0-9A-Za-z\-~]+(\.[0-9A-Za-z\-~]+)*))?$)");
  if (v.size() > 256 || !std::regex_match(v, pattern))
    return false;
  // Each release segment is read as an int64 (strconv.ParseInt): one that does not fit fails.
  std::size_t i = v.starts_with('v') ? 1 : 0;
  while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i]))) {
    auto start = i;
    while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i])))
      ++i;
    while (start + 1 < i && v[start] == '0')
      ++start;
    const auto digits = std::string_view(v).substr(start, i - start);
    if (digits.size() > 19 || (digits.size() == 19 && digits > "9223372036854775807"))
      return false;
    if (i < v.size() && v[i] == '.')
      ++i;
  }
  return true;
}

problem invalid(std::string m) {
  return {422, std::move(m)};
}

} // namespace

std::optional<posture_definition> parse_posture_definition(std::string_view checks_json) {
  auto root = parse_json(checks_json);
  if (!root || root->kind != jvalue::object)
    return std::nullopt;
  const auto member = [&](const char* name) -> const jvalue* {
    const auto* v = root->get(name);
    return v && v->kind == jvalue::object ? v : nullptr;
  };
  posture_definition d;
  if (const auto* nb = member("NBVersionCheck"))
    d.nb_min_version = nb->str("MinVersion");
  if (const auto* os = member("OSVersionCheck")) {
    posture_definition::os_versions o;
    o.android = opt_string(os->get("Android"), "MinVersion");
    o.darwin = opt_string(os->get("Darwin"), "MinVersion");
    o.ios = opt_string(os->get("Ios"), "MinVersion");
    o.linux_kernel = opt_string(os->get("Linux"), "MinKernelVersion");
    o.windows_kernel = opt_string(os->get("Windows"), "MinKernelVersion");
    d.os = std::move(o);
  }
  if (const auto* geo = member("GeoLocationCheck")) {
    posture_definition::geo_check g;
    g.action = geo->str("Action");
    if (const auto* list = geo->get("Locations"); list && list->kind == jvalue::array)
      for (const auto& l : list->items)
        g.locations.push_back({l.str("CountryCode"), l.str("CityName")});
    d.geo = std::move(g);
  }
  if (const auto* net = member("PeerNetworkRangeCheck")) {
    posture_definition::range_check r;
    r.action = net->str("Action");
    if (const auto* list = net->get("Ranges"); list && list->kind == jvalue::array)
      for (const auto& x : list->items)
        if (x.kind == jvalue::string)
          r.ranges.push_back(x.s);
    d.network_range = std::move(r);
  }
  if (const auto* proc = member("ProcessCheck")) {
    std::vector<posture_definition::process> list;
    if (const auto* ps = proc->get("Processes"); ps && ps->kind == jvalue::array)
      for (const auto& x : ps->items)
        list.push_back({x.str("LinuxPath"), x.str("MacPath"), x.str("WindowsPath")});
    d.processes = std::move(list);
  }
  return d;
}

std::string posture_definition_json(const posture_definition& d) {
  std::string out = "{";
  const auto sep = [&] {
    if (out.size() > 1)
      out += ',';
  };
  if (d.nb_min_version) {
    sep();
    out += "\"NBVersionCheck\":{\"MinVersion\":";
    put_string(out, *d.nb_min_version);
    out += '}';
  }
  if (d.os) {
    sep();
    out += "\"OSVersionCheck\":{";
    put_min(out, "Android", "MinVersion", d.os->android, true);
    put_min(out, "Darwin", "MinVersion", d.os->darwin, false);
    put_min(out, "Ios", "MinVersion", d.os->ios, false);
    put_min(out, "Linux", "MinKernelVersion", d.os->linux_kernel, false);
    put_min(out, "Windows", "MinKernelVersion", d.os->windows_kernel, false);
    out += '}';
  }
  if (d.geo) {
    sep();
    out += "\"GeoLocationCheck\":{\"Locations\":[";
    for (std::size_t i = 0; i < d.geo->locations.size(); ++i) {
      if (i)
        out += ',';
      out += "{\"CountryCode\":";
      put_string(out, d.geo->locations[i].country_code);
      out += ",\"CityName\":";
      put_string(out, d.geo->locations[i].city_name);
      out += '}';
    }
    out += "],\"Action\":";
    put_string(out, d.geo->action);
    out += '}';
  }
  if (d.network_range) {
    sep();
    out += "\"PeerNetworkRangeCheck\":{\"Action\":";
    put_string(out, d.network_range->action);
    out += ",\"Ranges\":[";
    for (std::size_t i = 0; i < d.network_range->ranges.size(); ++i) {
      if (i)
        out += ',';
      put_string(out, d.network_range->ranges[i]);
    }
    out += "]}";
  }
  if (d.processes) {
    sep();
    out += "\"ProcessCheck\":{\"Processes\":[";
    for (std::size_t i = 0; i < d.processes->size(); ++i) {
      const auto& p = (*d.processes)[i];
      if (i)
        out += ',';
      out += "{\"LinuxPath\":";
      put_string(out, p.linux_path);
      out += ",\"MacPath\":";
      put_string(out, p.mac_path);
      out += ",\"WindowsPath\":";
      put_string(out, p.windows_path);
      out += '}';
    }
    out += "]}";
  }
  out += '}';
  return out;
}

verdict validate_posture_definition(const std::string& name, const posture_definition& d) {
  if (name.empty())
    return invalid("posture checks name shouldn't be empty");
  if (!d.nb_min_version && !d.os && !d.geo && !d.network_range && !d.processes)
    return invalid("posture checks shouldn't be empty");
  if (d.nb_min_version) {
    if (d.nb_min_version->empty())
      return invalid("NBVersionCheck minimum version shouldn't be empty");
    if (!valid_version(*d.nb_min_version))
      return invalid("NBVersionCheck version: " + clip(*d.nb_min_version) + " is not valid");
  }
  if (const auto& os = d.os) {
    if (!os->android && !os->darwin && !os->ios && !os->linux_kernel && !os->windows_kernel)
      return invalid("OSVersionCheck at least one OS version check is required");
    // NetBird's order and wording (two spaces before the last three included).
    if (os->android && !valid_version(*os->android))
      return invalid("OSVersionCheck android version: " + clip(*os->android) + " is not valid");
    if (os->ios && !valid_version(*os->ios))
      return invalid("OSVersionCheck ios version: " + clip(*os->ios) + " is not valid");
    if (os->darwin && !valid_version(*os->darwin))
      return invalid("OSVersionCheck  darwin version: " + clip(*os->darwin) + " is not valid");
    if (os->linux_kernel && !valid_version(*os->linux_kernel))
      return invalid("OSVersionCheck  linux kernel version: " + clip(*os->linux_kernel) +
                     " is not valid");
    if (os->windows_kernel && !valid_version(*os->windows_kernel))
      return invalid("OSVersionCheck  windows kernel version: " + clip(*os->windows_kernel) +
                     " is not valid");
  }
  if (const auto& geo = d.geo) {
    if (geo->action.empty())
      return invalid("GeoLocationCheck action shouldn't be empty");
    if (geo->action != "allow" && geo->action != "deny")
      return invalid("GeoLocationCheck action is not valid");
    if (geo->locations.empty())
      return invalid("GeoLocationCheck locations shouldn't be empty");
    for (const auto& l : geo->locations) {
      if (l.country_code.empty())
        return invalid("GeoLocationCheck country code shouldn't be empty");
      if (l.country_code.size() != 2 ||
          !std::all_of(l.country_code.begin(), l.country_code.end(), [](unsigned char c) {
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
          }))
        return invalid(
            "GeoLocationCheck country code must be 2 letters (ISO 3166-1 alpha-2 format)");
    }
  }
  if (const auto& net = d.network_range) {
    if (net->action.empty())
      return invalid("action for peer network range check shouldn't be empty");
    if (net->action != "allow" && net->action != "deny")
      return invalid("PeerNetworkRangeCheck action is not valid");
    if (net->ranges.empty())
      return invalid("PeerNetworkRangeCheck network ranges shouldn't be empty");
  }
  if (const auto& procs = d.processes) {
    if (procs->empty())
      return invalid("ProcessCheck processes shouldn't be empty");
    for (const auto& p : *procs)
      if (p.linux_path.empty() && p.mac_path.empty() && p.windows_path.empty())
        return invalid("ProcessCheck path shouldn't be empty");
  }
  return std::nullopt;
}

std::optional<std::string> go_prefix(std::string_view text) {
  const auto p = parse_prefix(text);
  if (!p)
    return std::nullopt;
  const auto& b = p->addr;
  std::string out;
  if (p->v4 || v4_mapped(*p)) { // Go prints an IPv4-mapped address as ::ffff:a.b.c.d
    const int at = p->v4 ? 0 : 12;
    out = (p->v4 ? "" : "::ffff:") + std::to_string(b[at]) + "." + std::to_string(b[at + 1]) + "." +
          std::to_string(b[at + 2]) + "." + std::to_string(b[at + 3]);
  } else {
    // RFC 5952: the first longest run of at least two zero groups becomes "::".
    const auto group = [&](int i) { return b[2 * i] << 8 | b[2 * i + 1]; };
    int zs = -1, ze = -1;
    for (int i = 0; i < 8; ++i) {
      int j = i;
      while (j < 8 && group(j) == 0)
        ++j;
      if (j - i >= 2 && j - i > ze - zs) {
        zs = i;
        ze = j;
      }
    }
    char hex[8];
    for (int i = 0; i < 8; ++i) {
      if (i == zs) {
        out += "::";
        i = ze;
        if (i >= 8)
          break;
      } else if (i > 0) {
        out += ':';
      }
      std::snprintf(hex, sizeof hex, "%x", static_cast<unsigned>(group(i)));
      out += hex;
    }
  }
  return out + "/" + std::to_string(p->bits);
}

std::vector<std::string> process_files(const posture_check& c) {
  std::vector<std::string> out;
  auto d = parse_posture_definition(c.checks_json);
  if (!d || !d->processes)
    return out;
  for (const auto& p : *d->processes)
    for (const auto* path : {&p.linux_path, &p.mac_path, &p.windows_path})
      if (!path->empty())
        out.push_back(*path);
  return out;
}

std::vector<std::vector<std::string>> client_checks(const account& a, const std::string& peer_id) {
  std::vector<std::vector<std::string>> out;
  if (a.posture_checks.empty())
    return out;
  const auto holds = [&](const std::string& group_id) {
    for (const auto& g : a.groups)
      if (g.id == group_id)
        return std::find(g.peers.begin(), g.peers.end(), peer_id) != g.peers.end();
    return false;
  };
  std::vector<std::uint8_t> wanted(a.posture_checks.size(), 0);
  for (const auto& pol : a.policies) {
    if (!pol.enabled || pol.source_posture_checks.empty())
      continue;
    const bool source = std::any_of(pol.rules.begin(), pol.rules.end(), [&](const auto& r) {
      return r.enabled && std::any_of(r.sources.begin(), r.sources.end(), holds);
    });
    if (!source)
      continue;
    for (const auto& id : pol.source_posture_checks)
      for (std::size_t i = 0; i < a.posture_checks.size(); ++i)
        if (a.posture_checks[i].id == id)
          wanted[i] = 1;
  }
  for (std::size_t i = 0; i < a.posture_checks.size(); ++i)
    if (wanted[i])
      if (auto files = process_files(a.posture_checks[i]); !files.empty())
        out.push_back(std::move(files));
  return out;
}

verdict prepare_posture_change(const account& a, change::save_posture_check& c) {
  auto& pc = c.c;
  pc.account_id = a.id;
  auto d = parse_posture_definition(pc.checks_json);
  if (auto bad = validate_posture_definition(pc.name, d.value_or(posture_definition{})))
    return bad;
  if (!pc.id.empty()) {
    if (std::none_of(a.posture_checks.begin(), a.posture_checks.end(),
                     [&](const posture_check& x) { return x.id == pc.id; }))
      return problem{404, "posture checks: " + clip(pc.id) + " not found"};
    return std::nullopt;
  }
  for (const auto& x : a.posture_checks)
    if (x.name == pc.name)
      return invalid("posture checks with name " + clip(pc.name) + " already exists");
  return std::nullopt;
}

verdict prepare_posture_change(const account& a, change::delete_posture_check& c) {
  if (std::none_of(a.posture_checks.begin(), a.posture_checks.end(),
                   [&](const posture_check& x) { return x.id == c.id; }))
    return problem{404, "posture checks: " + clip(c.id) + " not found"};
  for (const auto& pol : a.policies)
    if (std::find(pol.source_posture_checks.begin(), pol.source_posture_checks.end(), c.id) !=
        pol.source_posture_checks.end())
      return problem{412, "posture checks have been linked to policy: " + clip(pol.name)};
  return std::nullopt;
}

} // namespace nbm::core
