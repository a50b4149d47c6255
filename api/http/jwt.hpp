// Bearer JWTs from the configured IdP, verified as NetBird's auth middleware does: RS256 signed by
// a key of the JWKS at HttpConfig.AuthKeysLocation (an http(s) URL or a file path), `exp` in the
// future, `iss` equal to AuthIssuer, `aud` holding AuthAudience. Keys are fetched on first use and
// again when a token names a key id the cached set lacks (at most every 30 s), so an IdP's key
// rotation is followed without a restart.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace nbm::api::http {

struct jwt_config {
  std::string issuer;                // AuthIssuer
  std::string audience;              // AuthAudience
  std::string keys_location;         // AuthKeysLocation
  std::string user_id_claim = "sub"; // AuthUserIDClaim
};

struct jwt_claims {
  std::string user_id; // the user id claim
  std::string email;   // "email", when present
  // NetBird's "<AuthAudience>/nb_last_login" claim (RFC 3339; "" when absent), what its IdP rule
  // sets at each dashboard login.
  std::string last_login;
  // Every claim whose value is a list of strings (e.g. the groups claim NetBird's JWT groups
  // read), by name; at most 64 claims of at most 1024 strings each.
  std::map<std::string, std::vector<std::string>> lists;
};

class jwt_verifier {
public:
  explicit jwt_verifier(jwt_config cfg);
  ~jwt_verifier();
  jwt_verifier(const jwt_verifier&) = delete;
  jwt_verifier& operator=(const jwt_verifier&) = delete;

  bool configured() const;
  // The token's claims, or nullopt with `why` set (signature, expiry, issuer, audience, ...).
  std::optional<jwt_claims> verify(const std::string& token, std::string& why);

private:
  struct impl;
  std::unique_ptr<impl> p_;
};

} // namespace nbm::api::http
