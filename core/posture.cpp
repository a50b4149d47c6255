#include "core/posture.hpp"

#include "core/validate.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string_view>
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
        case 'u': // kept as text: check values are paths, names and versions
          if (i + 4 > t.size())
            return std::nullopt;
          out += "\\u" + std::string(t.substr(i, 4));
          i += 4;
          break;
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

// An IPv4 prefix as (address, bits); nullopt for anything else (IPv6 ranges are not matched).
std::optional<std::pair<std::uint32_t, int>> v4_prefix(const std::string& text) {
  auto slash = text.find('/');
  std::string addr = text.substr(0, slash);
  int bits = 32;
  if (slash != std::string::npos) {
    const auto b = text.substr(slash + 1);
    if (b.empty() || b.size() > 2 || !std::all_of(b.begin(), b.end(), ::isdigit))
      return std::nullopt;
    bits = std::stoi(b);
    if (bits > 32)
      return std::nullopt;
  }
  unsigned a[4];
  char tail = 0;
  if (std::sscanf(addr.c_str(), "%u.%u.%u.%u%c", &a[0], &a[1], &a[2], &a[3], &tail) != 4)
    return std::nullopt;
  std::uint32_t ip = 0;
  for (auto x : a) {
    if (x > 255)
      return std::nullopt;
    ip = ip << 8 | x;
  }
  return std::pair(ip, bits);
}

bool network_range(const jvalue& c, const peer& p) {
  std::vector<std::pair<std::uint32_t, int>> mine;
  bool any = false;
  if (auto addrs = parse_json(p.meta.network_addresses_json); addrs && addrs->kind == jvalue::array)
    for (const auto& a : addrs->items) {
      any = true;
      if (auto x = v4_prefix(a.str("NetIP")))
        mine.push_back(*x);
    }
  auto conn = p.location.connection_ip;
  if (conn.starts_with("::ffff:"))
    conn = conn.substr(7);
  if (!conn.empty()) {
    any = true;
    if (auto x = v4_prefix(conn))
      mine.push_back({x->first, 32});
  }
  if (!any)
    return false;
  const auto action = c.str("Action");
  if (action != "allow" && action != "deny")
    return false;
  if (const auto* ranges = c.get("Ranges"); ranges && ranges->kind == jvalue::array)
    for (const auto& [ip, bits] : mine)
      for (const auto& r : ranges->items) {
        auto range = v4_prefix(r.s);
        if (!range || range->second > bits)
          continue;
        const std::uint32_t mask = range->second == 0 ? 0 : ~0u << (32 - range->second);
        if ((ip & mask) == (range->first & mask))
          return action == "allow";
      }
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

bool passes_posture(const posture_check& c, const peer& p) {
  auto checks = parse_json(c.checks_json);
  if (!checks || checks->kind != jvalue::object)
    return false;
  const auto present = [&](const char* name) -> const jvalue* {
    const auto* v = checks->get(name);
    return v && v->kind == jvalue::object ? v : nullptr;
  };
  if (const auto* x = present("NBVersionCheck"); x && !nb_version(*x, p))
    return false;
  if (const auto* x = present("OSVersionCheck"); x && !os_version(*x, p))
    return false;
  if (const auto* x = present("GeoLocationCheck"); x && !geo_location(*x, p))
    return false;
  if (const auto* x = present("PeerNetworkRangeCheck"); x && !network_range(*x, p))
    return false;
  if (const auto* x = present("ProcessCheck"); x && !process(*x, p))
    return false;
  return true;
}

} // namespace nbm::core
