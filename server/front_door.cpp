// The shared port's asynchronous server (see front_door.hpp). Boost.Asio and Boost.Beast are
// header-only and heavy: they are included here and nowhere else.
#include "server/front_door.hpp"

#include "api/http/rest.hpp"
#include "api/metrics/metrics.hpp"
#include "crypto/crypto.hpp"
#include "server/first_bytes.hpp"
#include "server/tls_context.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace nbm::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using plain_stream = beast::tcp_stream;
using tls_stream = beast::ssl_stream<beast::tcp_stream>;
using clk = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

long env_number(const char* name, long fallback, long min) {
  const char* v = std::getenv(name);
  if (!v || !*v)
    return fallback;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (*end != '\0' || n < min) {
    spdlog::warn("{}: not a number >= {}; using {}", name, min, fallback);
    return fallback;
  }
  return n;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

// %XX decoding (and '+' as a space in query strings), as cpp-httplib decoded paths and queries.
std::string url_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      const int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && s[i] == '+' ? ' ' : s[i]);
  }
  return out;
}

// a=1&b=two: the first value of a repeated key wins.
std::map<std::string, std::string> parse_query(std::string_view q) {
  std::map<std::string, std::string> out;
  while (!q.empty()) {
    const auto amp = q.find('&');
    const auto part = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
    if (part.empty())
      continue;
    const auto eq = part.find('=');
    const auto key = url_decode(part.substr(0, eq), true);
    const auto value =
        eq == std::string_view::npos ? std::string() : url_decode(part.substr(eq + 1), true);
    out.emplace(key, value);
  }
  return out;
}

std::string error_json(int code, std::string_view message) {
  std::string out = R"({"message":")";
  out += message; // our own fixed texts: nothing to escape
  out += R"(","code":)" + std::to_string(code) + "}\n";
  return out;
}

// Response headers the handler asked for (e.g. Retry-After on a 503).
void copy_headers(const api::http::response& from, bhttp::response<bhttp::string_body>& to) {
  for (const auto& [k, v] : from.headers)
    to.set(k, v);
}

std::string ip_string(const tcp::endpoint& ep) {
  auto a = ep.address();
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  return a.to_string();
}

// The peer of a connected TCP socket as "ip:port" ("[ip]:port" for IPv6); `ip` when it is gone.
std::string peer_string(const tcp::socket& s, const std::string& ip) {
  beast::error_code ec;
  const auto ep = s.remote_endpoint(ec); // getpeername
  if (ec)
    return ip;
  const auto port = std::to_string(ep.port());
  return ip.find(':') == std::string::npos ? ip + ":" + port : "[" + ip + "]:" + port;
}

// Threads running rest_api::handle (which blocks waiting for the actors); a bounded queue.
class worker_pool {
public:
  void start(int n, std::size_t limit) {
    limit_ = limit;
    for (int i = 0; i < n; ++i)
      th_.emplace_back([this] { loop(); });
  }
  bool submit(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stop_ || q_.size() >= limit_)
        return false;
      q_.push_back(std::move(job));
    }
    cv_.notify_one();
    return true;
  }
  // Drops the queued jobs, waits for the running ones.
  void stop() {
    std::deque<std::function<void()>> dropped;
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
      dropped.swap(q_);
    }
    cv_.notify_all();
    dropped.clear();
    for (auto& t : th_)
      t.join();
    th_.clear();
  }

private:
  void loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [this] { return stop_ || !q_.empty(); });
        if (stop_)
          return;
        job = std::move(q_.front());
        q_.pop_front();
      }
      job();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> q_;
  std::vector<std::thread> th_;
  std::size_t limit_ = 0;
  bool stop_ = false;
};

} // namespace

front_door_options front_door_options::from_env() {
  front_door_options o;
  o.header_timeout_ms =
      static_cast<int>(env_number("NBM_HTTP_HEADER_TIMEOUT_MS", o.header_timeout_ms, 1));
  o.body_timeout_ms =
      static_cast<int>(env_number("NBM_HTTP_BODY_TIMEOUT_MS", o.body_timeout_ms, 1));
  o.idle_timeout_ms =
      static_cast<int>(env_number("NBM_HTTP_IDLE_TIMEOUT_MS", o.idle_timeout_ms, 1));
  o.body_limit = static_cast<std::size_t>(
      env_number("NBM_HTTP_MAX_BODY_BYTES", static_cast<long>(o.body_limit), 1));
  o.max_conns_per_ip =
      static_cast<int>(env_number("NBM_HTTP_MAX_CONNS_PER_IP", o.max_conns_per_ip, 0));
  o.max_conns = static_cast<int>(env_number("NBM_HTTP_MAX_CONNS", o.max_conns, 0));
  o.workers = static_cast<int>(env_number("NBM_HTTP_WORKERS", o.workers, 1));
  return o;
}

