// Prometheus metrics on --metrics-port under /metrics, where NetBird serves its own. The series
// NetBird's management exports that we can compute carry NetBird's names as its OpenTelemetry
// Prometheus exporter prints them (management_grpc_*, management_http_*, ...: what NetBird's
// Grafana dashboards query), plus process metrics and our own (nbm_*): the actors' state, asked
// of them at each scrape through the one status protocol (actors/status.hpp), so the numbers are
// the ones the actors hold, never a second copy.
#pragma once

#include "actors/interfaces.hpp"

#include <memory>
#include <string>
#include <vector>

namespace caf {
class actor_system;
}

namespace nbm::api::metrics {

// Counted by the transport layers: thread-safe, cheap, and harmless without an exporter.

// A REST request answered: `path` is the request's path (its route template becomes the
// `endpoint` label, as NetBird's: "/api/peers/peerId"; "" when no route matches).
void rest_request(const std::string& method, const std::string& path, int status, double seconds);
// A gRPC call began (`method`: "Login", "Sync", "GetServerKey", ...).
void grpc_started(const std::string& method);
// A gRPC call ended with `code` (a unary call's duration is recorded as well).
void grpc_request(const std::string& method, int code);
// How long a call took: a Login until its answer, a Sync until its first map was handed to gRPC.
void grpc_duration(const std::string& method, double seconds);

// NetBird's route template of a REST path, braces removed as NetBird labels it
// ("/api/users/u1/tokens/t2" -> "/api/users/userId/tokens/tokenId"); "" when none matches.
std::string endpoint_of(const std::string& path);

// What the scrape asks for its gauges. The directory lists the actors it knows (peer and account
// actors, the loader, ...); `others` are asked as well (any invalid handle is left out).
struct sources {
  actors::peer_directory directory;
  std::vector<actors::status_target> others;
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
