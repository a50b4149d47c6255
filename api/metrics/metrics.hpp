// Prometheus metrics on --metrics-port under /metrics, where NetBird serves its own: counters of
// the requests the transport layers answered, and the actors' state asked of them at each scrape
// (their status records), so the numbers are the ones the actors hold, never a second copy.
#pragma once

#include "actors/interfaces.hpp"

#include <memory>
#include <string>

namespace caf {
class actor_system;
}

namespace nbm::api::metrics {

// Counted by the transport layers: thread-safe, cheap, and harmless without an exporter.
void rest_request(const std::string& method, int status, double seconds);
// `method`: the gRPC method's name ("Login", "Sync", ...); `code`: the status it ended with.
void grpc_request(const std::string& method, int code);

// What the scrape asks for its gauges (any handle may be invalid: its metrics are left out).
struct sources {
  actors::peer_directory directory;
  actors::status_writer writer;
  actors::expiry_actor expiry;
};

class exporter {
public:
  exporter(caf::actor_system& sys, sources src);
  ~exporter();
  exporter(const exporter&) = delete;
  exporter& operator=(const exporter&) = delete;
  // Serves /metrics on `address` ("0.0.0.0:9090"); false (with `error`) if it cannot listen.
  bool start(const std::string& address, std::string& error);
  int port() const;

  struct impl;

private:
  std::unique_ptr<impl> p_;
};

} // namespace nbm::api::metrics