struct front_door::impl {
  api::http::rest_api* api = nullptr; // null: the door serves `served` alone
  std::optional<page> served;
  front_door_options opts;
  grpc_handoff grpc;
  std::shared_ptr<tls_context> tls;
  bool grpc_only = false;

  std::optional<asio::io_context> ioc;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::optional<tcp::acceptor> acceptor;
  std::optional<asio::steady_timer> accept_pause;
  std::vector<std::thread> io_threads;
  worker_pool pool;
  std::atomic<bool> stopping{false};
  int port = 0;

  mutable std::mutex mu;
  std::unordered_map<std::string, int> per_ip;
  front_door_stats st;

  impl(api::http::rest_api& a, front_door_options o) : api(&a), opts(o) {}
  impl(page p, front_door_options o) : served(std::move(p)), opts(o) {}

  void count(std::uint64_t front_door_stats::*field) {
    std::lock_guard<std::mutex> lk(mu);
    ++(st.*field);
  }

  // A place for one more unclassified/HTTP connection from `ip`, or false (closed at once).
  bool admit(const std::string& ip) {
    std::lock_guard<std::mutex> lk(mu);
    ++st.accepted;
    if (opts.max_conns > 0 && st.open >= static_cast<std::size_t>(opts.max_conns)) {
      ++st.refused_total;
      return false;
    }
    auto& n = per_ip[ip];
    if (opts.max_conns_per_ip > 0 && n >= opts.max_conns_per_ip) {
      ++st.refused_per_ip;
      return false;
    }
    ++n;
    ++st.open;
    return true;
  }
  void release(const std::string& ip) {
    std::lock_guard<std::mutex> lk(mu);
    --st.open;
    auto it = per_ip.find(ip);
    if (it != per_ip.end() && --it->second <= 0)
      per_ip.erase(it);
  }

  void accept();
  void accepted(tcp::socket s);
  // A connection that began with a ClientHello; `ip`'s slot passes to it.
  void start_tls(tcp::socket s, std::string ip, clk::time_point deadline);
  // A decrypted connection that began with the HTTP/2 preface (`first`, already read).
  void tls_to_grpc(tls_stream s, const std::string& ip, std::string first);
};

namespace {

// One connection's HTTP/1.1 life. On a plaintext port it begins by classifying the first bytes
// (peeked); over TLS it begins after the handshake with the decrypted bytes already read.
template <class Stream>
class session : public std::enable_shared_from_this<session<Stream>> {
  static constexpr bool is_tls = std::is_same_v<Stream, tls_stream>;

public:
  session(front_door::impl& d, tcp::socket s, std::string ip) requires(!is_tls)
      : d_(d), stream_(std::move(s)), deadline_(stream_.get_executor()),
        retry_(stream_.get_executor()), ip_(std::move(ip)) {}
  // A decrypted connection whose first bytes (`first`) are an HTTP/1.1 request line; it holds
  // `ip`'s slot.
  session(front_door::impl& d, Stream s, std::string ip, std::string_view first,
          clk::time_point header_deadline) requires(is_tls)
      : d_(d), stream_(std::move(s)), deadline_(stream_.get_executor()),
        retry_(stream_.get_executor()), ip_(std::move(ip)), header_deadline_(header_deadline) {
    auto b = buf_.prepare(first.size());
    std::memcpy(b.data(), first.data(), first.size());
    buf_.commit(first.size());
  }
  ~session() { release_slot(); }

  void start() {
    if constexpr (is_tls) {
      phase_ = phase::reading;
      read_header(header_deadline_);
    } else {
      header_deadline_ = clk::now() + milliseconds(d_.opts.header_timeout_ms);
      arm_deadline(header_deadline_);
      wait_first_bytes();
    }
  }

private:
  enum class phase { classifying, reading, working, writing, idle, done };

  std::shared_ptr<session> self() { return this->shared_from_this(); }
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }
  tcp::socket& socket() { return lowest().socket(); }

  void release_slot() {
    if (slot_) {
      slot_ = false;
      d_.release(ip_);
    }
  }

