#include "api/http/jwt.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <spdlog/spdlog.h>

#include <ctime>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

namespace nbm::api::http {

using json = nlohmann::json;

namespace {

std::optional<std::string> base64url_decode(const std::string& in) {
  static const std::string chars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  unsigned buf = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=')
      break;
    const auto v = chars.find(c);
    if (v == std::string::npos)
      return std::nullopt;
    buf = (buf << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buf >> bits) & 0xFF));
    }
  }
  return out;
}

struct pkey_free {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;

// An RSA public key from a JWK's base64url modulus and exponent.
pkey_ptr rsa_from_jwk(const std::string& n_b64, const std::string& e_b64) {
  auto n = base64url_decode(n_b64), e = base64url_decode(e_b64);
  if (!n || !e || n->empty() || e->empty())
    return nullptr;
  BIGNUM* bn = BN_bin2bn(reinterpret_cast<const unsigned char*>(n->data()),
                         static_cast<int>(n->size()), nullptr);
  BIGNUM* be = BN_bin2bn(reinterpret_cast<const unsigned char*>(e->data()),
                         static_cast<int>(e->size()), nullptr);
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM* params = nullptr;
  EVP_PKEY_CTX* ctx = nullptr;
  EVP_PKEY* key = nullptr;
  if (bn && be && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) == 1 &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) == 1 &&
      (params = OSSL_PARAM_BLD_to_param(bld)) != nullptr &&
      (ctx = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr)) != nullptr &&
      EVP_PKEY_fromdata_init(ctx) == 1)
    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params);
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  BN_free(bn);
  BN_free(be);
  return pkey_ptr(key);
}

bool verify_rs256(EVP_PKEY* key, const std::string& signed_part, const std::string& sig) {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  bool ok = md && EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestVerify(md, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                             reinterpret_cast<const unsigned char*>(signed_part.data()),
                             signed_part.size()) == 1;
  EVP_MD_CTX_free(md);
  return ok;
}

std::optional<std::string> fetch(const std::string& location) {
  if (location.rfind("http://", 0) == 0 || location.rfind("https://", 0) == 0) {
    const auto slash = location.find('/', location.find("//") + 2);
    const std::string origin = location.substr(0, slash);
    const std::string path = slash == std::string::npos ? "/" : location.substr(slash);
    httplib::Client cli(origin);
    cli.set_connection_timeout(5);
    cli.set_read_timeout(5);
    auto r = cli.Get(path);
    if (!r || r->status != 200)
      return std::nullopt;
    return r->body;
  }
  std::string path = location.rfind("file://", 0) == 0 ? location.substr(7) : location;
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

} // namespace

struct jwt_verifier::impl {
  jwt_config cfg;
  std::mutex mu;
  std::map<std::string, std::shared_ptr<EVP_PKEY>> keys; // kid -> key
  std::time_t fetched_at = 0;

  void refresh(std::time_t now) {
    fetched_at = now;
    auto body = fetch(cfg.keys_location);
    if (!body) {
      spdlog::warn("JWKS: cannot read {}", cfg.keys_location);
      return;
    }
    auto j = json::parse(*body, nullptr, false);
    if (j.is_discarded() || !j.contains("keys") || !j["keys"].is_array()) {
      spdlog::warn("JWKS at {} is not a key set", cfg.keys_location);
      return;
    }
    std::map<std::string, std::shared_ptr<EVP_PKEY>> fresh;
    for (const auto& k : j["keys"]) {
      if (!k.is_object() || k.value("kty", "") != "RSA")
        continue;
      auto key = rsa_from_jwk(k.value("n", ""), k.value("e", ""));
      if (key)
        fresh[k.value("kid", "")] = std::shared_ptr<EVP_PKEY>(key.release(), EVP_PKEY_free);
    }
    keys = std::move(fresh);
  }

  std::shared_ptr<EVP_PKEY> key_for(const std::string& kid) {
    std::lock_guard<std::mutex> lk(mu);
    const auto now = std::time(nullptr);
    auto it = keys.find(kid);
    if (it == keys.end() && now - fetched_at >= 30) {
      refresh(now);
      it = keys.find(kid);
    }
    return it == keys.end() ? nullptr : it->second;
  }
};

