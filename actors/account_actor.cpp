#include "actors/account_actor.hpp"

#include "actors/map_workers.hpp"

#include "core/expiry.hpp"
#include "core/posture.hpp"
#include "core/registration.hpp"
#include "crypto/crypto.hpp"
#include "storage/account_store.hpp"
#include "storage/admin_store.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <optional>
#include <random>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>

namespace nbm::actors {

namespace {

double now_unix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// NetBird's UpdateReason of an admin change (resource, operation), for its metrics.
telemetry::reason reason_of(const core::admin_change& c) {
  using telemetry::operation;
  using telemetry::resource;
  const auto saved = [](const std::string& id) {
    return id.empty() ? operation::create : operation::update;
  };
  return std::visit(
      [&](const auto& w) -> telemetry::reason {
        using T = std::decay_t<decltype(w)>;
        namespace ch = core::change;
        if constexpr (std::is_same_v<T, ch::save_group>)
          return {resource::group, saved(w.g.id)};
        else if constexpr (std::is_same_v<T, ch::delete_group>)
          return {resource::group, operation::del};
        else if constexpr (std::is_same_v<T, ch::save_policy>)
          return {resource::policy, saved(w.p.id)};
        else if constexpr (std::is_same_v<T, ch::delete_policy>)
          return {resource::policy, operation::del};
        else if constexpr (std::is_same_v<T, ch::save_route>)
          return {resource::route, saved(w.r.id)};
        else if constexpr (std::is_same_v<T, ch::delete_route>)
          return {resource::route, operation::del};
        else if constexpr (std::is_same_v<T, ch::save_nameservers>)
          return {resource::nameserver_group, saved(w.g.id)};
        else if constexpr (std::is_same_v<T, ch::delete_nameservers>)
          return {resource::nameserver_group, operation::del};
        else if constexpr (std::is_same_v<T, ch::dns_settings>)
          return {resource::dns_settings, operation::update};
        else if constexpr (std::is_same_v<T, ch::settings>)
          return {resource::account_settings, operation::update};
        else if constexpr (std::is_same_v<T, ch::update_peer>)
          return {resource::peer, operation::update};
        else if constexpr (std::is_same_v<T, ch::delete_peer>)
          return {resource::peer, operation::del};
        else if constexpr (std::is_same_v<T, ch::create_setup_key>)
          return {resource::setup_key, operation::create};
        else if constexpr (std::is_same_v<T, ch::update_setup_key>)
          return {resource::setup_key, operation::update};
        else if constexpr (std::is_same_v<T, ch::delete_setup_key>)
          return {resource::setup_key, operation::del};
        else if constexpr (std::is_same_v<T, ch::create_user>)
          return {resource::user, operation::create};
        else if constexpr (std::is_same_v<T, ch::delete_user> || std::is_same_v<T, ch::reject_user>)
          return {resource::user, operation::del};
        else if constexpr (std::is_same_v<T, ch::save_network>)
          return {resource::network, saved(w.n.id)};
        else if constexpr (std::is_same_v<T, ch::delete_network>)
          return {resource::network, operation::del};
        else if constexpr (std::is_same_v<T, ch::save_resource>)
          return {resource::network_resource, saved(w.r.id)};
        else if constexpr (std::is_same_v<T, ch::delete_resource>)
          return {resource::network_resource, operation::del};
        else if constexpr (std::is_same_v<T, ch::save_router>)
          return {resource::network_router, saved(w.r.id)};
        else if constexpr (std::is_same_v<T, ch::delete_router>)
          return {resource::network_router, operation::del};
        else if constexpr (std::is_same_v<T, ch::save_posture_check>)
          return {resource::posture_check, saved(w.c.id)};
        else if constexpr (std::is_same_v<T, ch::delete_posture_check>)
          return {resource::posture_check, operation::del};
        else if constexpr (std::is_same_v<T, ch::delete_account>)
          return {resource::account, operation::del};
        else // a user's update, approval, tokens, JWT groups, a dashboard login
          return {resource::user, operation::update};
      },
      c.what);
}

// ---- account_actor ---------------------------------------------------------------------------

// gRPC status codes (kept numeric: no gRPC in actors/).
constexpr int not_found = 5, permission_denied = 7, failed_precondition = 9, internal = 13,
              unavailable = 14;

// Registrations that queued up while one batch was written go to the store together, at most this
// many per transaction; a registration that keeps conflicting with other replicas gives up after
// this many tries.
constexpr std::size_t max_registration_batch = 256;
constexpr int max_registration_attempts = 8;

peer_view fail(int code, std::string msg) {
  peer_view v;
  v.code = code;
  v.message = std::move(msg);
  return v;
}

using account_ptr_t = account_actor::stateful_pointer<account_state>;

// The account with every change applied so far.
const core::account& current(const account_state& st) {
  return st.working ? *st.working : *st.acc;
}

// The account to change in place. Copied once per fan-out while others may read the committed
// one (maps being encoded, REST readers); taken over without a copy when nobody else holds it.
core::account& mutable_account(account_state& st) {
  if (!st.working) {
    if (st.acc && !st.change && st.acc.use_count() == 1)
      // Sole owner: every account this actor holds was allocated non-const (the loader's, the
      // working copies), so changing it in place is sound.
      st.working = std::const_pointer_cast<core::account>(std::move(st.acc));
    else
      st.working =
          st.acc ? std::make_shared<core::account>(*st.acc) : std::make_shared<core::account>();
  }
  return *st.working;
}

void index_peer(account_state& st, const core::peer& p, std::size_t pos) {
  st.used_ips.insert(p.ip);
  st.used_labels.insert(p.dns_label);
  st.id_by_key[p.key] = p.id;
  st.pos_by_id[p.id] = pos;
}

void tell_directory(const account_state& st, key_update u) {
  if (st.dir && (u.replace || !u.added.empty() || !u.removed.empty()))
    caf::anon_send(st.dir, keys_atom::value, std::move(u));
}

// Tells the other replicas (when there are: PostgreSQL) what this actor committed.
void publish(const account_state& st, core::account_note n) {
  if (st.cluster) {
    n.account_id = st.rec.account_id;
    caf::anon_send(st.cluster, publish_atom::value, std::move(n));
  }
}

// One write of one peer that moved the serial by one to `serial` (a Logout, the expiry's delete
// or login expiration): the other replicas read that peer, and `parts` besides.
void publish_peer_write(const account_state& st, const std::string& peer_id, std::uint64_t serial,
                        unsigned parts = 0) {
  core::account_note n;
  n.serial = serial;
  n.moved = 1;
  n.peers.push_back(peer_id);
  n.parts = parts;
  publish(st, std::move(n));
}

// After the account was read: the indexes from scratch, plus the reservations of registrations
// in flight.
void rebuild_indexes(account_state& st) {
  st.used_ips.clear();
  st.used_labels.clear();
  auto before = std::move(st.id_by_key);
  st.id_by_key.clear();
  st.pos_by_id.clear();
  const auto& a = current(st);
  for (std::size_t i = 0; i < a.peers.size(); ++i)
    index_peer(st, a.peers[i], i);
  if (st.flight)
    for (const auto& r : st.flight->rows) {
      st.used_ips.insert(r.peer.ip);
      st.used_labels.insert(r.peer.dns_label);
    }
  // The directory learns what changed of the keys (every key after the first read).
  key_update u;
  u.account_id = st.rec.account_id;
  for (const auto& [key, id] : st.id_by_key) {
    auto it = before.find(key);
    if (it == before.end() || it->second != id)
      u.added.emplace_back(key, id);
  }
  for (const auto& [key, id] : before)
    if (!st.id_by_key.count(key))
      u.removed.push_back(key);
  tell_directory(st, std::move(u));
}

// Whether a peer other than the one at `pos`, or a registration in flight, holds `value` in the
// field `of` (a store from before the unique indexes may hold a duplicate): then it stays used.
bool held_elsewhere(const account_state& st, const core::account& a, std::size_t pos,
                    std::string core::peer::*of, const std::string& value) {
  for (std::size_t i = 0; i < a.peers.size(); ++i)
    if (i != pos && a.peers[i].*of == value)
      return true;
  if (st.flight)
    for (const auto& r : st.flight->rows)
      if (r.peer.*of == value)
        return true;
  return false;
}

// The peer at `pos` of `a` (the account the indexes describe) out of the indexes before it leaves
// `a` (a deletion): its IP, label, key and position; the peers after it move one place up. The
// indexes end as rebuild_indexes would leave them for `a` without it, and the directory forgets
// exactly its key. Scans compare strings rather than hashing every peer again.
void unindex_peer(account_state& st, const core::account& a, std::size_t pos) {
  const auto& gone = a.peers[pos];
  if (!held_elsewhere(st, a, pos, &core::peer::ip, gone.ip))
    st.used_ips.erase(gone.ip);
  if (!held_elsewhere(st, a, pos, &core::peer::dns_label, gone.dns_label))
    st.used_labels.erase(gone.dns_label);
  key_update u;
  u.account_id = st.rec.account_id;
  if (auto it = st.id_by_key.find(gone.key); it != st.id_by_key.end() && it->second == gone.id) {
    st.id_by_key.erase(it);
    u.removed.push_back(gone.key);
  }
  st.pos_by_id.erase(gone.id);
  for (std::size_t i = pos + 1; i < a.peers.size(); ++i)
    st.pos_by_id[a.peers[i].id] = i - 1;
  tell_directory(st, std::move(u));
}

// After a committed change of one peer (`peer_id`) that moved the serial by one, `before` the
// account the indexes describe and `after` the account the change left: the indexes brought up to
// date in place when the peer was deleted (`after` holds the others in the same order) or kept its
// place (a rename may have changed its label). False: they were not (rebuild them).
bool reindex_peer_change(account_state& st, const core::account& before, const core::account& after,
                         const std::string& peer_id) {
  auto it = st.pos_by_id.find(peer_id);
  if (it == st.pos_by_id.end() || it->second >= before.peers.size() ||
      before.peers[it->second].id != peer_id)
    return false;
  const auto pos = it->second;
  if (after.peers.size() + 1 == before.peers.size()) { // deleted
    if (pos < after.peers.size() && after.peers[pos].id != before.peers[pos + 1].id)
      return false;
    unindex_peer(st, before, pos);
    return true;
  }
  if (after.peers.size() != before.peers.size() || after.peers[pos].id != peer_id)
    return false;
  const auto& was = before.peers[pos];
  const auto& now = after.peers[pos];
  if (now.key != was.key || now.ip != was.ip)
    return false;
  if (now.dns_label != was.dns_label) {
    if (!held_elsewhere(st, before, pos, &core::peer::dns_label, was.dns_label))
      st.used_labels.erase(was.dns_label);
    st.used_labels.insert(now.dns_label);
  }
  return true;
}

const core::peer* find_peer(const account_state& st, const std::string& id) {
  auto it = st.pos_by_id.find(id);
  if (it == st.pos_by_id.end())
    return nullptr;
  const auto& a = current(st);
  return it->second < a.peers.size() && a.peers[it->second].id == id ? &a.peers[it->second]
                                                                     : nullptr;
}

// A committed peer into the account in memory (replacing one of the same id: a read may have
// brought it already), with its group memberships.
void add_peer(account_state& st, core::peer p, const std::vector<std::string>& groups) {
  auto& a = mutable_account(st);
  const std::string id = p.id;
  auto it = st.pos_by_id.find(id);
  const bool known =
      it != st.pos_by_id.end() && it->second < a.peers.size() && a.peers[it->second].id == id;
  const std::size_t pos = known ? it->second : a.peers.size();
  if (known)
    a.peers[pos] = std::move(p);
  else
    a.peers.push_back(std::move(p));
  index_peer(st, a.peers[pos], pos);
  if (!known) {
    key_update u;
    u.account_id = st.rec.account_id;
    u.added.emplace_back(a.peers[pos].key, id);
    tell_directory(st, std::move(u));
  }
  for (auto& g : a.groups)
    if (std::find(groups.begin(), groups.end(), g.id) != groups.end() &&
        (!known || std::find(g.peers.begin(), g.peers.end(), id) == g.peers.end()))
      g.peers.push_back(id);
}

// The account with every change applied so far, indexed for maps.
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
  const auto& a = current(st);
  st.rec.serial = a.net.serial;
  st.rec.peers = a.peers.size();
  st.rec.connected = st.sessions.size();
}

// A change of the account will update its peers: counted, and the reason of the next fan-out.
void triggered(account_state& st, telemetry::reason r) {
  telemetry::peers_update_triggered(r);
  st.reason = r;
}

void schedule_flush(account_ptr_t self) {
  if (!self->state.flush_scheduled) {
    self->state.flush_scheduled = true;
    // Behind every message already queued: a burst of changes is fanned out once.
    self->send(self, flush_atom::value);
  }
}

// ---- maps -----------------------------------------------------------------------------------
// A fan-out computes every connected peer's map against one immutable view of the account (the
// change: shared, never changed) and sends those whose fingerprint moved, each as soon as it is
// computed: a map of a large account with NetBird's default All policy is hundreds of KB, so a
// fan-out never holds many at once. Small ones run here, one map computed and sent at a time; a
// large one goes to the map workers a small batch at a time (at most their credit() batches out;
// the next goes out once one came back and its maps were sent) while the actor handles its other
// messages. One fan-out is in flight per account: a change arriving meanwhile makes one more
// after it (against the account as it is then), so a peer never gets an older map after a newer
// one. A session's first map goes the same way (a cheap one at once, even beside a flight: the
// new session is in none of the flight's batches).

// What `maps` maps of this account are expected to cost: as its last batches measured them, else a
// guess from its size (tools/bench_netmap: about 10 us a map at 50 peers, 13 us at 5,000 peers in
// 200 groups, 100 us at 5,000 in 15; the guess errs high, towards the workers).
std::int64_t estimated_ns(const account_state& st, std::size_t maps) {
  const auto per = st.ns_per_map > 0
                       ? st.ns_per_map
                       : 2'000 + 50 * static_cast<std::int64_t>(current(st).peers.size());
  return per * static_cast<std::int64_t>(maps);
}

bool cheap(const account_state& st, std::size_t maps) {
  return !st.workers || estimated_ns(st, maps) < st.workers->inline_ns();
}

// Maps in a batch handed to the workers: at most batch_max, fewer for large maps (about
// map_workers::batch_objects objects) or slow ones (about map_workers::batch_ns of work).
std::size_t batch_size(const account_state& st) {
  auto n = static_cast<std::int64_t>(st.workers->batch_max());
  n = std::min(n, map_workers::batch_ns / std::max<std::int64_t>(1, estimated_ns(st, 1)));
  if (st.objects_per_map > 0)
    n = std::min(n, static_cast<std::int64_t>(map_workers::batch_objects / st.objects_per_map));
  return static_cast<std::size_t>(std::max<std::int64_t>(1, n));
}

// The estimates follow what a batch measured; a small batch weighs less.
void learn_cost(account_state& st, const map_batch& b) {
  if (b.computed == 0)
    return;
  const auto w = static_cast<std::int64_t>(std::min<std::size_t>(b.computed, 16));
  const auto follow = [w](std::int64_t old, std::int64_t now) {
    return old > 0 ? (old * (16 - w) + now * w) / 16 : now;
  };
  const auto n = static_cast<std::int64_t>(b.computed);
  st.ns_per_map = follow(st.ns_per_map, std::max<std::int64_t>(1, b.compute_ns / n));
  st.objects_per_map = static_cast<std::size_t>(
      follow(static_cast<std::int64_t>(st.objects_per_map),
             std::max<std::int64_t>(1, static_cast<std::int64_t>(b.objects) / n)));
}

// A computed map to the session it was computed for (a session that ended or was superseded
// meanwhile gets nothing): a first map always, another when it changed. The item lets go of it.
void deliver_map(account_ptr_t self, map_item& item) {
  auto& st = self->state;
  const bool held = item.update != nullptr;
  auto it = st.sessions.find(item.peer_id);
  if (it == st.sessions.end() || it->second.token != item.token) {
    ++st.maps_stale;
  } else if (item.failed) {
    // logged; the next fan-out computes it again (a first map stays first)
  } else if (!item.update) {
    ++st.rec.maps_skipped;
  } else {
    auto& s = it->second;
    s.fingerprint = item.fingerprint;
    s.first_sent = true;
    self->send(s.peer, map_atom::value, s.token, std::move(item.update), item.initial);
    ++st.rec.maps_sent;
  }
  item.update.reset();
  if (held)
    st.held->sub(1);
}

// The inspector's and NetBird's view of a fan-out that ended.
void fanout_done(account_state& st, std::chrono::steady_clock::time_point started,
                 std::uint64_t sent_before) {
  st.last_fanout_us = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::steady_clock::now() - started)
                          .count();
  telemetry::peers_update_duration(static_cast<double>(st.last_fanout_us) / 1000.0);
  st.last_fanout_maps = st.rec.maps_sent - sent_before;
}

