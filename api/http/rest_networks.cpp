#include "api/http/rest_networks.hpp"

#include "api/http/decode.hpp"
#include "api/http/rest_reply.hpp"
#include "core/networks.hpp"

#include <nlohmann/json.hpp>

namespace nbm::api::http {

namespace {

using json = nlohmann::json;

template <class T>
const T* by_id(const std::vector<T>& items, const std::string& id) {
  for (const auto& x : items)
    if (x.id == id)
      return &x;
  return nullptr;
}

// Go's json.Decoder into NetBird's request structs: a field of the wrong type is a 400; unknown
// fields are ignored.
json parse_body(const std::string& body) {
  decode::check_body(body);
  auto j = json::parse(body, nullptr, false);
  if (!j.is_object())
    refuse(400, "couldn't parse JSON request");
  return j;
}
std::string get_string(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null())
    return "";
  if (!it->is_string())
    refuse(400, "couldn't parse JSON request");
  return it->get<std::string>();
}
bool get_bool(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null())
    return false;
  if (!it->is_boolean())
    refuse(400, "couldn't parse JSON request");
  return it->get<bool>();
}
std::int64_t get_int(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null())
    return 0;
  if (!it->is_number_integer())
    refuse(400, "couldn't parse JSON request");
  return it->get<std::int64_t>();
}
std::vector<std::string> get_strings(const json& j, const char* key) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null())
    return out;
  if (!it->is_array())
    refuse(400, "couldn't parse JSON request");
  for (const auto& e : *it) {
    if (!e.is_string())
      refuse(400, "couldn't parse JSON request");
    out.push_back(e.get<std::string>());
  }
  return out;
}

json network_json(const core::account& a, const core::network_def& n) {
  json routers = json::array(), resources = json::array();
  std::size_t routing_peers = 0;
  for (const auto& r : a.network_routers) {
    if (r.network_id != n.id)
      continue;
    routers.push_back(r.id);
    if (!r.peer.empty())
      ++routing_peers;
    for (const auto& gid : r.peer_groups)
      if (const auto* g = by_id(a.groups, gid))
        routing_peers += g->peers.size();
  }
  for (const auto& r : a.network_resources)
    if (r.network_id == n.id)
      resources.push_back(r.id);
  return {{"id", n.id},
          {"name", n.name},
          {"description", n.description},
          {"routers", routers},
          {"resources", resources},
          {"routing_peers_count", routing_peers},
          {"policies", core::policies_in_network(a, n.id)}};
}

json resource_json(const core::account& a, const core::network_resource& r) {
  json groups = json::array();
  for (const auto& gid : core::resource_groups(a, r.id))
    if (const auto* g = by_id(a.groups, gid))
      groups.push_back({{"id", g->id},
                        {"name", g->name},
                        {"peers_count", g->peers.size()},
                        {"resources_count", g->resources.size()},
                        {"issued", g->issued.empty() ? "api" : g->issued}});
  return {{"id", r.id},          {"name", r.name},   {"description", r.description},
          {"type", r.type},      {"groups", groups}, {"address", core::resource_address_text(r)},
          {"enabled", r.enabled}};
}

json router_json(const core::network_router& r) {
  return {{"id", r.id},
          {"peer", r.peer},
          {"peer_groups", r.peer_groups},
          {"metric", r.metric},
          {"masquerade", r.masquerade},
          {"enabled", r.enabled}};
}

response method_not_allowed() {
  return {405, json{{"message", "method not allowed"}, {"code", 405}}.dump(), {}};
}

} // namespace

