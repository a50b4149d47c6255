#include "server/port_mux.hpp"

#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

namespace nbm::server {

namespace {

constexpr char http2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr std::size_t preface_len = sizeof(http2_preface) - 1; // 24

bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    auto w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// Copies bytes both ways until both directions are closed.
void relay(int a, int b) {
  pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
  bool open[2] = {true, true};
  char buf[16384];
  while (open[0] || open[1]) {
    fds[0].fd = open[0] ? a : -1;
    fds[1].fd = open[1] ? b : -1;
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (!open[i] || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      const int from = i == 0 ? a : b, to = i == 0 ? b : a;
      auto n = ::recv(from, buf, sizeof buf, 0);
      if (n > 0 && write_all(to, buf, static_cast<std::size_t>(n)))
        continue;
      open[i] = false;
      ::shutdown(to, SHUT_WR);
    }
  }
  ::close(a);
  ::close(b);
}

std::string ip_of(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(ss).sin_addr, buf, sizeof buf);
  else if (ss.ss_family == AF_INET6) {
    const auto& a6 = reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a6))
      inet_ntop(AF_INET, &a6.s6_addr[12], buf, sizeof buf);
    else
      inet_ntop(AF_INET6, &a6, buf, sizeof buf);
  }
  return buf;
}

} // namespace

port_mux::~port_mux() {
  stop();
}

bool port_mux::start(const std::string& host, int port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0)
    return false;
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1 ||
      ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 512) != 0 || ::pipe2(wake_, O_CLOEXEC) != 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
    return false;
  }
  th_ = std::thread([this] { accept_loop(); });
  return true;
}

void port_mux::stop() {
  if (listen_fd_ < 0)
    return;
  stopping_ = true;
  const char x = 0;
  (void)!::write(wake_[1], &x, 1);
  if (th_.joinable())
    th_.join();
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [this] { return classifying_ == 0; });
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
  listen_fd_ = -1;
}

void port_mux::accept_loop() {
  while (!stopping_) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (fds[1].revents)
      break;
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    const int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
    if (fd < 0)
      continue;
    {
      std::lock_guard<std::mutex> lk(mu_);
      ++classifying_;
    }
    std::thread([this, fd, ip = ip_of(ss)] {
      classify(fd, ip);
      std::lock_guard<std::mutex> lk(mu_);
      --classifying_;
      cv_.notify_all();
    }).detach();
  }
}

void port_mux::classify(int fd, const std::string& ip) {
  // Peek until the first bytes decide: the full HTTP/2 preface, or something else.
  char buf[preface_len];
  std::size_t have = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (have < preface_len) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || stopping_ || ::poll(&p, 1, static_cast<int>(std::min<long>(left, 200))) < 0) {
      ::close(fd);
      return;
    }
    if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
      continue;
    auto n = ::recv(fd, buf, preface_len, MSG_PEEK);
    if (n <= 0) {
      ::close(fd);
      return;
    }
    have = static_cast<std::size_t>(n);
    if (std::memcmp(buf, http2_preface, have) != 0)
      break; // not HTTP/2
    if (have < preface_len)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (have == preface_len && std::memcmp(buf, http2_preface, preface_len) == 0) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // gRPC's event engine reads its sockets non-blocking (its own listener sets this too).
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
    grpc_.adopt(fd, ip);
    return;
  }
  // HTTP/1.1: relay to the REST listener on loopback (for as long as the connection lives).
  const int up = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(http_port_));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (up < 0 || ::connect(up, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    spdlog::warn("port mux: REST listener unreachable on 127.0.0.1:{}", http_port_);
    if (up >= 0)
      ::close(up);
    ::close(fd);
    return;
  }
  std::thread([fd, up] { relay(fd, up); }).detach();
}

} // namespace nbm::server
