#include "core/cluster_note.hpp"

#include <charconv>

namespace nbm::core {

namespace {

constexpr std::string_view magic = "nbm1";
constexpr unsigned all_parts = 255;

// An id we can put between blanks: non-empty, printable, no blank, no comma.
bool sendable(std::string_view s) {
  if (s.empty() || s.size() > 200)
    return false;
  for (unsigned char c : s)
    if (c <= ' ' || c >= 0x7f || c == ',')
      return false;
  return true;
}

std::string account_line(const account_note& n, bool with_peers) {
  std::string l = "a " + n.account_id + " " + std::to_string(n.serial) + " " +
                  std::to_string(n.moved) + " " + std::to_string(with_peers ? n.parts : all_parts) +
                  " ";
  if (!with_peers || n.peers.empty()) {
    l += "-";
  } else {
    for (std::size_t i = 0; i < n.peers.size(); ++i) {
      if (i)
        l += ',';
      l += n.peers[i];
    }
  }
  return l + "\n";
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i <= s.size()) {
    auto j = s.find(sep, i);
    if (j == std::string_view::npos)
      j = s.size();
    out.push_back(s.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

template <class T>
bool number(std::string_view s, T& out) {
  if (s.empty())
    return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

} // namespace

std::vector<std::string> encode_cluster(const std::string& replica, std::int64_t published_ns,
                                        const std::vector<account_note>& accounts,
                                        const std::vector<session_note>& sessions) {
  std::vector<std::string> out;
  if (!sendable(replica))
    return out;
  const std::string header =
      std::string(magic) + " " + replica + " " + std::to_string(published_ns) + "\n";
  std::string cur = header;
  const auto add = [&](const std::string& line) {
    if (cur.size() + line.size() > max_payload) {
      out.push_back(std::move(cur));
      cur = header;
    }
    cur += line;
  };
  for (const auto& n : accounts) {
    if (!sendable(n.account_id))
      continue;
    bool peers_ok = true;
    for (const auto& p : n.peers)
      peers_ok = peers_ok && sendable(p);
    auto line = account_line(n, peers_ok);
    if (header.size() + line.size() > max_payload)
      line = account_line(n, false);
    add(line);
  }
  for (const auto& s : sessions) {
    if (!sendable(s.account_id) || !sendable(s.peer_id))
      continue;
    add("s " + s.account_id + " " + s.peer_id + " " + std::to_string(s.token) + " " +
        (s.connected ? "1" : "0") + "\n");
  }
  if (cur.size() > header.size())
    out.push_back(std::move(cur));
  return out;
}

std::optional<cluster_message> decode_cluster(std::string_view payload) {
  if (payload.size() > 8000)
    return std::nullopt;
  auto lines = split(payload, '\n');
  if (lines.empty())
    return std::nullopt;
  auto head = split(lines[0], ' ');
  cluster_message m;
  if (head.size() != 3 || head[0] != magic || !sendable(head[1]) ||
      !number(head[2], m.published_ns))
    return std::nullopt;
  m.replica = std::string(head[1]);
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const auto line = lines[i];
    if (line.empty())
      continue;
    auto f = split(line, ' ');
    if (f[0] == "a" && f.size() == 6 && sendable(f[1])) {
      account_note n;
      n.account_id = std::string(f[1]);
      if (!number(f[2], n.serial) || !number(f[3], n.moved) || !number(f[4], n.parts) ||
          n.parts > all_parts || f[5].empty()) {
        ++m.malformed;
        continue;
      }
      bool ok = true;
      if (f[5] != "-")
        for (auto p : split(f[5], ',')) {
          ok = ok && sendable(p);
          n.peers.emplace_back(p);
        }
      if (!ok) {
        ++m.malformed;
        continue;
      }
      m.accounts.push_back(std::move(n));
    } else if (f[0] == "s" && f.size() == 5 && sendable(f[1]) && sendable(f[2]) &&
               (f[4] == "1" || f[4] == "0")) {
      session_note s;
      s.account_id = std::string(f[1]);
      s.peer_id = std::string(f[2]);
      s.connected = f[4] == "1";
      if (!number(f[3], s.token) || s.token <= 0) {
        ++m.malformed;
        continue;
      }
      m.sessions.push_back(std::move(s));
    } else {
      ++m.malformed;
    }
  }
  return m;
}

} // namespace nbm::core