  // The deadline of the phases that have no read of their own (classifying, idle).
  void arm_deadline(clk::time_point until) {
    deadline_.expires_at(until);
    deadline_.async_wait([self = self()](beast::error_code ec) {
      if (ec || self->closed_)
        return;
      if (self->phase_ == phase::classifying) {
        self->d_.count(&front_door_stats::timed_out);
        spdlog::debug("http: {} sent no request line in time; closed", self->ip_);
        self->close();
      } else if (self->phase_ == phase::idle)
        self->close();
    });
  }

  void wait_first_bytes() {
    socket().async_wait(tcp::socket::wait_read, [self = self()](beast::error_code ec) {
      if (self->closed_)
        return;
      if (ec)
        return self->close();
      self->peek();
    });
  }

  void peek() {
    char b[first_bytes_max];
    const auto n = ::recv(socket().native_handle(), b, sizeof b, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
      return close();
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return wait_first_bytes();
      return close();
    }
    const auto kind = classify_first_bytes({b, static_cast<std::size_t>(n)});
    if (d_.tls && kind != first_bytes::tls && kind != first_bytes::undecided)
      return plaintext_on_tls_port(kind);
    switch (kind) {
    case first_bytes::undecided:
      // Some bytes, not enough: readiness would fire at once again, so look back a little later.
      retry_.expires_after(backoff_);
      backoff_ = std::min(backoff_ * 2, milliseconds(200));
      retry_.async_wait([self = self()](beast::error_code ec) {
        if (!ec && !self->closed_)
          self->peek();
      });
      return;
    case first_bytes::grpc:
      return to_grpc();
    case first_bytes::http1:
      if (d_.grpc_only) {
        d_.count(&front_door_stats::closed_other);
        spdlog::debug("http: HTTP/1.1 from {} on the gRPC-only port; closed", ip_);
        return close();
      }
      phase_ = phase::reading;
      deadline_.cancel();
      return read_header(header_deadline_);
    case first_bytes::tls:
      if constexpr (!is_tls) {
        if (d_.tls)
          return hand_to_tls();
      }
      d_.count(&front_door_stats::closed_tls);
      spdlog::debug("http: TLS from {} (not served on this port); closed", ip_);
      return close();
    case first_bytes::other:
      d_.count(&front_door_stats::closed_other);
      spdlog::debug("http: {} sent neither HTTP/1.1 nor HTTP/2; closed", ip_);
      return close();
    }
  }

  // Nothing is served in plaintext on a TLS port: HTTP/1.1 is told so (Go's words), the rest is
  // closed.
  void plaintext_on_tls_port(first_bytes kind) {
    d_.count(&front_door_stats::closed_plaintext);
    spdlog::debug("http: plaintext ({}) from {} on a TLS port; refused", to_string(kind), ip_);
    if (kind != first_bytes::http1)
      return close();
    phase_ = phase::writing;
    deadline_.cancel();
    static constexpr char refusal[] = "HTTP/1.0 400 Bad Request\r\n\r\n"
                                      "Client sent an HTTP request to an HTTPS server.\n";
    lowest().expires_after(milliseconds(d_.opts.write_timeout_ms));
    asio::async_write(lowest(), asio::buffer(refusal, sizeof refusal - 1),
                      [self = self()](beast::error_code ec, std::size_t) {
                        if (ec)
                          return self->close();
                        self->linger();
                      });
  }

  void hand_to_tls() requires(!is_tls) {
    phase_ = phase::done;
    closed_ = true;
    deadline_.cancel();
    retry_.cancel();
    slot_ = false; // the slot passes to the TLS connection
    d_.start_tls(lowest().release_socket(), ip_, header_deadline_);
  }

  void to_grpc() {
    if (!d_.grpc) {
      d_.count(&front_door_stats::closed_other);
      spdlog::debug("http: HTTP/2 from {} on the REST API's own port; closed", ip_);
      return close();
    }
    phase_ = phase::done;
    closed_ = true;
    deadline_.cancel();
    retry_.cancel();
    beast::error_code ec;
    const auto remote = peer_string(socket(), ip_);
    const int fd = socket().release(ec);
    if (ec || fd < 0)
      return;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // gRPC's event engine reads its sockets non-blocking (its own listener sets this too).
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
    release_slot(); // a gRPC connection is no longer ours to cap
    d_.count(&front_door_stats::to_grpc);
    d_.grpc(fd, ip_, remote);
  }

