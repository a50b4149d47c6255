// Prometheus metrics on --metrics-port under /metrics, where NetBird serves its own. The series
// NetBird's management exports that we can compute carry NetBird's names as its OpenTelemetry
// Prometheus exporter prints them (management_grpc_*, management_http_*, ...: what NetBird's
// Grafana dashboards query), plus process metrics and our own (nbm_*): the actors' state, asked
// of them at each scrape through the one status protocol (actors/status.hpp), so the numbers are
// the ones the actors hold, never a second copy.
#pragma once

#include "actors/interfaces.hpp"
#include "api/metrics/counters.hpp"

#include <memory>
#include <string>
#include <vector>

namespace caf {
class actor_system;
}

namespace nbm::api::metrics {

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
  // One scrape in Prometheus' text format (version 0.0.4): the transport layers' counters, the
  // process and the actors' state, asked of them now (waits up to 2 s for their answers).
  // Thread-safe; server/ serves it on --metrics-port (front_door's page).
  std::string render() const;
  static constexpr const char* content_type = "text/plain; version=0.0.4; charset=utf-8";

  struct impl;

private:
  std::unique_ptr<impl> p_;
};

} // namespace nbm::api::metrics
