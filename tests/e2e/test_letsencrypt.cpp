// --letsencrypt-domain end to end: the real binary obtains its certificate from pebble (a real ACME
// CA on 127.0.0.1 that validates TLS-ALPN-01 against the server's own port, as Let's Encrypt does
// on 443), serves gRPC and the REST API with it, reuses it after a restart, renews it while
// running, and says why when the CA refuses, never falling back to plaintext.
#include "management.grpc.pb.h"
#include "tests/support/pebble.hpp"
#include "tests/support/test_db.hpp"

#include <doctest/doctest.h>
#include <grpcpp/grpcpp.h>

#include <csignal>
#include <sys/wait.h>

using namespace std::chrono_literals;
using nbm::test::free_port;
using nbm::test::pebble;
using nbm::test::pebble_options;
using nbm::test::pebble_slurp;

namespace {

const std::string domain = "mgmt.nbm.test";

// Runs a shell command; its output and exit status.
std::pair<int, std::string> sh(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(("{ " + cmd + "; } 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[512];
  while (std::fgets(buf, sizeof buf, p))
    out += buf;
  int rc = ::pclose(p);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

template <class Pred>
bool wait_for(Pred p, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!p()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(100ms);
  }
  return true;
}

struct le_server {
  const pebble& ca;
  std::string dir, root_file, log;
  int port = 0;
  pid_t pid = -1;

  le_server(const pebble& c, const std::string& d, int p) : ca(c), dir(d), port(p) {
    std::filesystem::create_directories(dir);
    root_file = dir + "/pebble-root.pem";
    std::ofstream(root_file) << ca.root_pem();
    log = dir + "/server.log";
  }
  ~le_server() { stop(); }

  void start(const std::string& name, std::vector<std::string> env = {}) {
    std::fflush(stdout);
    std::fflush(stderr);
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::setenv("NETBIRD_STORE_ENGINE", "sqlite", 1);
      ::setenv("NBM_ACME_DIRECTORY", ca.directory_url.c_str(), 1);
      ::setenv("NBM_ACME_CA_BUNDLE", ca.ca_bundle.c_str(), 1);
      ::setenv("NBM_ACME_CHALLENGE_PORT", "0",
               1); // pebble validates on the main port; 443 is not ours
      for (auto& e : env)
        ::putenv(const_cast<char*>(e.c_str()));
      std::string cfg = nbm::test::fixture("management.json"), p = std::to_string(port),
                  m = std::to_string(free_port());
      ::execl(NBM_SERVER_BIN, NBM_SERVER_BIN, "management", "--config", cfg.c_str(), "--datadir",
              dir.c_str(), "--port", p.c_str(), "--metrics-port", m.c_str(), "--log-file",
              "console", "--log-level", "debug", "--disable-legacy-port", "--letsencrypt-domain",
              name.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  void stop() {
    if (pid <= 0)
      return;
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
  }
  bool alive() const { return pid > 0 && ::waitpid(pid, nullptr, WNOHANG) == 0; }
  std::string logs() const { return pebble_slurp(log); }

  // The serial of the certificate served on the port for `name`, verified against pebble's root
  // by a real TLS client (empty if no verified handshake).
  std::string served_serial(const std::string& name = domain) const {
    auto [rc, out] =
        sh("openssl s_client -connect 127.0.0.1:" + std::to_string(port) + " -servername " + name +
           " -verify_hostname " + name + " -verify_return_error -CAfile " + root_file +
           " -alpn http/1.1 </dev/null | openssl x509 -noout -serial");
    auto pos = out.find("serial=");
    if (rc != 0 || pos == std::string::npos)
      return "";
    return out.substr(pos + 7, out.find('\n', pos) - pos - 7);
  }
  // The stored certificate's serial.
  std::string stored_serial(const std::string& name = domain) const {
    auto [rc, out] = sh("openssl x509 -noout -serial -in " + dir + "/letsencrypt/" + name);
    auto pos = out.find("serial=");
    return rc == 0 && pos != std::string::npos ? out.substr(pos + 7, out.find('\n', pos) - pos - 7)
                                               : "";
  }
  // The REST API over TLS by name, verified against pebble's root: the HTTP status.
  std::string rest_status() const {
    auto [rc, out] = sh("curl -sS -o /dev/null -w '%{http_code}' --max-time 10 --cacert " +
                        root_file + " --resolve " + domain + ":" + std::to_string(port) +
                        ":127.0.0.1 https://" + domain + ":" + std::to_string(port) + "/api/users");
    return rc == 0 ? out : "curl failed: " + out;
  }
  // gRPC GetServerKey over TLS, verified against pebble's root for the domain.
  grpc::Status grpc_server_key() const {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = pebble_slurp(root_file);
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride(domain);
    auto ch = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                        grpc::SslCredentials(o), args);
    auto stub = management::ManagementService::NewStub(ch);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    management::Empty req;
    management::ServerKeyResponse resp;
    auto s = stub->GetServerKey(&ctx, req, &resp);
    if (s.ok() && resp.key().size() != 44)
      return grpc::Status(grpc::StatusCode::INTERNAL, "bad key");
    return s;
  }
};

std::string fresh_dir(const char* what) {
  return nbm::test::temp_dir() + "/le-" + what + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(free_port());
}

} // namespace

TEST_CASE("--letsencrypt-domain: issued over TLS-ALPN-01 on the port, served, reused, renewed") {
  const int port = free_port();
  pebble_options po;
  po.tls_port = port; // pebble validates TLS-ALPN-01 on the server's own port (443 in production)
  pebble ca(po);
  le_server srv(ca, fresh_dir("issue"), port);
  srv.start(domain);

  // Listening before the certificate exists; serving it once issued.
  std::string serial;
  REQUIRE_MESSAGE(
      wait_for([&] { return !(serial = srv.served_serial()).empty() || !srv.alive(); }, 60s),
      srv.logs());
  REQUIRE_MESSAGE(srv.alive(), srv.logs());
  CHECK(serial == srv.stored_serial());
  CHECK(std::filesystem::exists(srv.dir + "/letsencrypt/acme_account+key"));
  auto st = srv.grpc_server_key();
  CHECK_MESSAGE(st.ok(), st.error_message());
  CHECK(srv.rest_status() == "401"); // the REST API answers (no token) over the issued certificate
  // Nothing in plaintext on the TLS port.
  auto [rc, plain] = sh("curl -sS -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:" +
                        std::to_string(port) + "/api/users");
  CHECK(plain.find("401") == std::string::npos);
  CHECK(plain.find("200") == std::string::npos);
  auto account_key = pebble_slurp(srv.dir + "/letsencrypt/acme_account+key");
  auto logs = srv.logs();
  CHECK(logs.find("obtained a certificate for " + domain) != std::string::npos);
  CHECK(logs.find("BEGIN") == std::string::npos); // no key or certificate material in the log

  SUBCASE("a restart serves the stored certificate at once: no new order") {
    srv.stop();
    std::ofstream(srv.log, std::ios::trunc).close();
    srv.start(domain);
    std::string again;
    REQUIRE_MESSAGE(
        wait_for([&] { return !(again = srv.served_serial()).empty() || !srv.alive(); }, 30s),
        srv.logs());
    CHECK(again == serial);
    auto st2 = srv.grpc_server_key();
    CHECK_MESSAGE(st2.ok(), st2.error_message());
    CHECK(srv.logs().find("obtained a certificate") == std::string::npos);
    CHECK(pebble_slurp(srv.dir + "/letsencrypt/acme_account+key") == account_key);
  }
  SUBCASE("due for renewal: the stored one is served, a new one replaces it while running") {
    srv.stop();
    srv.start(domain, {"NBM_ACME_RENEW_BEFORE=630720000"}); // 20 years: due at once
    std::string renewed;
    REQUIRE_MESSAGE(wait_for(
                        [&] {
                          renewed = srv.served_serial();
                          return (!renewed.empty() && renewed != serial) || !srv.alive();
                        },
                        60s),
                    srv.logs());
    CHECK(renewed == srv.stored_serial());
    CHECK(pebble_slurp(srv.dir + "/letsencrypt/acme_account+key") == account_key);
    auto st3 = srv.grpc_server_key();
    CHECK_MESSAGE(st3.ok(), st3.error_message());
  }
}

TEST_CASE(
    "--port other than the CA's: the challenge is answered on a port of its own (NetBird's 443)") {
  const int port = free_port(), challenge = free_port();
  pebble_options po;
  po.tls_port = challenge; // where the CA validates (443 for Let's Encrypt)
  pebble ca(po);
  le_server srv(ca, fresh_dir("other-port"), port);
  srv.start(domain, {"NBM_ACME_CHALLENGE_PORT=" + std::to_string(challenge)});
  std::string serial;
  REQUIRE_MESSAGE(
      wait_for([&] { return !(serial = srv.served_serial()).empty() || !srv.alive(); }, 60s),
      srv.logs());
  CHECK(serial == srv.stored_serial());
  CHECK(srv.logs().find("answering TLS-ALPN-01 challenges on port " + std::to_string(challenge)) !=
        std::string::npos);
}

TEST_CASE("--letsencrypt-domain refused by the CA: the CA's reason in the log, no plaintext") {
  const int port = free_port();
  pebble_options po;
  po.tls_port = port;
  po.blocklist = {"refused.nbm.test"};
  pebble ca(po);
  le_server srv(ca, fresh_dir("refused"), port);
  srv.start("refused.nbm.test");
  REQUIRE_MESSAGE(wait_for(
                      [&] {
                        return srv.logs().find("forbidden by policy") != std::string::npos ||
                               !srv.alive();
                      },
                      60s),
                  srv.logs());
  auto logs = srv.logs();
  CHECK(logs.find("no certificate for refused.nbm.test") != std::string::npos);
  CHECK(logs.find("rejectedIdentifier") != std::string::npos);
  CHECK(srv.alive());                                   // the server stays up and keeps trying
  CHECK(srv.served_serial("refused.nbm.test").empty()); // no certificate to offer
  auto [rc, plain] = sh("curl -sS -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:" +
                        std::to_string(port) + "/api/users");
  CHECK(plain.find("401") == std::string::npos);
  CHECK_FALSE(std::filesystem::exists(srv.dir + "/letsencrypt/refused.nbm.test"));
}

TEST_CASE("--letsencrypt-domain that is not a domain: the server does not start") {
  pebble ca(pebble_options{});
  le_server srv(ca, fresh_dir("bad"), free_port());
  srv.start("../../etc/passwd");
  int status = 0;
  REQUIRE(wait_for([&] { return ::waitpid(srv.pid, &status, WNOHANG) == srv.pid; }, 30s));
  srv.pid = -1;
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) != 0);
  CHECK(srv.logs().find("is not usable") != std::string::npos);
}
