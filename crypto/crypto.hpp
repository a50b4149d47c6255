// The few cryptographic primitives the server needs, over libsodium: hashes as NetBird stores them,
// random identifiers, WireGuard (Curve25519) key pairs, the NaCl box of the gRPC envelope, and
// sealing of secrets at rest. A leaf library: it depends on nothing of ours.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace nbm::crypto {

// Calls sodium_init once; every function below calls it.
void init();

std::string base64_encode(const std::string& bytes);
std::optional<std::string> base64_decode(const std::string& text);

// base64(SHA-256(text)): how NetBird stores setup keys and personal access tokens.
std::string sha256_base64(const std::string& text);

std::uint32_t crc32_ieee(const std::string& data);
// NetBird's base62 (0-9A-Za-z) of a 32-bit number.
std::string base62(std::uint32_t n);
// `n` random characters of the base62 alphabet.
std::string random_base62(std::size_t n);
// A random upper-case UUID v4 ("A2C8E62B-38F5-4553-B31E-DD66C696CEBB"): NetBird's setup key form.
std::string random_uuid_upper();
// A 20-character lower-case base32hex id, shaped like the xid ids NetBird uses for new rows.
std::string random_id();

// A personal access token as NetBird makes it: nbp_ + 30 base62 + 6-char base62 CRC32 of the
// secret.
struct pat {
  std::string plain;  // shown once
  std::string hashed; // stored: base64(SHA-256(plain))
};
pat make_pat();
// Structure and checksum of a presented token (before any lookup).
bool pat_well_formed(const std::string& token);

// HMACs (raw digests), for NetBird's time-based TURN credentials (SHA-1) and relay tokens
// (SHA-256).
std::string hmac_sha1(const std::string& key, const std::string& data);
std::string hmac_sha256(const std::string& key, const std::string& data);

// A time-limited credential as NetBird's TimedHMAC makes it: payload = expiry as Unix seconds
// (text), signature = base64(HMAC(secret, payload)).
struct timed_token {
  std::string payload;
  std::string signature;
};
timed_token turn_credentials(const std::string& secret, std::int64_t expires_unix); // HMAC-SHA1
timed_token relay_token(const std::string& secret, std::int64_t expires_unix);      // HMAC-SHA256

// Curve25519 key pair, each half 32 bytes raw.
struct key_pair {
  std::string public_key;
  std::string private_key;
};
key_pair make_wg_key_pair();

// The gRPC envelope body: 24-byte random nonce || crypto_box_easy(message). `their_public` and
// `my_private` are raw 32-byte keys.
std::string box_seal(const std::string& message, const std::string& their_public,
                     const std::string& my_private);
// The same box with a key precomputed once per (their_public, my_private) pair: a stream that sends
// many maps to one peer skips the Curve25519 multiplication crypto_box_easy does per message.
std::string box_precompute(const std::string& their_public, const std::string& my_private);
std::string box_seal_precomputed(const std::string& message, const std::string& shared_key);
std::optional<std::string> box_open_precomputed(const std::string& body,
                                                const std::string& shared_key);
// nullopt when the body is too short or does not open with these keys.
std::optional<std::string> box_open(const std::string& body, const std::string& their_public,
                                    const std::string& my_private);

// Secrets at rest: nonce || crypto_secretbox_easy with a 32-byte key (DataStoreEncryptionKey
// decoded).
std::string secret_seal(const std::string& plain, const std::string& key32);
std::optional<std::string> secret_open(const std::string& sealed, const std::string& key32);

// NetBird's FieldEncrypt (util/crypt): base64(12-byte random nonce || AES-256-GCM ciphertext and
// tag) with a 32-byte key; "" for "". What NetBird's activity store keeps of deleted users.
std::string field_encrypt(const std::string& plain, const std::string& key32);
// nullopt when the text is not such a ciphertext of this key.
std::optional<std::string> field_decrypt(const std::string& text, const std::string& key32);

} // namespace nbm::crypto
