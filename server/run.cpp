#include "server/run.hpp"

#include "actors/account_actor.hpp"
#include "actors/expiry_actor.hpp"
#include "actors/geo_actor.hpp"
#include "actors/login_service.hpp"
#include "actors/observer_fanout.hpp"
#include "actors/peer_actor.hpp"
#include "actors/status_writer.hpp"
#include "actors/wire_facade.hpp"
#include "api/grpc/server.hpp"
#include "api/http/rest.hpp"
#include "api/metrics/metrics.hpp"
#include "geo/geo.hpp"
#include "server/front_door.hpp"
#include "server/inspector_listener.hpp"
#include "server/letsencrypt.hpp"
#include "server/protobuf_log.hpp"
#include "server/tls_context.hpp"
#include "storage/admin_store.hpp"
#include "storage/database.hpp"
#include "storage/replica_lock.hpp"
#include "storage/schema.hpp"
#include "storage/status_store.hpp"

#include <caf/all.hpp>
#include <soci/soci.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

namespace nbm::server {

void apply_flags(const management_options& opts, config::management_config& cfg) {
  // --datadir when given, else the config's Datadir when it names one, else the default (see
  // effective_datadir); the TLS flags when given.
  cfg.datadir = effective_datadir(opts.datadir, opts.datadir_set, cfg.datadir);
  if (!opts.letsencrypt_domain.empty()) {
    if (!cfg.http)
      cfg.http.emplace();
    cfg.http->lets_encrypt_domain = opts.letsencrypt_domain;
  }
  if (!opts.cert_file.empty() && !opts.cert_key.empty()) {
    if (!cfg.http)
      cfg.http.emplace();
    cfg.http->cert_file = opts.cert_file;
    cfg.http->cert_key = opts.cert_key;
  }
}

storage::db_options store_options(const config::management_config& cfg) {
  const auto choice = config::resolve_store(cfg);
  storage::db_options db;
  db.kind = choice.engine == "postgres" ? storage::engine::postgres : storage::engine::sqlite;
  db.target = choice.target;
  db.pool_size = db.kind == storage::engine::postgres ? 8 : 4;
  return db;
}

// NBM_EPHEMERAL_LIFETIME (a Go duration, e.g. "30s"): how long an ephemeral peer may stay
// disconnected before it is deleted; NetBird's 10 minutes when unset.
// Every peer's Sync stream and every HTTP connection is a descriptor: lift the soft limit to the
// hard one, as Go programs (NetBird's server among them) do at start.
static void raise_open_files_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
    return;
  const auto was = rl.rlim_cur;
  rl.rlim_cur = rl.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &rl) == 0)
    spdlog::debug("open files limit raised from {} to {}", was, rl.rlim_cur);
}

// The datadir exists (created if need be) and, for SQLite, takes the store: else a message that
// says what is wrong with which path, before anything else starts.
static void check_datadir(const std::string& dir, bool sqlite) {
  const auto lower = [](std::string m) {
    for (auto& c : m)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return m;
  };
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    throw std::runtime_error("cannot create the datadir " + dir + ": " + lower(ec.message()) +
                             " (choose another --datadir or fix its parent's owner and mode)");
  if (!std::filesystem::is_directory(dir, ec))
    throw std::runtime_error("the datadir " + dir + " is not a directory");
  if (!sqlite)
    return;
  // The store and its journal are created next to each other: the directory must be writable.
  const auto probe = (std::filesystem::path(dir) / ".netbird-mgmt-write-check").string();
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    throw std::runtime_error("cannot write in the datadir " + dir + ": " +
                             lower(std::strerror(errno)) +
                             " (the SQLite store store.db is kept there; fix the directory's "
                             "owner and mode or choose another --datadir)");
  ::close(fd);
  ::unlink(probe.c_str());
}

static core::unix_ns ephemeral_lifetime() {
  const char* v = std::getenv("NBM_EPHEMERAL_LIFETIME");
  if (!v || !*v)
    return core::default_ephemeral_lifetime_ns;
  const auto d = config::parse_go_duration(v);
  if (d.count() <= 0)
    throw std::invalid_argument("NBM_EPHEMERAL_LIFETIME must be a positive duration");
  return d.count();
}

