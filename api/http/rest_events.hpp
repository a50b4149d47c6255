// NetBird's activity log over REST: GET /api/events/audit and the legacy GET /api/events (the
// account's events, newest first, at most 10,000, as NetBird's GetEvents). The caller is an admin
// of the account (checked by rest.cpp before).
#pragma once

#include "api/http/rest.hpp"

namespace nbm::api::http {

// `sub`: what follows /api/events/ ("" or "audit"); other paths answer 404, other methods 405.
response events_response(actors::admin_facade& facade, const core::account& a, const request& req,
                         const std::string& sub, const std::string& more);

} // namespace nbm::api::http
