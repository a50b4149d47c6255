#include "server/letsencrypt.hpp"

#include "acme/challenge_servers.hpp"
#include "acme/manager.hpp"
#include "server/tls_context.hpp"

#include <cstdlib>
#include <spdlog/spdlog.h>

namespace nbm::server {

namespace {

int challenge_port() {
  const char* v = std::getenv("NBM_ACME_CHALLENGE_PORT");
  if (!v || !*v)
    return 443;
  char* end = nullptr;
  long p = std::strtol(v, &end, 10);
  if (*end != '\0' || p < 0 || p > 65535)
    throw acme::acme_error("NBM_ACME_CHALLENGE_PORT must be a port number (0: none), not \"" +
                           std::string(v).substr(0, 16) + "\"");
  return static_cast<int>(p);
}

} // namespace

letsencrypt::letsencrypt(std::shared_ptr<tls_context> tls, const std::filesystem::path& datadir,
                         const std::string& domain, int main_port)
    : tls_(std::move(tls)) {
  auto opts = acme::options_from_env(datadir, domain);
  opts.domain = acme::normalize_domain(domain);
  const int extra = challenge_port();
  if (extra != 0 && extra != main_port) {
    try {
      challenge_port_ = std::make_unique<acme::tls_alpn01_server>("::", extra);
      spdlog::info("Let's Encrypt: answering TLS-ALPN-01 challenges on port {} too", extra);
    } catch (const acme::acme_error& e) {
      spdlog::warn("{}; the CA must reach the TLS-ALPN-01 challenge on port {} another way",
                   e.what(), main_port);
    }
  }
  acme::serving_target target;
  target.serve = [tls = tls_](const std::string& chain, const std::string& key) {
    tls->load_pem(chain, key);
  };
  target.hooks.set_tls_alpn01 = [this](const std::string& d, const std::string& cert,
                                       const std::string& key) {
    tls_->set_challenge_cert(d, cert, key);
    if (challenge_port_)
      challenge_port_->set(d, cert, key);
  };
  target.hooks.clear_tls_alpn01 = [this](const std::string& d) {
    tls_->clear_challenge_cert(d);
    if (challenge_port_)
      challenge_port_->clear(d);
  };
  spdlog::info("running with Let's Encrypt ({}) from {}; certificate kept in {}", opts.domain,
               opts.directory_url, opts.dir.string());
  manager_ = std::make_unique<acme::manager>(std::move(opts), std::move(target));
  if (manager_->serve_stored())
    spdlog::info("Let's Encrypt: serving the stored certificate ({})", tls_->describe());
}

letsencrypt::~letsencrypt() {
  stop();
}

void letsencrypt::start() {
  manager_->start();
}

void letsencrypt::stop() {
  if (manager_)
    manager_->stop();
}

} // namespace nbm::server
