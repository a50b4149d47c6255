// libsodium wrappers: NetBird's token and key formats, the envelope box, secrets at rest.
#include "crypto/crypto.hpp"

#include <doctest/doctest.h>

#include <regex>
#include <set>

using namespace nbm::crypto;

TEST_CASE("hashes and encodings match NetBird's stored values") {
  // NetBird's testdata/store.sql stores the PAT "nbp_apTmlmUXHSC4PKmHwtIZNaGr8eqcVI2gMURp" as this
  // hash.
  CHECK(sha256_base64("nbp_apTmlmUXHSC4PKmHwtIZNaGr8eqcVI2gMURp") ==
        "smJvzexPcQ3NRezrVDUmF++0XqvFvXzx8Rsn2y9r1z0=");
  CHECK(pat_well_formed("nbp_apTmlmUXHSC4PKmHwtIZNaGr8eqcVI2gMURp"));
  CHECK_FALSE(pat_well_formed("nbp_apTmlmUXHSC4PKmHwtIZNaGr8eqcVI2gMURq")); // checksum off by one
  CHECK_FALSE(pat_well_formed("xyz_apTmlmUXHSC4PKmHwtIZNaGr8eqcVI2gMURp"));
  CHECK_FALSE(pat_well_formed("nbp_short"));
  CHECK(crc32_ieee("123456789") == 0xCBF43926u);
  CHECK(base62(0) == "0");
  CHECK(base62(61) == "z");
  CHECK(base62(62) == "10");
  CHECK(base64_encode("hello") == "aGVsbG8=");
  CHECK(*base64_decode("aGVsbG8=") == "hello");
  CHECK_FALSE(base64_decode("***").has_value());
}

TEST_CASE("new tokens, setup keys and ids have NetBird's shapes and differ") {
  std::set<std::string> seen;
  for (int i = 0; i < 50; ++i) {
    auto p = make_pat();
    CHECK(p.plain.size() == 40);
    CHECK(pat_well_formed(p.plain));
    CHECK(p.hashed == sha256_base64(p.plain));
    CHECK(seen.insert(p.plain).second);
  }
  static const std::regex uuid(
      "[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}");
  auto k = random_uuid_upper();
  CHECK(std::regex_match(k, uuid));
  CHECK(k[8] == '-'); // the form the plain-key migration recognises
  auto id = random_id();
  CHECK(id.size() == 20);
  CHECK(id != random_id());
}

TEST_CASE("envelope box: sealed for the receiver, opened by it only") {
  auto server = make_wg_key_pair();
  auto peer = make_wg_key_pair();
  auto other = make_wg_key_pair();
  CHECK(server.public_key.size() == 32);
  const std::string msg = "a serialized LoginRequest";
  auto body = box_seal(msg, server.public_key, peer.private_key);
  CHECK(body.size() == 24 + 16 + msg.size()); // nonce || MAC || ciphertext
  CHECK(*box_open(body, peer.public_key, server.private_key) == msg);
  CHECK_FALSE(box_open(body, other.public_key, server.private_key).has_value()); // wrong sender
  auto tampered = body;
  tampered[30] ^= 1;
  CHECK_FALSE(box_open(tampered, peer.public_key, server.private_key).has_value());
  CHECK_FALSE(box_open(body.substr(0, 39), peer.public_key, server.private_key).has_value());
  CHECK_FALSE(box_open(body, "short", server.private_key).has_value());
  CHECK(box_seal(msg, server.public_key, peer.private_key) != body); // fresh nonce each time
  CHECK_THROWS_AS(box_seal(msg, "bad", peer.private_key), std::invalid_argument);
}

