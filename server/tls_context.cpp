#include "server/tls_context.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <vector>

namespace nbm::server {

namespace {

struct x509_free {
  void operator()(X509* x) const { X509_free(x); }
};
struct pkey_free {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct bio_free {
  void operator()(BIO* b) const { BIO_free(b); }
};
using x509_ptr = std::unique_ptr<X509, x509_free>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using bio_ptr = std::unique_ptr<BIO, bio_free>;

// A certificate chain (leaf first) and its key, checked to belong together.
struct key_pair {
  std::vector<x509_ptr> chain;
  pkey_ptr key;
};

// `what` names the source in errors ("the TLS certificate file /etc/x.pem", "the challenge
// certificate for example.com").
key_pair parse_pair(const std::string& cert_pem, const std::string& key_pem,
                    const std::string& cert_what, const std::string& key_what) {
  key_pair out;
  {
    bio_ptr bio(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
    for (;;) {
      X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
      if (!x)
        break;
      out.chain.emplace_back(x);
    }
    ERR_clear_error(); // the end of the PEM stream reads as an error
  }
  if (out.chain.empty())
    throw tls_error(cert_what + " holds no PEM certificate");
  {
    bio_ptr bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
    // No passphrase callback: an encrypted key is refused rather than prompted for.
    out.key.reset(PEM_read_bio_PrivateKey(
        bio.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr));
    ERR_clear_error();
  }
  if (!out.key)
    throw tls_error(key_what + " holds no PEM private key (or an encrypted one)");
  if (X509_check_private_key(out.chain.front().get(), out.key.get()) != 1) {
    ERR_clear_error();
    throw tls_error(key_what + " does not match " + cert_what);
  }
  return out;
}

std::string read_file(const std::string& path, const std::string& what) {
  if (path.empty())
    throw tls_error(what + ": no file named");
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f)
    throw tls_error("cannot read " + what + " " + path + ": " + std::strerror(errno));
  std::string out;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
    out.append(buf, n);
    if (out.size() > (1u << 20)) {
      std::fclose(f);
      throw tls_error(what + " " + path + " is larger than 1 MiB: not a PEM file");
    }
  }
  const bool failed = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (failed)
    throw tls_error("cannot read " + what + " " + path + ": " + std::strerror(err));
  return out;
}

struct file_stamp {
  bool ok = false;
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  long long mtime_ns = 0;
  bool operator==(const file_stamp&) const = default;
};

file_stamp stamp_of(const std::string& path) {
  struct stat st {};
  file_stamp s;
  if (path.empty() || ::stat(path.c_str(), &st) != 0)
    return s;
  s.ok = true;
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.size = st.st_size;
  s.mtime_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
  return s;
}

std::string lower(std::string s) {
  for (auto& c : s)
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// The SSL's ex_data slot marking a handshake answered with a challenge certificate.
int challenge_index() {
  static const int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

// The protocols of an ALPN extension body (2-byte length, then length-prefixed names).
bool alpn_offers(const unsigned char* data, std::size_t len, std::string_view proto) {
  if (len < 2)
    return false;
  std::size_t list = (std::size_t(data[0]) << 8) | data[1];
  std::size_t i = 2;
  const std::size_t end = std::min(len, 2 + list);
  while (i < end) {
    const std::size_t n = data[i++];
    if (i + n > end)
      return false;
    if (std::string_view(reinterpret_cast<const char*>(data + i), n) == proto)
      return true;
    i += n;
  }
  return false;
}

// The host_name of a server_name extension body, or empty.
std::string sni_of(const unsigned char* data, std::size_t len) {
  if (len < 5)
    return {};
  std::size_t i = 2; // list length
  while (i + 3 <= len) {
    const unsigned type = data[i];
    const std::size_t n = (std::size_t(data[i + 1]) << 8) | data[i + 2];
    i += 3;
    if (i + n > len)
      return {};
    if (type == 0) // host_name
      return lower(std::string(reinterpret_cast<const char*>(data + i), n));
    i += n;
  }
  return {};
}

} // namespace

struct tls_context::impl {
  mutable std::mutex mu;
  std::shared_ptr<SSL_CTX> ctx;
  std::string cert_file, key_file;
  file_stamp cert_stamp, key_stamp;
  std::string description;
  std::map<std::string, std::shared_ptr<key_pair>> challenges; // by lower-case domain

  std::shared_ptr<key_pair> challenge_for(const std::string& domain) const {
    std::lock_guard<std::mutex> lk(mu);
    auto it = challenges.find(domain);
    return it == challenges.end() ? nullptr : it->second;
  }

  // Runs first in every handshake: a TLS-ALPN-01 validation gets the challenge certificate of
  // the domain it names; without a certificate of our own anything else is refused.
  static int on_client_hello(SSL* s, int* alert, void* arg) {
    auto* self = static_cast<impl*>(arg);
    const unsigned char* alpn = nullptr;
    std::size_t alpn_len = 0;
    const bool has_alpn =
        SSL_client_hello_get0_ext(s, TLSEXT_TYPE_application_layer_protocol_negotiation, &alpn,
                                  &alpn_len) == 1;
    if (has_alpn && alpn_offers(alpn, alpn_len, acme_tls_alpn)) {
      const unsigned char* sni = nullptr;
      std::size_t sni_len = 0;
      std::string domain;
      if (SSL_client_hello_get0_ext(s, TLSEXT_TYPE_server_name, &sni, &sni_len) == 1)
        domain = sni_of(sni, sni_len);
      auto pair = domain.empty() ? nullptr : self->challenge_for(domain);
      if (!pair) {
        *alert = SSL_AD_NO_APPLICATION_PROTOCOL;
        return SSL_CLIENT_HELLO_ERROR;
      }
      if (SSL_use_certificate(s, pair->chain.front().get()) != 1 ||
          SSL_use_PrivateKey(s, pair->key.get()) != 1) {
        ERR_clear_error();
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
      }
      SSL_set_ex_data(s, challenge_index(), reinterpret_cast<void*>(1));
      return SSL_CLIENT_HELLO_SUCCESS;
    }
    if (!SSL_get_certificate(s)) {
      *alert = SSL_AD_INTERNAL_ERROR; // no certificate yet (ACME has not issued one)
      return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
  }

  // The server's choice: a challenge handshake speaks acme-tls/1; otherwise http/1.1 when the
  // client offers it (browsers, curl: the REST API), else h2 (gRPC clients offer only h2).
  static int on_alpn(SSL* s, const unsigned char** out, unsigned char* outlen,
                     const unsigned char* in, unsigned int inlen, void*) {
    static constexpr unsigned char acme[] = "\x0a"
                                            "acme-tls/1";
    static constexpr unsigned char ours[] = "\x08"
                                            "http/1.1"
                                            "\x02"
                                            "h2";
    const bool challenge = SSL_get_ex_data(s, challenge_index()) != nullptr;
    const unsigned char* server = challenge ? acme : ours;
    const unsigned int server_len = challenge ? sizeof acme - 1 : sizeof ours - 1;
    unsigned char* chosen = nullptr;
    unsigned char chosen_len = 0;
    if (SSL_select_next_proto(&chosen, &chosen_len, server, server_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
      return challenge ? SSL_TLSEXT_ERR_ALERT_FATAL : SSL_TLSEXT_ERR_NOACK;
    *out = chosen;
    *outlen = chosen_len;
    return SSL_TLSEXT_ERR_OK;
  }

  std::shared_ptr<SSL_CTX> make_ctx(const key_pair* pair) {
    SSL_CTX* raw = SSL_CTX_new(TLS_server_method());
    if (!raw)
      throw tls_error("cannot set up TLS (out of memory)");
    std::shared_ptr<SSL_CTX> c(raw, SSL_CTX_free);
    SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION);
    SSL_CTX_set_options(raw, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION);
    // An idle connection (a Sync stream between maps) gives its record buffers back.
    SSL_CTX_set_mode(raw, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_client_hello_cb(raw, &impl::on_client_hello, this);
    SSL_CTX_set_alpn_select_cb(raw, &impl::on_alpn, this);
    if (pair) {
      if (SSL_CTX_use_certificate(raw, pair->chain.front().get()) != 1 ||
          SSL_CTX_use_PrivateKey(raw, pair->key.get()) != 1) {
        ERR_clear_error();
        throw tls_error("the TLS certificate or key is not usable (unsupported key type?)");
      }
      for (std::size_t i = 1; i < pair->chain.size(); ++i)
        if (SSL_CTX_add1_chain_cert(raw, pair->chain[i].get()) != 1) {
          ERR_clear_error();
          throw tls_error("the TLS certificate chain is not usable");
        }
    }
    return c;
  }

  static std::string describe(const key_pair& pair) {
    X509* leaf = pair.chain.front().get();
    std::string subject;
    {
      bio_ptr b(BIO_new(BIO_s_mem()));
      X509_NAME_print_ex(b.get(), X509_get_subject_name(leaf), 0, XN_FLAG_RFC2253);
      char* data = nullptr;
      const long n = BIO_get_mem_data(b.get(), &data);
      subject.assign(data, static_cast<std::size_t>(n));
    }
    std::tm tm{};
    char until[64] = "?";
    if (ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) == 1)
      std::strftime(until, sizeof until, "%Y-%m-%d %H:%M:%S UTC", &tm);
    return subject + ", valid until " + until;
  }

  void install(const key_pair& pair) {
    auto c = make_ctx(&pair);
    auto d = describe(pair);
    std::lock_guard<std::mutex> lk(mu);
    ctx = std::move(c);
    description = std::move(d);
  }
};

tls_context::tls_context() : p_(std::make_shared<impl>()) {
  p_->ctx = p_->make_ctx(nullptr);
}

tls_context::tls_context(const std::string& cert_file, const std::string& key_file)
    : tls_context() {
  load_files(cert_file, key_file);
}

tls_context::~tls_context() = default;

void tls_context::load_files(const std::string& cert_file, const std::string& key_file) {
  const auto cs = stamp_of(cert_file), ks = stamp_of(key_file);
  const auto cert_what = "the TLS certificate file " + cert_file;
  const auto key_what = "the TLS key file " + key_file;
  const auto cert_pem = read_file(cert_file, "the TLS certificate file");
  const auto key_pem = read_file(key_file, "the TLS key file");
  p_->install(parse_pair(cert_pem, key_pem, cert_what, key_what));
  std::lock_guard<std::mutex> lk(p_->mu);
  p_->cert_file = cert_file;
  p_->key_file = key_file;
  p_->cert_stamp = cs;
  p_->key_stamp = ks;
}

void tls_context::load_pem(const std::string& cert_pem, const std::string& key_pem) {
  p_->install(parse_pair(cert_pem, key_pem, "the TLS certificate", "the TLS key"));
}

bool tls_context::reload(std::string& error) {
  std::string cert, key;
  {
    std::lock_guard<std::mutex> lk(p_->mu);
    cert = p_->cert_file;
    key = p_->key_file;
    // Looked at now, whatever comes of it: a half-written file is retried when it changes again.
    p_->cert_stamp = stamp_of(cert);
    p_->key_stamp = stamp_of(key);
  }
  if (cert.empty()) {
    error = "no certificate files to reload";
    return false;
  }
  try {
    load_files(cert, key);
    return true;
  } catch (const tls_error& e) {
    error = e.what();
    return false;
  }
}

bool tls_context::files_changed() const {
  std::lock_guard<std::mutex> lk(p_->mu);
  if (p_->cert_file.empty())
    return false;
  return !(stamp_of(p_->cert_file) == p_->cert_stamp) || !(stamp_of(p_->key_file) == p_->key_stamp);
}

bool tls_context::has_certificate() const {
  std::lock_guard<std::mutex> lk(p_->mu);
  return !p_->description.empty();
}

std::string tls_context::describe() const {
  std::lock_guard<std::mutex> lk(p_->mu);
  return p_->description;
}

std::shared_ptr<ssl_ctx_st> tls_context::current() const {
  std::lock_guard<std::mutex> lk(p_->mu);
  return p_->ctx;
}

void tls_context::set_challenge_cert(const std::string& domain, const std::string& cert_pem,
                                     const std::string& key_pem) {
  auto pair = std::make_shared<key_pair>(parse_pair(cert_pem, key_pem,
                                                    "the challenge certificate for " + domain,
                                                    "the challenge key for " + domain));
  std::lock_guard<std::mutex> lk(p_->mu);
  p_->challenges[lower(domain)] = std::move(pair);
}

void tls_context::clear_challenge_cert(const std::string& domain) {
  std::lock_guard<std::mutex> lk(p_->mu);
  p_->challenges.erase(lower(domain));
}

std::string negotiated_alpn(const void* ssl) {
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(static_cast<const SSL*>(ssl), &data, &len);
  return data ? std::string(reinterpret_cast<const char*>(data), len) : std::string();
}

} // namespace nbm::server
