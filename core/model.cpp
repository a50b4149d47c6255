#include "core/model.hpp"

namespace nbm::core {

const peer* account::find_peer(const std::string& peer_id) const {
  for (const auto& p : peers)
    if (p.id == peer_id)
      return &p;
  return nullptr;
}

const group* account::find_group_by_name(const std::string& name) const {
  for (const auto& g : groups)
    if (g.name == name)
      return &g;
  return nullptr;
}

} // namespace nbm::core
