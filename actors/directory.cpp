#include "actors/directory.hpp"

#include "actors/account_actor.hpp"
#include "actors/map_workers.hpp"
#include "actors/peer_actor.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <memory>
#include <vector>

namespace nbm::actors {

namespace {

peer_directory::behavior_type directory_impl(peer_directory::stateful_pointer<directory_state> self,
                                             directory_config cfg) {
  self->state.cfg = std::move(cfg);
  // The directory's end (shutdown) ends every peer and account actor: a peer actor and its stream
  // sink refer to each other, so nothing else would.
  self->set_exit_handler([self](const caf::exit_msg& msg) {
    for (const auto& [id, p] : self->state.peers)
      self->send_exit(p, msg.reason);
    for (const auto& [id, a] : self->state.accounts)
      self->send_exit(a, msg.reason);
    self->quit(msg.reason);
  });
  // An actor that fails is forgotten, and spawned afresh on the next lookup; the directory lives
  // on.
  self->set_down_handler([self](const caf::down_msg& dm) {
    auto& st = self->state;
    for (auto it = st.peers.begin(); it != st.peers.end(); ++it)
      if (it->second.address() == dm.source) {
        if (dm.reason)
          spdlog::warn("peer actor {} went down: {}", it->first, caf::to_string(dm.reason));
        st.account_of.erase(it->first);
        st.peers.erase(it);
        return;
      }
    for (auto it = st.accounts.begin(); it != st.accounts.end(); ++it)
      if (it->second.address() == dm.source) {
        if (dm.reason)
          spdlog::warn("account actor {} went down: {}", it->first, caf::to_string(dm.reason));
        // Its keys are forgotten: a new actor of the account tells them again once it read it.
        for (auto k = st.by_key.begin(); k != st.by_key.end();)
          k = k->second.first == it->first ? st.by_key.erase(k) : std::next(k);
        st.accounts.erase(it);
        return;
      }
  });
  auto account_of = [self](const std::string& account_id) -> account_actor {
    auto& st = self->state;
    if (!st.cfg.loader)
      return {};
    auto it = st.accounts.find(account_id);
    if (it != st.accounts.end())
      return it->second;
    auto a = spawn_account_actor(self->system(), account_id, st.cfg.loader, st.cfg.maps,
                                 peer_directory{self}, st.cfg.cluster, st.cfg.mappers);
    self->monitor(a);
    st.accounts.emplace(account_id, a);
    return a;
  };
  auto peer_of = [self, account_of](const std::string& account_id,
                                    const std::string& peer_id) -> peer_actor {
    auto& st = self->state;
    auto it = st.peers.find(peer_id);
    if (it != st.peers.end())
      return it->second;
    auto p = spawn_peer_actor(*self, account_id, peer_id, st.cfg.writer, st.cfg.observer,
                              account_of(account_id));
    self->monitor(p);
    st.peers.emplace(peer_id, p);
    st.account_of.emplace(peer_id, account_id);
    return p;
  };
  // A key's (account, peer): from memory, or else one indexed store read (the login service),
  // then `found`; a key nobody holds, or a store that failed, goes to `refused`.
  auto resolve = [self](const std::string& wg_key, auto found, auto refused) {
    auto& st = self->state;
    if (auto it = st.by_key.find(wg_key); it != st.by_key.end()) {
      found(it->second.first, it->second.second);
      return;
    }
    if (!st.cfg.login) {
      refused(caf::error{});
      return;
    }
    // Another replica may have registered it a moment ago (a Login there, this Sync here).
    self->request(st.cfg.login, caf::infinite, lookup_atom::value, wg_key)
        .then(
            [found, refused](const peer_ref& ref) mutable {
              if (ref.account_id.empty())
                refused(caf::error{});
              else
                found(ref.account_id, ref.peer_id);
            },
            [refused](caf::error& err) mutable { refused(std::move(err)); });
  };
  return {
      [peer_of](find_peer_atom, const std::string& account_id, const std::string& peer_id) {
        return peer_of(account_id, peer_id);
      },
      [account_of](find_account_atom, const std::string& account_id) {
        return account_of(account_id);
      },
      [self](members_atom) -> caf::result<std::vector<status_target>> {
        auto& st = self->state;
        std::vector<status_target> out;
        out.reserve(st.peers.size() + st.accounts.size() + 5);
        out.push_back({"directory", peer_directory{self}});
        if (st.cfg.loader)
          out.push_back({"account_loader", st.cfg.loader});
        if (st.cfg.writer)
          out.push_back({"status_writer", st.cfg.writer});
        if (st.cfg.login)
          out.push_back({"login_service", st.cfg.login});
        if (st.cfg.observer)
          out.push_back({"session_observer", st.cfg.observer});
        for (const auto& [id, a] : st.accounts)
          out.push_back({"account", a});
        for (const auto& [id, p] : st.peers)
          out.push_back({"peer", p});
        if (!st.cfg.loader && !st.cfg.writer)
          return out;
        // The loader's store workers and the status writer's database workers too (neither
        // owner ever blocks: a short deadline is plenty).
        struct gather {
          std::vector<status_target> out;
          int left = 0;
          caf::typed_response_promise<std::vector<status_target>> rp;
          void one_done() {
            if (--left == 0)
              rp.deliver(std::move(out));
          }
        };
        auto g = std::make_shared<gather>();
        g->out = std::move(out);
        g->left = (st.cfg.loader ? 1 : 0) + (st.cfg.writer ? 1 : 0);
        g->rp = self->make_response_promise<std::vector<status_target>>();
        auto add = [g](std::vector<status_target>& workers) {
          g->out.insert(g->out.end(), workers.begin(), workers.end());
          g->one_done();
        };
        auto skip = [g](caf::error&) { g->one_done(); };
        if (st.cfg.loader)
          self->request(st.cfg.loader, std::chrono::seconds(1), members_atom::value)
              .then(add, skip);
        if (st.cfg.writer)
          self->request(st.cfg.writer, std::chrono::seconds(1), members_atom::value)
              .then(add, skip);
        return g->rp;
      },
      [self](status_atom) {
        auto s = status_of(self, "directory");
        s.gauges["peer_actors"] = static_cast<std::int64_t>(self->state.peers.size());
        s.gauges["account_actors"] = static_cast<std::int64_t>(self->state.accounts.size());
        s.gauges["known_keys"] = static_cast<std::int64_t>(self->state.by_key.size());
        // The map workers the account actors hand large fan-outs to (actors/map_workers).
        if (const auto& w = self->state.cfg.mappers) {
          s.gauges["map_workers"] = w->threads();
          s.gauges["map_jobs_queued"] = static_cast<std::int64_t>(w->queued());
          s.counters["map_jobs"] = w->jobs_run();
        }
        return s;
      },
      [self, account_of](login_atom, login_request& req) -> caf::result<peer_view> {
        auto& st = self->state;
        auto rp = self->make_response_promise<peer_view>();
        // A known key without an SSO token: its account actor answers from the account it holds.
        if (auto it = st.by_key.find(req.wg_key); it != st.by_key.end() && req.jwt_user.empty()) {
          const auto id = it->second.second;
          rp.delegate(account_of(it->second.first), login_atom::value, std::move(req), id);
          return rp;
        }
        if (!st.cfg.login) {
          peer_view v;
          v.code = 14;
          v.message = "logins are not served here";
          rp.deliver(std::move(v));
          return rp;
        }
        self->request(st.cfg.login, caf::infinite, login_atom::value, req)
            .then(
                [self, rp, req, account_of](login_lookup& lk) mutable {
                  if (lk.known) {
                    rp.delegate(account_of(lk.known->account_id), login_atom::value, std::move(req),
                                lk.known->peer_id);
                  } else if (lk.register_with) {
                    const auto account = lk.register_with->account_id;
                    rp.delegate(account_of(account), register_atom::value, std::move(req),
                                std::move(*lk.register_with));
                  } else {
                    // An SSO login renewed the peer's login: its account actor reads it again
                    // (holding its mailbox) before the answer goes out, so the peer's next Sync
                    // (which comes through here, behind this message) finds it renewed.
                    const bool ok = lk.answer.code == 0;
                    if (ok && lk.answer.relogged) {
                      self->send(account_of(lk.answer.peer.account_id), serial_atom::value,
                                 lk.answer.serial);
                      if (self->state.cfg.cluster) { // the others read the account again
                        core::account_note n;
                        n.account_id = lk.answer.peer.account_id;
                        n.peers.push_back(lk.answer.peer.id);
                        self->send(self->state.cfg.cluster, publish_atom::value, std::move(n));
                      }
                    }
                    // The login's events go to the activity log after those of its JWT groups.
                    auto finish = [self, rp, evs = std::move(lk.events)](peer_view v) mutable {
                      if (!evs.empty() && self->state.cfg.loader)
                        self->send(self->state.cfg.loader, record_atom::value, std::move(evs));
                      rp.deliver(std::move(v));
                    };
                    if (!ok || !lk.jwt_sync) {
                      finish(std::move(lk.answer));
                      return;
                    }
                    // NetBird's SyncUserJWTGroups at an SSO login: the token's groups become the
                    // user's, committed by the account's actor as that user (a failure is logged,
                    // the login stands, as in NetBird).
                    const auto user_id = lk.jwt_sync->user_id;
                    auto change = std::make_shared<core::admin_change>(
                        core::admin_change{user_id, std::move(*lk.jwt_sync)});
                    auto v = std::move(lk.answer);
                    const auto account = v.peer.account_id;
                    self->request(account_of(account), caf::infinite, change_atom::value,
                                  admin_change_ptr(std::move(change)))
                        .then(
                            [finish, v, user_id](change_outcome& out) mutable {
                              if (out.refused)
                                spdlog::warn("login: JWT groups of user {} not synced: {}", user_id,
                                             out.refused->message);
                              else if (out.failure != store_failure::none || !out.after)
                                spdlog::warn("login: JWT groups of user {} not synced: the store "
                                             "failed",
                                             user_id);
                              else {
                                v.serial = out.after->net.serial;
                                spdlog::debug("login: JWT groups of user {} synced (serial {})",
                                              user_id, v.serial);
                              }
                              finish(std::move(v));
                            },
                            [finish, v, user_id](caf::error& err) mutable {
                              spdlog::warn("login: JWT groups of user {} not synced: {}", user_id,
                                           caf::to_string(err));
                              finish(std::move(v));
                            });
                  }
                },
                [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      },
      [self, account_of, peer_of, resolve](sync_atom,
                                           sync_open& open) -> caf::result<sync_verdict> {
        auto rp = self->make_response_promise<sync_verdict>();
        resolve(
            open.wg_key,
            [rp, open, account_of, peer_of](const std::string& account,
                                            const std::string& id) mutable {
              rp.delegate(account_of(account), sync_atom::value, id, std::move(open),
                          peer_of(account, id));
            },
            [rp](caf::error err) mutable {
              if (err) {
                rp.deliver(std::move(err));
                return;
              }
              sync_verdict v;
              v.code = 7; // PERMISSION_DENIED
              v.message = "peer is not registered";
              rp.deliver(std::move(v));
            });
        return rp;
      },
      [self, account_of, resolve](meta_atom, sync_open& open) -> caf::result<int, std::string> {
        auto rp = self->make_response_promise<int, std::string>();
        resolve(
            open.wg_key,
            [rp, open, account_of](const std::string& account, const std::string& id) mutable {
              rp.delegate(account_of(account), meta_atom::value, id, std::move(open.meta));
            },
            [rp](caf::error err) mutable {
              if (err)
                rp.deliver(std::move(err));
              else
                rp.deliver(7, std::string("peer is not registered")); // PERMISSION_DENIED
            });
        return rp;
      },
      [self, account_of, resolve](logout_atom,
                                  const std::string& wg_key) -> caf::result<peer_view> {
        auto rp = self->make_response_promise<peer_view>();
        // Resolved as a Sync; the account actor deletes the peer (store, then memory), ends its
        // stream and tells the other replicas.
        resolve(
            wg_key,
            [rp, wg_key, account_of](const std::string& account, const std::string& id) mutable {
              rp.delegate(account_of(account), logout_atom::value, id, wg_key);
            },
            [rp, wg_key](caf::error err) mutable {
              if (err) {
                rp.deliver(std::move(err));
                return;
              }
              peer_view v;
              v.code = 5; // NOT_FOUND, as NetBird's GetPeerByPeerPubKey
              v.message = "peer not found: " + core::clip(wg_key, 44);
              rp.deliver(std::move(v));
            });
        return rp;
      },
      [self](fenced_atom, const std::string& reason) {
        // Every stream: the sessions this replica held were ended in the store by another one.
        for (const auto& [id, p] : self->state.peers)
          self->send(p, close_atom::value, reason);
      },
      [self](keys_atom, key_update& u) {
        auto& st = self->state;
        if (u.replace)
          for (auto k = st.by_key.begin(); k != st.by_key.end();)
            k = k->second.first == u.account_id ? st.by_key.erase(k) : std::next(k);
        for (const auto& key : u.removed) {
          auto it = st.by_key.find(key);
          if (it != st.by_key.end() && it->second.first == u.account_id)
            st.by_key.erase(it);
        }
        for (auto& [key, id] : u.added)
          st.by_key[key] = {u.account_id, std::move(id)};
      },
      [self](note_atom, const core::cluster_message& m) {
        auto& st = self->state;
        for (const auto& a : m.accounts)
          if (auto it = st.accounts.find(a.account_id); it != st.accounts.end())
            self->send(it->second, note_atom::value, a);
        for (const auto& s : m.sessions)
          if (s.connected)
            if (auto it = st.peers.find(s.peer_id); it != st.peers.end())
              self->send(it->second, supersede_atom::value, s.token);
      },
  };
}

} // namespace

peer_directory spawn_peer_directory(caf::actor_system& sys, directory_config cfg) {
  return sys.spawn(directory_impl, std::move(cfg));
}

} // namespace nbm::actors
