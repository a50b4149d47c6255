// TLS, the listeners and secrets, with the real binary over 127.0.0.1 (and ::1): gRPC and the
// REST API over TLS with a CA made by the test, plaintext refused on the TLS port, certificates
// that cannot be served stop the server, SIGHUP and a changed file reload the certificate while a
// Sync stream stays open, the legacy gRPC port, dual-stack, ports in use, no secret in any output.
#include "tests/e2e/harness.hpp"
#include "tests/support/test_certs.hpp"

#include <httplib.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>

using namespace nbm;
using namespace nbm::e2e;

namespace {

// One certificate authority and its leaves for the whole run (made by the openssl CLI).
struct certs {
  std::string dir = test::temp_dir() + "/tls-e2e-" + std::to_string(::getpid());
  test::test_pki pki{(std::filesystem::create_directories(dir), dir)};
  certs() {
    pki.issue("one", "first.nbm.test");
    pki.issue("two", "second.nbm.test");
    pki.issue("other", "other.nbm.test");
  }
  static certs& get() {
    static certs c;
    return c;
  }
  std::shared_ptr<grpc::ChannelCredentials> grpc_creds() const {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = pki.ca_pem();
    return grpc::SslCredentials(o);
  }
};

// Connects to `host`:`port` (numeric, v4 or v6); -1 if refused.
int connect_to(const std::string& host, int port) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_flags = AI_NUMERICHOST;
  hints.ai_socktype = SOCK_STREAM;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0)
    return -1;
  int fd = ::socket(res->ai_family, SOCK_STREAM, 0);
  if (::connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  return fd;
}

// The CN of the certificate the server presents on `port` (a fresh handshake, ALPN h2 as a gRPC
// client offers), verified against the test CA; empty if the handshake fails.
std::string served_cn(int port) {
  const int fd = connect_to("127.0.0.1", port);
  if (fd < 0)
    return "";
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_load_verify_locations(ctx, certs::get().pki.ca_file.c_str(), nullptr);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  static const unsigned char h2[] = "\x02h2";
  SSL_set_alpn_protos(ssl, h2, 3);
  std::string cn;
  if (SSL_connect(ssl) == 1) {
    if (X509* peer = SSL_get1_peer_certificate(ssl)) {
      char buf[256] = {};
      X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, buf, sizeof buf);
      cn = buf;
      X509_free(peer);
    }
  }
  ERR_clear_error();
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ::close(fd);
  return cn;
}

std::vector<std::string> tls_flags(const std::string& cert, const std::string& key) {
  return {"--cert-file", cert, "--cert-key", key};
}

// Runs `netbird-mgmt management <args>` expecting it to stop by itself; its exit status and
// everything it wrote (stdout and stderr, log on the console).
struct exited {
  int status = -1;
  std::string output;
};
exited run_until_exit(const std::vector<std::string>& args, const std::string& log,
                      std::chrono::seconds limit = 30s) {
  std::filesystem::remove(log);
  const pid_t pid = spawn_server(args, log);
  exited r;
  const auto until = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (std::chrono::steady_clock::now() < until) {
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    std::this_thread::sleep_for(20ms);
  }
  if (r.status < 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  r.output = test::slurp(log);
  return r;
}

// A listening socket holding `port` (on all addresses, as our listeners).
struct port_holder {
  int fd = -1;
  int port = 0;
  port_holder() {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd, 1) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~port_holder() { ::close(fd); }
};

bool ipv6_loopback() {
  int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0)
    return false;
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

std::string base_dir(const std::string& name) {
  auto d = test::temp_dir() + "/tls-" + name + "-" + std::to_string(::getpid()) + "-" +
           std::to_string(free_port());
  std::filesystem::create_directories(d);
  return d;
}

} // namespace

