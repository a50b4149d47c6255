#include "api/grpc/server.hpp"

#include <grpcpp/server_posix.h>
#include <unistd.h>

#include <mutex>
#include <unordered_map>

#include "api/grpc/convert.hpp"
#include "api/grpc/sync_sink.hpp"
#include "api/grpc/wire_map.hpp"
#include "api/grpc/wire_request.hpp"
#include "api/metrics/counters.hpp"
#include "crypto/crypto.hpp"
#include "management.grpc.pb.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

namespace nbm::api {

namespace {

using grpc::Status;
using grpc::StatusCode;
using management::EncryptedMessage;

core::session_clock session_tokens;

// The one place where answers of the actors become gRPC statuses: a refusal the actors decided,
// or the facade's own answer for a passed deadline (UNAVAILABLE: the client retries), each a gRPC
// code with NetBird's message.
Status refusal(int code, const std::string& message) {
  return code == 0 ? Status::OK : Status(static_cast<StatusCode>(code), message);
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// gRPC's peer string ("ipv4:1.2.3.4:5678", "ipv6:[::1]:5678") -> the address alone.
// Connections handed over by a shared listener: gRPC names their peer "fd:<n>"; the listener
// recorded each one's remote address and port (getpeername on the accepted socket). An fd number
// is reused only after gRPC closed it, and the next adopt() of that number replaces the entry.
struct adopted_peer {
  std::string ip, remote;
};
std::mutex adopted_mu;
std::unordered_map<int, adopted_peer> adopted;

std::optional<adopted_peer> adopted_of(const std::string& peer) {
  if (peer.rfind("fd:", 0) != 0)
    return std::nullopt;
  std::lock_guard<std::mutex> lk(adopted_mu);
  auto it = adopted.find(std::atoi(peer.c_str() + 3));
  return it == adopted.end() ? adopted_peer{} : it->second;
}

// The connection's peer as the logs name it: "1.2.3.4:5678" (never gRPC's "fd:<n>").
std::string remote_of(const std::string& peer) {
  if (auto a = adopted_of(peer))
    return a->remote;
  const auto colon = peer.find(':'); // "ipv4:" / "ipv6:"
  return colon == std::string::npos ? peer : peer.substr(colon + 1);
}

std::string address_of(const std::string& peer) {
  if (auto a = adopted_of(peer))
    return a->ip;
  auto colon = peer.find(':');
  std::string rest = colon == std::string::npos ? peer : peer.substr(colon + 1);
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    return close == std::string::npos ? rest : rest.substr(1, close - 1);
  }
  auto port = rest.rfind(':');
  return port == std::string::npos ? rest : rest.substr(0, port);
}

// What an error message may echo of a client's text: at most a key's length (44 characters of
// base64), printable ASCII only.
std::string client_prefix(const std::string& text) {
  constexpr std::size_t keep = 44;
  std::string out;
  for (std::size_t i = 0; i < text.size() && i < keep; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    out += c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?';
  }
  if (text.size() > keep)
    out += "...";
  return out;
}

EncryptedMessage seal(const grpc_deps& d, const google::protobuf::Message& msg,
                      const std::string& their_key) {
  EncryptedMessage env;
  env.set_wgpubkey(crypto::base64_encode(d.server_public));
  env.set_body(crypto::box_seal(msg.SerializeAsString(), their_key, d.server_private));
  return env;
}

// Opens a unary request's envelope into `msg`, or finishes `r` with NetBird's status for a bad key
// or body. Returns the peer's raw key.
template <class Msg>
std::optional<std::string> open_request(const grpc_deps& d, const EncryptedMessage& req, Msg& msg,
                                        grpc::ServerUnaryReactor* r) {
  auto key = envelope_key(req);
  if (!key) {
    r->Finish(Status(StatusCode::INVALID_ARGUMENT,
                     "provided wgPubKey " + client_prefix(req.wgpubkey()) + " is invalid"));
    return std::nullopt;
  }
  if (!open_envelope(req.body(), *key, d.server_private, msg)) {
    r->Finish(Status(StatusCode::INVALID_ARGUMENT, "invalid request message"));
    return std::nullopt;
  }
  return key;
}

// The auth-flow methods open their envelope as the others do, with NetBird's own wording of the
// refusals (the method named when the key does not parse).
template <class Msg>
std::optional<std::string> open_flow_request(const grpc_deps& d, const EncryptedMessage& req,
                                             Msg& msg, grpc::ServerUnaryReactor* r,
                                             const char* method) {
  auto key = envelope_key(req);
  if (!key) {
    r->Finish(Status(StatusCode::INVALID_ARGUMENT,
                     "error while parsing peer's Wireguard public key " +
                         client_prefix(req.wgpubkey()) + " on " + method + " request."));
    return std::nullopt;
  }
  if (!open_envelope(req.body(), *key, d.server_private, msg)) {
    r->Finish(Status(StatusCode::INVALID_ARGUMENT,
                     "error while decrypting peer's message with Wireguard public key " +
                         client_prefix(req.wgpubkey()) + "."));
    return std::nullopt;
  }
  return key;
}

// ---- the service
// ------------------------------------------------------------------------------------------

class service final : public management::ManagementService::CallbackService {
public:
  explicit service(grpc_deps d) : d_(std::move(d)) {}

