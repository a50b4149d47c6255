// fresh_channels: N fresh gRPC channels to the management port, each making exactly one call
// (GetServerKey), P at a time, no retries. Every channel is a new TCP connection through the
// front door's hand-off to gRPC, so a connection lost in that hand-off shows as a failed call.
//
//   fresh_channels --server H:P [--channels N (200)] [--parallel P (8)] [--idle-ms M]
//
// --idle-ms M: before the N calls, one call on a client that then stays idle for M ms (a NetBird
// agent between two Logins, a test between two steps) and calls once more: its connection must
// have survived the server's keepalive PINGs. Printed as "idle_client: ok" or "idle_client:
// failed CODE MESSAGE" (and exit 1).
//
// Output: "fresh_channels: channels=N ok=K failed=F ms=T" and one "error: CODE MESSAGE" line per
// distinct failure; exit 0 when every call succeeded, 1 otherwise, 2 on bad usage.
#include "tools/peer_sim/peer_client.hpp"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  std::string server;
  long channels = 200, parallel = 8, idle_ms = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "usage: fresh_channels --server H:P [--channels N] [--parallel P]\n");
      return 2;
    }
    const std::string v = argv[++i];
    if (a == "--server")
      server = v;
    else if (a == "--channels")
      channels = std::strtol(v.c_str(), nullptr, 10);
    else if (a == "--parallel")
      parallel = std::strtol(v.c_str(), nullptr, 10);
    else if (a == "--idle-ms")
      idle_ms = std::strtol(v.c_str(), nullptr, 10);
    else {
      std::fprintf(stderr, "unknown option %s\n", a.substr(0, 64).c_str());
      return 2;
    }
  }
  if (server.empty() || channels < 1 || parallel < 1 || parallel > 1024) {
    std::fprintf(stderr, "usage: fresh_channels --server H:P [--channels N] [--parallel P]\n");
    return 2;
  }
  std::unique_ptr<nbm::tools::peer_client> first;
  bool idle_failed = false;
  if (idle_ms > 0) {
    first = std::make_unique<nbm::tools::peer_client>(server);
    if (const auto r = first->fetch_server_key(); !r.ok()) {
      std::printf("fresh_channels: the first call failed: %d %s\n", r.code, r.message.c_str());
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(idle_ms));
    const auto r = first->fetch_server_key();
    if (r.ok())
      std::printf("idle_client: ok\n");
    else
      std::printf("idle_client: failed %d %s\n", r.code, r.message.c_str());
    idle_failed = !r.ok();
  }
  std::atomic<long> next{0}, ok{0};
  std::mutex mu;
  std::map<std::string, long> errors;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (long w = 0; w < parallel; ++w)
    workers.emplace_back([&] {
      while (next.fetch_add(1) < channels) {
        nbm::tools::peer_client c(server); // a channel of its own: a new connection
        const auto r = c.fetch_server_key();
        if (r.ok()) {
          ++ok;
          continue;
        }
        std::lock_guard<std::mutex> lk(mu);
        ++errors[std::to_string(r.code) + " " + r.message];
      }
    });
  for (auto& t : workers)
    t.join();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  std::printf("fresh_channels: channels=%ld ok=%ld failed=%ld ms=%lld\n", channels, ok.load(),
              channels - ok.load(), static_cast<long long>(ms));
  for (const auto& [what, n] : errors)
    std::printf("error: %s (x%ld)\n", what.c_str(), n);
  return ok.load() == channels && !idle_failed ? 0 : 1;
}
