#include "actors/account_loader.hpp"

#include "actors/store_worker.hpp"
#include "actors/telemetry.hpp"
#include "core/activity.hpp"
#include "core/registration.hpp"
#include "storage/account_store.hpp"
#include "storage/admin_store.hpp"
#include "storage/change_store.hpp"
#include "storage/event_store.hpp"

#include <caf/all.hpp>
#include <soci/soci.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <unordered_map>

namespace nbm::actors {

namespace {

using parts = storage::account_store;

// ---- the jobs ---------------------------------------------------------------------------------

// The account with all its objects (null: it does not exist).
struct load_job : store_job {
  std::string account_id;
  account_ptr result;
  explicit load_job(std::string id) : account_id(std::move(id)) {}
  void run(soci::session& sql, storage::engine kind) override {
    auto acc = parts(sql, kind).load_account(account_id);
    // Not const-allocated: its actor may take it over for in-place changes once it is its sole
    // owner (see the account actor's mutable_account).
    result = acc ? account_ptr(std::make_shared<core::account>(std::move(*acc))) : nullptr;
  }
  std::string what() const override { return "loading account " + account_id; }
};

// Users, tokens and setup keys change without a serial (NetBird's rule): read again into `acc`,
// with the account row; everything when the store's serial is no longer the one `acc` holds.
// False: the account is gone.
bool refresh(parts& store, core::account& acc, unsigned extra) {
  const auto seen = acc.net.serial;
  if (!store.load_parts(acc, parts::part_account | parts::part_principals | extra))
    return false;
  if (acc.net.serial != seen)
    store.load_parts(acc, parts::part_all);
  return true;
}

// An admin change: decided on the account as its actor holds it (principals read again),
// committed, and applied to a copy of it in memory (storage::apply_commit) when the commit's serial
// is the next one; read back for the kinds it does not apply, or when another writer moved the
// serial too.
struct change_job : store_job {
  admin_change_ptr change;
  account_ptr before;
  change_outcome out;
  std::string dns_domain; // the peers' domain (--dns-domain), for the events' fqdn metas
  std::vector<core::activity::event> events; // what the committed change records (NetBird's)
  bool committing = false;                   // from here on a retry could write twice
  change_job(admin_change_ptr c, account_ptr b) : change(std::move(c)), before(std::move(b)) {}

  bool retry_on_dropped_session() const override { return !committing; }
  std::string what() const override { return "changing account " + before->id; }

  void run(soci::session& sql, storage::engine kind) override {
    out = {};
    committing = false;
    parts store(sql, kind);
    auto acc = std::make_shared<core::account>(*before);
    if (!refresh(store, *acc, 0)) {
      out.refused = core::problem{404, "account not found: " + core::clip(before->id)};
      return;
    }
    if (auto bad = core::prepare_change(*acc, *change)) {
      out.refused = std::move(*bad);
      if (acc->net.serial != before->net.serial)
        out.after = std::move(acc); // newer than the actor's: it takes it
      return;
    }
    const auto seen = acc->net.serial;
    committing = true;
    const auto began = telemetry::now_ns();
    const auto commit = storage::commit_change(sql, kind, *acc, *change);
    telemetry::store_transaction(telemetry::ms_since(began)); // NetBird's transaction duration
    if (!commit.found) {
      out.refused = core::not_found_problem(*change);
      return;
    }
    out.id = commit.id;
    out.plain_key = commit.plain_key;
    out.parts = commit.parts;
    if (std::holds_alternative<core::change::delete_account>(change->what)) {
      // Nothing to read back: the account is gone (`after` stays null, its actor ends it).
      events = core::activity::events_of(
          *change, *acc, core::account{}, out.id,
          acc->settings.dns_domain.empty() ? dns_domain : acc->settings.dns_domain);
      return;
    }
    // Users, tokens and setup keys move no serial, everything else moves it by one: a serial
    // beyond that means another process changed the account meanwhile, and only a full read has
    // its change too.
    const auto expected = seen + (core::moves_serial(*change) ? 1u : 0u);
    if (expected != seen && commit.serial_after == expected &&
        storage::apply_commit(*acc, *change, commit)) {
      acc->net.serial = expected; // ours alone: nothing to read
    } else {
      read_back(store, *acc, commit, expected);
    }
    events = core::activity::events_of(*change, *before, *acc, out.id,
                                       acc->settings.dns_domain.empty() ? dns_domain
                                                                        : acc->settings.dns_domain);
    out.after = std::move(acc);
  }

