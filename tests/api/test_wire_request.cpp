// What a peer sends, decoded as the server decodes it (api/grpc/wire_request): the envelope's key,
// the body opened and parsed, and the actors' Login / Sync records. The fuzz target
// tests/fuzz/fuzz_envelope drives the same functions with arbitrary bytes.
#include "api/grpc/wire_request.hpp"
#include "crypto/crypto.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace nbm;

namespace {

struct parties {
  crypto::key_pair server = crypto::make_wg_key_pair(), peer = crypto::make_wg_key_pair();
  std::string peer_b64() const { return crypto::base64_encode(peer.public_key); }
  // An envelope as a NetBird client sends it.
  management::EncryptedMessage seal(const google::protobuf::MessageLite& msg) const {
    management::EncryptedMessage env;
    env.set_wgpubkey(peer_b64());
    env.set_body(crypto::box_seal(msg.SerializeAsString(), server.public_key, peer.private_key));
    return env;
  }
};

management::LoginRequest login_with_meta() {
  management::LoginRequest in;
  in.set_setupkey("A2C8E62B-38F5-4553-B31E-DD66C696CEBB");
  in.set_jwttoken("jwt");
  in.mutable_peerkeys()->set_sshpubkey("ssh-ed25519 AAAA");
  in.add_dnslabels("printer");
  auto* m = in.mutable_meta();
  m->set_hostname("laptop-7");
  m->set_core("12");
  m->set_netbirdversion("0.36.5");
  auto* a = m->add_networkaddresses();
  a->set_netip("192.168.1.23/24");
  a->set_mac("52:54:00:12:34:56");
  m->add_files()->set_path("/usr/bin/x");
  m->mutable_flags()->set_rosenpassenabled(true);
  return in;
}

} // namespace

TEST_CASE("wire request: a sealed Login opens into the login record the actors take") {
  const parties p;
  const auto env = p.seal(login_with_meta());
  const auto key = api::envelope_key(env);
  REQUIRE(key);
  CHECK(*key == p.peer.public_key);
  management::LoginRequest login;
  REQUIRE(api::open_envelope(env.body(), *key, p.server.private_key, login));
  const auto lr = api::to_login_request(login, env.wgpubkey());
  CHECK(lr.wg_key == p.peer_b64());
  CHECK(lr.setup_key == "A2C8E62B-38F5-4553-B31E-DD66C696CEBB");
  CHECK(lr.jwt == "jwt");
  CHECK(lr.jwt_user.empty()); // the JWT check is the caller's
  CHECK(lr.ssh_key == "ssh-ed25519 AAAA");
  CHECK(lr.extra_dns_labels == std::vector<std::string>{"printer"});
  REQUIRE(lr.has_meta);
  CHECK(lr.meta.hostname == "laptop-7");
  CHECK(lr.meta.os_version == "12"); // NetBird falls back to Core without OSVersion
  CHECK(lr.meta.wt_version == "0.36.5");
  const auto addrs = nlohmann::json::parse(lr.meta.network_addresses_json);
  REQUIRE(addrs.size() == 1);
  CHECK(addrs[0]["NetIP"] == "192.168.1.23/24");
  CHECK(addrs[0]["Mac"] == "52:54:00:12:34:56");
  CHECK(nlohmann::json::parse(lr.meta.flags_json)["RosenpassEnabled"] == true);
  CHECK(nlohmann::json::parse(lr.meta.files_json)[0]["Path"] == "/usr/bin/x");
}

TEST_CASE("wire request: a Sync without meta says so; SyncMeta's meta converts") {
  const parties p;
  const auto shared = crypto::box_precompute(p.peer.public_key, p.server.private_key);
  management::SyncRequest bare;
  management::SyncRequest sync;
  REQUIRE(api::open_envelope_precomputed(p.seal(bare).body(), shared, sync));
  const auto u = api::to_meta_update(sync);
  CHECK_FALSE(u.has_meta);
  CHECK(u.meta.network_addresses_json == "[]");

  management::SyncMetaRequest with_meta;
  with_meta.mutable_meta()->set_hostname("renamed");
  with_meta.mutable_meta()->set_osversion("13");
  management::SyncMetaRequest in;
  REQUIRE(
      api::open_envelope(p.seal(with_meta).body(), p.peer.public_key, p.server.private_key, in));
  const auto m = api::to_meta_update(in);
  CHECK(m.has_meta);
  CHECK(m.meta.hostname == "renamed");
  CHECK(m.meta.os_version == "13");
}

TEST_CASE("wire request: a key that is not 32 bytes of base64 is refused") {
  management::EncryptedMessage env;
  env.set_wgpubkey("not base64!");
  CHECK_FALSE(api::envelope_key(env));
  env.set_wgpubkey(crypto::base64_encode(std::string(31, 'k')));
  CHECK_FALSE(api::envelope_key(env));
  env.set_wgpubkey(crypto::base64_encode(std::string(33, 'k')));
  CHECK_FALSE(api::envelope_key(env));
  env.set_wgpubkey("");
  CHECK_FALSE(api::envelope_key(env));
  env.set_wgpubkey(crypto::base64_encode(std::string(32, 'k')));
  CHECK(api::envelope_key(env) == std::string(32, 'k'));
}

TEST_CASE("wire request: a forged, truncated or misaddressed body does not open") {
  const parties p;
  const auto body = p.seal(login_with_meta()).body();
  management::LoginRequest out;
  auto flipped = body;
  flipped[flipped.size() / 2] ^= 1;
  CHECK_FALSE(api::open_envelope(flipped, p.peer.public_key, p.server.private_key, out));
  CHECK_FALSE(api::open_envelope(body.substr(0, 39), p.peer.public_key, p.server.private_key, out));
  CHECK_FALSE(api::open_envelope("", p.peer.public_key, p.server.private_key, out));
  const auto other = crypto::make_wg_key_pair();
  CHECK_FALSE(api::open_envelope(body, p.peer.public_key, other.private_key, out));
  CHECK_FALSE(api::open_envelope(body, other.public_key, p.server.private_key, out));
  // A low-order (all-zero) peer key never opens anything.
  CHECK_FALSE(api::open_envelope(body, std::string(32, '\0'), p.server.private_key, out));
  CHECK(api::open_envelope(body, p.peer.public_key, p.server.private_key, out));
}

TEST_CASE("wire request: a body that opens but is not the message is refused") {
  const parties p;
  management::EncryptedMessage env;
  env.set_body(crypto::box_seal(std::string("\xff\xff\xff\xff", 4), p.server.public_key,
                                p.peer.private_key));
  management::LoginRequest out;
  CHECK_FALSE(api::open_envelope(env.body(), p.peer.public_key, p.server.private_key, out));
  // proto3 strings must be UTF-8: a setup key of invalid UTF-8 does not parse (so the meta's JSON
  // columns never see bytes nlohmann-json refuses to write).
  std::string bad_utf8 = "\x0a\x02\xc3\x28"; // field 1 (setupKey), 2 bytes: invalid UTF-8
  env.set_body(crypto::box_seal(bad_utf8, p.server.public_key, p.peer.private_key));
  CHECK_FALSE(api::open_envelope(env.body(), p.peer.public_key, p.server.private_key, out));
}
