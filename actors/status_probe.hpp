// Asks many actors how they are, all at once, with one deadline: nothing waits longer than that,
// and an actor that did not answer in time (busy, blocked in SQL, gone) is reported missing by
// kind instead of waited for. Used by api/metrics at every scrape; the inspector builds on it.
#pragma once

#include "actors/status.hpp"

#include <caf/fwd.hpp>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace nbm::actors {

struct status_sample {
  std::vector<actor_status> answers;            // in no particular order
  std::map<std::string, std::uint64_t> missing; // kind -> actors that did not answer in time
};

// Sends `status_atom` to every target at once and collects what arrives within `deadline`. A
// handle listed twice is asked once; an invalid handle is left out.
// Blocks the calling (non-actor) thread for at most `deadline` plus scheduling noise.
status_sample ask_status(caf::actor_system& sys, const std::vector<status_target>& targets,
                         std::chrono::milliseconds deadline);

} // namespace nbm::actors
