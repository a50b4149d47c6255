// REST and gRPC latency on a running server's port while a crowd of slow and idle clients holds
// connections open on it (tools/slow_crowd.hpp: idle, slowloris header trickle, half a body; the
// crowd connects from 127.0.0.2 so that the per-address cap, if any, falls on it and not on the
// measuring client on 127.0.0.1). Measures first without the crowd, then with it: REST requests
// (a fresh connection each), gRPC GetServerKey on one channel, and on a fresh channel each.
//
//   build/tools/bench_slow_clients --port 33073 [--pat nbp_...] [--conns 1000] [--requests 300]
//       [--path /api/peers] [--source 127.0.0.2] [--trickle-ms 1000]
//
// Start the server with a high enough open-files limit (the server lifts its soft limit to the
// hard one; so does this program). NBM_HTTP_MAX_CONNS_PER_IP=0 on the server lifts its cap.
#include "tools/peer_sim/peer_client.hpp"
#include "tools/slow_crowd.hpp"

#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using namespace nbm;
using clk = std::chrono::steady_clock;

namespace {

struct series {
  std::vector<double> ms;
  int failed = 0;
  void add(clk::time_point began, bool ok) {
    if (!ok) {
      ++failed;
      return;
    }
    ms.push_back(std::chrono::duration<double, std::milli>(clk::now() - began).count());
  }
  void print(const char* name) {
    std::sort(ms.begin(), ms.end());
    const auto at = [&](double q) {
      if (ms.empty())
        return 0.0;
      auto i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(ms.size()))) - 1;
      return ms[std::min(i, ms.size() - 1)];
    };
    std::printf("  %-22s n=%4zu  p50 %8.2f  p99 %8.2f  max %8.2f ms  failed %d\n", name, ms.size(),
                at(0.5), at(0.99), ms.empty() ? 0.0 : ms.back(), failed);
  }
};

struct args {
  int port = 0;
  std::string pat, path = "/api/peers", source = "127.0.0.2";
  int conns = 1000, requests = 300, trickle_ms = 1000;
};

// GetServerKey on a channel of its own: a new TCP connection (no subchannel shared with another
// channel), so it goes through the port's accept and classification.
bool fresh_server_key(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto ch = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  auto stub = management::ManagementService::NewStub(ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  management::Empty req;
  management::ServerKeyResponse resp;
  return stub->GetServerKey(&ctx, req, &resp).ok() && !resp.key().empty();
}

void measure(const args& a, const char* phase, const tools::slow_crowd* crowd) {
  series rest, grpc_same, grpc_new;
  const std::string target = "127.0.0.1:" + std::to_string(a.port);
  const int held_before = crowd ? crowd->open() : 0;
  int unexpected_status = 0;
  std::thread rest_th([&] {
    for (int i = 0; i < a.requests; ++i) {
      httplib::Client cli("127.0.0.1", a.port);
      cli.set_connection_timeout(5);
      cli.set_read_timeout(10);
      cli.set_keep_alive(false);
      httplib::Headers h;
      if (!a.pat.empty())
        h.emplace("Authorization", "Token " + a.pat);
      const auto began = clk::now();
      auto r = cli.Get(a.path, h);
      rest.add(began, static_cast<bool>(r));
      if (r && r->status != (a.pat.empty() ? 401 : 200))
        ++unexpected_status;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  std::thread grpc_th([&] {
    tools::peer_client same(target);
    for (int i = 0; i < a.requests; ++i) {
      const auto began = clk::now();
      grpc_same.add(began, same.fetch_server_key().ok());
      if (i % 10 == 0) {
        const auto b2 = clk::now();
        grpc_new.add(b2, fresh_server_key(target));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  rest_th.join();
  grpc_th.join();
  std::printf("%s: slow connections held %d at the start, %d at the end\n", phase, held_before,
              crowd ? crowd->open() : 0);
  rest.print(("REST GET " + a.path).c_str());
  if (unexpected_status)
    std::printf("  (REST: %d answers with an unexpected status)\n", unexpected_status);
  grpc_same.print("gRPC, one channel");
  grpc_new.print("gRPC, a new channel");
  std::fflush(stdout);
}

} // namespace

int main(int argc, char** argv) {
  args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--port")
      a.port = std::atoi(v.c_str());
    else if (k == "--pat")
      a.pat = v;
    else if (k == "--conns")
      a.conns = std::atoi(v.c_str());
    else if (k == "--requests")
      a.requests = std::atoi(v.c_str());
    else if (k == "--path")
      a.path = v;
    else if (k == "--source")
      a.source = v;
    else if (k == "--trickle-ms")
      a.trickle_ms = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "unknown argument %s\n", k.c_str());
      return 2;
    }
  }
  if (a.port <= 0 || a.conns < 0 || a.requests <= 0) {
    std::fprintf(stderr, "usage: bench_slow_clients --port P [--pat T] [--conns N] [--requests R] "
                         "[--path /api/peers] [--source 127.0.0.2] [--trickle-ms MS]\n");
    return 2;
  }
  const long nofile = tools::raise_open_files_limit();
  std::printf("open files limit %ld; %d slow connections from %s; %d requests per series\n", nofile,
              a.conns, a.source.c_str(), a.requests);
  measure(a, "without slow clients", nullptr);
  tools::slow_crowd crowd({a.port, a.source, a.conns, a.trickle_ms, 500});
  const auto until = clk::now() + std::chrono::seconds(5);
  while (crowd.open() < a.conns && clk::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::this_thread::sleep_for(std::chrono::seconds(1));
  measure(a, "with slow clients", &crowd);
  std::printf("crowd: %llu connects (%llu failed); closed by the server: idle %llu, trickle %llu, "
              "half body %llu\n",
              static_cast<unsigned long long>(crowd.connects()),
              static_cast<unsigned long long>(crowd.connect_failures()),
              static_cast<unsigned long long>(crowd.closed(tools::slow_crowd::kind::idle)),
              static_cast<unsigned long long>(crowd.closed(tools::slow_crowd::kind::trickle)),
              static_cast<unsigned long long>(crowd.closed(tools::slow_crowd::kind::halfbody)));
  crowd.stop();
  return 0;
}
