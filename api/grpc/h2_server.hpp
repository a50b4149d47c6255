// gRPC's wire (HTTP/2, length-prefixed messages, grpc-status trailers) served by our own
// transport over libnghttp2: one event-loop thread owns every connection; a call is handed to the
// service as bytes and answered from any thread. It exists because gRPC's C++ server holds about
// 15 KiB per open call (its call arena and request matcher): a Sync stream held here costs a few
// hundred bytes of transport.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace nbm::api {

// A gRPC status: code 0 is OK; otherwise one of gRPC's codes with its message.
struct rpc_status {
  int code = 0;
  std::string message;
};

class h2_server;
struct h2_connection;

// One RPC: its method, its one request message, and the answers. Every method is safe from any
// thread; an answer to a call that already ended (the client cancelled, the connection went) is
// dropped.
class rpc_call : public std::enable_shared_from_this<rpc_call> {
public:
  std::string method;  // the name after the service: "Login"
  std::string request; // the request message's bytes
  std::string ip;      // the client's address
  std::string remote;  // the same with its port ("192.0.2.1:51820")
  const std::chrono::steady_clock::time_point began = std::chrono::steady_clock::now();

  // A unary answer: the response (sent only when `s` is OK) and the status.
  void reply(rpc_status s, std::string response = {});
  // A server stream's message. One is written at a time; a newer message replaces an older one
  // not yet begun (a newer map supersedes an older).
  void write(std::string message);
  // Ends a server stream with `s` once the message being written is out.
  void finish(rpc_status s);
  // `fn` runs once when the call has ended (answered, cancelled or its connection gone); now if
  // it has already.
  void on_done(std::function<void()> fn);

  // The transport's own state of the call (its event-loop thread only; opaque outside it).
  struct wire;
  std::unique_ptr<wire> wire_;
  explicit rpc_call(const std::shared_ptr<h2_server>& owner);
  ~rpc_call();

private:
  friend class h2_server;
  friend struct h2_connection;
  void ended(); // runs on_done once
  // Runs fn(call, wire, server) on the event-loop thread if the call is still live then (its
  // connection open, its end not yet decided); nothing once the server is gone.
  template <class Fn>
  void on_loop(Fn fn);
  std::weak_ptr<h2_server> owner_;
  std::mutex mu_;
  std::function<void()> done_;
  bool ended_ = false;
};

struct h2_options {
  // HTTP/2 keepalive as NetBird configures its server: a connection silent this long is sent a
  // PING, and closed when nothing arrives within the timeout after it.
  int keepalive_ms = 5000;
  int keepalive_timeout_ms = 2000;
  std::size_t max_message = 4 * 1024 * 1024; // a larger request: RESOURCE_EXHAUSTED
  // Concurrent calls per connection (gRPC sets none; a NetBird client uses one or two; load
  // generators share a connection among thousands of peers).
  unsigned max_streams = 16384;
  unsigned handler_threads = 2;
  // Whether a method (the name after the service) is served; any other is answered UNIMPLEMENTED
  // as soon as its headers arrive.
  std::function<bool(const std::string& method)> serves;
  // Every call's method and the status it ended with (the metrics' counter); from the loop thread.
  std::function<void(const rpc_call& call, int code)> counted;
};

// The transport. `handler` gets each complete request (on a handler thread, never the loop's).
class h2_server : public std::enable_shared_from_this<h2_server> {
public:
  using handler_fn = std::function<void(const std::shared_ptr<rpc_call>&)>;
  static std::shared_ptr<h2_server> start(handler_fn handler, h2_options opts = {});
  ~h2_server();
  h2_server(const h2_server&) = delete;
  h2_server& operator=(const h2_server&) = delete;

  // Serves an accepted connection (its HTTP/2 preface not yet read); takes the descriptor.
  void adopt(int fd, const std::string& ip, const std::string& remote);
  // Ends every call and connection and stops the loop. Idempotent.
  void shutdown();

  struct impl;

private:
  h2_server() = default;
  friend class rpc_call;
  friend struct h2_connection;
  std::unique_ptr<impl> impl_;
};

} // namespace nbm::api
