// Stand-alone challenge responders for acme::obtain: an HTTP-01 server (plain HTTP, answers
// /.well-known/acme-challenge/<token>) and a TLS-ALPN-01 server (answers only ALPN "acme-tls/1"
// with the validation certificate for the SNI name). One thread each, connections served one at a
// time with a 5 s deadline; meant for a port that does nothing else (80, or a test's port).
#pragma once

#include "acme/acme.hpp"

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace nbm::acme {

class http01_server {
public:
  // Binds host:port (port 0: any free port). Throws acme_error when it cannot.
  http01_server(const std::string& host, int port);
  ~http01_server();
  http01_server(const http01_server&) = delete;
  http01_server& operator=(const http01_server&) = delete;

  int port() const { return port_; }
  void set(const std::string& token, const std::string& key_authorization);
  void clear(const std::string& token);
  // The HTTP-01 half of challenge_hooks, bound to this server.
  void add_to(challenge_hooks& hooks);
  std::size_t answered() const { return answered_; } // challenge requests answered with 200

private:
  void loop();
  void serve(int fd);
  int listen_fd_ = -1, stop_fd_ = -1, port_ = 0;
  std::mutex mu_;
  std::map<std::string, std::string> tokens_;
  std::atomic<std::size_t> answered_{0};
  std::thread thread_;
};

class tls_alpn01_server {
public:
  tls_alpn01_server(const std::string& host, int port);
  ~tls_alpn01_server();
  tls_alpn01_server(const tls_alpn01_server&) = delete;
  tls_alpn01_server& operator=(const tls_alpn01_server&) = delete;

  int port() const { return port_; }
  void set(const std::string& domain, const std::string& cert_pem, const std::string& key_pem);
  void clear(const std::string& domain);
  void add_to(challenge_hooks& hooks);
  // ClientHellos for a challenge name that offered acme-tls/1 (answered with its certificate).
  std::size_t answered() const { return answered_; }

  struct impl; // OpenSSL state, kept out of this header

private:
  void loop();
  int listen_fd_ = -1, stop_fd_ = -1, port_ = 0;
  std::unique_ptr<impl> impl_;
  std::atomic<std::size_t> answered_{0};
  std::thread thread_;
};

} // namespace nbm::acme
