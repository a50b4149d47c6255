#include "crypto/crypto.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include <mutex>
#include <stdexcept>
#include <vector>

namespace nbm::crypto {

namespace {
constexpr char alphabet62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

const unsigned char* u(const std::string& s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}
} // namespace

void init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0)
      throw std::runtime_error("libsodium failed to initialise");
  });
}

std::string base64_encode(const std::string& bytes) {
  std::string out(sodium_base64_ENCODED_LEN(bytes.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), u(bytes), bytes.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(out.size() - 1); // the terminating NUL
  return out;
}

std::optional<std::string> base64_decode(const std::string& text) {
  std::string out(text.size(), '\0');
  std::size_t len = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                        text.size(), nullptr, &len, nullptr, sodium_base64_VARIANT_ORIGINAL) != 0)
    return std::nullopt;
  out.resize(len);
  return out;
}

std::string sha256_base64(const std::string& text) {
  init();
  std::string digest(crypto_hash_sha256_BYTES, '\0');
  crypto_hash_sha256(reinterpret_cast<unsigned char*>(digest.data()), u(text), text.size());
  return base64_encode(digest);
}

std::uint32_t crc32_ieee(const std::string& data) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : data) {
    crc ^= c;
    for (int k = 0; k < 8; ++k)
      crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

std::string base62(std::uint32_t n) {
  if (n == 0)
    return "0";
  std::string out;
  while (n > 0) {
    out.insert(out.begin(), alphabet62[n % 62]);
    n /= 62;
  }
  return out;
}

std::string random_base62(std::size_t n) {
  init();
  std::string out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    out += alphabet62[randombytes_uniform(62)];
  return out;
}

std::string random_uuid_upper() {
  init();
  unsigned char b[16];
  randombytes_buf(b, sizeof b);
  b[6] = static_cast<unsigned char>((b[6] & 0x0F) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3F) | 0x80);
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      out += '-';
    out += hex[b[i] >> 4];
    out += hex[b[i] & 15];
  }
  return out;
}

std::string random_id() {
  init();
  static const char b32[] = "0123456789abcdefghijklmnopqrstuv";
  std::string out;
  for (int i = 0; i < 20; ++i)
    out += b32[randombytes_uniform(32)];
  return out;
}

pat make_pat() {
  const std::string secret = random_base62(30);
  std::string checksum = base62(crc32_ieee(secret));
  checksum.insert(0, 6 - checksum.size(), '0');
  pat p;
  p.plain = "nbp_" + secret + checksum;
  p.hashed = sha256_base64(p.plain);
  return p;
}

bool pat_well_formed(const std::string& token) {
  if (token.size() != 40 || token.rfind("nbp_", 0) != 0)
    return false;
  std::string checksum = base62(crc32_ieee(token.substr(4, 30)));
  checksum.insert(0, 6 - checksum.size(), '0');
  return token.substr(34) == checksum;
}

namespace {
std::string hmac(const EVP_MD* md, const std::string& key, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(md, key.data(), static_cast<int>(key.size()), u(data), data.size(), out, &len))
    throw std::runtime_error("HMAC failed");
  return std::string(reinterpret_cast<const char*>(out), len);
}
} // namespace

std::string hmac_sha1(const std::string& key, const std::string& data) {
  return hmac(EVP_sha1(), key, data);
}

std::string hmac_sha256(const std::string& key, const std::string& data) {
  return hmac(EVP_sha256(), key, data);
}

timed_token turn_credentials(const std::string& secret, std::int64_t expires_unix) {
  timed_token t;
  t.payload = std::to_string(expires_unix);
  t.signature = base64_encode(hmac_sha1(secret, t.payload));
  return t;
}

timed_token relay_token(const std::string& secret, std::int64_t expires_unix) {
  timed_token t;
  t.payload = std::to_string(expires_unix);
  t.signature = base64_encode(hmac_sha256(secret, t.payload));
  return t;
}

