#include "actors/expiry_actor.hpp"

#include "core/activity.hpp"
#include "storage/account_store.hpp"
#include "storage/event_store.hpp"
#include "storage/lifecycle_store.hpp"

#include <caf/all.hpp>
#include <soci/soci.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

namespace nbm::actors {

namespace {

using core::lifecycle_rule;
using core::unix_ns;

core::unix_ns system_now() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The longest a deadline timer waits: the wall clock may be set meanwhile.
constexpr unix_ns max_timer_ns = 60LL * 1000 * 1000 * 1000;

} // namespace

core::unix_ns expiry_state::now() const {
  return cfg.clock ? cfg.clock() : system_now();
}

namespace {

using expiry_ptr = expiry_actor::stateful_pointer<expiry_state>;

// ---- the store work, as jobs on its own store worker -------------------------------------------

// Every account's serial and every candidate: what start-up and the periodic sweep derive from.
struct derive_all_job : store_job {
  std::vector<std::pair<std::string, std::uint64_t>> serials;
  std::vector<core::lifecycle_facts> candidates;
  std::string what() const override { return "expiry: deriving every schedule"; }
  void run(soci::session& sql, storage::engine kind) override {
    storage::lifecycle_store store(sql, kind);
    serials = store.account_serials(); // first: a change after this read is seen next poll
    candidates = store.candidates();
  }
};

// One account's settings and candidates (none: the account is gone).
struct derive_account_job : store_job {
  std::string account_id;
  std::optional<storage::account_lifecycle> out;
  std::string what() const override { return "expiry: deriving account " + account_id; }
  void run(soci::session& sql, storage::engine kind) override {
    out = storage::lifecycle_store(sql, kind).account(account_id);
  }
};

// The accounts' serials, and the accounts whose serial moved since `known` read again.
struct poll_job : store_job {
  std::unordered_map<std::string, std::uint64_t> known;
  std::vector<std::pair<std::string, std::uint64_t>> serials;
  std::vector<std::pair<std::string, std::optional<storage::account_lifecycle>>> derived;
  std::string what() const override { return "expiry: polling the accounts' serials"; }
  void run(soci::session& sql, storage::engine kind) override {
    storage::lifecycle_store store(sql, kind);
    serials = store.account_serials();
    derived.clear();
    for (const auto& [id, serial] : serials) {
      auto it = known.find(id);
      if (it == known.end() || it->second != serial)
        derived.emplace_back(id, store.account(id));
    }
  }
};

// Every due deadline decided on the row as stored now, and what the rules say written through the
// store's fence. Items are done in order; a run again after a dropped session (or a deadlock
// PostgreSQL rolled back) goes on with the first item not done.
struct due_job : store_job {
  enum class result { gone, not_due, refused, expired, deleted };
  struct outcome {
    result r = result::gone;
    std::optional<core::lifecycle_facts> facts; // the row as decided on (refused: as it is now)
    std::optional<core::peer> seen;             // for the activity log, read before the write
    std::uint64_t serial = 0;                   // expired, deleted: the serial the write left
  };
  std::vector<core::expiry_book::due_item> items;
  std::vector<outcome> outcomes; // one per item done
  unix_ns now = 0, lifetime = 0, floor = 0;
  bool read_seen = false; // the activity log is kept: read the peer before it changes

