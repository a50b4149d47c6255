#include "actors/wire_facade_make.hpp"

#include "actors/interfaces.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <mutex>
#include <optional>

namespace nbm::actors {

// A Sync stream's session: the peer actor that fences it, once its connect was sent. The connect
// is sent under `mu`, and so is the disconnect of stream_end(): the disconnect always lands in the
// peer actor's mailbox behind the connect, and a stream that ended before its connect was sent
// sends neither.
class sync_session {
public:
  explicit sync_session(std::int64_t t) : token(t) {}
  const std::int64_t token;
  std::mutex mu;
  std::optional<peer_actor> peer;  // set when the connect was sent
  std::string account_id, peer_id; // set with the connect, for the log lines
  bool ended = false;
};

struct wire_facade::impl {
  caf::actor_system* sys = nullptr;
  peer_directory dir;
  std::chrono::milliseconds deadline{20000};
};

namespace {

// A failure of the actor system itself (not a refusal the actors decided), as a gRPC code.
std::pair<int, std::string> failure(const caf::error& err) {
  if (err == caf::sec::request_timeout)
    return {wire_unavailable, "the server did not answer in time, please try again"};
  if (err == caf::sec::runtime_error) // a store worker failed: the store cannot be reached
    return {wire_unavailable, "the store is unavailable, please try again later"};
  spdlog::error("wire: {}", caf::to_string(err));
  return {wire_internal, "failed handling request"};
}

peer_view failed_view(const caf::error& err) {
  peer_view v;
  std::tie(v.code, v.message) = failure(err);
  return v;
}

} // namespace

std::unique_ptr<wire_facade> make_wire_facade(caf::actor_system& sys, const caf::actor& directory,
                                              std::chrono::milliseconds deadline) {
  auto p = std::make_unique<wire_facade::impl>();
  p->sys = &sys;
  p->dir = caf::actor_cast<peer_directory>(directory);
  p->deadline = deadline;
  return std::make_unique<wire_facade>(std::move(p));
}

wire_facade::wire_facade(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

wire_facade::~wire_facade() = default;

std::chrono::milliseconds wire_facade::deadline() const {
  return impl_->deadline;
}

void wire_facade::login(login_request req, std::function<void(peer_view)> done) {
  auto dir = impl_->dir;
  const auto timeout = impl_->deadline;
  impl_->sys->spawn([=](caf::event_based_actor* self) {
    self->request(dir, timeout, login_atom::value, req)
        .then(
            [=](peer_view& v) {
              if (v.code != 0)
                spdlog::debug("Login from {} refused: {}", req.remote_addr, v.message);
              else
                spdlog::info("peer {} of account {} logged in{}", v.peer.id, v.peer.account_id,
                             v.registered ? " (registered now)"
                             : v.relogged ? " (SSO login renewed)"
                                          : "");
              done(std::move(v));
            },
            [=](caf::error& err) { done(failed_view(err)); });
  });
}

sync_session_ptr wire_facade::sync(sync_open req, std::int64_t token,
                                   std::shared_ptr<session_sink> sink,
                                   std::function<void(sync_answer)> done) {
  auto s = std::make_shared<sync_session>(token);
  auto dir = impl_->dir;
  const auto timeout = impl_->deadline;
  const auto ip = sink ? sink->remote_ip() : std::string();
  auto fail = [done](const caf::error& err) {
    sync_answer a;
    std::tie(a.code, a.message) = failure(err);
    done(std::move(a));
  };
  impl_->sys->spawn([=](caf::event_based_actor* self) {
    // 1. the directory: the key's account actor decides from memory (registered? expired?);
    // 2. the peer actor: connect (the fence). Once that landed, the account actor sends the first
    // map through the sink.
    self->request(dir, timeout, sync_atom::value, req)
        .then(
            [=](sync_verdict& v) {
              if (v.code != 0) {
                done(sync_answer{v.code, std::move(v.message), false});
                return;
              }
              std::unique_lock<std::mutex> lk(s->mu);
              if (s->ended) { // the stream ended before its session began: nothing to fence
                lk.unlock();
                done(sync_answer{1, "the stream ended", false}); // CANCELLED
                return;
              }
              s->peer = v.peer;
              s->account_id = v.account_id;
              s->peer_id = v.peer_id;
              auto handle = self->request(v.peer, timeout, connect_atom::value,
                                          session_token{token}, sink_ptr(sink));
              lk.unlock();
              handle.then(
                  [=](bool landed) {
                    if (landed) {
                      spdlog::info("peer {} of account {} connected: session {} from {}", v.peer_id,
                                   v.account_id, token, ip.empty() ? "?" : ip);
                      done(sync_answer{0, {}, true});
                    } else
                      done(sync_answer{wire_aborted, "a newer session of this peer is active",
                                       false});
                  },
                  fail);
            },
            fail);
  });
  return s;
}

void wire_facade::stream_end(const sync_session_ptr& s) {
  if (!s)
    return;
  std::lock_guard<std::mutex> lk(s->mu);
  if (s->ended)
    return;
  s->ended = true;
  if (s->peer) {
    caf::anon_send(*s->peer, disconn_atom::value, session_token{s->token});
    spdlog::info("peer {} of account {} disconnected: session {}", s->peer_id, s->account_id,
                 s->token);
  }
  s->peer.reset();
}

void wire_facade::sync_meta(sync_open req, std::function<void(int, std::string)> done) {
  auto dir = impl_->dir;
  const auto timeout = impl_->deadline;
  impl_->sys->spawn([=](caf::event_based_actor* self) {
    self->request(dir, timeout, meta_atom::value, req)
        .then([=](int code, std::string& message) { done(code, std::move(message)); },
              [=](caf::error& err) {
                auto [code, message] = failure(err);
                done(code, std::move(message));
              });
  });
}

void wire_facade::logout(std::string wg_key, std::function<void(peer_view)> done) {
  auto dir = impl_->dir;
  const auto timeout = impl_->deadline;
  impl_->sys->spawn([=](caf::event_based_actor* self) {
    self->request(dir, timeout, logout_atom::value, wg_key)
        .then([=](peer_view& v) { done(std::move(v)); },
              [=](caf::error& err) { done(failed_view(err)); });
  });
}

} // namespace nbm::actors