response networks_api(const request& req, const std::vector<std::string>& path,
                      const core::account& a, const networks_commit_fn& commit) {
  const std::string &id = path[1], &sub = path[2], &sub_id = path[3];
  const auto& method = req.method;

  // --- every router or resource of the account
  if ((id == "routers" || id == "resources") && sub.empty()) {
    if (method != "GET")
      return method_not_allowed();
    json out = json::array();
    if (id == "routers")
      for (const auto& r : a.network_routers)
        out.push_back(router_json(r));
    else
      for (const auto& r : a.network_resources)
        out.push_back(resource_json(a, r));
    return json_reply(out);
  }

  // --- networks
  if (sub.empty()) {
    if (method == "GET" && id.empty()) {
      json out = json::array();
      for (const auto& n : a.networks)
        out.push_back(network_json(a, n));
      return json_reply(out);
    }
    if (method == "GET") {
      const auto* n = by_id(a.networks, id);
      if (!n)
        refuse(404, "network: " + core::clip(id) + " not found");
      return json_reply(network_json(a, *n));
    }
    if ((method == "POST" && id.empty()) || (method == "PUT" && !id.empty())) {
      const auto body = parse_body(req.body);
      core::network_def n;
      n.id = id;
      n.name = get_string(body, "name");
      n.description = get_string(body, "description");
      const auto out = commit(core::change::save_network{n});
      const auto* saved = by_id(out.after->networks, out.id);
      if (!saved)
        refuse(404, "network: " + core::clip(out.id) + " not found");
      return json_reply(network_json(*out.after, *saved));
    }
    if (method == "DELETE" && !id.empty()) {
      commit(core::change::delete_network{id, {}});
      return json_reply(json::object());
    }
    return method_not_allowed();
  }

  // --- a network's resources and routers
  if (sub != "resources" && sub != "routers")
    refuse(404, "not found");
  if (!by_id(a.networks, id))
    refuse(404, "network: " + core::clip(id) + " not found");
  const bool resources = sub == "resources";
  if (method == "GET" && sub_id.empty()) {
    json out = json::array();
    if (resources) {
      for (const auto& r : a.network_resources)
        if (r.network_id == id)
          out.push_back(resource_json(a, r));
    } else {
      for (const auto& r : a.network_routers)
        if (r.network_id == id)
          out.push_back(router_json(r));
    }
    return json_reply(out);
  }
  if (method == "GET") {
    if (resources) {
      const auto* r = by_id(a.network_resources, sub_id);
      if (!r || r->network_id != id)
        refuse(404, "network resource: " + core::clip(sub_id) + " not found");
      return json_reply(resource_json(a, *r));
    }
    const auto* r = by_id(a.network_routers, sub_id);
    if (!r || r->network_id != id)
      refuse(404, "network router: " + core::clip(sub_id) + " not found");
    return json_reply(router_json(*r));
  }
  if ((method == "POST" && sub_id.empty()) || (method == "PUT" && !sub_id.empty())) {
    const auto body = parse_body(req.body);
    if (resources) {
      core::change::save_resource c;
      c.r.id = sub_id;
      c.r.network_id = id;
      c.r.name = get_string(body, "name");
      c.r.description = get_string(body, "description");
      c.r.enabled = get_bool(body, "enabled");
      c.address = get_string(body, "address");
      c.groups = get_strings(body, "groups");
      const auto out = commit(std::move(c));
      const auto* saved = by_id(out.after->network_resources, out.id);
      if (!saved)
        refuse(404, "network resource: " + core::clip(out.id) + " not found");
      return json_reply(resource_json(*out.after, *saved));
    }
    core::change::save_router c;
    c.r.id = sub_id;
    c.r.network_id = id;
    c.r.peer = get_string(body, "peer");
    c.r.peer_groups = get_strings(body, "peer_groups");
    c.r.metric = get_int(body, "metric");
    c.r.masquerade = get_bool(body, "masquerade");
    c.r.enabled = get_bool(body, "enabled");
    const auto out = commit(std::move(c));
    const auto* saved = by_id(out.after->network_routers, out.id);
    if (!saved)
      refuse(404, "network router: " + core::clip(out.id) + " not found");
    return json_reply(router_json(*saved));
  }
  if (method == "DELETE" && !sub_id.empty()) {
    if (resources)
      commit(core::change::delete_resource{id, sub_id, {}});
    else
      commit(core::change::delete_router{id, sub_id});
    return json_reply(json::object());
  }
  return method_not_allowed();
}

} // namespace nbm::api::http
