// The HTTP/1.1 transport of the REST API (cpp-httplib): every request under /api goes to
// rest_api::handle; every response gets a fresh X-Request-Id and NetBird's allow-all CORS headers.
#include "api/http/rest.hpp"

#include "api/metrics/metrics.hpp"
#include "crypto/crypto.hpp"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <thread>

namespace nbm::api::http {

struct http_listener::impl {
  rest_api& api;
  httplib::Server server;
  std::thread th;
  int port = 0;

  explicit impl(rest_api& a) : api(a) {}

  void serve(const httplib::Request& in, httplib::Response& out) {
    const auto began = std::chrono::steady_clock::now();
    out.set_header("X-Request-Id", crypto::random_id());
    out.set_header("Access-Control-Allow-Origin", "*");
    request req;
    req.method = in.method;
    req.path = in.path;
    req.body = in.body;
    req.authorization = in.get_header_value("Authorization");
    for (const auto& [k, v] : in.params)
      req.query.emplace(k, v);
    auto res = api.handle(req);
    metrics::rest_request(
        req.method, res.status,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count());
    out.status = res.status;
    for (const auto& [name, value] : res.headers)
      out.set_header(name, value);
    out.set_content(res.body + "\n", "application/json; charset=UTF-8");
  }
};

http_listener::http_listener(rest_api& api) : p_(std::make_unique<impl>(api)) {}

http_listener::~http_listener() {
  stop();
}

bool http_listener::start(const std::string& host, int port) {
  auto& s = p_->server;
  const auto handler = [this](const httplib::Request& in, httplib::Response& out) {
    p_->serve(in, out);
  };
  const std::string any = R"(/api(/.*)?)";
  s.Get(any, handler);
  s.Post(any, handler);
  s.Put(any, handler);
  s.Delete(any, handler);
  s.Options(any, [](const httplib::Request&, httplib::Response& out) {
    out.set_header("X-Request-Id", crypto::random_id());
    out.set_header("Access-Control-Allow-Origin", "*");
    out.set_header("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS");
    out.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
    out.status = 200;
  });
  s.set_error_handler([](const httplib::Request&, httplib::Response& out) {
    out.set_header("X-Request-Id", crypto::random_id());
    if (out.body.empty())
      out.set_content(R"({"message":"not found","code":)" + std::to_string(out.status) + "}\n",
                      "application/json; charset=UTF-8");
  });
  s.set_payload_max_length(4 * 1024 * 1024);
  // Idle keep-alive connections hold a worker; keep them short so a stopping server does not wait.
  s.set_keep_alive_timeout(2);
  s.set_read_timeout(10);
  if (port == 0) {
    p_->port = s.bind_to_any_port(host.c_str());
    if (p_->port <= 0)
      return false;
  } else {
    if (!s.bind_to_port(host.c_str(), port))
      return false;
    p_->port = port;
  }
  p_->th = std::thread([this] { p_->server.listen_after_bind(); });
  return true;
}

int http_listener::port() const {
  return p_->port;
}

void http_listener::stop() {
  if (p_ && p_->th.joinable()) {
    p_->server.stop();
    p_->th.join();
  }
}

} // namespace nbm::api::http
