// The ACME client against a real ACME CA (pebble on 127.0.0.1) that really validates: TLS-ALPN-01
// and HTTP-01 answered by the module's own responders, issue, reuse, renewal, the CA's refusals.
#include "acme/acme.hpp"
#include "acme/challenge_servers.hpp"
#include "acme/manager.hpp"
#include "tests/support/pebble.hpp"

#include <doctest/doctest.h>

#include <mutex>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <thread>

using namespace nbm;
using namespace std::chrono_literals;
using nbm::test::pebble;
using nbm::test::pebble_options;
using nbm::test::pebble_sh;
using nbm::test::pebble_slurp;

namespace {

struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    char tmpl[] = "/tmp/nbm-acme-test.XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

acme::options opts_for(const pebble& ca, const std::filesystem::path& dir,
                       const std::string& domain) {
  acme::options o;
  o.directory_url = ca.directory_url;
  o.ca_bundle = ca.ca_bundle;
  o.dir = dir / "letsencrypt";
  o.domain = domain;
  o.timeout = 60s;
  return o;
}

unsigned mode_of(const std::filesystem::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

// The chain verifies up to pebble's root for `domain` (openssl verify, an independent check).
void check_chain(const pebble& ca, const acme::certificate& c, const std::string& domain,
                 const std::filesystem::path& scratch) {
  auto root = scratch / "root.pem", chain = scratch / "chain.pem", leaf = scratch / "leaf.pem";
  std::ofstream(root) << ca.root_pem();
  std::ofstream(chain) << c.chain_pem;
  auto end = c.chain_pem.find("-----END CERTIFICATE-----");
  REQUIRE(end != std::string::npos);
  std::ofstream(leaf) << c.chain_pem.substr(0, end + 26);
  auto out = pebble_sh("openssl verify -CAfile " + root.string() + " -untrusted " + chain.string() +
                       " -verify_hostname " + domain + " " + leaf.string());
  CHECK(out.find(": OK") != std::string::npos);
}

} // namespace

TEST_CASE("tls-alpn-01: first issue, stored as autocert does, reused across restarts, renewed") {
  acme::tls_alpn01_server tls("127.0.0.1", 0);
  pebble_options po;
  po.tls_port = tls.port(); // HTTP-01 would reach a port nobody serves
  pebble ca(po);
  temp_dir tmp;
  const std::string domain = "mgmt.nbm.test";
  auto o = opts_for(ca, tmp.path, domain);
  acme::challenge_hooks hooks;
  tls.add_to(hooks);

  bool issued = false;
  auto first = acme::ensure(o, hooks, &issued);
  CHECK(issued);
  CHECK(tls.answered() >= 1); // pebble really connected to our responder with acme-tls/1
  check_chain(ca, first, domain, tmp.path);
  CHECK(first.not_after > std::chrono::system_clock::now() + 24h);

  // autocert's DirCache layout: the account key and <domain> (key, then chain), private files.
  auto key_file = o.dir / acme::account_key_file, cert_file = o.dir / domain;
  REQUIRE(std::filesystem::exists(key_file));
  REQUIRE(std::filesystem::exists(cert_file));
  CHECK(mode_of(key_file) == 0600);
  CHECK(mode_of(cert_file) == 0600);
  auto account_key = pebble_slurp(key_file);
  CHECK(account_key.find("BEGIN EC PRIVATE KEY") != std::string::npos);
  auto stored = pebble_slurp(cert_file);
  CHECK(stored.find("BEGIN EC PRIVATE KEY") < stored.find("BEGIN CERTIFICATE"));

  SUBCASE("a restart reuses the stored certificate: no order, no challenge") {
    auto answered = tls.answered();
    auto again = acme::ensure(o, hooks, &issued);
    CHECK_FALSE(issued);
    CHECK(again.serial_hex == first.serial_hex);
    CHECK(again.chain_pem == first.chain_pem);
    CHECK(tls.answered() == answered);
    CHECK(pebble_slurp(cert_file) == stored);
  }
  SUBCASE("due for renewal: a new certificate, the same account") {
    auto before = tls.answered();
    o.renew_before = std::chrono::hours(24 * 365 * 20); // everything is due
    auto renewed = acme::ensure(o, hooks, &issued);
    CHECK(issued);
    CHECK(renewed.serial_hex != first.serial_hex);
    CHECK(renewed.key_pem != first.key_pem); // a fresh certificate key each time, as autocert
    CHECK(tls.answered() > before);
    CHECK(pebble_slurp(key_file) == account_key);
    auto loaded = acme::load_stored(o);
    REQUIRE(loaded);
    CHECK(loaded->serial_hex == renewed.serial_hex);
    check_chain(ca, renewed, domain, tmp.path);
  }
  SUBCASE("a damaged stored certificate is obtained again") {
    std::ofstream(cert_file, std::ios::trunc) << "-----BEGIN CERTIFICATE-----\ngarbage\n";
    std::string problem;
    CHECK_FALSE(acme::load_stored(o, &problem));
    CHECK(problem.find(domain) != std::string::npos);
    auto fresh = acme::ensure(o, hooks, &issued);
    CHECK(issued);
    CHECK(fresh.serial_hex != first.serial_hex);
    CHECK(pebble_slurp(key_file) == account_key);
  }
}

TEST_CASE("http-01 alone, and autocert's order: tls-alpn-01 refused first, then http-01") {
  acme::http01_server http("127.0.0.1", 0);
  pebble_options po;
  po.http_port = http.port();
  pebble ca(po);
  temp_dir tmp;
  auto o = opts_for(ca, tmp.path, "http.nbm.test");

  SUBCASE("http-01 only") {
    acme::challenge_hooks hooks;
    http.add_to(hooks);
    auto c = acme::obtain(o, hooks);
    CHECK(http.answered() >= 1);
    check_chain(ca, c, "http.nbm.test", tmp.path);
  }
  SUBCASE("tls-alpn-01 is tried first; nobody serves pebble's TLS port, so http-01 gets it") {
    acme::challenge_hooks hooks;
    http.add_to(hooks);
    int lent = 0;
    hooks.set_tls_alpn01 = [&](const std::string& d, const std::string& cert, const std::string&) {
      ++lent;
      CHECK(d == "http.nbm.test");
      CHECK(cert.find("BEGIN CERTIFICATE") != std::string::npos);
    };
    int cleared = 0;
    hooks.clear_tls_alpn01 = [&](const std::string&) { ++cleared; };
    auto c = acme::obtain(o, hooks);
    CHECK(lent == 1);
    CHECK(cleared == 1);
    CHECK(http.answered() >= 1);
    CHECK_FALSE(c.serial_hex.empty());
  }
}

TEST_CASE("the CA refuses: its problem document, nothing stored, no secrets") {
  acme::http01_server http("127.0.0.1", 0);
  pebble_options po;
  po.http_port = http.port();
  po.blocklist = {"blocked.nbm.test"};
  pebble ca(po);
  temp_dir tmp;
  acme::challenge_hooks hooks;
  http.add_to(hooks);

  SUBCASE("a domain the CA's policy forbids") {
    auto o = opts_for(ca, tmp.path, "blocked.nbm.test");
    std::string msg;
    try {
      acme::ensure(o, hooks);
      FAIL("issued a certificate for a blocked domain");
    } catch (const acme::acme_error& e) {
      msg = e.what();
    }
    INFO(msg);
    CHECK(msg.find("creating the order for blocked.nbm.test") != std::string::npos);
    CHECK(msg.find("the CA refused (HTTP 400)") != std::string::npos);
    CHECK(msg.find("forbidden by policy") != std::string::npos); // pebble's detail
    CHECK(msg.find("rejectedIdentifier") != std::string::npos);  // its problem type
    CHECK(msg.find("PRIVATE") == std::string::npos);
    CHECK_FALSE(std::filesystem::exists(o.dir / "blocked.nbm.test"));
    CHECK(std::filesystem::exists(o.dir / acme::account_key_file)); // the account was made
  }
  SUBCASE("validation fails: the challenge's error is reported") {
    auto o = opts_for(ca, tmp.path, "wrong.nbm.test");
    acme::challenge_hooks liar;
    liar.set_http01 = [&](const std::string& token, const std::string&) {
      http.set(token, "not-the-key-auth");
    };
    std::string msg;
    try {
      acme::obtain(o, liar);
      FAIL("issued a certificate on a wrong key authorization");
    } catch (const acme::acme_error& e) {
      msg = e.what();
    }
    INFO(msg);
    CHECK(msg.find("http-01 validation of wrong.nbm.test failed") != std::string::npos);
    CHECK(msg.find("the CA says:") != std::string::npos);
    CHECK(msg.find("unauthorized") != std::string::npos); // urn:ietf:params:acme:error:unauthorized
    CHECK_FALSE(std::filesystem::exists(o.dir / "wrong.nbm.test"));
  }
  SUBCASE("pebble's TLS certificate without its CA bundle is not trusted") {
    auto o = opts_for(ca, tmp.path, "x.nbm.test");
    o.ca_bundle.clear();
    CHECK_THROWS_WITH_AS(acme::obtain(o, hooks), doctest::Contains("fetching the directory"),
                         acme::acme_error);
  }
  SUBCASE("a CA that is not there") {
    auto o = opts_for(ca, tmp.path, "x.nbm.test");
    o.directory_url = "https://localhost:" + std::to_string(nbm::test::free_port()) + "/dir";
    CHECK_THROWS_WITH_AS(acme::obtain(o, hooks), doctest::Contains("cannot reach"),
                         acme::acme_error);
  }
  SUBCASE("a directory URL that is not a directory") {
    auto o = opts_for(ca, tmp.path, "x.nbm.test");
    o.directory_url = "https://localhost:" + std::to_string(ca.acme_port) + "/nope";
    CHECK_THROWS_WITH_AS(acme::obtain(o, hooks), doctest::Contains("fetching the directory"),
                         acme::acme_error);
  }
  SUBCASE("an account key file that is not a key") {
    auto o = opts_for(ca, tmp.path, "x.nbm.test");
    std::filesystem::create_directories(o.dir);
    std::ofstream(o.dir / acme::account_key_file) << "not a key";
    CHECK_THROWS_WITH_AS(acme::obtain(o, hooks),
                         doctest::Contains("holds no usable EC private key"), acme::acme_error);
  }
}

TEST_CASE("short-lived certificates: renewal falls due at a third of the lifetime") {
  acme::tls_alpn01_server tls("127.0.0.1", 0);
  pebble_options po;
  po.tls_port = tls.port();
  po.validity_seconds = 90;
  pebble ca(po);
  temp_dir tmp;
  auto o = opts_for(ca, tmp.path, "short.nbm.test");
  acme::challenge_hooks hooks;
  tls.add_to(hooks);
  auto c = acme::obtain(o, hooks);
  auto life = c.not_after - c.not_before;
  CHECK(life >= 85s);
  CHECK(life <= 95s);
  // The lesser of 30 days and a third of the lifetime: due 30 s before the end.
  CHECK(acme::renewal_time(c, 0s) ==
        c.not_after - std::chrono::duration_cast<std::chrono::seconds>(life) / 3);
  CHECK(acme::renewal_time(c, 10s) == c.not_after - 10s);
  bool issued = true;
  acme::ensure(o, hooks, &issued);
  CHECK_FALSE(issued); // a minute left of 90 s: not yet due
}

TEST_CASE("renewal time of a 90-day certificate: 30 days before the end") {
  acme::certificate c;
  c.not_before = std::chrono::system_clock::time_point{} + std::chrono::hours(24 * 1000);
  c.not_after = c.not_before + std::chrono::hours(24 * 90);
  CHECK(acme::renewal_time(c, 0s) == c.not_after - std::chrono::hours(24 * 30));
  c.not_after = c.not_before + std::chrono::hours(24 * 6); // short-lived: a third (2 days)
  CHECK(acme::renewal_time(c, 0s) == c.not_after - std::chrono::hours(48));
}

TEST_CASE("domains: usable as a DNS identifier and a file name, else a clear error") {
  CHECK(acme::normalize_domain("Mgmt.Example.COM.") == "mgmt.example.com");
  CHECK(acme::normalize_domain("a-b.c") == "a-b.c");
  for (const std::string& bad : std::vector<std::string>{
           "", "localhost", "../etc/passwd", "a/b.c", "-a.b", "a-.b", "a..b", ".a.b", "*.a.b",
           "a b.c", std::string(64, 'a') + ".b", std::string(250, 'a') + ".bcd"}) {
    INFO(bad);
    CHECK_THROWS_WITH_AS(acme::normalize_domain(bad), doctest::Contains("is not usable"),
                         acme::acme_error);
  }
  // The message echoes at most a short prefix of what it was given.
  try {
    acme::normalize_domain(std::string(5000, 'x'));
  } catch (const acme::acme_error& e) {
    CHECK(std::string(e.what()).size() < 200);
  }
}

TEST_CASE("the TLS-ALPN-01 certificate: self-signed for the domain, acmeIdentifier critical") {
  auto [cert, key] = acme::tls_alpn01_certificate("a.nbm.test", "token.thumb");
  temp_dir tmp;
  std::ofstream(tmp.path / "c.pem") << cert;
  auto text = pebble_sh("openssl x509 -noout -text -in " + (tmp.path / "c.pem").string());
  CHECK(text.find("DNS:a.nbm.test") != std::string::npos);
  CHECK(text.find("1.3.6.1.5.5.7.1.31: critical") != std::string::npos);
  // The extension's DER: OID 1.3.6.1.5.5.7.1.31, critical TRUE, extnValue = OCTET STRING { OCTET
  // STRING (32 bytes) SHA-256("token.thumb") }.
  auto digest = pebble_sh("printf %s token.thumb | openssl dgst -sha256 -r | cut -c1-64");
  auto der = pebble_sh("openssl x509 -outform DER -in " + (tmp.path / "c.pem").string() +
                       " | od -An -tx1 -v | tr -d ' \\n'");
  CHECK(der.find("06082b0601050507011f0101ff04220420" + digest.substr(0, 64)) != std::string::npos);
  CHECK(key.find("BEGIN EC PRIVATE KEY") != std::string::npos);
}

namespace {

// What the server's certificate holder would be told: every certificate it was asked to serve.
struct recording_target {
  std::mutex mu;
  std::vector<std::string> served; // chain PEMs
  acme::serving_target make(acme::tls_alpn01_server& tls) {
    acme::serving_target t;
    t.serve = [this](const std::string& chain, const std::string&) {
      std::lock_guard lk(mu);
      served.push_back(chain);
    };
    tls.add_to(t.hooks);
    return t;
  }
  std::size_t count() {
    std::lock_guard lk(mu);
    return served.size();
  }
};

template <class Pred>
bool wait_for(Pred p, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!p()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

} // namespace

TEST_CASE("manager: obtains in the background, renews when due, a restart serves the stored one") {
  acme::tls_alpn01_server tls("127.0.0.1", 0);
  pebble_options po;
  po.tls_port = tls.port();
  po.validity_seconds = 15; // due a third before the end: 10 s after issue
  pebble ca(po);
  temp_dir tmp;
  auto o = opts_for(ca, tmp.path, "auto.nbm.test");
  recording_target rec;
  {
    acme::manager m(o, rec.make(tls));
    CHECK_FALSE(m.serve_stored()); // nothing stored yet
    m.start();
    REQUIRE(wait_for([&] { return m.issued() >= 1; }, 30s));
    REQUIRE(wait_for([&] { return m.issued() >= 2; }, 30s)); // renewed without being asked
    CHECK(m.last_error().empty());
  }
  REQUIRE(rec.count() >= 2);
  CHECK(rec.served[0] != rec.served[1]);
  // A restart: the stored (latest) certificate is served at once.
  recording_target rec2;
  acme::manager again(o, rec2.make(tls));
  CHECK(again.serve_stored());
  REQUIRE(rec2.count() == 1);
  CHECK(rec2.served[0] == acme::load_stored(o)->chain_pem);
}

TEST_CASE("manager: a refusal is reported with the CA's reason and nothing is served") {
  acme::tls_alpn01_server tls("127.0.0.1", 0);
  pebble_options po;
  po.tls_port = tls.port();
  po.blocklist = {"refused.nbm.test"};
  pebble ca(po);
  temp_dir tmp;
  recording_target rec;
  acme::manager m(opts_for(ca, tmp.path, "refused.nbm.test"), rec.make(tls));
  m.start();
  REQUIRE(wait_for([&] { return !m.last_error().empty(); }, 30s));
  CHECK(m.last_error().find("forbidden by policy") != std::string::npos);
  CHECK(m.issued() == 0);
  m.stop(); // returns at once although the retry is a minute away
  CHECK(rec.count() == 0);
}

TEST_CASE("options from the environment") {
  ::setenv("NBM_ACME_DIRECTORY", "https://localhost:14000/dir", 1);
  ::setenv("NBM_ACME_CA_BUNDLE", "/tmp/ca.pem", 1);
  ::setenv("NBM_ACME_RENEW_BEFORE", "3600", 1);
  auto o = acme::options_from_env("/var/lib/netbird", "mgmt.example.com");
  CHECK(o.directory_url == "https://localhost:14000/dir");
  CHECK(o.ca_bundle == "/tmp/ca.pem");
  CHECK(o.renew_before == 3600s);
  CHECK(o.dir == "/var/lib/netbird/letsencrypt");
  ::setenv("NBM_ACME_RENEW_BEFORE", "soon", 1);
  CHECK_THROWS_WITH_AS(acme::options_from_env("/d", "a.b"),
                       doctest::Contains("NBM_ACME_RENEW_BEFORE"), acme::acme_error);
  ::unsetenv("NBM_ACME_DIRECTORY");
  ::unsetenv("NBM_ACME_CA_BUNDLE");
  ::unsetenv("NBM_ACME_RENEW_BEFORE");
  CHECK(acme::options_from_env("/d", "a.b").directory_url == acme::lets_encrypt_production);
}

TEST_CASE("manager: stop() ends an issuance under way at once (a CA that never answers)") {
  // A port that accepts connections (the kernel's backlog) and never answers them.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(fd, 8) == 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  temp_dir tmp;
  acme::options o;
  o.directory_url = "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/dir";
  o.dir = tmp.path / "letsencrypt";
  o.domain = "stuck.nbm.test";
  acme::serving_target t;
  t.serve = [](const std::string&, const std::string&) {};
  t.hooks.set_http01 = [](const std::string&, const std::string&) {};
  acme::manager m(o, t);
  m.start();
  pollfd p{fd, POLLIN, 0};
  REQUIRE(::poll(&p, 1, 10000) == 1); // the manager has connected and waits for the directory
  auto began = std::chrono::steady_clock::now();
  m.stop();
  CHECK(std::chrono::steady_clock::now() - began < 2s);
  CHECK(m.issued() == 0);
  ::close(fd);
}

TEST_CASE("a directory that is not ACME's: clear errors, nothing written but the directory") {
  acme::http01_server fake("127.0.0.1",
                           0); // serves whatever body under /.well-known/acme-challenge/
  temp_dir tmp;
  acme::options o;
  o.directory_url =
      "http://127.0.0.1:" + std::to_string(fake.port()) + "/.well-known/acme-challenge/dir";
  o.dir = tmp.path / "letsencrypt";
  o.domain = "x.nbm.test";
  acme::challenge_hooks hooks;
  hooks.set_http01 = [](const std::string&, const std::string&) {};
  fake.set("dir", R"({"newNonce": 5, "newAccount": "x", "newOrder": "y"})");
  CHECK_THROWS_WITH_AS(acme::obtain(o, hooks), doctest::Contains("has no newNonce"),
                       acme::acme_error);
  fake.set("dir", "[1, 2]");
  CHECK_THROWS_WITH_AS(acme::obtain(o, hooks), doctest::Contains("is not a JSON object"),
                       acme::acme_error);
  fake.set("dir", std::string(100, '{'));
  CHECK_THROWS_WITH_AS(acme::obtain(o, hooks), doctest::Contains("is not a JSON object"),
                       acme::acme_error);
  CHECK_FALSE(std::filesystem::exists(o.dir / acme::account_key_file));
  acme::challenge_hooks none;
  CHECK_THROWS_WITH_AS(acme::obtain(o, none), doctest::Contains("no way to answer a challenge"),
                       acme::acme_error);
}
