#include "actors/account_actor.hpp"

#include "core/expiry.hpp"
#include "core/registration.hpp"
#include "storage/account_store.hpp"

#include <caf/all.hpp>
#include <soci/soci.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <unordered_map>

namespace nbm::actors {

namespace {

// gRPC status codes (kept numeric: no gRPC in actors/).
constexpr int permission_denied = 7;

double now_unix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// ---- account_actor ---------------------------------------------------------------------------

struct session {
  session_token token = 0;
  peer_actor peer;
  std::uint64_t fingerprint = 0; // of the last map sent
};

struct account_state {
  account_state_record rec;
  account_loader loader;
  core::map_context ctx;
  account_ptr acc;                        // the account as committed (null: does not exist)
  std::shared_ptr<core::account> working; // changes applied since the last fan-out
  std::shared_ptr<account_change> change; // maps of `acc`, built on demand
  std::unordered_map<std::string, session> sessions; // by peer id
  bool flush_scheduled = false;
  static inline const char* name = "account_actor";
};

using account_ptr_t = account_actor::stateful_pointer<account_state>;

// The account to change in place (copied once per fan-out: maps being encoded elsewhere keep
// reading the previous one).
core::account& mutable_account(account_state& st) {
  if (!st.working)
    st.working =
        st.acc ? std::make_shared<core::account>(*st.acc) : std::make_shared<core::account>();
  return *st.working;
}

// The account with every applied change, indexed for maps.
const std::shared_ptr<account_change>& current_change(account_state& st) {
  if (st.working) {
    st.acc = std::move(st.working);
    st.working.reset();
    st.change.reset();
  }
  if (!st.change) {
    auto ch = std::make_shared<account_change>();
    auto ctx = st.ctx;
    ctx.now = std::chrono::system_clock::now();
    ch->view = std::make_shared<core::account_view>(
        st.acc ? st.acc : std::make_shared<core::account>(), std::move(ctx));
    st.change = std::move(ch);
  }
  return st.change;
}

void update_record(account_state& st) {
  const auto& a = st.working ? static_cast<const core::account&>(*st.working) : *st.acc;
  st.rec.serial = a.net.serial;
  st.rec.peers = a.peers.size();
  st.rec.connected = st.sessions.size();
}

void schedule_flush(account_ptr_t self) {
  if (!self->state.flush_scheduled) {
    self->state.flush_scheduled = true;
    // Behind every message already queued: a burst of changes is fanned out once.
    self->send(self, flush_atom::value);
  }
}

// Every connected peer whose map the changes altered gets its new map, once; the others nothing.
void fan_out(account_ptr_t self) {
  auto& st = self->state;
  ++st.rec.changes;
  if (st.sessions.empty()) { // nobody to tell: commit the changes, index them when needed
    if (st.working) {
      st.acc = std::move(st.working);
      st.working.reset();
      st.change.reset();
    }
    update_record(st);
    return;
  }
  const auto ch = current_change(st);
  const auto& view = *ch->view;
  for (auto it = st.sessions.begin(); it != st.sessions.end();) {
    auto& s = it->second;
    auto idx = view.peer_index(it->first);
    if (!idx) { // the peer is gone: its stream ends
      self->send(s.peer, close_atom::value, std::string("peer deleted"));
      it = st.sessions.erase(it);
      continue;
    }
    if (core::must_log_in_again(view.acc(), view.acc().peers[*idx], now_unix())) {
      // Its login expired (marked by the expiry actor here or on another replica): the stream
      // ends, and the next Sync is refused until the peer logs in again.
      self->send(s.peer, close_atom::value, std::string("peer login expired"));
      it = st.sessions.erase(it);
      continue;
    }
    auto m = view.map_for(*idx);
    const auto fp = view.fingerprint(m);
    if (fp == s.fingerprint) {
      ++st.rec.maps_skipped;
    } else {
      s.fingerprint = fp;
      auto u = std::make_shared<map_update>();
      u->change = ch;
      u->peer = *idx;
      u->map = std::move(m);
      self->send(s.peer, map_atom::value, s.token, map_update_ptr(std::move(u)), false);
      ++st.rec.maps_sent;
    }
    ++it;
  }
  update_record(st);
}

// The account with every change applied so far (shared with whoever reads it: never changed).
account_ptr committed(account_state& st) {
  if (st.working) {
    st.acc = std::move(st.working);
    st.working.reset();
    st.change.reset();
  }
  return st.acc;
}

// Takes `acc` (read from the store) as the account and fans out what changed.
void adopt(account_ptr_t self, const account_ptr& acc) {
  auto& st = self->state;
  st.acc = acc ? acc : std::make_shared<const core::account>();
  st.rec.loaded = static_cast<bool>(acc);
  st.working.reset();
  st.change.reset();
  fan_out(self);
}

void reload(account_ptr_t self) {
  self->request(self->state.loader, caf::infinite, load_atom::value, self->state.rec.account_id)
      .await(
          [self](const account_ptr& acc) {
            auto& st = self->state;
            ++st.rec.reloads;
            st.acc = acc ? acc : std::make_shared<const core::account>();
            st.rec.loaded = static_cast<bool>(acc);
            st.working.reset();
            st.change.reset();
            fan_out(self);
          },
          [self](caf::error& err) {
            spdlog::error("account {}: reload failed: {}", self->state.rec.account_id,
                          caf::to_string(err));
          });
}

account_actor::behavior_type account_impl(account_ptr_t self, std::string account_id,
                                          account_loader loader, core::map_context ctx) {
  auto& st = self->state;
  st.rec.account_id = std::move(account_id);
  st.loader = std::move(loader);
  st.ctx = std::move(ctx);
  // Loaded once, before any message is handled (await keeps them queued).
  self->request(st.loader, caf::infinite, load_atom::value, st.rec.account_id)
      .await(
          [self](const account_ptr& acc) {
            auto& st = self->state;
            st.acc = acc ? acc : std::make_shared<const core::account>();
            st.rec.loaded = static_cast<bool>(acc);
            update_record(st);
          },
          [self](caf::error& err) {
            spdlog::error("account {}: load failed: {}", self->state.rec.account_id,
                          caf::to_string(err));
            self->quit(err); // the directory forgets it; the next lookup tries again
          });
  return {
      [self](attach_atom, const std::string& peer_id, session_token token, peer_actor peer) {
        auto& st = self->state;
        auto& s = st.sessions[peer_id];
        if (s.token > token)
          return; // an older session's attach arrived late
        const auto ch = current_change(st);
        auto idx = ch->view->peer_index(peer_id);
        if (!idx) {
          st.sessions.erase(peer_id);
          self->send(peer, close_atom::value, std::string("peer not found"));
          return;
        }
        if (core::must_log_in_again(ch->view->acc(), ch->view->acc().peers[*idx], now_unix())) {
          st.sessions.erase(peer_id);
          self->send(peer, close_atom::value, std::string("peer login expired"));
          return;
        }
        s.token = token;
        s.peer = std::move(peer);
        auto u = std::make_shared<map_update>();
        u->change = ch;
        u->peer = *idx;
        u->map = ch->view->map_for(*idx);
        s.fingerprint = ch->view->fingerprint(u->map);
        self->send(s.peer, map_atom::value, token, map_update_ptr(std::move(u)), true);
        ++st.rec.maps_sent;
        update_record(st);
      },
      [self](detach_atom, const std::string& peer_id, session_token token) {
        auto& st = self->state;
        auto it = st.sessions.find(peer_id);
        if (it != st.sessions.end() && it->second.token == token)
          st.sessions.erase(it);
        update_record(st);
      },
      [self](sync_atom, const std::string& peer_id, bool has_meta,
             const core::peer_meta& meta) -> std::tuple<int, std::string> {
        auto& st = self->state;
        const core::account& a = st.working ? *st.working : *st.acc;
        auto it = std::find_if(a.peers.begin(), a.peers.end(),
                               [&](const core::peer& p) { return p.id == peer_id; });
        if (it == a.peers.end())
          return {permission_denied, "peer is not registered"};
        if (core::must_log_in_again(a, *it, now_unix()))
          return {permission_denied, "peer login has expired, please log in once more"};
        if (has_meta && !meta.hostname.empty() && !(it->meta == meta)) {
          // Stored by the caller already; the agent version, for one, shapes maps.
          auto& m = mutable_account(st);
          for (auto& p : m.peers)
            if (p.id == peer_id)
              p.meta = meta;
          schedule_flush(self);
        }
        return {0, std::string()};
      },
      [self](added_atom, core::peer& p, const std::vector<std::string>& groups,
             std::uint64_t serial) {
        auto& a = mutable_account(self->state);
        auto it = std::find_if(a.peers.begin(), a.peers.end(),
                               [&](const core::peer& q) { return q.id == p.id; });
        const std::string id = p.id;
        if (it != a.peers.end())
          *it = std::move(p); // a reload already brought it
        else
          a.peers.push_back(std::move(p));
        for (auto& g : a.groups)
          if (std::find(groups.begin(), groups.end(), g.id) != groups.end() &&
              std::find(g.peers.begin(), g.peers.end(), id) == g.peers.end())
            g.peers.push_back(id);
        a.net.serial = std::max(a.net.serial, serial);
        schedule_flush(self);
      },
      [self](deleted_atom, const std::string& peer_id) {
        auto& a = mutable_account(self->state);
        auto it = std::find_if(a.peers.begin(), a.peers.end(),
                               [&](const core::peer& q) { return q.id == peer_id; });
        if (it == a.peers.end())
          return;
        a.peers.erase(it);
        for (auto& g : a.groups)
          g.peers.erase(std::remove(g.peers.begin(), g.peers.end(), peer_id), g.peers.end());
        ++a.net.serial; // as the store's delete did
        schedule_flush(self);
      },
      [self](check_atom, std::uint64_t serial) {
        auto& st = self->state;
        const auto ours = st.working ? st.working->net.serial : st.acc->net.serial;
        if (serial > ours)
          reload(self);
      },
      [self](reload_atom) { reload(self); },
      [self](get_atom, std::uint64_t serial) -> caf::result<account_ptr> {
        auto& st = self->state;
        if (serial <= (st.working ? st.working->net.serial : st.acc->net.serial))
          return committed(st);
        // Another process changed the account since we read it: read it again, then answer.
        auto rp = self->make_response_promise<account_ptr>();
        self->request(st.loader, caf::infinite, load_atom::value, st.rec.account_id)
            .await(
                [self, rp](const account_ptr& acc) mutable {
                  adopt(self, acc);
                  ++self->state.rec.reloads;
                  rp.deliver(self->state.acc);
                },
                [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      },
      [self](apply_atom, const mutation_ptr& m) -> caf::result<account_ptr> {
        auto& st = self->state;
        auto rp = self->make_response_promise<account_ptr>();
        const auto before = committed(st);
        // await: nothing else of this account is handled until the change is committed and
        // adopted, so mutations (and registrations, session attaches) apply in order.
        self->request(st.loader, caf::infinite, apply_atom::value, m, before)
            .await(
                [self, rp, before](const account_ptr& after) mutable {
                  if (after && after != before) {
                    const bool moved_by_more = after->net.serial > before->net.serial + 1;
                    adopt(self, after);
                    if (moved_by_more) // someone else wrote in between: make sure we have it all
                      self->send(self, check_atom::value, after->net.serial + 1);
                  }
                  rp.deliver(self->state.acc);
                },
                [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      },
      [self](flush_atom) {
        self->state.flush_scheduled = false;
        fan_out(self);
      },
      [self](status_atom) {
        update_record(self->state);
        return self->state.rec;
      },
  };
}

// ---- account_loader --------------------------------------------------------------------------

struct loader_state {
  loader_config cfg;
  std::unique_ptr<storage::worker_session> sql;
  std::unordered_map<std::string, std::vector<account_actor>> watched; // by account id
  bool ticking = false;
  static inline const char* name = "account_loader";

  soci::session& session() {
    if (!sql)
      sql = std::make_unique<storage::worker_session>(cfg.db);
    return sql->get();
  }
  void drop_session() {
    if (sql)
      sql->reset();
  }
};

using loader_ptr = account_loader::stateful_pointer<loader_state>;

void poll_serials(loader_ptr self) {
  auto& st = self->state;
  if (st.watched.empty())
    return;
  std::vector<std::pair<std::string, std::uint64_t>> serials;
  try {
    soci::rowset<soci::row> rows = st.session().prepare
                                   << "SELECT id, network_serial FROM accounts";
    for (const auto& r : rows) {
      auto id = r.get<std::string>(0);
      if (!st.watched.count(id))
        continue;
      std::uint64_t serial = 0;
      switch (r.get_properties(1).get_data_type()) {
      case soci::dt_integer:
        serial = static_cast<std::uint64_t>(r.get<int>(1));
        break;
      case soci::dt_long_long:
        serial = static_cast<std::uint64_t>(r.get<long long>(1));
        break;
      case soci::dt_unsigned_long_long:
        serial = r.get<unsigned long long>(1);
        break;
      default:
        serial = static_cast<std::uint64_t>(r.get<double>(1));
      }
      serials.emplace_back(std::move(id), serial);
    }
  } catch (const std::exception& e) {
    st.drop_session();
    spdlog::warn("account serial poll failed: {}", e.what());
    return;
  }
  for (const auto& [id, serial] : serials)
    for (const auto& a : st.watched[id])
      self->send(a, check_atom::value, serial);
}

account_loader::behavior_type loader_impl(loader_ptr self, loader_config cfg) {
  self->state.cfg = std::move(cfg);
  self->set_down_handler([self](const caf::down_msg& dm) {
    auto& w = self->state.watched;
    for (auto it = w.begin(); it != w.end();) {
      auto& v = it->second;
      v.erase(std::remove_if(v.begin(), v.end(),
                             [&](const account_actor& a) { return a.address() == dm.source; }),
              v.end());
      it = v.empty() ? w.erase(it) : std::next(it);
    }
  });
  return {
      [self](load_atom, const std::string& account_id) -> caf::result<account_ptr> {
        auto& st = self->state;
        if (auto sender = caf::actor_cast<account_actor>(self->current_sender())) {
          auto& v = st.watched[account_id];
          if (std::find(v.begin(), v.end(), sender) == v.end()) {
            v.push_back(sender);
            self->monitor(sender);
          }
          if (!st.ticking && st.cfg.poll_interval.count() > 0) {
            st.ticking = true;
            self->delayed_send(self, st.cfg.poll_interval, check_atom::value);
          }
        }
        for (int attempt = 0;; ++attempt) {
          try {
            storage::account_store store(st.session(), st.cfg.db.kind);
            auto acc = store.load_account(account_id);
            if (!acc)
              return account_ptr{};
            return account_ptr(std::make_shared<const core::account>(std::move(*acc)));
          } catch (const std::exception& e) {
            st.drop_session(); // a read: once more on a fresh session
            if (attempt > 0) {
              spdlog::error("loading account {} failed: {}", account_id, e.what());
              return caf::make_error(caf::sec::runtime_error, e.what());
            }
          }
        }
      },
      [self](apply_atom, const mutation_ptr& m,
             const account_ptr& current) -> caf::result<account_ptr> {
        auto& st = self->state;
        using store_t = storage::account_store;
        const auto kind = st.cfg.db.kind;
        auto acc = std::make_shared<core::account>(*current);
        // Users, tokens and setup keys change without a serial (NetBird's rule); the rest is
        // current unless another process moved the serial. Nothing is written yet, so a dropped
        // connection is tried once more on a fresh session.
        for (int attempt = 0;; ++attempt) {
          try {
            store_t store(st.session(), kind);
            if (!store.load_parts(*acc, store_t::part_account | store_t::part_principals))
              return account_ptr{}; // the account is gone
            if (acc->net.serial != current->net.serial)
              store.load_parts(*acc, store_t::part_all);
            break;
          } catch (const std::exception& e) {
            st.drop_session();
            *acc = *current;
            if (attempt > 0) {
              spdlog::error("changing account {} failed: {}", current->id, e.what());
              return caf::make_error(caf::sec::runtime_error, e.what());
            }
            spdlog::warn("changing account {}: {}; trying again", current->id, e.what());
          }
        }
        const auto seen = acc->net.serial; // before the write
        unsigned parts = 0;
        try {
          parts = m->write(st.session(), *acc);
        } catch (const soci::soci_error&) {
          m->error = std::current_exception();
          st.drop_session(); // the database failed: a fresh session next time
        } catch (const storage::store_error&) {
          m->error = std::current_exception();
          st.drop_session();
        } catch (...) {
          m->error = std::current_exception(); // refused: nothing was written
        }
        if (parts) {
          try {
            store_t store(st.session(), kind);
            store.load_parts(*acc, parts | store_t::part_account);
            // Users, tokens and setup keys move no serial, everything else moves it by one: a
            // serial beyond that means another process changed the account meanwhile, and only
            // a full read has its change too.
            const auto own = (parts & ~unsigned{store_t::part_principals}) ? 1u : 0u;
            if (acc->net.serial != seen + own)
              store.load_parts(*acc, store_t::part_all);
          } catch (const std::exception& e) {
            // Committed, but not read back: the serial moved in the store, so the next read or
            // poll of this account reads it again.
            st.drop_session();
            spdlog::warn("account {}: a change was committed but not read back: {}", current->id,
                         e.what());
          }
        }
        return account_ptr(std::move(acc));
      },
      [self](check_atom) {
        poll_serials(self);
        self->delayed_send(self, self->state.cfg.poll_interval, check_atom::value);
      },
  };
}

} // namespace

account_actor spawn_account_actor(caf::actor_system& sys, std::string account_id,
                                  account_loader loader, core::map_context maps) {
  return sys.spawn(account_impl, std::move(account_id), std::move(loader), std::move(maps));
}

account_loader spawn_account_loader(caf::actor_system& sys, loader_config cfg) {
  return sys.spawn<caf::detached>(loader_impl, std::move(cfg));
}

} // namespace nbm::actors
