#include "acme/acme.hpp"

#include <curl/curl.h>
#include <nlohmann/json.hpp>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <spdlog/spdlog.h>
#include <sstream>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace nbm::acme {

namespace {

using json = nlohmann::json;
using clock = std::chrono::system_clock;

template <auto F>
struct deleter {
  template <class T>
  void operator()(T* p) const {
    F(p);
  }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, deleter<EVP_PKEY_free>>;
using bio_ptr = std::unique_ptr<BIO, deleter<BIO_free_all>>;
using x509_ptr = std::unique_ptr<X509, deleter<X509_free>>;
using req_ptr = std::unique_ptr<X509_REQ, deleter<X509_REQ_free>>;
using md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, deleter<EVP_MD_CTX_free>>;
using ext_ptr = std::unique_ptr<X509_EXTENSION, deleter<X509_EXTENSION_free>>;
void free_exts(STACK_OF(X509_EXTENSION) * s) {
  sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free);
}
using exts_ptr = std::unique_ptr<STACK_OF(X509_EXTENSION), deleter<free_exts>>;
using bn_ptr = std::unique_ptr<BIGNUM, deleter<BN_free>>;
using sig_ptr = std::unique_ptr<ECDSA_SIG, deleter<ECDSA_SIG_free>>;
using octet_ptr = std::unique_ptr<ASN1_OCTET_STRING, deleter<ASN1_OCTET_STRING_free>>;

[[noreturn]] void crypto_failure(const char* what) {
  ERR_clear_error(); // OpenSSL's queue may describe key material; never shown
  throw acme_error(std::string("ACME: ") + what + " failed in the crypto library");
}

std::string clip(std::string s, std::size_t n = 300) {
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20)
      c = ' ';
  if (s.size() > n)
    s = s.substr(0, n) + "...";
  return s;
}

// --- encodings -----------------------------------------------------------------------------------

std::string b64url(const unsigned char* data, std::size_t n) {
  static constexpr char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < n; i += 3) {
    unsigned v = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    out += tbl[v >> 18];
    out += tbl[(v >> 12) & 63];
    out += tbl[(v >> 6) & 63];
    out += tbl[v & 63];
  }
  if (n - i == 1) {
    unsigned v = data[i] << 16;
    out += tbl[v >> 18];
    out += tbl[(v >> 12) & 63];
  } else if (n - i == 2) {
    unsigned v = (data[i] << 16) | (data[i + 1] << 8);
    out += tbl[v >> 18];
    out += tbl[(v >> 12) & 63];
    out += tbl[(v >> 6) & 63];
  }
  return out;
}
std::string b64url(const std::string& s) {
  return b64url(reinterpret_cast<const unsigned char*>(s.data()), s.size());
}

std::string sha256(const std::string& s) {
  unsigned char md[32];
  unsigned int len = 0;
  if (!EVP_Digest(s.data(), s.size(), md, &len, EVP_sha256(), nullptr))
    crypto_failure("SHA-256");
  return std::string(reinterpret_cast<char*>(md), len);
}

// --- keys ----------------------------------------------------------------------------------------

pkey_ptr new_p256_key() {
  pkey_ptr k(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!k)
    crypto_failure("generating a P-256 key");
  return k;
}

std::string key_to_pem(EVP_PKEY* k) {
  bio_ptr b(BIO_new(BIO_s_mem()));
  // Traditional "EC PRIVATE KEY", as autocert writes it.
  if (!b ||
      !PEM_write_bio_PrivateKey_traditional(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr))
    crypto_failure("encoding a key");
  char* p = nullptr;
  long n = BIO_get_mem_data(b.get(), &p);
  return std::string(p, static_cast<std::size_t>(n));
}

pkey_ptr key_from_pem(const std::string& pem) {
  bio_ptr b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  pkey_ptr k(b ? PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr) : nullptr);
  ERR_clear_error();
  return k;
}

std::string coord(EVP_PKEY* k, const char* name) {
  BIGNUM* raw = nullptr;
  if (!EVP_PKEY_get_bn_param(k, name, &raw))
    crypto_failure("reading the account key");
  bn_ptr bn(raw);
  unsigned char buf[32];
  if (BN_bn2binpad(bn.get(), buf, sizeof buf) != 32)
    crypto_failure("reading the account key");
  return b64url(buf, sizeof buf);
}

