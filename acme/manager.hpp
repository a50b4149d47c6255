// Keeps one domain's certificate current for a server, as autocert's Manager does for NetBird: the
// stored certificate is served at once (if not expired), a missing or due one is obtained in the
// background while the port is already listening (TLS-ALPN-01 is answered on it), and a renewal
// runs when due; a failure is logged with the CA's reason and tried again later (1 min, doubling
// to 1 h). The certificate holder is reached through callbacks only.
#pragma once

#include "acme/acme.hpp"

#include <condition_variable>
#include <mutex>
#include <thread>

namespace nbm::acme {

struct serving_target {
  // Serve this certificate (chain PEM, key PEM) to new handshakes from now on.
  std::function<void(const std::string& chain_pem, const std::string& key_pem)> serve;
  challenge_hooks hooks; // how challenges are answered (the holder's TLS-ALPN-01 hook)
};

// options from the environment: NBM_ACME_DIRECTORY (default Let's Encrypt production),
// NBM_ACME_CA_BUNDLE (PEM file for the ACME server's TLS), NBM_ACME_RENEW_BEFORE (seconds; default
// autocert's rule), NBM_ACME_EMAIL (account contact, optional). dir = <datadir>/letsencrypt.
options options_from_env(const std::filesystem::path& datadir, const std::string& domain);

class manager {
public:
  manager(options o, serving_target target);
  ~manager(); // stops the background thread
  manager(const manager&) = delete;
  manager& operator=(const manager&) = delete;

  // Serves the stored certificate if there is one that has not expired; true if it did.
  bool serve_stored();
  // Obtains/renews in the background from now on.
  void start();
  void stop();

  std::size_t issued() const;     // certificates obtained by this manager
  std::string last_error() const; // the last failure's message (empty after a success)

private:
  void loop();
  options opts_;
  serving_target target_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::atomic<bool> cancel_{false}; // ends an issuance under way when stopping
  std::optional<certificate> current_;
  std::size_t issued_ = 0;
  std::string last_error_;
  std::thread thread_;
};

} // namespace nbm::acme
