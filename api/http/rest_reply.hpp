// What the REST handlers beside rest.cpp (networks, posture checks) answer with: a 200 JSON body,
// or a refusal thrown as decode::decode_error (rest.cpp turns it into NetBird's
// {"message","code"} body).
#pragma once

#include "api/http/decode.hpp"
#include "api/http/rest.hpp"

#include <nlohmann/json.hpp>

#include <string>

namespace nbm::api::http {

[[noreturn]] inline void refuse(int status, const std::string& message) {
  throw decode::decode_error(status, message);
}

// Invalid UTF-8 in stored text is answered as U+FFFD, never as an error.
inline response json_reply(const nlohmann::json& body) {
  return {200, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), {}};
}

} // namespace nbm::api::http