  grpc::ServerUnaryReactor* GetServerKey(grpc::CallbackServerContext* ctx, const management::Empty*,
                                         management::ServerKeyResponse* resp) override {
    resp->set_key(crypto::base64_encode(d_.server_public));
    // The key is long-lived (kept in the store); clients re-fetch it per connection anyway.
    const auto expires = std::chrono::system_clock::now() + std::chrono::hours(24);
    resp->mutable_expiresat()->set_seconds(
        std::chrono::duration_cast<std::chrono::seconds>(expires.time_since_epoch()).count());
    auto* r = ctx->DefaultReactor();
    r->Finish(Status::OK);
    return r;
  }

  grpc::ServerUnaryReactor* isHealthy(grpc::CallbackServerContext* ctx, const management::Empty*,
                                      management::Empty*) override {
    auto* r = ctx->DefaultReactor();
    r->Finish(Status::OK);
    return r;
  }

  grpc::ServerUnaryReactor* Login(grpc::CallbackServerContext* ctx, const EncryptedMessage* req,
                                  EncryptedMessage* resp) override {
    auto* r = ctx->DefaultReactor();
    management::LoginRequest login;
    auto key = open_request(d_, *req, login, r);
    if (!key)
      return r;
    actors::login_request lr = to_login_request(login, req->wgpubkey());
    if (!lr.jwt.empty() && d_.jwt && d_.jwt->configured()) {
      std::string why;
      auto claims = d_.jwt->verify(lr.jwt, why);
      if (!claims) {
        spdlog::debug("Login: JWT refused: {}", why);
        r->Finish(Status(StatusCode::PERMISSION_DENIED, "invalid jwt token"));
        return r;
      }
      lr.jwt_user = claims->user_id;
      lr.jwt_lists = std::move(claims->lists);
    }
    lr.remote_addr = remote_of(ctx->peer());
    auto d = &d_;
    const std::string their = *key;
    d_.door->login(std::move(lr), [=](actors::peer_view v) {
      if (v.code != 0) {
        r->Finish(refusal(v.code, v.message));
        return;
      }
      management::LoginResponse out;
      *out.mutable_netbirdconfig() = to_netbird_config(d->cfg, unix_now());
      *out.mutable_peerconfig() = to_peer_config(v.peer, v.network, d->dns_domain);
      for (const auto& files : v.checks) {
        auto* c = out.add_checks();
        for (const auto& f : files)
          c->add_files(f);
      }
      *resp = seal(*d, out, their);
      r->Finish(Status::OK);
    });
    return r;
  }

  grpc::ServerWriteReactor<EncryptedMessage>* Sync(grpc::CallbackServerContext* ctx,
                                                   const EncryptedMessage* req) override {
    auto st = std::make_shared<sync_stream>();
    st->deps = &d_;
    st->encoders = &encoders_;
    st->wg_key_b64 = req->wgpubkey();
    auto* reactor = new sync_reactor(st);
    st->reactor = reactor;
    st->token = session_tokens.next(); // the fencing token: this stream's open time
    auto key = envelope_key(*req);
    if (!key) {
      reactor->finish(
          Status(StatusCode::INVALID_ARGUMENT,
                 "provided wgPubKey " + client_prefix(req->wgpubkey()) + " is invalid"));
      return reactor;
    }
    st->wg_key_raw = *key;
    st->box_key = crypto::box_precompute(*key, d_.server_private);
    st->ip = address_of(ctx->peer());
    management::SyncRequest sync;
    if (!open_envelope_precomputed(req->body(), st->box_key, sync)) {
      reactor->finish(Status(StatusCode::INVALID_ARGUMENT, "invalid request message"));
      return reactor;
    }
    auto update = to_meta_update(sync);
    actors::sync_open open;
    open.wg_key = req->wgpubkey();
    open.has_meta = update.has_meta;
    open.meta = std::move(update.meta);
    // The facade holds the session; the stream ends it (OnDone), also before this call answered.
    auto session = d_.door->sync(std::move(open), st->token, st, [st](actors::sync_answer a) {
      if (a.code != 0)
        st->fail(refusal(a.code, a.message));
    });
    bool ended = false;
    {
      std::lock_guard<std::mutex> lk(st->mu);
      ended = st->reactor == nullptr;
      if (!ended)
        st->session = session;
    }
    if (ended)
      d_.door->stream_end(session);
    return reactor;
  }