jwt_verifier::jwt_verifier(jwt_config cfg) : p_(std::make_unique<impl>()) {
  p_->cfg = std::move(cfg);
}
jwt_verifier::~jwt_verifier() = default;

bool jwt_verifier::configured() const {
  return !p_->cfg.keys_location.empty();
}

std::optional<jwt_claims> jwt_verifier::verify(const std::string& token, std::string& why) {
  const auto d1 = token.find('.');
  const auto d2 = d1 == std::string::npos ? d1 : token.find('.', d1 + 1);
  if (d2 == std::string::npos || token.find('.', d2 + 1) != std::string::npos) {
    why = "not a JWT";
    return std::nullopt;
  }
  auto header_raw = base64url_decode(token.substr(0, d1));
  auto payload_raw = base64url_decode(token.substr(d1 + 1, d2 - d1 - 1));
  auto sig = base64url_decode(token.substr(d2 + 1));
  if (!header_raw || !payload_raw || !sig) {
    why = "bad encoding";
    return std::nullopt;
  }
  auto header = json::parse(*header_raw, nullptr, false);
  auto claims = json::parse(*payload_raw, nullptr, false);
  if (!header.is_object() || !claims.is_object()) {
    why = "bad JSON";
    return std::nullopt;
  }
  // Members read only when they are strings: an unverified header of any shape is a refusal,
  // never an exception.
  const auto text = [](const json& o, const char* name) {
    const auto it = o.find(name);
    return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (text(header, "alg") != "RS256") {
    why = "unsupported algorithm";
    return std::nullopt;
  }
  auto key = p_->key_for(text(header, "kid"));
  if (!key || !verify_rs256(key.get(), token.substr(0, d2), *sig)) {
    why = "bad signature";
    return std::nullopt;
  }
  const auto now = static_cast<double>(std::time(nullptr));
  if (!claims.contains("exp") || !claims["exp"].is_number() || claims["exp"].get<double>() <= now) {
    why = "token is expired";
    return std::nullopt;
  }
  if (claims.contains("nbf") && claims["nbf"].is_number() && claims["nbf"].get<double>() > now) {
    why = "token is not valid yet";
    return std::nullopt;
  }
  if (!p_->cfg.issuer.empty() && text(claims, "iss") != p_->cfg.issuer) {
    why = "wrong issuer";
    return std::nullopt;
  }
  if (!p_->cfg.audience.empty()) {
    bool ok = false;
    const auto aud = claims.find("aud"); // read in place, never copied
    if (aud != claims.end() && aud->is_string())
      ok = aud->get<std::string>() == p_->cfg.audience;
    else if (aud != claims.end() && aud->is_array())
      for (const auto& a : *aud)
        ok = ok || (a.is_string() && a.get<std::string>() == p_->cfg.audience);
    if (!ok) {
      why = "wrong audience";
      return std::nullopt;
    }
  }
  const auto& claim = p_->cfg.user_id_claim.empty() ? std::string("sub") : p_->cfg.user_id_claim;
  if (!claims.contains(claim) || !claims[claim].is_string() ||
      claims[claim].get<std::string>().empty()) {
    why = "no user id claim " + claim;
    return std::nullopt;
  }
  jwt_claims out;
  out.user_id = claims[claim].get<std::string>();
  if (claims.contains("email") && claims["email"].is_string())
    out.email = claims["email"].get<std::string>();
  // Go's url.JoinPath(audience, "nb_last_login").
  const auto& aud = p_->cfg.audience;
  const std::string last_login_claim =
      aud + (!aud.empty() && aud.back() == '/' ? "" : "/") + "nb_last_login";
  if (auto it = claims.find(last_login_claim);
      it != claims.end() && it->is_string() && it->get_ref<const std::string&>().size() <= 64)
    out.last_login = it->get<std::string>();
  for (const auto& [name, value] : claims.items()) {
    if (!value.is_array() || value.size() > 1024 || out.lists.size() >= 64)
      continue;
    std::vector<std::string> list;
    for (const auto& x : value)
      if (x.is_string())
        list.push_back(x.get<std::string>());
    if (list.size() == value.size())
      out.lists.emplace(name, std::move(list));
  }
  return out;
}

} // namespace nbm::api::http
