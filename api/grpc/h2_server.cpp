#include "api/grpc/h2_server.hpp"

#include <nghttp2/nghttp2.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

namespace nbm::api {

namespace {

using clk = std::chrono::steady_clock;
constexpr const char* service_prefix = "/management.ManagementService/";
constexpr int unimplemented = 12, invalid_argument = 3, resource_exhausted = 8, unavailable = 14;

// gRPC's length prefix: not compressed, then the length big-endian.
std::string framed(std::string_view msg) {
  std::string out;
  out.reserve(5 + msg.size());
  const auto n = static_cast<std::uint32_t>(msg.size());
  out.push_back('\0');
  out.push_back(static_cast<char>(n >> 24));
  out.push_back(static_cast<char>(n >> 16));
  out.push_back(static_cast<char>(n >> 8));
  out.push_back(static_cast<char>(n));
  out.append(msg);
  return out;
}

// grpc-message is percent-encoded: printable ASCII but '%' stays, every other byte is %XX.
std::string percent_encoded(const std::string& s) {
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

nghttp2_nv header(const char* name, const std::string& value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name)),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), std::strlen(name),
          value.size(), NGHTTP2_NV_FLAG_NONE};
}

} // namespace

// ---- the state of one call on the loop thread
// -------------------------------------------------------

struct rpc_call::wire {
  h2_connection* conn = nullptr; // null once the stream is gone
  int32_t stream = 0;
  std::string path;
  bool post = false, grpc_type = false;
  std::string in;             // the request's bytes as they arrive (prefixes included)
  bool too_big = false;       // more than max_message arrived: answered, the rest dropped
  bool request_done = false;  // the client's END_STREAM arrived
  bool dispatched = false;    // the handler has it (or it was answered without one)
  bool started = false;       // response headers submitted
  bool deferred = false;      // the data source waits for a message or a turn
  bool active = false;        // holds one of its connection's writing turns
  bool queued = false;        // waits in its connection's queue for a turn
  bool finishing = false;     // the status is decided; trailers follow the messages
  bool trailers_sent = false; // the server's side is complete
  rpc_status status;
  std::string cur; // the message being written, framed
  std::size_t off = 0;
  std::optional<std::string> next; // the newest message not begun
};

struct h2_connection {
  h2_server::impl* srv = nullptr;
  int fd = -1;
  nghttp2_session* session = nullptr;
  std::string ip, remote;
  std::string out; // bytes nghttp2 produced that the socket did not take yet
  std::size_t out_off = 0;
  bool want_out = false; // EPOLLOUT armed
  clk::time_point last_recv = clk::now();
  std::optional<clk::time_point> ping_sent;
  std::unordered_map<int32_t, std::shared_ptr<rpc_call>> calls;
  bool closing = false;
  // Writing turns: at most a few streams have a message under way at once, the others wait in
  // order. nghttp2 would interleave every stream's DATA frames, so with thousands of large maps
  // none would complete (and be freed) before all did.
  unsigned active = 0;
  std::deque<int32_t> turn_queue;
  std::vector<int32_t> to_resume; // given a turn inside a callback: resumed after it
};

namespace {
constexpr unsigned writing_turns = 4;
} // namespace

struct h2_server::impl {
  handler_fn handler;
  h2_options opts;
  std::weak_ptr<h2_server> self;
  int ep = -1, wake = -1;
  std::thread loop;
  std::mutex post_mu;
  std::vector<std::function<void()>> posted;
  bool stopping = false; // loop thread
  std::unordered_map<int, std::unique_ptr<h2_connection>> conns;
  std::vector<std::unique_ptr<h2_connection>> graveyard; // closed, destroyed after the round
  nghttp2_session_callbacks* callbacks = nullptr;
  // handler threads
  std::mutex job_mu;
  std::condition_variable job_cv;
  std::deque<std::shared_ptr<rpc_call>> jobs;
  bool jobs_stop = false;
  std::vector<std::thread> handlers;
  std::once_flag shut;

  void post(std::function<void()> fn) {
    bool first;
    {
      std::lock_guard<std::mutex> lk(post_mu);
      first = posted.empty();
      posted.push_back(std::move(fn));
    }
    if (first) {
      const std::uint64_t one = 1;
      [[maybe_unused]] auto n = ::write(wake, &one, sizeof one);
    }
  }

