#include "tools/peer_sim/peer_client.hpp"

#include "crypto/crypto.hpp"

#include <grpcpp/grpcpp.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace nbm::tools {

peer_client::peer_client(const std::string& target, const std::string& key_file)
    : peer_client(target, grpc::InsecureChannelCredentials(), key_file) {}

// With a key file: an existing file is the peer's identity, read and never replaced (one that
// cannot be read or holds no key pair throws std::runtime_error); a missing one is created with a
// new pair (throws when it cannot be written).
peer_client::peer_client(const std::string& target, std::shared_ptr<grpc::ChannelCredentials> creds,
                         const std::string& key_file) {
  channel_ = grpc::CreateChannel(target, std::move(creds));
  stub_ = management::ManagementService::NewStub(channel_);
  std::error_code ec;
  if (!key_file.empty() && std::filesystem::exists(key_file, ec)) {
    // An existing file is the peer's identity: never replaced, whatever it holds.
    std::ifstream in(key_file);
    if (!in)
      throw std::runtime_error("key file " + key_file + ": cannot be read (" +
                               std::strerror(errno) + ")");
    std::string pub, priv;
    if (in >> pub >> priv) {
      public_key_ = crypto::base64_decode(pub).value_or("");
      private_key_ = crypto::base64_decode(priv).value_or("");
    }
    if (public_key_.size() != 32 || private_key_.size() != 32)
      throw std::runtime_error("key file " + key_file +
                               ": not a key pair (want two lines: the public and the private "
                               "key, base64 of 32 bytes each); left unchanged");
    return;
  }
  auto kp = crypto::make_wg_key_pair();
  public_key_ = kp.public_key;
  private_key_ = kp.private_key;
  if (!key_file.empty()) {
    std::ofstream out(key_file);
    out << crypto::base64_encode(public_key_) << "\n"
        << crypto::base64_encode(private_key_) << "\n";
    out.close();
    if (!out)
      throw std::runtime_error("key file " + key_file + ": cannot be written (" +
                               std::strerror(errno) + ")");
  }
}

std::string peer_client::public_key_b64() const {
  return crypto::base64_encode(public_key_);
}

call_result peer_client::fetch_server_key() {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  management::Empty req;
  management::ServerKeyResponse resp;
  auto s = stub_->GetServerKey(&ctx, req, &resp);
  if (!s.ok())
    return {s.error_code(), s.error_message()};
  server_key_ = crypto::base64_decode(resp.key()).value_or("");
  if (server_key_.size() != 32)
    return {13, "server key is not a 32-byte base64 key: " + resp.key()};
  return {};
}

management::EncryptedMessage peer_client::envelope(const google::protobuf::Message& msg) const {
  management::EncryptedMessage env;
  env.set_wgpubkey(public_key_b64());
  env.set_body(crypto::box_seal(msg.SerializeAsString(), server_key_, private_key_));
  return env;
}

void fill_meta(management::PeerSystemMeta& m, const std::string& hostname) {
  m.set_hostname(hostname);
  m.set_goos("linux");
  m.set_os("Debian GNU/Linux");
  m.set_osversion("12");
  m.set_kernel("Linux");
  m.set_netbirdversion("0.60.0");
  m.mutable_environment();
}

call_result peer_client::login_jwt(const std::string& jwt, const std::string& hostname) {
  return login_with("", jwt, hostname, nullptr);
}

call_result peer_client::login(const std::string& setup_key, const std::string& hostname,
                               management::LoginResponse* out) {
  return login_with(setup_key, "", hostname, out);
}

call_result peer_client::login_with(const std::string& setup_key, const std::string& jwt,
                                    const std::string& hostname, management::LoginResponse* out) {
  if (server_key_.empty())
    if (auto r = fetch_server_key(); !r.ok())
      return r;
  management::LoginRequest req;
  req.set_setupkey(setup_key);
  req.set_jwttoken(jwt);
  fill_meta(*req.mutable_meta(), hostname);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
  management::EncryptedMessage resp;
  auto s = stub_->Login(&ctx, envelope(req), &resp);
  if (!s.ok())
    return {s.error_code(), s.error_message()};
  auto plain = crypto::box_open(resp.body(), server_key_, private_key_);
  management::LoginResponse lr;
  if (!plain || !lr.ParseFromString(*plain))
    return {13, "cannot open the login response"};
  if (out)
    *out = lr;
  return {};
}

call_result peer_client::sync(const std::string& hostname,
                              const std::function<bool(const management::SyncResponse&)>& on_map,
                              int timeout_ms,
                              const std::function<void(grpc::ClientContext*)>& on_open) {
  if (server_key_.empty())
    if (auto r = fetch_server_key(); !r.ok())
      return r;
  management::SyncRequest req;
  fill_meta(*req.mutable_meta(), hostname);
  grpc::ClientContext ctx;
  if (timeout_ms > 0) // <= 0: no deadline (peer_sim sync until Ctrl-C)
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  auto reader = stub_->Sync(&ctx, envelope(req));
  if (on_open)
    on_open(&ctx);
  struct closed_on_return {
    const std::function<void(grpc::ClientContext*)>& f;
    ~closed_on_return() {
      if (f)
        f(nullptr);
    }
  } closed{on_open};
  management::EncryptedMessage msg;
  bool stopped = false;
  while (reader->Read(&msg)) {
    auto plain = crypto::box_open(msg.body(), server_key_, private_key_);
    management::SyncResponse sr;
    if (!plain || !sr.ParseFromString(*plain))
      return {13, "cannot open a sync message"};
    if (!on_map(sr)) {
      stopped = true;
      ctx.TryCancel();
      break;
    }
  }
  auto s = reader->Finish();
  if (stopped)
    return {1, "stopped"};
  return {s.error_code(), s.error_message()};
}

} // namespace nbm::tools
