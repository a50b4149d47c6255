// A private ACME CA for tests: pebble (Debian package `pebble`) on 127.0.0.1 with a TLS certificate
// from a CA the test makes, and pebble-challtestsrv as its DNS server answering every name with
// 127.0.0.1, so pebble validates challenges against ports on this machine. Real validation
// (PEBBLE_VA_ALWAYS_VALID is never set); PEBBLE_VA_NOSLEEP=1 and no authorization reuse, so each
// order is answered by the test's own responders.
#pragma once

#include "tests/support/free_port.hpp"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <spawn.h>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace nbm::test {

inline bool pebble_port_open(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

inline std::string pebble_sh(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(("{ " + cmd + "; } 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[512];
  while (std::fgets(buf, sizeof buf, p))
    out += buf;
  int rc = ::pclose(p);
  INFO("command: " << cmd << "\noutput: " << out);
  REQUIRE(rc == 0);
  return out;
}

inline std::string pebble_slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

struct pebble_options {
  int http_port = 0;                  // where pebble validates HTTP-01 (0: a port nobody serves)
  int tls_port = 0;                   // where pebble validates TLS-ALPN-01
  std::vector<std::string> blocklist; // names pebble refuses to issue for
  unsigned validity_seconds = 0;      // certificate lifetime (0: pebble's default, about 5 years)
};

class pebble {
public:
  explicit pebble(pebble_options o) {
    try {
      start(o);
    } catch (...) {
      stop();
      throw;
    }
  }
  ~pebble() { stop(); }
  pebble(const pebble&) = delete;
  pebble& operator=(const pebble&) = delete;

  // The root that issued pebble's certificates (fetched from its management port).
  std::string root_pem() const {
    return pebble_sh("curl -sS --fail --cacert " + ca_bundle +
                     " https://localhost:" + std::to_string(mgmt_port) + "/roots/0");
  }
  std::string log() const { return pebble_slurp(dir / "pebble.log"); }

  std::filesystem::path dir;
  std::string ca_bundle, directory_url;
  int dns_port = 0, acme_port = 0, mgmt_port = 0, http_port = 0, tls_port = 0;

private:
  void start(const pebble_options& o) {
    for (const char* bin : {"/usr/bin/pebble", "/usr/bin/pebble-challtestsrv"})
      if (::access(bin, X_OK) != 0)
        FAIL(bin << " is missing: install the test packages (scripts/install-deps.sh --test)");
    char tmpl[] = "/tmp/nbm-pebble.XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    // The CA that signs pebble's own HTTPS certificate: what a client is given as its CA bundle.
    pebble_sh(
        "cd " + dir.string() +
        " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2"
        " -subj /CN=nbm-test-acme-ca -keyout ca.key -out ca.pem"
        " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost"
        " -keyout key.pem -out req.csr"
        " && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext.cnf"
        " && openssl x509 -req -in req.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2"
        " -extfile ext.cnf -out cert.pem");
    ca_bundle = (dir / "ca.pem").string();
    dns_port = free_port();
    int dns_mgmt = free_port();
    acme_port = free_port();
    mgmt_port = free_port();
    http_port = o.http_port ? o.http_port : free_port();
    tls_port = o.tls_port ? o.tls_port : free_port();
    std::string bl;
    for (auto& b : o.blocklist)
      bl += (bl.empty() ? "\"" : ",\"") + b + "\"";
    {
      std::ofstream cfg(dir / "pebble.json");
      cfg << "{\"pebble\":{\"listenAddress\":\"127.0.0.1:" << acme_port
          << "\",\"managementListenAddress\":\"127.0.0.1:" << mgmt_port << "\",\"certificate\":\""
          << (dir / "cert.pem").string() << "\",\"privateKey\":\"" << (dir / "key.pem").string()
          << "\",\"httpPort\":" << http_port << ",\"tlsPort\":" << tls_port
          << ",\"ocspResponderURL\":\"\",\"externalAccountBindingRequired\":false,"
             "\"domainBlocklist\":["
          << bl << "]"
          << (o.validity_seconds
                  ? ",\"certificateValidityPeriod\":" + std::to_string(o.validity_seconds)
                  : "")
          << "}}\n";
    }
    dns_pid = spawn({"/usr/bin/pebble-challtestsrv", "-dns01",
                     "127.0.0.1:" + std::to_string(dns_port), "-http01", "", "-https01", "",
                     "-tlsalpn01", "", "-management", "127.0.0.1:" + std::to_string(dns_mgmt),
                     "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""},
                    {}, dir / "challtestsrv.log");
    wait_port(dns_mgmt, "pebble-challtestsrv", dir / "challtestsrv.log");
    pid = spawn({"/usr/bin/pebble", "-config", (dir / "pebble.json").string(), "-dnsserver",
                 "127.0.0.1:" + std::to_string(dns_port)},
                {"PEBBLE_VA_NOSLEEP=1", "PEBBLE_AUTHZREUSE=0"}, dir / "pebble.log");
    wait_port(acme_port, "pebble", dir / "pebble.log");
    directory_url = "https://localhost:" + std::to_string(acme_port) + "/dir";
  }

  void stop() {
    for (pid_t* p : {&pid, &dns_pid})
      if (*p > 0) {
        ::kill(*p, SIGTERM);
        ::waitpid(*p, nullptr, 0);
        *p = -1;
      }
    if (!dir.empty() && !std::getenv("NBM_KEEP_PEBBLE")) {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  }

  static pid_t spawn(const std::vector<std::string>& args,
                     const std::vector<std::string>& extra_env, const std::filesystem::path& log) {
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<std::string> env_s;
    for (char** e = environ; *e; ++e)
      env_s.emplace_back(*e);
    for (auto& e : extra_env)
      env_s.push_back(e);
    std::vector<char*> envp;
    for (auto& e : env_s)
      envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t p = 0;
    int rc = posix_spawn(&p, argv[0], &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    REQUIRE(rc == 0);
    return p;
  }

  static void wait_port(int port, const char* what, const std::filesystem::path& log) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!pebble_port_open(port)) {
      if (std::chrono::steady_clock::now() > deadline)
        FAIL(what << " did not start within 20 s:\n" << pebble_slurp(log));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  pid_t pid = -1, dns_pid = -1;
};

} // namespace nbm::test
