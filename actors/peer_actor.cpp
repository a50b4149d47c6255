#include "actors/peer_actor.hpp"

#include "actors/account_actor.hpp"
#include "actors/msg_ring.hpp"
#include "actors/telemetry.hpp"
#include "core/fence.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>
#include <unordered_map>
#include <vector>

namespace nbm::actors {

namespace {

struct peer_state {
  peer_state_record rec;
  sink_ptr sink;
  status_writer writer;
  session_observer observer;
  account_actor account;        // may be invalid (tests without maps)
  std::uint64_t superseded = 0; // streams ended by a newer session on another replica
  // For the inspector: the last messages handled (no allocation, no lock) and the last map sent.
  msg_ring<16> ring;
  std::uint64_t last_map_serial = 0, last_map_peers = 0, last_map_rules = 0;
  // Consoles following this actor (`trace`): null while nobody does, so a handled message costs
  // one null check beyond its ring entry. Each tracer is monitored and dropped when it goes down.
  std::unique_ptr<std::vector<caf::actor>> tracers;
  static inline const char* name = "peer_actor";
};

using peer_ptr = peer_actor::stateful_pointer<peer_state>;

// Sends the entry just noted to every tracer (out of line: the hot path only tests the pointer).
[[gnu::noinline]] void push_trace(peer_ptr self) {
  const auto& e = self->state.ring.last();
  for (const auto& t : *self->state.tracers)
    caf::anon_send(t, trace_atom::value, e.seq, e.at_ms, static_cast<std::uint8_t>(e.what), e.token,
                   e.serial); // a typed actor may not send() to an untyped one
}

// Notes a handled message in the ring and, while a console traces this actor, sends it on.
inline void note(peer_ptr self, ring_event what, session_token token, std::uint64_t serial = 0) {
  self->state.ring.note(what, token, serial);
  if (self->state.tracers) [[unlikely]]
    push_trace(self);
}

// How long a failed disconnect waits before it is tried again.
constexpr auto disconnect_retry = std::chrono::seconds(2);

void retry_disconnect(peer_ptr self, session_token token) {
  self->delayed_send(self, disconnect_retry, retry_atom::value, token);
}

// Persists one write and, only once it landed (the writer answers after commit), fires the side
// effects.
caf::result<bool> persist(peer_ptr self, core::status_op op, session_token token,
                          std::string ip = {}) {
  auto rp = self->make_response_promise<bool>();
  const bool connected = op == core::status_op::connect;
  const auto top = connected ? telemetry::status_op::connect : telemetry::status_op::disconnect;
  const auto began = telemetry::now_ns();
  core::status_write w{self->state.rec.account_id, self->state.rec.peer_id, token, op};
  self->request(self->state.writer, caf::infinite, write_atom::value, std::move(w))
      .then(
          [self, rp, token, connected, ip, top, began](bool landed) mutable {
            auto& st = self->state;
            telemetry::peer_status_update(
                top, landed ? telemetry::status_outcome::applied : telemetry::status_outcome::stale,
                telemetry::ms_since(began));
            note(self, landed ? ring_event::landed : ring_event::not_landed, token);
            if (landed) {
              ++st.rec.landed;
              // The session is ours in the database too: its stream gets maps from now on (unless
              // it already ended, or a newer one took over while the write was in flight).
              if (connected && st.rec.token == token && st.sink && st.account) {
                note(self, ring_event::attach, token);
                self->send(st.account, attach_atom::value, st.rec.peer_id, token, peer_actor{self});
              }
              if (st.observer)
                self->send(st.observer, landed_atom::value,
                           session_event{st.rec.account_id, st.rec.peer_id, token, connected, ip});
            } else {
              ++st.rec.refused;
              // The database holds a newer session (another replica): this stream does not own the
              // peer.
              if (connected && st.rec.token == token)
                st.sink = nullptr;
            }
            rp.deliver(landed);
          },
          [self, rp, connected, token, top, began](caf::error& err) mutable {
            telemetry::peer_status_update(top, telemetry::status_outcome::error,
                                          telemetry::ms_since(began));
            ++self->state.rec.failed;
            spdlog::error("peer {}: fenced {} failed: {}", self->state.rec.peer_id,
                          connected ? "connect" : "disconnect", caf::to_string(err));
            // A failed disconnect would leave the peer "connected" in the store for good (the
            // stream is gone, nothing else ends the session): tried again later.
            if (!connected)
              retry_disconnect(self, token);
            rp.deliver(std::move(err));
          });
  return rp;
}

peer_actor::behavior_type peer_impl(peer_ptr self, std::string account_id, std::string peer_id,
                                    status_writer writer, session_observer observer,
                                    account_actor account) {
  auto& st = self->state;
  st.rec.account_id = std::move(account_id);
  st.rec.peer_id = std::move(peer_id);
  st.writer = std::move(writer);
  st.observer = std::move(observer);
  st.account = std::move(account);
  return {
      [self](connect_atom, session_token token, sink_ptr& sink) -> caf::result<bool> {
        auto& st = self->state;
        const auto began = telemetry::now_ns();
        note(self, ring_event::connect, token);
        if (!core::connect_wins(st.rec.token, token)) {
          ++st.rec.dropped; // a newer session holds the peer: NetBird's stale connect
          telemetry::peer_status_update(telemetry::status_op::connect,
                                        telemetry::status_outcome::stale,
                                        telemetry::ms_since(began));
          return false;
        }
        st.rec.token = token;
        auto older = std::exchange(st.sink, std::move(sink));
        if (older)
          older->close("a newer session of this peer took over");
        // NetBird's update channel: created, closing the older one of the peer if there was.
        telemetry::channel_created(telemetry::us_since(began), static_cast<bool>(older));
        return persist(self, core::status_op::connect, token,
                       st.sink ? st.sink->remote_ip() : std::string());
      },
      [self](disconn_atom, session_token token) -> caf::result<bool> {
        auto& st = self->state;
        const auto began = telemetry::now_ns();
        note(self, ring_event::disconnect, token);
        if (!core::disconnect_owns(st.rec.token, token)) {
          ++st.rec.dropped; // not the session that holds the peer: NetBird's stale disconnect
          telemetry::peer_status_update(telemetry::status_op::disconnect,
                                        telemetry::status_outcome::stale,
                                        telemetry::ms_since(began));
          return false;
        }
        st.rec.token = 0;
        st.sink = nullptr;
        if (st.account)
          self->send(st.account, detach_atom::value, st.rec.peer_id, token);
        telemetry::channel_closed(telemetry::us_since(began));
        return persist(self, core::status_op::disconnect, token);
      },
      [self](retry_atom, session_token token) {
        auto& st = self->state;
        note(self, ring_event::retry, token);
        if (st.rec.token != 0)
          return; // a newer session: its fenced connect supersedes this one in the store
        core::status_write w{st.rec.account_id, st.rec.peer_id, token, core::status_op::disconnect};
        const auto began = telemetry::now_ns();
        self->request(st.writer, caf::infinite, write_atom::value, std::move(w))
            .then(
                [self, token, began](bool landed) {
                  auto& st = self->state;
                  telemetry::peer_status_update(telemetry::status_op::disconnect,
                                                landed ? telemetry::status_outcome::applied
                                                       : telemetry::status_outcome::stale,
                                                telemetry::ms_since(began));
                  if (!landed) { // the store holds another session now: nothing left to end
                    ++st.rec.refused;
                    return;
                  }
                  ++st.rec.landed;
                  spdlog::info("peer {}: the disconnect of session {} landed on a retry",
                               st.rec.peer_id, token);
                  if (st.observer)
                    self->send(st.observer, landed_atom::value,
                               session_event{st.rec.account_id, st.rec.peer_id, token, false, ""});
                },
                [self, token, began](caf::error&) {
                  telemetry::peer_status_update(telemetry::status_op::disconnect,
                                                telemetry::status_outcome::error,
                                                telemetry::ms_since(began));
                  ++self->state.rec.failed;
                  retry_disconnect(self, token);
                });
      },
      [self](status_atom) {
        auto r = self->state.rec;
        r.has_sink = static_cast<bool>(self->state.sink);
        auto s = status_of(self, "peer", r.peer_id);
        put_record(s, r);
        s.counters["superseded"] = self->state.superseded;
        // For the inspector (`peer`, `trace`): what it handled last and the last map it sent.
        const auto& st = self->state;
        s.labels["ring"] = st.ring.render();
        s.counters["handled"] = st.ring.seq();
        s.gauges["last_map_serial"] = static_cast<std::int64_t>(st.last_map_serial);
        s.gauges["last_map_peers"] = static_cast<std::int64_t>(st.last_map_peers);
        s.gauges["last_map_rules"] = static_cast<std::int64_t>(st.last_map_rules);
        s.gauges["tracers"] = st.tracers ? static_cast<std::int64_t>(st.tracers->size()) : 0;
        return s;
      },
      [self](trace_atom, const caf::actor& tracer) -> std::string {
        auto& st = self->state;
        if (!tracer)
          return st.ring.render();
        if (!st.tracers) {
          st.tracers = std::make_unique<std::vector<caf::actor>>();
          // A tracer that goes away (its console disconnected) is forgotten; the last one gone
          // puts the actor back on its untraced path.
          self->set_down_handler([self](const caf::down_msg& dm) {
            auto& t = self->state.tracers;
            if (!t)
              return;
            t->erase(std::remove_if(t->begin(), t->end(),
                                    [&](const caf::actor& a) { return a.address() == dm.source; }),
                     t->end());
            if (t->empty())
              t.reset();
          });
        }
        st.tracers->push_back(tracer);
        self->monitor(tracer);
        return st.ring.render();
      },
      [self](map_atom, session_token token, const map_update_ptr& update, bool initial) {
        auto& st = self->state;
        if (token == st.rec.token && st.sink) {
          note(self, ring_event::map, token, update->map.serial);
          st.last_map_serial = update->map.serial;
          st.last_map_peers = update->map.remote_peers.size() + update->map.offline_peers.size();
          st.last_map_rules = update->map.firewall_rules.size();
          st.sink->deliver(update, initial);
        } else {
          // NetBird's SendUpdate to a peer without a channel (found=false).
          telemetry::update_sent(0, false, false);
          note(self, ring_event::map_stale, token, update->map.serial);
        }
      },
      [self](close_atom, const std::string& reason) {
        note(self, ring_event::close, self->state.rec.token);
        if (auto sink = std::exchange(self->state.sink, nullptr))
          sink->close(reason);
      },
      [self](supersede_atom, session_token token) {
        auto& st = self->state;
        if (token <= st.rec.token)
          return; // ours is as new or newer
        const auto old = std::exchange(st.rec.token, token);
        if (auto sink = std::exchange(st.sink, nullptr)) {
          ++st.superseded;
          spdlog::debug("peer {}: session {} ended: session {} landed on another replica",
                        st.rec.peer_id, old, token);
          sink->close("a newer session of this peer landed on another replica");
        }
        if (old != 0 && st.account)
          self->send(st.account, detach_atom::value, st.rec.peer_id, old);
      },
  };
}

struct directory_state {
  std::unordered_map<std::string, peer_actor> peers;       // by peer id (unique across accounts)
  std::unordered_map<std::string, std::string> account_of; // peer id -> account id
  std::unordered_map<std::string, account_actor> accounts; // by account id
  // WireGuard key -> (account id, peer id) of every peer of every account actor alive, as the
  // account actors tell it (key_update).
  std::unordered_map<std::string, std::pair<std::string, std::string>> by_key;
  directory_config cfg;
  static inline const char* name = "peer_directory";
};

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
                                 peer_directory{self}, st.cfg.cluster);
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
    auto p = self->spawn(peer_impl, account_id, peer_id, st.cfg.writer, st.cfg.observer,
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

peer_actor spawn_peer_actor(caf::actor_system& sys, std::string account_id, std::string peer_id,
                            status_writer writer, session_observer observer,
                            account_actor account) {
  return sys.spawn(peer_impl, std::move(account_id), std::move(peer_id), std::move(writer),
                   std::move(observer), std::move(account));
}

peer_directory spawn_peer_directory(caf::actor_system& sys, directory_config cfg) {
  return sys.spawn(directory_impl, std::move(cfg));
}

} // namespace nbm::actors