void run_maps(account_ptr_t self);

// Hands the flight's next batches to the workers, up to their credit (skipping sessions that
// ended or were superseded since it began); the flight ends when every batch came back.
void hand_out(account_ptr_t self) {
  auto& st = self->state;
  auto& fl = *st.mapping;
  auto& todo = fl.todo->items;
  const auto me = caf::actor_cast<account_actor>(self);
  while (fl.out < st.workers->credit() && fl.next < todo.size()) {
    auto part = std::make_shared<map_batch>();
    part->change = fl.todo->change;
    part->reason = fl.todo->reason;
    part->flight = fl.id;
    part->held = st.held;
    const auto size = batch_size(st);
    while (part->items.size() < size && fl.next < todo.size()) {
      auto& item = todo[fl.next++];
      if (auto it = st.sessions.find(item.peer_id);
          it != st.sessions.end() && it->second.token == item.token)
        part->items.push_back(std::move(item));
    }
    if (part->items.empty())
      continue;
    ++fl.out;
    st.workers->post([part, me] {
      part->compute();
      caf::anon_send(me, mapped_atom::value, part);
    });
  }
  if (fl.out > 0 || fl.next < todo.size())
    return;
  const auto done = std::move(*st.mapping);
  st.mapping.reset();
  if (done.full)
    fanout_done(st, done.started, done.sent_before);
  update_record(st);
  run_maps(self); // what changed meanwhile, and the first maps of sessions that attached
}