key_pair make_wg_key_pair() {
  init();
  key_pair kp;
  kp.public_key.resize(crypto_box_PUBLICKEYBYTES);
  kp.private_key.resize(crypto_box_SECRETKEYBYTES);
  crypto_box_keypair(reinterpret_cast<unsigned char*>(kp.public_key.data()),
                     reinterpret_cast<unsigned char*>(kp.private_key.data()));
  return kp;
}

std::string box_seal(const std::string& message, const std::string& their_public,
                     const std::string& my_private) {
  init();
  if (their_public.size() != crypto_box_PUBLICKEYBYTES ||
      my_private.size() != crypto_box_SECRETKEYBYTES)
    throw std::invalid_argument("box_seal: keys must be 32 bytes");
  std::string out(crypto_box_NONCEBYTES + crypto_box_MACBYTES + message.size(), '\0');
  auto* nonce = reinterpret_cast<unsigned char*>(out.data());
  randombytes_buf(nonce, crypto_box_NONCEBYTES);
  if (crypto_box_easy(nonce + crypto_box_NONCEBYTES, u(message), message.size(), nonce,
                      u(their_public), u(my_private)) != 0)
    throw std::runtime_error("box_seal failed");
  return out;
}

std::string box_precompute(const std::string& their_public, const std::string& my_private) {
  init();
  if (their_public.size() != crypto_box_PUBLICKEYBYTES ||
      my_private.size() != crypto_box_SECRETKEYBYTES)
    throw std::invalid_argument("box_precompute: keys must be 32 bytes");
  std::string key(crypto_box_BEFORENMBYTES, '\0');
  if (crypto_box_beforenm(reinterpret_cast<unsigned char*>(key.data()), u(their_public),
                          u(my_private)) != 0)
    throw std::runtime_error("box_precompute failed");
  return key;
}

std::string box_seal_precomputed(const std::string& message, const std::string& shared_key) {
  init();
  if (shared_key.size() != crypto_box_BEFORENMBYTES)
    throw std::invalid_argument("box_seal_precomputed: the key must be 32 bytes");
  std::string out(crypto_box_NONCEBYTES + crypto_box_MACBYTES + message.size(), '\0');
  auto* nonce = reinterpret_cast<unsigned char*>(out.data());
  randombytes_buf(nonce, crypto_box_NONCEBYTES);
  if (crypto_box_easy_afternm(nonce + crypto_box_NONCEBYTES, u(message), message.size(), nonce,
                              u(shared_key)) != 0)
    throw std::runtime_error("box_seal_precomputed failed");
  return out;
}

std::optional<std::string> box_open_precomputed(const std::string& body,
                                                const std::string& shared_key) {
  init();
  if (shared_key.size() != crypto_box_BEFORENMBYTES ||
      body.size() < crypto_box_NONCEBYTES + crypto_box_MACBYTES)
    return std::nullopt;
  std::string out(body.size() - crypto_box_NONCEBYTES - crypto_box_MACBYTES, '\0');
  const auto* nonce = u(body);
  if (crypto_box_open_easy_afternm(reinterpret_cast<unsigned char*>(out.data()),
                                   nonce + crypto_box_NONCEBYTES,
                                   body.size() - crypto_box_NONCEBYTES, nonce, u(shared_key)) != 0)
    return std::nullopt;
  return out;
}

std::optional<std::string> box_open(const std::string& body, const std::string& their_public,
                                    const std::string& my_private) {
  init();
  if (their_public.size() != crypto_box_PUBLICKEYBYTES ||
      my_private.size() != crypto_box_SECRETKEYBYTES ||
      body.size() < crypto_box_NONCEBYTES + crypto_box_MACBYTES)
    return std::nullopt;
  std::string out(body.size() - crypto_box_NONCEBYTES - crypto_box_MACBYTES, '\0');
  const auto* nonce = u(body);
  if (crypto_box_open_easy(reinterpret_cast<unsigned char*>(out.data()),
                           nonce + crypto_box_NONCEBYTES, body.size() - crypto_box_NONCEBYTES,
                           nonce, u(their_public), u(my_private)) != 0)
    return std::nullopt;
  return out;
}

