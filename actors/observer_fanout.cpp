#include "actors/observer_fanout.hpp"

#include <caf/all.hpp>

namespace nbm::actors {

namespace {

session_observer::behavior_type fanout_impl(session_observer::stateful_pointer<fanout_state> self,
                                            std::vector<session_observer> to) {
  self->state.to = std::move(to);
  return {
      [self](landed_atom, const session_event& ev) {
        for (const auto& o : self->state.to)
          self->send(o, landed_atom::value, ev);
        ++self->state.forwarded;
      },
      [self](status_atom) {
        auto s = status_of(self, "observer_fanout");
        s.gauges["observers"] = static_cast<std::int64_t>(self->state.to.size());
        s.counters["forwarded"] = self->state.forwarded;
        return s;
      },
  };
}

} // namespace

session_observer spawn_observer_fanout(caf::actor_system& sys, std::vector<session_observer> to) {
  std::vector<session_observer> valid;
  for (auto& o : to)
    if (o)
      valid.push_back(std::move(o));
  if (valid.empty())
    return {};
  if (valid.size() == 1)
    return valid.front();
  return sys.spawn(fanout_impl, std::move(valid));
}

} // namespace nbm::actors
