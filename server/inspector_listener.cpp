#include "server/inspector_listener.hpp"

#include "actors/msg_ring.hpp"
#include "crypto/crypto.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

namespace nbm::server {

namespace {

constexpr std::size_t max_connections = 8;
constexpr std::size_t max_line = 4096;
constexpr auto answer_deadline = std::chrono::seconds(5);
// A trace whose console reads slower than the peer actor handles messages: beyond this many
// waiting, the waiting ones are counted as dropped (and the count sent) instead of held.
constexpr std::size_t max_trace_backlog = 100000;
// A console that reads nothing for this long while tracing is given up on.
constexpr int trace_send_timeout_s = 10;

// Compares without stopping at the first difference (the time says nothing about the token).
bool same(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

bool write_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    auto n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

} // namespace

std::string inspector_token(const std::string& datadir) {
  const auto path = (std::filesystem::path(datadir) / "inspector.token").string();
  if (std::ifstream in(path); in) {
    std::string t;
    std::getline(in, t);
    if (t.size() >= 32)
      return t;
    throw std::runtime_error(path + " holds no token (delete it: a new one is created)");
  }
  const auto t = crypto::random_base62(48);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0)
    throw std::runtime_error("cannot create " + path + ": " + std::strerror(errno));
  const auto line = t + "\n";
  const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ::close(fd);
  if (!ok)
    throw std::runtime_error("cannot write " + path);
  return t;
}

struct inspector_listener::impl : std::enable_shared_from_this<impl> {
  caf::actor_system& sys;
  actors::inspector_actor inspector;
  std::string token;
  int listen_fd = -1;
  std::string bound;
  std::atomic<bool> stopping{false};
  std::thread acceptor;
  std::mutex m;
  std::condition_variable idle;
  std::set<int> open_fds; // one per connection thread (detached; the set empty: all ended)

  impl(caf::actor_system& s, actors::inspector_actor i, std::string t)
      : sys(s), inspector(std::move(i)), token(std::move(t)) {}

  // One connection: `auth <token>`, then questions until it goes away.
  void serve(int fd) {
    std::string buf;
    bool authed = false;
    char chunk[1024];
    caf::scoped_actor self{sys};
    while (!stopping) {
      auto nl = buf.find('\n');
      if (nl == std::string::npos) {
        if (buf.size() > max_line) {
          write_all(fd, "{\"error\":\"line too long\"}\n");
          break;
        }
        auto n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n < 0 && errno == EINTR)
          continue;
        if (n <= 0)
          break;
        buf.append(chunk, static_cast<std::size_t>(n));
        continue;
      }
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r')
        line.pop_back();
      if (!authed) {
        if (line.rfind("auth ", 0) == 0 && same(line.substr(5), token)) {
          authed = true;
          write_all(fd, "{\"ok\":true}\n");
          continue;
        }
        spdlog::warn("inspector: a connection with a wrong token refused");
        write_all(fd, "{\"error\":\"wrong token\"}\n");
        break;
      }
      if (line.rfind("trace ", 0) == 0 || line == "trace") {
        if (!trace(fd, line.size() > 6 ? line.substr(6) : std::string(), buf))
          break;
        continue;
      }
      std::string answer;
      self->request(inspector, answer_deadline, actors::inspect_atom::value, line)
          .receive([&](std::string& a) { answer = std::move(a); },
                   [&](caf::error&) {
                     answer = "{\"error\":\"the inspector did not answer in time\"}";
                   });
      if (!write_all(fd, answer + "\n"))
        break;
    }
    std::lock_guard<std::mutex> g(m);
    open_fds.erase(fd);
    ::close(fd);
    idle.notify_all();
  }