// The public JWK; members in lexicographic order, which is also RFC 7638's thumbprint input.
json jwk(EVP_PKEY* k) {
  return json{{"crv", "P-256"},
              {"kty", "EC"},
              {"x", coord(k, OSSL_PKEY_PARAM_EC_PUB_X)},
              {"y", coord(k, OSSL_PKEY_PARAM_EC_PUB_Y)}};
}

std::string thumbprint(EVP_PKEY* k) {
  return b64url(sha256(jwk(k).dump()));
}

// ES256: ECDSA over SHA-256, the signature as r || s (32 bytes each), not DER.
std::string sign_es256(EVP_PKEY* k, const std::string& data) {
  md_ctx_ptr ctx(EVP_MD_CTX_new());
  std::size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, k) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()),
                     data.size()) != 1)
    crypto_failure("signing");
  std::vector<unsigned char> der(len);
  if (EVP_DigestSign(ctx.get(), der.data(), &len,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1)
    crypto_failure("signing");
  const unsigned char* p = der.data();
  sig_ptr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len)));
  if (!sig)
    crypto_failure("signing");
  unsigned char rs[64];
  if (BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), rs, 32) != 32 ||
      BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), rs + 32, 32) != 32)
    crypto_failure("signing");
  return b64url(rs, sizeof rs);
}

// --- certificates --------------------------------------------------------------------------------

clock::time_point asn1_time(const ASN1_TIME* t) {
  std::tm tm{};
  if (!t || !ASN1_TIME_to_tm(t, &tm))
    return {};
  return clock::from_time_t(timegm(&tm));
}

std::vector<x509_ptr> read_certs(const std::string& pem) {
  std::vector<x509_ptr> out;
  bio_ptr b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  while (b) {
    x509_ptr c(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
    if (!c)
      break;
    out.push_back(std::move(c));
  }
  ERR_clear_error();
  return out;
}

std::string certs_to_pem(const std::vector<x509_ptr>& certs) {
  bio_ptr b(BIO_new(BIO_s_mem()));
  for (auto& c : certs)
    if (!b || !PEM_write_bio_X509(b.get(), c.get()))
      crypto_failure("encoding a certificate");
  char* p = nullptr;
  long n = BIO_get_mem_data(b.get(), &p);
  return std::string(p, static_cast<std::size_t>(n));
}

// Checks a chain against its key and domain; fills the certificate's dates and serial. Returns an
// explanation when it does not fit.
std::optional<std::string> inspect(certificate& c, const std::string& domain) {
  auto key = key_from_pem(c.key_pem);
  if (!key)
    return "no private key";
  auto certs = read_certs(c.chain_pem);
  if (certs.empty())
    return "no certificate";
  X509* leaf = certs.front().get();
  if (X509_check_private_key(leaf, key.get()) != 1) {
    ERR_clear_error();
    return "the certificate does not match its key";
  }
  if (X509_check_host(leaf, domain.data(), domain.size(), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
                      nullptr) != 1)
    return "the certificate is not for " + domain;
  c.not_before = asn1_time(X509_get0_notBefore(leaf));
  c.not_after = asn1_time(X509_get0_notAfter(leaf));
  bn_ptr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), nullptr));
  if (serial) {
    char* hex = BN_bn2hex(serial.get());
    c.serial_hex = hex ? hex : "";
    OPENSSL_free(hex);
  }
  c.chain_pem = certs_to_pem(certs); // normalized: certificates only, leaf first
  return std::nullopt;
}

bool add_ext(STACK_OF(X509_EXTENSION) * exts, int nid, const char* value) {
  X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, nullptr, nid, value);
  if (!e)
    return false;
  sk_X509_EXTENSION_push(exts, e);
  return true;
}

std::string make_csr_der(EVP_PKEY* key, const std::string& domain) {
  req_ptr req(X509_REQ_new());
  if (!req || !X509_REQ_set_version(req.get(), 0))
    crypto_failure("building the CSR");
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(domain.c_str()), -1, -1, 0);
  exts_ptr exts(sk_X509_EXTENSION_new_null());
  std::string san = "DNS:" + domain;
  if (!exts || !add_ext(exts.get(), NID_subject_alt_name, san.c_str()) ||
      !X509_REQ_add_extensions(req.get(), exts.get()) || !X509_REQ_set_pubkey(req.get(), key) ||
      !X509_REQ_sign(req.get(), key, EVP_sha256()))
    crypto_failure("building the CSR");
  int n = i2d_X509_REQ(req.get(), nullptr);
  if (n <= 0)
    crypto_failure("encoding the CSR");
  std::string der(static_cast<std::size_t>(n), '\0');
  auto* p = reinterpret_cast<unsigned char*>(der.data());
  i2d_X509_REQ(req.get(), &p);
  return der;
}

