// What the REST e2e tests share: an HTTP client for NetBird's API, its error-body check, and an
// IdP of the test's own (an RSA key, its JWKS served on 127.0.0.1, RS256 JWTs).
#pragma once

#include "tests/e2e/harness.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <fstream>
#include <thread>

namespace nbm::e2e {

struct rest_reply {
  int status = 0;
  nlohmann::json body;
  std::string request_id;  // X-Request-Id
  std::string retry_after; // the Retry-After header, if any
};

struct rest_client {
  int port;
  std::string auth;

  rest_reply call(const std::string& method, const std::string& path, const std::string& body = "",
                  const std::string* authorization = nullptr) {
    httplib::Client cli("127.0.0.1", port);
    cli.set_connection_timeout(5);
    cli.set_read_timeout(10);
    httplib::Headers h;
    const std::string a = authorization ? *authorization : auth;
    if (!a.empty())
      h.emplace("Authorization", a);
    httplib::Result r = method == "GET"    ? cli.Get(path, h)
                        : method == "POST" ? cli.Post(path, h, body, "application/json")
                        : method == "PUT"  ? cli.Put(path, h, body, "application/json")
                                           : cli.Delete(path, h);
    // One port serves gRPC and REST (the harness waited for gRPC): the first attempt must work.
    REQUIRE_MESSAGE(r, method << " " << path << ": no answer");
    return {r->status, nlohmann::json::parse(r->body, nullptr, false),
            r->get_header_value("X-Request-Id"), r->get_header_value("Retry-After")};
  }
  // With this Authorization header instead of the client's ("": none).
  rest_reply call(const std::string& method, const std::string& path, const std::string& body,
                  const std::string& authorization) {
    return call(method, path, body, &authorization);
  }
  rest_reply get(const std::string& p) { return call("GET", p); }
  rest_reply post(const std::string& p, const nlohmann::json& b) {
    return call("POST", p, b.dump());
  }
  rest_reply put(const std::string& p, const nlohmann::json& b) { return call("PUT", p, b.dump()); }
  rest_reply del(const std::string& p) { return call("DELETE", p); }
};

inline void check_rest_error(const rest_reply& r, int status, const std::string& message) {
  CHECK(r.status == status);
  CHECK(r.body.value("code", 0) == status);
  CHECK(r.body.value("message", std::string()) == message);
}

inline std::string base64url(const std::string& in) {
  static const char* chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  unsigned buf = 0;
  int bits = 0;
  for (unsigned char c : in) {
    buf = (buf << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(chars[(buf >> bits) & 0x3F]);
    }
  }
  if (bits > 0)
    out.push_back(chars[(buf << (6 - bits)) & 0x3F]);
  return out;
}

// A locally generated RSA key: its JWK and RS256 signatures.
class rsa_key {
public:
  rsa_key() = default;
  ~rsa_key() { EVP_PKEY_free(key_); }
  rsa_key(const rsa_key&) = delete;
  rsa_key& operator=(const rsa_key&) = delete;

  nlohmann::json jwk(const std::string& kid) const {
    return {{"kty", "RSA"},
            {"kid", kid},
            {"use", "sig"},
            {"alg", "RS256"},
            {"n", bn(OSSL_PKEY_PARAM_RSA_N)},
            {"e", bn(OSSL_PKEY_PARAM_RSA_E)}};
  }
  // A compact JWS of `claims` with header kid `kid`.
  std::string sign(const std::string& kid, const nlohmann::json& claims) const {
    const std::string head =
        base64url(nlohmann::json{{"alg", "RS256"}, {"typ", "JWT"}, {"kid", kid}}.dump()) + "." +
        base64url(claims.dump());
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    std::size_t len = 0;
    EVP_DigestSignInit(md, nullptr, EVP_sha256(), nullptr, key_);
    EVP_DigestSign(md, nullptr, &len, reinterpret_cast<const unsigned char*>(head.data()),
                   head.size());
    std::string sig(len, '\0');
    EVP_DigestSign(md, reinterpret_cast<unsigned char*>(sig.data()), &len,
                   reinterpret_cast<const unsigned char*>(head.data()), head.size());
    EVP_MD_CTX_free(md);
    sig.resize(len);
    return head + "." + base64url(sig);
  }

private:
  std::string bn(const char* name) const {
    BIGNUM* b = nullptr;
    EVP_PKEY_get_bn_param(key_, name, &b);
    std::string raw(static_cast<std::size_t>(BN_num_bytes(b)), '\0');
    BN_bn2bin(b, reinterpret_cast<unsigned char*>(raw.data()));
    BN_free(b);
    return base64url(raw);
  }

  EVP_PKEY* key_ = EVP_RSA_gen(2048);
};

// An IdP: an RSA key whose JWKS is served on 127.0.0.1, and a management.json naming it.
class test_idp {
public:
  test_idp() {
    const std::string keys = nlohmann::json{{"keys", {key_.jwk("k1")}}}.dump();
    jwks_.Get("/.well-known/jwks.json", [keys](const httplib::Request&, httplib::Response& r) {
      r.set_content(keys, "application/json");
    });
    port_ = jwks_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { jwks_.listen_after_bind(); });
  }
  ~test_idp() {
    jwks_.stop();
    thread_.join();
  }
  test_idp(const test_idp&) = delete;
  test_idp& operator=(const test_idp&) = delete;

  // The tests' management.json with this IdP, written to a file of its own.
  std::string config(const std::string& name) const {
    auto cfg = nlohmann::json::parse(std::ifstream(test::fixture("management.json")));
    cfg["HttpConfig"]["AuthIssuer"] = "https://idp.test/";
    cfg["HttpConfig"]["AuthAudience"] = "netbird-dashboard";
    cfg["HttpConfig"]["AuthKeysLocation"] =
        "http://127.0.0.1:" + std::to_string(port_) + "/.well-known/jwks.json";
    const auto path = test::temp_dir() + "/" + name + "-" + std::to_string(::getpid()) + ".json";
    std::ofstream(path) << cfg.dump(2);
    return path;
  }

  // "Bearer <JWT>" for `sub` with `email` (and `extra` claims), valid for 5 minutes.
  std::string bearer(const std::string& sub, const std::string& email,
                     const nlohmann::json& extra = nlohmann::json::object()) const {
    nlohmann::json claims = {{"sub", sub},
                             {"iss", "https://idp.test/"},
                             {"aud", "netbird-dashboard"},
                             {"exp", static_cast<long long>(std::time(nullptr)) + 300},
                             {"email", email}};
    for (const auto& [k, v] : extra.items())
      claims[k] = v;
    return "Bearer " + key_.sign("k1", claims);
  }

private:
  rsa_key key_;
  httplib::Server jwks_;
  int port_ = 0;
  std::thread thread_;
};

} // namespace nbm::e2e