  std::string what() const override {
    return "expiry: " + std::to_string(items.size() - outcomes.size()) + " due deadline(s)";
  }
  void run(soci::session& sql, storage::engine kind) override {
    storage::lifecycle_store store(sql, kind);
    core::expiry_book rules(lifetime);
    rules.ephemeral_not_before(floor);
    while (outcomes.size() < items.size())
      outcomes.push_back(decide(sql, kind, store, rules, items[outcomes.size()]));
  }
  outcome decide(soci::session& sql, storage::engine kind, storage::lifecycle_store& store,
                 const core::expiry_book& rules, const core::expiry_book::due_item& item) const {
    outcome o;
    auto f = store.peer(item.account_id, item.peer_id);
    if (!f) // deleted meanwhile
      return o;
    const auto at = rules.due(*f, item.rule);
    if (!at || *at > now) { // reconnected, logged in again, setting changed: not (yet) due
      o.r = result::not_due;
      o.facts = std::move(f);
      return o;
    }
    const bool ephemeral = item.rule == lifecycle_rule::ephemeral;
    // What the event tells of the peer (NetBird's Peer.EventMeta), read before it changes.
    if (read_seen)
      o.seen = storage::account_store(sql, kind).peer_by_id(item.account_id, item.peer_id);
    const bool landed = ephemeral ? store.delete_ephemeral(*f, &o.serial)
                                  : store.mark_login_expired(*f, item.rule, &o.serial);
    if (!landed) { // the row changed between our read and the write (another replica?)
      o.r = result::refused;
      o.facts = store.peer(item.account_id, item.peer_id);
      return o;
    }
    o.r = ephemeral ? result::deleted : result::expired;
    o.facts = std::move(f);
    return o;
  }
};

// The activity log's appends, on the events database's own worker.
struct append_events_job : store_job {
  std::vector<core::activity::event> events;
  std::string what() const override { return "expiry: recording activity events"; }
  void run(soci::session& sql, storage::engine kind) override {
    storage::event_store(sql, kind).append(events);
  }
};

// The activity log: a failure is logged, never retried (the expiration itself landed).
void record(expiry_ptr self, std::vector<core::activity::event> evs) {
  auto& st = self->state;
  if (!st.events || evs.empty())
    return;
  auto job = std::make_shared<append_events_job>();
  job->events = std::move(evs);
  self->request(*st.events, caf::infinite, run_atom::value, store_job_ptr(job))
      .then(
          [job](const store_job_ptr&) {
            if (job->failure != store_failure::none)
              spdlog::error("activity log: {} events not recorded: {}", job->events.size(),
                            job->error);
          },
          [job](caf::error& err) {
            spdlog::error("activity log: {} events not recorded: {}", job->events.size(),
                          caf::to_string(err));
          });
}

// Runs `job` on the store worker and hands it to `done` once it is done (failed or not), holding
// every other message back meanwhile (await): the book changes in mailbox order, as it did when
// this actor ran its SQL itself.
template <class Job, class Done>
void run_job(expiry_ptr self, std::shared_ptr<Job> job, Done done) {
  self->request(self->state.worker, caf::infinite, run_atom::value, store_job_ptr(job))
      .await([job, done](const store_job_ptr&) mutable { done(*job); },
             [job, done](caf::error& err) mutable {
               job->failure = store_failure::failed;
               job->error = caf::to_string(err);
               done(*job);
             });
}

// A failed job: counted (the worker logged the database's words).
bool failed(expiry_state& st, const store_job& job) {
  if (job.failure == store_failure::none)
    return false;
  ++st.rec.errors;
  spdlog::warn("{} failed; tried again later", job.what());
  return true;
}

// One pending timer, for the earliest deadline (an earlier deadline arms another; the later
// timer then finds nothing due and arms nothing new).
void arm(expiry_ptr self) {
  auto& st = self->state;
  if (!st.cfg.timers)
    return;
  auto next = st.book.next();
  if (!next || (st.armed && *next >= st.armed_at))
    return;
  const unix_ns delay = std::clamp<unix_ns>(*next - st.now(), 0, max_timer_ns);
  st.armed = true;
  st.armed_at = *next;
  self->delayed_send(self, std::chrono::nanoseconds(delay), tick_atom::value, ++st.gen);
}

void update_record(expiry_state& st) {
  st.rec.peers = st.book.peers();
  st.rec.scheduled = st.book.scheduled();
  st.rec.next_ns = st.book.next().value_or(0);
}

void derive_from(expiry_state& st, const std::string& account_id,
                 const std::optional<storage::account_lifecycle>& a) {
  if (!a)
    st.book.forget_account(account_id);
  else
    st.book.derive_account(account_id, a->settings, a->peers);
  ++st.rec.derivations;
}

// Derives one account's schedule from the store (a missing account is forgotten).
void derive_account(expiry_ptr self, const std::string& account_id) {
  auto job = std::make_shared<derive_account_job>();
  job->account_id = account_id;
  run_job(self, job, [self](derive_account_job& j) {
    if (!failed(self->state, j))
      derive_from(self->state, j.account_id, j.out);
    arm(self);
  });
}

// Derives every schedule from the store: what start-up and the periodic sweep do.
void derive_all(expiry_ptr self, bool at_start = false) {
  run_job(self, std::make_shared<derive_all_job>(), [self, at_start](derive_all_job& j) {
    auto& st = self->state;
    if (!failed(st, j)) {
      std::map<std::string, std::vector<core::lifecycle_facts>> by_account;
      for (auto& f : j.candidates)
        by_account[f.account_id].push_back(std::move(f));
      for (const auto& id : st.book.account_ids())
        if (!by_account.count(id))
          st.book.forget_account(id);
      for (const auto& [id, peers] : by_account) {
        st.book.derive_account(id, peers.front().settings, peers);
        ++st.rec.derivations;
      }
      st.serials.clear();
      for (const auto& [id, serial] : j.serials)
        st.serials[id] = serial;
      st.last_sweep = st.now();
      if (at_start)
        spdlog::info("expiry: {} peer(s) of {} account(s) scheduled ({} deadlines)",
                     st.book.peers(), st.book.accounts(), st.book.scheduled());
    }
    arm(self);
  });
}

// Accounts whose serial moved since their derivation are derived again.
void poll_serials(expiry_ptr self) {
  auto job = std::make_shared<poll_job>();
  job->known = self->state.serials;
  run_job(self, job, [self](poll_job& j) {
    auto& st = self->state;
    if (!failed(st, j)) {
      for (const auto& [id, a] : j.derived)
        derive_from(st, id, a);
      std::set<std::string> present;
      for (const auto& [id, serial] : j.serials) {
        present.insert(id);
        st.serials[id] = serial;
      }
      for (auto it = st.serials.begin(); it != st.serials.end();) {
        if (!present.count(it->first)) {
          st.book.forget_account(it->first);
          it = st.serials.erase(it);
        } else {
          ++it;
        }
      }
    }
    arm(self);
  });
}

// What landed, for the actors that own the account and the peer.
struct effects {
  struct landed {
    std::string account_id, peer_id;
    std::uint64_t serial = 0; // the account's serial as the write left it
  };
  std::vector<landed> expired, deletions;
};

void tell(expiry_ptr self, effects fx) {
  auto dir = self->state.cfg.directory;
  if (!dir)
    return;
  // A directory that cannot answer (shutting down) costs the effects, never this actor.
  auto ignore = [](caf::error&) {};
  for (auto& e : fx.expired)
    self->request(dir, caf::infinite, find_account_atom::value, e.account_id)
        .then(
            [self, e](account_actor a) {
              // The account actor marks the peer in memory: its stream ends, the others' maps
              // show it offline, the other replicas read it again.
              if (a)
                self->send(a, expired_atom::value, e.peer_id, e.serial);
            },
            ignore);
  for (auto& d : fx.deletions) {
    self->request(dir, caf::infinite, find_peer_atom::value, d.account_id, d.peer_id)
        .then(
            [self](peer_actor p) {
              if (p)
                self->send(p, close_atom::value, std::string("peer deleted"));
            },
            ignore);
    self->request(dir, caf::infinite, find_account_atom::value, d.account_id)
        .then(
            [self, d](account_actor a) {
              if (a)
                self->send(a, deleted_atom::value, d.peer_id, d.serial);
            },
            ignore);
  }
}

// Decides every due deadline on the row as stored now (on the store worker), writes what the
// rules say through the store's fence, then tells the account and peer actors what landed.
void run_due(expiry_ptr self) {
  auto& st = self->state;
  auto job = std::make_shared<due_job>();
  job->now = st.now();
  job->items = st.book.take_due(job->now);
  if (job->items.empty()) {
    arm(self);
    return;
  }
  job->lifetime = st.book.ephemeral_lifetime();
  job->floor = st.ephemeral_floor;
  job->read_seen = st.events.has_value();
  run_job(self, job, [self](due_job& j) {
    auto& st = self->state;
    effects fx;
    std::vector<core::activity::event> evs;
    for (std::size_t i = 0; i < j.outcomes.size(); ++i) {
      const auto& item = j.items[i];
      auto& o = j.outcomes[i];
      switch (o.r) {
      case due_job::result::gone:
        st.book.forget(item.peer_id);
        break;
      case due_job::result::not_due:
        st.book.upsert(*o.facts);
        break;
      case due_job::result::refused:
        ++st.rec.refused;
        if (o.facts)
          st.book.upsert(*o.facts);
        else
          st.book.forget(item.peer_id);
        break;
      case due_job::result::deleted: {
        ++st.rec.deleted;
        spdlog::info("ephemeral peer {} of account {} deleted: disconnected longer than {} s",
                     item.peer_id, item.account_id, st.book.ephemeral_lifetime() / 1000000000);
        st.book.forget(item.peer_id);
        fx.deletions.push_back({item.account_id, item.peer_id, o.serial});
        if (o.seen) {
          core::activity::event e;
          e.activity = core::activity::peer_removed_by_user;
          e.initiator_id = core::activity::system_initiator;
          e.target_id = o.seen->id;
          e.account_id = item.account_id;
          e.m = core::activity::peer_event_meta(*o.seen, st.cfg.dns_domain);
          evs.push_back(std::move(e));
        }
        break;
      }
      case due_job::result::expired: {
        ++st.rec.expired;
        const char* reason =
            item.rule == lifecycle_rule::login ? "session expiration" : "inactivity timeout";
        spdlog::info("peer {} of account {}: login expired ({})", item.peer_id, item.account_id,
                     reason);
        if (o.seen) { // NetBird's expireAndUpdatePeers
          core::activity::event e;
          e.activity = core::activity::peer_login_expired;
          e.initiator_id = o.seen->user_id;
          e.target_id = o.seen->id;
          e.account_id = item.account_id;
          e.m = core::activity::peer_event_meta(*o.seen, st.cfg.dns_domain);
          e.m.emplace_back("reason", std::string(reason));
          evs.push_back(std::move(e));
        }
        auto f = std::move(*o.facts);
        f.login_expired = true;
        f.connected = false;
        st.book.upsert(f);
        fx.expired.push_back({item.account_id, item.peer_id, o.serial});
        break;
      }
      }
    }
    if (j.failure != store_failure::none) {
      // The items not done are tried again a little later (the worker logged why).
      ++st.rec.errors;
      const auto retry_at =
          j.now +
          std::chrono::duration_cast<std::chrono::nanoseconds>(st.cfg.retry_interval).count();
      for (std::size_t i = j.outcomes.size(); i < j.items.size(); ++i) {
        spdlog::warn("{} of peer {} failed, retrying", core::to_string(j.items[i].rule),
                     j.items[i].peer_id);
        st.book.set_deadline(j.items[i].peer_id, j.items[i].rule, retry_at);
      }
    }
    record(self, std::move(evs));
    tell(self, std::move(fx));
    arm(self);
  });
}

expiry_actor::behavior_type expiry_impl(expiry_ptr self, expiry_config cfg) {
  auto& st = self->state;
  st.book = core::expiry_book(cfg.ephemeral_lifetime_ns);
  st.cfg = std::move(cfg);
  st.worker = spawn_store_worker(self->system(), st.cfg.db, st.cfg.detached, "expiry");
  self->link_to(st.worker); // the workers live and die with it
  if (st.cfg.events_db) {
    st.events =
        spawn_store_worker(self->system(), *st.cfg.events_db, st.cfg.detached, "expiry_events");
    self->link_to(*st.events);
  }
  // NetBird's loadEphemeralPeers: every ephemeral peer gets the whole lifetime from start-up (a
  // peer that could not reconnect while no server ran is not deleted on sight).
  st.ephemeral_floor = st.now() + st.book.ephemeral_lifetime();
  st.book.ephemeral_not_before(st.ephemeral_floor);
  if (st.cfg.timers) {
    // Start-up: every schedule from the store, so nothing is lost across restarts.
    derive_all(self, true);
    const auto every =
        st.cfg.poll_interval.count() > 0 ? st.cfg.poll_interval : st.cfg.sweep_interval;
    if (every.count() > 0)
      self->delayed_send(self, every, poll_atom::value);
  }
  return {
      [self](landed_atom, const session_event& ev) {
        auto& st = self->state;
        if (ev.connected)
          st.book.on_connect(ev.peer_id);
        else
          st.book.on_disconnect(ev.peer_id, st.now());
        arm(self);
      },
      [self](dir_atom, peer_directory dir) { self->state.cfg.directory = std::move(dir); },
      [self](tick_atom, std::uint64_t gen) {
        auto& st = self->state;
        if (gen == st.gen)
          st.armed = false;
        run_due(self);
      },
      [self](derive_atom, const std::string& account_id) {
        if (account_id.empty())
          derive_all(self);
        else
          derive_account(self, account_id);
      },
      [self](poll_atom) {
        auto& st = self->state;
        const auto sweep_ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(st.cfg.sweep_interval).count();
        if (sweep_ns > 0 && st.now() - st.last_sweep >= sweep_ns)
          derive_all(self);
        else
          poll_serials(self);
        if (st.cfg.timers) {
          const auto every =
              st.cfg.poll_interval.count() > 0 ? st.cfg.poll_interval : st.cfg.sweep_interval;
          if (every.count() > 0)
            self->delayed_send(self, every, poll_atom::value);
        }
      },
      [self](status_atom) {
        update_record(self->state);
        auto s = status_of(self, "expiry");
        put_record(s, self->state.rec);
        return s;
      },
  };
}

} // namespace

expiry_actor spawn_expiry_actor(caf::actor_system& sys, expiry_config cfg) {
  // Never blocks itself: an ordinary actor (its store workers are the detached ones).
  return sys.spawn(expiry_impl, std::move(cfg));
}

} // namespace nbm::actors
