// NetBird's REST API (the core of its OpenAPI under /api): authentication with personal access
// tokens, NetBird's error body and status codes, and the handlers of the account's objects.
// Transport-free: `rest_api::handle` takes a parsed request; server/front_door serves it over HTTP.
#pragma once

#include "actors/admin_facade.hpp"
#include "api/http/jwt.hpp"

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace nbm::api::http {

struct request {
  std::string method; // GET, POST, PUT, DELETE
  std::string path;   // e.g. /api/groups/abc
  std::string body;
  std::string authorization; // the Authorization header
  std::map<std::string, std::string> query;
};

struct response {
  int status = 200;
  std::string body; // JSON
  // Extra headers (e.g. Retry-After on a 503); the transport adds its own.
  std::vector<std::pair<std::string, std::string>> headers;
};

struct rest_deps {
  // The actors' door: every read and change of an account goes through it (with deadlines).
  std::shared_ptr<actors::admin_facade> facade;
  std::string dns_domain = "netbird.selfhosted";
  jwt_config jwt; // Bearer JWTs: accepted only when keys_location is set
  // Where NetBird's GeoNames database (geonames_*.db) is looked for (/api/locations); "" = none.
  std::string datadir;
};

class rest_api {
public:
  explicit rest_api(rest_deps deps);
  ~rest_api();
  rest_api(const rest_api&) = delete;
  rest_api& operator=(const rest_api&) = delete;

  // Thread-safe; every answer is JSON (errors as {"message","code"}). Bodies are decoded by
  // api/http/decode.hpp (400 for unparsable, too large or too deep bodies, 422 for values out of
  // range); a database that cannot be reached answers 503 with Retry-After.
  response handle(const request& req);

  struct impl;

private:
  std::shared_ptr<impl> p_;
};

} // namespace nbm::api::http
