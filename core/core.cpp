// Anchor translation unit so core/ is a library even while most of it is header-only.
#include "core/fence.hpp"

namespace nbm::core {
static_assert(connect_wins(0, 1) && !connect_wins(5, 5) && disconnect_owns(5, 5) &&
              !disconnect_owns(0, 0));
} // namespace nbm::core