TEST_CASE("envelope box with a precomputed key: the same box both ways") {
  auto server = make_wg_key_pair();
  auto peer = make_wg_key_pair();
  auto other = make_wg_key_pair();
  const std::string msg = "a serialized SyncResponse";
  const auto server_side = box_precompute(peer.public_key, server.private_key);
  const auto peer_side = box_precompute(server.public_key, peer.private_key);
  CHECK(server_side == peer_side); // X25519 is symmetric: both ends derive one key
  // Sealed with the precomputed key, opened by the plain box and the other way round.
  auto body = box_seal_precomputed(msg, server_side);
  CHECK(body.size() == 24 + 16 + msg.size());
  CHECK(*box_open(body, server.public_key, peer.private_key) == msg);
  CHECK(*box_open_precomputed(box_seal(msg, server.public_key, peer.private_key), server_side) ==
        msg);
  CHECK_FALSE(box_open(body, other.public_key, peer.private_key).has_value());
  auto tampered = body;
  tampered[40] ^= 1;
  CHECK_FALSE(box_open_precomputed(tampered, server_side).has_value());
  CHECK_FALSE(box_open_precomputed(body.substr(0, 39), server_side).has_value());
  CHECK_THROWS_AS(box_precompute("short", server.private_key), std::invalid_argument);
  CHECK_THROWS_AS(box_seal_precomputed(msg, "short"), std::invalid_argument);
}

TEST_CASE("secrets at rest open with their key only") {
  const std::string key(32, 'k');
  auto sealed = secret_seal("private half", key);
  CHECK(sealed.find("private half") == std::string::npos);
  CHECK(*secret_open(sealed, key) == "private half");
  CHECK_FALSE(secret_open(sealed, std::string(32, 'x')).has_value());
  CHECK_FALSE(secret_open("short", key).has_value());
  CHECK_THROWS_AS(secret_seal("x", "short key"), std::invalid_argument);
}

TEST_CASE("NetBird's FieldEncrypt: AES-256-GCM, nonce first, base64; NetBird reads ours") {
  const auto key = *base64_decode("X4kQ0yVh1H8m1pmRq3nH8V1dBu9Z9vF2Xr6x3fXc2Ws=");
  // Made by another implementation (Python's AESGCM, as Go's gcm.Seal(nonce, nonce, ...)).
  const std::string theirs = "AAECAwQFBgcICQoLGpZtWZpyy0XaNFkAbuP0nriwLifQkg9CSraR6m1Nvp33";
  CHECK(field_decrypt(theirs, key) == std::optional<std::string>("dave@corp.example"));
  const auto ours = field_encrypt("dave@corp.example", key);
  CHECK(ours != field_encrypt("dave@corp.example", key)); // a fresh nonce each time
  CHECK(base64_decode(ours)->size() == 12 + 17 + 16);
  CHECK(field_decrypt(ours, key) == std::optional<std::string>("dave@corp.example"));
  CHECK(field_encrypt("", key).empty()); // as NetBird: "" stays ""
  CHECK(field_decrypt("", key) == std::optional<std::string>(""));
  // Another key, a changed byte, a cut text, not base64: nothing.
  CHECK_FALSE(field_decrypt(ours, std::string(32, 'x')).has_value());
  auto raw = *base64_decode(ours);
  raw[14] = static_cast<char>(raw[14] ^ 1);
  CHECK_FALSE(field_decrypt(base64_encode(raw), key).has_value());
  CHECK_FALSE(field_decrypt(base64_encode(raw.substr(0, 20)), key).has_value());
  CHECK_FALSE(field_decrypt("not base64 !", key).has_value());
  CHECK_THROWS_AS(field_encrypt("x", "short key"), std::invalid_argument);
}

TEST_CASE("time-based TURN credentials and relay tokens are signed as NetBird's TimedHMAC") {
  const std::string fox = "The quick brown fox jumps over the lazy dog";
  // RFC 2104 examples as widely published.
  CHECK(base64_encode(hmac_sha1("key", fox)) == "3nybhbi3iqa8ino29wqQcBydtNk=");
  CHECK(base64_encode(hmac_sha256("key", fox)) == "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg=");
  auto turn = turn_credentials("secret", 1700000000);
  CHECK(turn.payload == "1700000000");
  CHECK(turn.signature == base64_encode(hmac_sha1("secret", "1700000000")));
  auto relay = relay_token("netbird", 1700000000);
  CHECK(relay.payload == "1700000000");
  CHECK(relay.signature == base64_encode(hmac_sha256("netbird", "1700000000")));
  CHECK(relay.signature != turn.signature);
}
