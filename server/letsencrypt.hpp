// --letsencrypt-domain: keeps the TLS holder's certificate current with ACME, as NetBird's autocert
// Manager does. The holder answers TLS-ALPN-01 on the main port; when that is not 443 (where Let's
// Encrypt validates), a challenge-only TLS listener is opened on 443 as NetBird opens autocert's
// listener there (NBM_ACME_CHALLENGE_PORT moves it, 0 turns it off).
#pragma once

#include <filesystem>
#include <memory>
#include <string>

namespace nbm::acme {
class manager;
class tls_alpn01_server;
} // namespace nbm::acme

namespace nbm::server {

class tls_context;

class letsencrypt {
public:
  // Serves a stored certificate into `tls` at once if there is one. Throws acme::acme_error (the
  // server does not start) on a domain or environment that cannot work.
  letsencrypt(std::shared_ptr<tls_context> tls, const std::filesystem::path& datadir,
              const std::string& domain, int main_port);
  ~letsencrypt();
  letsencrypt(const letsencrypt&) = delete;
  letsencrypt& operator=(const letsencrypt&) = delete;

  // Obtains / renews in the background; call once the ports listen.
  void start();
  void stop();

private:
  std::shared_ptr<tls_context> tls_;
  std::unique_ptr<acme::tls_alpn01_server> challenge_port_;
  std::unique_ptr<acme::manager> manager_;
};

} // namespace nbm::server
