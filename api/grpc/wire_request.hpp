// What a peer sends, from envelope to the actors' request records: the peer's key, the opened and
// parsed body, and the Login / Sync / SyncMeta records. Pure (protobuf, libsodium, core values):
// no CAF, no gRPC server, no I/O, so tests/fuzz drives exactly the code the server runs.
#pragma once

#include "actors/requests.hpp"
#include "management.pb.h"

#include <optional>
#include <string>

namespace nbm::api {

// The peer's raw 32-byte WireGuard key from the envelope's base64 wgPubKey; nullopt when it is not
// one (NetBird answers InvalidArgument "provided wgPubKey ... is invalid").
std::optional<std::string> envelope_key(const management::EncryptedMessage& env);

// Opens an envelope body (nonce || box) sealed by the peer's raw key for the server's private key
// and parses it into `out`; false when it does not open or does not parse (NetBird: InvalidArgument
// "invalid request message"). The precomputed form takes crypto::box_precompute's shared key.
bool open_envelope(const std::string& body, const std::string& their_raw_key,
                   const std::string& server_private, google::protobuf::MessageLite& out);
bool open_envelope_precomputed(const std::string& body, const std::string& shared_key,
                               google::protobuf::MessageLite& out);

// A Login as the login service takes it. `wg_key_b64` is the envelope's key as sent; jwt_user and
// remote_addr are left to the caller (they come from the JWT check and the connection).
actors::login_request to_login_request(const management::LoginRequest& in,
                                       const std::string& wg_key_b64);

// The meta a Sync or SyncMeta brings, as the login service's lookup takes it.
struct meta_update {
  bool has_meta = false;
  core::peer_meta meta;
};
meta_update to_meta_update(const management::SyncRequest& in);
meta_update to_meta_update(const management::SyncMetaRequest& in);

} // namespace nbm::api
