// admin_facade: the one thing the REST API (api/http) asks of the actors. Every call is typed (core
// values in, core values out), blocks the calling thread at most its deadline, and answers
// `unavailable` when the deadline passes or the actors cannot answer: the caller answers 503, never
// hangs. Thread-safe. CAF-light: this header names no CAF type beyond caf/fwd.hpp.
#pragma once

#include "core/activity.hpp"
#include "core/change.hpp"
#include "core/model.hpp"

#include <caf/fwd.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace nbm::actors {

enum class facade_status {
  ok,
  refused,     // the change was refused (`refused` says why); nothing was written
  unavailable, // the store cannot be reached, or the actors did not answer within the deadline
  duplicate,   // the database refused a row as a duplicate
  failed,      // anything else (logged)
};

struct facade_options {
  std::chrono::milliseconds read_deadline{30'000};
  std::chrono::milliseconds change_deadline{60'000};
  std::size_t token_cache = 10'000; // PAT hash -> account id entries kept
};

struct facade_read {
  facade_status status = facade_status::ok;
  std::shared_ptr<const core::account> acc; // ok and null: the account does not exist
};

struct facade_lookup {
  facade_status status = facade_status::ok;
  std::string account_id; // ok and "": none
};

struct facade_change {
  facade_status status = facade_status::ok;
  std::optional<core::problem> refused;       // NetBird's status and message
  std::shared_ptr<const core::account> after; // ok: the account as committed, with the change
  std::string id;                             // the saved or created object's id
  std::string plain_key;                      // a created setup key's plain text (shown once)
};

struct facade_events {
  facade_status status = facade_status::ok;
  std::vector<core::activity::event> events; // newest first
};

class admin_facade {
public:
  // `directory`: the peer directory (finds account actors); `loader`: the account loader (asked
  // who a credential names). Both as actors::peer_directory / actors::account_loader handles
  // (caf::actor_cast to an untyped handle).
  admin_facade(caf::actor_system& sys, caf::actor directory, caf::actor loader,
               facade_options opts = {});
  ~admin_facade();
  admin_facade(const admin_facade&) = delete;
  admin_facade& operator=(const admin_facade&) = delete;

  // The account of a personal access token (by its hash; remembered once found).
  facade_lookup account_of_token(const std::string& token_hash);
  // The account of an IdP user; its first login creates an account it owns.
  facade_lookup account_of_user(const std::string& user_id, const std::string& email);
  // The account as its actor holds it, users, tokens and setup keys (with `peers`, the peers'
  // status too) read again now; `token_hash` (if any) is marked used when it authenticates.
  facade_read read(const std::string& account_id, bool peers, const std::string& token_hash = {});
  // The account's activity log (NetBird's events), newest first, at most 10,000.
  facade_events events(const std::string& account_id);
  // An admin change of the account, decided, committed and fanned out by its actor.
  facade_change change(const std::string& account_id, core::admin_change c);

  struct impl;

private:
  std::unique_ptr<impl> p_;
};

} // namespace nbm::actors
