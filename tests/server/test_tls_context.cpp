// The certificate holder: loading, its errors, reloads, ALPN choice and the TLS-ALPN-01 hook,
// through real OpenSSL handshakes in memory (a BIO pair, no network).
#include "server/tls_context.hpp"
#include "tests/support/test_certs.hpp"
#include "tests/support/test_db.hpp"

#include <doctest/doctest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>
#include <unistd.h>

using nbm::server::tls_context;
using nbm::server::tls_error;

namespace {

struct handshake_result {
  bool ok = false;
  std::string alpn;
  std::string cn; // of the certificate the server presented
};

// One handshake between a client (offering `alpn`, naming `sni`) and a server SSL of `ctx`.
handshake_result handshake(SSL_CTX* server_ctx, const std::string& alpn_wire,
                           const std::string& sni = "localhost") {
  SSL_CTX* cctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, nullptr);
  SSL* c = SSL_new(cctx);
  SSL* s = SSL_new(server_ctx);
  if (!alpn_wire.empty())
    SSL_set_alpn_protos(c, reinterpret_cast<const unsigned char*>(alpn_wire.data()),
                        static_cast<unsigned>(alpn_wire.size()));
  if (!sni.empty())
    SSL_set_tlsext_host_name(c, sni.c_str());
  BIO *cb = nullptr, *sb = nullptr;
  BIO_new_bio_pair(&cb, 0, &sb, 0);
  SSL_set_bio(c, cb, cb);
  SSL_set_bio(s, sb, sb);
  SSL_set_connect_state(c);
  SSL_set_accept_state(s);
  handshake_result r;
  bool c_done = false, s_done = false, failed = false;
  for (int i = 0; i < 50 && !(c_done && s_done) && !failed; ++i) {
    if (!c_done) {
      const int rc = SSL_do_handshake(c);
      if (rc == 1)
        c_done = true;
      else if (SSL_get_error(c, rc) != SSL_ERROR_WANT_READ)
        failed = true;
    }
    if (!s_done && !failed) {
      const int rc = SSL_do_handshake(s);
      if (rc == 1)
        s_done = true;
      else if (SSL_get_error(s, rc) != SSL_ERROR_WANT_READ)
        failed = true;
    }
  }
  ERR_clear_error();
  r.ok = c_done && s_done && !failed;
  if (r.ok) {
    r.alpn = nbm::server::negotiated_alpn(s);
    if (X509* peer = SSL_get1_peer_certificate(c)) {
      char buf[256] = {};
      X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, buf, sizeof buf);
      r.cn = buf;
      X509_free(peer);
    }
  }
  SSL_free(c);
  SSL_free(s);
  SSL_CTX_free(cctx);
  return r;
}

const std::string h2_only = std::string("\x02h2", 3);
const std::string browser = std::string("\x02h2\x08http/1.1", 12);
const std::string acme = std::string("\x0a") + "acme-tls/1";

struct pki_fixture {
  std::string dir = nbm::test::temp_dir() + "/tlsctx-" + std::to_string(::getpid());
  nbm::test::test_pki pki{(std::filesystem::create_directories(dir), dir)};
  pki_fixture() {
    pki.issue("one", "first.example");
    pki.issue("two", "second.example");
    pki.issue("chal", "challenge", "mgmt.example.com");
  }
  ~pki_fixture() { std::filesystem::remove_all(dir); }
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const tls_error& e) {
    return e.what();
  }
  return "";
}

} // namespace

TEST_CASE("tls_context: serves the certificate of its files; ALPN by what the client offers") {
  pki_fixture f;
  tls_context t(f.pki.cert("one"), f.pki.key("one"));
  CHECK(t.has_certificate());
  CHECK(t.describe().find("CN=first.example") != std::string::npos);
  CHECK(t.describe().find("valid until 20") != std::string::npos);
  auto r = handshake(t.current().get(), h2_only);
  REQUIRE(r.ok);
  CHECK(r.cn == "first.example");
  CHECK(r.alpn == "h2"); // a gRPC client offers h2 alone
  r = handshake(t.current().get(), browser);
  REQUIRE(r.ok);
  CHECK(r.alpn == "http/1.1"); // a browser or curl: the REST API
  r = handshake(t.current().get(), "");
  REQUIRE(r.ok);
  CHECK(r.alpn.empty());
}

