// The answer of one request on CAF's deterministic scheduler, after everything it caused ran:
// the deterministic rigs of the actor tests (test_map_workers, test_peer_actor, test_sync_door).
#pragma once

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <doctest/doctest.h>

#include <memory>
#include <optional>

namespace nbm::test {

template <class R, class Handle, class... Ts>
R det_ask(caf::actor_system& sys, caf::scheduler::test_coordinator& sched, const Handle& h,
          Ts... xs) {
  auto out = std::make_shared<std::optional<R>>();
  sys.spawn([=](caf::event_based_actor* self) {
    self->request(h, caf::infinite, xs...)
        .then([=](R& r) { *out = std::move(r); },
              [=](caf::error& e) { FAIL("request failed: " << caf::to_string(e)); });
  });
  sched.run();
  REQUIRE(out->has_value());
  return std::move(**out);
}

} // namespace nbm::test
