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

struct expiry_state {
  expiry_config cfg;
  core::expiry_book book;
  expiry_state_record rec;
  std::unique_ptr<storage::worker_session> sql;
  std::unordered_map<std::string, std::uint64_t> serials; // as of the last derivation
  bool armed = false;                                     // a deadline timer is pending
  unix_ns armed_at = 0;                                   // ... for this deadline
  std::uint64_t gen = 0;                                  // of the pending deadline timer
  unix_ns last_sweep = 0;                                 // when every account was last derived
  static inline const char* name = "expiry_actor";

  unix_ns now() const { return cfg.clock ? cfg.clock() : system_now(); }

  storage::lifecycle_store store() {
    if (!sql)
      sql = std::make_unique<storage::worker_session>(cfg.db);
    return storage::lifecycle_store(sql->get(), cfg.db.kind);
  }
  void drop_session() {
    if (sql)
      sql->reset();
  }

  // The activity log: a failure is logged, never retried (the expiration itself landed).
  std::unique_ptr<storage::worker_session> events_sql;
  void record(std::vector<core::activity::event> evs) {
    if (!cfg.events_db || evs.empty())
      return;
    try {
      if (!events_sql)
        events_sql = std::make_unique<storage::worker_session>(*cfg.events_db);
      storage::event_store(events_sql->get(), cfg.events_db->kind).append(evs);
    } catch (const std::exception& e) {
      if (events_sql)
        events_sql->reset();
      spdlog::error("activity log: {} events not recorded: {}", evs.size(), e.what());
    }
  }
};

using expiry_ptr = expiry_actor::stateful_pointer<expiry_state>;

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

// Derives one account's schedule from the store (a missing account is forgotten).
void derive_account(expiry_state& st, const std::string& account_id) {
  auto a = st.store().account(account_id);
  if (!a)
    st.book.forget_account(account_id);
  else
    st.book.derive_account(account_id, a->settings, a->peers);
  ++st.rec.derivations;
}

// Derives every schedule from the store: what start-up and the periodic sweep do.
void derive_all(expiry_state& st) {
  auto store = st.store();
  auto serials = store.account_serials(); // first: a change after this read is seen next poll
  auto rows = store.candidates();
  std::map<std::string, std::vector<core::lifecycle_facts>> by_account;
  for (auto& f : rows)
    by_account[f.account_id].push_back(std::move(f));
  for (const auto& id : st.book.account_ids())
    if (!by_account.count(id))
      st.book.forget_account(id);
  for (const auto& [id, peers] : by_account) {
    st.book.derive_account(id, peers.front().settings, peers);
    ++st.rec.derivations;
  }
  st.serials.clear();
  for (const auto& [id, serial] : serials)
    st.serials[id] = serial;
  st.last_sweep = st.now();
}

