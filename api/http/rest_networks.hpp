// NetBird's /api/networks (networks, their resources and routers): the handlers, apart from
// rest.cpp. rest.cpp authenticates, checks the caller is an admin and hands over the account it
// read and a way to commit a change through the account's actor.
#pragma once

#include "api/http/rest.hpp"
#include "core/change.hpp"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace nbm::api::http {

struct networks_commit {
  std::shared_ptr<const core::account> after; // the account after the change
  std::string id;                             // the saved object's id
};
// Commits one change (throws NetBird's error, as rest.cpp does, when it is refused).
using networks_commit_fn = std::function<networks_commit(core::change_kind)>;

// `path` = {"networks", a, b, c} as rest.cpp splits it. Refusals are thrown as decode::decode_error
// (NetBird's status and message).
response networks_api(const request& req, const std::vector<std::string>& path,
                      const core::account& a, const networks_commit_fn& commit);

} // namespace nbm::api::http