  void read_header(clk::time_point until) {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(d_.opts.header_limit));
    parser_->body_limit(static_cast<std::uint64_t>(d_.opts.body_limit));
    lowest().expires_at(until);
    bhttp::async_read_header(
        stream_, buf_, *parser_,
        [self = self()](beast::error_code ec, std::size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec)
      return on_read_error(ec, "header");
    phase_ = phase::reading;
    if (parser_->is_done())
      return dispatch();
    lowest().expires_after(milliseconds(d_.opts.body_timeout_ms));
    const auto expect = parser_->get()[bhttp::field::expect];
    if (beast::iequals(expect, "100-continue")) {
      static constexpr char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(stream_, asio::buffer(cont, sizeof cont - 1),
                        [self = self()](beast::error_code ec, std::size_t) {
                          if (ec)
                            return self->close();
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    bhttp::async_read(stream_, buf_, *parser_, [self = self()](beast::error_code ec, std::size_t) {
      if (ec)
        return self->on_read_error(ec, "body");
      self->dispatch();
    });
  }

  void on_read_error(beast::error_code ec, const char* part) {
    if (phase_ == phase::idle) // over TLS the keep-alive wait is a header read: quietly closed
      return close();
    if (ec == bhttp::error::body_limit)
      return reply_error(413, "request body too large");
    if (ec == bhttp::error::header_limit)
      return reply_error(431, "request header too large");
    if (ec == beast::error::timeout) {
      d_.count(&front_door_stats::timed_out);
      spdlog::debug("http: the request {} from {} did not arrive in time; closed", part, ip_);
      return close();
    }
    if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
        ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message)
      return reply_error(400, "malformed request");
    close();
  }

  void dispatch() {
    lowest().expires_never();
    auto& in = parser_->get();
    keep_alive_ = in.keep_alive();
    version_ = in.version();
    head_ = in.method() == bhttp::verb::head;
    const std::string_view target(in.target().data(), in.target().size());
    const auto qmark = target.find('?');
    const auto path = url_decode(target.substr(0, qmark), false);
    const bool under_api = path == "/api" || path.rfind("/api/", 0) == 0;
    const auto verb = in.method();
    const bool handled = verb == bhttp::verb::get || verb == bhttp::verb::post ||
                         verb == bhttp::verb::put || verb == bhttp::verb::delete_ || head_;
    d_.count(&front_door_stats::http_requests);
    if (d_.served)
      return dispatch_page(path, verb);
    if (under_api && verb == bhttp::verb::options) {
      start_response(200);
      res_.set(bhttp::field::access_control_allow_methods, "GET, POST, PUT, DELETE, OPTIONS");
      res_.set(bhttp::field::access_control_allow_headers, "Authorization, Content-Type");
      return write();
    }
    if (!under_api || !handled) {
      // No such endpoint (404), or a method no endpoint of the API takes (405).
      const unsigned status = under_api ? 405 : 404;
      spdlog::debug("REST {} {} {} (no handler)", std::string(in.method_string()),
                    path.substr(0, 96), status);
      start_response(status);
      res_.set(bhttp::field::content_type, "application/json; charset=UTF-8");
      res_.body() =
          error_json(static_cast<int>(status), under_api ? "method not allowed" : "not found");
      return write();
    }
    api::http::request req;
    req.method = head_ ? std::string("GET") : std::string(in.method_string());
    req.path = path;
    req.body = std::move(in.body());
    req.authorization = std::string(in[bhttp::field::authorization]);
    if (qmark != std::string_view::npos)
      req.query = parse_query(target.substr(qmark + 1));
    phase_ = phase::working;
    auto ex = stream_.get_executor();
    const bool queued = d_.pool.submit([self = self(), ex, req = std::move(req)] {
      const auto began = clk::now();
      api::http::response res;
      try {
        res = self->d_.api->handle(req);
      } catch (const std::exception& e) {
        spdlog::error("http: {} {}: {}", req.method, req.path.substr(0, 64), e.what());
        res.status = 500;
        res.body = R"({"message":"internal error","code":500})";
      }
      const double took = std::chrono::duration<double>(clk::now() - began).count();
      api::metrics::rest_request(req.method, req.path, res.status, took);
      spdlog::debug("REST {} {} {} {:.1f} ms", req.method, req.path.substr(0, 96), res.status,
                    took * 1000);
      asio::post(ex, [self, res = std::move(res)]() mutable { self->answer(std::move(res)); });
    });
    if (!queued) {
      d_.count(&front_door_stats::busy);
      reply_error(503, "server busy");
    }
  }

  // The door's one page: rendered on the worker pool (a scrape waits for the actors' answers),
  // never counted as a REST request.
  void dispatch_page(const std::string& path, bhttp::verb verb) {
    const auto& pg = *d_.served;
    if (path != pg.path) {
      start_response(404);
      res_.set(bhttp::field::content_type, "text/plain; charset=utf-8");
      res_.body() = "404 page not found\n";
      return write();
    }
    if (verb != bhttp::verb::get && !head_) {
      start_response(405);
      res_.set(bhttp::field::allow, "GET, HEAD");
      res_.set(bhttp::field::content_type, "text/plain; charset=utf-8");
      res_.body() = "405 method not allowed\n";
      return write();
    }
    phase_ = phase::working;
    auto ex = stream_.get_executor();
    const bool queued = d_.pool.submit([self = self(), ex] {
      api::http::response res;
      try {
        res.body = self->d_.served->render();
      } catch (const std::exception& e) {
        spdlog::error("http: {}: {}", self->d_.served->path, e.what());
        res.status = 500;
        res.body = "500 internal error\n";
      }
      asio::post(ex, [self, res = std::move(res)]() mutable {
        if (self->closed_)
          return;
        self->start_response(static_cast<unsigned>(res.status));
        self->res_.set(bhttp::field::content_type, res.status == 200
                                                       ? self->d_.served->content_type
                                                       : std::string("text/plain; charset=utf-8"));
        self->res_.body() = std::move(res.body);
        self->write();
      });
    });
    if (!queued) {
      d_.count(&front_door_stats::busy);
      keep_alive_ = false;
      start_response(503);
      res_.set(bhttp::field::content_type, "text/plain; charset=utf-8");
      res_.body() = "503 server busy\n";
      write();
    }
  }

  void start_response(unsigned status) {
    res_ = {};
    res_.version(version_);
    res_.result(status);
    res_.set("X-Request-Id", crypto::random_id());
    res_.set(bhttp::field::access_control_allow_origin, "*");
  }

  void answer(api::http::response res) {
    if (closed_)
      return;
    start_response(static_cast<unsigned>(res.status));
    copy_headers(res, res_);
    res_.set(bhttp::field::content_type, "application/json; charset=UTF-8");
    res_.body() = std::move(res.body);
    res_.body().push_back('\n');
    write();
  }

  // An error answer before (or instead of) a handler: the connection closes after it.
  void reply_error(unsigned status, std::string_view message) {
    spdlog::debug("http: {} to {}: {}", status, ip_, message);
    keep_alive_ = false;
    head_ = false;
    start_response(status);
    res_.set(bhttp::field::content_type, "application/json; charset=UTF-8");
    res_.body() = error_json(static_cast<int>(status), message);
    write();
  }

  void write() {
    phase_ = phase::writing;
    res_.keep_alive(keep_alive_ && !d_.stopping);
    res_.prepare_payload();
    if (head_)
      res_.body().clear(); // Content-Length stays that of the GET answer
    lowest().expires_after(milliseconds(d_.opts.write_timeout_ms));
    bhttp::async_write(stream_, res_, [self = self()](beast::error_code ec, std::size_t) {
      if (ec) {
        if (ec == beast::error::timeout)
          self->d_.count(&front_door_stats::timed_out);
        return self->close();
      }
      if (!self->res_.keep_alive())
        return self->linger();
      self->next_request();
    });
  }

  // After a last answer: no more sending, and what the client still sends (a body we refused)
  // is read and dropped for a moment, so that closing does not reset the answer away. Over TLS:
  // close_notify, and the client's for a moment.
  void linger() {
    phase_ = phase::done;
    lowest().expires_after(milliseconds(1000));
    if constexpr (is_tls) {
      stream_.async_shutdown([self = self()](beast::error_code) { self->close(); });
    } else {
      beast::error_code ec;
      socket().shutdown(tcp::socket::shutdown_send, ec);
      drain();
    }
  }
  void drain() {
    lowest().async_read_some(asio::buffer(scratch_),
                             [self = self()](beast::error_code ec, std::size_t) {
                               if (ec)
                                 return self->close();
                               self->drain();
                             });
  }

  void next_request() {
    parser_.reset();
    if (buf_.size() > 0) { // pipelined: the next request is already here
      phase_ = phase::reading;
      return read_header(clk::now() + milliseconds(d_.opts.header_timeout_ms));
    }
    phase_ = phase::idle;
    if constexpr (is_tls) {
      // Decrypted bytes may already wait inside the TLS layer, where a socket's readiness does
      // not show them: the keep-alive wait is a header read under the idle deadline.
      read_header(clk::now() + milliseconds(d_.opts.idle_timeout_ms));
    } else {
      arm_deadline(clk::now() + milliseconds(d_.opts.idle_timeout_ms));
      socket().async_wait(tcp::socket::wait_read, [self = self()](beast::error_code ec) {
        if (self->closed_)
          return;
        if (ec)
          return self->close();
        self->phase_ = phase::reading;
        self->deadline_.cancel();
        self->read_header(clk::now() + milliseconds(self->d_.opts.header_timeout_ms));
      });
    }
  }

  void close() {
    if (closed_)
      return;
    closed_ = true;
    phase_ = phase::done;
    deadline_.cancel();
    retry_.cancel();
    beast::error_code ec;
    socket().shutdown(tcp::socket::shutdown_both, ec);
    lowest().close();
    release_slot();
  }

  front_door::impl& d_;
  Stream stream_;
  asio::steady_timer deadline_;
  asio::steady_timer retry_;
  std::string ip_;
  bool slot_ = true;
  bool closed_ = false;
  phase phase_ = phase::classifying;
  clk::time_point header_deadline_;
  milliseconds backoff_{2};
  beast::flat_buffer buf_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bhttp::response<bhttp::string_body> res_;
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool head_ = false;
  char scratch_[4096];
};

// A connection that began with a ClientHello: the handshake (under the header deadline), then
// its decrypted first bytes decide where it goes.
class tls_start : public std::enable_shared_from_this<tls_start> {
public:
  tls_start(front_door::impl& d, tcp::socket s, std::string ip, clk::time_point deadline,
            asio::ssl::context& ctx)
      : d_(d), stream_(beast::tcp_stream(std::move(s)), ctx), ip_(std::move(ip)),
        deadline_(deadline) {}
  ~tls_start() {
    if (slot_)
      d_.release(ip_);
  }

  void start() {
    beast::get_lowest_layer(stream_).expires_at(deadline_);
    stream_.async_handshake(
        asio::ssl::stream_base::server,
        [self = shared_from_this()](beast::error_code ec) { self->on_handshake(ec); });
  }

private:
  void on_handshake(beast::error_code ec) {
    if (ec) {
      d_.count(&front_door_stats::tls_failed);
      spdlog::debug("http: TLS handshake with {} failed{}", ip_,
                    ec == beast::error::timeout ? " (timed out)" : "");
      return close();
    }
    d_.count(&front_door_stats::tls_handshakes);
    if (negotiated_alpn(stream_.native_handle()) == acme_tls_alpn) {
      // A TLS-ALPN-01 validation: the handshake itself was the answer.
      d_.count(&front_door_stats::acme_challenges);
      spdlog::info("acme: TLS-ALPN-01 challenge answered for {}", ip_);
      return close();
    }
    read_first();
  }

  void read_first() {
    const auto have = first_.size();
    first_.resize(first_bytes_max);
    stream_.async_read_some(asio::buffer(first_.data() + have, first_bytes_max - have),
                            [self = shared_from_this(), have](beast::error_code ec, std::size_t n) {
                              self->first_.resize(have + n);
                              if (ec)
                                return self->close();
                              self->classify();
                            });
  }

  void classify() {
    switch (classify_first_bytes(first_)) {
    case first_bytes::undecided:
      return read_first();
    case first_bytes::grpc:
      if (!d_.grpc)
        break;
      {
        slot_ = false;
        d_.release(ip_); // a gRPC connection is no longer ours to cap
        d_.count(&front_door_stats::to_grpc);
        d_.tls_to_grpc(std::move(stream_), ip_, std::move(first_));
      }
      return;
    case first_bytes::http1:
      if (d_.grpc_only)
        break;
      slot_ = false; // passes to the session
      std::make_shared<session<tls_stream>>(d_, std::move(stream_), ip_, first_, deadline_)
          ->start();
      return;
    case first_bytes::tls:
    case first_bytes::other:
      break;
    }
    d_.count(&front_door_stats::closed_other);
    spdlog::debug("http: {} sent neither HTTP/1.1 nor HTTP/2 over TLS; closed", ip_);
    close();
  }

  void close() {
    beast::error_code ec;
    auto& l = beast::get_lowest_layer(stream_);
    l.socket().shutdown(tcp::socket::shutdown_both, ec);
    l.close();
  }

  front_door::impl& d_;
  tls_stream stream_;
  std::string ip_;
  clk::time_point deadline_;
  bool slot_ = true;
  std::string first_;
};

// A gRPC connection over TLS: the decrypted bytes go to gRPC through a socketpair, gRPC's
// answers are encrypted back. One read and one write at a time in each direction (the
// socketpair's buffers and TCP's give the backpressure); either side ending ends both.
class grpc_pipe : public std::enable_shared_from_this<grpc_pipe> {
public:
  grpc_pipe(tls_stream s, asio::local::stream_protocol::socket local)
      : stream_(std::move(s)), local_(std::move(local)) {}

  void start(std::string first) {
    beast::get_lowest_layer(stream_).expires_never();
    first_ = std::move(first);
    asio::async_write(local_, asio::buffer(first_),
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        if (ec)
                          return self->finish();
                        self->first_.clear();
                        self->first_.shrink_to_fit();
                        self->up();
                        self->down();
                      });
  }

private:
  void up() {
    stream_.async_read_some(asio::buffer(up_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              if (ec)
                                return self->finish();
                              asio::async_write(self->local_, asio::buffer(self->up_, n),
                                                [self](beast::error_code ec, std::size_t) {
                                                  if (ec)
                                                    return self->finish();
                                                  self->up();
                                                });
                            });
  }

  void down() {
    local_.async_read_some(asio::buffer(down_),
                           [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                             if (ec)
                               return self->finish();
                             asio::async_write(self->stream_, asio::buffer(self->down_, n),
                                               [self](beast::error_code ec, std::size_t) {
                                                 if (ec)
                                                   return self->finish();
                                                 self->down();
                                               });
                           });
  }

  void finish() {
    if (done_)
      return;
    done_ = true;
    beast::error_code ec;
    local_.shutdown(asio::socket_base::shutdown_both, ec);
    local_.close(ec);
    auto& l = beast::get_lowest_layer(stream_);
    l.socket().shutdown(tcp::socket::shutdown_both, ec);
    l.close();
  }

  tls_stream stream_;
  asio::local::stream_protocol::socket local_;
  std::string first_;
  bool done_ = false;
  char up_[4096];    // peers send little: requests and keepalive pings
  char down_[16384]; // maps can be large: a TLS record's worth
};

} // namespace

