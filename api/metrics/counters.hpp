// What the transport layers count for /metrics (api/metrics/metrics.hpp serves them): plain
// functions without CAF, so api/grpc and api/http count without seeing the actors.
#pragma once

#include <string>

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

} // namespace nbm::api::metrics
