#include "server/run.hpp"

#include "actors/account_actor.hpp"
#include "actors/cluster.hpp"
#include "actors/directory.hpp"
#include "actors/expiry_actor.hpp"
#include "actors/geo_actor.hpp"
#include "actors/inspector.hpp"
#include "actors/login_service.hpp"
#include "actors/map_workers.hpp"
#include "actors/observer_fanout.hpp"
#include "actors/replica_actor.hpp"
#include "actors/status_writer.hpp"
#include "actors/wire_facade_make.hpp"
#include "api/grpc/server.hpp"
#include "api/http/rest.hpp"
#include "api/metrics/metrics.hpp"
#include "core/change.hpp"
#include "geo/geo.hpp"
#include "server/cli.hpp"
#include "server/front_door.hpp"
#include "server/inspector_listener.hpp"
#include "server/letsencrypt.hpp"
#include "server/protobuf_log.hpp"
#include "server/tls_context.hpp"
#include "storage/admin_store.hpp"
#include "storage/database.hpp"
#include "storage/event_store.hpp"
#include "storage/replica_lock.hpp"
#include "storage/replica_store.hpp"
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
  if (presence) {
    // Alone: no replica row or session record of a previous run means anything any more.
    storage::replica_store(db).forget_all();
    presence->join();
  }
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
  // Replica liveness (PostgreSQL): this replica's id, lease and heartbeat (NBM_REPLICA_*).
  const bool replicated = db.kind == storage::engine::postgres;
  actors::replica_config rc;
  if (replicated) {
    actors::replica_settings_from_env(rc);
    rc.id = actors::make_replica_id(); // one id for the replicas table and the cluster channel
  }

  std::string single_account_domain;
  // NetBird's single-account mode: on when a domain is set (the default; off with
  // --disable-single-account-mode) and the store holds at most one account.
  if (!opts.single_account_mode_domain.empty()) {
    const auto accounts = count_accounts(database);
    if (accounts >= 0 && accounts <= 1) {
      if (!valid_dns_domain(opts.single_account_mode_domain))
        throw std::runtime_error("invalid domain \"" + core::clip(opts.single_account_mode_domain) +
                                 "\" provided for a single account mode. Please review your "
                                 "input for --single-account-mode-domain");
      single_account_domain = opts.single_account_mode_domain;
      spdlog::info("single account mode enabled, accounts number {}", accounts);
    } else {
      spdlog::info("single account mode disabled, accounts number {}", accounts);
    }
  }

  // NetBird's activity store: events.db beside the store (or NB_ACTIVITY_EVENT_* names it), its
  // tables made before anything is recorded; NB_EVENT_ACTIVITY_LOG_ENABLED=false records nothing.
  std::optional<storage::db_options> events_db;
  {
    const char* enabled = std::getenv("NB_EVENT_ACTIVITY_LOG_ENABLED");
    events_db = storage::events_db_options(cfg.datadir);
    soci::session sql;
    storage::open_session(sql, *events_db);
    storage::event_store(sql, events_db->kind).ensure_schema();
    spdlog::info("using {} as activity event store engine", storage::to_string(events_db->kind));
    if (enabled && *enabled && std::string(enabled) != "true")
      events_db.reset();
  }

  caf::actor_system_config caf_cfg;
  caf::actor_system sys{caf_cfg};
  int exit_code = 0;
  {
    actors::status_writer_config wc{
        db, db.kind == storage::engine::postgres ? std::size_t{2} : std::size_t{1}, 1024};
    wc.replica_id = rc.id; // PostgreSQL: every landed connect is recorded as this replica's
    auto writer = actors::spawn_status_writer(sys, wc);
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
    // Replicas on one PostgreSQL tell each other what they commit (the cluster channel); the
    // accounts' serials are then polled only as a safety net. NBM_CLUSTER_NOTIFY=0 turns the
    // channel off (every change then waits for the poll); NBM_ACCOUNT_POLL_INTERVAL_MS sets the
    // poll.
    const char* notify_env = std::getenv("NBM_CLUSTER_NOTIFY");
    const bool clustered =
        db.kind == storage::engine::postgres && !(notify_env && std::string(notify_env) == "0");
    std::chrono::milliseconds poll_interval(clustered ? 30000 : 1000);
    if (const char* ms = std::getenv("NBM_ACCOUNT_POLL_INTERVAL_MS"))
      poll_interval = std::chrono::milliseconds(std::atol(ms));
    // Login expiration, inactivity expiration and ephemeral cleanup, fed by landed sessions (after
    // the fence committed) next to geolocation.
    actors::expiry_config ec;
    ec.db = db;
    ec.ephemeral_lifetime_ns = ephemeral_lifetime();
    ec.poll_interval = poll_interval;
    ec.events_db = events_db;
    ec.dns_domain = opts.dns_domain;
    auto expiry = actors::spawn_expiry_actor(sys, ec);
    actors::loader_config lc;
    lc.db = db;
    lc.workers = actors::store_workers_from_env(); // NBM_STORE_WORKERS, default 4
    lc.poll_interval = poll_interval;
    lc.single_account_domain = single_account_domain;
    lc.events_db = events_db;
    lc.events_key = cfg.data_store_encryption_key;
    lc.dns_domain = opts.dns_domain;
    auto loader = actors::spawn_account_loader(sys, lc);
    actors::cluster_actor cluster;
    if (clustered) {
      actors::cluster_config cc;
      cc.dsn = db.target;
      cc.replica = rc.id;
      cc.loader = loader;
      cc.expiry = expiry;
      spdlog::info("replica {}: committed changes and landed sessions are published to the other "
                   "replicas (PostgreSQL LISTEN/NOTIFY); the accounts' serials are polled every "
                   "{} ms as a safety net",
                   cc.replica, poll_interval.count());
      cluster = actors::spawn_cluster(sys, std::move(cc));
    }
    auto observers =
        actors::spawn_observer_fanout(sys, {observer, expiry, actors::session_observer{cluster}});
    // Store lookups of keys and setup keys the account actors do not hold (no directory needed:
    // the directory asks it).
    auto login = actors::spawn_login_service(sys, {db, opts.dns_domain});
    // Large fan-outs' maps are computed by threads of their own, off CAF's scheduler threads
    // (NBM_MAP_WORKERS; 0: on the account actors).
    std::shared_ptr<actors::map_workers> mappers;
    if (const auto n = actors::map_workers_from_env(); n > 0) {
      mappers = std::make_shared<actors::map_workers>(n, actors::map_inline_ns_from_env());
      spdlog::debug("{} map worker thread(s); batches under {} us are computed on the actors", n,
                    mappers->inline_ns() / 1000);
    }
    actors::directory_config dc;
    dc.mappers = mappers;
    dc.login = login;
    dc.writer = writer;
    dc.observer = observers;
    dc.loader = loader;
    dc.maps.dns_domain = opts.dns_domain;
    dc.cluster = cluster;
    auto directory = actors::spawn_peer_directory(sys, dc);
    caf::anon_send(expiry, actors::dir_atom::value, directory);
    if (cluster)
      caf::anon_send(cluster, actors::dir_atom::value, directory);
    actors::replica_actor replica;
    std::shared_ptr<actors::replica_board> replica_board;
    if (replicated) {
      // A copy holds the handles: none may outlive the actor system (rc does).
      replica_board = std::make_shared<actors::replica_board>();
      auto with_actors = rc;
      with_actors.board = replica_board;
      with_actors.db = db;
      with_actors.address = rc.host + ":" + std::to_string(opts.port);
      with_actors.directory = directory;
      with_actors.observer = observers;
      replica = actors::spawn_replica_actor(sys, std::move(with_actors));
    }
    // Prometheus metrics on --metrics-port under /metrics, as NetBird; a port that cannot be
    // bound stops the server, as NetBird's Expose error does. A front door of its own (dual-stack,
    // the REST port's deadlines and caps) serving one page: the exporter's scrape.
    // The directory lists the actors it knows (login service and loader included); the others are
    // named here.
    api::metrics::exporter metrics(sys, {directory,
                                         {{"expiry", expiry},
                                          {"geo", observer},
                                          {"session_observer", observers},
                                          {"cluster", cluster},
                                          {"replica", replica}}});
    auto metrics_opts = front_door_options::from_env();
    metrics_opts.io_threads = 1; // a scraper or two: one io thread, two threads to render
    metrics_opts.workers = 2;
    metrics_opts.queue_limit = 64;
    front_door metrics_door(page{"/metrics", api::metrics::exporter::content_type,
                                 [&metrics] { return metrics.render(); }},
                            metrics_opts);
    bool metrics_ok = true;
    if (std::string why; !metrics_door.start("::", opts.metrics_port, &why)) {
      spdlog::error("cannot listen on port {} for the metrics (--metrics-port): {}",
                    opts.metrics_port, why);
      metrics_ok = false;
      exit_code = 1;
    } else
      spdlog::info("metrics on port {} under /metrics", metrics_door.port());
    // The inspector console's endpoint (netbird-mgmt inspect): --inspector-addr, else
    // NBM_INSPECTOR_ADDR, else the config's InspectorAddress, else loopback 127.0.0.1:33079; "off"
    // turns it off. The token stays in the datadir.
    std::unique_ptr<inspector_listener> inspect_door;
    const char* inspector_env = std::getenv("NBM_INSPECTOR_ADDR");
    const auto where = resolve_inspector_address(
        opts.inspector_addr,
        inspector_env ? std::optional<std::string>(inspector_env) : std::nullopt,
        cfg.inspector_address);
    const auto addr_file = std::filesystem::path(cfg.datadir) / "inspector.addr";
    if (where.address.empty()) {
      spdlog::info("inspector off ({})", where.source);
      std::error_code ec;
      std::filesystem::remove(addr_file, ec); // no console finds a listener that is not there
    } else if (metrics_ok) {
      actors::inspector_config ic;
      ic.directory = directory;
      ic.others = {{"expiry", expiry}, {"geo", observer}, {"session_observer", observers}};
      ic.replica_id = replicated ? rc.id : replica_id();
      if (replica_board) {
        // The replica table as the replica actor read it at its last heartbeat (never a store
        // read here: the inspector must not block).
        ic.replicas = [board = replica_board, self = rc.id]() {
          actors::replica_table t;
          const auto snap = board->get();
          if (!snap.read)
            return t;
          const auto since = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now() - snap.read_at)
                                 .count();
          t.read_age_ms = since;
          t.error = snap.error;
          for (const auto& row : snap.rows) {
            actors::replica_view v;
            v.id = row.id;
            v.address = row.address;
            v.host = row.host;
            v.pid = row.pid;
            v.started_at_ms = row.started_at_ms;
            v.heartbeat_at_ms = row.heartbeat_at_ms;
            v.heartbeat_age_ms = row.heartbeat_age_ms + since;
            v.lease_ms = snap.lease_ms;
            v.alive = v.heartbeat_age_ms <= snap.lease_ms;
            v.sessions_recorded = row.sessions_recorded;
            v.peers_held = row.peers_held;
            v.self = row.id == self;
            t.replicas.push_back(std::move(v));
          }
          return t;
        };
      }
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
        if (std::string why; !inspect_door->start(where.address, why)) {
          // An address the operator set must work; the default one may be taken by another
          // server on this host: then this one runs without a console.
          std::error_code ec;
          std::filesystem::remove(addr_file, ec);
          if (where.configured()) {
            spdlog::error("cannot listen on {} for the inspector ({}; \"off\" turns it off): {}",
                          where.address.substr(0, 64), where.source, why);
            exit_code = 1;
            metrics_ok = false;
          } else {
            spdlog::warn("inspector: cannot listen on {} ({}): no console (set --inspector-addr, "
                         "NBM_INSPECTOR_ADDR or InspectorAddress in the config)",
                         where.address, why);
          }
          inspect_door.reset();
        } else {
          write_inspector_address(cfg.datadir, inspect_door->bound());
          spdlog::info("inspector on {} ({}; netbird-mgmt inspect --datadir {})",
                       inspect_door->bound(), where.source, cfg.datadir);
        }
      }
    }
    api::grpc_deps deps;
    // Every wire request waits this long at most for the actors; then it answers UNAVAILABLE (the
    // client retries) instead of hanging.
    deps.door = actors::make_wire_facade(sys, caf::actor_cast<caf::actor>(directory),
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
    api::grpc_server grpc(std::move(deps));
    api::http::rest_deps rd;
    rd.facade = std::make_shared<actors::admin_facade>(sys, caf::actor_cast<caf::actor>(directory),
                                                       caf::actor_cast<caf::actor>(loader));
    rd.dns_domain = opts.dns_domain;
    rd.jwt = jwt;
    rd.datadir = cfg.datadir;
    api::http::rest_api rest(std::move(rd));
    raise_open_files_limit();
    const auto to_grpc = [&grpc](int fd, const std::string& ip, const std::string& remote) {
      grpc.adopt(fd, ip, remote);
    };
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
    if (replica)
      caf::anon_send_exit(replica, caf::exit_reason::user_shutdown);
    if (lets_encrypt)
      lets_encrypt->stop(); // an issuance under way ends at once
    for (auto& l : doors)
      l.door->stop();
    metrics_door.stop();
    step("ports closed, HTTP connections closed");
    grpc.shutdown();
    step("gRPC server stopped");
    caf::anon_send_exit(login, caf::exit_reason::user_shutdown);
    if (observer)
      caf::anon_send_exit(observer, caf::exit_reason::user_shutdown);
    if (observers && observers != observer)
      caf::anon_send_exit(observers, caf::exit_reason::user_shutdown);
    if (cluster)
      caf::anon_send_exit(cluster, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(directory, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(loader, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(writer, caf::exit_reason::user_shutdown);
    step("actors told to stop");
    // No map is computed any more: queued batches are dropped (with the actor handles they hold,
    // while the actor system is up), the threads joined; an account actor still finishing hands
    // its batches to nobody.
    if (mappers)
      mappers->stop();
    step("map workers stopped");
    if (replicated) {
      // Resigned: a survivor ends at once whatever session of this replica is still recorded
      // (fenced: the ones whose disconnect landed are gone already).
      try {
        storage::replica_store(db).resign(rc.id);
        spdlog::info("replica {} resigned", rc.id);
      } catch (const std::exception& e) {
        spdlog::warn("replica {}: could not resign ({}); the others end its sessions after the "
                     "lease",
                     rc.id, e.what());
      }
    }
  }
  spdlog::debug("shutdown: actor system down");
  return exit_code;
}

} // namespace nbm::server
