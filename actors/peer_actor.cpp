#include "actors/peer_actor.hpp"

#include "actors/telemetry.hpp"
#include "core/fence.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>
#include <vector>

namespace nbm::actors {

namespace {

using peer_ptr = peer_actor::stateful_pointer<peer_state>;

// Sends the entry just noted to every tracer (out of line: the hot path only tests the pointer).
[[gnu::noinline]] void push_trace(peer_ptr self) {
  const auto& e = self->state.ring.last();
  for (const auto& t : *self->state.tracers)
    caf::anon_send(t, traced_atom::value, e.seq, e.at_ms, static_cast<std::uint8_t>(e.what),
                   e.token,
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

} // namespace

peer_actor spawn_peer_actor(caf::actor_system& sys, std::string account_id, std::string peer_id,
                            status_writer writer, session_observer observer,
                            account_actor account) {
  return sys.spawn(peer_impl, std::move(account_id), std::move(peer_id), std::move(writer),
                   std::move(observer), std::move(account));
}

peer_actor spawn_peer_actor(caf::local_actor& parent, std::string account_id, std::string peer_id,
                            status_writer writer, session_observer observer,
                            account_actor account) {
  return parent.spawn(peer_impl, std::move(account_id), std::move(peer_id), std::move(writer),
                      std::move(observer), std::move(account));
}

} // namespace nbm::actors