TEST_CASE("tls_context: unreadable, empty and mismatched files are clear errors") {
  pki_fixture f;
  CHECK(error_of([&] { tls_context t(f.dir + "/nope.pem", f.pki.key("one")); }) ==
        "cannot read the TLS certificate file " + f.dir + "/nope.pem: No such file or directory");
  { std::ofstream(f.dir + "/junk.pem") << "not a certificate\n"; }
  CHECK(error_of([&] { tls_context t(f.dir + "/junk.pem", f.pki.key("one")); }) ==
        "the TLS certificate file " + f.dir + "/junk.pem holds no PEM certificate");
  CHECK(error_of([&] {
          tls_context t(f.pki.cert("one"), f.dir + "/junk.pem");
        }).find("holds no PEM private key") != std::string::npos);
  CHECK(error_of([&] { tls_context t(f.pki.cert("one"), f.pki.key("two")); }) ==
        "the TLS key file " + f.pki.key("two") + " does not match the TLS certificate file " +
            f.pki.cert("one"));
  // The key given as certificate and the certificate as key: still our own words.
  CHECK(error_of([&] {
          tls_context t(f.pki.key("one"), f.pki.cert("one"));
        }).find("holds no PEM certificate") != std::string::npos);
}

TEST_CASE("tls_context: reload picks up new files; a bad file keeps the certificate served") {
  pki_fixture f;
  const auto cert = f.dir + "/live.pem", key = f.dir + "/live.key";
  std::filesystem::copy_file(f.pki.cert("one"), cert);
  std::filesystem::copy_file(f.pki.key("one"), key);
  tls_context t(cert, key);
  auto before = t.current(); // an open connection's context
  CHECK_FALSE(t.files_changed());
  std::this_thread::sleep_for(std::chrono::milliseconds(10)); // a distinct mtime
  std::filesystem::copy_file(f.pki.cert("two"), cert,
                             std::filesystem::copy_options::overwrite_existing);
  CHECK(t.files_changed());
  // The certificate changed, the key not yet (a renewal half-way): refused, old one kept.
  std::string error;
  CHECK_FALSE(t.reload(error));
  CHECK(error.find("does not match") != std::string::npos);
  CHECK_FALSE(t.files_changed()); // looked at: not retried until a file changes again
  CHECK(handshake(t.current().get(), h2_only).cn == "first.example");
  std::filesystem::copy_file(f.pki.key("two"), key,
                             std::filesystem::copy_options::overwrite_existing);
  CHECK(t.files_changed());
  REQUIRE(t.reload(error));
  CHECK(handshake(t.current().get(), h2_only).cn == "second.example");
  CHECK(t.describe().find("CN=second.example") != std::string::npos);
  // The context an open connection began with still serves it.
  CHECK(handshake(before.get(), h2_only).cn == "first.example");
}

TEST_CASE("tls_context: TLS-ALPN-01 gets the challenge certificate of the named domain") {
  pki_fixture f;
  tls_context t(f.pki.cert("one"), f.pki.key("one"));
  const auto chal_cert = nbm::test::slurp(f.pki.cert("chal"));
  const auto chal_key = nbm::test::slurp(f.pki.key("chal"));
  // No challenge yet: acme-tls/1 is refused, not answered with the real certificate.
  CHECK_FALSE(handshake(t.current().get(), acme, "mgmt.example.com").ok);
  t.set_challenge_cert("MGMT.example.com", chal_cert, chal_key);
  auto r = handshake(t.current().get(), acme, "mgmt.example.com");
  REQUIRE(r.ok);
  CHECK(r.alpn == "acme-tls/1");
  CHECK(r.cn == "challenge");
  // Another name, or a client not asking for acme-tls/1, is not given the challenge.
  CHECK_FALSE(handshake(t.current().get(), acme, "other.example.com").ok);
  r = handshake(t.current().get(), browser, "mgmt.example.com");
  REQUIRE(r.ok);
  CHECK(r.cn == "first.example");
  t.clear_challenge_cert("mgmt.example.com");
  CHECK_FALSE(handshake(t.current().get(), acme, "mgmt.example.com").ok);
  // A challenge whose key does not match is refused when it is set.
  CHECK(error_of([&] {
          t.set_challenge_cert("x.example", chal_cert, nbm::test::slurp(f.pki.key("one")));
        }).find("does not match") != std::string::npos);
}

TEST_CASE("tls_context: without a certificate only challenges are answered; load_pem fills it") {
  pki_fixture f;
  tls_context t; // waiting for ACME
  CHECK_FALSE(t.has_certificate());
  CHECK_FALSE(handshake(t.current().get(), h2_only).ok);
  t.set_challenge_cert("mgmt.example.com", nbm::test::slurp(f.pki.cert("chal")),
                       nbm::test::slurp(f.pki.key("chal")));
  CHECK(handshake(t.current().get(), acme, "mgmt.example.com").ok);
  t.load_pem(nbm::test::slurp(f.pki.cert("two")), nbm::test::slurp(f.pki.key("two")));
  CHECK(t.has_certificate());
  CHECK(handshake(t.current().get(), h2_only).cn == "second.example");
  std::string error;
  CHECK_FALSE(t.reload(error)); // no files to read again
}