// --- files ---------------------------------------------------------------------------------------

std::optional<std::string> read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in)
    return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_private(const std::filesystem::path& p, const std::string& data) {
  auto tmp = p;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    throw acme_error("ACME: cannot write " + tmp.string() + ": " + std::strerror(errno));
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      int e = errno;
      ::close(fd);
      throw acme_error("ACME: cannot write " + tmp.string() + ": " + std::strerror(e));
    }
    off += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0)
    throw acme_error("ACME: cannot write " + tmp.string() + ": " + std::strerror(errno));
  std::error_code ec;
  std::filesystem::rename(tmp, p, ec);
  if (ec)
    throw acme_error("ACME: cannot write " + p.string() + ": " + ec.message());
}

void ensure_dir(const std::filesystem::path& d) {
  std::error_code ec;
  std::filesystem::create_directories(d, ec);
  if (ec || !std::filesystem::is_directory(d))
    throw acme_error("ACME: cannot create " + d.string() + ": " +
                     (ec ? ec.message() : "not a directory"));
}

// --- HTTP ----------------------------------------------------------------------------------------

struct response {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers; // names lower-cased; the last value wins
  std::string header(const std::string& n) const {
    auto it = headers.find(n);
    return it == headers.end() ? std::string() : it->second;
  }
};

std::size_t on_body(char* p, std::size_t sz, std::size_t n, void* ud) {
  auto* r = static_cast<response*>(ud);
  if (r->body.size() + sz * n > (4u << 20))
    return 0; // no ACME answer is this large
  r->body.append(p, sz * n);
  return sz * n;
}

std::size_t on_header(char* p, std::size_t sz, std::size_t n, void* ud) {
  auto* r = static_cast<response*>(ud);
  std::string line(p, sz * n);
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    std::string value = line.substr(colon + 1);
    auto b = value.find_first_not_of(" \t");
    auto e = value.find_last_not_of(" \t\r\n");
    r->headers[name] = b == std::string::npos ? std::string() : value.substr(b, e - b + 1);
  }
  return sz * n;
}

