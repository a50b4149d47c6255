#include "actors/login_service.hpp"

#include "core/activity.hpp"
#include "core/expiry.hpp"
#include "core/jwt_groups.hpp"
#include "core/posture.hpp"
#include "core/registration.hpp"
#include "crypto/crypto.hpp"
#include "storage/account_store.hpp"
#include "storage/admin_store.hpp"
#include "storage/lifecycle_store.hpp"

#include <caf/all.hpp>
#include <soci/soci.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <optional>

namespace nbm::actors {

namespace {

// gRPC status codes (kept numeric: no gRPC in actors/).
constexpr int not_found = 5, permission_denied = 7, failed_precondition = 9, internal = 13,
              unavailable = 14; // the store cannot be reached: NetBird's clients retry

// At most a short prefix of what a client sent goes into an error message.
std::string prefix(const std::string& client_text) {
  constexpr std::size_t keep = 44; // a WireGuard key in base64
  return client_text.size() <= keep ? client_text : client_text.substr(0, keep) + "...";
}

peer_view fail(int code, std::string msg) {
  peer_view v;
  v.code = code;
  v.message = std::move(msg);
  return v;
}

double now_unix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

peer_view view_of(const core::account& a, const core::peer& p) {
  peer_view v;
  v.peer = p;
  v.network = a.net.net;
  v.serial = a.net.serial;
  if (!p.status.requires_approval) // NetBird's getPeerLoginInfo: none for a peer not yet valid
    v.checks = core::client_checks(a, p.id);
  return v;
}

// A Login decided here (an answer), or a registration for the account actor (the setup key),
// or the peer that holds the key (its account actor answers).
using login_step = login_lookup;

login_step answer(peer_view v) {
  login_step step;
  step.answer = std::move(v);
  return step;
}

login_step do_login(soci::session& sql, storage::engine kind, const login_request& req,
                    const std::string& dns_domain) {
  storage::account_store accounts(sql, kind);
  storage::admin_store admin(sql, kind);

  if (auto known = accounts.peer_ref_by_key(req.wg_key)) {
    if (!req.jwt_user.empty()) {
      // An SSO login of a peer its user added: renews the login (and clears an expiry), as
      // NetBird's LoginPeer with a JWT. Another user's token is refused.
      if (known->user_id.empty() || known->user_id != req.jwt_user)
        return answer(fail(permission_denied, "peer is not registered to the user of this token"));
      // NetBird's validateToken, then LoginPeer: the JWT groups allow-list, the owner not blocked,
      // the groups synced; a login that had expired is renewed and recorded (UserLoggedInPeer).
      const auto before = accounts.load_account(known->account_id);
      const core::user* owner = nullptr;
      const core::peer* peer = nullptr;
      if (before) {
        for (const auto& u : before->users)
          if (u.id == req.jwt_user)
            owner = &u;
        peer = before->find_peer(known->id);
      }
      if (!before || !owner || !peer)
        return answer(fail(permission_denied, "peer is not registered to the user of this token"));
      const auto& settings = before->settings;
      std::vector<std::string> groups;
      if (auto it = req.jwt_lists.find(settings.jwt_groups_claim_name);
          settings.jwt_groups_enabled && it != req.jwt_lists.end())
        groups = it->second;
      if (!core::jwt_groups_allowed(settings, groups))
        return answer(
            fail(permission_denied, "user does not belong to any of the allowed JWT groups"));
      if (owner->blocked) // NetBird's checkIfPeerOwnerIsBlocked
        return answer(fail(permission_denied, "user is blocked"));
      const bool was_expired = core::must_log_in_again(*before, *peer, now_unix());
      storage::lifecycle_store(sql, kind).record_login(known->account_id, known->id,
                                                       storage::store_time());
      auto fresh = accounts.load_account(known->account_id);
      auto stored = accounts.peer_by_key(req.wg_key);
      if (!fresh || !stored)
        return answer(fail(internal, "failed handling request"));
      spdlog::info("peer {} logged in again as user {}", stored->id, req.jwt_user);
      auto v = view_of(*fresh, *stored);
      v.relogged = true;
      auto step = answer(std::move(v));
      if (settings.jwt_groups_enabled && !settings.jwt_groups_claim_name.empty() &&
          core::jwt_groups_change(*fresh, *owner, groups)) {
        core::change::jwt_groups sync;
        sync.user_id = req.jwt_user;
        sync.names = std::move(groups);
        step.jwt_sync = std::move(sync);
      }
      if (was_expired) {
        core::activity::event e;
        e.activity = core::activity::user_logged_in_peer;
        e.initiator_id = req.jwt_user;
        e.target_id = stored->id;
        e.account_id = stored->account_id;
        e.m = core::activity::peer_event_meta(
            *stored, settings.dns_domain.empty() ? dns_domain : settings.dns_domain);
        step.events.push_back(std::move(e));
      }
      return step;
    }
    // Registered? expired? The account actor decides from the account it holds.
    login_step step;
    step.known = peer_ref{known->account_id, known->id, known->user_id};
    return step;
  }
  if (req.setup_key.empty() && req.jwt.empty())
    return answer(
        fail(permission_denied,
             "no peer auth method provided, please use a setup key or interactive SSO login"));
  if (req.setup_key.empty())
    return answer(fail(failed_precondition,
                       req.jwt_user.empty()
                           ? "SSO login is not available: this server has no identity provider "
                             "configured; register the peer with a setup key"
                           : "registering a new peer with an SSO login is not supported yet; "
                             "register it with a setup key"));
  if (!req.has_meta)
    return answer(fail(failed_precondition, "peer system meta has to be provided to log in. Peer " +
                                                prefix(req.wg_key) + ", remote addr " +
                                                req.remote_addr));
  auto key = admin.setup_key_by_plain(req.setup_key);
  const auto verdict = key ? core::check_setup_key(*key, now_unix()) : core::key_verdict::valid;
  if (!key || verdict != core::key_verdict::valid) {
    // The key's id, never the key; an unknown key by 8 characters of its hash only.
    if (!key)
      spdlog::info("setup key refused: unknown key (hash {}...), peer {} from {}",
                   crypto::sha256_base64(req.setup_key).substr(0, 8), prefix(req.wg_key),
                   req.remote_addr);
    else
      spdlog::info("setup key refused: key {} of account {} is {}, peer {} from {}", key->id,
                   key->account_id,
                   verdict == core::key_verdict::revoked   ? "revoked"
                   : verdict == core::key_verdict::expired ? "expired"
                                                           : "used up",
                   prefix(req.wg_key), req.remote_addr);
    return answer(fail(not_found, "couldn't add peer: setup key is invalid"));
  }
  if (!req.extra_dns_labels.empty() && !key->allow_extra_dns_labels)
    return answer(
        fail(failed_precondition, "couldn't add peer: setup key doesn't allow extra DNS labels"));
  // The registration itself is the business of the account actor of the key's account.
  login_step step;
  step.register_with = std::move(*key);
  return step;
}

// A Login the directory could not answer from memory. A dropped session runs it once more (a
// login is safe to repeat: a registration that landed makes the second attempt the login of a
// known peer).
struct login_job : store_job {
  login_request req;
  std::string dns_domain; // the peers' domain (--dns-domain), for the events' fqdn metas
  login_step out;
  login_job(login_request r, std::string domain)
      : req(std::move(r)), dns_domain(std::move(domain)) {}
  std::string what() const override { return "looking up a login of " + prefix(req.wg_key); }
  void run(soci::session& sql, storage::engine kind) override {
    out = do_login(sql, kind, req, dns_domain);
  }
};

// Who holds a key (one indexed read).
struct lookup_job : store_job {
  std::string wg_key;
  peer_ref out;
  explicit lookup_job(std::string k) : wg_key(std::move(k)) {}
  std::string what() const override { return "looking up key " + prefix(wg_key); }
  void run(soci::session& sql, storage::engine kind) override {
    out = {};
    if (auto ref = storage::account_store(sql, kind).peer_ref_by_key(wg_key))
      out = peer_ref{ref->account_id, ref->id, ref->user_id};
  }
};

// The store worker of a WireGuard key's lookups.
const store_worker& worker_for(const login_service_state& st, const std::string& wg_key) {
  return st.workers[store_worker_index(wg_key, st.workers.size())];
}

login_service::behavior_type impl(login_service::stateful_pointer<login_service_state> self,
                                  login_service_config cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  for (std::size_t i = 0; i < std::max<std::size_t>(1, st.cfg.workers); ++i) {
    st.workers.push_back(spawn_store_worker(self->system(), st.cfg.db, st.cfg.detached,
                                            "login_" + std::to_string(i)));
    self->link_to(st.workers.back()); // it lives and dies with the service
  }
  return {
      [self](login_atom, login_request& req) -> caf::result<login_lookup> {
        auto& st = self->state;
        ++st.logins;
        ++st.in_flight;
        auto rp = self->make_response_promise<login_lookup>();
        const auto& worker = worker_for(st, req.wg_key);
        auto job = std::make_shared<login_job>(std::move(req), st.cfg.dns_domain);
        self->request(worker, caf::infinite, run_atom::value, store_job_ptr(job))
            .then(
                [self, rp, job](const store_job_ptr&) mutable {
                  --self->state.in_flight;
                  switch (job->failure) {
                  case store_failure::none:
                    rp.deliver(std::move(job->out));
                    return;
                  case store_failure::unavailable: // NetBird's clients retry
                    rp.deliver(answer(
                        fail(unavailable, "the store is unavailable, please try again later")));
                    return;
                  default: // the worker logged it
                    ++self->state.failed;
                    rp.deliver(answer(fail(internal, "failed handling request")));
                  }
                },
                [self, rp](caf::error& err) mutable {
                  --self->state.in_flight;
                  rp.deliver(std::move(err));
                });
        return rp;
      },
      [self](lookup_atom, std::string& key) -> caf::result<peer_ref> {
        auto& st = self->state;
        ++st.lookups;
        ++st.in_flight;
        auto rp = self->make_response_promise<peer_ref>();
        const auto& worker = worker_for(st, key);
        auto job = std::make_shared<lookup_job>(std::move(key));
        self->request(worker, caf::infinite, run_atom::value, store_job_ptr(job))
            .then(
                [self, rp, job](const store_job_ptr&) mutable {
                  --self->state.in_flight;
                  if (job->failure == store_failure::none) {
                    rp.deliver(std::move(job->out));
                    return;
                  }
                  ++self->state.failed;
                  rp.deliver(caf::make_error(caf::sec::runtime_error, "the store is unavailable"));
                },
                [self, rp](caf::error& err) mutable {
                  --self->state.in_flight;
                  rp.deliver(std::move(err));
                });
        return rp;
      },
      [self](status_atom) {
        // Never blocks (the SQL runs on its store workers): answers at once.
        auto& st = self->state;
        auto s = status_of(self, "login_service");
        s.gauges["in_flight"] = static_cast<std::int64_t>(st.in_flight);
        s.counters["logins"] = st.logins;
        s.counters["lookups"] = st.lookups;
        s.counters["failed"] = st.failed;
        return s;
      },
  };
}

} // namespace

login_service spawn_login_service(caf::actor_system& sys, login_service_config cfg) {
  // Never blocks itself: an ordinary actor (its store worker is the detached one).
  return sys.spawn(impl, std::move(cfg));
}

} // namespace nbm::actors
