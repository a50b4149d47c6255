// A fenced peer-status write (a Sync stream's connect or disconnect) as the actors hand it to the
// store: plain data, so the actors' message vocabulary names it without including storage/.
#pragma once

#include "core/session_token.hpp"

#include <string>

namespace nbm::core {

enum class status_op : unsigned char { connect, disconnect };

struct status_write {
  std::string account_id;
  std::string peer_id;
  session_token token = 0;
  status_op op = status_op::connect;
};

} // namespace nbm::core
