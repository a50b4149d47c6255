// Writes of NetBird's networks (networks, network_resources, network_routers and the groups'
// resources column) and posture checks, each one transaction that bumps the account's network
// serial. Internal to
// storage/ (change_store commits the typed changes through it).
#pragma once

#include "core/model.hpp"
#include "storage/database.hpp"

#include <string>
#include <vector>

namespace soci {
class session;
}

namespace nbm::storage {

class network_store {
public:
  network_store(soci::session& sql, engine kind) : sql_(sql), kind_(kind) {}

  // Inserts or replaces (id empty: a new id); returns the id; "" when the account is gone.
  std::string save_network(const core::network_def& n);
  // The network with its resources and routers; `touched`: the groups without its resources.
  // False when it was not there (nothing written).
  bool delete_network(const std::string& account_id, const std::string& id,
                      const std::vector<core::group>& touched);
  // Inserts or replaces the resource, then the groups' resources: `touched` as given, or (a new
  // resource) `holders` take it.
  std::string save_resource(const core::network_resource& r,
                            const std::vector<core::group>& touched);
  bool delete_resource(const std::string& account_id, const std::string& id,
                       const std::vector<core::group>& touched);
  std::string save_router(const core::network_router& r);
  bool delete_router(const std::string& account_id, const std::string& id);
  // Posture checks (posture_checks; NetBird keeps a stored check's public_id), the same way.
  std::string save_posture_check(const core::posture_check& c);
  bool delete_posture_check(const std::string& account_id, const std::string& id);

private:
  soci::session& sql_;
  engine kind_;
};

} // namespace nbm::storage