void curl_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string utc(clock::time_point t) {
  std::time_t tt = clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

// --- the protocol --------------------------------------------------------------------------------

class session {
public:
  session(const options& o) : opts_(o), deadline_(std::chrono::steady_clock::now() + o.timeout) {
    curl_init_once();
    curl_ = curl_easy_init();
    if (!curl_)
      throw acme_error("ACME: cannot start an HTTP client");
  }
  ~session() { curl_easy_cleanup(curl_); }
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  void load_directory() {
    auto r = request("GET", opts_.directory_url, "", "fetching the directory");
    if (r.status != 200)
      refused(r, "fetching the directory " + clip(opts_.directory_url, 120));
    auto d = parse(r, "the directory");
    for (const char* k : {"newNonce", "newAccount", "newOrder"})
      if (!d.contains(k) || !d[k].is_string())
        throw acme_error("ACME: the directory at " + clip(opts_.directory_url, 120) + " has no " +
                         k);
    new_nonce_ = d["newNonce"];
    new_account_ = d["newAccount"];
    new_order_ = d["newOrder"];
  }

  void account() {
    auto path = opts_.dir / account_key_file;
    if (auto pem = read_file(path)) {
      key_ = key_from_pem(*pem);
      if (!key_ || EVP_PKEY_get_base_id(key_.get()) != EVP_PKEY_EC)
        throw acme_error("ACME: " + path.string() + " holds no usable EC private key");
    } else {
      key_ = new_p256_key();
      write_private(path, key_to_pem(key_.get()));
      spdlog::info("ACME: created an account key in {}", path.string());
    }
    json req{{"termsOfServiceAgreed", true}};
    if (!opts_.email.empty())
      req["contact"] = json::array({"mailto:" + opts_.email});
    auto r = post(new_account_, req.dump(), "registering the account", /*use_jwk=*/true);
    if (r.status != 200 && r.status != 201)
      refused(r, "registering the account");
    kid_ = r.header("location");
    if (kid_.empty())
      throw acme_error("ACME: the CA answered newAccount without the account URL");
    auto a = parse(r, "the account");
    if (a.value("status", "") != "valid")
      throw acme_error("ACME: the account is " + clip(a.value("status", "unknown"), 40));
  }

  // One order answered with challenges of type `type`. Returns the chain on success.
  certificate order(challenge_type type, const challenge_hooks& hooks) {
    json req{{"identifiers", json::array({json{{"type", "dns"}, {"value", opts_.domain}}})}};
    auto r = post(new_order_, req.dump(), "creating the order");
    if (r.status != 201 && r.status != 200)
      refused(r, "creating the order for " + opts_.domain);
    std::string order_url = r.header("location");
    auto ord = parse(r, "the order");
    if (order_url.empty() || !ord.contains("authorizations") || !ord.contains("finalize"))
      throw acme_error("ACME: the CA's order has no URL, authorizations or finalize");
    for (const auto& az : ord["authorizations"])
      authorize(az.get<std::string>(), type, hooks);

    auto key = new_p256_key();
    json fin{{"csr", b64url(make_csr_der(key.get(), opts_.domain))}};
    r = post(ord["finalize"].get<std::string>(), fin.dump(), "finalizing the order");
    if (r.status != 200)
      refused(r, "finalizing the order");
    ord = parse(r, "the order");
    while (ord.value("status", "") != "valid") {
      auto st = ord.value("status", "");
      if (st != "processing" && st != "ready" && st != "pending")
        fail_with(ord, "the order became " + clip(st, 40));
      wait(r, "the certificate to be issued");
      r = post(order_url, "", "polling the order");
      if (r.status != 200)
        refused(r, "polling the order");
      ord = parse(r, "the order");
    }
    if (!ord.contains("certificate") || !ord["certificate"].is_string())
      throw acme_error("ACME: the valid order names no certificate");
    r = post(ord["certificate"].get<std::string>(), "", "downloading the certificate", false,
             "application/pem-certificate-chain");
    if (r.status != 200)
      refused(r, "downloading the certificate");
    certificate c;
    c.key_pem = key_to_pem(key.get());
    c.chain_pem = r.body;
    if (auto why = inspect(c, opts_.domain))
      throw acme_error("ACME: the CA's certificate is unusable: " + *why);
    return c;
  }

private:
  void authorize(const std::string& url, challenge_type type, const challenge_hooks& hooks) {
    auto r = post(url, "", "reading an authorization");
    if (r.status != 200)
      refused(r, "reading an authorization");
    auto az = parse(r, "the authorization");
    if (az.value("status", "") == "valid")
      return; // the CA remembers an earlier validation
    if (az.value("status", "") != "pending")
      fail_with(az, "the authorization is " + clip(az.value("status", "unknown"), 40));
    const char* want = to_string(type);
    if (!az.contains("challenges") || !az["challenges"].is_array())
      throw acme_error("ACME: the CA's authorization lists no challenges");
    const json challenges = az["challenges"];
    const json* ch = nullptr;
    for (const auto& c : challenges)
      if (c.is_object() && c.value("type", "") == want)
        ch = &c;
    if (!ch)
      throw acme_error(std::string("ACME: the CA offers no ") + want + " challenge for " +
                       opts_.domain);
    std::string token = ch->value("token", "");
    if (token.empty() || token.size() > 256 ||
        token.find_first_not_of(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") !=
            std::string::npos)
      throw acme_error("ACME: the CA's challenge token is malformed");
    std::string key_auth = token + "." + thumbprint(key_.get());

    struct cleanup {
      std::function<void()> f;
      ~cleanup() {
        if (f)
          f();
      }
    } clear;
    if (type == challenge_type::tls_alpn_01) {
      auto [cert, key] = tls_alpn01_certificate(opts_.domain, key_auth);
      hooks.set_tls_alpn01(opts_.domain, cert, key);
      if (hooks.clear_tls_alpn01)
        clear.f = [&] { hooks.clear_tls_alpn01(opts_.domain); };
    } else {
      hooks.set_http01(token, key_auth);
      if (hooks.clear_http01)
        clear.f = [&] { hooks.clear_http01(token); };
    }
    r = post(ch->value("url", ""), "{}", "answering the challenge");
    if (r.status != 200)
      refused(r, "answering the challenge");
    for (;;) {
      wait(r, "the CA to validate " + opts_.domain);
      r = post(url, "", "polling the authorization");
      if (r.status != 200)
        refused(r, "polling the authorization");
      az = parse(r, "the authorization");
      auto st = az.value("status", "");
      if (st == "valid")
        return;
      if (st != "pending") {
        // The challenge carries the CA's reason.
        const json after = az.value("challenges", json::array());
        for (const auto& c : after)
          if (c.is_object() && c.value("type", "") == want && c.contains("error"))
            fail_with(c, std::string(want) + " validation of " + opts_.domain + " failed");
        fail_with(az, "the authorization became " + clip(st, 40));
      }
    }
  }

  // A JWS-signed POST; an empty payload is POST-as-GET. A badNonce answer is retried with the nonce
  // it carried (RFC 8555 6.5), a few times.
  response post(const std::string& url, const std::string& payload, const std::string& step,
                bool use_jwk = false, const char* accept = nullptr) {
    for (int attempt = 0;; ++attempt) {
      if (nonce_.empty()) {
        auto n = request("HEAD", new_nonce_, "", "getting a nonce");
        nonce_ = n.header("replay-nonce");
        if (nonce_.empty())
          refused(n, "getting a nonce");
      }
      json prot{{"alg", "ES256"}, {"nonce", nonce_}, {"url", url}};
      if (use_jwk)
        prot["jwk"] = jwk(key_.get());
      else
        prot["kid"] = kid_;
      nonce_.clear();
      std::string p64 = b64url(prot.dump()), b64 = b64url(payload);
      json jws{{"protected", p64},
               {"payload", b64},
               {"signature", sign_es256(key_.get(), p64 + "." + b64)}};
      auto r = request("POST", url, jws.dump(), step, accept);
      nonce_ = r.header("replay-nonce");
      if (r.status == 400 && attempt < 5) {
        json prob = json::parse(r.body, nullptr, false);
        if (prob.is_object() && prob.value("type", "") == "urn:ietf:params:acme:error:badNonce")
          continue;
      }
      return r;
    }
  }

  response request(const char* method, const std::string& url, const std::string& body,
                   const std::string& step, const char* accept = nullptr) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline_ - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      throw acme_error("ACME: timed out " + step + " (" + std::to_string(opts_.timeout.count()) +
                       " s)");
    check_cancel();
    response r;
    curl_easy_reset(curl_);
    if (opts_.cancel) {
      curl_easy_setopt(curl_, CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt(curl_, CURLOPT_XFERINFOFUNCTION, &session::on_progress);
      curl_easy_setopt(curl_, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(opts_.cancel));
    }
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_, CURLOPT_PROTOCOLS_STR, "https,http");
    curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT_MS, std::min<long>(10000, left.count()));
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, std::min<long>(30000, left.count()));
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(curl_, CURLOPT_USERAGENT, "netbird-mgmt/" NBM_VERSION " acme");
    if (!opts_.ca_bundle.empty())
      curl_easy_setopt(curl_, CURLOPT_CAINFO, opts_.ca_bundle.c_str());
    struct curl_slist* hdrs = nullptr;
    if (std::string(method) == "HEAD") {
      curl_easy_setopt(curl_, CURLOPT_NOBODY, 1L);
    } else if (std::string(method) == "POST") {
      curl_easy_setopt(curl_, CURLOPT_POST, 1L);
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.data());
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
      hdrs = curl_slist_append(hdrs, "Content-Type: application/jose+json");
    }
    if (accept)
      hdrs = curl_slist_append(hdrs, (std::string("Accept: ") + accept).c_str());
    if (hdrs)
      curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, hdrs);
    CURLcode rc = curl_easy_perform(curl_);
    curl_slist_free_all(hdrs);
    if (rc == CURLE_ABORTED_BY_CALLBACK)
      check_cancel();
    if (rc != CURLE_OK)
      throw acme_error("ACME: " + step + ": cannot reach " + clip(url, 120) + ": " +
                       curl_easy_strerror(rc));
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &r.status);
    return r;
  }

  json parse(const response& r, const char* what) {
    json j = json::parse(r.body, nullptr, false);
    if (!j.is_object())
      throw acme_error(std::string("ACME: the CA's answer for ") + what + " is not a JSON object");
    return j;
  }

  // Waits before the next poll: the CA's Retry-After (seconds) within 0.25..5 s, else 0.5 s.
  void wait(const response& r, const std::string& what) {
    auto d = std::chrono::milliseconds(500);
    auto ra = r.header("retry-after");
    if (!ra.empty() && std::all_of(ra.begin(), ra.end(), ::isdigit) && ra.size() < 6)
      d = std::chrono::milliseconds(std::clamp(std::stol(ra) * 1000, 250L, 5000L));
    if (std::chrono::steady_clock::now() + d > deadline_)
      throw acme_error("ACME: timed out waiting for " + what + " (" +
                       std::to_string(opts_.timeout.count()) + " s)");
    for (auto end = std::chrono::steady_clock::now() + d; std::chrono::steady_clock::now() < end;) {
      check_cancel();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  void check_cancel() const {
    if (opts_.cancel && opts_.cancel->load())
      throw acme_error("ACME: cancelled (the server is stopping)");
  }

  static int on_progress(void* ud, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    auto* cancel = static_cast<const std::atomic<bool>*>(ud);
    return cancel && cancel->load() ? 1 : 0;
  }

  [[noreturn]] static void fail_with(const json& obj, const std::string& step) {
    if (obj.contains("error") && obj["error"].is_object())
      throw acme_error("ACME: " + step + ": the CA says: " + problem_text(obj["error"]));
    throw acme_error("ACME: " + step);
  }

  static std::string problem_text(const json& p) {
    std::string detail = p.value("detail", ""), type = p.value("type", "");
    std::string s = clip(detail.empty() ? "no detail" : detail);
    if (!type.empty())
      s += " (" + clip(type, 80) + ")";
    return s;
  }

  [[noreturn]] static void refused(const response& r, const std::string& step) {
    json p = json::parse(r.body, nullptr, false);
    if (p.is_object() && (p.contains("detail") || p.contains("type")))
      throw acme_error("ACME: " + step + ": the CA refused (HTTP " + std::to_string(r.status) +
                       "): " + problem_text(p));
    throw acme_error("ACME: " + step + ": unexpected HTTP " + std::to_string(r.status) +
                     " from the CA");
  }

  const options& opts_;
  std::chrono::steady_clock::time_point deadline_;
  CURL* curl_ = nullptr;
  pkey_ptr key_;
  std::string kid_, nonce_, new_nonce_, new_account_, new_order_;
};

} // namespace

