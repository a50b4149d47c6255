// ACME (RFC 8555) client: obtains and renews one domain's certificate, as NetBird's
// --letsencrypt-domain does with Go's autocert. Account key (ECDSA P-256, JWS ES256), directory,
// nonces, newAccount, newOrder, authorizations answered by TLS-ALPN-01 or HTTP-01, finalize with a
// CSR, the chain downloaded. State lives in one directory (NetBird: <datadir>/letsencrypt) in
// autocert's DirCache layout, so a directory NetBird filled keeps working:
//   acme_account+key   the account key, PEM "EC PRIVATE KEY"
//   <domain>           the certificate's key (PEM "EC PRIVATE KEY") followed by the chain
// Files are written to a temporary name and renamed, mode 0600. No key material is ever logged or
// put in an error message.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace nbm::acme {

inline constexpr const char* lets_encrypt_production =
    "https://acme-v02.api.letsencrypt.org/directory";
inline constexpr const char* account_key_file = "acme_account+key";

// Why obtaining a certificate failed. what() is for an operator: the step, and for a refusal the
// CA's problem document (type and detail, clipped); never a key, a JWS or a nonce.
struct acme_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class challenge_type { tls_alpn_01, http_01 };
const char* to_string(challenge_type t);

// How the caller answers challenges. A type whose setter is empty is not offered; types are tried
// in autocert's order (tls-alpn-01 first, then http-01), a new order per type if the CA refuses
// one.
struct challenge_hooks {
  // TLS-ALPN-01 (RFC 8737): present cert_pem/key_pem to a TLS client that offers only ALPN
  // "acme-tls/1" with SNI `domain`, until cleared.
  std::function<void(const std::string& domain, const std::string& cert_pem,
                     const std::string& key_pem)>
      set_tls_alpn01;
  std::function<void(const std::string& domain)> clear_tls_alpn01;
  // HTTP-01: answer GET /.well-known/acme-challenge/<token> with key_authorization, until cleared.
  std::function<void(const std::string& token, const std::string& key_authorization)> set_http01;
  std::function<void(const std::string& token)> clear_http01;
};

struct options {
  std::string directory_url = lets_encrypt_production;
  std::string
      ca_bundle; // PEM file the ACME server's TLS certificate is checked against; empty = system
  std::filesystem::path dir; // <datadir>/letsencrypt
  std::string domain;        // one DNS name
  std::string email;         // optional account contact
  std::chrono::seconds renew_before{
      0}; // 0: the lesser of 30 days and a third of the lifetime (autocert)
  std::chrono::seconds timeout{180}; // for one whole issuance (challenge validation included)
  // When set and it becomes true, an issuance under way gives up promptly (acme_error "cancelled").
  const std::atomic<bool>* cancel = nullptr;
};

struct certificate {
  std::string key_pem;   // the certificate's private key
  std::string chain_pem; // leaf first, then intermediates
  std::chrono::system_clock::time_point not_before, not_after;
  std::string serial_hex;
};

// A domain usable as a DNS identifier and a file name: lower-cased, 1..253 chars of [a-z0-9.-],
// labels of 1..63 not starting or ending with '-', at least two labels. Throws acme_error
// otherwise.
std::string normalize_domain(const std::string& domain);

// When a certificate of this lifetime should be renewed.
std::chrono::system_clock::time_point renewal_time(const certificate& c,
                                                   std::chrono::seconds renew_before);

// The stored certificate for opts.domain if there is one whose key matches and which covers the
// domain; nullopt if none is stored. A stored file that cannot be read or parsed is treated as
// absent (autocert: a cache miss) and reported through `problem` if given.
std::optional<certificate> load_stored(const options& opts, std::string* problem = nullptr);

// Runs a full issuance (account, order, challenges, finalize, download), stores the result and
// returns it. Throws acme_error.
certificate obtain(const options& opts, const challenge_hooks& hooks);

// The stored certificate if it is not yet due for renewal, else a newly obtained one. `issued`
// tells which. Throws acme_error only when a new certificate was needed and could not be obtained.
certificate ensure(const options& opts, const challenge_hooks& hooks, bool* issued = nullptr);

// TLS-ALPN-01's validation certificate (RFC 8737): self-signed, SAN = domain, the critical
// id-pe-acmeIdentifier extension holding SHA-256(key_authorization). Returns {cert_pem, key_pem}.
std::pair<std::string, std::string> tls_alpn01_certificate(const std::string& domain,
                                                           const std::string& key_authorization);

} // namespace nbm::acme
