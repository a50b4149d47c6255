#include "api/grpc/wire_request.hpp"

#include "api/grpc/convert.hpp"
#include "crypto/crypto.hpp"

namespace nbm::api {

std::optional<std::string> envelope_key(const management::EncryptedMessage& env) {
  auto raw = crypto::base64_decode(env.wgpubkey());
  if (!raw || raw->size() != 32)
    return std::nullopt;
  return raw;
}

bool open_envelope(const std::string& body, const std::string& their_raw_key,
                   const std::string& server_private, google::protobuf::MessageLite& out) {
  auto plain = crypto::box_open(body, their_raw_key, server_private);
  return plain && out.ParseFromString(*plain);
}

bool open_envelope_precomputed(const std::string& body, const std::string& shared_key,
                               google::protobuf::MessageLite& out) {
  auto plain = crypto::box_open_precomputed(body, shared_key);
  return plain && out.ParseFromString(*plain);
}

actors::login_request to_login_request(const management::LoginRequest& in,
                                       const std::string& wg_key_b64) {
  actors::login_request lr;
  lr.wg_key = wg_key_b64;
  lr.setup_key = in.setupkey();
  lr.jwt = in.jwttoken();
  lr.has_meta = in.has_meta();
  lr.meta = to_meta(in.meta());
  lr.ssh_key = in.peerkeys().sshpubkey();
  lr.extra_dns_labels.assign(in.dnslabels().begin(), in.dnslabels().end());
  return lr;
}

meta_update to_meta_update(const management::SyncRequest& in) {
  return {in.has_meta(), to_meta(in.meta())};
}

meta_update to_meta_update(const management::SyncMetaRequest& in) {
  return {in.has_meta(), to_meta(in.meta())};
}

} // namespace nbm::api
