// NetBird's JWT groups (account settings jwt_groups_enabled, jwt_groups_claim_name,
// jwt_allow_groups): who may log in, and how a login's groups claim changes the user's
// auto-groups (getJWTGroupsChanges). Pure: the standard library and core/ only.
#pragma once

#include "core/change.hpp"
#include "core/model.hpp"

#include <string>
#include <vector>

namespace nbm::core {

// NetBird's EnsureUserAccessByJWTGroups: with JWT groups enabled and an allow-list, the token
// must name one of its groups.
bool jwt_groups_allowed(const account_settings& s, const std::vector<std::string>& names);

// Whether a login with these groups changes the user's JWT groups (NetBird skips the sync when
// none is added or removed).
bool jwt_groups_change(const account& a, const user& u, const std::vector<std::string>& names);

// Decides a change::jwt_groups: only the user itself, blocked users not; fills in what to create,
// add and remove.
verdict prepare_jwt_groups(const account& a, const user& caller, change::jwt_groups& c);

} // namespace nbm::core