  void run();
  void run_handlers();
  void on_readable(h2_connection& c);
  void flush(h2_connection& c);
  void close(h2_connection& c);
  void bury();
  void keepalive();
  void start_response(h2_connection& c, rpc_call& call);
  void trailers_only(h2_connection& c, rpc_call& call);
  void decide(rpc_call& call, rpc_status s);
  void dispatch(const std::shared_ptr<rpc_call>& call);
  void end_call(h2_connection& c, int32_t stream);
};

// ---- the call's answers (any thread)
// -----------------------------------------------------------------

rpc_call::rpc_call(const std::shared_ptr<h2_server>& owner) : owner_(owner) {}
rpc_call::~rpc_call() = default;

template <class Fn>
void rpc_call::on_loop(Fn fn) {
  auto srv = owner_.lock();
  if (!srv)
    return;
  srv->impl_->post([c = shared_from_this(), fn = std::move(fn)]() mutable {
    auto& w = *c->wire_;
    if (!w.conn || w.finishing)
      return;
    fn(*c, w, *w.conn->srv);
  });
}

void rpc_call::reply(rpc_status s, std::string response) {
  on_loop([s = std::move(s), r = std::move(response)](rpc_call& c, wire& w,
                                                      h2_server::impl& impl) mutable {
    if (s.code == 0) {
      w.cur = framed(r);
      w.off = 0;
    }
    impl.decide(c, std::move(s));
    impl.flush(*w.conn);
  });
}

void rpc_call::write(std::string message) {
  on_loop([m = std::move(message)](rpc_call& c, wire& w, h2_server::impl& impl) {
    if (w.cur.empty() || (w.off == 0 && !w.active))
      w.cur = framed(m), w.off = 0; // a newer map replaces one not begun
    else
      w.next = framed(m); // behind the one being written, replacing an older one waiting
    if (!w.started)
      impl.start_response(*w.conn, c);
    else if (w.deferred && !w.queued) {
      w.deferred = false;
      nghttp2_session_resume_data(w.conn->session, w.stream);
    }
    impl.flush(*w.conn);
  });
}

void rpc_call::finish(rpc_status s) {
  on_loop([s = std::move(s)](rpc_call& c, wire& w, h2_server::impl& impl) mutable {
    impl.decide(c, std::move(s));
    impl.flush(*w.conn);
  });
}

void rpc_call::on_done(std::function<void()> fn) {
  std::unique_lock<std::mutex> lk(mu_);
  if (ended_) {
    lk.unlock();
    fn();
    return;
  }
  done_ = std::move(fn);
}

void rpc_call::ended() {
  std::function<void()> fn;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (ended_)
      return;
    ended_ = true;
    fn = std::move(done_);
  }
  if (fn)
    fn();
}

// ---- responses (loop thread)
// -------------------------------------------------------------------------

namespace {

// A stream's message done (or the stream gone): its turn passes to the next stream waiting.
void release_turn(h2_connection& c, rpc_call::wire& w) {
  if (!w.active)
    return;
  w.active = false;
  --c.active;
  while (!c.turn_queue.empty() && c.active < writing_turns) {
    const auto id = c.turn_queue.front();
    c.turn_queue.pop_front();
    auto it = c.calls.find(id);
    if (it == c.calls.end() || !it->second->wire_->queued)
      continue;
    auto& next = *it->second->wire_;
    next.queued = false;
    next.active = true;
    ++c.active;
    next.deferred = false;
    c.to_resume.push_back(id);
  }
}

ssize_t read_message(nghttp2_session* session, int32_t stream, uint8_t* buf, size_t length,
                     uint32_t* flags, nghttp2_data_source* source, void* user) {
  auto& conn = *static_cast<h2_connection*>(user);
  auto* c = static_cast<rpc_call*>(source->ptr);
  auto& w = *c->wire_;
  if (w.off == w.cur.size() && w.next) {
    w.cur = std::move(*w.next);
    w.next.reset();
    w.off = 0;
  }
  if (w.off < w.cur.size()) {
    if (!w.active) {
      if (conn.active >= writing_turns) {
        if (!w.queued) {
          w.queued = true;
          conn.turn_queue.push_back(stream);
        }
        w.deferred = true;
        return NGHTTP2_ERR_DEFERRED;
      }
      w.active = true;
      ++conn.active;
    }
    const auto n = std::min(length, w.cur.size() - w.off);
    std::memcpy(buf, w.cur.data() + w.off, n);
    w.off += n;
    if (w.off == w.cur.size()) { // written: the encoded message is not kept
      std::string().swap(w.cur);
      w.off = 0;
      release_turn(conn, w);
    }
    return static_cast<ssize_t>(n);
  }
  if (w.finishing) {
    *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    const std::string code = std::to_string(w.status.code);
    const std::string msg = percent_encoded(w.status.message);
    std::vector<nghttp2_nv> nv{header("grpc-status", code)};
    if (!msg.empty())
      nv.push_back(header("grpc-message", msg));
    nghttp2_submit_trailer(session, stream, nv.data(), nv.size());
    w.trailers_sent = true;
    return 0;
  }
  w.deferred = true;
  return NGHTTP2_ERR_DEFERRED;
}

} // namespace