void front_door::impl::start_tls(tcp::socket s, std::string ip, clk::time_point deadline) {
  // The holder's current context: a reload reaches the next handshake; this connection keeps
  // the context it began with (the SSL object holds a reference to it).
  // As gRPC's own sockets: small frames (HTTP/2 settings, pings, acks) leave at once rather than
  // wait for Nagle's algorithm.
  beast::error_code ec;
  s.set_option(tcp::no_delay(true), ec);
  auto native = tls->current();
  SSL_CTX_up_ref(native.get());
  asio::ssl::context ctx(native.get()); // takes the reference it was given
  std::make_shared<tls_start>(*this, std::move(s), std::move(ip), deadline, ctx)->start();
}

void front_door::impl::tls_to_grpc(tls_stream s, const std::string& ip, std::string first) {
  beast::error_code ec;
  asio::local::stream_protocol::socket ours(s.get_executor()), theirs(s.get_executor());
  asio::local::connect_pair(ours, theirs, ec);
  if (ec) {
    spdlog::warn("http: cannot hand a TLS connection from {} to gRPC: {}", ip, ec.message());
    auto& l = beast::get_lowest_layer(s);
    l.close();
    return;
  }
  const int fd = theirs.release(ec);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
  // The TCP connection's peer: the socketpair's own would name nobody.
  const auto remote = peer_string(beast::get_lowest_layer(s).socket(), ip);
  std::make_shared<grpc_pipe>(std::move(s), std::move(ours))->start(std::move(first));
  grpc(fd, ip, remote);
}