TEST_CASE("tls: gRPC and the REST API over TLS on one port; plaintext is refused") {
  auto& c = certs::get();
  server s(storage::engine::sqlite, "", true, tls_flags(c.pki.cert("one"), c.pki.key("one")),
           c.grpc_creds());
  // gRPC: a peer registers and syncs through TLS, the certificate verified against the test CA.
  const auto key = s.setup_key("--name fleet --reusable --auto-groups " + s.all_group);
  tools::peer_client a(s.target(), c.grpc_creds());
  REQUIRE(a.login(key, "alpha").ok());
  stream sa(a, "alpha");
  REQUIRE(sa.wait_maps(1, 5000ms));
  CHECK(s.peer_by_key(a.public_key_b64()).has_value());
  CHECK(served_cn(s.port) == "first.nbm.test");

  // The REST API: HTTPS with the test CA.
  httplib::SSLClient rest("127.0.0.1", s.port);
  rest.set_ca_cert_path(c.pki.ca_file.c_str());
  rest.enable_server_certificate_verification(true);
  auto res = rest.Get("/api/peers", {{"Authorization", "Token " + s.pat}});
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body.find("alpha") != std::string::npos);
  res = rest.Get("/api/peers"); // no token: NetBird's 401 body, over TLS
  REQUIRE(res);
  CHECK(res->status == 401);
  // curl offers h2 and http/1.1: the REST API answers over HTTP/1.1.
  const auto curl = run("curl -sS --cacert " + c.pki.ca_file + " -H 'Authorization: Token " +
                        s.pat + "' -o /dev/null -w '%{http_version} %{http_code}' https://" +
                        "localhost:" + std::to_string(s.port) + "/api/peers 2>&1");
  CHECK(curl == "1.1 200");

  // Plaintext on the TLS port: gRPC fails, HTTP/1.1 is told it spoke HTTP to HTTPS, nothing of
  // the API is served.
  tools::peer_client plain(s.target());
  CHECK_FALSE(plain.fetch_server_key().ok());
  httplib::Client http("127.0.0.1", s.port);
  res = http.Get("/api/peers", {{"Authorization", "Token " + s.pat}});
  REQUIRE(res);
  CHECK(res->status == 400);
  CHECK(res->body == "Client sent an HTTP request to an HTTPS server.\n");
  // A client that trusts another CA does not get through.
  {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = test::slurp(c.pki.cert("other")); // not our CA
    tools::peer_client wrong(s.target(), grpc::SslCredentials(o));
    CHECK_FALSE(wrong.fetch_server_key().ok());
  }
  // The server is still up and the stream still attached.
  CHECK(a.fetch_server_key().ok());
  CHECK_FALSE(sa.finished);
  // A second peer registers: the open stream over TLS receives it.
  tools::peer_client b(s.target(), c.grpc_creds());
  REQUIRE(b.login(key, "beta").ok());
  REQUIRE(sa.wait_maps(2, 3000ms));
  CHECK(sa.last() == std::vector<std::string>{"beta.netbird.selfhosted"});
  const auto log = test::slurp(s.dir + "/server.log");
  CHECK(log.find("TLS certificate " + c.pki.cert("one") + " (CN=first.nbm.test") !=
        std::string::npos);
  CHECK(log.find("(TLS)") != std::string::npos);
}

TEST_CASE("tls: a certificate that cannot be served stops the server with a clear error") {
  auto& c = certs::get();
  const auto dir = base_dir("bad");
  { std::ofstream(dir + "/junk.pem") << "-----BEGIN CERTIFICATE-----\nnot base64\n"; }
  const auto port = free_port();
  auto args = [&](const std::string& cert, const std::string& key) {
    std::vector<std::string> a = {"--config",
                                  test::fixture("management.json"),
                                  "--datadir",
                                  dir,
                                  "--port",
                                  std::to_string(port),
                                  "--log-file",
                                  "console",
                                  "--metrics-port",
                                  std::to_string(free_port()),
                                  "--disable-legacy-port"};
    auto t = tls_flags(cert, key);
    a.insert(a.end(), t.begin(), t.end());
    return a;
  };
  struct bad_case {
    std::string cert, key, expect;
  };
  const std::vector<bad_case> cases = {
      {dir + "/missing.pem", c.pki.key("one"),
       "cannot read the TLS certificate file " + dir + "/missing.pem: No such file or directory"},
      {dir + "/junk.pem", c.pki.key("one"),
       "the TLS certificate file " + dir + "/junk.pem holds no PEM certificate"},
      {c.pki.cert("one"), c.pki.key("two"),
       "the TLS key file " + c.pki.key("two") + " does not match the TLS certificate file " +
           c.pki.cert("one")},
  };
  for (const auto& bc : cases) {
    INFO(bc.expect);
    const auto r = run_until_exit(args(bc.cert, bc.key), dir + "/out.log");
    CHECK(r.status == 1);
    CHECK(r.output.find(bc.expect) != std::string::npos);
    CHECK(r.output.find("ready") == std::string::npos); // never served, not even in plaintext
    CHECK(connect_to("127.0.0.1", port) < 0);
  }
  // Only half of the pair in the config: refused, not served in plaintext.
  {
    const auto cfg = dir + "/half.json";
    auto json = test::slurp(test::fixture("management.json"));
    const auto http = json.find("\"HttpConfig\"");
    REQUIRE(http != std::string::npos);
    const auto brace = json.find('{', http);
    json.insert(brace + 1, "\"CertFile\": \"" + c.pki.cert("one") + "\",");
    std::ofstream(cfg) << json;
    const auto r = run_until_exit({"--config", cfg, "--datadir", dir, "--port",
                                   std::to_string(port), "--log-file", "console", "--metrics-port",
                                   std::to_string(free_port()), "--disable-legacy-port"},
                                  dir + "/out.log");
    CHECK(r.status == 1);
    CHECK(r.output.find("HttpConfig.CertKey (--cert-key) is not set") != std::string::npos);
  }
}