  // What the commit wrote, read back; a peer's own change is applied in memory (no read of every
  // peer of the account for one of them).
  void read_back(parts& store, core::account& acc, const storage::change_commit& commit,
                 std::uint64_t expected) const {
    try {
      store.load_parts(acc, (commit.parts | parts::part_account) & ~unsigned{parts::part_peers});
      if (commit.parts & parts::part_peers)
        storage::apply_commit(acc, *change, commit); // the peer alone (its groups were read)
      if (acc.net.serial != expected)
        store.load_parts(acc, parts::part_all);
    } catch (const std::exception& e) {
      // Committed, but not read back: the serial moved in the store, so the next read or poll of
      // this account reads it again.
      spdlog::warn("account {}: a change was committed but not read back: {}", before->id,
                   e.what());
    }
  }
};

double now_unix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Whether a token authenticates (NetBird marks only those used): not expired, its user there and
// not blocked.
bool usable(const core::account& a, const core::personal_access_token& t) {
  if (t.expiration_date) {
    const auto exp = core::parse_store_time(*t.expiration_date);
    if (exp && *exp < now_unix())
      return false;
  }
  for (const auto& u : a.users)
    if (u.id == t.user_id)
      return !u.blocked;
  return false;
}

// A token marked used less than 10 s ago is not marked again: a client's burst of requests costs
// one write, not one per request (on SQLite every write waits for the one writer).
bool recently_used(const core::personal_access_token& t) {
  if (!t.last_used)
    return false;
  const auto at = core::parse_store_time(*t.last_used);
  return at && now_unix() - *at < 10.0;
}

// A REST read: the account with what changes without a serial (users, tokens, setup keys; the
// peers' status for /api/peers) read again.
struct read_job : store_job {
  read_request req;
  account_ptr current;
  read_outcome out;
  read_job(read_request r, account_ptr c) : req(std::move(r)), current(std::move(c)) {}
  std::string what() const override { return "reading account " + current->id; }
  void run(soci::session& sql, storage::engine kind) override {
    out = {};
    parts store(sql, kind);
    // What changes without a serial, read on its own: when the account holds it already (and the
    // serial has not moved), the answer is the account as its actor holds it, not a copy.
    const unsigned fresh_parts = parts::part_account | parts::part_principals |
                                 (req.peers ? unsigned{parts::part_peers} : 0u);
    core::account fresh;
    fresh.id = current->id;
    if (!store.load_parts(fresh, fresh_parts))
      return; // gone
    account_ptr acc;
    if (fresh.net.serial != current->net.serial) {
      store.load_parts(fresh, parts::part_all); // another writer: everything as stored
      acc = std::make_shared<core::account>(std::move(fresh));
    } else if (storage::same_parts(fresh, *current, fresh_parts)) {
      acc = current;
    } else {
      // The rest copied, what was read moved in.
      auto copy = std::make_shared<core::account>(
          storage::copy_parts(*current, parts::part_all & ~fresh_parts));
      storage::take_parts(*copy, std::move(fresh), fresh_parts);
      acc = std::move(copy);
    }
    if (!req.token_hash.empty())
      for (const auto& t : acc->tokens)
        if (t.hashed_token == req.token_hash && usable(*acc, t) && !recently_used(t))
          store.mark_token_used(t.id);
    out.acc = std::move(acc);
  }
};

struct token_job : store_job {
  std::string hash;
  principal_lookup out;
  explicit token_job(std::string h) : hash(std::move(h)) {}
  std::string what() const override { return "looking up a personal access token"; }
  void run(soci::session& sql, storage::engine kind) override {
    out = {};
    out.account_id = parts(sql, kind).account_of_token(hash).value_or("");
  }
};

// Replicas on one PostgreSQL serialize first logins in single-account mode with a session-level
// advisory lock (keys "NBM2" and the store's schema), so two never both create the one account:
// the second finds the first's account under the lock and joins it. Released when the job ends
// (or by the server when the session dies).
class first_login_lock {
public:
  first_login_lock(soci::session& sql, storage::engine kind, bool wanted)
      : sql_(sql), held_(wanted && kind == storage::engine::postgres) {
    if (held_)
      sql_ << "SELECT 1 FROM (SELECT pg_advisory_lock(:cls, hashtext(COALESCE(current_schema(), "
              "'')))) AS held",
          soci::use(lock_class, "cls"), soci::into(ignored_);
  }
  ~first_login_lock() {
    if (!held_)
      return;
    try {
      sql_ << "SELECT CASE WHEN pg_advisory_unlock(:cls, hashtext(COALESCE(current_schema(), "
              "''))) THEN 1 ELSE 0 END",
          soci::use(lock_class, "cls"), soci::into(ignored_);
    } catch (const std::exception& e) { // a dead session: the server released it
      spdlog::debug("first-login lock: unlock failed: {}", e.what());
    }
  }
  first_login_lock(const first_login_lock&) = delete;
  first_login_lock& operator=(const first_login_lock&) = delete;

private:
  soci::session& sql_;
  bool held_;
  int lock_class = 0x4e424d32;
  int ignored_ = 0;
};

struct idp_user_job : store_job {
  idp_user user;
  std::string single_domain; // single-account mode's domain ("" = off)
  principal_lookup out;
  idp_user_job(idp_user u, std::string single)
      : user(std::move(u)), single_domain(std::move(single)) {}
  std::string what() const override { return "looking up an IdP user"; }
  void run(soci::session& sql, storage::engine kind) override {
    out = {};
    if (auto id = parts(sql, kind).account_of_user(user.user_id)) {
      out.account_id = *id;
      return;
    }
    // A first login: decided again under the lock (another replica may be at it too).
    first_login_lock lock(sql, kind, !single_domain.empty());
    if (auto id = parts(sql, kind).account_of_user(user.user_id)) {
      out.account_id = *id;
      return;
    }
    const auto at = user.email.find('@');
    storage::new_account spec;
    spec.domain = at == std::string::npos ? "" : user.email.substr(at + 1);
    storage::admin_store admin(sql, kind);
    if (!single_domain.empty()) {
      // NetBird's updateUserAuthWithSingleMode: the domain of the account there is (else the
      // mode's), private; then the domain's primary account takes the user in.
      spec.domain = admin.any_account_domain();
      if (spec.domain.empty())
        spec.domain = single_domain;
      for (auto& c : spec.domain)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      const auto joined = admin.primary_domain_account(spec.domain);
      if (!joined.empty()) {
        bool pending = false;
        admin.add_regular_user(joined, user.user_id, user.email, "", pending);
        out.account_id = joined;
        out.joined = true;
        out.pending_approval = pending;
        spdlog::info("first login of IdP user {}: joined account {} (single-account mode{})",
                     user.user_id, joined, pending ? ", pending approval" : "");
        return;
      }
    }
    // The first login of this user: an account it owns (NetBird's), in one transaction.
    spec.owner_email = user.email;
    spec.with_pat = false;
    spec.owner_user_id = user.user_id;
    out.account_id = admin.create_account(spec).account_id;
    out.created = true;
    spdlog::info("first login of IdP user {}: account {} created", user.user_id, out.account_id);
  }
};

struct register_job : store_job {
  std::string account_id;
  std::vector<storage::admin_store::registration> rows;
  registration_outcome out;
  std::string what() const override { return "registering peers in account " + account_id; }
  void run(soci::session& sql, storage::engine kind) override {
    // The transaction rolls back on failure: nothing of the batch was written, so a retry on a
    // fresh session (the one that failed dropped) is sound.
    out = {};
    storage::admin_store admin(sql, kind);
    const auto began = telemetry::now_ns();
    const auto results = admin.register_peers(account_id, rows, out.serial_after);
    telemetry::store_transaction(telemetry::ms_since(began));
    for (auto r : results)
      out.results.push_back(
          r == storage::admin_store::register_result::registered    ? registered_as::registered
          : r == storage::admin_store::register_result::key_refused ? registered_as::key_refused
                                                                    : registered_as::conflict);
  }
};

// A peer's meta, its own columns only (no serial moves): safe to repeat on a fresh session.
struct meta_job : store_job {
  std::string account_id, peer_id;
  core::peer_meta meta;
  std::string what() const override {
    return "storing the meta of peer " + peer_id + " of account " + account_id;
  }
  void run(soci::session& sql, storage::engine kind) override {
    storage::account_store(sql, kind).update_peer_meta(account_id, peer_id, meta);
  }
};

// Logout: NetBird's DeletePeer in one transaction; a dropped session rolled it back, so it may run
// again (then it finds the peer gone only if the first attempt committed: `deleted` false).
struct logout_job : store_job {
  core::peer peer;
  logout_outcome out;
  explicit logout_job(core::peer p) : peer(std::move(p)) {}
  std::string what() const override {
    return "deleting peer " + peer.id + " of account " + peer.account_id + " (logout)";
  }
  void run(soci::session& sql, storage::engine kind) override {
    out = {};
    out.deleted =
        storage::admin_store(sql, kind).delete_peer(peer.account_id, peer.id, &out.serial_after);
  }
};

// Another replica's write (a cluster note): the parts it names and the peers it lists read again
// into a copy of the account; everything when the store's serial is not the note's (another write
// came too). Null: the account is gone.
struct note_job : store_job {
  core::account_note note;
  account_ptr before;
  account_ptr result;
  std::string what() const override { return "applying another replica's write to " + before->id; }
  void run(soci::session& sql, storage::engine kind) override {
    result = nullptr;
    parts store(sql, kind);
    auto acc = std::make_shared<core::account>(*before);
    if (!store.load_parts(*acc, parts::part_account | note.parts))
      return;
    for (const auto& id : note.peers) {
      auto pos = std::find_if(acc->peers.begin(), acc->peers.end(),
                              [&](const core::peer& p) { return p.id == id; });
      auto fresh = store.peer_by_id(acc->id, id);
      if (!fresh) { // removed: from the peers and every group
        if (pos != acc->peers.end())
          acc->peers.erase(pos);
        for (auto& g : acc->groups)
          g.peers.erase(std::remove(g.peers.begin(), g.peers.end(), id), g.peers.end());
        continue;
      }
      if (pos != acc->peers.end())
        *pos = std::move(*fresh);
      else
        acc->peers.push_back(std::move(*fresh));
      if (note.parts & parts::part_groups)
        continue; // read whole
      std::vector<std::string> groups;
      soci::rowset<std::string> rows =
          (sql.prepare << "SELECT group_id FROM group_peers WHERE account_id = :acc AND peer_id = "
                          ":id",
           soci::use(acc->id, "acc"), soci::use(id, "id"));
      for (const auto& g : rows)
        groups.push_back(g);
      for (auto& g : acc->groups) {
        const bool member = std::find(groups.begin(), groups.end(), g.id) != groups.end();
        const auto at = std::find(g.peers.begin(), g.peers.end(), id);
        if (member && at == g.peers.end())
          g.peers.push_back(id);
        else if (!member && at != g.peers.end())
          g.peers.erase(at);
      }
    }
    if (acc->net.serial != note.serial)
      store.load_parts(*acc, parts::part_all);
    result = std::move(acc);
  }
};

std::uint64_t serial_of(const soci::row& r, std::size_t i) {
  switch (r.get_properties(i).get_data_type()) {
  case soci::dt_integer:
    return static_cast<std::uint64_t>(r.get<int>(i));
  case soci::dt_long_long:
    return static_cast<std::uint64_t>(r.get<long long>(i));
  case soci::dt_unsigned_long_long:
    return r.get<unsigned long long>(i);
  default:
    return static_cast<std::uint64_t>(r.get<double>(i));
  }
}

struct poll_job : store_job {
  std::vector<std::pair<std::string, std::uint64_t>> serials;
  std::string what() const override { return "polling the accounts' serials"; }
  void run(soci::session& sql, storage::engine) override {
    serials.clear();
    soci::rowset<soci::row> rows = sql.prepare << "SELECT id, network_serial FROM accounts";
    for (const auto& r : rows)
      serials.emplace_back(r.get<std::string>(0), serial_of(r, 1));
  }
};

// The activity log's writes and reads, on the events database's own worker.
struct append_events_job : store_job {
  std::vector<core::activity::event> events;
  std::string key; // DataStoreEncryptionKey
  std::string what() const override { return "recording activity events"; }
  void run(soci::session& sql, storage::engine kind) override {
    storage::event_store(sql, kind, key).append(events);
  }
};

struct list_events_job : store_job {
  std::string account_id;
  std::size_t limit = 10000;
  std::string key; // DataStoreEncryptionKey
  events_outcome out;
  std::string what() const override { return "listing activity events of " + account_id; }
  void run(soci::session& sql, storage::engine kind) override {
    out = {};
    out.events = storage::event_store(sql, kind, key).list(account_id, 0, limit, true);
  }
};

// ---- the loader -------------------------------------------------------------------------------

using loader_ptr = account_loader::stateful_pointer<loader_state>;

// Hands `job` to the worker of `key`; `done(job)` runs when it answered (failed or not).
template <class Job, class Done>
void dispatch(loader_ptr self, const std::string& key, std::shared_ptr<Job> job, Done done) {
  auto& st = self->state;
  const auto w = store_worker_index(key, st.workers.size());
  ++st.rec.in_flight;
  ++st.rec.busy_by_worker[w];
  self->request(st.workers[w], caf::infinite, run_atom::value, store_job_ptr(job))
      .then(
          [self, w, job, done](const store_job_ptr&) mutable {
            auto& st = self->state;
            --st.rec.in_flight;
            --st.rec.busy_by_worker[w];
            ++st.rec.jobs;
            if (job->failure != store_failure::none)
              ++st.rec.failed;
            done(*job);
          },
          [self, w, job, done](caf::error& err) mutable {
            auto& st = self->state;
            --st.rec.in_flight;
            --st.rec.busy_by_worker[w];
            ++st.rec.jobs;
            ++st.rec.failed;
            job->failure = store_failure::failed;
            job->error = caf::to_string(err);
            done(*job);
          });
}

caf::error job_error(const store_job& job) {
  return caf::make_error(caf::sec::runtime_error, job.what() + " failed");
}

void watch(loader_ptr self, const std::string& account_id) {
  auto& st = self->state;
  auto sender = caf::actor_cast<account_actor>(self->current_sender());
  if (!sender)
    return;
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

void poll_serials(loader_ptr self) {
  auto& st = self->state;
  if (st.watched.empty())
    return;
  if (st.polling) {
    st.poll_again = true; // a resync during a poll: the poll may have read before what it missed
    return;
  }
  st.polling = true;
  // Every loaded account's serial in one query, on the first worker.
  dispatch(self, std::string(), std::make_shared<poll_job>(), [self](poll_job& job) {
    auto& st = self->state;
    st.polling = false;
    if (std::exchange(st.poll_again, false))
      self->send(self, resync_atom::value);
    if (job.failure != store_failure::none)
      return; // logged by the worker; the next tick tries again
    for (const auto& [id, serial] : job.serials)
      if (auto it = st.watched.find(id); it != st.watched.end())
        for (const auto& a : it->second)
          self->send(a, serial_atom::value, serial);
  });
}

// The activity log: `evs` appended by the events worker, after every batch handed to it before
// (one worker, one mailbox: the order they were recorded in).
void record(loader_ptr self, std::vector<core::activity::event> evs) {
  auto& st = self->state;
  if (!st.events || evs.empty())
    return;
  auto job = std::make_shared<append_events_job>();
  job->events = std::move(evs);
  job->key = st.cfg.events_key;
  ++st.events_busy;
  self->request(*st.events, caf::infinite, run_atom::value, store_job_ptr(job))
      .then(
          [self, job](const store_job_ptr&) {
            --self->state.events_busy;
            if (job->failure != store_failure::none)
              spdlog::error("activity log: {} events not recorded: {}", job->events.size(),
                            job->error);
          },
          [self, job](caf::error& err) {
            --self->state.events_busy;
            spdlog::error("activity log: {} events not recorded: {}", job->events.size(),
                          caf::to_string(err));
          });
}

core::activity::event user_event(int activity, const std::string& user_id,
                                 const std::string& target, const std::string& account_id) {
  core::activity::event e;
  e.activity = activity;
  e.initiator_id = user_id;
  e.target_id = target;
  e.account_id = account_id;
  return e;
}

account_loader::behavior_type loader_impl(loader_ptr self, loader_config cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  const auto n = std::max<std::size_t>(1, st.cfg.workers);
  for (std::size_t i = 0; i < n; ++i) {
    st.workers.push_back(
        spawn_store_worker(self->system(), st.cfg.db, st.cfg.detached, std::to_string(i)));
    self->link_to(st.workers.back()); // they live and die with the loader
  }
  st.rec.workers = n;
  st.rec.busy_by_worker.assign(n, 0);
  if (st.cfg.events_db) {
    st.events = spawn_store_worker(self->system(), *st.cfg.events_db, st.cfg.detached, "events");
    self->link_to(*st.events);
  }
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
        watch(self, account_id);
        auto rp = self->make_response_promise<account_ptr>();
        dispatch(self, account_id, std::make_shared<load_job>(account_id),
                 [rp](load_job& job) mutable {
                   if (job.failure != store_failure::none)
                     rp.deliver(job_error(job));
                   else
                     rp.deliver(std::move(job.result));
                 });
        return rp;
      },
      [self](change_atom, admin_change_ptr& change,
             account_ptr& before) -> caf::result<change_outcome> {
        auto rp = self->make_response_promise<change_outcome>();
        const auto id = before->id;
        auto job = std::make_shared<change_job>(std::move(change), std::move(before));
        job->dns_domain = self->state.cfg.dns_domain;
        dispatch(self, id, std::move(job), [self, rp](change_job& job) mutable {
          if (job.failure == store_failure::none && !job.out.refused)
            record(self, std::move(job.events));
          if (job.failure != store_failure::none) {
            change_outcome out;
            out.failure = job.failure;
            rp.deliver(std::move(out));
          } else {
            rp.deliver(std::move(job.out));
          }
        });
        return rp;
      },
      [self](read_atom, read_request& req, account_ptr& current) -> caf::result<read_outcome> {
        auto rp = self->make_response_promise<read_outcome>();
        const auto id = current->id;
        dispatch(self, id, std::make_shared<read_job>(std::move(req), std::move(current)),
                 [rp](read_job& job) mutable {
                   if (job.failure != store_failure::none)
                     job.out.failure = job.failure;
                   rp.deliver(std::move(job.out));
                 });
        return rp;
      },
      [self](token_atom, std::string& hash) -> caf::result<principal_lookup> {
        auto rp = self->make_response_promise<principal_lookup>();
        const auto key = hash;
        dispatch(self, key, std::make_shared<token_job>(std::move(hash)),
                 [rp](token_job& job) mutable {
                   job.out.failure = job.failure;
                   rp.deliver(std::move(job.out));
                 });
        return rp;
      },
      [self](user_atom, idp_user& user) -> caf::result<principal_lookup> {
        auto rp = self->make_response_promise<principal_lookup>();
        // Single-account mode: every first login on one worker, so two of them never both create
        // the one account.
        const auto key =
            self->state.cfg.single_account_domain.empty() ? user.user_id : std::string();
        dispatch(
            self, key,
            std::make_shared<idp_user_job>(std::move(user), self->state.cfg.single_account_domain),
            [self, rp](idp_user_job& job) mutable {
              job.out.failure = job.failure;
              // NetBird's newAccount and addNew*: the account created, the user joined.
              const auto& o = job.out;
              const auto& uid = job.user.user_id;
              std::vector<core::activity::event> evs;
              if (o.created)
                evs.push_back(
                    user_event(core::activity::account_created, uid, o.account_id, o.account_id));
              if (o.created || o.joined) {
                evs.push_back(user_event(core::activity::user_joined, uid, uid, o.account_id));
                if (o.pending_approval)
                  evs.back().m.emplace_back("pending_approval", true);
              }
              record(self, std::move(evs));
              rp.deliver(std::move(job.out));
            });
        return rp;
      },
      [self](events_atom, std::string& account_id) -> caf::result<events_outcome> {
        auto& st = self->state;
        if (!st.events)
          return events_outcome{};
        auto rp = self->make_response_promise<events_outcome>();
        auto job = std::make_shared<list_events_job>();
        job->account_id = std::move(account_id);
        job->key = st.cfg.events_key;
        ++st.events_busy;
        self->request(*st.events, caf::infinite, run_atom::value, store_job_ptr(job))
            .then(
                [self, job, rp](const store_job_ptr&) mutable {
                  --self->state.events_busy;
                  job->out.failure = job->failure;
                  rp.deliver(std::move(job->out));
                },
                [self, rp](caf::error&) mutable {
                  --self->state.events_busy;
                  events_outcome out;
                  out.failure = store_failure::failed;
                  rp.deliver(std::move(out));
                });
        return rp;
      },
      [self](record_atom, std::vector<core::activity::event>& evs) {
        record(self, std::move(evs));
      },
      [self](store_peers_atom, const std::string& account_id,
             const std::vector<peer_registration>& batch) -> caf::result<registration_outcome> {
        auto job = std::make_shared<register_job>();
        job->account_id = account_id;
        job->rows.reserve(batch.size());
        for (const auto& r : batch)
          job->rows.push_back({r.peer, r.groups, r.setup_key_id});
        auto rp = self->make_response_promise<registration_outcome>();
        dispatch(self, account_id, std::move(job), [self, rp](register_job& j) mutable {
          if (j.failure != store_failure::none) {
            rp.deliver(job_error(j));
            return;
          }
          // NetBird's AddPeer: PeerAddedWithSetupKey, the setup key as the initiator.
          std::vector<core::activity::event> evs;
          for (std::size_t i = 0; i < j.rows.size() && i < j.out.results.size(); ++i)
            if (j.out.results[i] == registered_as::registered) {
              const auto& p = j.rows[i].peer;
              auto e = user_event(core::activity::peer_added_with_setup_key, j.rows[i].setup_key_id,
                                  p.id, j.account_id);
              e.m = core::activity::peer_event_meta(p, self->state.cfg.dns_domain);
              evs.push_back(std::move(e));
            }
          record(self, std::move(evs));
          rp.deliver(std::move(j.out));
        });
        return rp;
      },
      [self](meta_atom, const std::string& account_id, const std::string& peer_id,
             const core::peer_meta& meta) -> caf::result<bool> {
        auto job = std::make_shared<meta_job>();
        job->account_id = account_id;
        job->peer_id = peer_id;
        job->meta = meta;
        auto rp = self->make_response_promise<bool>();
        dispatch(self, account_id, std::move(job), [rp](meta_job& j) mutable {
          if (j.failure != store_failure::none)
            rp.deliver(job_error(j)); // the worker logged why
          else
            rp.deliver(true);
        });
        return rp;
      },
      [self](logout_atom, core::peer& peer) -> caf::result<logout_outcome> {
        auto rp = self->make_response_promise<logout_outcome>();
        const auto account_id = peer.account_id;
        dispatch(self, account_id, std::make_shared<logout_job>(std::move(peer)),
                 [self, rp](logout_job& j) mutable {
                   j.out.failure = j.failure;
                   if (j.failure == store_failure::none && j.out.deleted) {
                     // NetBird's DeletePeer: PeerRemovedByUser, the peer's user (else the
                     // system) as the initiator.
                     const auto& p = j.peer;
                     auto e = user_event(core::activity::peer_removed_by_user,
                                         p.user_id.empty()
                                             ? std::string(core::activity::system_initiator)
                                             : p.user_id,
                                         p.id, p.account_id);
                     e.m = core::activity::peer_event_meta(p, self->state.cfg.dns_domain);
                     record(self, {std::move(e)});
                   }
                   rp.deliver(std::move(j.out));
                 });
        return rp;
      },
      [self](poll_atom) {
        ++self->state.polls;
        poll_serials(self);
        self->delayed_send(self, self->state.cfg.poll_interval, poll_atom::value);
      },
      [self](resync_atom) {
        ++self->state.resyncs;
        poll_serials(self);
      },
      [self](note_atom, core::account_note& note, account_ptr& before) -> caf::result<account_ptr> {
        auto job = std::make_shared<note_job>();
        job->note = std::move(note);
        job->before = std::move(before);
        auto rp = self->make_response_promise<account_ptr>();
        const auto id = job->before->id;
        dispatch(self, id, std::move(job), [rp](note_job& j) mutable {
          if (j.failure != store_failure::none)
            rp.deliver(job_error(j));
          else
            rp.deliver(std::move(j.result));
        });
        return rp;
      },
      [self](status_atom) {
        // Never blocks (the SQL runs on its workers): answers at once, with its jobs in flight.
        auto& st = self->state;
        auto s = status_of(self, "account_loader");
        put_loader_record(s, st.rec);
        s.gauges["watched_accounts"] = static_cast<std::int64_t>(st.watched.size());
        s.counters["polls"] = st.polls;
        s.counters["resyncs"] = st.resyncs;
        if (st.events) // the activity log's worker (id "events"), next to busy_worker_<i>
          s.gauges["busy_worker_events"] = static_cast<std::int64_t>(st.events_busy);
        return s;
      },
      [self](members_atom) {
        // Its store workers, to be asked how they are (one blocked in SQL is reported missing).
        std::vector<status_target> out;
        for (const auto& w : self->state.workers)
          out.push_back({"store_worker", w});
        if (self->state.events)
          out.push_back({"store_worker", *self->state.events});
        return out;
      },
  };
}

} // namespace

account_loader spawn_account_loader(caf::actor_system& sys, loader_config cfg) {
  // Never blocks itself: an ordinary actor (its workers are the detached ones).
  return sys.spawn(loader_impl, std::move(cfg));
}

std::size_t store_workers_from_env(std::size_t fallback) {
  if (const char* v = std::getenv("NBM_STORE_WORKERS")) {
    const long n = std::atol(v);
    if (n >= 1 && n <= 64)
      return static_cast<std::size_t>(n);
    spdlog::warn("NBM_STORE_WORKERS={} is not 1..64; using {}", v, fallback);
  }
  return fallback;
}

} // namespace nbm::actors