const char* to_string(challenge_type t) {
  return t == challenge_type::tls_alpn_01 ? "tls-alpn-01" : "http-01";
}

std::string normalize_domain(const std::string& domain) {
  std::string d = domain;
  std::transform(d.begin(), d.end(), d.begin(), [](unsigned char c) { return std::tolower(c); });
  if (!d.empty() && d.back() == '.')
    d.pop_back();
  auto bad = [&](const std::string& why) {
    return acme_error("ACME: the domain \"" + clip(domain, 64) + "\" is not usable: " + why);
  };
  if (d.empty() || d.size() > 253)
    throw bad("it must be 1 to 253 characters");
  if (d.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-") != std::string::npos)
    throw bad("only letters, digits, '-' and '.' are allowed");
  std::size_t labels = 0, start = 0;
  for (;;) {
    auto dot = d.find('.', start);
    std::string label = d.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
      throw bad("each label must be 1 to 63 characters, not starting or ending with '-'");
    ++labels;
    if (dot == std::string::npos)
      break;
    start = dot + 1;
  }
  if (labels < 2)
    throw bad("it must have at least two labels");
  return d;
}

clock::time_point renewal_time(const certificate& c, std::chrono::seconds renew_before) {
  auto before = renew_before;
  if (before.count() <= 0) {
    auto third = std::chrono::duration_cast<std::chrono::seconds>(c.not_after - c.not_before) / 3;
    before = std::min<std::chrono::seconds>(std::chrono::hours(24 * 30), third);
  }
  return c.not_after - before;
}

std::optional<certificate> load_stored(const options& opts, std::string* problem) {
  auto domain = normalize_domain(opts.domain);
  auto path = opts.dir / domain;
  auto data = read_file(path);
  if (!data)
    return std::nullopt;
  certificate c;
  c.key_pem = *data; // the key block is found within the file
  c.chain_pem = *data;
  if (auto why = inspect(c, domain)) {
    if (problem)
      *problem = path.string() + ": " + *why;
    return std::nullopt;
  }
  auto key = key_from_pem(*data);
  c.key_pem = key_to_pem(key.get());
  return c;
}

certificate obtain(const options& in, const challenge_hooks& hooks) {
  options opts = in;
  opts.domain = normalize_domain(in.domain);
  if (opts.dir.empty())
    throw acme_error("ACME: no directory to keep the account key and certificate in");
  std::vector<challenge_type> types;
  if (hooks.set_tls_alpn01)
    types.push_back(challenge_type::tls_alpn_01);
  if (hooks.set_http01)
    types.push_back(challenge_type::http_01);
  if (types.empty())
    throw acme_error("ACME: no way to answer a challenge (neither tls-alpn-01 nor http-01)");
  ensure_dir(opts.dir);
  session s(opts);
  try {
    s.load_directory();
    s.account();
  } catch (const json::exception&) {
    throw acme_error("ACME: the CA's directory or account answer is malformed");
  }
  std::optional<acme_error> last;
  for (auto t : types) {
    try {
      auto c = s.order(t, hooks);
      write_private(opts.dir / opts.domain, c.key_pem + c.chain_pem);
      spdlog::info("ACME: obtained a certificate for {} (serial {}, valid until {}) by {}",
                   opts.domain, c.serial_hex, utc(c.not_after), to_string(t));
      return c;
    } catch (const acme_error& e) {
      spdlog::warn("{}", e.what());
      last = e;
    } catch (const json::exception&) {
      last = acme_error(std::string("ACME: the CA's answer while answering ") + to_string(t) +
                        " is malformed");
      spdlog::warn("{}", last->what());
    }
  }
  throw *last;
}

certificate ensure(const options& opts, const challenge_hooks& hooks, bool* issued) {
  std::string problem;
  if (auto c = load_stored(opts, &problem)) {
    if (clock::now() < renewal_time(*c, opts.renew_before)) {
      if (issued)
        *issued = false;
      return *c;
    }
    spdlog::info("ACME: the certificate for {} (serial {}) is due for renewal", opts.domain,
                 c->serial_hex);
  } else if (!problem.empty()) {
    spdlog::warn("ACME: ignoring the stored certificate: {}", problem);
  }
  auto c = obtain(opts, hooks);
  if (issued)
    *issued = true;
  return c;
}

std::pair<std::string, std::string> tls_alpn01_certificate(const std::string& domain,
                                                           const std::string& key_authorization) {
  auto key = new_p256_key();
  x509_ptr cert(X509_new());
  if (!cert)
    crypto_failure("building the challenge certificate");
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  bn_ptr sbn(BN_bin2bn(serial, sizeof serial, nullptr));
  BN_to_ASN1_INTEGER(sbn.get(), X509_get_serialNumber(cert.get()));
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 7 * 24 * 3600);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(domain.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_set_pubkey(cert.get(), key.get());

  std::string san = "DNS:" + domain;
  ext_ptr san_ext(X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san.c_str()));
  // id-pe-acmeIdentifier (1.3.6.1.5.5.7.1.31), critical; its extnValue is the DER of an OCTET
  // STRING holding SHA-256(key authorization).
  std::string digest = sha256(key_authorization);
  std::string inner = std::string("\x04\x20", 2) + digest;
  octet_ptr value(ASN1_OCTET_STRING_new());
  ASN1_OBJECT* oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
  ext_ptr acme_ext;
  if (value && oid &&
      ASN1_OCTET_STRING_set(value.get(), reinterpret_cast<const unsigned char*>(inner.data()),
                            static_cast<int>(inner.size())))
    acme_ext.reset(X509_EXTENSION_create_by_OBJ(nullptr, oid, 1, value.get()));
  ASN1_OBJECT_free(oid);
  if (!san_ext || !acme_ext || !X509_add_ext(cert.get(), san_ext.get(), -1) ||
      !X509_add_ext(cert.get(), acme_ext.get(), -1) ||
      !X509_sign(cert.get(), key.get(), EVP_sha256()))
    crypto_failure("building the challenge certificate");
  std::vector<x509_ptr> one;
  one.push_back(std::move(cert));
  return {certs_to_pem(one), key_to_pem(key.get())};
}

} // namespace nbm::acme
