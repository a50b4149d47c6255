// Throwaway certificates for TLS tests, made by the openssl command line in a test's own
// directory: a CA and leaf certificates it signs (P-256 keys, valid two days). Nothing here is
// committed; every run makes its own.
#pragma once

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace nbm::test {

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

struct test_pki {
  std::string dir;
  std::string ca_file; // dir/ca.pem

  explicit test_pki(std::string d) : dir(std::move(d)), ca_file(dir + "/ca.pem") {
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout '" + dir +
       "/ca.key' -out '" + ca_file + "' -subj /CN=nbm-test-ca -days 2");
  }

  // dir/<name>.pem and dir/<name>.key: CN `cn`, for localhost, 127.0.0.1, ::1 and `extra_dns`.
  void issue(const std::string& name, const std::string& cn, const std::string& extra_dns = "") {
    const auto base = dir + "/" + name;
    {
      std::ofstream ext(base + ".ext");
      ext << "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"
          << (extra_dns.empty() ? "" : ",DNS:" + extra_dns) << "\n";
    }
    sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout '" + base +
       ".key' -out '" + base + ".csr' -subj '/CN=" + cn + "'");
    sh("openssl x509 -req -in '" + base + ".csr' -CA '" + ca_file + "' -CAkey '" + dir +
       "/ca.key' -CAcreateserial -out '" + base + ".pem' -days 2 -extfile '" + base + ".ext'");
  }

  std::string cert(const std::string& name) const { return dir + "/" + name + ".pem"; }
  std::string key(const std::string& name) const { return dir + "/" + name + ".key"; }
  std::string ca_pem() const { return slurp(ca_file); }

  static void sh(const std::string& cmd) {
    if (std::system((cmd + " >/dev/null 2>&1").c_str()) != 0)
      throw std::runtime_error("test certificate: failed: " + cmd);
  }
};

} // namespace nbm::test
