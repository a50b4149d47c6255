#include "api/http/rest_posture.hpp"

#include "api/http/decode.hpp"
#include "api/http/decode_posture.hpp"
#include "api/http/rest_reply.hpp"
#include "core/posture.hpp"

#include <nlohmann/json.hpp>

namespace nbm::api::http {

namespace {

using json = nlohmann::json;

const core::posture_check* find(const core::account& a, const std::string& id) {
  for (const auto& c : a.posture_checks)
    if (c.id == id)
      return &c;
  return nullptr;
}

json min_json(const char* field, const std::optional<std::string>& v) {
  return {{field, *v}};
}

// NetBird's Checks.ToAPIResponse.
json check_json(const core::posture_check& c) {
  json checks = json::object();
  if (auto d = core::parse_posture_definition(c.checks_json)) {
    if (d->nb_min_version)
      checks["nb_version_check"] = {{"min_version", *d->nb_min_version}};
    if (d->os) {
      json os = json::object();
      if (d->os->android)
        os["android"] = min_json("min_version", d->os->android);
      if (d->os->darwin)
        os["darwin"] = min_json("min_version", d->os->darwin);
      if (d->os->ios)
        os["ios"] = min_json("min_version", d->os->ios);
      if (d->os->linux_kernel)
        os["linux"] = min_json("min_kernel_version", d->os->linux_kernel);
      if (d->os->windows_kernel)
        os["windows"] = min_json("min_kernel_version", d->os->windows_kernel);
      checks["os_version_check"] = os;
    }
    if (d->geo) {
      json locations = json::array();
      for (const auto& l : d->geo->locations) {
        json x = {{"country_code", l.country_code}};
        if (!l.city_name.empty())
          x["city_name"] = l.city_name;
        locations.push_back(x);
      }
      checks["geo_location_check"] = {{"locations", locations}, {"action", d->geo->action}};
    }
    if (d->network_range)
      checks["peer_network_range_check"] = {{"ranges", d->network_range->ranges},
                                            {"action", d->network_range->action}};
    if (d->processes) {
      json list = json::array();
      for (const auto& p : *d->processes)
        list.push_back({{"linux_path", p.linux_path},
                        {"mac_path", p.mac_path},
                        {"windows_path", p.windows_path}});
      checks["process_check"] = {{"processes", list}};
    }
  }
  return {{"id", c.id}, {"name", c.name}, {"description", c.description}, {"checks", checks}};
}

response method_not_allowed() {
  return {405, json{{"message", "method not allowed"}, {"code", 405}}.dump(), {}};
}

} // namespace

response posture_checks_api(const request& req, const std::string& id, const core::account& a,
                            bool geo_ready, const networks_commit_fn& commit) {
  const auto& method = req.method;
  const auto not_found = [&] { refuse(404, "posture checks: " + core::clip(id) + " not found"); };
  if (method == "GET" && id.empty()) {
    json out = json::array();
    for (const auto& c : a.posture_checks)
      out.push_back(check_json(c));
    return json_reply(out);
  }
  if (method == "GET") {
    const auto* c = find(a, id);
    if (!c)
      not_found();
    return json_reply(check_json(*c));
  }
  if ((method == "POST" && id.empty()) || (method == "PUT" && !id.empty())) {
    // NetBird's order: an updated check must exist (before the body is read), the body parses,
    // a geo check needs the geolocation databases, the ranges are prefixes, then Validate, then
    // the name (a new check's) is free.
    if (method == "PUT" && !find(a, id))
      not_found();
    auto in = decode::posture_check(req.body);
    if (in.checks.geo && !geo_ready)
      refuse(412, "Geo location database is not initialized. Check the self-hosted Geo database "
                  "documentation at https://docs.netbird.io/selfhosted/geo-support");
    decode::posture_ranges(in);
    core::change::save_posture_check c;
    c.c.id = id;
    c.c.name = in.name;
    c.c.description = in.description;
    c.c.checks_json = core::posture_definition_json(in.checks);
    // Decided here as the actor will (no trip for a plain refusal), and again by the actor.
    if (auto bad = core::prepare_posture_change(a, c))
      refuse(bad->status, bad->message);
    const auto out = commit(std::move(c));
    const auto* saved = find(*out.after, out.id);
    if (!saved)
      refuse(404, "posture checks: " + core::clip(out.id) + " not found");
    return json_reply(check_json(*saved));
  }
  if (method == "DELETE" && !id.empty()) {
    commit(core::change::delete_posture_check{id});
    return json_reply(json::object());
  }
  return method_not_allowed();
}

} // namespace nbm::api::http