void front_door::impl::accept() {
  acceptor->async_accept(asio::make_strand(*ioc), [this](beast::error_code ec, tcp::socket s) {
    if (stopping)
      return;
    if (ec) {
      if (ec == asio::error::operation_aborted)
        return;
      // Out of file descriptors, typically: pause rather than spin on the pending connection.
      spdlog::debug("http: accept failed: {}", ec.message());
      accept_pause->expires_after(milliseconds(50));
      accept_pause->async_wait([this](beast::error_code e) {
        if (!e && !stopping)
          accept();
      });
      return;
    }
    accepted(std::move(s));
    accept();
  });
}

void front_door::impl::accepted(tcp::socket s) {
  beast::error_code ec;
  const auto ep = s.remote_endpoint(ec);
  if (ec)
    return; // gone already
  auto ip = ip_string(ep);
  if (!admit(ip)) {
    spdlog::debug("http: connection from {} refused (over the connection cap)", ip);
    s.close(ec);
    return;
  }
  std::make_shared<session<plain_stream>>(*this, std::move(s), std::move(ip))->start();
}

front_door::front_door(api::http::rest_api& api, front_door_options opts)
    : p_(std::make_unique<impl>(api, opts)) {}

front_door::front_door(page served, front_door_options opts)
    : p_(std::make_unique<impl>(std::move(served), opts)) {}

