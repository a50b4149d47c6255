// libFuzzer target: our HTTP/2 transport for gRPC (api/grpc/h2_server). Each input is what a client
// sends after the connection preface (frames, or anything else), over a socketpair to a server
// whose handler answers every call with its request (unary) or three messages (Sync). The input
// ends with the client's side of the socket; the server must then close the connection, without
// a crash, a sanitizer report or a hang (libFuzzer's -timeout).
// Seeds: tests/fuzz/corpus/h2/ (a Sync and a Login request, SETTINGS, PING, WINDOW_UPDATE, RST).
#include "api/grpc/h2_server.hpp"

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

nbm::api::h2_server& server() {
  static auto srv = [] {
    nbm::api::h2_options o;
    o.max_message = 64 * 1024;
    o.serves = [](const std::string& m) { return m == "Login" || m == "Sync"; };
    return nbm::api::h2_server::start(
        [](const std::shared_ptr<nbm::api::rpc_call>& c) {
          if (c->method == "Sync") {
            for (int i = 0; i < 3; ++i)
              c->write(c->request);
            c->finish({});
          } else {
            c->reply({}, c->request);
          }
        },
        o);
  }();
  return *srv;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto& srv = server();
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
    std::abort();
  srv.adopt(sv[0], "192.0.2.1", "192.0.2.1:1");
  timeval tv{5, 0};
  setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(sv[1], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  std::string bytes = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  bytes.append(reinterpret_cast<const char*>(data), size);
  // The server reads while we write; what it answers is read after (a socketpair buffers plenty
  // for these inputs; a write that times out means the server stopped reading: it closed).
  std::size_t off = 0;
  while (off < bytes.size()) {
    const auto n = ::write(sv[1], bytes.data() + off, bytes.size() - off);
    if (n <= 0)
      break;
    off += static_cast<std::size_t>(n);
  }
  ::shutdown(sv[1], SHUT_WR);
  char buf[65536];
  for (;;) {
    const auto n = ::read(sv[1], buf, sizeof buf);
    if (n == 0)
      break; // closed by the server: the expected end
    if (n < 0) {
      std::fprintf(stderr, "fuzz_h2: the server did not close the connection within 5 s\n");
      std::abort();
    }
  }
  ::close(sv[1]);
  return 0;
}
