#include "acme/challenge_servers.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

namespace nbm::acme {

namespace {

// Binds and listens on host:port (IPv4 or IPv6 literal); returns {fd, port}.
std::pair<int, int> listen_on(const std::string& host, int port, const char* what) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, host.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof *a4;
  } else if (::inet_pton(AF_INET6, host.c_str(), &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof *a6;
  } else {
    throw acme_error(std::string("ACME ") + what + ": \"" + host.substr(0, 64) +
                     "\" is not an IP address");
  }
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd >= 0)
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 64) != 0) {
    int e = errno;
    if (fd >= 0)
      ::close(fd);
    throw acme_error(std::string("ACME ") + what + ": cannot listen on " + host + ":" +
                     std::to_string(port) + ": " + std::strerror(e));
  }
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  int bound = ss.ss_family == AF_INET ? ntohs(a4->sin_port) : ntohs(a6->sin6_port);
  return {fd, bound};
}

// A peer that closes early makes a write raise SIGPIPE in the writing thread; blocked here, the
// write fails with EPIPE instead (OpenSSL writes with plain write()).
void block_sigpipe() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
}

// Waits for a connection or the stop signal; -1 when stopping.
int accept_or_stop(int listen_fd, int stop_fd) {
  for (;;) {
    pollfd p[2] = {{listen_fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (p[1].revents)
      return -1;
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0)
      continue;
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
  }
}

void write_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0)
      return;
    off += static_cast<std::size_t>(n);
  }
}

void stop(int stop_fd, std::thread& t, int listen_fd) {
  uint64_t one = 1;
  if (stop_fd >= 0) [[maybe_unused]]
    auto n = ::write(stop_fd, &one, sizeof one);
  if (t.joinable())
    t.join();
  if (listen_fd >= 0)
    ::close(listen_fd);
  if (stop_fd >= 0)
    ::close(stop_fd);
}

} // namespace

// --- HTTP-01 -------------------------------------------------------------------------------------

http01_server::http01_server(const std::string& host, int port) {
  std::tie(listen_fd_, port_) = listen_on(host, port, "HTTP-01 responder");
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
  thread_ = std::thread([this] {
    block_sigpipe();
    loop();
  });
}

http01_server::~http01_server() {
  stop(stop_fd_, thread_, listen_fd_);
}

void http01_server::set(const std::string& token, const std::string& key_authorization) {
  std::lock_guard lk(mu_);
  tokens_[token] = key_authorization;
}

void http01_server::clear(const std::string& token) {
  std::lock_guard lk(mu_);
  tokens_.erase(token);
}

void http01_server::add_to(challenge_hooks& hooks) {
  hooks.set_http01 = [this](const std::string& t, const std::string& k) { set(t, k); };
  hooks.clear_http01 = [this](const std::string& t) { clear(t); };
}

void http01_server::loop() {
  for (int fd; (fd = accept_or_stop(listen_fd_, stop_fd_)) >= 0;) {
    serve(fd);
    ::close(fd);
  }
}

void http01_server::serve(int fd) {
  std::string req;
  char buf[2048];
  while (req.find("\r\n\r\n") == std::string::npos && req.size() < 8192) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
      return;
    req.append(buf, static_cast<std::size_t>(n));
  }
  auto line_end = req.find("\r\n");
  std::string line = req.substr(0, line_end);
  static const std::string prefix = "GET /.well-known/acme-challenge/";
  std::string body;
  if (line.rfind(prefix, 0) == 0) {
    auto sp = line.find(' ', prefix.size());
    std::string token = line.substr(prefix.size(), sp == std::string::npos ? std::string::npos
                                                                           : sp - prefix.size());
    std::lock_guard lk(mu_);
    if (auto it = tokens_.find(token); it != tokens_.end())
      body = it->second;
  }
  if (body.empty()) {
    write_all(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return;
  }
  write_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
  ++answered_;
}

// --- TLS-ALPN-01 ---------------------------------------------------------------------------------

struct tls_alpn01_server::impl {
  struct pair {
    X509* cert = nullptr;
    EVP_PKEY* key = nullptr;
  };
  SSL_CTX* ctx = nullptr;
  std::mutex mu;
  std::map<std::string, pair> certs;

  static void drop(pair& p) {
    X509_free(p.cert);
    EVP_PKEY_free(p.key);
  }
  ~impl() {
    for (auto& [_, p] : certs)
      drop(p);
    SSL_CTX_free(ctx);
  }

