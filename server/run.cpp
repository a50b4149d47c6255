#include "server/run.hpp"

#include "actors/account_actor.hpp"
#include "actors/expiry_actor.hpp"
#include "actors/geo_actor.hpp"
#include "actors/login_service.hpp"
#include "actors/observer_fanout.hpp"
#include "actors/peer_actor.hpp"
#include "actors/status_writer.hpp"
#include "api/grpc/server.hpp"
#include "api/http/rest.hpp"
#include "api/metrics/metrics.hpp"
#include "geo/geo.hpp"
#include "server/front_door.hpp"
#include "storage/admin_store.hpp"
#include "storage/database.hpp"
#include "storage/replica_lock.hpp"
#include "storage/schema.hpp"
#include "storage/status_store.hpp"

#include <caf/all.hpp>
#include <soci/soci.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <optional>
#include <thread>

#include <sys/resource.h>

namespace nbm::server {

void apply_flags(const management_options& opts, config::management_config& cfg) {
  // NetBird: --datadir always wins (its default is non-empty), the TLS flags when given.
  cfg.datadir = opts.datadir;
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

int run_management(const management_options& opts, config::management_config cfg) {
  apply_flags(opts, cfg);
  for (const auto& w : cfg.warnings)
    spdlog::warn("config {}: {}", opts.config_path, w);
  // TLS (Let's Encrypt or a certificate of one's own) is not implemented yet: say so loudly rather
  // than let anyone believe the port is encrypted.
  if (cfg.http && (!cfg.http->lets_encrypt_domain.empty() || !cfg.http->cert_file.empty()))
    spdlog::warn("TLS is not implemented yet: {} ignored, gRPC and the REST API are served in "
                 "plaintext on port {}; terminate TLS in a proxy in front of it",
                 cfg.http->lets_encrypt_domain.empty() ? "CertFile/CertKey" : "LetsEncryptDomain",
                 opts.port);
  std::filesystem::create_directories(cfg.datadir);

  const auto db = store_options(cfg);
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
    if (const char* ms = std::getenv("NBM_ACCOUNT_POLL_INTERVAL_MS"))
      lc.poll_interval = std::chrono::milliseconds(std::atol(ms));
    auto loader = actors::spawn_account_loader(sys, lc);
    actors::directory_config dc;
    dc.writer = writer;
    dc.observer = observers;
    dc.loader = loader;
    dc.maps.dns_domain = opts.dns_domain;
    auto directory = actors::spawn_peer_directory(sys, dc);
    caf::anon_send(expiry, actors::dir_atom::value, directory);
    auto login = actors::spawn_login_service(sys, {db, opts.dns_domain, directory});
    // Prometheus metrics on --metrics-port, as NetBird; a port that cannot be bound costs the
    // metrics, not the server (NetBird logs it the same way).
    // The directory lists the actors it knows; the others are named here.
    api::metrics::exporter metrics(sys, {directory,
                                         {{"expiry", expiry},
                                          {"login_service", login},
                                          {"geo", observer},
                                          {"session_observer", observers}}});
    if (std::string why; !metrics.start("0.0.0.0:" + std::to_string(opts.metrics_port), why))
      spdlog::error("metrics: cannot listen on port {} ({}); serving without /metrics",
                    opts.metrics_port, why);
    else
      spdlog::info("metrics on port {} under /metrics", metrics.port());
    api::grpc_deps deps;
    deps.sys = &sys;
    deps.directory = directory;
    deps.login = login;
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
    // One listener for both, as NetBird serves them, unless --api-port names another port.
    const bool shared_port = opts.api_port == 0 || opts.api_port == opts.port;
    const int api_port = shared_port ? opts.port : opts.api_port;
    api::grpc_server grpc(std::move(deps),
                          shared_port ? std::string() : "0.0.0.0:" + std::to_string(opts.port));
    api::http::rest_deps rd{db, &sys, directory, opts.dns_domain, 4, jwt};
    api::http::rest_api rest(std::move(rd));
    // The port is served asynchronously (server/front_door): HTTP/1.1 in process, gRPC handed
    // over by file descriptor when it shares the port.
    raise_open_files_limit();
    front_door door(rest);
    if (shared_port)
      door.set_grpc([&grpc](int fd, const std::string& ip) { grpc.adopt(fd, ip); });
    const bool serving = door.start("0.0.0.0", api_port);
    if (!serving) {
      spdlog::error("cannot listen on port {} for the REST API", api_port);
      exit_code = 1;
    } else
      spdlog::info("netbird-mgmt {} ready: store {}, gRPC on port {}, REST API on port {}",
                   NBM_VERSION, engine_name, opts.port, api_port);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = 0;
    if (serving) {
      sigwait(&set, &sig);
      spdlog::info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
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
    door.stop();
    step("port closed, HTTP connections closed");
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