// Ends the sessions the store shows connected when no other process serves it: on SQLite this
// process is alone by construction; on PostgreSQL only when no other replica holds the presence
// lock (storage/replica_lock.hpp). Returns the presence hold a PostgreSQL replica keeps for its
// life.
static std::unique_ptr<storage::replica_presence>
end_crash_leftovers(const storage::db_options& db) {
  std::unique_ptr<storage::replica_presence> presence;
  if (db.kind == storage::engine::postgres) {
    presence = std::make_unique<storage::replica_presence>(db);
    // A process killed a moment ago may still hold the lock until its database backend has seen
    // the connection close: a few tries over half a second.
    bool alone = presence->alone();
    for (int i = 0; i < 5 && !alone; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      alone = presence->alone();
    }
    if (!alone) {
      spdlog::info("other replicas serve this store: the sessions it shows connected are left to "
                   "them");
      presence->join();
      return presence;
    }
  }
  const auto began = std::chrono::steady_clock::now();
  const auto r = storage::status_store(db).end_leftover_sessions();
  spdlog::info(
      "start-up: {} leftover session(s) of a previous run ended ({} shown connected) in {} ms",
      r.ended, r.found,
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                            began)
          .count());
  if (presence)
    presence->join();
  return presence;
}

// NetBird's port of the Management gRPC service before it moved to 443; served next to a main
// port of another number unless --disable-legacy-port. NBM_LEGACY_PORT moves it (tests).
static int legacy_port() {
  if (const char* v = std::getenv("NBM_LEGACY_PORT"); v && *v) {
    const int p = std::atoi(v);
    if (p > 0 && p < 65536)
      return p;
  }
  return 33073;
}

// Why `port` cannot be listened on (dual-stack as our listeners), in the operator's words: for
// listeners whose library reports no reason of its own.
static std::string why_cannot_listen(int port) {
  int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  sockaddr_in6 a6{};
  a6.sin6_family = AF_INET6;
  a6.sin6_port = htons(static_cast<std::uint16_t>(port));
  a6.sin6_addr = in6addr_any;
  int rc = -1, err = 0;
  if (fd >= 0) {
    int off = 0, one = 1;
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    rc = ::bind(fd, reinterpret_cast<sockaddr*>(&a6), sizeof a6);
    err = errno;
  } else {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a4{};
    a4.sin_family = AF_INET;
    a4.sin_port = htons(static_cast<std::uint16_t>(port));
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    rc = fd < 0 ? -1 : ::bind(fd, reinterpret_cast<sockaddr*>(&a4), sizeof a4);
    err = errno;
  }
  if (fd >= 0)
    ::close(fd);
  if (rc == 0)
    return "it could not be opened";
  if (err == EADDRINUSE)
    return "address already in use";
  if (err == EACCES)
    return "permission denied (a port below 1024 needs CAP_NET_BIND_SERVICE)";
  return std::strerror(err);
}

// The certificate holder when TLS is asked for (NetBird's precedence: LetsEncryptDomain, then
// CertFile and CertKey), null for plaintext. Throws (the server does not start) when TLS was
// asked for and cannot be served: never plaintext instead.
static std::shared_ptr<tls_context> make_tls(const config::management_config& cfg) {
  if (!cfg.http)
    return nullptr;
  const auto& h = *cfg.http;
  // NetBird's template ships "<PASTE YOUR LET'S ENCRYPT DOMAIN HERE>": a placeholder, not a
  // request for TLS (no domain name holds '<', '>' or spaces).
  const bool le_placeholder = h.lets_encrypt_domain.find_first_of("<> \t") != std::string::npos;
  if (le_placeholder)
    spdlog::warn("HttpConfig.LetsEncryptDomain is the template's placeholder, not a domain name: "
                 "ignored");
  // Let's Encrypt: an empty holder that the ACME manager (server/letsencrypt) fills; until it
  // has a certificate, handshakes fail (never plaintext).
  if (!h.lets_encrypt_domain.empty() && !le_placeholder)
    return std::make_shared<tls_context>();
  if (h.cert_file.empty() && h.cert_key.empty())
    return nullptr;
  if (h.cert_file.empty() || h.cert_key.empty())
    throw tls_error(std::string("TLS needs both a certificate and its key: HttpConfig.") +
                    (h.cert_file.empty() ? "CertFile" : "CertKey") + " (--" +
                    (h.cert_file.empty() ? "cert-file" : "cert-key") + ") is not set");
  auto tls = std::make_shared<tls_context>(h.cert_file, h.cert_key);
  spdlog::info("TLS certificate {} ({})", h.cert_file, tls->describe());
  return tls;
}