// Computes maps against the account as it is now: every session's (`full`, a fan-out) or the first
// maps of the sessions waiting for one. Here when cheap (or `offload` is false), one computed and
// sent at a time; else on the map workers as this account's flight.
void compute_maps(account_ptr_t self, bool full, bool offload) {
  auto& st = self->state;
  const auto started = std::chrono::steady_clock::now();
  const auto sent_before = st.rec.maps_sent;
  auto b = std::make_shared<map_batch>();
  b->change = current_change(st);
  b->held = st.held;
  if (full) {
    ++st.rec.changes;
    b->reason = st.reason.value_or(telemetry::reason{});
    st.reason.reset();
  }
  const auto& view = *b->change->view;
  // A session whose peer is gone or whose login expired ends (false); the others get an item.
  const auto consider = [&](const std::string& id, const attached_session& s) {
    auto idx = view.peer_index(id);
    if (!idx) { // the peer is gone: its stream ends
      self->send(s.peer, close_atom::value, std::string("peer deleted"));
      return false;
    }
    if (core::must_log_in_again(view.acc(), view.acc().peers[*idx], now_unix())) {
      // Its login expired (marked by the expiry actor here or on another replica): the stream
      // ends, and the next Sync is refused until the peer logs in again.
      self->send(s.peer, close_atom::value, std::string("peer login expired"));
      return false;
    }
    map_item item;
    item.peer_id = id;
    item.token = s.token;
    item.peer = *idx;
    item.initial = !s.first_sent;
    item.sent_fingerprint = s.fingerprint;
    b->items.push_back(std::move(item));
    return true;
  };
  if (full) {
    for (auto it = st.sessions.begin(); it != st.sessions.end();)
      it = consider(it->first, it->second) ? std::next(it) : st.sessions.erase(it);
  } else {
    for (const auto& id : st.awaiting_first)
      if (auto it = st.sessions.find(id); it != st.sessions.end() && !consider(id, it->second))
        st.sessions.erase(it);
  }
  st.awaiting_first.clear();
  const auto n = b->items.size();
  if (n == 0 || !offload || cheap(st, n)) {
    // Here: each map goes to its peer actor (which encodes and writes it) before the next is
    // computed, so no more than one is held.
    for (auto& item : b->items) {
      b->compute(item);
      deliver_map(self, item);
    }
    learn_cost(st, *b);
    ++st.batches_here;
    if (full)
      fanout_done(st, started, sent_before);
    update_record(st);
    return;
  }
  map_flight fl;
  fl.id = ++st.flights;
  fl.todo = std::move(b);
  fl.maps = n;
  fl.full = full;
  fl.started = started;
  fl.sent_before = sent_before;
  st.mapping = std::move(fl);
  update_record(st);
  hand_out(self);
}

