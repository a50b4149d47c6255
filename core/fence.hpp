// The fencing rule for peer sessions, as pure functions: the one definition the peer actor (memory)
// and the tests' reference model share. The database enforces the same rule in its UPDATE
// predicates.
#pragma once

#include "core/session_token.hpp"

namespace nbm::core {

// A connect with `incoming` replaces the session `stored` only if it is strictly newer.
constexpr bool connect_wins(session_token stored, session_token incoming) {
  return incoming > stored;
}

// A disconnect ends the session only if it is the owner's (equal, non-zero token).
constexpr bool disconnect_owns(session_token stored, session_token incoming) {
  return incoming != 0 && incoming == stored;
}

} // namespace nbm::core
