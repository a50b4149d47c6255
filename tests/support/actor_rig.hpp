// What the actor suites share: the actors a server runs over a store (status writer, account loader
// without polling, directory), with a blocking `ask`; and account_world, a store with one account.
// Header-only: only the actor suites include it (the support library has no CAF).
#pragma once

#include "actors/account_actor.hpp"
#include "actors/directory.hpp"
#include "actors/status_writer.hpp"
#include "tests/support/account_world.hpp"

#include <caf/all.hpp>
#include <doctest/doctest.h>
#include <soci/soci.h>

#include <chrono>
#include <memory>
#include <string>

namespace nbm::test {

// The actor system with the server's status writer, account loader (no serial polling: tests
// send check/reload themselves) and directory over `db`.
struct actor_rig {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  actors::status_writer writer;
  actors::account_loader loader;
  actors::peer_directory dir;

  explicit actor_rig(const storage::db_options& db) {
    sys = std::make_unique<caf::actor_system>(cfg);
    writer = actors::spawn_status_writer(*sys, {db, 1, 1024});
    loader = actors::spawn_account_loader(*sys, {db, std::chrono::milliseconds(0)});
    dir = actors::spawn_peer_directory(*sys, {writer, {}, loader, {}, {}, {}});
  }
  // Derived rigs stop their own actors first (their destructors run before this one).
  ~actor_rig() {
    caf::anon_send_exit(dir, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(writer, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(loader, caf::exit_reason::user_shutdown);
    writer = actors::status_writer{};
    loader = actors::account_loader{};
    dir = actors::peer_directory{};
    sys.reset();
  }
  actor_rig(const actor_rig&) = delete;
  actor_rig& operator=(const actor_rig&) = delete;

  // Sends a request and waits for its answer (an error fails the test).
  template <class Handle, class... Ts>
  auto ask(const Handle& h, Ts&&... xs) {
    caf::scoped_actor self{*sys};
    using result = typename caf::detail::tl_head<typename caf::response_type<
        typename Handle::signatures, caf::detail::strip_and_convert_t<Ts>...>::type>::type;
    result out{};
    self->request(h, caf::infinite, std::forward<Ts>(xs)...)
        .receive([&](result& x) { out = std::move(x); },
                 [&](caf::error& e) { FAIL(caf::to_string(e)); });
    return out;
  }
  actors::account_actor account(const std::string& id) {
    return ask(dir, actors::find_account_atom::value, id);
  }
  actors::peer_actor peer(const std::string& acc, const std::string& id) {
    return ask(dir, actors::find_peer_atom::value, acc, id);
  }
};

} // namespace nbm::test
