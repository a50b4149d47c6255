// Networks end to end: the real binary, NetBird's /api/networks paths, bodies, status codes and
// messages; a resource a policy grants reaches the client's live Sync stream as a route through
// the routing peer, and leaves it when the network is deleted.
#include "tests/e2e/harness.hpp"

#include <algorithm>
#include <httplib.h>
#include <memory>
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

namespace {

// A SyncMeta as an agent sends one: its version, and the files its Checks asked about.
tools::call_result sync_meta(tools::peer_client& peer, const std::string& hostname,
                             const std::string& version,
                             const std::vector<std::string>& running = {}) {
  management::SyncMetaRequest req;
  tools::fill_meta(*req.mutable_meta(), hostname);
  req.mutable_meta()->set_netbirdversion(version);
  for (const auto& path : running) {
    auto* f = req.mutable_meta()->add_files();
    f->set_path(path);
    f->set_exist(true);
    f->set_processisrunning(true);
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  management::Empty empty;
  auto st = peer.stub().SyncMeta(&ctx, peer.envelope(req), &empty);
  return {st.error_code(), st.error_message()};
}

std::vector<std::vector<std::string>>
checks_of(const google::protobuf::RepeatedPtrField<management::Checks>& checks) {
  std::vector<std::vector<std::string>> out;
  for (const auto& c : checks)
    out.emplace_back(c.files().begin(), c.files().end());
  return out;
}

} // namespace

TEST_CASE("posture checks over the wire: a resource route follows what the client reports") {
  server s(storage::engine::sqlite);
  api_client api{s.api_port, "Token " + s.pat};
  const auto key = s.setup_key("--name k --reusable --auto-groups " + s.all_group);
  tools::peer_client client(s.target()), router(s.target());
  REQUIRE(client.login(key, "client").ok());
  REQUIRE(router.login(key, "router").ok());
  std::string router_id, client_ip;
  for (const auto& p : api.get("/api/peers").body) {
    if (p["name"] == "router")
      router_id = p["id"];
    if (p["name"] == "client")
      client_ip = p["ip"];
  }
  REQUIRE(!router_id.empty());
  REQUIRE(!client_ip.empty());
  // Whether the router's route firewall rules admit the client (the affected other peer).
  const auto router_admits_client = [&](stream& st) {
    const auto last = st.last_response(); // a copy: the loop must not outlive it
    for (const auto& r : last.networkmap().routesfirewallrules())
      for (const auto& src : r.sourceranges())
        if (src == client_ip + "/32")
          return true;
    return false;
  };

  // A network: the router serves the printer, which sits in a group of its own.
  const std::string net = api.post("/api/networks", {{"name", "office"}}).body["id"];
  REQUIRE(api.post("/api/networks/" + net + "/routers",
                   {{"peer", router_id}, {"metric", 100}, {"enabled", true}})
              .status == 200);
  const std::string printers = api.post("/api/groups", {{"name", "printers"}}).body["id"];
  const std::string res_id =
      api.post("/api/networks/" + net + "/resources", {{"name", "printer"},
                                                       {"address", "10.10.0.20"},
                                                       {"groups", {printers}},
                                                       {"enabled", true}})
          .body["id"];
  REQUIRE(!res_id.empty());

  // Two checks: a minimum agent version, and a process that must run.
  auto version = api.post("/api/posture-checks",
                          {{"name", "recent agent"},
                           {"description", "0.55 or newer"},
                           {"checks", {{"nb_version_check", {{"min_version", "0.55.0"}}}}}});
  REQUIRE(version.status == 200);
  const std::string version_id = version.body["id"];
  CHECK(version.body["checks"] == json{{"nb_version_check", {{"min_version", "0.55.0"}}}});
  auto process = api.post(
      "/api/posture-checks",
      {{"name", "agent running"},
       {"description", ""},
       {"checks", {{"process_check", {{"processes", {{{"linux_path", "/usr/bin/agent"}}}}}}}}});
  REQUIRE(process.status == 200);
  const std::string process_id = process.body["id"];
  CHECK(process.body["checks"]["process_check"]["processes"][0] ==
        json{{"linux_path", "/usr/bin/agent"}, {"mac_path", ""}, {"windows_path", ""}});

  auto sc = std::make_unique<stream>(client, "client", 120000);
  stream sr(router, "router", 120000);
  REQUIRE(eventually([&] { return sc->count() >= 1 && sr.count() >= 1; }, 5000ms));
  CHECK(route_networks(sc->last_response()).empty());

  // The policy grants the printer to All behind the version check: the client (0.60.0) gets the
  // route through the router.
  const json rule = {{"name", "to printers"},     {"enabled", true},   {"action", "accept"},
                     {"bidirectional", false},    {"protocol", "all"}, {"sources", {s.all_group}},
                     {"destinations", {printers}}};
  auto pol = api.post("/api/policies", {{"name", "printers"},
                                        {"enabled", true},
                                        {"source_posture_checks", {version_id}},
                                        {"rules", {rule}}});
  REQUIRE(pol.status == 200);
  const std::string pol_id = pol.body["id"];
  CHECK(pol.body["source_posture_checks"] == json::array({version_id}));
  const std::vector<std::string> granted{res_id + ":" + router_id + " 10.10.0.20/32"};
  REQUIRE(eventually([&] { return route_networks(sc->last_response()) == granted; }, 3000ms));
  CHECK(sc->last_response().checks_size() == 0); // a version check asks the client for nothing

  // The agent reports an older version (SyncMeta): the check fails, the route goes; a newer one
  // brings it back.
  REQUIRE(eventually([&] { return router_admits_client(sr); }, 3000ms));
  REQUIRE(sync_meta(client, "client", "0.50.0").ok());
  REQUIRE(eventually([&] { return route_networks(sc->last_response()).empty(); }, 3000ms));
  // The router's map changes too: its rules no longer admit the client.
  REQUIRE(eventually([&] { return !router_admits_client(sr); }, 3000ms));
  REQUIRE(sync_meta(client, "client", "0.61.0").ok());
  REQUIRE(eventually([&] { return route_networks(sc->last_response()) == granted; }, 3000ms));
  REQUIRE(eventually([&] { return router_admits_client(sr); }, 3000ms));
  // Older again, then a new Sync stream (as after a Login; NetBird's Login stores no meta, the
  // Sync after it brings it): its meta (0.60.0) is taken and its first map has the route.
  REQUIRE(sync_meta(client, "client", "0.50.0").ok());
  REQUIRE(eventually([&] { return route_networks(sc->last_response()).empty(); }, 3000ms));
  sc.reset();
  sc = std::make_unique<stream>(client, "client", 120000);
  REQUIRE(eventually([&] { return sc->count() >= 1; }, 5000ms));
  management::SyncResponse first;
  {
    std::lock_guard<std::mutex> lk(sc->mu);
    first = sc->responses.front();
  }
  CHECK(route_networks(first) == granted);
  REQUIRE(eventually([&] { return router_admits_client(sr); }, 3000ms));

  // A check a policy names is not deleted (NetBird's 412); nothing changes.
  check_error(api.del("/api/posture-checks/" + version_id), 412,
              "posture checks have been linked to policy: printers");
  CHECK(api.get("/api/posture-checks/" + version_id).status == 200);

  // The process check joins the policy: the stream now asks the client for the process (Checks),
  // and until the agent reports it running the route is gone.
  auto both =
      api.put("/api/policies/" + pol_id, {{"name", "printers"},
                                          {"enabled", true},
                                          {"source_posture_checks", {version_id, process_id}},
                                          {"rules", {rule}}});
  REQUIRE(both.status == 200);
  const std::vector<std::vector<std::string>> asked{{"/usr/bin/agent"}};
  REQUIRE(eventually([&] { return checks_of(sc->last_response().checks()) == asked; }, 3000ms));
  CHECK(route_networks(sc->last_response()).empty());
  // The LoginResponse carries the same Checks (an agent learns them at login too).
  management::LoginResponse lr;
  REQUIRE(client.login(key, "client", &lr).ok());
  CHECK(checks_of(lr.checks()) == asked);
  // What a real agent does with Checks: it reports the files in its meta (SyncMeta).
  REQUIRE(sync_meta(client, "client", "0.61.0", {"/usr/bin/agent"}).ok());
  REQUIRE(eventually([&] { return route_networks(sc->last_response()) == granted; }, 3000ms));
  // The version failing still takes it away with the process running.
  REQUIRE(sync_meta(client, "client", "0.50.0", {"/usr/bin/agent"}).ok());
  REQUIRE(eventually([&] { return route_networks(sc->last_response()).empty(); }, 3000ms));

  // The policy without checks: the check may go, and the route is back for any version.
  REQUIRE(api.put("/api/policies/" + pol_id, {{"name", "printers"},
                                              {"enabled", true},
                                              {"source_posture_checks", json::array()},
                                              {"rules", {rule}}})
              .status == 200);
  REQUIRE(eventually([&] { return route_networks(sc->last_response()) == granted; }, 3000ms));
  CHECK(sc->last_response().checks_size() == 0);
  CHECK(api.del("/api/posture-checks/" + version_id).status == 200);
  check_error(api.get("/api/posture-checks/" + version_id), 404,
              "posture checks: " + version_id + " not found");
}

TEST_CASE("posture checks: REST CRUD, bad inputs and another account's ids change nothing") {
  for (auto kind : engines()) {
    INFO(std::string(storage::to_string(kind)));
    server s(kind);
    api_client api{s.api_port, "Token " + s.pat};
    CHECK(api.get("/api/posture-checks").body == json::array());

    const json nb = {{"nb_version_check", {{"min_version", "0.31.0"}}}};
    auto created = api.post("/api/posture-checks",
                            {{"name", "version"}, {"description", "d"}, {"checks", nb}});
    REQUIRE(created.status == 200);
    const std::string id = created.body["id"];
    CHECK(id.size() == 20);
    CHECK(created.body["name"] == "version");
    CHECK(created.body["description"] == "d");
    CHECK(created.body["checks"] == nb);
    CHECK(api.get("/api/posture-checks/" + id).body == created.body);

    // Bad bodies: 400 (NetBird's decoder), 422 (its Validate), 412 (a geo check without the
    // geolocation database); nothing stored.
    const auto post = [&](const std::string& body) {
      return api.call("POST", "/api/posture-checks", body);
    };
    check_error(post("{nope"), 400, "couldn't parse JSON request");
    check_error(post(R"({"name":5})"), 400, "couldn't parse JSON request");
    check_error(post(R"({"name":"x","checks":{"nb_version_check":"0.1"}})"), 400,
                "couldn't parse JSON request");
    check_error(post(R"({"name":"x","checks":{"process_check":{"processes":[1]}}})"), 400,
                "couldn't parse JSON request");
    check_error(post(R"({"name":"x","checks":{"firewall_check":{"min_version":"1"}}})"), 422,
                "posture checks shouldn't be empty"); // an unknown kind is no check at all
    check_error(post(R"({"name":"x"})"), 422, "posture checks shouldn't be empty");
    check_error(post(R"({"checks":{"nb_version_check":{"min_version":"1"}}})"), 422,
                "posture checks name shouldn't be empty");
    check_error(post(R"({"name":"x","checks":{"nb_version_check":{"min_version":"1..2"}}})"), 422,
                "NBVersionCheck version: 1..2 is not valid");
    check_error(post(R"({"name":"x","checks":{"os_version_check":{}}})"), 422,
                "OSVersionCheck at least one OS version check is required");
    check_error(
        post(
            R"({"name":"x","checks":{"peer_network_range_check":{"action":"allow","ranges":["10.0.0.0/33"]}}})"),
        422, "invalid network prefix");
    for (const char* bad : {"2001:db8::/129", "fe80::1%eth0/64", "2001:db8:::/32", "2001:db8::"})
      check_error(post(json{{"name", "x"},
                            {"checks",
                             {{"peer_network_range_check",
                               {{"action", "allow"}, {"ranges", {"10.0.0.0/8", bad}}}}}}}
                           .dump()),
                  422, "invalid network prefix");
    check_error(
        post(
            R"({"name":"x","checks":{"peer_network_range_check":{"action":"maybe","ranges":["10.0.0.0/8"]}}})"),
        422, "PeerNetworkRangeCheck action is not valid");
    check_error(
        post(
            R"({"name":"x","checks":{"geo_location_check":{"action":"allow","locations":[{"country_code":"DE"}]}}})"),
        412,
        "Geo location database is not initialized. Check the self-hosted Geo database "
        "documentation at https://docs.netbird.io/selfhosted/geo-support");
    check_error(post(R"({"name":"version","checks":{"nb_version_check":{"min_version":"1"}}})"),
                422, "posture checks with name version already exists");
    check_error(api.put("/api/posture-checks/ghost", {{"name", "x"}, {"checks", nb}}), 404,
                "posture checks: ghost not found");
    check_error(api.call("PUT", "/api/posture-checks/" + id, "{nope"), 400,
                "couldn't parse JSON request");
    check_error(api.del("/api/posture-checks/ghost"), 404, "posture checks: ghost not found");
    CHECK(api.get("/api/posture-checks").body == json::array({created.body}));

    // An update replaces the definition; ranges come back as Go prints them.
    auto updated =
        api.put("/api/posture-checks/" + id,
                {{"name", "ranges"},
                 {"description", ""},
                 {"checks",
                  {{"peer_network_range_check",
                    {{"action", "deny"}, {"ranges", {"192.168.1.7/24", "2001:DB8:0:0::/32"}}}}}}});
    REQUIRE(updated.status == 200);
    CHECK(updated.body["id"] == id);
    CHECK(updated.body["name"] == "ranges");
    CHECK(updated.body["checks"] ==
          json{{"peer_network_range_check",
                {{"action", "deny"}, {"ranges", {"192.168.1.7/24", "2001:db8::/32"}}}}});
    CHECK(api.get("/api/posture-checks/" + id).body == updated.body);

    // A policy naming an unknown check is refused and not stored.
    const json rule = {
        {"name", "r"},       {"enabled", true},          {"action", "accept"},
        {"protocol", "all"}, {"sources", {s.all_group}}, {"destinations", {s.all_group}}};
    const auto policies_before = api.get("/api/policies").body;
    check_error(api.post("/api/policies", {{"name", "guarded"},
                                           {"enabled", true},
                                           {"source_posture_checks", {id, "nope"}},
                                           {"rules", {rule}}}),
                422, "posture checks: nope not found");
    CHECK(api.get("/api/policies").body == policies_before);

    // Another account: its check is not ours to read, change, delete or name in a policy.
    auto other_out = s.admin("account create --domain other.example");
    api_client other{s.api_port, "Token " + field(other_out, "personal_access_token")};
    auto theirs = other.post("/api/posture-checks",
                             {{"name", "theirs"}, {"description", ""}, {"checks", nb}});
    REQUIRE(theirs.status == 200);
    const std::string their_id = theirs.body["id"];
    check_error(api.get("/api/posture-checks/" + their_id), 404,
                "posture checks: " + their_id + " not found");
    check_error(api.put("/api/posture-checks/" + their_id, {{"name", "mine"}, {"checks", nb}}), 404,
                "posture checks: " + their_id + " not found");
    check_error(api.del("/api/posture-checks/" + their_id), 404,
                "posture checks: " + their_id + " not found");
    check_error(api.post("/api/policies", {{"name", "stolen"},
                                           {"enabled", true},
                                           {"source_posture_checks", {their_id}},
                                           {"rules", {rule}}}),
                422, "posture checks: " + their_id + " not found");
    CHECK(other.get("/api/posture-checks").body == json::array({theirs.body}));
    CHECK(api.get("/api/posture-checks").body == json::array({updated.body}));
    CHECK(api.get("/api/policies").body == policies_before);

    // Creations, the update and the deletion are in the activity log.
    CHECK(api.del("/api/posture-checks/" + id).status == 200);
    CHECK(api.get("/api/posture-checks").body == json::array());
    const std::vector<std::string> want{"posture.check.create", "posture.check.delete",
                                        "posture.check.update"};
    std::vector<std::string> codes;
    CHECK(eventually([&] {
      codes.clear();
      for (const auto& e : api.get("/api/events/audit").body)
        if (e.is_object() && e.value("activity_code", std::string()).rfind("posture.", 0) == 0)
          codes.push_back(e["activity_code"]);
      std::sort(codes.begin(), codes.end());
      return codes == want;
    }));
    CHECK(codes == want);
    s.stop();
  }
}
