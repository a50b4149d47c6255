#include "actors/status_probe.hpp"

#include <caf/all.hpp>

#include <future>
#include <memory>
#include <unordered_set>

namespace nbm::actors {

namespace {

// What the collecting actor fills; handed back through a promise exactly once.
struct collection {
  std::vector<status_target> targets;
  status_sample sample;
  std::vector<bool> answered;
  std::size_t outstanding = 0;
  std::promise<status_sample> done;
  bool delivered = false;

  void finish() {
    if (delivered)
      return;
    delivered = true;
    for (std::size_t i = 0; i < targets.size(); ++i)
      if (!answered[i])
        ++sample.missing[targets[i].kind];
    done.set_value(std::move(sample));
  }
};

} // namespace

status_sample ask_status(caf::actor_system& sys, const std::vector<status_target>& targets,
                         std::chrono::milliseconds deadline) {
  auto c = std::make_shared<collection>();
  // One actor listed twice (the expiry actor is also the session observer) is asked once.
  std::unordered_set<caf::actor_addr> seen;
  for (const auto& t : targets)
    if (t.handle && seen.insert(t.handle.address()).second) // an invalid handle: left out
      c->targets.push_back(t);
  c->answered.assign(c->targets.size(), false);
  auto result = c->done.get_future();
  if (c->targets.empty()) {
    c->finish();
    return result.get();
  }
  // One short-lived actor sends every request, then gathers answers; each request carries the
  // same deadline, so the last answer or the first timeout after it ends the collection.
  sys.spawn([c, deadline](caf::event_based_actor* self) {
    for (std::size_t i = 0; i < c->targets.size(); ++i) {
      if (!c->targets[i].handle)
        continue; // counted missing
      ++c->outstanding;
      self->request(c->targets[i].handle, deadline, status_atom::value)
          .then(
              [=](actor_status& s) {
                c->answered[i] = true;
                c->sample.answers.push_back(std::move(s));
                if (--c->outstanding == 0) {
                  c->finish();
                  self->quit();
                }
              },
              [=](caf::error&) {
                if (--c->outstanding == 0) {
                  c->finish();
                  self->quit();
                }
              });
    }
    if (c->outstanding == 0) {
      c->finish();
      self->quit();
    }
  });
  // The actor's own timeouts end the collection; this wait only guards against an actor system
  // that no longer schedules anything (shutdown): then everyone counts as missing.
  if (result.wait_for(deadline + std::chrono::seconds(1)) != std::future_status::ready) {
    status_sample none;
    for (const auto& t : c->targets)
      ++none.missing[t.kind];
    return none;
  }
  return result.get();
}

} // namespace nbm::actors
