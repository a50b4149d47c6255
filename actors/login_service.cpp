#include "actors/login_service.hpp"

#include "core/expiry.hpp"
#include "core/registration.hpp"
#include "crypto/crypto.hpp"
#include "storage/account_store.hpp"
#include "storage/admin_store.hpp"
#include "storage/lifecycle_store.hpp"

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <soci/soci.h>
#include <sodium.h>
#include <spdlog/spdlog.h>

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

struct state {
  login_service_config cfg;
  std::unique_ptr<storage::worker_session> sql;
  std::uint64_t logins = 0, lookups = 0, logouts = 0;
  static inline const char* name = "login_service";

  soci::session& session() {
    if (!sql)
      sql = std::make_unique<storage::worker_session>(cfg.db);
    return sql->get();
  }
};

double now_unix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

peer_view view_of(const core::account& a, const core::peer& p) {
  peer_view v;
  v.peer = p;
  v.network = a.net.net;
  v.serial = a.net.serial;
  return v;
}

// A Login decided here (an answer), or a registration for the account actor (the setup key).
struct login_step {
  peer_view answer;
  std::optional<core::setup_key> register_with;
  std::optional<storage::account_store::peer_ref> known; // registered: its account actor answers
  login_step(peer_view v) : answer(std::move(v)) {}      // NOLINT: an answer converts
  login_step() = default;
};

login_step do_login(state& st, const login_request& req) {
  auto& sql = st.session();
  const auto kind = st.cfg.db.kind;
  storage::account_store accounts(sql, kind);
  storage::admin_store admin(sql, kind);

  if (auto known = accounts.peer_ref_by_key(req.wg_key)) {
    if (!req.jwt_user.empty()) {
      // An SSO login of a peer its user added: renews the login (and clears an expiry), as
      // NetBird's LoginPeer with a JWT. Another user's token is refused.
      if (known->user_id.empty() || known->user_id != req.jwt_user)
        return fail(permission_denied, "peer is not registered to the user of this token");
      storage::lifecycle_store(sql, kind).record_login(known->account_id, known->id,
                                                       storage::store_time());
      auto fresh = accounts.load_account(known->account_id);
      auto stored = accounts.peer_by_key(req.wg_key);
      if (!fresh || !stored)
        return fail(internal, "failed handling request");
      spdlog::info("peer {} logged in again as user {}", stored->id, req.jwt_user);
      auto v = view_of(*fresh, *stored);
      v.relogged = true;
      return v;
    }
    // Registered? expired? The account actor decides from the account it holds.
    login_step step;
    step.known = std::move(*known);
    return step;
  }
  if (req.setup_key.empty() && req.jwt.empty())
    return fail(permission_denied,
                "no peer auth method provided, please use a setup key or interactive SSO login");
  if (req.setup_key.empty())
    return fail(failed_precondition,
                req.jwt_user.empty()
                    ? "SSO login is not available: this server has no identity provider "
                      "configured; register the peer with a setup key"
                    : "registering a new peer with an SSO login is not supported yet; register "
                      "it with a setup key");
  if (!req.has_meta)
    return fail(failed_precondition, "peer system meta has to be provided to log in. Peer " +
                                         prefix(req.wg_key) + ", remote addr " + req.remote_addr);
  auto key = admin.setup_key_by_plain(req.setup_key);
  if (!key || core::check_setup_key(*key, now_unix()) != core::key_verdict::valid)
    return fail(not_found, "couldn't add peer: setup key is invalid");
  if (!req.extra_dns_labels.empty() && !key->allow_extra_dns_labels)
    return fail(failed_precondition, "couldn't add peer: setup key doesn't allow extra DNS labels");
  // The registration itself is the business of the account actor of the key's account.
  login_step step;
  step.register_with = std::move(*key);
  return step;
}

peer_view do_lookup(state& st, const std::string& wg_key, bool has_meta,
                    const core::peer_meta& meta) {
  auto& sql = st.session();
  storage::account_store accounts(sql, st.cfg.db.kind);
  auto p = accounts.peer_by_key(wg_key);
  if (!p)
    return fail(permission_denied, "peer is not registered");
  if (has_meta && !meta.hostname.empty()) {
    // The meta the stream brings is stored (its own columns only); an empty UI version keeps the
    // old one.
    core::peer_meta m = meta;
    if (m.ui_version.empty())
      m.ui_version = p->meta.ui_version;
    if (!(m == p->meta))
      accounts.update_peer_meta(p->account_id, p->id, m);
    p->meta = m;
  }
  // Login expiration and the map are the account actor's business (it holds the account).
  peer_view v;
  v.peer = std::move(*p);
  return v;
}

