// One listening port for gRPC and the REST API, as NetBird serves them: each accepted connection
// is classified by its first bytes — the HTTP/2 client preface goes to the gRPC server (which
// adopts the socket), anything else (HTTP/1.1) is relayed to the REST listener on loopback.
#pragma once

#include "api/grpc/server.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace nbm::server {

class port_mux {
public:
  port_mux(api::grpc_server& grpc, int http_port) : grpc_(grpc), http_port_(http_port) {}
  ~port_mux();
  port_mux(const port_mux&) = delete;
  port_mux& operator=(const port_mux&) = delete;

  // Binds host:port and accepts on a thread; false if the port cannot be bound.
  bool start(const std::string& host, int port);
  // Stops accepting and waits for connections still being classified (relays run on).
  void stop();

private:
  void accept_loop();
  void classify(int fd, const std::string& ip);

  api::grpc_server& grpc_;
  int http_port_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::thread th_;
  std::mutex mu_;
  std::condition_variable cv_;
  int classifying_ = 0;
  std::atomic<bool> stopping_{false};
};

} // namespace nbm::server