std::string secret_seal(const std::string& plain, const std::string& key32) {
  init();
  if (key32.size() != crypto_secretbox_KEYBYTES)
    throw std::invalid_argument("secret_seal: the key must be 32 bytes");
  std::string out(crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + plain.size(), '\0');
  auto* nonce = reinterpret_cast<unsigned char*>(out.data());
  randombytes_buf(nonce, crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(nonce + crypto_secretbox_NONCEBYTES, u(plain), plain.size(), nonce,
                        u(key32));
  return out;
}

std::optional<std::string> secret_open(const std::string& sealed, const std::string& key32) {
  init();
  if (key32.size() != crypto_secretbox_KEYBYTES ||
      sealed.size() < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
    return std::nullopt;
  std::string out(sealed.size() - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES, '\0');
  const auto* nonce = u(sealed);
  if (crypto_secretbox_open_easy(reinterpret_cast<unsigned char*>(out.data()),
                                 nonce + crypto_secretbox_NONCEBYTES,
                                 sealed.size() - crypto_secretbox_NONCEBYTES, nonce, u(key32)) != 0)
    return std::nullopt;
  return out;
}

namespace {

constexpr std::size_t gcm_nonce = 12, gcm_tag = 16;

struct cipher_ctx {
  EVP_CIPHER_CTX* p = EVP_CIPHER_CTX_new();
  ~cipher_ctx() { EVP_CIPHER_CTX_free(p); }
  cipher_ctx() = default;
  cipher_ctx(const cipher_ctx&) = delete;
  cipher_ctx& operator=(const cipher_ctx&) = delete;
};

} // namespace

std::string field_encrypt(const std::string& plain, const std::string& key32) {
  if (plain.empty())
    return {};
  if (key32.size() != 32)
    throw std::invalid_argument("field_encrypt: the key must be 32 bytes");
  init();
  std::string out(gcm_nonce + plain.size() + gcm_tag, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  randombytes_buf(o, gcm_nonce);
  cipher_ctx c;
  int len = 0, fin = 0;
  if (!c.p || EVP_EncryptInit_ex(c.p, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.p, EVP_CTRL_GCM_SET_IVLEN, gcm_nonce, nullptr) != 1 ||
      EVP_EncryptInit_ex(c.p, nullptr, nullptr, u(key32), o) != 1 ||
      EVP_EncryptUpdate(c.p, o + gcm_nonce, &len, u(plain), static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(c.p, o + gcm_nonce + len, &fin) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.p, EVP_CTRL_GCM_GET_TAG, gcm_tag, o + gcm_nonce + plain.size()) != 1)
    throw std::runtime_error("field_encrypt: AES-GCM failed");
  return base64_encode(out);
}

std::optional<std::string> field_decrypt(const std::string& text, const std::string& key32) {
  if (text.empty())
    return std::string();
  const auto data = base64_decode(text);
  if (!data || key32.size() != 32 || data->size() < gcm_nonce + gcm_tag)
    return std::nullopt;
  const std::size_t n = data->size() - gcm_nonce - gcm_tag;
  const auto* d = u(*data);
  std::string out(n, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  std::string tag = data->substr(gcm_nonce + n);
  cipher_ctx c;
  int len = 0, fin = 0;
  if (!c.p || EVP_DecryptInit_ex(c.p, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.p, EVP_CTRL_GCM_SET_IVLEN, gcm_nonce, nullptr) != 1 ||
      EVP_DecryptInit_ex(c.p, nullptr, nullptr, u(key32), d) != 1 ||
      EVP_DecryptUpdate(c.p, o, &len, d + gcm_nonce, static_cast<int>(n)) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.p, EVP_CTRL_GCM_SET_TAG, gcm_tag, tag.data()) != 1 ||
      EVP_DecryptFinal_ex(c.p, o + len, &fin) != 1)
    return std::nullopt;
  return out;
}

} // namespace nbm::crypto