peer_view do_logout(state& st, const std::string& wg_key) {
  auto& sql = st.session();
  storage::account_store accounts(sql, st.cfg.db.kind);
  auto p = accounts.peer_by_key(wg_key);
  if (!p)
    return fail(not_found, "peer not found: " + prefix(wg_key));
  if (!storage::admin_store(sql, st.cfg.db.kind).delete_peer(p->account_id, p->id))
    return fail(not_found, "peer not found: " + prefix(wg_key));
  spdlog::info("peer {} of account {} logged out and deleted", p->id, p->account_id);
  peer_view v;
  v.peer = *p;
  return v;
}

login_service::behavior_type impl(login_service::stateful_pointer<state> self,
                                  login_service_config cfg) {
  self->state.cfg = std::move(cfg);
  auto guarded = [self](auto&& fn) -> decltype(fn()) {
    try {
      try {
        return fn();
      } catch (const std::exception& e) {
        // A dropped connection: once more on a fresh session (a login is safe to repeat: a
        // registration that landed makes the second attempt the login of a known peer).
        auto& st = self->state;
        if (!st.sql || st.sql->alive())
          throw;
        spdlog::warn("login service: {}; the session was dropped, trying again", e.what());
        st.sql->reset();
        return fn();
      }
    } catch (const std::exception& e) {
      auto& sql = self->state.sql;
      const bool down = sql && storage::unreachable(*sql);
      if (sql)
        sql->reset(); // reconnect on the next request
      if (down) {
        spdlog::warn("login service: the store cannot be reached: {}", e.what());
        return fail(unavailable, "the store is unavailable, please try again later");
      }
      spdlog::error("login service: {}", e.what());
      return fail(internal, "failed handling request");
    }
  };
  return {
      [self, guarded](login_atom, const login_request& req) -> caf::result<peer_view> {
        ++self->state.logins;
        auto step = guarded([&] { return do_login(self->state, req); });
        if (step.known) {
          auto rp = self->make_response_promise<peer_view>();
          const auto account = step.known->account_id, id = step.known->id;
          self->request(self->state.cfg.directory, caf::infinite, find_account_atom::value, account)
              .then(
                  [rp, req, id](account_actor acc) mutable {
                    rp.delegate(acc, login_atom::value, std::move(req), id);
                  },
                  [rp](caf::error& err) mutable {
                    spdlog::error("login service: no account actor: {}", caf::to_string(err));
                    rp.deliver(fail(internal, "failed handling request"));
                  });
          return rp;
        }
        if (!step.register_with)
          return step.answer;
        auto rp = self->make_response_promise<peer_view>();
        const auto account = step.register_with->account_id;
        self->request(self->state.cfg.directory, caf::infinite, find_account_atom::value, account)
            .then(
                [rp, req, key = std::move(*step.register_with)](account_actor acc) mutable {
                  rp.delegate(acc, register_atom::value, std::move(req), std::move(key));
                },
                [rp](caf::error& err) mutable {
                  spdlog::error("login service: no account actor: {}", caf::to_string(err));
                  rp.deliver(fail(internal, "failed handling request"));
                });
        return rp;
      },
      [self, guarded](lookup_atom, const std::string& key, bool has_meta,
                      const core::peer_meta& meta) {
        ++self->state.lookups;
        return guarded([&] { return do_lookup(self->state, key, has_meta, meta); });
      },
      [self, guarded](logout_atom, const std::string& key) {
        ++self->state.logouts;
        return guarded([&] { return do_logout(self->state, key); });
      },
      [self](status_atom) {
        // Answered between store requests only: blocked in SQL, it is reported missing.
        auto& st = self->state;
        auto s = status_of(self, "login_service");
        s.gauges["session_open"] = st.sql ? 1 : 0;
        s.counters["logins"] = st.logins;
        s.counters["lookups"] = st.lookups;
        s.counters["logouts"] = st.logouts;
        return s;
      },
  };
}

} // namespace

login_service spawn_login_service(caf::actor_system& sys, login_service_config cfg) {
  return sys.spawn<caf::detached>(impl, std::move(cfg));
}

} // namespace nbm::actors
