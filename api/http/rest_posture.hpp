// NetBird's /api/posture-checks (management/server/http/handlers/policies/
// posture_checks_handler.go): list, create, read, update, delete, with NetBird's bodies, order of
// checks, status codes and messages. rest.cpp authenticates, checks the caller is an admin and
// hands over the account it read and a way to commit a change through the account's actor.
#pragma once

#include "api/http/rest_networks.hpp"

#include <string>

namespace nbm::api::http {

// `id`: the path's check id ("" for the collection). `geo_ready`: whether the geolocation
// databases are loaded (a geo location check is refused with 412 without them, as NetBird does).
// Refusals are thrown as decode::decode_error (NetBird's status and message).
response posture_checks_api(const request& req, const std::string& id, const core::account& a,
                            bool geo_ready, const networks_commit_fn& commit);

} // namespace nbm::api::http
