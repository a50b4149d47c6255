// A TCP port for the servers, CAs and listeners the tests start: one that binds now, drawn at
// random below the kernel's ephemeral range (32768-60999 on Linux). A port the kernel picks for
// port 0 is an ephemeral one, and under load (thousands of client connections, listeners on port
// 0) another socket took it between the pick and the server's bind ("address already in use").
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>

namespace nbm::test {

namespace detail {

// Whether a listener could bind `port` now: on [::] dual-stack as the server binds it, or on
// 127.0.0.1 where IPv6 is off.
inline bool bindable(int port) {
  int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  if (fd >= 0) {
    int off = 0;
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_any;
    a.sin6_port = htons(static_cast<uint16_t>(port));
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
  }
  fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  a.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

} // namespace detail

inline int free_port() {
  static std::mt19937 rng(std::random_device{}() ^ static_cast<unsigned>(::getpid()));
  std::uniform_int_distribution<int> pick(20000, 32767);
  for (int tries = 0; tries < 1000; ++tries) {
    const int port = pick(rng);
    if (detail::bindable(port))
      return port;
  }
  return 0; // every port taken: the server's bind fails and says so
}

} // namespace nbm::test
