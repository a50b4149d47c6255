#include "core/registration.hpp"

#include <cctype>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <vector>

namespace nbm::core {

std::optional<double> parse_store_time(const std::string& text) {
  int y, mo, d, h, mi;
  double s;
  if (std::sscanf(text.c_str(), "%d-%d-%d%*[ T]%d:%d:%lf", &y, &mo, &d, &h, &mi, &s) != 6)
    return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  double t = static_cast<double>(timegm(&tm)) + s;
  // The zone, if any, follows the seconds: "+01:00", "-0700", "+01", "Z".
  auto pos = text.find_first_of("+-Z", 16);
  if (pos != std::string::npos && text[pos] != 'Z') {
    int oh = 0, om = 0;
    const char* z = text.c_str() + pos + 1;
    if (std::sscanf(z, "%2d:%2d", &oh, &om) < 1)
      return std::nullopt;
    if (om == 0 && std::strlen(z) == 4) // "+0130"
      std::sscanf(z, "%2d%2d", &oh, &om);
    const double off = oh * 3600.0 + om * 60.0;
    t += text[pos] == '+' ? -off : off;
  }
  return t;
}

key_verdict check_setup_key(const setup_key& key, double now_unix) {
  if (key.revoked)
    return key_verdict::revoked;
  if (key.expires_at) {
    auto exp = parse_store_time(*key.expires_at);
    // Go's zero time (year 1) means "never expires".
    if (exp && *exp > -62135596800.0 + 1 && now_unix > *exp)
      return key_verdict::expired;
  }
  const std::int64_t limit = key.type == "one-off" ? 1 : key.usage_limit;
  if (limit > 0 && key.used_times >= limit)
    return key_verdict::overused;
  return key_verdict::valid;
}

namespace {

std::optional<std::uint32_t> parse_ipv4(const std::string& s) {
  unsigned a, b, c, d;
  char tail;
  if (std::sscanf(s.c_str(), "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) != 4 || a > 255 || b > 255 ||
      c > 255 || d > 255)
    return std::nullopt;
  return (a << 24) | (b << 16) | (c << 8) | d;
}

std::string format_ipv4(std::uint32_t ip) {
  return std::to_string(ip >> 24) + "." + std::to_string((ip >> 16) & 255) + "." +
         std::to_string((ip >> 8) & 255) + "." + std::to_string(ip & 255);
}

} // namespace

std::optional<std::string>
allocate_peer_ip_with(const std::string& prefix,
                      const std::function<bool(const std::string&)>& taken, std::uint64_t seed) {
  auto slash = prefix.find('/');
  if (slash == std::string::npos)
    return std::nullopt;
  auto base = parse_ipv4(prefix.substr(0, slash));
  int bits = 0;
  if (!base || std::sscanf(prefix.c_str() + slash + 1, "%d", &bits) != 1 || bits < 1 || bits > 30)
    return std::nullopt;
  const std::uint32_t size = 1u << (32 - bits);
  const std::uint32_t network = *base & ~(size - 1);
  const std::uint32_t hosts = size - 2; // offsets 1 .. size-2
  const std::uint32_t start = static_cast<std::uint32_t>(seed % hosts);
  for (std::uint32_t i = 0; i < hosts; ++i) {
    auto candidate = format_ipv4(network + 1 + (start + i) % hosts);
    if (!taken(candidate))
      return candidate;
  }
  return std::nullopt;
}

std::optional<std::string> allocate_peer_ip(const std::string& prefix,
                                            const std::set<std::string>& taken,
                                            std::uint64_t seed) {
  // Canonical dotted forms, so "100.64.000.001" and "100.64.0.1" are one address.
  std::set<std::string> used;
  for (const auto& t : taken)
    if (auto ip = parse_ipv4(t))
      used.insert(format_ipv4(*ip));
  return allocate_peer_ip_with(
      prefix, [&](const std::string& ip) { return used.count(ip) > 0; }, seed);
}

std::optional<std::string> punycode_encode(const std::string& utf8) {
  // Decode UTF-8 into code points.
  std::vector<std::uint32_t> cps;
  for (std::size_t i = 0; i < utf8.size();) {
    const unsigned char c = static_cast<unsigned char>(utf8[i]);
    std::uint32_t cp;
    int extra;
    if (c < 0x80) {
      cp = c;
      extra = 0;
    } else if ((c & 0xE0) == 0xC0) {
      cp = c & 0x1F;
      extra = 1;
    } else if ((c & 0xF0) == 0xE0) {
      cp = c & 0x0F;
      extra = 2;
    } else if ((c & 0xF8) == 0xF0) {
      cp = c & 0x07;
      extra = 3;
    } else {
      return std::nullopt;
    }
    if (i + extra >= utf8.size() && extra > 0)
      return std::nullopt; // truncated sequence
    for (int k = 1; k <= extra; ++k) {
      const unsigned char cc = static_cast<unsigned char>(utf8[i + k]);
      if ((cc & 0xC0) != 0x80)
        return std::nullopt;
      cp = (cp << 6) | (cc & 0x3F);
    }
    cps.push_back(cp);
    i += 1 + extra;
  }
  constexpr std::uint32_t base = 36, tmin = 1, tmax = 26, skew = 38, damp = 700;
  auto digit = [](std::uint32_t d) { return static_cast<char>(d < 26 ? 'a' + d : '0' + (d - 26)); };
  auto adapt = [&](std::uint32_t delta, std::uint32_t points, bool first) {
    delta = first ? delta / damp : delta / 2;
    delta += delta / points;
    std::uint32_t k = 0;
    while (delta > ((base - tmin) * tmax) / 2) {
      delta /= base - tmin;
      k += base;
    }
    return k + (base - tmin + 1) * delta / (delta + skew);
  };
  std::string out;
  for (auto cp : cps)
    if (cp < 0x80)
      out += static_cast<char>(cp);
  const std::uint32_t basic = static_cast<std::uint32_t>(out.size());
  std::uint32_t handled = basic;
  if (basic > 0)
    out += '-';
  std::uint32_t n = 0x80, delta = 0, bias = 72;
  while (handled < cps.size()) {
    std::uint32_t m = UINT32_MAX;
    for (auto cp : cps)
      if (cp >= n && cp < m)
        m = cp;
    delta += (m - n) * (handled + 1);
    n = m;
    for (auto cp : cps) {
      if (cp < n)
        ++delta;
      if (cp == n) {
        std::uint32_t q = delta;
        for (std::uint32_t k = base;; k += base) {
          const std::uint32_t t = k <= bias ? tmin : (k >= bias + tmax ? tmax : k - bias);
          if (q < t)
            break;
          out += digit(t + (q - t) % (base - t));
          q = (q - t) / (base - t);
        }
        out += digit(q);
        bias = adapt(delta, handled + 1, handled == basic);
        delta = 0;
        ++handled;
      }
    }
    ++delta;
    ++n;
  }
  return out;
}

std::optional<std::string> parsed_domain_label(const std::string& name) {
  // First label of the name (leading dots are skipped, as Go's dns.SplitDomainName does).
  std::size_t start = name.find_first_not_of('.');
  if (start == std::string::npos)
    return std::nullopt;
  std::string raw = name.substr(start, name.find('.', start) - start);
  bool ascii = true;
  for (unsigned char c : raw)
    ascii = ascii && c < 0x80;
  if (!ascii) {
    auto p = punycode_encode(raw);
    if (!p)
      return std::nullopt;
    raw = "xn--" + *p;
  }
  std::string label;
  bool in_run = false;
  for (unsigned char c : raw) {
    if (std::isalnum(c) || c == '-') {
      label += static_cast<char>(std::tolower(c));
      in_run = false;
    } else if (!in_run) {
      label += '-';
      in_run = true;
    }
  }
  if (label.size() > 58)
    label.resize(59);
  if (label.empty())
    return std::nullopt;
  return label;
}

std::optional<std::string>
unique_host_label_with(const std::string& label,
                       const std::function<bool(const std::string&)>& taken) {
  if (!taken(label))
    return label;
  for (int i = 1; i < 1000; ++i) {
    std::string candidate = label + "-" + std::to_string(i);
    if (!taken(candidate))
      return candidate;
  }
  return std::nullopt;
}

std::optional<std::string> unique_host_label(const std::string& label,
                                             const std::set<std::string>& taken) {
  return unique_host_label_with(label, [&](const std::string& l) { return taken.count(l) > 0; });
}

bool login_expired(const account& a, const peer& p, double now_unix) {
  if (p.user_id.empty() || !p.login_expiration_enabled || !a.settings.peer_login_expiration_enabled)
    return false;
  if (p.status.login_expired)
    return true;
  if (!p.last_login)
    return false;
  auto last = parse_store_time(*p.last_login);
  return last && *last + static_cast<double>(a.settings.peer_login_expiration_ns) / 1e9 <= now_unix;
}

} // namespace nbm::core