static std::chrono::milliseconds tls_poll_interval() {
  if (const char* v = std::getenv("NBM_TLS_RELOAD_INTERVAL_MS"); v && *v && std::atol(v) > 0)
    return std::chrono::milliseconds(std::atol(v));
  return std::chrono::seconds(10);
}

// SIGHUP or a changed file: the holder reads its files again; a failure keeps the certificate
// being served.
static void reload_tls(tls_context& tls, const char* why) {
  std::string error;
  if (tls.reload(error))
    spdlog::info("TLS certificate reloaded ({}): {}", why, tls.describe());
  else
    spdlog::error("TLS certificate not reloaded ({}): {}; still serving {}", why, error,
                  tls.describe());
}

std::string shell_quoted(const std::string& arg) {
  static const std::string safe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                  "@%_+=:,./-";
  if (!arg.empty() && arg.find_first_not_of(safe) == std::string::npos)
    return arg;
  std::string out = "'";
  for (char c : arg)
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string first_account_command(const management_options& opts) {
  std::string cmd =
      shell_quoted(opts.program) + " admin --config " + shell_quoted(opts.config_path);
  if (opts.datadir_set)
    cmd += " --datadir " + shell_quoted(opts.datadir);
  const std::string domain = opts.single_account_mode_domain.empty()
                                 ? std::string("example.com")
                                 : opts.single_account_mode_domain;
  return cmd + " account create --domain " + shell_quoted(domain);
}

// Accounts in the store (-1 when it cannot be read).
static long long count_accounts(storage::database& database) {
  try {
    soci::session sql(database.pool());
    long long n = 0;
    sql << "SELECT COUNT(*) FROM accounts", soci::into(n);
    return n;
  } catch (const std::exception&) {
    return -1;
  }
}

// This replica's id for the inspector: NBM_REPLICA_ID, else host name and process id.
static std::string replica_id() {
  if (const char* id = std::getenv("NBM_REPLICA_ID"); id && *id)
    return id;
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  return std::string(host) + ":" + std::to_string(::getpid());
}

// Where `netbird-mgmt inspect` finds the endpoint (the port may have been chosen by the system).
static void write_inspector_address(const std::string& datadir, const std::string& address) {
  const auto path = std::filesystem::path(datadir) / "inspector.addr";
  std::ofstream out(path, std::ios::trunc);
  out << address << "\n";
  if (!out)
    spdlog::warn("inspector: cannot write {}", path.string());
}

int run_management(const management_options& opts, config::management_config cfg) {
  apply_flags(opts, cfg);
  route_protobuf_logs();
  for (const auto& w : cfg.warnings)
    spdlog::warn("config {}: {}", opts.config_path, w);
  // TLS before anything else: a certificate that cannot be served stops the server here.
  std::shared_ptr<tls_context> tls;
  try {
    tls = make_tls(cfg);
  } catch (const tls_error& e) {
    spdlog::error("cannot serve TLS: {}", e.what());
    throw;
  }
  // The datadir (Let's Encrypt keeps its certificates there): a clear message when it cannot be
  // created; whether SQLite can write in it is checked below.
  check_datadir(cfg.datadir, false);
  std::unique_ptr<letsencrypt> lets_encrypt;
  if (tls && cfg.http && !tls->has_certificate() && !cfg.http->lets_encrypt_domain.empty()) {
    try {
      lets_encrypt =
          std::make_unique<letsencrypt>(tls, cfg.datadir, cfg.http->lets_encrypt_domain, opts.port);
    } catch (const std::exception& e) {
      spdlog::error("cannot serve TLS: {}", e.what());
      throw;
    }
  }

  const auto db = store_options(cfg);
  check_datadir(cfg.datadir, db.kind == storage::engine::sqlite);
  const char* engine_name = storage::to_string(db.kind);
  spdlog::info("opening {} store {}", engine_name,
               db.kind == storage::engine::sqlite ? db.target
                                                  : std::string("(DSN from environment)"));
  storage::database database(db);
  storage::ensure_schema(database);
  storage::admin_store::server_key key;
  {
    soci::session sql(database.pool());
    key = storage::admin_store(sql, db.kind).server_key_pair(cfg.data_store_encryption_key);
  }

  // Before anything serves: sessions a killed process left "connected" are ended, so the
  // expiry actor (spawned below) schedules their ephemeral peers from now.
  auto presence = end_crash_leftovers(db);

  caf::actor_system_config caf_cfg;
  caf::actor_system sys{caf_cfg};
  int exit_code = 0;
  {
    auto writer = actors::spawn_status_writer(
        sys, {db, db.kind == storage::engine::postgres ? std::size_t{2} : std::size_t{1}, 1024});
    // Geolocation as NetBird: a GeoLite2-City*.mmdb in the datadir, unless NB_DISABLE_GEOLOCATION
    // is true.
    actors::session_observer observer;
    const char* no_geo = std::getenv("NB_DISABLE_GEOLOCATION");
    if (!(no_geo && std::string(no_geo) == "true")) {
      if (auto mmdb = geo::find_city_database(cfg.datadir)) {
        auto g = std::make_shared<const geo::database>(*mmdb);
        observer = actors::spawn_geo_actor(sys, db, g);
        spdlog::info("geolocation from {}", *mmdb);
      } else {
        spdlog::info("no GeoLite2-City*.mmdb in {}: peers get no location", cfg.datadir);
      }
    }
    // Login expiration, inactivity expiration and ephemeral cleanup, fed by landed sessions (after
    // the fence committed) next to geolocation.
    actors::expiry_config ec;
    ec.db = db;
    ec.ephemeral_lifetime_ns = ephemeral_lifetime();
    if (const char* ms = std::getenv("NBM_ACCOUNT_POLL_INTERVAL_MS"))
      ec.poll_interval = std::chrono::milliseconds(std::atol(ms));
    auto expiry = actors::spawn_expiry_actor(sys, ec);
    auto observers = actors::spawn_observer_fanout(sys, {observer, expiry});
    actors::loader_config lc;
    lc.db = db;
    lc.workers = actors::store_workers_from_env(); // NBM_STORE_WORKERS, default 4
    if (const char* ms = std::getenv("NBM_ACCOUNT_POLL_INTERVAL_MS"))
      lc.poll_interval = std::chrono::milliseconds(std::atol(ms));
    auto loader = actors::spawn_account_loader(sys, lc);
    // Store lookups of keys and setup keys the account actors do not hold (no directory needed:
    // the directory asks it).
    auto login = actors::spawn_login_service(sys, {db, opts.dns_domain});
    actors::directory_config dc;
    dc.login = login;
    dc.writer = writer;
    dc.observer = observers;
    dc.loader = loader;
    dc.maps.dns_domain = opts.dns_domain;
    auto directory = actors::spawn_peer_directory(sys, dc);
    caf::anon_send(expiry, actors::dir_atom::value, directory);
    // Prometheus metrics on --metrics-port, as NetBird; a port that cannot be bound stops the
    // server, as NetBird's Expose error does. IPv4 only (as NetBird's "tcp4" listener): Debian's
    // civetweb, under prometheus-cpp's Exposer, is built without IPv6.
    // The directory lists the actors it knows (login service and loader included); the others are
    // named here.
    api::metrics::exporter metrics(
        sys, {directory, {{"expiry", expiry}, {"geo", observer}, {"session_observer", observers}}});
    bool metrics_ok = true;
    if (std::string why; !metrics.start("0.0.0.0:" + std::to_string(opts.metrics_port), why)) {
      spdlog::debug("metrics: {}", why);
      spdlog::error("cannot listen on port {} for the metrics (--metrics-port): {}",
                    opts.metrics_port, why_cannot_listen(opts.metrics_port));
      metrics_ok = false;
      exit_code = 1;
    } else
      spdlog::info("metrics on port {} under /metrics", metrics.port());
    // The inspector console's endpoint (netbird-mgmt inspect): loopback unless NBM_INSPECTOR_ADDR
    // says otherwise, "off" turns it off; the token stays in the datadir.
    std::unique_ptr<inspector_listener> inspect_door;
    if (const auto where = inspector_address_from_env(); !where.empty() && metrics_ok) {
      actors::inspector_config ic;
      ic.directory = directory;
      ic.others = {{"expiry", expiry}, {"geo", observer}, {"session_observer", observers}};
      ic.replica_id = replica_id();
      auto inspector = actors::spawn_inspector(sys, ic);
      try {
        inspect_door =
            std::make_unique<inspector_listener>(sys, inspector, inspector_token(cfg.datadir));
      } catch (const std::exception& e) {
        spdlog::error("inspector: {}", e.what());
        exit_code = 1;
        metrics_ok = false;
      }
      if (inspect_door) {
        if (std::string why; !inspect_door->start(where, why)) {
          // An address the operator set must work; the default one may be taken by another
          // server on this host: then this one runs without a console.
          if (std::getenv("NBM_INSPECTOR_ADDR")) {
            spdlog::error("cannot listen on {} for the inspector (NBM_INSPECTOR_ADDR; off turns "
                          "it off): {}",
                          where, why);
            exit_code = 1;
            metrics_ok = false;
          } else {
            spdlog::warn("inspector: cannot listen on {} ({}): no console (set "
                         "NBM_INSPECTOR_ADDR)",
                         where, why);
          }
          inspect_door.reset();
        } else {
          write_inspector_address(cfg.datadir, inspect_door->bound());
          spdlog::info("inspector on {} (netbird-mgmt inspect --datadir {})", inspect_door->bound(),
                       cfg.datadir);
        }
      }
    }
    api::grpc_deps deps;
    // Every wire request waits this long at most for the actors; then it answers UNAVAILABLE (the
    // client retries) instead of hanging.
    deps.door = std::make_shared<actors::wire_facade>(sys, caf::actor_cast<caf::actor>(directory),
                                                      std::chrono::seconds(20));
    deps.server_public = key.public_key;
    deps.server_private = key.private_key;
    deps.cfg = cfg;
    deps.dns_domain = opts.dns_domain;
    // The IdP (HttpConfig): Bearer JWTs on the REST API and SSO logins of peers.
    api::http::jwt_config jwt;
    if (cfg.http) {
      jwt.issuer = cfg.http->auth_issuer;
      jwt.audience = cfg.http->auth_audience;
      jwt.keys_location = cfg.http->auth_keys_location;
      if (!cfg.http->auth_user_id_claim.empty())
        jwt.user_id_claim = cfg.http->auth_user_id_claim;
    }
    if (!jwt.keys_location.empty())
      deps.jwt = std::make_shared<api::http::jwt_verifier>(jwt);
    // One listener for both, as NetBird serves them, unless --api-port names another port. gRPC
    // never listens itself: every port is a front door (TLS, dual-stack), which hands gRPC its
    // connections.
    const bool shared_port = opts.api_port == 0 || opts.api_port == opts.port;
    const int api_port = shared_port ? opts.port : opts.api_port;
    api::grpc_server grpc(std::move(deps), std::string());
    api::http::rest_deps rd;
    rd.facade = std::make_shared<actors::admin_facade>(sys, caf::actor_cast<caf::actor>(directory),
                                                       caf::actor_cast<caf::actor>(loader));
    rd.dns_domain = opts.dns_domain;
    rd.jwt = jwt;
    api::http::rest_api rest(std::move(rd));
    raise_open_files_limit();
    const auto to_grpc = [&grpc](int fd, const std::string& ip) { grpc.adopt(fd, ip); };
    // Each listener: which port, what it serves (for the operator), how to set it up.
    struct listener {
      std::unique_ptr<front_door> door;
      int port;
      std::string what;
    };
    std::vector<listener> doors;
    {
      auto main_door = std::make_unique<front_door>(rest);
      main_door->set_grpc(to_grpc);
      if (!shared_port)
        main_door->set_grpc_only();
      doors.push_back({std::move(main_door), opts.port,
                       shared_port ? "gRPC and the REST API (--port)" : "gRPC (--port)"});
    }
    if (!shared_port)
      doors.push_back({std::make_unique<front_door>(rest), api_port, "the REST API (--api-port)"});
    // NetBird's backward-compatible gRPC port (its Start: mgmtPort != 33073 and not disabled).
    const int legacy = legacy_port();
    if (opts.port != legacy && !opts.disable_legacy_port) {
      auto d = std::make_unique<front_door>(rest);
      d->set_grpc(to_grpc);
      d->set_grpc_only();
      doors.push_back(
          {std::move(d), legacy, "the legacy gRPC port (turned off by --disable-legacy-port)"});
    }
    bool serving = metrics_ok;
    for (auto& l : doors) {
      if (!serving)
        break;
      if (tls)
        l.door->set_tls(tls);
      std::string why;
      if (!l.door->start("::", l.port, &why)) {
        spdlog::error("cannot listen on port {} for {}: {}", l.port, l.what, why);
        exit_code = 1;
        serving = false;
      }
    }
    if (serving) {
      const char* scheme = tls ? "TLS" : "plaintext";
      spdlog::info("netbird-mgmt {} ready: store {}, gRPC on port {}, REST API on port {} ({})",
                   NBM_VERSION, engine_name, opts.port, api_port, scheme);
      if (opts.port != legacy && !opts.disable_legacy_port)
        spdlog::info("running gRPC backward compatibility server on port {} ({})", legacy, scheme);
      // The port listens: the CA can reach TLS-ALPN-01 on it.
      if (lets_encrypt)
        lets_encrypt->start();
      // A newcomer's next step: the store has no account yet, say how to make one (a PAT for
      // the REST API and setup keys for peers follow from it).
      if (count_accounts(database) == 0)
        spdlog::info("no account yet: create the first one (it prints a personal access token) "
                     "with: {}",
                     first_account_command(opts));
    }

    // SIGINT/SIGTERM stop; SIGHUP (and, every NBM_TLS_RELOAD_INTERVAL_MS, a changed file)
    // reloads the TLS certificate: new handshakes get it, open connections keep theirs.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    int sig = 0;
    const auto poll = tls_poll_interval();
    while (serving) {
      timespec ts{static_cast<time_t>(poll.count() / 1000),
                  static_cast<long>((poll.count() % 1000) * 1000000)};
      sig = sigtimedwait(&set, nullptr, &ts);
      if (sig == SIGINT || sig == SIGTERM) {
        spdlog::info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
        break;
      }
      if (sig == SIGHUP) {
        if (lets_encrypt)
          spdlog::info("received SIGHUP: the Let's Encrypt certificate is renewed by itself ({})",
                       tls->describe());
        else if (tls)
          reload_tls(*tls, "SIGHUP");
        else
          spdlog::info("received SIGHUP: no TLS certificate to reload");
      } else if (tls && !lets_encrypt && tls->files_changed())
        reload_tls(*tls, "the file changed");
    }
    // Each step of the shutdown is logged with its duration: a slow stop shows where it waited.
    const auto began = std::chrono::steady_clock::now();
    const auto step = [&](const char* what) {
      spdlog::debug("shutdown: {} after {} ms", what,
                    std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - began)
                        .count());
    };
    // A stopping server expires and deletes nothing more (the next start derives it all again).
    caf::anon_send_exit(expiry, caf::exit_reason::user_shutdown);
    if (lets_encrypt)
      lets_encrypt->stop(); // an issuance under way ends at once
    for (auto& l : doors)
      l.door->stop();
    step("ports closed, HTTP connections closed");
    grpc.shutdown();
    step("gRPC server stopped");
    caf::anon_send_exit(login, caf::exit_reason::user_shutdown);
    if (observer)
      caf::anon_send_exit(observer, caf::exit_reason::user_shutdown);
    if (observers && observers != observer)
      caf::anon_send_exit(observers, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(directory, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(loader, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(writer, caf::exit_reason::user_shutdown);
    step("actors told to stop");
  }
  spdlog::debug("shutdown: actor system down");
  return exit_code;
}

} // namespace nbm::server
