// A crowd of slow and idle clients on one TCP port (127.0.0.1), from a source address of its own
// (127.0.0.2 by default: all of 127/8 is loopback on Linux), for the slow-clients benchmark and
// e2e test. Three kinds in turn:
//   idle     connects and sends nothing;
//   trickle  sends a request line, then one more header byte every `trickle_ms` (slowloris);
//   halfbody sends a whole header announcing 1000 body bytes, then 500, then nothing.
// A connection the server closes is opened again after `reopen_ms`, so the crowd keeps pressing.
// Header-only, POSIX sockets, one thread.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace nbm::tools {

// Lifts this process's open-files soft limit to the hard one; returns the limit now in force.
inline long raise_open_files_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return -1;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
    ::getrlimit(RLIMIT_NOFILE, &rl);
  }
  return static_cast<long>(rl.rlim_cur);
}

struct slow_crowd_options {
  int port = 0;
  std::string source = "127.0.0.2";
  int conns = 1000;
  int trickle_ms = 1000;
  int reopen_ms = 500;
};

class slow_crowd {
public:
  enum class kind { idle, trickle, halfbody };

  explicit slow_crowd(slow_crowd_options o) : o_(std::move(o)) {
    slots_.resize(static_cast<std::size_t>(o_.conns));
    for (std::size_t i = 0; i < slots_.size(); ++i)
      slots_[i].k = static_cast<kind>(i % 3);
    th_ = std::thread([this] { loop(); });
  }
  ~slow_crowd() { stop(); }
  slow_crowd(const slow_crowd&) = delete;
  slow_crowd& operator=(const slow_crowd&) = delete;

  void stop() {
    stop_ = true;
    if (th_.joinable())
      th_.join();
    for (auto& s : slots_)
      if (s.fd >= 0) {
        ::close(s.fd);
        s.fd = -1;
      }
    open_ = 0;
  }
  // Connections open now (connected, not closed by the server).
  int open() const { return open_; }
  std::uint64_t connects() const { return connects_; }
  std::uint64_t connect_failures() const { return connect_failures_; }
  // Connections the server closed, by kind.
  std::uint64_t closed(kind k) const { return closed_[static_cast<int>(k)]; }

private:
  using clk = std::chrono::steady_clock;
  struct slot {
    int fd = -1;
    kind k = kind::idle;
    clk::time_point next; // next trickle byte, or next reopen
  };

  void open_slot(slot& s, clk::time_point now) {
    s.next = now + std::chrono::milliseconds(o_.reopen_ms);
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      ++connect_failures_;
      return;
    }
    timeval tv{2, 0}; // a connect to a full backlog gives up after 2 s
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    ::inet_pton(AF_INET, o_.source.c_str(), &src.sin_addr);
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(static_cast<std::uint16_t>(o_.port));
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0 ||
        ::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) {
      ::close(fd);
      ++connect_failures_;
      return;
    }
    ++connects_;
    std::string first;
    if (s.k == kind::trickle)
      first = "GET /api/peers HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    else if (s.k == kind::halfbody)
      first = "POST /api/groups HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              "Content-Length: 1000\r\n\r\n" +
              std::string(500, ' ');
    if (!first.empty() && ::send(fd, first.data(), first.size(), MSG_NOSIGNAL) < 0) {
      ::close(fd);
      return;
    }
    s.fd = fd;
    s.next = now + std::chrono::milliseconds(o_.trickle_ms);
    ++open_;
  }

  void closed_by_server(slot& s, clk::time_point now) {
    ::close(s.fd);
    s.fd = -1;
    --open_;
    ++closed_[static_cast<int>(s.k)];
    s.next = now + std::chrono::milliseconds(o_.reopen_ms);
  }

  void loop() {
    std::vector<pollfd> fds;
    std::vector<slot*> of;
    while (!stop_) {
      auto now = clk::now();
      fds.clear();
      of.clear();
      for (auto& s : slots_) {
        if (stop_)
          return;
        if (s.fd < 0) {
          if (now >= s.next)
            open_slot(s, now);
        } else if (s.k == kind::trickle && now >= s.next) {
          if (::send(s.fd, "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            closed_by_server(s, now);
          else
            s.next = now + std::chrono::milliseconds(o_.trickle_ms);
        }
        if (s.fd >= 0) {
          fds.push_back({s.fd, POLLIN | POLLRDHUP, 0});
          of.push_back(&s);
        }
      }
      if (::poll(fds.data(), fds.size(), 50) <= 0)
        continue;
      now = clk::now();
      for (std::size_t i = 0; i < fds.size(); ++i) {
        if (!fds[i].revents)
          continue;
        char buf[4096];
        const auto n = ::recv(fds[i].fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0 || (fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR)))
          closed_by_server(*of[i], now);
      }
    }
  }

  slow_crowd_options o_;
  std::vector<slot> slots_;
  std::thread th_;
  std::atomic<bool> stop_{false};
  std::atomic<int> open_{0};
  std::atomic<std::uint64_t> connects_{0}, connect_failures_{0};
  std::atomic<std::uint64_t> closed_[3] = {0, 0, 0};
};

} // namespace nbm::tools
