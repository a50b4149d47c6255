// Networks end to end: the real binary, NetBird's /api/networks paths, bodies, status codes and
// messages; a resource a policy grants reaches the client's live Sync stream as a route through
// the routing peer, and leaves it when the network is deleted.
#include "tests/e2e/harness.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>

using namespace nbm;
using namespace nbm::e2e;
using json = nlohmann::json;

namespace {

struct reply {
  int status = 0;
  json body;
};

struct api_client {
  int port;
  std::string auth;

  reply call(const std::string& method, const std::string& path, const std::string& body = "") {
    httplib::Client cli("127.0.0.1", port);
    cli.set_connection_timeout(5);
    cli.set_read_timeout(10);
    httplib::Headers h{{"Authorization", auth}};
    httplib::Result r = method == "GET"    ? cli.Get(path, h)
                        : method == "POST" ? cli.Post(path, h, body, "application/json")
                        : method == "PUT"  ? cli.Put(path, h, body, "application/json")
                                           : cli.Delete(path, h);
    REQUIRE_MESSAGE(r, method << " " << path << ": no answer");
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  reply get(const std::string& p) { return call("GET", p); }
  reply post(const std::string& p, const json& b) { return call("POST", p, b.dump()); }
  reply put(const std::string& p, const json& b) { return call("PUT", p, b.dump()); }
  reply del(const std::string& p) { return call("DELETE", p); }
};

void check_error(const reply& r, int status, const std::string& message) {
  CHECK(r.status == status);
  CHECK(r.body.value("code", 0) == status);
  CHECK(r.body.value("message", std::string()) == message);
}

std::vector<std::string> route_networks(const management::SyncResponse& sr) {
  std::vector<std::string> out;
  for (const auto& r : sr.networkmap().routes())
    out.push_back(r.id() + " " + r.network());
  return out;
}

} // namespace

TEST_CASE("networks: REST CRUD with bad inputs; a granted resource reaches a live stream") {
  server s(storage::engine::sqlite);
  api_client api{s.api_port, "Token " + s.pat};
  const auto key = s.setup_key("--name k --reusable --auto-groups " + s.all_group);
  tools::peer_client client(s.target()), router(s.target());
  REQUIRE(client.login(key, "client").ok());
  REQUIRE(router.login(key, "router").ok());
  std::string router_id;
  for (const auto& p : api.get("/api/peers").body)
    if (p["name"] == "router")
      router_id = p["id"];
  REQUIRE(!router_id.empty());
  stream sc(client, "client");
  REQUIRE(eventually([&] { return sc.count() >= 1; }, 5000ms));
  CHECK(sc.last_response().networkmap().routes_size() == 0);

  // A network.
  auto n = api.post("/api/networks", {{"name", "office"}, {"description", "the office"}});
  REQUIRE(n.status == 200);
  const std::string net = n.body["id"];
  CHECK(n.body["routers"].empty());
  CHECK(n.body["resources"].empty());
  CHECK(n.body["routing_peers_count"] == 0);
  CHECK(api.get("/api/networks").body.size() == 1);
  check_error(api.get("/api/networks/nope"), 404, "network: nope not found");
  check_error(api.call("POST", "/api/networks", "{nope"), 400, "couldn't parse JSON request");
  CHECK(api.post("/api/networks", {{"name", 5}}).status == 400);
  auto renamed = api.put("/api/networks/" + net, {{"name", "head office"}});
  CHECK(renamed.status == 200);
  CHECK(renamed.body["name"] == "head office");
  check_error(api.put("/api/networks/nope", {{"name", "x"}}), 404, "network: nope not found");

  // A router: the peer, or its groups, never both, never neither (400, NetBird's Validate).
  check_error(api.post("/api/networks/" + net + "/routers", {{"metric", 100}}), 400,
              "either peer or peer_groups must be provided");
  check_error(api.post("/api/networks/" + net + "/routers",
                       {{"peer", router_id}, {"peer_groups", {s.all_group}}}),
              400, "peer and peer_groups cannot be set at the same time");
  check_error(api.post("/api/networks/nope/routers", {{"peer", router_id}}), 404,
              "network: nope not found");
  auto rt =
      api.post("/api/networks/" + net + "/routers",
               {{"peer", router_id}, {"metric", 100}, {"masquerade", true}, {"enabled", true}});
  REQUIRE(rt.status == 200);
  const std::string router_obj = rt.body["id"];
  CHECK(rt.body["peer"] == router_id);
  CHECK(rt.body["metric"] == 100);
  CHECK(api.get("/api/networks/routers").body.size() == 1);
  CHECK(api.get("/api/networks/" + net).body["routing_peers_count"] == 1);

  // A resource in a group of its own: an address is a host, its prefix shown.
  auto g = api.post("/api/groups", {{"name", "printers"}});
  REQUIRE(g.status == 200);
  const std::string printers = g.body["id"];
  check_error(api.post("/api/networks/" + net + "/resources",
                       {{"name", "bad"}, {"address", "not an address!"}, {"enabled", true}}),
              422, "invalid address: not a valid host, subnet, or domain");
  check_error(api.post("/api/networks/" + net + "/resources",
                       {{"name", "x"}, {"address", "10.0.0.1"}, {"groups", {"ghost"}}}),
              404, "group: ghost not found");
  auto res = api.post(
      "/api/networks/" + net + "/resources",
      {{"name", "printer"}, {"address", "10.10.0.20"}, {"groups", {printers}}, {"enabled", true}});
  REQUIRE(res.status == 200);
  const std::string res_id = res.body["id"];
  CHECK(res.body["type"] == "host");
  CHECK(res.body["address"] == "10.10.0.20/32");
  REQUIRE(res.body["groups"].size() == 1);
  CHECK(res.body["groups"][0]["id"] == printers);
  CHECK(api.get("/api/groups/" + printers).body["resources_count"] == 1);
  check_error(api.post("/api/networks/" + net + "/resources",
                       {{"name", "printer"}, {"address", "10.0.0.2"}}),
              422, "resource with name printer already exists");
  auto dom = api.put("/api/networks/" + net + "/resources/" + res_id, {{"name", "printer"},
                                                                       {"address", "10.10.0.0/24"},
                                                                       {"groups", {printers}},
                                                                       {"enabled", true}});
  CHECK(dom.status == 200);
  CHECK(dom.body["type"] == "subnet");

  // No policy names the resource yet: the client has no route. A policy All -> printers grants
  // it: the client's stream gets the route through the router.
  CHECK(route_networks(sc.last_response()).empty());
  const json rule = {{"name", "to printers"},     {"enabled", true},   {"action", "accept"},
                     {"bidirectional", false},    {"protocol", "all"}, {"sources", {s.all_group}},
                     {"destinations", {printers}}};
  auto pol =
      api.post("/api/policies", {{"name", "printers"}, {"enabled", true}, {"rules", {rule}}});
  REQUIRE(pol.status == 200);
  const std::vector<std::string> expected{res_id + ":" + router_id + " 10.10.0.0/24"};
  REQUIRE(eventually([&] { return route_networks(sc.last_response()) == expected; }, 3000ms));
  const auto r0 = sc.last_response().networkmap().routes(0);
  CHECK(r0.netid() == "printer");
  CHECK(r0.metric() == 100);
  CHECK(r0.masquerade());
  CHECK(r0.keeproute());
  CHECK(api.get("/api/networks/" + net).body["policies"] == json::array({pol.body["id"]}));

  // A disabled router takes the route away; enabled again it comes back.
  auto off =
      api.put("/api/networks/" + net + "/routers/" + router_obj,
              {{"peer", router_id}, {"metric", 100}, {"masquerade", true}, {"enabled", false}});
  CHECK(off.status == 200);
  REQUIRE(eventually([&] { return route_networks(sc.last_response()).empty(); }, 3000ms));
  api.put("/api/networks/" + net + "/routers/" + router_obj,
          {{"peer", router_id}, {"metric", 100}, {"masquerade", true}, {"enabled", true}});
  REQUIRE(eventually([&] { return route_networks(sc.last_response()) == expected; }, 3000ms));

  // Deleting the network removes its resources and routers (and the group's resource); the route
  // leaves the stream.
  check_error(api.del("/api/networks/nope"), 404, "network: nope not found");
  CHECK(api.del("/api/networks/" + net).status == 200);
  REQUIRE(eventually([&] { return route_networks(sc.last_response()).empty(); }, 3000ms));
  CHECK(api.get("/api/networks").body.empty());
  CHECK(api.get("/api/networks/routers").body.empty());
  CHECK(api.get("/api/networks/resources").body.empty());
  CHECK(api.get("/api/groups/" + printers).body["resources_count"] == 0);
  check_error(api.get("/api/networks/" + net + "/resources/" + res_id), 404,
              "network: " + net + " not found");
}
