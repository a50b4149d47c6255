#include "actors/admin_facade.hpp"

#include "actors/interfaces.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <mutex>
#include <unordered_map>

namespace nbm::actors {

namespace {

facade_status status_of(store_failure f) {
  switch (f) {
  case store_failure::none:
    return facade_status::ok;
  case store_failure::unavailable:
    return facade_status::unavailable;
  case store_failure::duplicate:
    return facade_status::duplicate;
  case store_failure::failed:
    break;
  }
  return facade_status::failed;
}

} // namespace

struct admin_facade::impl {
  caf::actor_system& sys;
  peer_directory directory;
  account_loader loader;
  facade_options opts;
  std::mutex mu;
  std::unordered_map<std::string, std::string> token_accounts; // PAT hash -> account id

  impl(caf::actor_system& s, peer_directory d, account_loader l, facade_options o)
      : sys(s), directory(std::move(d)), loader(std::move(l)), opts(o) {}

  // The asker's view of a request: the answer, or nothing (an error or the deadline passed,
  // logged).
  template <class R, class Handle, class... Ts>
  std::optional<R> ask(const char* what, const Handle& h, std::chrono::milliseconds deadline,
                       Ts&&... xs) {
    caf::scoped_actor self{sys};
    std::optional<R> out;
    self->request(h, deadline, std::forward<Ts>(xs)...)
        .receive(
            [&](R& r) { out = std::move(r); },
            [&](caf::error& err) { spdlog::error("admin facade: {}: {}", what, sys.render(err)); });
    return out;
  }

  // Account actors already found: a request skips the directory (one round trip less). An actor
  // that went down answers its request with an error at once; the directory is asked again then.
  std::unordered_map<std::string, account_actor> actors;

  std::optional<account_actor> actor_of(const std::string& account_id, bool fresh = false) {
    if (!fresh) {
      std::lock_guard<std::mutex> lk(mu);
      if (auto it = actors.find(account_id); it != actors.end())
        return it->second;
    }
    auto a = ask<account_actor>("finding an account actor", directory, opts.read_deadline,
                                find_account_atom::value, account_id);
    if (a) {
      std::lock_guard<std::mutex> lk(mu);
      if (actors.size() >= opts.token_cache)
        actors.clear();
      actors[account_id] = *a;
    }
    return a;
  }

  // Asks the account's actor; once more through the directory when the remembered actor is gone.
  template <class R, class... Ts>
  std::optional<R> ask_account(const char* what, const std::string& account_id,
                               std::chrono::milliseconds deadline, const Ts&... xs) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto acc = actor_of(account_id, attempt > 0);
      if (!acc)
        return std::nullopt;
      caf::scoped_actor self{sys};
      std::optional<R> out;
      bool gone = false;
      self->request(*acc, deadline, xs...)
          .receive([&](R& r) { out = std::move(r); },
                   [&](caf::error& err) {
                     gone = err == caf::sec::request_receiver_down;
                     if (!gone || attempt > 0)
                       spdlog::error("admin facade: {}: {}", what, sys.render(err));
                   });
      if (out || !gone)
        return out;
    }
    return std::nullopt;
  }
};

admin_facade::admin_facade(caf::actor_system& sys, caf::actor directory, caf::actor loader,
                           facade_options opts)
    : p_(std::make_unique<impl>(sys, caf::actor_cast<peer_directory>(directory),
                                caf::actor_cast<account_loader>(loader), opts)) {}

admin_facade::~admin_facade() = default;

facade_lookup admin_facade::account_of_token(const std::string& token_hash) {
  {
    std::lock_guard<std::mutex> lk(p_->mu);
    if (auto it = p_->token_accounts.find(token_hash); it != p_->token_accounts.end())
      return {facade_status::ok, it->second};
  }
  auto r = p_->ask<principal_lookup>("looking up a token", p_->loader, p_->opts.read_deadline,
                                     token_atom::value, token_hash);
  if (!r)
    return {facade_status::unavailable, {}};
  if (r->failure != store_failure::none)
    return {status_of(r->failure), {}};
  if (!r->account_id.empty()) {
    // A token never moves to another account; a deleted one is refused by its account's read.
    std::lock_guard<std::mutex> lk(p_->mu);
    if (p_->token_accounts.size() >= p_->opts.token_cache)
      p_->token_accounts.clear();
    p_->token_accounts.emplace(token_hash, r->account_id);
  }
  return {facade_status::ok, r->account_id};
}

facade_lookup admin_facade::account_of_user(const std::string& user_id, const std::string& email) {
  auto r = p_->ask<principal_lookup>("looking up an IdP user", p_->loader, p_->opts.change_deadline,
                                     user_atom::value, idp_user{user_id, email});
  if (!r)
    return {facade_status::unavailable, {}};
  return {status_of(r->failure), r->account_id};
}

facade_read admin_facade::read(const std::string& account_id, bool peers,
                               const std::string& token_hash) {
  read_request req;
  req.peers = peers;
  req.token_hash = token_hash;
  auto r = p_->ask_account<read_outcome>("reading an account", account_id, p_->opts.read_deadline,
                                         read_atom::value, req);
  if (!r)
    return {facade_status::unavailable, nullptr};
  return {status_of(r->failure), std::move(r->acc)};
}

facade_events admin_facade::events(const std::string& account_id) {
  auto r = p_->ask<events_outcome>("reading the activity log", p_->loader, p_->opts.read_deadline,
                                   events_atom::value, account_id);
  if (!r)
    return {facade_status::unavailable, {}};
  return {status_of(r->failure), std::move(r->events)};
}

facade_change admin_facade::change(const std::string& account_id, core::admin_change c) {
  facade_change out;
  // The change travels as a pointer: a second attempt (the remembered actor was gone, so the
  // first never reached an actor) hands over the same, untouched value.
  const auto ptr = std::make_shared<core::admin_change>(std::move(c));
  auto r = p_->ask_account<change_outcome>("changing an account", account_id,
                                           p_->opts.change_deadline, change_atom::value, ptr);
  if (!r) {
    out.status = facade_status::unavailable;
    return out;
  }
  if (r->refused) {
    out.status = facade_status::refused;
    out.refused = std::move(r->refused);
    return out;
  }
  out.status = status_of(r->failure);
  out.after = std::move(r->after);
  out.id = std::move(r->id);
  out.plain_key = std::move(r->plain_key);
  return out;
}

} // namespace nbm::actors
