#include "actors/replica_actor.hpp"

#include "storage/replica_store.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <unistd.h>

namespace nbm::actors {

replica_state::~replica_state() = default;

namespace {

using replica_ptr = replica_actor::stateful_pointer<replica_state>;

constexpr std::chrono::milliseconds look_every{1000};

std::chrono::milliseconds ms_from_env(const char* name, std::chrono::milliseconds fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v)
    return fallback;
  char* end = nullptr;
  const long long n = std::strtoll(v, &end, 10);
  if (*end != '\0' || n <= 0 || n > 24LL * 3600 * 1000)
    throw std::invalid_argument(std::string(name) + " must be a positive number of milliseconds");
  return std::chrono::milliseconds(n);
}

// One round: heartbeat (or enroll), then every replica silent past the lease is ended.
void round(replica_ptr self) {
  auto& st = self->state;
  const auto lease_ms = st.cfg.lease.count();
  try {
    if (st.store && !st.store->alive())
      st.store.reset();
    if (!st.store)
      st.store = std::make_unique<storage::replica_store>(st.cfg.db);
    const auto now = std::chrono::steady_clock::now();
    const bool beat_due = !st.enrolled || now - st.last_beat >= st.cfg.heartbeat;
    if (!beat_due) {
      // Between heartbeats only the look for dead replicas (below).
    } else if (!st.enrolled) {
      st.store->enroll({st.cfg.id, st.cfg.address, st.cfg.host, st.cfg.pid});
      st.enrolled = true;
      spdlog::info("replica {} registered ({} on {}, lease {} ms, heartbeat every {} ms)",
                   st.cfg.id, st.cfg.address, st.cfg.host, lease_ms, st.cfg.heartbeat.count());
    } else if (!st.store->heartbeat(st.cfg.id)) {
      // Another replica declared this one dead (it was paused or cut off past the lease) and ended
      // its sessions: every stream it holds is stale. They close; the peers reconnect anywhere.
      ++st.lease_lost;
      spdlog::warn("replica {}: declared dead by another replica (silent past the {} ms lease); "
                   "its sessions were ended there: closing every stream and registering again",
                   st.cfg.id, lease_ms);
      if (st.cfg.directory)
        self->send(st.cfg.directory, fenced_atom::value,
                   std::string("this replica lost its lease: reconnect"));
      st.store->enroll({st.cfg.id, st.cfg.address, st.cfg.host, st.cfg.pid});
      spdlog::info("replica {} registered again", st.cfg.id);
    }
    if (beat_due) {
      ++st.heartbeats;
      st.last_beat = now;
      if (st.outage_reported)
        spdlog::info("replica {}: heartbeats land again", st.cfg.id);
      st.outage_reported = false;
    }
    while (auto dead = st.store->sweep_one(st.cfg.id, lease_ms)) {
      ++st.declared_dead;
      st.sessions_ended += dead->ended.size();
      // A replica that shut down cleanly resigned (its heartbeat set to the epoch).
      if (dead->silent_ms > 365LL * 24 * 3600 * 1000)
        spdlog::info("replica {} ({}) shut down; sessions it left ended: {} ({} recorded)",
                     dead->id, dead->address, dead->ended.size(), dead->recorded);
      else
        spdlog::info("replica {} ({}) declared dead after {:.1f} s without a heartbeat; sessions "
                     "ended: {} ({} recorded, the others had moved on)",
                     dead->id, dead->address, static_cast<double>(dead->silent_ms) / 1000.0,
                     dead->ended.size(), dead->recorded);
      if (st.cfg.observer)
        for (auto& w : dead->ended)
          self->send(
              st.cfg.observer, landed_atom::value,
              session_event{std::move(w.account_id), std::move(w.peer_id), w.token, false, ""});
    }
    if (beat_due) {
      // One read of the whole table: this replica's peers held, the replicas alive, and what the
      // inspector shows (published for it: it never reads the store itself).
      auto rows = st.store->list();
      std::int64_t held = 0, alive = 0;
      for (const auto& r : rows) {
        if (r.id == st.cfg.id)
          held = r.peers_held;
        if (r.heartbeat_age_ms <= lease_ms)
          ++alive;
      }
      st.peers_held = held;
      st.replicas_alive = alive;
      if (st.cfg.board)
        st.cfg.board->publish(std::move(rows), lease_ms);
    }
  } catch (const std::exception& e) {
    ++st.errors;
    if (st.cfg.board)
      st.cfg.board->failed(std::string(e.what()).substr(0, 200));
    st.store.reset();
    if (!st.outage_reported)
      spdlog::warn("replica {}: heartbeat failed, retrying: {}", st.cfg.id, e.what());
    st.outage_reported = true;
  }
}

replica_actor::behavior_type replica_impl(replica_ptr self, replica_config cfg) {
  self->state.cfg = std::move(cfg);
  self->send(self, lease_atom::value);
  return {
      [self](lease_atom) {
        round(self);
        // Dead replicas are looked for at least every second (one indexed read), so one is
        // declared within the lease + 1 s of its last heartbeat; the heartbeat itself is written
        // every `heartbeat`.
        self->delayed_send(self, std::min(self->state.cfg.heartbeat, look_every),
                           lease_atom::value);
      },
      [self](status_atom) {
        auto& st = self->state;
        auto s = status_of(self, "replica", st.cfg.id);
        s.labels["replica"] = st.cfg.id;
        s.labels["address"] = st.cfg.address;
        const auto age = st.last_beat == std::chrono::steady_clock::time_point{}
                             ? -1
                             : std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now() - st.last_beat)
                                   .count();
        s.gauges["lease_ms"] = st.cfg.lease.count();
        s.gauges["heartbeat_age_ms"] = age;
        s.gauges["lease_held"] = age >= 0 && age < st.cfg.lease.count() ? 1 : 0;
        s.gauges["peers_held"] = st.peers_held;
        s.gauges["replicas_alive"] = st.replicas_alive;
        s.counters["heartbeats"] = st.heartbeats;
        s.counters["replicas_declared_dead"] = st.declared_dead;
        s.counters["sessions_ended"] = st.sessions_ended;
        s.counters["lease_lost"] = st.lease_lost;
        s.counters["errors"] = st.errors;
        return s;
      },
  };
}

} // namespace

void replica_settings_from_env(replica_config& cfg) {
  cfg.lease = ms_from_env("NBM_REPLICA_LEASE_MS", std::chrono::milliseconds(30000));
  cfg.heartbeat = ms_from_env(
      "NBM_REPLICA_HEARTBEAT_MS",
      std::max(std::chrono::milliseconds(100), std::chrono::milliseconds(cfg.lease.count() / 3)));
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0)
    host[0] = '\0';
  cfg.host = *host ? host : "unknown";
  cfg.pid = ::getpid();
  if (const char* v = std::getenv("NBM_REPLICA_ID"); v && *v) {
    cfg.id = v;
  } else {
    std::random_device rd;
    char suffix[9];
    std::snprintf(suffix, sizeof suffix, "%08x", static_cast<unsigned>(rd()));
    cfg.id = cfg.host + "-" + suffix;
  }
}

replica_actor spawn_replica_actor(caf::actor_system& sys, replica_config cfg) {
  return sys.spawn<caf::detached>(replica_impl, std::move(cfg));
}

} // namespace nbm::actors