// Starts whatever maps wait, unless a flight is under way (then only first maps that are cheap).
void run_maps(account_ptr_t self) {
  auto& st = self->state;
  if (st.mapping) {
    if (!st.awaiting_first.empty() && cheap(st, st.awaiting_first.size()))
      compute_maps(self, false, false);
    return;
  }
  if (st.fanout_wanted) {
    st.fanout_wanted = false;
    compute_maps(self, true, true);
  } else if (!st.awaiting_first.empty()) {
    compute_maps(self, false, true);
  }
}

// Every connected peer whose map the changes altered gets its new map, once; the others nothing.
void fan_out(account_ptr_t self) {
  auto& st = self->state;
  // NetBird counts every update of an account's peers by its reason; a read of the account (no
  // change of ours) counts as account/reload.
  if (!st.reason)
    triggered(st, {});
  if (st.sessions.empty()) { // nobody to tell: commit the changes, index them when needed
    ++st.rec.changes;
    st.reason.reset();
    if (st.working) {
      st.acc = std::move(st.working);
      st.working.reset();
      st.change.reset();
    }
    update_record(st);
    return;
  }
  st.fanout_wanted = true;
  run_maps(self);
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

// The account was deleted (here, or by another replica or process): every stream of it ends (its
// peers reconnect and are refused), registrations waiting are refused, and the actor ends; the
// directory forgets it and its keys (a later lookup finds no account).
void account_gone(account_ptr_t self) {
  auto& st = self->state;
  for (auto& [id, s] : st.sessions)
    self->send(s.peer, close_atom::value, std::string("account deleted"));
  st.sessions.clear();
  st.awaiting_first.clear();
  for (auto& r : st.registrations)
    r.rp.deliver(fail(not_found, "couldn't add peer: setup key is invalid"));
  st.registrations.clear();
  spdlog::info("account {}: deleted; its actor ends", st.rec.account_id);
  self->quit();
}

// Takes `acc` (read from the store: everything its serial holds) as the account and fans out what
// changed. An account that was there and is gone ends the actor (account_gone). `same_peers`: the
// caller knows `acc` holds exactly the peers the account held (a change of ours that wrote no
// peer): the indexes of keys, IPs and labels stand as they are (at 5,000 peers rebuilding them
// was a sixth of a group update's time).
void adopt(account_ptr_t self, const account_ptr& acc, bool same_peers = false) {
  auto& st = self->state;
  const bool was_loaded = st.rec.loaded;
  st.acc = acc ? acc : std::make_shared<core::account>();
  st.rec.loaded = static_cast<bool>(acc);
  st.working.reset();
  st.change.reset();
  if (!same_peers || !acc)
    rebuild_indexes(st);
  fan_out(self);
  if (was_loaded && !acc)
    account_gone(self);
}

void pump_registrations(account_ptr_t self);

// Reads the whole account again (another process or replica wrote to it), then goes on with the
// registrations that waited. Nothing else of this account is handled meanwhile.
void reload(account_ptr_t self) {
  self->request(self->state.loader, caf::infinite, load_atom::value, self->state.rec.account_id)
      .await(
          [self](const account_ptr& acc) {
            ++self->state.rec.reloads;
            adopt(self, acc);
            pump_registrations(self);
          },
          [self](caf::error& err) {
            spdlog::error("account {}: reload failed: {}", self->state.rec.account_id,
                          caf::to_string(err));
            pump_registrations(self);
          });
}

// A write that moved the store's serial to `serial`, whose effect memory already follows: that
// serial is taken when the write was the one since ours, else everything it holds is read. While
// a registration batch is in flight, its outcome decides (this write counts).
void follow_serial(account_ptr_t self, std::uint64_t serial) {
  auto& st = self->state;
  const auto ours = current(st).net.serial;
  if (st.flight)
    st.polled_serial = std::max(st.polled_serial, serial);
  else if (serial == ours + 1)
    mutable_account(st).net.serial = serial; // that write alone: nothing else to read
  else if (serial > ours)
    reload(self); // another write came between: read everything that serial holds
}

// A Login of a peer the account holds, decided from memory.
peer_view login_view(const account_state& st, const core::peer& p) {
  const auto& a = current(st);
  if (core::must_log_in_again(a, p, now_unix()))
    return fail(permission_denied, "peer login has expired, please log in once more");
  peer_view v;
  v.peer = p;
  v.network = a.net.net;
  v.serial = a.net.serial;
  if (!p.status.requires_approval) // NetBird's getPeerLoginInfo: none for a peer not yet valid
    v.checks = core::client_checks(a, p.id);
  return v;
}

// Chooses IP and DNS label for a registration (reserving them), or answers it at once.
std::optional<peer_view> prepare_registration(account_state& st, const pending_registration& r,
                                              std::optional<peer_registration>& row) {
  if (!st.rec.loaded)
    return fail(not_found, "couldn't add peer: setup key is invalid"); // the account is gone
  if (auto it = st.id_by_key.find(r.req.wg_key); it != st.id_by_key.end())
    if (const auto* known = find_peer(st, it->second))
      return login_view(st, *known); // registered meanwhile (a Login racing this one)
  const auto& a = current(st);
  const auto* all = a.find_group_by_name("All");
  if (!all)
    return fail(not_found, "group 'All' not found for account " + a.id);
  auto ip = core::allocate_peer_ip_with(
      a.net.net, [&](const std::string& x) { return st.used_ips.count(x) > 0; }, st.rng());
  if (!ip)
    return fail(failed_precondition, "network " + a.net.net + " is out of IPs");
  auto base = core::parsed_domain_label(r.req.meta.hostname);
  auto label = core::unique_host_label_with(
      base.value_or("peer"), [&](const std::string& l) { return st.used_labels.count(l) > 0; });
  if (!label)
    return fail(internal, "failed handling request");
  peer_registration out;
  auto& p = out.peer;
  p.id = crypto::random_id();
  p.account_id = a.id;
  p.key = r.req.wg_key;
  p.ip = *ip;
  p.name = r.req.meta.hostname;
  p.dns_label = *label;
  p.ssh_key = r.req.ssh_key;
  p.ephemeral = r.key.ephemeral;
  p.extra_dns_labels = r.req.extra_dns_labels;
  p.meta = r.req.meta;
  const auto now = storage::store_time(); // written as is: memory and store hold the same time
  p.last_login = now;
  p.created_at = now;
  p.status.last_seen = now;
  out.groups.push_back(all->id);
  for (const auto& g : r.key.auto_groups)
    if (g != all->id)
      out.groups.push_back(g);
  out.setup_key_id = r.key.id;
  st.used_ips.insert(p.ip);
  st.used_labels.insert(p.dns_label);
  row = std::move(out);
  return std::nullopt;
}

void release(account_state& st, const peer_registration& r) {
  st.used_ips.erase(r.peer.ip);
  st.used_labels.erase(r.peer.dns_label);
}

// What the store made of a batch: registered peers go into the account in memory (not read back);
// the serial moves with them only when nobody else wrote meanwhile, else the account is read again.
void on_registered(account_ptr_t self, registration_flight& fl, registration_outcome& out) {
  auto& st = self->state;
  st.flight.reset();
  const auto ours = current(st).net.serial;
  std::uint64_t added = 0;
  bool reread = false;
  std::vector<std::pair<std::size_t, peer_view>> answers;
  std::vector<pending_registration> retry;
  for (std::size_t i = 0; i < fl.rows.size(); ++i) {
    auto& item = fl.items[i];
    auto& row = fl.rows[i];
    const auto result = i < out.results.size() ? out.results[i] : registered_as::conflict;
    switch (result) {
    case registered_as::registered: {
      ++added;
      spdlog::info("peer {} registered in account {} with setup key {} as {} ({})", row.peer.id,
                   row.peer.account_id, row.setup_key_id, row.peer.ip, row.peer.dns_label);
      peer_view v;
      v.peer = row.peer;
      v.network = current(st).net.net;
      v.registered = true;
      v.groups = row.groups;
      const auto id = row.peer.id;
      const bool pending = row.peer.status.requires_approval;
      answers.emplace_back(i, std::move(v));
      add_peer(st, std::move(row.peer), row.groups);
      if (!pending)
        answers.back().second.checks = core::client_checks(current(st), id);
      break;
    }
    case registered_as::key_refused:
      spdlog::info("setup key refused: key {} of account {} was used up or revoked meanwhile",
                   row.setup_key_id, row.peer.account_id);
      release(st, row);
      answers.emplace_back(i, fail(failed_precondition, "couldn't add peer: setup key is invalid"));
      break;
    case registered_as::conflict: // another replica took the IP, the label or the key
      release(st, row);
      reread = true;
      if (++item.attempts >= max_registration_attempts)
        answers.emplace_back(i, fail(internal, "failed handling request"));
      else
        retry.push_back(std::move(item));
      break;
    }
  }
  if (added > 0) { // the other replicas read exactly these peers
    core::account_note n;
    n.serial = out.serial_after;
    n.moved = added;
    for (std::size_t i = 0; i < fl.rows.size(); ++i)
      if (i < out.results.size() && out.results[i] == registered_as::registered)
        n.peers.push_back(fl.rows[i].peer.id);
    publish(st, std::move(n));
  }
  if (added > 0 && ours + added == out.serial_after)
    mutable_account(st).net.serial = out.serial_after; // ours alone: nothing else to read
  else if (out.serial_after > ours)
    reread = true; // someone else wrote too: their change comes with a full read
  if (st.polled_serial > std::max(ours, out.serial_after))
    reread = true; // a poll saw a later write during the flight
  st.polled_serial = 0;
  const auto serial = current(st).net.serial;
  for (auto& [i, v] : answers) {
    if (v.code == 0)
      v.serial = serial;
    fl.items[i].rp.deliver(std::move(v));
  }
  for (auto it = retry.rbegin(); it != retry.rend(); ++it)
    st.registrations.push_front(std::move(*it));
  if (added > 0) {
    for (std::size_t i = 0; i < added; ++i) // NetBird counts each registration's update
      triggered(st, {telemetry::resource::peer, telemetry::operation::create});
    schedule_flush(self);
  }
  if (reread)
    reload(self); // then the registrations that wait
  else
    pump_registrations(self);
}

// Hands the registrations that wait to the store worker, one batch at a time.
void pump_registrations(account_ptr_t self) {
  auto& st = self->state;
  if (st.flight || st.registrations.empty())
    return;
  auto fl = std::make_shared<registration_flight>();
  std::unordered_set<std::string> keys;
  std::vector<pending_registration> later; // a second registration of a key in this batch
  while (!st.registrations.empty() && fl->rows.size() < max_registration_batch) {
    auto r = std::move(st.registrations.front());
    st.registrations.pop_front();
    if (keys.count(r.req.wg_key)) {
      later.push_back(std::move(r));
      continue;
    }
    std::optional<peer_registration> row;
    if (auto answer = prepare_registration(st, r, row)) {
      r.rp.deliver(std::move(*answer));
      continue;
    }
    keys.insert(r.req.wg_key);
    fl->rows.push_back(std::move(*row));
    fl->items.push_back(std::move(r));
  }
  for (auto it = later.rbegin(); it != later.rend(); ++it)
    st.registrations.push_front(std::move(*it));
  if (fl->rows.empty())
    return;
  st.flight = fl;
  self->request(st.loader, caf::infinite, store_peers_atom::value, st.rec.account_id, fl->rows)
      .then([self, fl](registration_outcome& out) { on_registered(self, *fl, out); },
            [self, fl](caf::error& err) {
              auto& st = self->state;
              spdlog::error("account {}: registering {} peer(s) failed: {}", st.rec.account_id,
                            fl->rows.size(), caf::to_string(err));
              st.flight.reset();
              for (std::size_t i = 0; i < fl->rows.size(); ++i) {
                release(st, fl->rows[i]);
                fl->items[i].rp.deliver(fail(internal, "failed handling request"));
              }
              reload(self); // whatever the store holds now
            });
}

// Whether a peer may begin a Sync, from the account in memory.
std::tuple<int, std::string> may_sync(const account_state& st, const std::string& peer_id) {
  const auto* p = find_peer(st, peer_id);
  if (!p)
    return {permission_denied, "peer is not registered"};
  if (core::must_log_in_again(current(st), *p, now_unix()))
    return {permission_denied, "peer login has expired, please log in once more"};
  return {0, std::string()};
}

// The meta a stream or SyncMeta brought, when it changes the peer's (an empty UI version keeps
// the old one); nullopt otherwise.
std::optional<core::peer_meta> changed_meta(const core::peer& p, bool has_meta,
                                            const core::peer_meta& meta) {
  if (!has_meta || meta.hostname.empty())
    return std::nullopt;
  core::peer_meta m = meta;
  if (m.ui_version.empty())
    m.ui_version = p.meta.ui_version;
  if (m == p.meta)
    return std::nullopt;
  return m;
}

// A peer's new meta into memory (maps see it at the next fan-out).
void apply_meta(account_ptr_t self, const std::string& peer_id, core::peer_meta m) {
  auto& st = self->state;
  if (!find_peer(st, peer_id))
    return;
  mutable_account(st).peers[st.pos_by_id[peer_id]].meta = std::move(m);
  telemetry::peer_meta_update();
  triggered(st, {telemetry::resource::peer, telemetry::operation::update});
  schedule_flush(self);
}

// The meta a landed session's stream brought: into memory, then to the store worker (a failed
// write is logged; the peer's next Sync brings the meta again).
void take_meta(account_ptr_t self, const std::string& peer_id, core::peer_meta m) {
  auto& st = self->state;
  if (!find_peer(st, peer_id))
    return;
  apply_meta(self, peer_id, m);
  self->request(st.loader, caf::infinite, meta_atom::value, st.rec.account_id, peer_id,
                std::move(m))
      .then([](bool) {},
            [self, peer_id](caf::error& err) {
              spdlog::warn("account {}: the meta of peer {} was not stored: {}",
                           self->state.rec.account_id, peer_id, caf::to_string(err));
            });
}

// A Sync's verdict from memory; the meta it brought waits for its session to land.
sync_verdict sync_verdict_of(account_ptr_t self, const std::string& peer_id, const sync_open& open,
                             peer_actor peer) {
  auto& st = self->state;
  sync_verdict v;
  std::tie(v.code, v.message) = may_sync(st, peer_id);
  if (v.code != 0)
    return v;
  if (auto m = changed_meta(*find_peer(st, peer_id), open.has_meta, open.meta))
    st.pending_meta[peer_id] = std::move(*m);
  else
    st.pending_meta.erase(peer_id);
  v.account_id = st.rec.account_id;
  v.peer_id = peer_id;
  v.peer = std::move(peer);
  return v;
}

// A deleted peer out of the account in memory: its groups, the indexes (the directory forgets its
// key), the meta it brought; its stream ends now, the others' maps lose it at the next fan-out.
void drop_peer(account_ptr_t self, const std::string& peer_id) {
  auto& st = self->state;
  auto& a = mutable_account(st);
  const auto pos = st.pos_by_id.at(peer_id); // the caller found it
  unindex_peer(st, a, pos);
  a.peers.erase(a.peers.begin() + static_cast<std::ptrdiff_t>(pos));
  for (auto& g : a.groups)
    g.peers.erase(std::remove(g.peers.begin(), g.peers.end(), peer_id), g.peers.end());
  triggered(st, {telemetry::resource::peer, telemetry::operation::del});
  st.pending_meta.erase(peer_id);
  if (auto it = st.sessions.find(peer_id); it != st.sessions.end()) {
    self->send(it->second.peer, close_atom::value, std::string("peer deleted"));
    st.sessions.erase(it);
    st.awaiting_first.erase(peer_id);
  }
  schedule_flush(self);
}

// Logout (NetBird deletes the peer): its store worker deletes it, then memory follows before any
// other message of this account is handled (await); the other replicas read exactly that peer.
void logout(account_ptr_t self, caf::typed_response_promise<peer_view> rp,
            const std::string& peer_id, const std::string& wg_key) {
  auto& st = self->state;
  const auto* p = find_peer(st, peer_id);
  if (!p) {
    rp.deliver(fail(not_found, "peer not found: " + core::clip(wg_key, 44)));
    return;
  }
  peer_view v;
  v.peer = *p;
  self->request(st.loader, caf::infinite, logout_atom::value, *p)
      .await(
          [self, rp, v, wg_key](logout_outcome& out) mutable {
            auto& st = self->state;
            if (out.failure == store_failure::unavailable) {
              rp.deliver(fail(unavailable, "the store is unavailable, please try again later"));
              return;
            }
            if (out.failure != store_failure::none) { // the worker logged it
              rp.deliver(fail(internal, "failed handling request"));
              return;
            }
            const auto ours = current(st).net.serial;
            if (find_peer(st, v.peer.id))
              drop_peer(self, v.peer.id);
            if (!out.deleted) { // gone meanwhile (another replica deleted it)
              if (st.flight)
                st.polled_serial = std::max(st.polled_serial, out.serial_after);
              else if (out.serial_after > ours)
                reload(self);
              rp.deliver(fail(not_found, "peer not found: " + core::clip(wg_key, 44)));
              return;
            }
            spdlog::info("peer {} of account {} logged out and deleted", v.peer.id,
                         st.rec.account_id);
            // As a REST delete: the others read that peer (gone) and the groups again.
            publish_peer_write(st, v.peer.id, out.serial_after,
                               storage::account_store::part_groups);
            follow_serial(self, out.serial_after);
            rp.deliver(std::move(v));
          },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
}

// Another replica committed a write to this account: applied exactly when it is the one write
// since the serial held here (its parts and peers read again), else the whole account is read.
void on_note(account_ptr_t self, core::account_note note) {
  auto& st = self->state;
  ++st.notes;
  if (st.flight) { // the batch's outcome decides whether to read again; this write counts
    st.polled_serial =
        std::max(st.polled_serial, note.serial == 0 ? ~std::uint64_t{0} : note.serial);
    return;
  }
  const auto ours = current(st).net.serial;
  if (note.serial != 0 && note.serial <= ours)
    return; // held already (a read since brought it)
  if (!st.rec.loaded || note.serial == 0 || note.moved == 0 || note.serial - note.moved != ours) {
    reload(self);
    return;
  }
  self->request(st.loader, caf::infinite, note_atom::value, std::move(note), committed(st))
      .await(
          [self](const account_ptr& acc) {
            ++self->state.notes_applied;
            adopt(self, acc);
            pump_registrations(self);
          },
          [self](caf::error& err) {
            spdlog::warn("account {}: another replica's write could not be read: {}",
                         self->state.rec.account_id, caf::to_string(err));
            reload(self);
          });
}

account_actor::behavior_type account_impl(account_ptr_t self, std::string account_id,
                                          account_loader loader, core::map_context ctx,
                                          peer_directory dir, cluster_actor cluster,
                                          std::shared_ptr<map_workers> workers) {
  auto& st = self->state;
  st.workers = std::move(workers);
  st.held = std::make_shared<maps_held>();
  st.dir = std::move(dir);
  st.cluster = std::move(cluster);
  st.rec.account_id = std::move(account_id);
  st.loader = std::move(loader);
  st.ctx = std::move(ctx);
  // Loaded once, before any message is handled (await keeps them queued).
  self->request(st.loader, caf::infinite, load_atom::value, st.rec.account_id)
      .await(
          [self](const account_ptr& acc) {
            auto& st = self->state;
            st.acc = acc ? acc : std::make_shared<core::account>();
            st.rec.loaded = static_cast<bool>(acc);
            rebuild_indexes(st);
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
        // The session landed: the meta its stream brought goes into memory (its first map sees it)
        // and to the store.
        if (auto m = st.pending_meta.find(peer_id); m != st.pending_meta.end()) {
          auto meta = std::move(m->second);
          st.pending_meta.erase(m);
          take_meta(self, peer_id, std::move(meta));
        }
        const auto ch = current_change(st);
        auto idx = ch->view->peer_index(peer_id);
        if (!idx) {
          st.sessions.erase(peer_id);
          st.awaiting_first.erase(peer_id);
          self->send(peer, close_atom::value, std::string("peer not found"));
          return;
        }
        if (core::must_log_in_again(ch->view->acc(), ch->view->acc().peers[*idx], now_unix())) {
          st.sessions.erase(peer_id);
          st.awaiting_first.erase(peer_id);
          self->send(peer, close_atom::value, std::string("peer login expired"));
          return;
        }
        s.token = token;
        s.peer = std::move(peer);
        s.fingerprint = 0;
        s.first_sent = false;
        // Its first map: at once when cheap, else by the map workers (batched with the other
        // sessions waiting for theirs, behind the fan-out in flight).
        st.awaiting_first.insert(peer_id);
        run_maps(self);
        update_record(st);
      },
      [self](detach_atom, const std::string& peer_id, session_token token) {
        auto& st = self->state;
        auto it = st.sessions.find(peer_id);
        if (it != st.sessions.end() && it->second.token == token) {
          st.sessions.erase(it);
          st.awaiting_first.erase(peer_id);
        }
        update_record(st);
      },
      [self](sync_atom, const std::string& peer_id, const sync_open& open,
             peer_actor peer) -> caf::result<sync_verdict> {
        auto& st = self->state;
        if (find_peer(st, peer_id))
          return sync_verdict_of(self, peer_id, open, std::move(peer));
        // Not in memory: another replica may have registered it a moment ago (a Login there, the
        // Sync here). Read the account once before refusing.
        auto rp = self->make_response_promise<sync_verdict>();
        self->request(st.loader, caf::infinite, load_atom::value, st.rec.account_id)
            .await(
                [self, rp, peer_id, open, peer](const account_ptr& acc) mutable {
                  ++self->state.rec.reloads;
                  adopt(self, acc);
                  rp.deliver(sync_verdict_of(self, peer_id, open, std::move(peer)));
                },
                [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      },
      [self](meta_atom, const std::string& peer_id,
             const core::peer_meta& meta) -> caf::result<int, std::string> {
        auto& st = self->state;
        auto rp = self->make_response_promise<int, std::string>();
        // Decided from memory; a changed meta is answered once the store worker wrote it (an
        // unreachable store: UNAVAILABLE, the client sends it again), then applied to memory.
        auto decide = [self, rp, peer_id, meta]() mutable {
          auto& st = self->state;
          auto [code, message] = may_sync(st, peer_id);
          if (code != 0) {
            rp.deliver(code, std::move(message));
            return;
          }
          auto m = changed_meta(*find_peer(st, peer_id), true, meta);
          if (!m) {
            rp.deliver(0, std::string());
            return;
          }
          self->request(st.loader, caf::infinite, meta_atom::value, st.rec.account_id, peer_id, *m)
              .then(
                  [self, rp, peer_id, m](bool) mutable {
                    apply_meta(self, peer_id, std::move(*m));
                    rp.deliver(0, std::string());
                  },
                  [rp](caf::error&) mutable {
                    rp.deliver(14, std::string("the store is unavailable, please try again later"));
                  });
        };
        if (find_peer(st, peer_id)) {
          decide();
          return rp;
        }
        self->request(st.loader, caf::infinite, load_atom::value, st.rec.account_id)
            .await(
                [self, decide](const account_ptr& acc) mutable {
                  ++self->state.rec.reloads;
                  adopt(self, acc);
                  decide();
                },
                [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      },
      [self](login_atom, const login_request&,
             const std::string& peer_id) -> caf::result<peer_view> {
        auto& st = self->state;
        if (const auto* p = find_peer(st, peer_id))
          return login_view(st, *p);
        auto rp = self->make_response_promise<peer_view>();
        self->request(st.loader, caf::infinite, load_atom::value, st.rec.account_id)
            .await(
                [self, rp, peer_id](const account_ptr& acc) mutable {
                  ++self->state.rec.reloads;
                  adopt(self, acc);
                  const auto* p = find_peer(self->state, peer_id);
                  rp.deliver(p ? login_view(self->state, *p)
                               : fail(permission_denied, "peer is not registered"));
                },
                [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      },
      [self](register_atom, login_request& req, core::setup_key& key) -> caf::result<peer_view> {
        auto& st = self->state;
        auto rp = self->make_response_promise<peer_view>();
        st.registrations.push_back({std::move(req), std::move(key), rp, 0});
        pump_registrations(self);
        return rp;
      },
      [self](added_atom, core::peer& p, const std::vector<std::string>& groups,
             std::uint64_t serial) {
        auto& st = self->state;
        add_peer(st, std::move(p), groups);
        follow_serial(self, serial);
        triggered(st, {telemetry::resource::peer, telemetry::operation::create});
        schedule_flush(self);
      },
      [self](deleted_atom, const std::string& peer_id, std::uint64_t serial) {
        // Deleted by the expiry here: the other replicas read that peer and the groups again.
        auto& st = self->state;
        publish_peer_write(st, peer_id, serial, storage::account_store::part_groups);
        if (find_peer(st, peer_id))
          drop_peer(self, peer_id);
        follow_serial(self, serial);
      },
      [self](expired_atom, const std::string& peer_id, std::uint64_t serial) {
        // Marked login-expired by the expiry here: memory follows (its stream ends at the fan-out,
        // the others' maps show it offline); the other replicas read that peer again.
        auto& st = self->state;
        publish_peer_write(st, peer_id, serial);
        if (find_peer(st, peer_id)) {
          auto& status = mutable_account(st).peers[st.pos_by_id.at(peer_id)].status;
          status.login_expired = true;
          status.connected = false;
          triggered(st, {telemetry::resource::peer, telemetry::operation::update});
          schedule_flush(self);
        }
        follow_serial(self, serial);
      },
      [self](logout_atom, const std::string& peer_id,
             const std::string& wg_key) -> caf::result<peer_view> {
        auto rp = self->make_response_promise<peer_view>();
        if (find_peer(self->state, peer_id)) {
          logout(self, rp, peer_id, wg_key);
          return rp;
        }
        // Not in memory: another replica may have registered it a moment ago.
        self->request(self->state.loader, caf::infinite, load_atom::value,
                      self->state.rec.account_id)
            .await(
                [self, rp, peer_id, wg_key](const account_ptr& acc) mutable {
                  ++self->state.rec.reloads;
                  adopt(self, acc);
                  logout(self, rp, peer_id, wg_key);
                },
                [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      },
      [self](serial_atom, std::uint64_t serial) {
        auto& st = self->state;
        if (st.flight) { // the batch's outcome tells whether anyone else wrote; this poll too
          st.polled_serial = std::max(st.polled_serial, serial);
          return;
        }
        if (serial > current(st).net.serial)
          reload(self);
      },
      [self](note_atom, core::account_note& note) { on_note(self, std::move(note)); },
      [self](snapshot_atom, std::uint64_t serial) -> caf::result<account_ptr> {
        auto& st = self->state;
        if (serial <= current(st).net.serial)
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
      [self](read_atom, read_request& req) -> caf::result<read_outcome> {
        auto& st = self->state;
        auto rp = self->make_response_promise<read_outcome>();
        auto held = committed(st);
        // then, not await: a read holds nothing of the account up while its store work runs.
        self->request(st.loader, caf::infinite, read_atom::value, std::move(req), held)
            .then(
                [self, rp, held](read_outcome& out) mutable {
                  auto& st = self->state;
                  // The store's serial moved: the reader has the account as stored; the actor
                  // reads it too (unless a registration in flight will tell).
                  if (out.acc && out.acc->net.serial > current(st).net.serial)
                    self->send(self, serial_atom::value, out.acc->net.serial);
                  else if (out.acc && held && out.acc != held && st.acc == held && !st.working &&
                           out.acc->net.serial == held->net.serial)
                    // Same serial, principals moved (a token or setup key used, on this replica
                    // or another): the reader got the actor's account with them read again, and
                    // the actor keeps that copy, so the next read finds them the same and answers
                    // without copying the account again. The rest is the actor's own.
                    st.acc = out.acc;
                  rp.deliver(std::move(out));
                },
                [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      },
      [self](change_atom, admin_change_ptr& change) -> caf::result<change_outcome> {
        auto& st = self->state;
        auto rp = self->make_response_promise<change_outcome>();
        if (!st.rec.loaded) {
          change_outcome out;
          out.refused = core::problem{404, "account not found: " + core::clip(st.rec.account_id)};
          return out;
        }
        const auto before = committed(st);
        const bool deleting = std::holds_alternative<core::change::delete_account>(change->what);
        const auto why = reason_of(*change);
        // What the other replicas read again: the peer a peer change names, else the parts.
        core::account_note note;
        note.moved = core::moves_serial(*change) ? 1 : 0;
        if (const auto* up = std::get_if<core::change::update_peer>(&change->what))
          note.peers.push_back(up->id);
        else if (const auto* del = std::get_if<core::change::delete_peer>(&change->what))
          note.peers.push_back(del->id);
        // await: nothing else of this account is handled until the change is committed and
        // adopted, so changes (and registrations, session attaches) apply in order.
        self->request(st.loader, caf::infinite, change_atom::value, std::move(change), before)
            .await(
                [self, rp, before, note, deleting, why](change_outcome& out) mutable {
                  auto& st = self->state;
                  const auto changed_peer = note.peers.size() == 1 ? note.peers.front() : "";
                  if (!out.refused && out.failure == store_failure::none)
                    triggered(st, why);
                  if (deleting && !out.refused && out.failure == store_failure::none) {
                    // Gone: the other replicas read it again (serial 0) and find nothing; the
                    // answer is an empty account, then this actor ends its streams and itself.
                    publish(st, core::account_note{});
                    out.after = std::make_shared<core::account>();
                    rp.deliver(std::move(out));
                    adopt(self, nullptr);
                    return;
                  }
                  if (!out.refused && out.failure == store_failure::none && out.after &&
                      note.moved > 0) {
                    note.serial = out.after->net.serial;
                    note.parts = out.parts;
                    if (!note.peers.empty())
                      note.parts &= ~unsigned{storage::account_store::part_peers};
                    publish(st, std::move(note));
                  }
                  if (out.after && out.after != before) {
                    const bool moved_by_more = out.after->net.serial > before->net.serial + 1;
                    // Read back without its peers, at the serial our own change moved it to: the
                    // peers are the ones `before` held (another writer's change would have moved
                    // the serial further, and the change job read everything then).
                    const bool same_peers =
                        !moved_by_more &&
                        !(out.parts & unsigned{storage::account_store::part_peers}) &&
                        out.after->peers.size() == before->peers.size();
                    // A peer's own change (deleted, updated) brings the indexes up to date in
                    // place: no rebuild of every peer's entries for one of them.
                    const bool reindexed =
                        !same_peers && !moved_by_more && !changed_peer.empty() && !out.refused &&
                        out.failure == store_failure::none &&
                        reindex_peer_change(st, *before, *out.after, changed_peer);
                    adopt(self, out.after, same_peers || reindexed);
                    if (moved_by_more) // someone else wrote in between: make sure we have it all
                      self->send(self, serial_atom::value, out.after->net.serial + 1);
                  }
                  if (!out.refused && out.failure == store_failure::none)
                    out.after = st.acc;
                  else
                    out.after = nullptr;
                  rp.deliver(std::move(out));
                },
                [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      },
      [self](flush_atom) {
        self->state.flush_scheduled = false;
        fan_out(self);
      },
      [self](mapped_atom, map_batch_ptr& b) {
        auto& st = self->state;
        if (!st.mapping || st.mapping->id != b->flight) {
          for (auto& item : b->items) // not this actor's flight (cannot happen: one at a time)
            if (std::exchange(item.update, nullptr))
              st.held->sub(1);
          return;
        }
        ++st.batches_off;
        learn_cost(st, *b);
        for (auto& item : b->items)
          deliver_map(self, item);
        b.reset(); // its maps are with their peer actors: the next batch may be computed
        --st.mapping->out;
        hand_out(self);
        update_record(st);
      },
      [self](status_atom) {
        update_record(self->state);
        auto s = status_of(self, "account", self->state.rec.account_id);
        put_record(s, self->state.rec);
        s.counters["notes"] = self->state.notes;
        s.counters["notes_applied"] = self->state.notes_applied;
        // For the inspector (`account`): the last fan-out and the changes not yet fanned out.
        const auto& st = self->state;
        s.gauges["last_fanout_us"] = st.last_fanout_us;
        s.gauges["last_fanout_maps"] = static_cast<std::int64_t>(st.last_fanout_maps);
        s.gauges["pending_changes"] =
            (st.working || st.flush_scheduled || st.fanout_wanted) ? 1 : 0;
        // Maps off the scheduler: the maps of the fan-out in flight, the sessions waiting for
        // their first map, the last measured time per map, the maps computed and not yet sent to
        // their peer actors (now and at most); batches computed by the workers and here, and
        // maps computed for sessions that ended or were superseded meanwhile.
        s.gauges["maps_in_flight"] = st.mapping ? static_cast<std::int64_t>(st.mapping->maps) : 0;
        s.gauges["awaiting_first_map"] = static_cast<std::int64_t>(st.awaiting_first.size());
        s.gauges["ns_per_map"] = st.ns_per_map;
        s.gauges["objects_per_map"] = static_cast<std::int64_t>(st.objects_per_map);
        s.gauges["maps_held"] = st.held->now.load(std::memory_order_relaxed);
        s.gauges["maps_held_peak"] = st.held->peak.load(std::memory_order_relaxed);
        s.counters["map_batches_offloaded"] = st.batches_off;
        s.counters["map_batches_inline"] = st.batches_here;
        s.counters["maps_stale"] = st.maps_stale;
        s.gauges["pending_registrations"] = static_cast<std::int64_t>(st.registrations.size());
        s.gauges["pending_meta"] = static_cast<std::int64_t>(st.pending_meta.size());
        return s;
      },
  };
}

} // namespace

account_actor spawn_account_actor(caf::actor_system& sys, std::string account_id,
                                  account_loader loader, core::map_context maps, peer_directory dir,
                                  cluster_actor cluster, std::shared_ptr<map_workers> workers) {
  return sys.spawn(account_impl, std::move(account_id), std::move(loader), std::move(maps),
                   std::move(dir), std::move(cluster), std::move(workers));
}

} // namespace nbm::actors
