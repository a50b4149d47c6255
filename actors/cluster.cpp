#include "actors/cluster.hpp"

#include "crypto/crypto.hpp"
#include "storage/database.hpp"
#include "storage/notify_link.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace nbm::actors {

namespace {

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Events waiting to be published; beyond this many (a long outage of the connection) new ones are
// dropped: the other replicas' serial poll finds the account writes, the store's fence the
// sessions.
constexpr std::size_t max_queued = 100000;

} // namespace

// The listener thread and what it shares with the actor.
struct cluster_link {
  cluster_config cfg;
  caf::actor owner; // the cluster actor: told what arrived and when the listener (re)connected
  int wake = -1;    // eventfd: something to publish, or stop
  std::mutex mu;
  std::vector<core::account_note> accounts; // to publish (under mu)
  std::vector<core::session_note> sessions; // to publish (under mu)
  bool stopping = false;                    // under mu
  std::atomic<bool> listening{false};
  std::atomic<std::uint64_t> sent{0}, events_sent{0}, connects{0}, dropped{0}, malformed{0};
  std::thread th;

  ~cluster_link() {
    if (wake >= 0)
      ::close(wake);
  }
  void poke() {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake, &one, sizeof one);
  }
  void drain_wake() {
    std::uint64_t v = 0;
    [[maybe_unused]] auto n = ::read(wake, &v, sizeof v);
  }
  bool stop_asked() {
    std::lock_guard<std::mutex> lk(mu);
    return stopping;
  }
  void stop() {
    if (!th.joinable())
      return;
    {
      std::lock_guard<std::mutex> lk(mu);
      stopping = true;
    }
    poke();
    if (th.joinable())
      th.join();
    owner = nullptr;
  }
  // Waits for `fd` readable (or -1: none), a wake-up, or `timeout`; true when `fd` is readable.
  bool wait(int fd, std::chrono::milliseconds timeout) {
    pollfd fds[2] = {{wake, POLLIN, 0}, {fd, POLLIN, 0}};
    const int n = ::poll(fds, fd >= 0 ? 2 : 1, static_cast<int>(timeout.count()));
    if (n <= 0)
      return false;
    if (fds[0].revents & POLLIN)
      drain_wake();
    return fd >= 0 && (fds[1].revents & (POLLIN | POLLERR | POLLHUP));
  }

  // What arrived: other replicas' messages to the actor, our own echoes skipped.
  void hand_over(std::vector<std::string> payloads) {
    for (const auto& p : payloads) {
      auto m = core::decode_cluster(p);
      if (!m) {
        ++malformed;
        continue;
      }
      if (m->replica == cfg.replica)
        continue;
      caf::anon_send(owner, note_atom::value, std::move(*m));
    }
  }

  void run() {
    storage::notify_link link(cfg.dsn);
    std::deque<std::string> unsent; // encoded, not yet published (in order)
    bool reported_down = false;
    while (!stop_asked()) {
      if (!link.is_open()) {
        try {
          link.open();
        } catch (const std::exception& e) {
          listening = false;
          if (!reported_down)
            spdlog::warn("cluster: replica {} cannot listen for the other replicas' changes, "
                         "retrying every {} ms: {}",
                         cfg.replica, cfg.retry.count(), e.what());
          reported_down = true;
          wait(-1, cfg.retry);
          continue;
        }
        const bool first = connects++ == 0;
        reported_down = false;
        listening = true;
        spdlog::info("cluster: replica {} {} on channel {}; comparing every loaded account's "
                     "serial with the store's",
                     cfg.replica, first ? "listening" : "listening again (reconnected)",
                     link.channel());
        caf::anon_send(owner, resync_atom::value);
      }
      try {
        {
          std::vector<core::account_note> acc;
          std::vector<core::session_note> ses;
          {
            std::lock_guard<std::mutex> lk(mu);
            acc.swap(accounts);
            ses.swap(sessions);
          }
          if (!acc.empty() || !ses.empty()) {
            auto ps = core::encode_cluster(cfg.replica, now_ns(), acc, ses);
            events_sent += acc.size() + ses.size();
            for (auto& p : ps)
              unsent.push_back(std::move(p));
          }
        }
        while (!unsent.empty()) {
          link.notify(unsent.front());
          ++sent;
          spdlog::debug("cluster: published a notification of {} bytes", unsent.front().size());
          unsent.pop_front();
        }
        hand_over(link.take()); // what arrived during our own statements too
        if (wait(link.socket(), cfg.idle_ping)) {
          hand_over(link.take());
        } else if (!stop_asked()) {
          bool queued = false;
          {
            std::lock_guard<std::mutex> lk(mu);
            queued = !accounts.empty() || !sessions.empty();
          }
          if (!queued) { // quiet: is the connection still there?
            link.ping();
            hand_over(link.take());
          }
        }
      } catch (const std::exception& e) {
        // What was not published stays in `unsent` (sent after the reconnect).
        listening = false;
        link.close();
        spdlog::warn("cluster: replica {} lost its channel connection, reconnecting: {}",
                     cfg.replica, e.what());
      }
    }
    listening = false;
  }
};

