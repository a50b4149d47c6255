// NetBird's gRPC ManagementService: envelope crypto, and hand-off to the actors.
#pragma once

#include "actors/wire_facade.hpp"
#include "api/http/jwt.hpp"
#include "config/config.hpp"
#include "core/session_token.hpp"

#include <memory>
#include <string>

namespace nbm::api {

struct grpc_deps {
  // The one door into the actors: every RPC is one typed request to it, answered with a deadline.
  std::shared_ptr<actors::wire_facade> door;
  std::string server_public;  // raw 32 bytes
  std::string server_private; // raw 32 bytes
  config::management_config cfg;
  std::string dns_domain = "netbird.selfhosted";
  std::shared_ptr<http::jwt_verifier> jwt; // SSO logins of peers; null: none configured
};

class grpc_server {
public:
  // Serves NetBird's ManagementService over our own HTTP/2 transport (api/grpc/h2_server); it
  // listens on no port: connections arrive through adopt() from the front doors.
  explicit grpc_server(grpc_deps deps);
  ~grpc_server();
  grpc_server(const grpc_server&) = delete;
  grpc_server& operator=(const grpc_server&) = delete;

  // Serves an accepted connection (its HTTP/2 preface not yet read) from `remote_ip`; `remote` is
  // the same with its port, as the logs name the connection ("192.0.2.1:51820").
  void adopt(int fd, const std::string& remote_ip, const std::string& remote);
  // Ends every stream and stops serving.
  void shutdown();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace nbm::api