void h2_server::impl::start_response(h2_connection& c, rpc_call& call) {
  auto& w = *call.wire_;
  w.started = true;
  const std::string status = "200", type = "application/grpc";
  nghttp2_nv nv[] = {header(":status", status), header("content-type", type)};
  nghttp2_data_provider prd;
  prd.source.ptr = &call;
  prd.read_callback = read_message;
  nghttp2_submit_response(c.session, w.stream, nv, 2, &prd);
}

void h2_server::impl::trailers_only(h2_connection& c, rpc_call& call) {
  auto& w = *call.wire_;
  w.started = true;
  w.trailers_sent = true;
  const std::string status = "200", type = "application/grpc", code = std::to_string(w.status.code),
                    msg = percent_encoded(w.status.message);
  std::vector<nghttp2_nv> nv{header(":status", status), header("content-type", type),
                             header("grpc-status", code)};
  if (!msg.empty())
    nv.push_back(header("grpc-message", msg));
  nghttp2_submit_response(c.session, w.stream, nv.data(), nv.size(), nullptr);
}

// The call's status is decided: trailers after the messages (or alone when none was written).
void h2_server::impl::decide(rpc_call& call, rpc_status s) {
  auto& w = *call.wire_;
  w.finishing = true;
  if (opts.counted)
    opts.counted(call, s.code);
  w.status = std::move(s);
  auto& c = *w.conn;
  if (!w.started) {
    if (w.cur.empty())
      trailers_only(c, call);
    else
      start_response(c, call);
  } else if (w.deferred && !w.queued) {
    w.deferred = false;
    nghttp2_session_resume_data(c.session, w.stream);
  }
}

// ---- requests (loop thread)
// --------------------------------------------------------------------------

namespace {

h2_connection& conn_of(void* user) {
  return *static_cast<h2_connection*>(user);
}

rpc_call* call_of(nghttp2_session* s, int32_t stream) {
  return static_cast<rpc_call*>(nghttp2_session_get_stream_user_data(s, stream));
}

int on_begin_headers(nghttp2_session* s, const nghttp2_frame* f, void* user) {
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  auto& c = conn_of(user);
  auto srv = c.srv->self.lock();
  if (!srv)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  auto call = std::make_shared<rpc_call>(srv);
  call->wire_ = std::make_unique<rpc_call::wire>();
  call->wire_->conn = &c;
  call->wire_->stream = f->hd.stream_id;
  call->ip = c.ip;
  call->remote = c.remote;
  nghttp2_session_set_stream_user_data(s, f->hd.stream_id, call.get());
  c.calls.emplace(f->hd.stream_id, std::move(call));
  return 0;
}

int on_header(nghttp2_session* s, const nghttp2_frame* f, const uint8_t* name, size_t namelen,
              const uint8_t* value, size_t valuelen, uint8_t, void*) {
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  auto* call = call_of(s, f->hd.stream_id);
  if (!call)
    return 0;
  auto& w = *call->wire_;
  const std::string_view n(reinterpret_cast<const char*>(name), namelen);
  const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  if (n == ":path")
    w.path.assign(v.substr(0, 256));
  else if (n == ":method")
    w.post = v == "POST";
  else if (n == "content-type")
    w.grpc_type = v.substr(0, 16) == "application/grpc";
  return 0;
}

int on_data(nghttp2_session* s, uint8_t, int32_t stream, const uint8_t* data, size_t len,
            void* user) {
  auto* call = call_of(s, stream);
  if (!call)
    return 0;
  auto& w = *call->wire_;
  auto& c = conn_of(user);
  if (w.too_big || w.finishing)
    return 0;
  if (w.in.size() + len > c.srv->opts.max_message + 5) {
    w.too_big = true;
    std::string().swap(w.in);
    c.srv->decide(*call,
                  {resource_exhausted, "Received message larger than max (" +
                                           std::to_string(c.srv->opts.max_message) + " bytes)"});
    return 0;
  }
  w.in.append(reinterpret_cast<const char*>(data), len);
  return 0;
}

int on_frame_recv(nghttp2_session*, const nghttp2_frame* f, void* user) {
  auto& c = conn_of(user);
  if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK))
    c.ping_sent.reset();
  if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
    return 0;
  auto it = c.calls.find(f->hd.stream_id);
  if (it == c.calls.end())
    return 0;
  auto& w = *it->second->wire_;
  const bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
  if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST && !w.dispatched) {
    // A request nobody here serves is answered at once (a streaming client may wait for it).
    const bool ours =
        w.path.rfind(service_prefix, 0) == 0 &&
        (!c.srv->opts.serves || c.srv->opts.serves(w.path.substr(std::strlen(service_prefix))));
    if (!w.post || !w.grpc_type || !ours) {
      w.dispatched = true;
      it->second->method = w.path;
      c.srv->decide(*it->second, {unimplemented, ""});
    }
  }
  if (end) {
    w.request_done = true;
    if (!w.dispatched)
      c.srv->dispatch(it->second);
  }
  return 0;
}