  // ALPN: only acme-tls/1 is spoken here. Chosen after SNI found the challenge certificate (the
  // servername callback runs first), before the server's flight: counted here, the answer is on
  // record before the CA can have read the certificate.
  static int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen,
                         const unsigned char* in, unsigned int inlen, void* arg) {
    static const unsigned char proto[] = "acme-tls/1";
    for (unsigned int i = 0; i < inlen;) {
      unsigned int n = in[i];
      if (i + 1 + n <= inlen && n == sizeof proto - 1 && std::memcmp(in + i + 1, proto, n) == 0) {
        *out = in + i + 1;
        *outlen = static_cast<unsigned char>(n);
        ++static_cast<tls_alpn01_server*>(arg)->answered_;
        return SSL_TLSEXT_ERR_OK;
      }
      i += 1 + n;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }

  // SNI: the challenge certificate for that name, or the handshake fails.
  static int select_cert(SSL* ssl, int*, void* arg) {
    auto* self = static_cast<impl*>(arg);
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name)
      return SSL_TLSEXT_ERR_ALERT_FATAL;
    std::string n = name;
    for (char& c : n)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::lock_guard lk(self->mu);
    auto it = self->certs.find(n);
    if (it == self->certs.end())
      return SSL_TLSEXT_ERR_ALERT_FATAL;
    if (SSL_use_certificate(ssl, it->second.cert) != 1 ||
        SSL_use_PrivateKey(ssl, it->second.key) != 1)
      return SSL_TLSEXT_ERR_ALERT_FATAL;
    return SSL_TLSEXT_ERR_OK;
  }
};

tls_alpn01_server::tls_alpn01_server(const std::string& host, int port)
    : impl_(std::make_unique<impl>()) {
  impl_->ctx = SSL_CTX_new(TLS_server_method());
  if (!impl_->ctx)
    throw acme_error("ACME TLS-ALPN-01 responder: cannot create a TLS context");
  SSL_CTX_set_min_proto_version(impl_->ctx, TLS1_2_VERSION);
  SSL_CTX_set_alpn_select_cb(impl_->ctx, &impl::select_alpn, this);
  SSL_CTX_set_tlsext_servername_callback(impl_->ctx, &impl::select_cert);
  SSL_CTX_set_tlsext_servername_arg(impl_->ctx, impl_.get());
  std::tie(listen_fd_, port_) = listen_on(host, port, "TLS-ALPN-01 responder");
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
  thread_ = std::thread([this] {
    block_sigpipe();
    loop();
  });
}

tls_alpn01_server::~tls_alpn01_server() {
  stop(stop_fd_, thread_, listen_fd_);
}

void tls_alpn01_server::set(const std::string& domain, const std::string& cert_pem,
                            const std::string& key_pem) {
  BIO* cb = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  BIO* kb = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  impl::pair p;
  p.cert = cb ? PEM_read_bio_X509(cb, nullptr, nullptr, nullptr) : nullptr;
  p.key = kb ? PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(cb);
  BIO_free(kb);
  ERR_clear_error();
  if (!p.cert || !p.key) {
    impl::drop(p);
    throw acme_error("ACME TLS-ALPN-01 responder: the challenge certificate does not parse");
  }
  std::lock_guard lk(impl_->mu);
  auto& slot = impl_->certs[domain];
  impl::drop(slot);
  slot = p;
}

void tls_alpn01_server::clear(const std::string& domain) {
  std::lock_guard lk(impl_->mu);
  if (auto it = impl_->certs.find(domain); it != impl_->certs.end()) {
    impl::drop(it->second);
    impl_->certs.erase(it);
  }
}

void tls_alpn01_server::add_to(challenge_hooks& hooks) {
  hooks.set_tls_alpn01 = [this](const std::string& d, const std::string& c, const std::string& k) {
    set(d, c, k);
  };
  hooks.clear_tls_alpn01 = [this](const std::string& d) { clear(d); };
}

void tls_alpn01_server::loop() {
  for (int fd; (fd = accept_or_stop(listen_fd_, stop_fd_)) >= 0;) {
    SSL* ssl = SSL_new(impl_->ctx);
    if (ssl) {
      SSL_set_fd(ssl, fd);
      if (SSL_accept(ssl) == 1)
        SSL_shutdown(ssl);
      SSL_free(ssl);
    }
    ERR_clear_error();
    ::close(fd);
  }
}

} // namespace nbm::acme