namespace {

using cluster_ptr = cluster_actor::stateful_pointer<cluster_state>;

void enqueue(cluster_ptr self, core::account_note* a, core::session_note* s) {
  auto& l = *self->state.link;
  {
    std::lock_guard<std::mutex> lk(l.mu);
    if (l.accounts.size() + l.sessions.size() >= max_queued) {
      if (l.dropped++ == 0)
        spdlog::warn("cluster: {} events wait to be published; dropping new ones until the "
                     "channel is back (the others' serial poll finds the changes)",
                     max_queued);
      return;
    }
    if (a)
      l.accounts.push_back(std::move(*a));
    if (s)
      l.sessions.push_back(std::move(*s));
  }
  l.poke();
}

void note_lag(cluster_state& st, std::int64_t published_ns) {
  const auto lag = std::max<std::int64_t>(0, (now_ns() - published_ns) / 1000000);
  st.rec.lag_last_ms = lag;
  st.rec.lag_max_ms = std::max(st.rec.lag_max_ms, lag);
  st.rec.lag_sum_ms += static_cast<std::uint64_t>(lag);
  std::size_t i = 0;
  while (i < std::size(cluster_lag_buckets_ms) && lag > cluster_lag_buckets_ms[i])
    ++i;
  ++st.lag_buckets[i];
}

cluster_actor::behavior_type cluster_impl(cluster_ptr self, cluster_config cfg) {
  auto& st = self->state;
  st.cfg = cfg;
  st.rec.replica = cfg.replica;
  auto l = std::make_shared<cluster_link>();
  l->cfg = std::move(cfg);
  l->owner = caf::actor_cast<caf::actor>(self);
  l->wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (l->wake < 0)
    throw std::runtime_error("cluster: eventfd failed");
  st.link = l;
  l->th = std::thread([l] { l->run(); });
  // The thread ends with the actor (it holds the actor's handle until then).
  self->attach_functor([l] { l->stop(); });
  return {
      [self](landed_atom, const session_event& ev) {
        core::session_note n{ev.account_id, ev.peer_id, ev.token, ev.connected};
        enqueue(self, nullptr, &n);
      },
      [self](publish_atom, core::account_note& note) {
        // The expiry here learns of the write at once too (settings, peers expired or deleted).
        if (self->state.cfg.expiry)
          self->send(self->state.cfg.expiry, derive_atom::value, note.account_id);
        enqueue(self, &note, nullptr);
      },
      [self](note_atom, core::cluster_message& m) {
        auto& st = self->state;
        ++st.rec.received;
        st.rec.events_received += m.accounts.size() + m.sessions.size();
        st.rec.malformed += m.malformed;
        note_lag(st, m.published_ns);
        spdlog::debug("cluster: from replica {}: {} account write(s), {} session(s), lag {} ms",
                      m.replica, m.accounts.size(), m.sessions.size(), st.rec.lag_last_ms);
        if (st.cfg.expiry) {
          std::set<std::string> derived;
          for (const auto& a : m.accounts)
            if (derived.insert(a.account_id).second)
              self->send(st.cfg.expiry, derive_atom::value, a.account_id);
          for (const auto& s : m.sessions)
            self->send(st.cfg.expiry, landed_atom::value,
                       session_event{s.account_id, s.peer_id, s.token, s.connected, ""});
        }
        if (st.dir)
          self->send(st.dir, note_atom::value, std::move(m));
      },
      [self](resync_atom) {
        auto& st = self->state;
        if (st.cfg.loader)
          self->send(st.cfg.loader, resync_atom::value);
        if (st.cfg.expiry && st.link->connects > 1) // the first derivation is the expiry's own
          self->send(st.cfg.expiry, derive_atom::value, std::string());
      },
      [self](dir_atom, peer_directory dir) { self->state.dir = std::move(dir); },
      [self](status_atom) {
        auto& st = self->state;
        auto& l = *st.link;
        st.rec.listening = l.listening;
        st.rec.sent = l.sent;
        st.rec.events_sent = l.events_sent;
        st.rec.connects = l.connects;
        st.rec.dropped = l.dropped;
        auto s = status_of(self, "cluster", st.rec.replica);
        put_record(s, st.rec);
        s.counters["malformed"] += l.malformed;
        for (std::size_t i = 0; i < std::size(cluster_lag_buckets_ms); ++i)
          s.counters["lag_le_" + std::to_string(cluster_lag_buckets_ms[i])] = st.lag_buckets[i];
        s.counters["lag_le_inf"] = st.lag_buckets.back();
        return s;
      },
  };
}

} // namespace

cluster_actor spawn_cluster(caf::actor_system& sys, cluster_config cfg) {
  return sys.spawn(cluster_impl, std::move(cfg));
}

std::string make_replica_id() {
  std::string id;
  if (const char* v = std::getenv("NBM_REPLICA_ID"); v && *v)
    id = v;
  else {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0 || !host[0])
      std::snprintf(host, sizeof host, "replica");
    id = std::string(host) + "-" + crypto::random_id().substr(0, 6);
  }
  for (auto& c : id)
    if (static_cast<unsigned char>(c) <= ' ' || c == ',' || static_cast<unsigned char>(c) >= 0x7f)
      c = '_';
  if (id.size() > 64)
    id.resize(64);
  return id;
}

} // namespace nbm::actors