TEST_CASE("tls: SIGHUP and a changed file reload the certificate; an open Sync stream stays") {
  auto& c = certs::get();
  const auto live = base_dir("live");
  const auto cert = live + "/cert.pem", key = live + "/key.pem";
  std::filesystem::copy_file(c.pki.cert("one"), cert);
  std::filesystem::copy_file(c.pki.key("one"), key);
  // The file watch: a long interval first (SIGHUP is what reloads), set per start.
  ::setenv("NBM_TLS_RELOAD_INTERVAL_MS", "600000", 1);
  server s(storage::engine::sqlite, "", true, tls_flags(cert, key), c.grpc_creds());
  const auto setup = s.setup_key("--name fleet --reusable --auto-groups " + s.all_group);
  tools::peer_client a(s.target(), c.grpc_creds());
  REQUIRE(a.login(setup, "alpha").ok());
  stream sa(a, "alpha", 60000);
  REQUIRE(sa.wait_maps(1, 5000ms));
  CHECK(served_cn(s.port) == "first.nbm.test");

  auto replace = [&](const std::string& name) {
    // As a renewal writes them: a new file renamed over the old one.
    std::filesystem::copy_file(c.pki.cert(name), cert + ".new",
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::rename(cert + ".new", cert);
    std::filesystem::copy_file(c.pki.key(name), key + ".new",
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::rename(key + ".new", key);
  };
  replace("two");
  CHECK(served_cn(s.port) == "first.nbm.test"); // not before the signal
  ::kill(s.pid, SIGHUP);
  CHECK(eventually([&] { return served_cn(s.port) == "second.nbm.test"; }, 5000ms));
  // The stream opened before the reload is still attached and still receives maps.
  tools::peer_client b(s.target(), c.grpc_creds());
  REQUIRE(b.login(setup, "beta").ok());
  REQUIRE(sa.wait_maps(2, 3000ms));
  CHECK_FALSE(sa.finished);
  CHECK(s.peer_by_key(a.public_key_b64())->status.connected);

  // A broken file on SIGHUP: the certificate being served stays, the server stays up.
  { std::ofstream(cert) << "garbage\n"; }
  ::kill(s.pid, SIGHUP);
  CHECK(eventually(
      [&] {
        return test::slurp(s.dir + "/server.log").find("TLS certificate not reloaded (SIGHUP)") !=
               std::string::npos;
      },
      5000ms));
  CHECK(served_cn(s.port) == "second.nbm.test");
  CHECK(a.fetch_server_key().ok());
  CHECK_FALSE(sa.finished);
  s.stop();
  CHECK(sa.wait_end(5000ms));

  // A changed file alone (no signal) is picked up by the watch.
  replace("one");
  ::setenv("NBM_TLS_RELOAD_INTERVAL_MS", "100", 1);
  s.start();
  ::unsetenv("NBM_TLS_RELOAD_INTERVAL_MS");
  CHECK(served_cn(s.port) == "first.nbm.test");
  tools::peer_client a2(s.target(), c.grpc_creds(), "");
  REQUIRE(a2.login(setup, "gamma").ok());
  stream sg(a2, "gamma", 60000);
  REQUIRE(sg.wait_maps(1, 5000ms));
  std::this_thread::sleep_for(20ms); // a modification time distinct from the first write
  replace("two");
  CHECK(eventually([&] { return served_cn(s.port) == "second.nbm.test"; }, 5000ms));
  CHECK(test::slurp(s.dir + "/server.log").find("TLS certificate reloaded (the file changed)") !=
        std::string::npos);
  CHECK_FALSE(sg.finished);
  CHECK(a2.fetch_server_key().ok());
}

TEST_CASE("tls: the legacy gRPC port serves gRPC (over TLS too) unless --disable-legacy-port") {
  auto& c = certs::get();
  const auto dir = base_dir("legacy");
  const int port = free_port(), legacy = free_port();
  ::setenv("NBM_LEGACY_PORT", std::to_string(legacy).c_str(), 1);
  {
    const pid_t pid = launch({"--config", test::fixture("management.json"), "--datadir", dir,
                              "--port", std::to_string(port), "--log-file", "console",
                              "--metrics-port", std::to_string(free_port()), "--cert-file",
                              c.pki.cert("one"), "--cert-key", c.pki.key("one")},
                             dir + "/server.log", port, c.grpc_creds());
    tools::peer_client on_legacy("127.0.0.1:" + std::to_string(legacy), c.grpc_creds());
    CHECK(on_legacy.fetch_server_key().ok());
    CHECK(served_cn(legacy) == "first.nbm.test");
    tools::peer_client plain_legacy("127.0.0.1:" + std::to_string(legacy));
    CHECK_FALSE(plain_legacy.fetch_server_key().ok()); // TLS there too, as NetBird's
    // gRPC only, as NetBird's: no REST API on the legacy port.
    httplib::SSLClient rest("127.0.0.1", legacy);
    rest.enable_server_certificate_verification(false);
    CHECK_FALSE(rest.Get("/api/peers"));
    CHECK(test::slurp(dir + "/server.log")
              .find("running gRPC backward compatibility server on port " + std::to_string(legacy) +
                    " (TLS)") != std::string::npos);
    CHECK(terminate(pid).first);
  }
  {
    // Plaintext on another port: the legacy port too (NetBird: whenever --port is not 33073).
    const pid_t pid = launch({"--config", test::fixture("management.json"), "--datadir", dir,
                              "--port", std::to_string(port), "--log-file", "console",
                              "--metrics-port", std::to_string(free_port())},
                             dir + "/server2.log", port);
    tools::peer_client on_legacy("127.0.0.1:" + std::to_string(legacy));
    CHECK(on_legacy.fetch_server_key().ok());
    CHECK(terminate(pid).first);
  }
  {
    const pid_t pid =
        launch({"--config", test::fixture("management.json"), "--datadir", dir, "--port",
                std::to_string(port), "--log-file", "console", "--metrics-port",
                std::to_string(free_port()), "--disable-legacy-port"},
               dir + "/server3.log", port);
    CHECK(connect_to("127.0.0.1", legacy) < 0);
    CHECK(terminate(pid).first);
  }
  ::unsetenv("NBM_LEGACY_PORT");
}

TEST_CASE("listening: dual-stack main and metrics ports; a port in use stops the server") {
  auto& c = certs::get();
  const auto dir = base_dir("listen");
  const int port = free_port(), metrics = free_port();
  {
    const pid_t pid = launch({"--config", test::fixture("management.json"), "--datadir", dir,
                              "--port", std::to_string(port), "--log-file", "console",
                              "--metrics-port", std::to_string(metrics), "--disable-legacy-port",
                              "--cert-file", c.pki.cert("one"), "--cert-key", c.pki.key("one")},
                             dir + "/server.log", port, c.grpc_creds());
    if (ipv6_loopback()) {
      tools::peer_client v6("[::1]:" + std::to_string(port), c.grpc_creds());
      CHECK(v6.fetch_server_key().ok());
      httplib::SSLClient rest("::1", port);
      rest.set_ca_cert_path(c.pki.ca_file.c_str());
      auto r6 = rest.Get("/api/peers");
      REQUIRE(r6);
      CHECK(r6->status == 401);
      // The metrics port is dual-stack too (its own listener, as the main port's).
      httplib::Client m6("::1", metrics);
      auto res6 = m6.Get("/metrics");
      REQUIRE(res6);
      CHECK(res6->status == 200);
      CHECK(res6->body.find("process_open_fds ") != std::string::npos);
    } else {
      MESSAGE("no IPv6 loopback here: the IPv6 half is not checked");
    }
    // IPv4 on the same [::] socket.
    httplib::Client m("127.0.0.1", metrics);
    auto res = m.Get("/metrics");
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->get_header_value("Content-Type").rfind("text/plain; version=0.0.4", 0) == 0);
    CHECK(res->body.find("management_grpc_connected_streams_ratio ") != std::string::npos);
    CHECK(terminate(pid).first);
  }
  auto args = [&](int main_port, int metrics_port) {
    return std::vector<std::string>{"--config",
                                    test::fixture("management.json"),
                                    "--datadir",
                                    dir,
                                    "--port",
                                    std::to_string(main_port),
                                    "--log-file",
                                    "console",
                                    "--metrics-port",
                                    std::to_string(metrics_port),
                                    "--disable-legacy-port"};
  };
  {
    port_holder busy;
    const auto r = run_until_exit(args(busy.port, free_port()), dir + "/busy.log");
    CHECK(r.status == 1);
    CHECK(r.output.find("cannot listen on port " + std::to_string(busy.port) +
                        " for gRPC and the REST API (--port): address already in use") !=
          std::string::npos);
  }
  {
    port_holder busy;
    const auto r = run_until_exit(args(free_port(), busy.port), dir + "/busy.log");
    CHECK(r.status == 1);
    CHECK(r.output.find("cannot listen on port " + std::to_string(busy.port) +
                        " for the metrics (--metrics-port): address already in use") !=
          std::string::npos);
    CHECK(r.output.find("CivetServer") == std::string::npos); // no library internals
  }
  {
    port_holder busy;
    ::setenv("NBM_LEGACY_PORT", std::to_string(busy.port).c_str(), 1);
    auto a = args(free_port(), free_port());
    a.pop_back(); // the legacy port on
    const auto r = run_until_exit(a, dir + "/busy.log");
    ::unsetenv("NBM_LEGACY_PORT");
    CHECK(r.status == 1);
    CHECK(r.output.find("cannot listen on port " + std::to_string(busy.port) +
                        " for the legacy gRPC port (turned off by --disable-legacy-port): "
                        "address already in use") != std::string::npos);
  }
}

TEST_CASE("secrets: an unreachable PostgreSQL's DSN password is in no output") {
  const auto dir = base_dir("secret");
  const std::string password = "Sekr3t-pw-4711";
  // Keyword/value and URL forms, at every log level.
  const std::vector<std::string> dsns = {
      "host=127.0.0.1 port=" + std::to_string(free_port()) + " user=netbird password=" + password +
          " dbname=netbird connect_timeout=2",
      "postgres://netbird:" + password + "@127.0.0.1:" + std::to_string(free_port()) +
          "/netbird?connect_timeout=2",
      "host=127.0.0.1 port=notaport user=netbird password='" + password + "'",
  };
  for (const auto& dsn : dsns) {
    INFO(dsn.substr(0, 20));
    ::setenv("NETBIRD_STORE_ENGINE", "postgres", 1);
    ::setenv("NB_STORE_ENGINE_POSTGRES_DSN", dsn.c_str(), 1);
    const auto r = run_until_exit({"--config", test::fixture("management.json"), "--datadir", dir,
                                   "--port", std::to_string(free_port()), "--log-file", "console",
                                   "--log-level", "trace", "--metrics-port",
                                   std::to_string(free_port()), "--disable-legacy-port"},
                                  dir + "/pg.log");
    ::unsetenv("NB_STORE_ENGINE_POSTGRES_DSN");
    ::setenv("NETBIRD_STORE_ENGINE", "sqlite", 1);
    CHECK(r.status != 0);
    CHECK(r.output.find(password) == std::string::npos);
    CHECK(r.output.find("Sekr3t") == std::string::npos);
    CHECK(r.output.find("postgres") != std::string::npos); // it did say what failed
  }
}
