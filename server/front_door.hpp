// The listening port of the REST API, and of gRPC when they share one (NetBird's default): an
// asynchronous server (Boost.Asio + Boost.Beast) on a couple of io threads, so a slow or idle
// client holds a socket and a few hundred bytes, never a thread.
//
// Each accepted connection waits (with the header deadline) for its first bytes, which
// classify_first_bytes() reads: the HTTP/2 preface goes to gRPC (the socket is handed over, its
// bytes unread), HTTP/1.1 is served here, TLS and anything else are closed at once.
//
// With TLS (set_tls) the port speaks nothing else: a ClientHello is answered with the holder's
// current certificate, ALPN is negotiated (http/1.1 when the client offers it, else h2;
// acme-tls/1 for a TLS-ALPN-01 challenge, closed after the handshake), and the decrypted first
// bytes decide as above. A gRPC connection is then handed to gRPC as one end of a socketpair
// whose other end this door feeds with the decrypted bytes (gRPC 1.51 adopts a descriptor only
// as plaintext); plaintext HTTP/1.1 gets 400 "Client sent an HTTP request to an HTTPS server."
// (as Go's server) and any other plaintext is closed. HTTP/1.1
// requests are read under a header deadline and a body deadline, with size limits (431, 413),
// answered by rest_api::handle on a bounded worker pool (it blocks on the actors; the io threads
// never do), and kept alive for a short idle time.
//
// Unclassified and HTTP/1.1 connections are capped per source address and in total; a
// connection handed to gRPC no longer counts (many peers behind one NAT share an address).
//
// A door may serve one page instead of the API (the metrics port's /metrics): the same deadlines,
// limits, caps and worker pool, GET and HEAD of that path only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace nbm::api::http {
class rest_api;
}

namespace nbm::server {
class tls_context;
}

namespace nbm::server {

struct front_door_options {
  int header_timeout_ms = 10000; // NBM_HTTP_HEADER_TIMEOUT_MS: accept -> first bytes + header
  int body_timeout_ms = 30000;   // NBM_HTTP_BODY_TIMEOUT_MS: header -> whole body
  int idle_timeout_ms = 5000;    // NBM_HTTP_IDLE_TIMEOUT_MS: keep-alive wait for the next request
  int write_timeout_ms = 30000;  // an answer the client does not read
  std::size_t header_limit = 16 * 1024;     // 431 above
  std::size_t body_limit = 4 * 1024 * 1024; // NBM_HTTP_MAX_BODY_BYTES; 413 above
  int max_conns_per_ip = 128;               // NBM_HTTP_MAX_CONNS_PER_IP; 0: no cap
  int max_conns = 8192;                     // NBM_HTTP_MAX_CONNS; 0: no cap
  int workers = 8;                          // NBM_HTTP_WORKERS: threads running rest_api::handle
  std::size_t queue_limit = 1024;           // requests waiting for a worker; 503 above
  int io_threads = 2;
  int backlog = 1024;

  // The defaults above, overridden by the NBM_HTTP_* environment variables named beside them.
  static front_door_options from_env();
};

// Takes a connection whose first bytes are the HTTP/2 preface (still unread), non-blocking, with
// TCP_NODELAY set; `remote_ip` is the peer's address, `remote` the same with its port
// ("192.0.2.1:51820", "[2001:db8::1]:51820"): the TCP connection's own peer (getpeername), also
// when gRPC reads a TLS connection's decrypted bytes from a socketpair.
using grpc_handoff =
    std::function<void(int fd, const std::string& remote_ip, const std::string& remote)>;

struct front_door_stats {
  std::uint64_t accepted = 0;
  std::uint64_t refused_per_ip = 0; // closed at accept: the source address is at its cap
  std::uint64_t refused_total = 0;  // closed at accept: the global cap is reached
  std::uint64_t to_grpc = 0;
  std::uint64_t http_requests = 0;
  std::uint64_t timed_out = 0;  // closed by a deadline (first bytes, header, body, idle, write)
  std::uint64_t closed_tls = 0; // TLS on a plaintext port
  std::uint64_t closed_other = 0;
  std::uint64_t closed_plaintext = 0; // plaintext on a TLS port
  std::uint64_t tls_handshakes = 0;   // completed
  std::uint64_t tls_failed = 0;       // handshakes that failed or timed out
  std::uint64_t acme_challenges = 0;  // TLS-ALPN-01 handshakes answered
  std::uint64_t busy = 0;             // 503: the worker queue was full
  std::size_t open = 0;               // unclassified + HTTP/1.1 connections now
};

// One page a door serves instead of the API: GET (or HEAD) of `path` is answered with what
// `render` returns (called on the worker pool, so it may block for a while), as `content_type`;
// any other path is 404, any other method 405.
struct page {
  std::string path;
  std::string content_type;
  std::function<std::string()> render;
};

class front_door {
public:
  explicit front_door(api::http::rest_api& api,
                      front_door_options opts = front_door_options::from_env());
  explicit front_door(page served, front_door_options opts = front_door_options::from_env());
  ~front_door();
  front_door(const front_door&) = delete;
  front_door& operator=(const front_door&) = delete;

  // Connections that begin with the HTTP/2 preface go to `to_grpc`; without it (the REST API on a
  // port of its own) they are closed. Call before start().
  void set_grpc(grpc_handoff to_grpc);
  // Serve TLS only, with the holder's current certificate at each handshake. Call before start().
  void set_tls(std::shared_ptr<tls_context> tls);
  // gRPC only (NetBird's legacy port): HTTP/1.1 requests are closed. Call before start().
  void set_grpc_only();

  // Binds host:port (0: any free port) and starts serving; false if it cannot be bound, with the
  // reason in `why` ("address already in use"). "::" listens on IPv6 and IPv4 (as Go's ":port"),
  // or on IPv4 alone where the system has no IPv6.
  bool start(const std::string& host, int port, std::string* why = nullptr);
  int port() const;
  // Closes the port and every connection it holds; waits only for requests already running in
  // rest_api::handle.
  void stop();

  front_door_stats stats() const;

  struct impl;

private:
  std::unique_ptr<impl> p_;
};

} // namespace nbm::server