// Accounts whose serial moved since their derivation are derived again.
void poll_serials(expiry_state& st) {
  auto serials = st.store().account_serials();
  std::set<std::string> present;
  for (const auto& [id, serial] : serials) {
    present.insert(id);
    auto it = st.serials.find(id);
    if (it != st.serials.end() && it->second == serial)
      continue;
    st.serials[id] = serial;
    derive_account(st, id);
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

// What landed, for the actors that own the account and the peer.
struct effects {
  std::set<std::string> reload;                               // accounts with expired peers
  std::vector<std::pair<std::string, std::string>> deletions; // (account, peer)
};

void tell(expiry_ptr self, effects fx) {
  auto dir = self->state.cfg.directory;
  if (!dir)
    return;
  // A directory that cannot answer (shutting down) costs the effects, never this actor.
  auto ignore = [](caf::error&) {};
  for (const auto& acc : fx.reload)
    self->request(dir, caf::infinite, find_account_atom::value, acc)
        .then(
            [self](account_actor a) {
              // The account is read again: the expired peer moves to the others' offline peers
              // and its own stream ends (account_actor closes sessions of login-expired peers).
              if (a)
                self->send(a, reload_atom::value);
            },
            ignore);
  for (const auto& [acc, peer] : fx.deletions) {
    const std::string a_id = acc, p_id = peer;
    self->request(dir, caf::infinite, find_peer_atom::value, a_id, p_id)
        .then(
            [self](peer_actor p) {
              if (p)
                self->send(p, close_atom::value, std::string("peer deleted"));
            },
            ignore);
    self->request(dir, caf::infinite, find_account_atom::value, a_id)
        .then(
            [self, p_id](account_actor a) {
              if (a)
                self->send(a, deleted_atom::value, p_id);
            },
            ignore);
  }
}

// Decides every due deadline on the row as stored now, and writes what the rules say through the
// store's fence.
void run_due(expiry_ptr self) {
  auto& st = self->state;
  const unix_ns now = st.now();
  effects fx;
  for (const auto& item : st.book.take_due(now)) {
    try {
      auto store = st.store();
      auto f = store.peer(item.account_id, item.peer_id);
      if (!f) { // deleted meanwhile
        st.book.forget(item.peer_id);
        continue;
      }
      const auto at = st.book.due(*f, item.rule);
      if (!at || *at > now) { // reconnected, logged in again, setting changed: not (yet) due
        st.book.upsert(*f);
        continue;
      }
      const bool ephemeral = item.rule == lifecycle_rule::ephemeral;
      // What the event tells of the peer (NetBird's Peer.EventMeta), read before it changes.
      std::optional<core::peer> seen;
      if (st.cfg.events_db)
        seen = storage::account_store(st.sql->get(), st.cfg.db.kind)
                   .peer_by_id(item.account_id, item.peer_id);
      const bool landed =
          ephemeral ? store.delete_ephemeral(*f) : store.mark_login_expired(*f, item.rule);
      if (!landed) { // the row changed between our read and the write (another replica?)
        ++st.rec.refused;
        if (auto fresh = store.peer(item.account_id, item.peer_id))
          st.book.upsert(*fresh);
        else
          st.book.forget(item.peer_id);
        continue;
      }
      if (ephemeral) {
        ++st.rec.deleted;
        spdlog::info("ephemeral peer {} of account {} deleted: disconnected longer than {} s",
                     item.peer_id, item.account_id, st.book.ephemeral_lifetime() / 1000000000);
        st.book.forget(item.peer_id);
        fx.deletions.emplace_back(item.account_id, item.peer_id);
        if (seen) {
          core::activity::event e;
          e.activity = core::activity::peer_removed_by_user;
          e.initiator_id = core::activity::system_initiator;
          e.target_id = seen->id;
          e.account_id = item.account_id;
          e.m = core::activity::peer_event_meta(*seen, st.cfg.dns_domain);
          st.record({std::move(e)});
        }
      } else {
        ++st.rec.expired;
        spdlog::info("peer {} of account {}: login expired ({})", item.peer_id, item.account_id,
                     item.rule == lifecycle_rule::login ? "session expiration"
                                                        : "inactivity timeout");
        if (seen) { // NetBird's expireAndUpdatePeers
          core::activity::event e;
          e.activity = core::activity::peer_login_expired;
          e.initiator_id = seen->user_id;
          e.target_id = seen->id;
          e.account_id = item.account_id;
          e.m = core::activity::peer_event_meta(*seen, st.cfg.dns_domain);
          e.m.emplace_back("reason",
                           std::string(item.rule == lifecycle_rule::login ? "session expiration"
                                                                          : "inactivity timeout"));
          st.record({std::move(e)});
        }
        f->login_expired = true;
        f->connected = false;
        st.book.upsert(*f);
        fx.reload.insert(item.account_id);
      }
    } catch (const std::exception& e) {
      ++st.rec.errors;
      st.drop_session();
      spdlog::warn("{} of peer {} failed, retrying: {}", core::to_string(item.rule), item.peer_id,
                   e.what());
      st.book.set_deadline(
          item.peer_id, item.rule,
          now +
              std::chrono::duration_cast<std::chrono::nanoseconds>(st.cfg.retry_interval).count());
    }
  }
  tell(self, std::move(fx));
}

template <class F>
void guarded(expiry_state& st, const char* what, F&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    ++st.rec.errors;
    st.drop_session();
    spdlog::warn("expiry: {} failed: {}", what, e.what());
  }
}

expiry_actor::behavior_type expiry_impl(expiry_ptr self, expiry_config cfg) {
  auto& st = self->state;
  st.book = core::expiry_book(cfg.ephemeral_lifetime_ns);
  st.cfg = std::move(cfg);
  // NetBird's loadEphemeralPeers: every ephemeral peer gets the whole lifetime from start-up (a
  // peer that could not reconnect while no server ran is not deleted on sight).
  st.book.ephemeral_not_before(st.now() + st.book.ephemeral_lifetime());
  if (st.cfg.timers) {
    // Start-up: every schedule from the store, so nothing is lost across restarts.
    guarded(st, "deriving the schedules", [&] { derive_all(st); });
    spdlog::info("expiry: {} peer(s) of {} account(s) scheduled ({} deadlines)", st.book.peers(),
                 st.book.accounts(), st.book.scheduled());
    arm(self);
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
        arm(self);
      },
      [self](derive_atom, const std::string& account_id) {
        auto& st = self->state;
        guarded(st, "deriving schedules", [&] {
          if (account_id.empty())
            derive_all(st);
          else
            derive_account(st, account_id);
        });
        arm(self);
      },
      [self](poll_atom) {
        auto& st = self->state;
        const auto sweep_ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(st.cfg.sweep_interval).count();
        if (sweep_ns > 0 && st.now() - st.last_sweep >= sweep_ns)
          guarded(st, "the sweep", [&] { derive_all(st); });
        else
          guarded(st, "the serial poll", [&] { poll_serials(st); });
        arm(self);
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
  return sys.spawn<caf::detached>(expiry_impl, std::move(cfg));
}

} // namespace nbm::actors