  grpc::ServerUnaryReactor* SyncMeta(grpc::CallbackServerContext* ctx, const EncryptedMessage* req,
                                     management::Empty*) override {
    auto* r = ctx->DefaultReactor();
    management::SyncMetaRequest in;
    auto key = open_request(d_, *req, in, r);
    if (!key)
      return r;
    auto update = to_meta_update(in);
    actors::sync_open open;
    open.wg_key = req->wgpubkey();
    open.has_meta = update.has_meta;
    open.meta = std::move(update.meta);
    d_.door->sync_meta(std::move(open), [r](int code, std::string message) {
      if (code == static_cast<int>(StatusCode::PERMISSION_DENIED) &&
          message == "peer is not registered")
        r->Finish(Status(StatusCode::NOT_FOUND, "account not found: index lookup failed"));
      else
        r->Finish(refusal(code, message));
    });
    return r;
  }

  grpc::ServerUnaryReactor* Logout(grpc::CallbackServerContext* ctx, const EncryptedMessage* req,
                                   management::Empty*) override {
    auto* r = ctx->DefaultReactor();
    management::Empty in;
    auto key = open_request(d_, *req, in, r);
    if (!key)
      return r;
    d_.door->logout(req->wgpubkey(),
                    [r](actors::peer_view v) { r->Finish(refusal(v.code, v.message)); });
    return r;
  }

  grpc::ServerUnaryReactor* GetDeviceAuthorizationFlow(grpc::CallbackServerContext* ctx,
                                                       const EncryptedMessage* req,
                                                       EncryptedMessage* resp) override {
    auto* r = ctx->DefaultReactor();
    management::DeviceAuthorizationFlowRequest in;
    auto key = open_flow_request(d_, *req, in, r, "GetDeviceAuthorizationFlow");
    if (!key)
      return r;
    const auto& flow = d_.cfg.device_auth_flow;
    if (!flow || flow->provider.empty() || flow->provider == "none") {
      r->Finish(
          Status(StatusCode::NOT_FOUND, "no device authorization flow information available"));
      return r;
    }
    management::DeviceAuthorizationFlow out;
    out.set_provider(management::DeviceAuthorizationFlow::HOSTED);
    fill_provider(*out.mutable_providerconfig(), flow->config);
    *resp = seal(d_, out, *key);
    r->Finish(Status::OK);
    return r;
  }

  grpc::ServerUnaryReactor* GetPKCEAuthorizationFlow(grpc::CallbackServerContext* ctx,
                                                     const EncryptedMessage* req,
                                                     EncryptedMessage* resp) override {
    auto* r = ctx->DefaultReactor();
    management::PKCEAuthorizationFlowRequest in;
    auto key = open_flow_request(d_, *req, in, r, "GetPKCEAuthorizationFlow");
    if (!key)
      return r;
    if (!d_.cfg.pkce_auth_flow) {
      r->Finish(Status(StatusCode::NOT_FOUND, "no pkce authorization flow information available"));
      return r;
    }
    management::PKCEAuthorizationFlow out;
    fill_provider(*out.mutable_providerconfig(), d_.cfg.pkce_auth_flow->config);
    *resp = seal(d_, out, *key);
    r->Finish(Status::OK);
    return r;
  }

private:
  static void fill_provider(management::ProviderConfig& pc, const config::provider_config& c) {
    pc.set_clientid(c.client_id);
    pc.set_domain(c.domain);
    pc.set_audience(c.audience);
    pc.set_deviceauthendpoint(c.device_auth_endpoint);
    pc.set_tokenendpoint(c.token_endpoint);
    pc.set_scope(c.scope);
    pc.set_useidtoken(c.use_id_token);
    pc.set_authorizationendpoint(c.authorization_endpoint);
    for (const auto& u : c.redirect_urls)
      pc.add_redirecturls(u);
    pc.set_disablepromptlogin(c.disable_prompt_login);
    pc.set_loginflag(static_cast<std::uint32_t>(c.login_flag));
  }