front_door::~front_door() {
  stop();
}

void front_door::set_grpc(grpc_handoff to_grpc) {
  p_->grpc = std::move(to_grpc);
}

void front_door::set_tls(std::shared_ptr<tls_context> tls) {
  p_->tls = std::move(tls);
}

void front_door::set_grpc_only() {
  p_->grpc_only = true;
}

namespace {

// Why a port cannot be listened on, in the operator's words.
std::string listen_error(const beast::error_code& ec) {
  if (ec == asio::error::address_in_use)
    return "address already in use (another netbird-mgmt or another program listens there); stop "
           "it or choose another port";
  if (ec == asio::error::access_denied)
    return "permission denied (a port below 1024 needs CAP_NET_BIND_SERVICE)";
  if (ec == boost::system::errc::address_not_available)
    return "address not available";
  return ec.message();
}

// Opens, binds and listens; "::" accepts IPv4 too (v6_only off), as Go's ":port".
bool listen_on(tcp::acceptor& a, const asio::ip::address& addr, int port, int backlog,
               beast::error_code& ec) {
  const tcp::endpoint ep(addr, static_cast<unsigned short>(port));
  a.open(ep.protocol(), ec);
  if (!ec)
    a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec && addr.is_v6() && addr.is_unspecified())
    a.set_option(asio::ip::v6_only(false), ec);
  if (!ec)
    a.bind(ep, ec);
  if (!ec)
    a.listen(backlog, ec);
  if (ec) {
    beast::error_code ignored;
    a.close(ignored);
  }
  return !ec;
}

} // namespace

