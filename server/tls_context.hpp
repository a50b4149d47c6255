// The certificate the listening ports serve over TLS, and its reloads. One holder per process: the
// front door asks it for the current OpenSSL context at each handshake, so a reload (SIGHUP, a
// changed file, a certificate the ACME client just obtained) reaches every new connection while
// the connections already open (Sync streams) keep the one they started with.
//
// For ACME's TLS-ALPN-01 (RFC 8737) the ACME client lends a challenge certificate per domain: a
// ClientHello that names that domain (SNI) and offers ALPN "acme-tls/1" is answered with it, and
// the connection ends after the handshake.
//
// Errors are our own sentences (which file, what is wrong with it), never OpenSSL's internals.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

struct ssl_ctx_st; // OpenSSL's SSL_CTX

namespace nbm::server {

struct tls_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The ALPN protocol a TLS-ALPN-01 validation asks for (RFC 8737).
inline constexpr const char* acme_tls_alpn = "acme-tls/1";

class tls_context {
public:
  // No certificate yet (an ACME client will supply one): handshakes other than a TLS-ALPN-01
  // challenge fail until then.
  tls_context();
  // The certificate (chain) and key from PEM files; throws tls_error if a file cannot be read,
  // holds no certificate/key, or the key does not match the certificate.
  tls_context(const std::string& cert_file, const std::string& key_file);
  ~tls_context();
  tls_context(const tls_context&) = delete;
  tls_context& operator=(const tls_context&) = delete;

  // Serves the certificate in these PEM files from now on (and remembers them for reload());
  // throws tls_error and keeps the current certificate if they are not usable.
  void load_files(const std::string& cert_file, const std::string& key_file);
  // The same from PEM text in memory.
  void load_pem(const std::string& cert_pem, const std::string& key_pem);
  // Reads the remembered files again. False (with `error`) keeps the current certificate.
  bool reload(std::string& error);
  // Whether the remembered files changed (inode, size or modification time) since they were
  // last loaded or looked at by a reload.
  bool files_changed() const;

  bool has_certificate() const;
  // "CN=mgmt.example.com, valid until 2027-01-01 00:00:00 UTC" (empty without a certificate).
  std::string describe() const;

  // The context a new connection's handshake uses (never null). Holds a reference: the caller
  // may keep it for the connection's life.
  std::shared_ptr<ssl_ctx_st> current() const;

  // TLS-ALPN-01: answer `domain` (SNI, case-insensitive) with this certificate when the client
  // offers "acme-tls/1". Throws tls_error on a PEM that does not parse or a key that does not
  // match.
  void set_challenge_cert(const std::string& domain, const std::string& cert_pem,
                          const std::string& key_pem);
  void clear_challenge_cert(const std::string& domain);

  struct impl;

private:
  std::shared_ptr<impl> p_;
};

// The ALPN protocol negotiated on an established connection ("h2", "http/1.1", "acme-tls/1",
// empty: none). `ssl` is an OpenSSL SSL*.
std::string negotiated_alpn(const void* ssl);

} // namespace nbm::server
