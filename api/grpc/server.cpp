#include "api/grpc/server.hpp"

#include "api/grpc/convert.hpp"
#include "api/grpc/h2_server.hpp"
#include "api/grpc/sync_sink.hpp"
#include "api/grpc/wire_map.hpp"
#include "api/grpc/wire_request.hpp"
#include "api/metrics/counters.hpp"
#include "crypto/crypto.hpp"
#include "management.pb.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <optional>
#include <thread>
#include <unordered_map>

namespace nbm::api {

namespace {

using management::EncryptedMessage;
using call_ptr = std::shared_ptr<rpc_call>;

// gRPC's codes as NetBird answers them.
enum code : int {
  ok = 0,
  invalid_argument = 3,
  not_found = 5,
  permission_denied = 7,
  unimplemented = 12,
  internal = 13
};

core::session_clock session_tokens;

// The one place where answers of the actors become gRPC statuses: a refusal the actors decided,
// or the facade's own answer for a passed deadline (UNAVAILABLE: the client retries), each a gRPC
// code with NetBird's message.
rpc_status refusal(int code, const std::string& message) {
  return code == 0 ? rpc_status{} : rpc_status{code, message};
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
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

std::string seal(const grpc_deps& d, const google::protobuf::Message& msg,
                 const std::string& their_key) {
  EncryptedMessage env;
  env.set_wgpubkey(crypto::base64_encode(d.server_public));
  env.set_body(crypto::box_seal(msg.SerializeAsString(), their_key, d.server_private));
  return env.SerializeAsString();
}

// Opens a unary request's envelope into `msg`, or answers the call with NetBird's status for a bad
// key or body. Returns the peer's raw key.
template <class Msg>
std::optional<std::string> open_request(const grpc_deps& d, const EncryptedMessage& req, Msg& msg,
                                        rpc_call& c) {
  auto key = envelope_key(req);
  if (!key) {
    c.reply(
        {invalid_argument, "provided wgPubKey " + client_prefix(req.wgpubkey()) + " is invalid"});
    return std::nullopt;
  }
  if (!open_envelope(req.body(), *key, d.server_private, msg)) {
    c.reply({invalid_argument, "invalid request message"});
    return std::nullopt;
  }
  return key;
}

// The auth-flow methods open their envelope as the others do, with NetBird's own wording of the
// refusals (the method named when the key does not parse).
template <class Msg>
std::optional<std::string> open_flow_request(const grpc_deps& d, const EncryptedMessage& req,
                                             Msg& msg, rpc_call& c, const char* method) {
  auto key = envelope_key(req);
  if (!key) {
    c.reply({invalid_argument, "error while parsing peer's Wireguard public key " +
                                   client_prefix(req.wgpubkey()) + " on " + method + " request."});
    return std::nullopt;
  }
  if (!open_envelope(req.body(), *key, d.server_private, msg)) {
    c.reply({invalid_argument, "error while decrypting peer's message with Wireguard public key " +
                                   client_prefix(req.wgpubkey()) + "."});
    return std::nullopt;
  }
  return key;
}

// ---- the service
// ------------------------------------------------------------------------------------------

class service {
public:
  explicit service(grpc_deps d) : d_(std::move(d)) {}

  // NetBird's ManagementService: each method with its request as bytes.
  using method_fn = void (service::*)(const call_ptr&);
  static method_fn method_of(const std::string& name) {
    static const std::unordered_map<std::string, method_fn> methods = {
        {"GetServerKey", &service::GetServerKey},
        {"isHealthy", &service::isHealthy},
        {"Login", &service::Login},
        {"Sync", &service::Sync},
        {"SyncMeta", &service::SyncMeta},
        {"Logout", &service::Logout},
        {"GetDeviceAuthorizationFlow", &service::GetDeviceAuthorizationFlow},
        {"GetPKCEAuthorizationFlow", &service::GetPKCEAuthorizationFlow}};
    auto it = methods.find(name);
    return it == methods.end() ? nullptr : it->second;
  }

  void handle(const call_ptr& c) {
    spdlog::debug("gRPC {} from {}", c->method, c->remote);
    auto fn = method_of(c->method);
    if (!fn) {
      c->reply({unimplemented, ""});
      return;
    }
    metrics::grpc_started(c->method);
    (this->*fn)(c);
  }

private:
  // The request as the method's envelope; answered INVALID_ARGUMENT when it does not parse.
  static std::optional<EncryptedMessage> envelope(rpc_call& c) {
    EncryptedMessage req;
    if (!req.ParseFromString(c.request)) {
      c.reply({invalid_argument, "invalid request message"});
      return std::nullopt;
    }
    return req;
  }

  void GetServerKey(const call_ptr& c) {
    management::Empty in;
    if (!in.ParseFromString(c->request))
      return c->reply({invalid_argument, "invalid request message"});
    management::ServerKeyResponse resp;
    resp.set_key(crypto::base64_encode(d_.server_public));
    // The key is long-lived (kept in the store); clients re-fetch it per connection anyway.
    const auto expires = std::chrono::system_clock::now() + std::chrono::hours(24);
    resp.mutable_expiresat()->set_seconds(
        std::chrono::duration_cast<std::chrono::seconds>(expires.time_since_epoch()).count());
    c->reply({}, resp.SerializeAsString());
  }

  void isHealthy(const call_ptr& c) {
    management::Empty in;
    if (!in.ParseFromString(c->request))
      return c->reply({invalid_argument, "invalid request message"});
    c->reply({}, management::Empty().SerializeAsString());
  }

  void Login(const call_ptr& c) {
    auto req = envelope(*c);
    if (!req)
      return;
    management::LoginRequest login;
    auto key = open_request(d_, *req, login, *c);
    if (!key)
      return;
    actors::login_request lr = to_login_request(login, req->wgpubkey());
    if (!lr.jwt.empty() && d_.jwt && d_.jwt->configured()) {
      std::string why;
      auto claims = d_.jwt->verify(lr.jwt, why);
      if (!claims) {
        spdlog::debug("Login: JWT refused: {}", why);
        return c->reply({permission_denied, "invalid jwt token"});
      }
      lr.jwt_user = claims->user_id;
      lr.jwt_lists = std::move(claims->lists);
    }
    lr.remote_addr = c->remote;
    auto d = &d_;
    const std::string their = *key;
    d_.door->login(std::move(lr), [=](actors::peer_view v) {
      if (v.code != 0)
        return c->reply(refusal(v.code, v.message));
      management::LoginResponse out;
      *out.mutable_netbirdconfig() = to_netbird_config(d->cfg, unix_now());
      *out.mutable_peerconfig() = to_peer_config(v.peer, v.network, d->dns_domain);
      for (const auto& files : v.checks) {
        auto* ch = out.add_checks();
        for (const auto& f : files)
          ch->add_files(f);
      }
      c->reply({}, seal(*d, out, their));
    });
  }

  void Sync(const call_ptr& c) {
    auto req = envelope(*c);
    if (!req)
      return;
    auto st = std::make_shared<sync_stream>();
    st->deps = &d_;
    st->encoders = &encoders_;
    st->wg_key_b64 = req->wgpubkey();
    st->call = c;
    st->token = session_tokens.next(); // the fencing token: this stream's open time
    // The stream's end (the client went, or it was answered) ends the facade's session.
    c->on_done([st] {
      actors::sync_session_ptr session;
      {
        std::lock_guard<std::mutex> lk(st->mu);
        st->call.reset();
        session = std::move(st->session);
      }
      if (session)
        st->deps->door->stream_end(session);
    });
    auto key = envelope_key(*req);
    if (!key)
      return st->fail({invalid_argument,
                       "provided wgPubKey " + client_prefix(req->wgpubkey()) + " is invalid"});
    st->wg_key_raw = *key;
    st->box_key = crypto::box_precompute(*key, d_.server_private);
    st->ip = c->ip;
    management::SyncRequest sync;
    if (!open_envelope_precomputed(req->body(), st->box_key, sync))
      return st->fail({invalid_argument, "invalid request message"});
    auto update = to_meta_update(sync);
    actors::sync_open open;
    open.wg_key = req->wgpubkey();
    open.has_meta = update.has_meta;
    open.meta = std::move(update.meta);
    // The facade holds the session; the stream ends it (on_done), also before this call answered.
    auto session = d_.door->sync(std::move(open), st->token, st, [st](actors::sync_answer a) {
      if (a.code != 0)
        st->fail(refusal(a.code, a.message));
    });
    bool ended = false;
    {
      std::lock_guard<std::mutex> lk(st->mu);
      ended = st->call == nullptr;
      if (!ended)
        st->session = session;
    }
    if (ended)
      d_.door->stream_end(session);
  }

  void SyncMeta(const call_ptr& c) {
    auto req = envelope(*c);
    if (!req)
      return;
    management::SyncMetaRequest in;
    auto key = open_request(d_, *req, in, *c);
    if (!key)
      return;
    auto update = to_meta_update(in);
    actors::sync_open open;
    open.wg_key = req->wgpubkey();
    open.has_meta = update.has_meta;
    open.meta = std::move(update.meta);
    d_.door->sync_meta(std::move(open), [c](int code, std::string message) {
      if (code == permission_denied && message == "peer is not registered")
        c->reply({not_found, "account not found: index lookup failed"});
      else
        c->reply(refusal(code, message), management::Empty().SerializeAsString());
    });
  }

  void Logout(const call_ptr& c) {
    auto req = envelope(*c);
    if (!req)
      return;
    management::Empty in;
    auto key = open_request(d_, *req, in, *c);
    if (!key)
      return;
    d_.door->logout(req->wgpubkey(), [c](actors::peer_view v) {
      c->reply(refusal(v.code, v.message), management::Empty().SerializeAsString());
    });
  }

  void GetDeviceAuthorizationFlow(const call_ptr& c) {
    auto req = envelope(*c);
    if (!req)
      return;
    management::DeviceAuthorizationFlowRequest in;
    auto key = open_flow_request(d_, *req, in, *c, "GetDeviceAuthorizationFlow");
    if (!key)
      return;
    const auto& flow = d_.cfg.device_auth_flow;
    if (!flow || flow->provider.empty() || flow->provider == "none")
      return c->reply({not_found, "no device authorization flow information available"});
    management::DeviceAuthorizationFlow out;
    out.set_provider(management::DeviceAuthorizationFlow::HOSTED);
    fill_provider(*out.mutable_providerconfig(), flow->config);
    c->reply({}, seal(d_, out, *key));
  }

  void GetPKCEAuthorizationFlow(const call_ptr& c) {
    auto req = envelope(*c);
    if (!req)
      return;
    management::PKCEAuthorizationFlowRequest in;
    auto key = open_flow_request(d_, *req, in, *c, "GetPKCEAuthorizationFlow");
    if (!key)
      return;
    if (!d_.cfg.pkce_auth_flow)
      return c->reply({not_found, "no pkce authorization flow information available"});
    management::PKCEAuthorizationFlow out;
    fill_provider(*out.mutable_providerconfig(), d_.cfg.pkce_auth_flow->config);
    c->reply({}, seal(d_, out, *key));
  }

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

// Counts every call of an implemented method by the status it ended with (the metrics' gRPC
// counter); a Login's duration too (a Sync's is its first map: api/grpc/sync_sink).
void count(const rpc_call& c, int code) {
  if (!service::method_of(c.method))
    return;
  metrics::grpc_request(c.method, code);
  if (c.method == "Login")
    metrics::grpc_duration(
        c.method,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - c.began).count());
}

} // namespace

struct grpc_server::impl {
  std::unique_ptr<service> svc;
  std::shared_ptr<h2_server> transport;
};

grpc_server::grpc_server(grpc_deps deps) : impl_(std::make_unique<impl>()) {
  impl_->svc = std::make_unique<service>(std::move(deps));
  h2_options opts; // HTTP/2 keepalive as NetBird configures it: 5 s, then 2 s for the answer
  opts.counted = count;
  opts.serves = [](const std::string& m) { return service::method_of(m) != nullptr; };
  impl_->transport =
      h2_server::start([svc = impl_->svc.get()](const call_ptr& c) { svc->handle(c); }, opts);
}

void grpc_server::adopt(int fd, const std::string& remote_ip, const std::string& remote) {
  if (impl_->transport)
    impl_->transport->adopt(fd, remote_ip, remote);
  else
    ::close(fd);
}

grpc_server::~grpc_server() {
  shutdown();
}

void grpc_server::shutdown() {
  if (impl_->transport) {
    impl_->transport->shutdown();
    impl_->transport.reset();
  }
}

} // namespace nbm::api