bool front_door::start(const std::string& host, int port, std::string* why) {
  auto& d = *p_;
  beast::error_code ec;
  const auto addr = asio::ip::make_address(host, ec);
  if (ec) {
    if (why)
      *why = "not an IP address: " + host.substr(0, 64);
    return false;
  }
  d.ioc.emplace(d.opts.io_threads);
  d.acceptor.emplace(*d.ioc);
  bool ok = listen_on(*d.acceptor, addr, port, d.opts.backlog, ec);
  if (!ok && addr.is_v6() && addr.is_unspecified() &&
      (ec == asio::error::address_family_not_supported ||
       ec == boost::system::errc::address_not_available)) {
    // A system without IPv6: IPv4 alone, as Go's listener falls back.
    spdlog::debug("http: no IPv6 here; listening on IPv4 only");
    ok = listen_on(*d.acceptor, asio::ip::address_v4::any(), port, d.opts.backlog, ec);
  }
  if (!ok) {
    spdlog::debug("http: cannot listen on {}:{}: {}", host, port, ec.message());
    if (why)
      *why = listen_error(ec);
    d.acceptor.reset();
    d.ioc.reset();
    return false;
  }
  d.port = d.acceptor->local_endpoint().port();
  d.accept_pause.emplace(*d.ioc);
  d.work.emplace(d.ioc->get_executor());
  d.pool.start(d.opts.workers, d.opts.queue_limit);
  d.accept();
  for (int i = 0; i < d.opts.io_threads; ++i)
    d.io_threads.emplace_back([&d] {
      for (;;) {
        try {
          d.ioc->run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("http: io thread: {}", e.what());
        }
      }
    });
  return true;
}

int front_door::port() const {
  return p_->port;
}

void front_door::stop() {
  auto& d = *p_;
  if (!d.ioc)
    return;
  d.stopping = true;
  // No handler runs after this; then the port closes, queued requests are dropped (running ones
  // finish), and destroying the io_context destroys every pending handler and so every session.
  d.ioc->stop();
  for (auto& t : d.io_threads)
    t.join();
  d.io_threads.clear();
  beast::error_code ec;
  d.acceptor->close(ec);
  d.pool.stop();
  d.work.reset();
  d.accept_pause.reset();
  d.acceptor.reset();
  d.ioc.reset();
}

front_door_stats front_door::stats() const {
  std::lock_guard<std::mutex> lk(p_->mu);
  return p_->st;
}

} // namespace nbm::server
