#include "server/inspector_listener.hpp"

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

std::string inspector_address_from_env() {
  const char* v = std::getenv("NBM_INSPECTOR_ADDR");
  if (!v)
    return "127.0.0.1:33079";
  const std::string s = v;
  if (s == "off" || s == "0" || s == "false" || s == "disabled" || s.empty())
    return "";
  return s;
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
