#include "api/http/rest_events.hpp"

#include "core/activity.hpp"

#include <nlohmann/json.hpp>

#include <set>
#include <unordered_map>

namespace nbm::api::http {

namespace {

using json = nlohmann::json;

response answer(int status, const json& body) {
  response r{status, body.dump(-1, ' ', false, json::error_handler_t::replace), {}};
  if (status == 503)
    r.headers.emplace_back("Retry-After", "2");
  return r;
}

response error(int status, const std::string& message) {
  return answer(status, {{"message", message}, {"code", status}});
}

// Store text "2026-11-30 20:50:00.123456+00:00" -> Go's RFC 3339 of a UTC time
// ("2026-11-30T20:50:00.123456Z").
std::string rfc3339(std::string t) {
  if (t.size() < 19)
    return "0001-01-01T00:00:00Z";
  t[10] = 'T';
  for (const char* zero : {"+00:00", "+0000", "Z"}) {
    const std::string z = zero;
    if (t.size() > z.size() && t.compare(t.size() - z.size(), z.size(), z) == 0) {
      t.resize(t.size() - z.size());
      return t + "Z";
    }
  }
  return t.size() == 19 ? t + "Z" : t;
}

// Go's %v of a meta value.
std::string text_of(const core::activity::meta_value& v) {
  if (const auto* s = std::get_if<std::string>(&v))
    return *s;
  if (const auto* b = std::get_if<bool>(&v))
    return *b ? "true" : "false";
  return std::to_string(std::get<std::int64_t>(v));
}

struct who {
  std::string name, email;
};

} // namespace

response events_response(actors::admin_facade& facade, const core::account& a, const request& req,
                         const std::string& sub, const std::string& more) {
  if (!more.empty() || !(sub.empty() || sub == "audit"))
    return error(404, "not found");
  if (req.method != "GET")
    return error(405, "method not allowed");
  auto got = facade.events(a.id);
  switch (got.status) {
  case actors::facade_status::ok:
    break;
  case actors::facade_status::unavailable:
    return error(503, "service unavailable, please retry");
  default:
    return error(500, "internal server error");
  }
  // NetBird's fillEventsWithUserInfo: the account's users by id (a service user by its name).
  std::unordered_map<std::string, who> users;
  for (const auto& u : a.users)
    users[u.id] = {u.is_service_user ? u.service_user_name : u.name, u.email};
  json out = json::array();
  std::set<std::string> joined; // NetBird drops repeated UserJoined events
  for (const auto& e : got.events) {
    if (e.activity == core::activity::user_joined &&
        !joined.insert(e.target_id + "\n" + e.initiator_id).second)
      continue;
    json meta = json::object();
    for (const auto& [k, v] : e.m)
      meta[k] = text_of(v);
    if (auto t = users.find(e.target_id); t != users.end()) {
      meta["email"] = t->second.email;
      meta["username"] = t->second.name;
    }
    // A deleted initiator: the name and email the store kept (NetBird's deleted_users); a user of
    // the account: its own.
    std::string name = e.initiator_name, email = e.initiator_email;
    if (auto i = users.find(e.initiator_id); i != users.end()) {
      if (name.empty())
        name = i->second.name;
      if (email.empty())
        email = i->second.email;
    }
    out.push_back({{"id", std::to_string(e.id)},
                   {"timestamp", rfc3339(e.timestamp)},
                   {"activity", core::activity::message(e.activity)},
                   {"activity_code", core::activity::string_code(e.activity)},
                   {"initiator_id", e.initiator_id},
                   {"initiator_name", name},
                   {"initiator_email", email},
                   {"target_id", e.target_id},
                   {"meta", meta}});
  }
  return answer(200, out);
}

} // namespace nbm::api::http
