// Making the wire facade needs the actor system: this header is for server/ and the actor tests,
// never for api/ (which sees only actors/wire_facade.hpp, a header without CAF).
#pragma once

#include "actors/wire_facade.hpp"

#include <caf/fwd.hpp>

#include <chrono>
#include <memory>

namespace nbm::actors {

// `directory` is the peer_directory (actors/interfaces.hpp) as a dynamic handle; every request
// waits at most `deadline` for the actors.
std::unique_ptr<wire_facade> make_wire_facade(caf::actor_system& sys, const caf::actor& directory,
                                              std::chrono::milliseconds deadline);

} // namespace nbm::actors
