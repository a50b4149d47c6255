// libFuzzer target: what a peer sends over gRPC, from raw bytes to the actors' request records.
// Each input is tried as
//   1. an envelope body opened with crypto::box_open (a forged body must never open);
//   2. an EncryptedMessage: its key decoded and its body opened and parsed as Login, Sync and
//      SyncMeta requests exactly as the server does (api/grpc/wire_request);
//   3. a plain LoginRequest / SyncRequest / SyncMetaRequest, converted into the actors' records
//      (the meta's JSON columns must be JSON the store can keep);
//   4. a message sealed by a peer: box_seal then the server's open must give the bytes back.
// Any crash, sanitizer report or failed check is a finding. Seeds: tests/fuzz/corpus/envelope/.
#include "api/grpc/wire_request.hpp"
#include "crypto/crypto.hpp"

#include <google/protobuf/stubs/logging.h>
#include <nlohmann/json.hpp>
#include <sodium.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

using namespace nbm;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_envelope: check failed: %s\n", what);
    std::abort();
  }
}

struct keys {
  std::string server_private, server_public, peer_private, peer_public;
  std::string peer_to_server; // what the peer seals with
  std::string server_from_peer;
};

// Fixed key pairs (tests/fuzz/make_seeds.cpp seals the seed envelopes with the same ones).
std::string fixed_private(unsigned char fill) {
  return std::string(32, static_cast<char>(fill));
}
std::string public_of(const std::string& priv) {
  std::string pub(32, '\0');
  crypto_scalarmult_base(reinterpret_cast<unsigned char*>(pub.data()),
                         reinterpret_cast<const unsigned char*>(priv.data()));
  return pub;
}

const keys& fixed_keys() {
  static const keys k = [] {
    crypto::init();
    keys k;
    k.server_private = fixed_private(0x5e);
    k.server_public = public_of(k.server_private);
    k.peer_private = fixed_private(0x9a);
    k.peer_public = public_of(k.peer_private);
    k.peer_to_server = crypto::box_precompute(k.server_public, k.peer_private);
    k.server_from_peer = crypto::box_precompute(k.peer_public, k.server_private);
    return k;
  }();
  return k;
}

void check_meta(const core::peer_meta& m, const management::PeerSystemMeta& in) {
  using json = nlohmann::json;
  for (const auto* text : {&m.network_addresses_json, &m.environment_json, &m.flags_json,
                           &m.files_json, &m.capabilities_json})
    check(json::accept(*text), "a meta JSON column is not JSON");
  check(json::parse(m.network_addresses_json).size() ==
            static_cast<std::size_t>(in.networkaddresses_size()),
        "network addresses lost");
  check(json::parse(m.files_json).size() == static_cast<std::size_t>(in.files_size()),
        "files lost");
  check(m.hostname == in.hostname(), "hostname changed");
  check(m.os_version == (in.osversion().empty() ? in.core() : in.osversion()),
        "os version is not NetBird's");
}

void login_record(const management::LoginRequest& in, const std::string& wg_key) {
  const auto lr = api::to_login_request(in, wg_key);
  check(lr.wg_key == wg_key && lr.setup_key == in.setupkey() && lr.jwt == in.jwttoken(),
        "login fields changed");
  check(lr.has_meta == in.has_meta(), "has_meta changed");
  check(lr.extra_dns_labels.size() == static_cast<std::size_t>(in.dnslabels_size()),
        "dns labels lost");
  check(lr.jwt_user.empty() && lr.remote_addr.empty(), "decoder set caller fields");
  check_meta(lr.meta, in.meta());
}

template <class Msg>
void meta_record(const Msg& in) {
  const auto u = api::to_meta_update(in);
  check(u.has_meta == in.has_meta(), "has_meta changed");
  check_meta(u.meta, in.meta());
}

// The request types an envelope body may hold, each parsed and converted.
void requests(const std::string& plain, const std::string& wg_key) {
  management::LoginRequest login;
  if (login.ParseFromString(plain))
    login_record(login, wg_key);
  management::SyncRequest sync;
  if (sync.ParseFromString(plain))
    meta_record(sync);
  management::SyncMetaRequest sync_meta;
  if (sync_meta.ParseFromString(plain))
    meta_record(sync_meta);
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // libprotobuf logs an ERROR line for each string field of invalid UTF-8 it refuses: a refused
  // parse is expected here, and the lines would slow the run and flood its log.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto& k = fixed_keys();
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  const std::string peer_b64 = crypto::base64_encode(k.peer_public);

  // 1. raw bytes as a body: opens only if it is a real box of the peer (a seed)
  if (auto plain = crypto::box_open(bytes, k.peer_public, k.server_private))
    requests(*plain, peer_b64);

  // 2. an envelope, opened as Login (box_open) and Sync (precomputed) are
  management::EncryptedMessage env;
  if (env.ParseFromString(bytes)) {
    if (auto key = api::envelope_key(env)) {
      check(key->size() == 32, "envelope key is not 32 bytes");
      management::LoginRequest login;
      if (api::open_envelope(env.body(), *key, k.server_private, login))
        login_record(login, env.wgpubkey());
      if (*key == k.peer_public) {
        management::SyncRequest sync;
        if (api::open_envelope_precomputed(env.body(), k.server_from_peer, sync))
          meta_record(sync);
      }
    }
  }

  // 3. the bytes as a plain request
  requests(bytes, peer_b64);

  // 4. sealed by the peer, opened by the server: the same bytes
  const auto sealed = crypto::box_seal_precomputed(bytes, k.peer_to_server);
  auto opened = crypto::box_open_precomputed(sealed, k.server_from_peer);
  check(opened && *opened == bytes, "box round trip changed the message");
  management::LoginRequest login;
  const bool parses = login.ParseFromString(bytes);
  management::LoginRequest via_box;
  check(api::open_envelope_precomputed(sealed, k.server_from_peer, via_box) == parses,
        "an envelope parses differently from its plain text");
  return 0;
}