// The server finished its side before the client finished its own (an early refusal): the rest
// of the request is not wanted.
int on_frame_send(nghttp2_session* s, const nghttp2_frame* f, void*) {
  if (f->hd.type != NGHTTP2_HEADERS || !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
    return 0;
  auto* call = call_of(s, f->hd.stream_id);
  if (call && !call->wire_->request_done)
    nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
  return 0;
}

int on_stream_close(nghttp2_session*, int32_t stream, uint32_t, void* user) {
  auto& c = conn_of(user);
  c.srv->end_call(c, stream);
  return 0;
}

} // namespace

void h2_server::impl::dispatch(const std::shared_ptr<rpc_call>& call) {
  auto& w = *call->wire_;
  w.dispatched = true;
  call->method = w.path.substr(std::strlen(service_prefix));
  if (w.too_big)
    return;
  // Exactly one message, not compressed.
  std::uint32_t len = 0;
  if (w.in.size() >= 5)
    len = (std::uint32_t(std::uint8_t(w.in[1])) << 24) |
          (std::uint32_t(std::uint8_t(w.in[2])) << 16) |
          (std::uint32_t(std::uint8_t(w.in[3])) << 8) | std::uint32_t(std::uint8_t(w.in[4]));
  if (w.in.size() < 5 || w.in[0] != '\0' || w.in.size() - 5 != len) {
    const bool compressed = w.in.size() >= 5 && w.in[0] != '\0';
    std::string().swap(w.in);
    decide(*call,
           {compressed ? unimplemented : invalid_argument,
            compressed ? "compressed messages are not supported" : "invalid request message"});
    return;
  }
  call->request = w.in.substr(5);
  std::string().swap(w.in);
  {
    std::lock_guard<std::mutex> lk(job_mu);
    jobs.push_back(call);
  }
  job_cv.notify_one();
}

void h2_server::impl::end_call(h2_connection& c, int32_t stream) {
  auto it = c.calls.find(stream);
  if (it == c.calls.end())
    return;
  auto call = std::move(it->second);
  c.calls.erase(it);
  auto& w = *call->wire_;
  release_turn(c, w);
  w.queued = false;
  w.conn = nullptr;
  std::string().swap(w.cur);
  w.next.reset();
  call->ended();
}

void h2_server::impl::run_handlers() {
  for (;;) {
    std::shared_ptr<rpc_call> call;
    {
      std::unique_lock<std::mutex> lk(job_mu);
      job_cv.wait(lk, [this] { return jobs_stop || !jobs.empty(); });
      if (jobs.empty())
        return;
      call = std::move(jobs.front());
      jobs.pop_front();
    }
    try {
      handler(call);
    } catch (const std::exception& e) {
      spdlog::error("gRPC {}: the handler failed: {}", call->method, e.what());
      call->reply({13, "internal error"});
    }
    std::string().swap(call->request); // handlers parse it before they return
  }
}

// ---- connections (loop thread)
// -----------------------------------------------------------------------

