#include "actors/account_actor.hpp"

#include "core/expiry.hpp"
#include "core/registration.hpp"
#include "crypto/crypto.hpp"
#include "storage/account_store.hpp"
#include "storage/admin_store.hpp"

#include <caf/all.hpp>
#include <soci/soci.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <optional>
#include <random>
#include <unordered_map>
#include <unordered_set>

namespace nbm::actors {

namespace {

double now_unix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// ---- account_actor ---------------------------------------------------------------------------

// gRPC status codes (kept numeric: no gRPC in actors/).
constexpr int not_found = 5, permission_denied = 7, failed_precondition = 9, internal = 13;

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

struct session {
  session_token token = 0;
  peer_actor peer;
  std::uint64_t fingerprint = 0; // of the last map sent
};

struct pending_registration {
  login_request req;
  core::setup_key key;
  caf::typed_response_promise<peer_view> rp;
  int attempts = 0;
};

// Registrations handed to the store worker and not answered yet: their IPs and labels are reserved
// in the indexes, their keys are not registered again meanwhile.
struct registration_flight {
  std::vector<pending_registration> items;
  std::vector<peer_registration> rows;
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
  // Indexes of the account in memory, kept current with every change (a registration asks them;
  // it never builds a set of every peer).
  std::unordered_set<std::string> used_ips, used_labels;  // of peers and reservations
  std::unordered_map<std::string, std::string> id_by_key; // WireGuard key -> peer id
  std::unordered_map<std::string, std::size_t> pos_by_id; // peer id -> index in peers
  std::deque<pending_registration> registrations;         // waiting for the store worker
  std::shared_ptr<registration_flight> flight;            // in the store worker (one at a time)
  std::uint64_t polled_serial = 0; // the highest store serial a poll told during a flight
  std::mt19937_64 rng{std::random_device{}()};
  static inline const char* name = "account_actor";
};

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

// After the account was read (or a peer removed): the indexes from scratch, plus the reservations
// of registrations in flight.
void rebuild_indexes(account_state& st) {
  st.used_ips.clear();
  st.used_labels.clear();
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

// Takes `acc` (read from the store: everything its serial holds) as the account and fans out what
// changed.
void adopt(account_ptr_t self, const account_ptr& acc) {
  auto& st = self->state;
  st.acc = acc ? acc : std::make_shared<core::account>();
  st.rec.loaded = static_cast<bool>(acc);
  st.working.reset();
  st.change.reset();
  rebuild_indexes(st);
  fan_out(self);
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

// A Login of a peer the account holds, decided from memory.
peer_view login_view(const account_state& st, const core::peer& p) {
  const auto& a = current(st);
  if (core::must_log_in_again(a, p, now_unix()))
    return fail(permission_denied, "peer login has expired, please log in once more");
  peer_view v;
  v.peer = p;
  v.network = a.net.net;
  v.serial = a.net.serial;
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
      answers.emplace_back(i, std::move(v));
      add_peer(st, std::move(row.peer), row.groups);
      break;
    }
    case registered_as::key_refused:
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
  if (added > 0)
    schedule_flush(self);
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

// Whether a peer may begin a Sync, from the account in memory; takes the meta the stream brought
// (already stored by the caller: the agent version, for one, shapes maps).
std::tuple<int, std::string> may_sync(account_ptr_t self, const std::string& peer_id, bool has_meta,
                                      const core::peer_meta& meta) {
  auto& st = self->state;
  const auto* p = find_peer(st, peer_id);
  if (!p)
    return {permission_denied, "peer is not registered"};
  if (core::must_log_in_again(current(st), *p, now_unix()))
    return {permission_denied, "peer login has expired, please log in once more"};
  if (has_meta && !meta.hostname.empty() && !(p->meta == meta)) {
    mutable_account(st).peers[st.pos_by_id[peer_id]].meta = meta;
    schedule_flush(self);
  }
  return {0, std::string()};
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
             const core::peer_meta& meta) -> caf::result<int, std::string> {
        auto& st = self->state;
        if (find_peer(st, peer_id)) {
          auto [code, message] = may_sync(self, peer_id, has_meta, meta);
          return {code, std::move(message)};
        }
        // Not in memory: another replica may have registered it a moment ago (a Login there, the
        // Sync here). Read the account once before refusing.
        auto rp = self->make_response_promise<int, std::string>();
        self->request(st.loader, caf::infinite, load_atom::value, st.rec.account_id)
            .await(
                [self, rp, peer_id, has_meta, meta](const account_ptr& acc) mutable {
                  ++self->state.rec.reloads;
                  adopt(self, acc);
                  auto [code, message] = may_sync(self, peer_id, has_meta, meta);
                  rp.deliver(code, std::move(message));
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
        const auto ours = current(st).net.serial;
        add_peer(st, std::move(p), groups);
        if (serial == ours + 1)
          mutable_account(st).net.serial = serial; // that write alone: the serial holds it all
        else if (serial > ours)
          reload(self); // another write came between: read everything that serial holds
        schedule_flush(self);
      },
      [self](deleted_atom, const std::string& peer_id) {
        auto& st = self->state;
        if (!find_peer(st, peer_id))
          return;
        auto& a = mutable_account(st);
        a.peers.erase(a.peers.begin() + static_cast<std::ptrdiff_t>(st.pos_by_id[peer_id]));
        for (auto& g : a.groups)
          g.peers.erase(std::remove(g.peers.begin(), g.peers.end(), peer_id), g.peers.end());
        rebuild_indexes(st);
        schedule_flush(self);
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
      [self](reload_atom) { reload(self); },
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
      [self](apply_atom, const mutation_ptr& m) -> caf::result<account_ptr> {
        auto& st = self->state;
        auto rp = self->make_response_promise<account_ptr>();
        const auto before = committed(st);
        // await: nothing else of this account is handled until the change is committed and
        // adopted, so mutations (and registrations, session attaches) apply in order.
        self->request(st.loader, caf::infinite, commit_atom::value, m, before)
            .await(
                [self, rp, before](const account_ptr& after) mutable {
                  if (after && after != before) {
                    const bool moved_by_more = after->net.serial > before->net.serial + 1;
                    adopt(self, after);
                    if (moved_by_more) // someone else wrote in between: make sure we have it all
                      self->send(self, serial_atom::value, after->net.serial + 1);
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
        auto s = status_of(self, "account", self->state.rec.account_id);
        put_record(s, self->state.rec);
        return s;
      },
  };
}

// ---- account_loader --------------------------------------------------------------------------

struct loader_state {
  loader_config cfg;
  std::unique_ptr<storage::worker_session> sql;
  std::unordered_map<std::string, std::vector<account_actor>> watched; // by account id
  bool ticking = false;
  std::uint64_t loads = 0, commits = 0, registrations = 0, polls = 0;
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
      self->send(a, serial_atom::value, serial);
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
        ++self->state.loads;
        auto& st = self->state;
        if (auto sender = caf::actor_cast<account_actor>(self->current_sender())) {
          auto& v = st.watched[account_id];
          if (std::find(v.begin(), v.end(), sender) == v.end()) {
            v.push_back(sender);
            self->monitor(sender);
          }
          if (!st.ticking && st.cfg.poll_interval.count() > 0) {
            st.ticking = true;
            self->delayed_send(self, st.cfg.poll_interval, poll_atom::value);
          }
        }
        for (int attempt = 0;; ++attempt) {
          try {
            storage::account_store store(st.session(), st.cfg.db.kind);
            auto acc = store.load_account(account_id);
            if (!acc)
              return account_ptr{};
            // Not const-allocated: its actor may take it over for in-place changes once it is
            // its sole owner (see mutable_account).
            return account_ptr(std::make_shared<core::account>(std::move(*acc)));
          } catch (const std::exception& e) {
            st.drop_session(); // a read: once more on a fresh session
            if (attempt > 0) {
              spdlog::error("loading account {} failed: {}", account_id, e.what());
              return caf::make_error(caf::sec::runtime_error, e.what());
            }
          }
        }
      },
      [self](commit_atom, const mutation_ptr& m,
             const account_ptr& current) -> caf::result<account_ptr> {
        ++self->state.commits;
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
      [self](store_peers_atom, const std::string& account_id,
             const std::vector<peer_registration>& batch) -> caf::result<registration_outcome> {
        self->state.registrations += batch.size();
        auto& st = self->state;
        std::vector<storage::admin_store::registration> rows;
        rows.reserve(batch.size());
        for (const auto& r : batch)
          rows.push_back({r.peer, r.groups, r.setup_key_id});
        for (int attempt = 0;; ++attempt) {
          try {
            storage::admin_store admin(st.session(), st.cfg.db.kind);
            registration_outcome out;
            for (auto r : admin.register_peers(account_id, rows, out.serial_after))
              out.results.push_back(r == storage::admin_store::register_result::registered
                                        ? registered_as::registered
                                    : r == storage::admin_store::register_result::key_refused
                                        ? registered_as::key_refused
                                        : registered_as::conflict);
            return out;
          } catch (const std::exception& e) {
            // The transaction rolled back: nothing of the batch was written. Once more on a fresh
            // session when the one that failed was dropped.
            const bool dropped = st.sql && !st.sql->alive();
            st.drop_session();
            if (attempt > 0 || !dropped) {
              spdlog::error("registering peers in account {} failed: {}", account_id, e.what());
              return caf::make_error(caf::sec::runtime_error, e.what());
            }
            spdlog::warn("registering peers in account {}: {}; the session was dropped, trying "
                         "again",
                         account_id, e.what());
          }
        }
      },
      [self](poll_atom) {
        ++self->state.polls;
        poll_serials(self);
        self->delayed_send(self, self->state.cfg.poll_interval, poll_atom::value);
      },
      [self](status_atom) {
        // Answered between store reads only: a loader blocked in SQL is reported missing.
        auto& st = self->state;
        auto s = status_of(self, "account_loader");
        s.gauges["watched_accounts"] = static_cast<std::int64_t>(st.watched.size());
        s.gauges["session_open"] = st.sql ? 1 : 0;
        s.counters["loads"] = st.loads;
        s.counters["commits"] = st.commits;
        s.counters["registrations"] = st.registrations;
        s.counters["polls"] = st.polls;
        return s;
      },
  };
}

} // namespace

account_actor spawn_account_actor(caf::actor_system& sys, std::string account_id,
                                  account_loader loader, core::map_context maps) {
  return sys.spawn(account_impl, std::move(account_id), std::move(loader), std::move(maps));
}

account_loader spawn_account_loader(caf::actor_system& sys, loader_config cfg) {
  if (!cfg.detached)
    return sys.spawn(loader_impl, std::move(cfg));
  return sys.spawn<caf::detached>(loader_impl, std::move(cfg));
}

} // namespace nbm::actors
