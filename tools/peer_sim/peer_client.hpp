// A NetBird peer as the management server sees one: its own WireGuard key pair, GetServerKey, Login
// with a setup key, Sync streams of network maps — the real protocol over gRPC. Used by the e2e
// tests and, later, by load generators.
#pragma once

#include "management.grpc.pb.h"

#include <grpcpp/security/credentials.h>

#include <functional>
#include <memory>
#include <string>

namespace nbm::tools {

struct call_result {
  int code = 0; // grpc::StatusCode
  std::string message;
  bool ok() const { return code == 0; }
};

// The system meta every simulated peer announces (a Linux NetBird 0.60 agent named `hostname`).
void fill_meta(management::PeerSystemMeta& m, const std::string& hostname);

class peer_client {
public:
  // `target` "127.0.0.1:33073"; the key pair is generated, or read from / written to `key_file` if
  // given.
  explicit peer_client(const std::string& target, const std::string& key_file = "");
  // The same over a channel of these credentials (TLS: grpc::SslCredentials with the CA).
  peer_client(const std::string& target, std::shared_ptr<grpc::ChannelCredentials> creds,
              const std::string& key_file = "");

  std::string public_key_b64() const;

  call_result fetch_server_key();
  // Login (registration when `setup_key` is non-empty and the server does not know us yet).
  call_result login(const std::string& setup_key, const std::string& hostname,
                    management::LoginResponse* out = nullptr);
  // An SSO login: the IdP's JWT instead of a setup key.
  call_result login_jwt(const std::string& jwt, const std::string& hostname);

  // Opens a Sync stream and calls `on_map` for every SyncResponse until it returns false, the
  // stream ends, or `timeout_ms` passes. Returns the stream's final status (CANCELLED when we
  // stopped it). `on_open`, if given, is called with the call's context once the stream is
  // open and again with nullptr before sync returns: another thread may TryCancel() it between.
  call_result sync(const std::string& hostname,
                   const std::function<bool(const management::SyncResponse&)>& on_map,
                   int timeout_ms,
                   const std::function<void(grpc::ClientContext*)>& on_open = nullptr);

  // Seals an arbitrary body for the server (for tests of bad envelopes).
  management::EncryptedMessage envelope(const google::protobuf::Message& msg) const;
  management::ManagementService::Stub& stub() { return *stub_; }
  const std::string& server_key() const { return server_key_; }

private:
  call_result login_with(const std::string& setup_key, const std::string& jwt,
                         const std::string& hostname, management::LoginResponse* out);
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<management::ManagementService::Stub> stub_;
  std::string public_key_, private_key_; // raw
  std::string server_key_;               // raw, after fetch_server_key
};

} // namespace nbm::tools