void h2_server::impl::on_readable(h2_connection& c) {
  uint8_t buf[16384];
  for (;;) {
    const auto n = ::read(c.fd, buf, sizeof buf);
    if (n > 0) {
      c.last_recv = clk::now();
      const auto used = nghttp2_session_mem_recv(c.session, buf, static_cast<size_t>(n));
      if (used < 0) {
        spdlog::debug("gRPC: connection from {} closed: {}", c.remote,
                      nghttp2_strerror(static_cast<int>(used)));
        return close(c);
      }
      if (c.closing)
        return;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    if (n < 0 && errno == EINTR)
      continue;
    return close(c); // the client closed or the socket failed
  }
  flush(c);
}

// Writes what nghttp2 has for the socket: frames gathered into one buffer of up to 64 KiB per
// send; when the socket would block, the rest waits for EPOLLOUT.
void h2_server::impl::flush(h2_connection& c) {
  if (c.closing)
    return;
  constexpr std::size_t batch = 64 * 1024;
  for (;;) {
    if (c.out_off == c.out.size()) {
      c.out.clear();
      c.out_off = 0;
      while (c.out.size() < batch) {
        const uint8_t* data = nullptr;
        const auto n = nghttp2_session_mem_send(c.session, &data);
        if (n < 0)
          return close(c);
        bool resumed = false;
        if (!c.to_resume.empty()) { // streams given a writing turn meanwhile
          for (auto id : c.to_resume)
            nghttp2_session_resume_data(c.session, id);
          c.to_resume.clear();
          resumed = true;
        }
        if (n == 0 && !resumed)
          break;
        c.out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
      }
      if (c.out.empty())
        break;
    }
    const auto n = ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    if (n < 0)
      return close(c);
    c.out_off += static_cast<std::size_t>(n);
  }
  const bool pending = c.out_off < c.out.size();
  if (!pending) {
    std::string().swap(c.out); // an idle connection keeps no buffer
    c.out_off = 0;
    if (!nghttp2_session_want_read(c.session) && !nghttp2_session_want_write(c.session))
      return close(c);
  }
  if (pending != c.want_out) {
    c.want_out = pending;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | (pending ? EPOLLOUT : 0u);
    ev.data.fd = c.fd;
    epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
  }
}

void h2_server::impl::close(h2_connection& c) {
  if (c.closing)
    return;
  c.closing = true;
  const int fd = c.fd;
  // Every call still open ends (its handler's on_done runs: a Sync's session ends).
  std::vector<int32_t> streams;
  for (const auto& [id, call] : c.calls)
    streams.push_back(id);
  for (auto id : streams)
    end_call(c, id);
  epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
  // Out of the table before the descriptor's number can be reused; destroyed at the end of the
  // loop's round, after the callbacks that may still run on this stack returned.
  auto it = conns.find(fd);
  if (it != conns.end() && it->second.get() == &c) {
    graveyard.push_back(std::move(it->second));
    conns.erase(it);
  }
  ::close(fd);
}

void h2_server::impl::bury() {
  for (auto& c : graveyard)
    nghttp2_session_del(c->session);
  graveyard.clear();
}

void h2_server::impl::keepalive() {
  const auto now = clk::now();
  const auto idle = std::chrono::milliseconds(opts.keepalive_ms);
  const auto timeout = std::chrono::milliseconds(opts.keepalive_timeout_ms);
  std::vector<h2_connection*> ping, dead;
  for (auto& [fd, c] : conns) {
    if (c->closing)
      continue;
    if (c->ping_sent) {
      // Anything heard since the PING proves the peer alive, its ACK or not.
      if (now - *c->ping_sent > timeout) {
        if (c->last_recv < *c->ping_sent)
          dead.push_back(c.get());
        else
          c->ping_sent.reset();
      }
    } else if (now - c->last_recv > idle) {
      ping.push_back(c.get());
    }
  }
  for (auto* c : dead) {
    spdlog::debug("gRPC: connection from {} did not answer a keepalive PING; closed", c->remote);
    close(*c);
  }
  for (auto* c : ping) {
    c->ping_sent = now;
    nghttp2_submit_ping(c->session, NGHTTP2_FLAG_NONE, nullptr);
    flush(*c);
  }
}

void h2_server::impl::run() {
  epoll_event events[64];
  auto next_tick = clk::now();
  for (;;) {
    const int n = epoll_wait(ep, events, 64, 250);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake) {
        std::uint64_t v;
        [[maybe_unused]] auto r = ::read(wake, &v, sizeof v);
        continue;
      }
      auto it = conns.find(fd);
      if (it == conns.end() || it->second->closing)
        continue;
      auto& c = *it->second;
      if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        on_readable(c);
      if (!c.closing && (events[i].events & EPOLLOUT))
        flush(c);
    }
    std::vector<std::function<void()>> jobs_now;
    {
      std::lock_guard<std::mutex> lk(post_mu);
      jobs_now.swap(posted);
    }
    for (auto& fn : jobs_now)
      fn();
    if (stopping && conns.empty()) {
      bury();
      return;
    }
    if (clk::now() >= next_tick) {
      next_tick = clk::now() + std::chrono::milliseconds(250);
      keepalive();
    }
    bury();
  }
}