  grpc_deps d_;
  encoder_pool encoders_{std::max(2u, std::thread::hardware_concurrency())};
};

} // namespace

namespace {

// The methods this server implements. gRPC's callback API answers UNIMPLEMENTED with an empty
// message when a request does not parse as the method's protobuf message (a malformed
// EncryptedMessage): for these methods that answer is rewritten to INVALID_ARGUMENT. A method not
// implemented here keeps UNIMPLEMENTED.
bool implemented(const std::string& method) {
  static const char* const names[] = {"GetServerKey",
                                      "isHealthy",
                                      "Login",
                                      "Sync",
                                      "SyncMeta",
                                      "Logout",
                                      "GetDeviceAuthorizationFlow",
                                      "GetPKCEAuthorizationFlow"};
  for (const char* n : names)
    if (method == n)
      return true;
  return false;
}

// Counts every call by method and the status it ended with (the metrics' gRPC counter); answers
// an unparseable request of an implemented method INVALID_ARGUMENT (see implemented()).
class counting_interceptor : public grpc::experimental::Interceptor {
public:
  explicit counting_interceptor(grpc::experimental::ServerRpcInfo* info) {
    const std::string full = info->method() ? info->method() : "";
    method_ = full.substr(full.rfind('/') + 1);
    implemented_ = full.rfind("/management.ManagementService/", 0) == 0 && implemented(method_);
    if (implemented_)
      metrics::grpc_started(method_);
  }
  void Intercept(grpc::experimental::InterceptorBatchMethods* m) override {
    if (m->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      auto status = m->GetSendStatus();
      if (implemented_ && status.error_code() == StatusCode::UNIMPLEMENTED &&
          status.error_message().empty()) {
        status = Status(StatusCode::INVALID_ARGUMENT, "invalid request message");
        m->ModifySendStatus(status);
      }
      metrics::grpc_request(method_, static_cast<int>(status.error_code()));
      if (method_ == "Login") // a Sync's duration is its first map (api/grpc/sync_sink)
        metrics::grpc_duration(
            method_,
            std::chrono::duration<double>(std::chrono::steady_clock::now() - began_).count());
    }
    m->Proceed();
  }

private:
  std::string method_;
  bool implemented_ = false;
  const std::chrono::steady_clock::time_point began_ = std::chrono::steady_clock::now();
};

class counting_factory : public grpc::experimental::ServerInterceptorFactoryInterface {
public:
  grpc::experimental::Interceptor*
  CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    return new counting_interceptor(info);
  }
};

} // namespace

struct grpc_server::impl {
  std::unique_ptr<service> svc;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

grpc_server::grpc_server(grpc_deps deps, const std::string& address)
    : impl_(std::make_unique<impl>()) {
  impl_->svc = std::make_unique<service>(std::move(deps));
  grpc::ServerBuilder b;
  if (!address.empty())
    b.AddListeningPort(address, grpc::InsecureServerCredentials(), &impl_->port);
  // HTTP/2 keepalive as NetBird configures it: liveness of Sync streams without an app heartbeat.
  b.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 5000);
  b.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 2000);
  b.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 15000);
  b.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  b.RegisterService(impl_->svc.get());
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> counting;
  counting.push_back(std::make_unique<counting_factory>());
  b.experimental().SetInterceptorCreators(std::move(counting));
  impl_->server = b.BuildAndStart();
  if (!impl_->server || (!address.empty() && impl_->port == 0))
    throw std::runtime_error("cannot listen on " + address);
}

void grpc_server::adopt(int fd, const std::string& remote_ip, const std::string& remote) {
  {
    std::lock_guard<std::mutex> lk(adopted_mu);
    adopted[fd] = adopted_peer{remote_ip, remote};
  }
  if (impl_->server)
    grpc::AddInsecureChannelFromFd(impl_->server.get(), fd);
  else
    ::close(fd);
}

grpc_server::~grpc_server() {
  shutdown();
}

int grpc_server::port() const {
  return impl_->port;
}

void grpc_server::shutdown() {
  if (impl_->server) {
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(3));
    impl_->server.reset();
  }
}

} // namespace nbm::api