  // `trace <peer>`: a tracer of its own (one scoped actor, gone when this returns, so the peer
  // actor, which monitors it, forgets it whatever ended the trace) receives every message the
  // peer actor handles; each becomes one line. Ends on `stop` (true: the connection goes on) or
  // when the connection goes away (false).
  bool trace(int fd, std::string query, std::string& buf) {
    while (!query.empty() && query.front() == ' ')
      query.erase(0, 1);
    if (query.empty() || query.find(' ') != std::string::npos)
      return write_all(fd, "{\"command\":\"trace\",\"error\":\"usage: trace <id|key|name>\"}\n");
    caf::scoped_actor tracer{sys};
    caf::scoped_actor asker{sys};
    std::string head;
    asker
        ->request(inspector, answer_deadline, actors::trace_atom::value, query,
                  caf::actor_cast<caf::actor>(tracer))
        .receive([&](std::string& a) { head = std::move(a); },
                 [&](caf::error&) {
                   head = "{\"command\":\"trace\",\"error\":\"the inspector did not answer in "
                          "time\"}";
                 });
    if (!write_all(fd, head + "\n"))
      return false;
    if (head.rfind("{\"command\":\"trace\",\"error\"", 0) == 0) // the inspector's refusal
      return true;
    timeval tv{trace_send_timeout_s, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    std::uint64_t events = 0, dropped = 0;
    bool stop = false, gone = false;
    std::string out;
    auto on_event = [&](actors::traced_atom, std::uint64_t seq, std::int64_t at_ms,
                        std::uint8_t what, std::uint64_t token, std::uint64_t serial) {
      const auto e = static_cast<actors::ring_event>(what);
      out += "{\"event\":\"trace\",\"seq\":" + std::to_string(seq) +
             ",\"at_ms\":" + std::to_string(at_ms) + ",\"what\":\"" + actors::to_string(e) +
             "\",\"dir\":\"" + actors::direction(e) + "\",\"token\":" + std::to_string(token) +
             ",\"serial\":" + std::to_string(serial) + "}\n";
      ++events;
    };
    // Anything else that reaches the tracer is dropped (a blocking receive would keep it, and
    // wait behind it).
    auto other = [] {
      return caf::others >>
                 [](caf::message_view&) -> caf::result<caf::message> { return caf::message{}; };
    };
    while (!stopping && !stop && !gone) {
      // Waits up to 50 ms for the next message, then takes whatever else is waiting.
      tracer->receive(
          on_event, other(), caf::after(std::chrono::milliseconds(50)) >> [] {});
      if (const auto backlog = tracer->mailbox().size(); backlog > max_trace_backlog) {
        std::uint64_t n = 0;
        while (!tracer->mailbox().empty()) {
          tracer->receive([&](actors::traced_atom, std::uint64_t, std::int64_t, std::uint8_t,
                              std::uint64_t, std::uint64_t) { ++n; },
                          other());
        }
        dropped += n;
        out += "{\"event\":\"dropped\",\"count\":" + std::to_string(n) + "}\n";
      }
      while (!tracer->mailbox().empty() && out.size() < 256 * 1024)
        tracer->receive(on_event, other());
      if (!out.empty()) {
        if (!write_all(fd, out))
          gone = true;
        out.clear();
      }
      // The console: `stop`, or gone.
      pollfd p{fd, POLLIN, 0};
      while (!gone && !stop && ::poll(&p, 1, 0) > 0) {
        char chunk[512];
        const auto n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) {
          gone = !(n < 0 && errno == EINTR);
          break;
        }
        buf.append(chunk, static_cast<std::size_t>(n));
        for (auto nl = buf.find('\n'); nl != std::string::npos; nl = buf.find('\n')) {
          auto l = buf.substr(0, nl);
          buf.erase(0, nl + 1);
          if (!l.empty() && l.back() == '\r')
            l.pop_back();
          if (l == "stop") {
            stop = true;
            break;
          }
        }
        if (buf.size() > max_line)
          gone = true;
      }
    }
    timeval none{0, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
    if (gone || stopping)
      return false;
    // What arrived before the tracer goes is still sent: the console sees every message up to
    // the summary.
    while (!tracer->mailbox().empty())
      tracer->receive(on_event, other());
    out += "{\"command\":\"trace\",\"stopped\":true,\"events\":" + std::to_string(events) +
           ",\"dropped\":" + std::to_string(dropped) + "}\n";
    return write_all(fd, out);
  }

  void accept_loop() {
    while (!stopping) {
      pollfd p{listen_fd, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0)
        continue;
      const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0)
        continue;
      std::lock_guard<std::mutex> g(m);
      if (open_fds.size() >= max_connections) {
        write_all(fd, "{\"error\":\"too many inspector connections\"}\n");
        ::close(fd);
        continue;
      }
      open_fds.insert(fd);
      std::thread([me = shared_from_this(), fd] { me->serve(fd); }).detach();
    }
  }
};

inspector_listener::inspector_listener(caf::actor_system& sys, actors::inspector_actor inspector,
                                       std::string token)
    : p_(std::make_shared<impl>(sys, std::move(inspector), std::move(token))) {}

inspector_listener::~inspector_listener() {
  p_->stopping = true;
  if (p_->acceptor.joinable())
    p_->acceptor.join();
  {
    // Their threads see the end and close; one waiting for an answer gets it within its deadline.
    std::unique_lock<std::mutex> g(p_->m);
    for (int fd : p_->open_fds)
      ::shutdown(fd, SHUT_RDWR);
    p_->idle.wait_for(g, answer_deadline + std::chrono::seconds(1),
                      [this] { return p_->open_fds.empty(); });
  }
  if (p_->listen_fd >= 0)
    ::close(p_->listen_fd);
}

bool inspector_listener::start(const std::string& address, std::string& error) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos) {
    error = "not host:port: " + address.substr(0, 64);
    return false;
  }
  auto host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  const auto port = address.substr(colon + 1);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    error =
        "not a numeric host:port (" + std::string(gai_strerror(rc)) + "): " + address.substr(0, 64);
    return false;
  }
  const int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || ::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 16) != 0) {
    error = std::strerror(errno);
    if (fd >= 0)
      ::close(fd);
    ::freeaddrinfo(res);
    return false;
  }
  ::freeaddrinfo(res);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  char name[INET6_ADDRSTRLEN] = {0};
  int bound_port = 0;
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, name, sizeof name);
    bound_port = ntohs(a->sin_port);
    p_->bound = std::string(name) + ":" + std::to_string(bound_port);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, name, sizeof name);
    bound_port = ntohs(a->sin6_port);
    p_->bound = "[" + std::string(name) + "]:" + std::to_string(bound_port);
  }
  p_->listen_fd = fd;
  p_->acceptor = std::thread([me = p_] { me->accept_loop(); });
  return true;
}

std::string inspector_listener::bound() const {
  return p_->bound;
}

} // namespace nbm::server
