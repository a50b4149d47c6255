// What TLS costs on the gRPC port: run it once against a plaintext server and once against a TLS
// one (--ca) and compare. Prints
//   - the latency of GetServerKey calls one after another on one connection (p50, p99, mean),
//   - calls per second from --threads threads sharing one connection,
//   - the time to a first answer on a new connection (TCP + TLS handshake + HTTP/2 setup),
//   - the server's resident memory per open idle connection (--pid: read from /proc).
//
//   build/tools/bench_tls --server 127.0.0.1:PORT [--ca ca.pem] [--pid PID]
//                         [--calls 4000] [--threads 8] [--conns 300]
#include "tools/peer_sim/peer_client.hpp"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using clk = std::chrono::steady_clock;

long rss_kib(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0)
      return std::atol(line.c_str() + 6);
  return -1;
}

std::shared_ptr<grpc::ChannelCredentials> creds_from(const std::string& ca) {
  if (ca.empty())
    return grpc::InsecureChannelCredentials();
  std::ifstream in(ca);
  std::stringstream s;
  s << in.rdbuf();
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = s.str();
  return grpc::SslCredentials(o);
}

// A channel of its own (not shared with the others through gRPC's global subchannel pool).
std::unique_ptr<management::ManagementService::Stub>
own_stub(const std::string& target, const std::shared_ptr<grpc::ChannelCredentials>& creds,
         int salt) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt("nbm.bench.salt", salt);
  return management::ManagementService::NewStub(grpc::CreateCustomChannel(target, creds, args));
}

bool call(management::ManagementService::Stub& stub) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  management::Empty req;
  management::ServerKeyResponse res;
  return stub.GetServerKey(&ctx, req, &res).ok();
}

double ms(clk::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

} // namespace

int main(int argc, char** argv) {
  std::string server, ca;
  int pid = 0, calls = 4000, threads = 8, conns = 300;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--server")
      server = v;
    else if (a == "--ca")
      ca = v;
    else if (a == "--pid")
      pid = std::atoi(v.c_str());
    else if (a == "--calls")
      calls = std::atoi(v.c_str());
    else if (a == "--threads")
      threads = std::atoi(v.c_str());
    else if (a == "--conns")
      conns = std::atoi(v.c_str());
  }
  if (server.empty()) {
    std::cerr << "usage: bench_tls --server HOST:PORT [--ca ca.pem] [--pid PID] [--calls N] "
                 "[--threads T] [--conns K]\n";
    return 2;
  }
  const auto creds = creds_from(ca);
  std::printf("bench_tls: %s, %s\n", server.c_str(), ca.empty() ? "plaintext" : "TLS");

  auto stub = own_stub(server, creds, 0);
  if (!call(*stub)) {
    std::cerr << "GetServerKey fails on " << server << "\n";
    return 1;
  }
  for (int i = 0; i < 200; ++i) // warm up
    call(*stub);
  std::vector<double> lat;
  lat.reserve(calls);
  for (int i = 0; i < calls; ++i) {
    const auto t0 = clk::now();
    if (!call(*stub))
      return 1;
    lat.push_back(ms(clk::now() - t0));
  }
  std::sort(lat.begin(), lat.end());
  double sum = 0;
  for (double l : lat)
    sum += l;
  std::printf("sequential GetServerKey x%d: p50 %.3f ms, p99 %.3f ms, mean %.3f ms\n", calls,
              lat[lat.size() / 2], lat[lat.size() * 99 / 100], sum / lat.size());

  {
    const auto t0 = clk::now();
    std::vector<std::thread> th;
    for (int t = 0; t < threads; ++t)
      th.emplace_back([&] {
        for (int i = 0; i < calls / threads; ++i)
          call(*stub);
      });
    for (auto& t : th)
      t.join();
    const double secs = std::chrono::duration<double>(clk::now() - t0).count();
    std::printf("%d threads on one connection: %.0f calls/s\n", threads,
                (calls / threads) * threads / secs);
  }

  const long before = pid > 0 ? rss_kib(pid) : -1;
  std::vector<std::unique_ptr<management::ManagementService::Stub>> open;
  double setup = 0;
  for (int i = 0; i < conns; ++i) {
    const auto t0 = clk::now();
    open.push_back(own_stub(server, creds, i + 1));
    if (!call(*open.back())) {
      std::cerr << "connection " << i << " failed\n";
      return 1;
    }
    setup += ms(clk::now() - t0);
  }
  std::printf("new connection to a first answer: mean %.3f ms over %d\n", setup / conns, conns);
  if (pid > 0) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const long after = rss_kib(pid);
    std::printf("server RSS: %ld KiB -> %ld KiB with %d more idle connections: %.1f KiB each\n",
                before, after, conns, double(after - before) / conns);
  }
  return 0;
}