// ---- the server
// ----------------------------------------------------------------------------------------

std::shared_ptr<h2_server> h2_server::start(handler_fn handler, h2_options opts) {
  std::shared_ptr<h2_server> srv(new h2_server());
  srv->impl_ = std::make_unique<impl>();
  auto& m = *srv->impl_;
  m.handler = std::move(handler);
  m.opts = std::move(opts);
  m.self = srv;
  m.ep = epoll_create1(EPOLL_CLOEXEC);
  m.wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (m.ep < 0 || m.wake < 0)
    throw std::runtime_error("gRPC transport: cannot create its event loop");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = m.wake;
  epoll_ctl(m.ep, EPOLL_CTL_ADD, m.wake, &ev);
  nghttp2_session_callbacks_new(&m.callbacks);
  nghttp2_session_callbacks_set_on_begin_headers_callback(m.callbacks, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(m.callbacks, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(m.callbacks, on_data);
  nghttp2_session_callbacks_set_on_frame_recv_callback(m.callbacks, on_frame_recv);
  nghttp2_session_callbacks_set_on_frame_send_callback(m.callbacks, on_frame_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(m.callbacks, on_stream_close);
  for (unsigned i = 0; i < std::max(1u, m.opts.handler_threads); ++i)
    m.handlers.emplace_back([&m] { m.run_handlers(); });
  m.loop = std::thread([&m] { m.run(); });
  return srv;
}

void h2_server::adopt(int fd, const std::string& ip, const std::string& remote) {
  const int flags = fcntl(fd, F_GETFL, 0);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); // fails harmlessly on a socketpair
  impl_->post([m = impl_.get(), fd, ip, remote] {
    if (m->stopping) {
      ::close(fd);
      return;
    }
    auto c = std::make_unique<h2_connection>();
    c->srv = m;
    c->fd = fd;
    c->ip = ip;
    c->remote = remote;
    if (nghttp2_session_server_new(&c->session, m->callbacks, c.get()) != 0) {
      ::close(fd);
      return;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, m->opts.max_streams},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 16384},
    };
    nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, 2);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.fd = fd;
    if (epoll_ctl(m->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
      nghttp2_session_del(c->session);
      ::close(fd);
      return;
    }
    auto& ref = *c;
    m->conns[fd] = std::move(c);
    m->flush(ref);
    if (!ref.closing)
      m->on_readable(ref); // bytes may be there already
  });
}

void h2_server::shutdown() {
  if (!impl_)
    return;
  std::call_once(impl_->shut, [m = impl_.get()] {
    m->post([m] {
      m->stopping = true;
      std::vector<h2_connection*> all;
      for (auto& [fd, c] : m->conns)
        all.push_back(c.get());
      for (auto* c : all) {
        if (c->closing)
          continue;
        // Every call ends UNAVAILABLE (the client retries elsewhere or later), then GOAWAY.
        for (auto& [id, call] : c->calls) {
          auto& w = *call->wire_;
          if (!w.finishing)
            m->decide(*call, {unavailable, "the server is shutting down"});
        }
        nghttp2_session_terminate_session(c->session, NGHTTP2_NO_ERROR);
        m->flush(*c);
        m->close(*c);
      }
    });
    if (m->loop.joinable())
      m->loop.join();
    {
      std::lock_guard<std::mutex> lk(m->job_mu);
      m->jobs_stop = true;
    }
    m->job_cv.notify_all();
    for (auto& t : m->handlers)
      t.join();
    // What was posted after the loop ended (answers of handlers) refers to nothing that lives.
    std::lock_guard<std::mutex> lk(m->post_mu);
    m->posted.clear();
  });
}

h2_server::~h2_server() {
  shutdown();
  if (impl_) {
    if (impl_->callbacks)
      nghttp2_session_callbacks_del(impl_->callbacks);
    ::close(impl_->ep);
    ::close(impl_->wake);
  }
}

} // namespace nbm::api
