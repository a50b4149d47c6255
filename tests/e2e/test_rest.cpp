// The REST API end to end: the real binary, a PAT from the admin subcommand, NetBird's paths,
// shapes, status codes and error bodies; changes over REST reach live Sync streams.
#include "tests/e2e/rest_support.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

using namespace nbm;
using namespace nbm::e2e;
using json = nlohmann::json;

namespace {

using reply = rest_reply;
using api_client = rest_client;
const auto b64url = base64url;
const auto check_error = check_rest_error;

// Every list the API serves, as one document (peers without their live status).
json all_lists(api_client& api) {
  json out;
  for (const char* path :
       {"/api/accounts", "/api/users", "/api/setup-keys", "/api/groups", "/api/policies",
        "/api/routes", "/api/dns/nameservers", "/api/dns/settings", "/api/peers"}) {
    auto r = api.get(path);
    REQUIRE_MESSAGE(r.status == 200, path);
    out[path] = r.body;
  }
  for (auto& p : out["/api/peers"]) {
    p.erase("connected");
    p.erase("last_seen");
  }
  return out;
}

// The account actor serves reads from memory and applies every change there as it was
// committed: what it answered before a restart is what a fresh read of the store answers after.
void check_same_after_restart(server& s, api_client& api) {
  const auto before = all_lists(api);
  s.stop();
  s.start();
  api.port = s.api_port;
  const auto after = all_lists(api);
  for (const auto& [path, list] : before.items())
    CHECK_MESSAGE(after[path] == list,
                  path << "\nbefore: " << list.dump() << "\nafter:  " << after[path].dump());
}

// A sample of the server's /metrics (-1 if absent): `name` with its labels as printed.
double metric(const server& s, const std::string& name) {
  httplib::Client cli("127.0.0.1", s.metrics_port);
  cli.set_connection_timeout(5);
  auto r = cli.Get("/metrics");
  REQUIRE_MESSAGE(r, "no answer on the metrics port");
  std::istringstream in(r->body);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(name + " ", 0) == 0)
      return std::stod(line.substr(name.size() + 1));
  return -1;
}

// PostgreSQL ends every connection to the server's database but the asker's (as a restart does);
// answers how many.
int drop_connections(const server& s) {
  soci::session sql;
  storage::open_session(sql, s.db);
  int killed = 0;
  sql << "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid <> "
         "pg_backend_pid() AND datname = current_database()",
      soci::into(killed);
  return killed;
}

[[maybe_unused]] std::string read_log(const server& s) {
  std::ifstream in(s.dir + "/server.log");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

} // namespace

TEST_CASE("rest: authentication, NetBird's error bodies and request ids") {
  server s(storage::engine::sqlite);
  api_client api{s.api_port, "Token " + s.pat};
  auto r = api.call("GET", "/api/groups", "", "");
  check_error(r, 401, "no valid authentication provided");
  CHECK(r.request_id.size() == 20);
  check_error(api.call("GET", "/api/groups", "", "Basic abc"), 401,
              "no valid authentication provided");
  check_error(api.call("GET", "/api/groups", "", "Token nbp_notarealtoken"), 401, "token invalid");
  // A well-formed PAT that is not stored.
  check_error(api.call("GET", "/api/groups", "", "Token " + crypto::make_pat().plain), 401,
              "token invalid");
  check_error(api.call("GET", "/api/groups", "", "Bearer some.jwt.value"), 401, "token invalid");
  // The owner's PAT, as Token and as Bearer (NetBird takes an nbp_ bearer value as a PAT).
  r = api.get("/api/groups");
  REQUIRE(r.status == 200);
  REQUIRE(r.body.is_array());
  CHECK(r.body[0]["name"] == "All");
  CHECK(api.call("GET", "/api/groups", "", "Bearer " + s.pat).status == 200);
  CHECK(api.get("/api/users/current").body["role"] == "owner");
  const auto first = api.get("/api/accounts");
  REQUIRE(first.body.size() == 1);
  CHECK(first.body[0]["id"] == s.account);
  CHECK(first.request_id != r.request_id);
  check_error(api.get("/api/nothing-here"), 404, "not found");
}

TEST_CASE("rest: groups, policies, routes, nameservers and DNS settings, with bad inputs") {
  for (auto kind : engines()) {
    INFO(std::string(storage::to_string(kind)));
    server s(kind);
    api_client api{s.api_port, "Token " + s.pat};

    // Groups.
    auto g = api.post("/api/groups", {{"name", "devs"}});
    REQUIRE(g.status == 200);
    const std::string devs = g.body["id"];
    CHECK(devs.size() == 20);
    CHECK(g.body["peers_count"] == 0);
    check_error(api.post("/api/groups", {{"name", "devs"}}), 409,
                "group with name devs already exists");
    check_error(api.post("/api/groups", {{"name", ""}}), 422, "group name shouldn't be empty");
    check_error(api.call("POST", "/api/groups", "{not json"), 400, "couldn't parse JSON request");
    CHECK(api.post("/api/groups", {{"name", 5}}).status == 400);
    check_error(api.post("/api/groups", {{"name", "x"}, {"peers", {"ghost"}}}), 422,
                "peer with ID ghost not found");
    auto renamed = api.put("/api/groups/" + devs, {{"name", "developers"}});
    CHECK(renamed.status == 200);
    CHECK(api.get("/api/groups/" + devs).body["name"] == "developers");
    check_error(api.put("/api/groups/" + s.all_group, {{"name", "Everyone"}}), 422,
                "updating group ALL is not allowed");
    check_error(api.del("/api/groups/" + s.all_group), 400, "deleting group ALL is not allowed");

    // Policies.
    const json rule = {{"name", "web"},          {"enabled", true},       {"action", "accept"},
                       {"bidirectional", false}, {"protocol", "tcp"},     {"ports", {"80", "443"}},
                       {"sources", {devs}},      {"destinations", {devs}}};
    auto p = api.post("/api/policies", {{"name", "web"}, {"enabled", true}, {"rules", {rule}}});
    REQUIRE(p.status == 200);
    const std::string web = p.body["id"];
    CHECK(p.body["rules"][0]["ports"] == json({"80", "443"}));
    CHECK(p.body["rules"][0]["sources"][0]["id"] == devs);
    CHECK(p.body["rules"][0]["sources"][0]["name"] == "developers");
    auto bad = rule;
    bad["ports"] = {"70000"};
    check_error(api.post("/api/policies", {{"name", "x"}, {"enabled", true}, {"rules", {bad}}}),
                422, "valid port value is in 1..65535 range");
    bad = rule;
    bad["protocol"] = "all";
    check_error(api.post("/api/policies", {{"name", "x"}, {"enabled", true}, {"rules", {bad}}}),
                422, "for ALL or ICMP protocol ports is not allowed");
    bad = rule;
    bad["sources"] = {"nosuchgroup"};
    check_error(api.post("/api/policies", {{"name", "x"}, {"enabled", true}, {"rules", {bad}}}),
                422, "group nosuchgroup not found");
    check_error(
        api.post("/api/policies", {{"name", "x"}, {"enabled", true}, {"rules", json::array()}}),
        422, "policy rules shouldn't be empty");
    CHECK(api.get("/api/policies").body.size() == 2); // Default + web: nothing half-written
    auto upd = rule;
    upd["ports"] = {"8080"};
    auto p2 =
        api.put("/api/policies/" + web, {{"name", "web2"}, {"enabled", true}, {"rules", {upd}}});
    REQUIRE(p2.status == 200);
    CHECK(p2.body["name"] == "web2");
    CHECK(p2.body["rules"].size() == 1);
    CHECK(p2.body["rules"][0]["ports"] == json({"8080"}));
    check_error(api.del("/api/groups/" + devs), 400, "group has been linked to policy: web2");
    CHECK(api.del("/api/policies/" + web).body == json::object());
    check_error(api.get("/api/policies/" + web), 404, "policy: " + web + " not found");

    // Routes need a routing peer.
    const auto key = s.setup_key("--name k --reusable --auto-groups " + s.all_group);
    tools::peer_client router(s.target());
    REQUIRE(router.login(key, "router").ok());
    const auto router_id = s.peer_by_key(router.public_key_b64())->id;
    const json route = {{"description", "office"}, {"network_id", "office"},   {"enabled", true},
                        {"peer", router_id},       {"network", "10.1.0.7/16"}, {"metric", 100},
                        {"masquerade", true},      {"groups", {devs}}};
    auto rt = api.post("/api/routes", route);
    REQUIRE(rt.status == 200);
    CHECK(rt.body["network"] == "10.1.0.0/16"); // masked, as NetBird stores it
    CHECK(rt.body["network_type"] == "IPv4");
    const std::string rt_id = rt.body["id"];
    check_error(api.post("/api/routes", route), 409,
                "failed to add route with network 10.1.0.0/16: the peer already has this route");
    auto badr = route;
    badr["metric"] = 0;
    check_error(api.post("/api/routes", badr), 422, "metric should be between 1 and 9999");
    badr = route;
    badr["network"] = "10.1.0.0/33";
    check_error(api.post("/api/routes", badr), 422, "invalid Prefix");
    badr = route;
    badr["peer_groups"] = {devs};
    check_error(api.post("/api/routes", badr), 422,
                "only one of 'peer' or 'peer_groups' should be provided");
    CHECK(api.get("/api/routes").body.size() == 1);
    // Replaced: the same route (no conflict with itself), a new metric and network; a bad
    // replacement changes nothing.
    auto rupd = route;
    rupd["metric"] = 200;
    rupd["network"] = "10.2.0.0/16";
    auto rt2 = api.put("/api/routes/" + rt_id, rupd);
    REQUIRE(rt2.status == 200);
    CHECK(rt2.body["id"] == rt_id);
    CHECK(rt2.body["metric"] == 200);
    rupd["metric"] = 10000;
    check_error(api.put("/api/routes/" + rt_id, rupd), 422, "metric should be between 1 and 9999");
    CHECK(api.get("/api/routes/" + rt_id).body["network"] == "10.2.0.0/16");
    CHECK(api.get("/api/routes/" + rt_id).body["metric"] == 200);
    check_error(api.put("/api/routes/nope", route), 404, "route: nope not found");
    CHECK(api.del("/api/routes/" + rt_id).status == 200);
    check_error(api.get("/api/routes/" + rt_id), 404, "route: " + rt_id + " not found");

    // Nameservers and DNS settings.
    const json ns = {{"name", "corp"},
                     {"description", ""},
                     {"nameservers", {{{"ip", "10.0.0.53"}, {"ns_type", "udp"}, {"port", 53}}}},
                     {"enabled", true},
                     {"groups", {devs}},
                     {"primary", false},
                     {"domains", {"corp.example"}},
                     {"search_domains_enabled", true}};
    auto n = api.post("/api/dns/nameservers", ns);
    REQUIRE(n.status == 200);
    const std::string ns_id = n.body["id"];
    CHECK(api.get("/api/dns/nameservers/" + ns_id).body["domains"] == json({"corp.example"}));
    auto badn = ns;
    badn["name"] = "corp2";
    badn["nameservers"] = json::array();
    check_error(api.post("/api/dns/nameservers", badn), 422,
                "the list of nameservers should be 1 or 3, got 0");
    auto nsu = ns;
    nsu["nameservers"] = {{{"ip", "10.0.0.54"}, {"ns_type", "udp"}, {"port", 5353}}};
    auto n2 = api.put("/api/dns/nameservers/" + ns_id, nsu);
    REQUIRE(n2.status == 200);
    CHECK(n2.body["id"] == ns_id);
    CHECK(api.get("/api/dns/nameservers/" + ns_id).body["nameservers"][0]["port"] == 5353);
    CHECK(api.get("/api/dns/nameservers").body.size() == 1);
    CHECK(api.del("/api/dns/nameservers/" + ns_id).status == 200);
    check_error(api.get("/api/dns/nameservers/" + ns_id), 404,
                "nameserver group: " + ns_id + " not found");
    auto d = api.put("/api/dns/settings", {{"disabled_management_groups", {devs}}});
    CHECK(d.status == 200);
    CHECK(api.get("/api/dns/settings").body["disabled_management_groups"] == json({devs}));
    check_error(api.put("/api/dns/settings", {{"disabled_management_groups", {"nope"}}}), 422,
                "group nope not found");
    check_same_after_restart(s, api);
  }
}

TEST_CASE("rest: setup keys and peers; another account's objects are not found") {
  server s(storage::engine::sqlite);
  api_client api{s.api_port, "Token " + s.pat};
  auto k = api.post("/api/setup-keys", {{"name", "laptops"},
                                        {"type", "reusable"},
                                        {"expires_in", 86400},
                                        {"auto_groups", json::array()},
                                        {"usage_limit", 0}});
  REQUIRE(k.status == 200);
  const std::string plain = k.body["key"];
  CHECK(plain.size() == 36);
  CHECK(k.body["state"] == "valid");
  const std::string key_id = k.body["id"];
  CHECK(api.get("/api/setup-keys/" + key_id).body["key"].get<std::string>().size() < 36);
  check_error(api.post("/api/setup-keys", {{"name", "x"}, {"type", "weird"}}), 422,
              "unknown setup key type weird");
  check_error(api.post("/api/setup-keys",
                       {{"name", "x"}, {"type", "reusable"}, {"auto_groups", {s.all_group}}}),
              422, "can't add 'All' group to the setup key");

  tools::peer_client a(s.target());
  REQUIRE(a.login(plain, "alpha").ok());
  const auto pa = *s.peer_by_key(a.public_key_b64());
  stream sa(a, "alpha");
  REQUIRE(sa.wait_maps(1, 5000ms));
  // Status comes from the store: connected once the fence landed.
  REQUIRE(eventually([&] { return api.get("/api/peers/" + pa.id).body["connected"] == true; }));
  auto peers = api.get("/api/peers");
  REQUIRE(peers.body.size() == 1);
  CHECK(peers.body[0]["dns_label"] == "alpha.netbird.selfhosted");
  CHECK(peers.body[0]["ip"] == pa.ip);
  CHECK(peers.body[0]["groups"][0]["name"] == "All");
  CHECK(peers.body[0]["accessible_peers_count"] == 0);

  // Revoking the key refuses the next registration.
  auto rev =
      api.put("/api/setup-keys/" + key_id, {{"revoked", true}, {"auto_groups", json::array()}});
  CHECK(rev.body["revoked"] == true);
  check_error(
      api.put("/api/setup-keys/" + key_id, {{"revoked", false}, {"auto_groups", json::array()}}),
      422, "can't un-revoke a revoked setup key");
  tools::peer_client b(s.target());
  CHECK_FALSE(b.login(plain, "beta").ok());

  // A second account: none of the first one's objects exist for it.
  auto out = s.admin("account create --domain other.example");
  api_client other{s.api_port, "Token " + field(out, "personal_access_token")};
  check_error(other.get("/api/peers/" + pa.id), 404, "peer not found: " + pa.id);
  check_error(other.del("/api/peers/" + pa.id), 404, "peer not found: " + pa.id);
  check_error(other.get("/api/groups/" + s.all_group), 404, "group: " + s.all_group + " not found");
  check_error(other.put("/api/groups/" + s.all_group, {{"name", "mine"}}), 404,
              "group: " + s.all_group + " not found");
  check_error(other.get("/api/setup-keys/" + key_id), 404, "setup key: " + key_id + " not found");
  CHECK(other.get("/api/peers").body.empty());
  check_error(other.put("/api/accounts/" + s.account, {{"settings", json::object()}}), 404,
              "account not found: " + s.account);

  // Renaming a peer gives it a new DNS label, which reaches its own stream (its FQDN).
  auto ren = api.put("/api/peers/" + pa.id, {{"name", "Alpha Two"}, {"ssh_enabled", true}});
  REQUIRE(ren.status == 200);
  CHECK(ren.body["dns_label"] == "alpha-two.netbird.selfhosted");
  CHECK(ren.body["ssh_enabled"] == true);
  CHECK(eventually(
      [&] { return sa.last_response().peerconfig().fqdn() == "alpha-two.netbird.selfhosted"; }));
  check_error(api.put("/api/peers/" + pa.id, {{"name", ""}}), 422, "peer name shouldn't be empty");
  // A name whose DNS label another peer has: NetBird appends the last two octets of the address.
  auto more = api.post("/api/setup-keys",
                       {{"name", "more"}, {"type", "reusable"}, {"auto_groups", json::array()}});
  tools::peer_client c(s.target());
  REQUIRE(c.login(more.body["key"].get<std::string>(), "gamma").ok());
  const auto pc = *s.peer_by_key(c.public_key_b64());
  auto octets = pa.ip.substr(pa.ip.find('.', pa.ip.find('.') + 1) + 1);
  std::replace(octets.begin(), octets.end(), '.', '-');
  auto clash = api.put("/api/peers/" + pa.id, {{"name", "gamma"}});
  REQUIRE(clash.status == 200);
  CHECK(clash.body["dns_label"] == "gamma-" + octets + ".netbird.selfhosted");
  CHECK(api.put("/api/peers/" + pa.id, {{"name", "Alpha Two"}}).status == 200);
  // Expiration cannot be turned on for a peer added with a setup key (NetBird: 412).
  check_error(api.put("/api/peers/" + pc.id, {{"login_expiration_enabled", true}}), 412,
              "this peer hasn't been added with the SSO login, therefore the login expiration "
              "can't be updated");
  check_error(api.put("/api/peers/" + pc.id, {{"inactivity_expiration_enabled", true}}), 412,
              "this peer hasn't been added with the SSO login, therefore the inactivity "
              "expiration can't be updated");
  // A peer waiting for approval is let in with "approval_required": false.
  {
    soci::session sql;
    storage::open_session(sql, s.db);
    sql << "UPDATE peers SET peer_status_requires_approval = 1 WHERE id = :id", soci::use(pc.id);
  }
  CHECK(api.get("/api/peers/" + pc.id).body["approval_required"] == true);
  auto approved = api.put("/api/peers/" + pc.id, {{"approval_required", false}});
  CHECK(approved.body["approval_required"] == false);
  CHECK_FALSE(s.peer_by_key(c.public_key_b64())->status.requires_approval);
  CHECK(api.put("/api/peers/" + pc.id, {{"approval_required", true}}).body["approval_required"] ==
        false); // stays approved
  // Stored text that JSON must escape, and bytes that are no UTF-8 (U+FFFD in the answer).
  {
    soci::session sql;
    storage::open_session(sql, s.db);
    const std::string odd = "q\"b\\s\x01\t caf\xc3\xa9 \xff\xfe end";
    sql << "UPDATE peers SET meta_hostname = :h WHERE id = :id", soci::use(odd), soci::use(pc.id);
  }
  const std::string shown = "q\"b\\s\x01\t caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd end";
  auto listed = api.get("/api/peers");
  REQUIRE(listed.status == 200);
  REQUIRE_FALSE(listed.body.is_discarded());
  bool seen = false;
  for (const auto& p : listed.body)
    if (p["id"] == pc.id) {
      seen = true;
      CHECK(p["hostname"] == shown);
    }
  CHECK(seen);
  CHECK(api.get("/api/peers/" + pc.id).body["hostname"] == shown);

  // Every other resource of the first account, seen from the second: 404, and nothing changes.
  auto g = api.post("/api/groups", {{"name", "devs"}});
  const std::string gid = g.body["id"];
  const json rule = {{"name", "r"},       {"enabled", true},  {"action", "accept"},
                     {"protocol", "all"}, {"sources", {gid}}, {"destinations", {gid}}};
  const std::string pol =
      api.post("/api/policies", {{"name", "p"}, {"enabled", true}, {"rules", {rule}}}).body["id"];
  const std::string rt = api.post("/api/routes", {{"network_id", "n"},
                                                  {"enabled", true},
                                                  {"peer", pa.id},
                                                  {"network", "10.9.0.0/24"},
                                                  {"metric", 9},
                                                  {"groups", {gid}}})
                             .body["id"];
  const std::string ns =
      api.post("/api/dns/nameservers", {{"name", "ns"},
                                        {"nameservers", {{{"ip", "1.1.1.1"}, {"port", 53}}}},
                                        {"enabled", true},
                                        {"groups", {gid}},
                                        {"primary", true}})
          .body["id"];
  const auto owner_id = api.get("/api/users/current").body["id"].get<std::string>();
  REQUIRE(pol.size() == 20);
  REQUIRE(rt.size() == 20);
  REQUIRE(ns.size() == 20);
  check_error(other.get("/api/policies/" + pol), 404, "policy: " + pol + " not found");
  check_error(
      other.put("/api/policies/" + pol, {{"name", "x"}, {"enabled", true}, {"rules", {rule}}}), 404,
      "policy: " + pol + " not found");
  check_error(other.del("/api/policies/" + pol), 404, "policy: " + pol + " not found");
  check_error(other.get("/api/routes/" + rt), 404, "route: " + rt + " not found");
  check_error(other.del("/api/routes/" + rt), 404, "route: " + rt + " not found");
  check_error(other.get("/api/dns/nameservers/" + ns), 404,
              "nameserver group: " + ns + " not found");
  check_error(other.del("/api/dns/nameservers/" + ns), 404,
              "nameserver group: " + ns + " not found");
  check_error(other.del("/api/groups/" + gid), 404, "group: " + gid + " not found");
  check_error(other.del("/api/setup-keys/" + key_id), 404, "setup key: " + key_id + " not found");
  check_error(other.get("/api/users/" + owner_id + "/tokens"), 404,
              "user: " + owner_id + " not found");
  check_error(other.del("/api/users/" + owner_id), 404, "user: " + owner_id + " not found");
  // The other account's lists hold none of them; ours still has them all.
  CHECK(other.get("/api/policies").body.size() == 1); // its own Default
  CHECK(other.get("/api/routes").body.empty());
  CHECK(other.get("/api/dns/nameservers").body.empty());
  CHECK(api.get("/api/policies/" + pol).status == 200);
  CHECK(api.get("/api/routes/" + rt).status == 200);
  CHECK(api.get("/api/dns/nameservers/" + ns).status == 200);
  CHECK(api.get("/api/groups/" + gid).status == 200);

  // Our own key can be deleted; then it is gone.
  auto spare = api.post(
      "/api/setup-keys",
      {{"name", "spare"}, {"type", "one-off"}, {"usage_limit", 1}, {"auto_groups", json::array()}});
  const std::string spare_id = spare.body["id"];
  CHECK(api.del("/api/setup-keys/" + spare_id).body == json::object());
  check_error(api.get("/api/setup-keys/" + spare_id), 404, "setup key: " + spare_id + " not found");

  // Deleting a connected peer ends its stream.
  CHECK(api.del("/api/peers/" + pa.id).body == json::object());
  CHECK(sa.wait_end(3000ms));
  check_error(api.get("/api/peers/" + pa.id), 404, "peer not found: " + pa.id);
  check_same_after_restart(s, api);
}

TEST_CASE("rest: after PostgreSQL drops every connection, reads and changes still succeed") {
  if (!test::postgres_available())
    return;
  server s(storage::engine::postgres);
  api_client api{s.api_port, "Token " + s.pat};
  for (int i = 0; i < 6; ++i) // every pooled session in use once
    REQUIRE(api.get("/api/groups").status == 200);
  REQUIRE(api.post("/api/groups", {{"name", "before"}}).status == 200);
  REQUIRE(drop_connections(s) >= 3); // the REST pool, the account loader, the status writer, ...
  // A change first: the pooled session is checked before use and the account actor's store
  // worker finds its own dead before writing anything; both go on with fresh ones.
  auto g = api.post("/api/groups", {{"name", "after"}});
  CHECK(g.status == 200);
  // Every read answers.
  for (int i = 0; i < 6; ++i) {
    auto r = api.get("/api/groups");
    CHECK(r.status == 200);
    CHECK(r.body.size() == 3);
  }
  CHECK(api.del("/api/groups/" + g.body.value("id", std::string())).status == 200);
}

TEST_CASE("wire: after PostgreSQL drops every connection, peers log in and sync") {
  if (!test::postgres_available())
    return;
  server s(storage::engine::postgres);
  const auto key = s.setup_key("--name k --reusable --auto-groups " + s.all_group);
  tools::peer_client a(s.target()), b(s.target());
  REQUIRE(a.login(key, "alpha").ok());
  {
    stream sa(a, "alpha", 3000);
    REQUIRE(sa.wait_maps(1, 5000ms));
  }
  REQUIRE(drop_connections(s) >= 3);
  auto r = b.login(key, "beta");
  CHECK_MESSAGE(r.ok(), r.code << " " << r.message);
  stream sb(b, "beta", 3000);
  CHECK(sb.wait_maps(1, 5000ms));
  auto ra = a.login(key, "alpha");
  CHECK_MESSAGE(ra.ok(), ra.code << " " << ra.message);
  stream sa(a, "alpha", 3000);
  CHECK(sa.wait_maps(1, 5000ms));
  CHECK(eventually([&] { return s.peer_by_key(b.public_key_b64())->status.connected; }));
}

TEST_CASE("rest: two replicas on one PostgreSQL answer alike at once, whichever took the change") {
  if (!test::postgres_available())
    return;
  server a(storage::engine::postgres);
  // B's account actor never polls the serial here: only the read path's own check keeps it current.
  ::setenv("NBM_ACCOUNT_POLL_INTERVAL_MS", "600000", 1);
  replica b(a);
  ::setenv("NBM_ACCOUNT_POLL_INTERVAL_MS", "200", 1);
  api_client on_a{a.api_port, "Token " + a.pat}, on_b{b.api_port, "Token " + a.pat};
  const auto key = a.setup_key("--name k --reusable --auto-groups " + a.all_group);
  tools::peer_client p(a.target());
  REQUIRE(p.login(key, "alpha").ok());
  stream sp(p, "alpha");
  REQUIRE(sp.wait_maps(1, 5000ms));
  const auto pid = a.peer_by_key(p.public_key_b64())->id;

  // B loads the account now; the peer's session lives on A, its status in the store.
  auto peers_b = on_b.get("/api/peers");
  REQUIRE(peers_b.status == 200);
  REQUIRE(peers_b.body.size() == 1);
  CHECK(peers_b.body[0]["connected"] == true);
  CHECK(on_b.get("/api/groups").body.size() == 1);

  // Changes on A are read on B right away.
  auto g = on_a.post("/api/groups", {{"name", "ops"}, {"peers", {pid}}});
  REQUIRE(g.status == 200);
  const std::string gid = g.body["id"];
  auto gb = on_b.get("/api/groups/" + gid);
  CHECK(gb.status == 200);
  CHECK(gb.body["peers_count"] == 1);
  auto k = on_a.post(
      "/api/setup-keys",
      {{"name", "servers"}, {"type", "reusable"}, {"expires_in", 3600}, {"auto_groups", {gid}}});
  REQUIRE(k.status == 200);
  CHECK(on_b.get("/api/setup-keys/" + k.body["id"].get<std::string>()).status == 200);
  auto bot = on_a.post("/api/users", {{"name", "bot"},
                                      {"role", "admin"},
                                      {"auto_groups", json::array()},
                                      {"is_service_user", true}});
  REQUIRE(bot.status == 200);
  auto t = on_a.post("/api/users/" + bot.body["id"].get<std::string>() + "/tokens",
                     {{"name", "ci"}, {"expires_in", 1}});
  REQUIRE(t.status == 200);
  api_client bot_on_b{b.api_port, "Token " + t.body["plain_token"].get<std::string>()};
  CHECK(bot_on_b.get("/api/users/current").body["id"] == bot.body["id"]);

  // A change on B (validated against what B holds, made current first) is read on A at once.
  auto rename = on_b.put("/api/groups/" + gid, {{"name", "ops-team"}, {"peers", {pid}}});
  CHECK(rename.status == 200);
  CHECK(on_a.get("/api/groups/" + gid).body["name"] == "ops-team");
  check_error(on_b.post("/api/groups", {{"name", "ops-team"}}), 409,
              "group with name ops-team already exists");
  // Deleting on B a group A created: refused while a setup key uses it, as on A.
  check_error(on_b.del("/api/groups/" + gid), 400, "group has been linked to setup key: servers");
  CHECK(on_a.get("/api/groups").body.size() == 2);
  CHECK(all_lists(on_a) == all_lists(on_b));
  b.stop();
}

TEST_CASE("rest: a policy change over REST reaches live streams") {
  server s(storage::engine::sqlite);
  api_client api{s.api_port, "Token " + s.pat};
  const auto key = s.setup_key("--name k --reusable --auto-groups " + s.all_group);
  tools::peer_client a(s.target()), b(s.target());
  REQUIRE(a.login(key, "alpha").ok());
  REQUIRE(b.login(key, "beta").ok());
  stream sa(a, "alpha");
  REQUIRE(eventually([&] { return sa.last().size() == 1; }, 5000ms));
  // Delete the default policy: A loses B at once (no serial poll involved: the REST handler tells
  // the account actor).
  std::string def;
  for (const auto& p : api.get("/api/policies").body)
    if (p["name"] == "Default")
      def = p["id"];
  REQUIRE(def.size() == 20);
  CHECK(api.del("/api/policies/" + def).status == 200);
  REQUIRE(eventually([&] { return sa.last().empty(); }, 3000ms));
  // A new bidirectional policy over All brings B back with its firewall rules.
  const json rule = {{"name", "all"},
                     {"enabled", true},
                     {"action", "accept"},
                     {"bidirectional", true},
                     {"protocol", "udp"},
                     {"port_ranges", {{{"start", 1000}, {"end", 2000}}}},
                     {"sources", {s.all_group}},
                     {"destinations", {s.all_group}}};
  REQUIRE(
      api.post("/api/policies", {{"name", "udp"}, {"enabled", true}, {"rules", {rule}}}).status ==
      200);
  REQUIRE(eventually([&] { return sa.last().size() == 1; }, 3000ms));
  const auto m = sa.last_response().networkmap();
  REQUIRE(m.firewallrules_size() == 2);
  CHECK(m.firewallrules(0).protocol() == management::RuleProtocol::UDP);
  CHECK(m.firewallrules(0).portinfo().range().start() == 1000);
  CHECK(m.firewallrules(0).portinfo().range().end() == 2000);
}

TEST_CASE("rest: users, service users and their tokens; a regular user's limits") {
  server s(storage::engine::sqlite, "", false); // the REST API on a port of its own (--api-port)
  REQUIRE(s.api_port != s.port);
  api_client api{s.api_port, "Token " + s.pat};
  const auto me = api.get("/api/users/current").body["id"].get<std::string>();
  auto su = api.post("/api/users", {{"name", "ci-bot"},
                                    {"role", "user"},
                                    {"auto_groups", json::array()},
                                    {"is_service_user", true}});
  REQUIRE(su.status == 200);
  const std::string bot = su.body["id"];
  CHECK(su.body["is_service_user"] == true);
  CHECK(su.body["name"] == "ci-bot");
  check_error(api.post("/api/users", {{"email", "a@b.c"},
                                      {"role", "user"},
                                      {"auto_groups", json::array()},
                                      {"is_service_user", false}}),
              412, "IdP manager must be enabled to send user invites");
  check_error(api.post("/api/users", {{"role", "king"}, {"is_service_user", true}}), 422,
              "invalid user role king");
  CHECK(api.get("/api/users").body.size() == 2);
  CHECK(api.get("/api/users?service_user=true").body.size() == 1);

  // An admin makes a token for the service user; the plain token is shown once.
  check_error(api.post("/api/users/" + bot + "/tokens", {{"name", "t"}, {"expires_in", 0}}), 422,
              "expiration has to be between 1 and 365");
  auto t = api.post("/api/users/" + bot + "/tokens", {{"name", "deploy"}, {"expires_in", 30}});
  REQUIRE(t.status == 200);
  const std::string bot_token = t.body["plain_token"];
  const std::string token_id = t.body["personal_access_token"]["id"];
  CHECK(bot_token.rfind("nbp_", 0) == 0);
  CHECK(api.get("/api/users/" + bot + "/tokens").body.size() == 1);
  CHECK(api.get("/api/users/" + bot + "/tokens/" + token_id).body["name"] == "deploy");
  CHECK(api.get("/api/users/" + bot + "/tokens/" + token_id).body["last_used"] ==
        "0001-01-01T00:00:00Z"); // never used yet

  // The bot (role user) may not touch the account's objects.
  api_client as_bot{s.api_port, "Token " + bot_token};
  CHECK(as_bot.get("/api/users/current").body["role"] == "user");
  // Each use is recorded (NetBird's MarkPATUsed).
  CHECK(api.get("/api/users/" + bot + "/tokens/" + token_id)
            .body["last_used"]
            .get<std::string>()
            .rfind("20", 0) == 0);
  check_error(as_bot.get("/api/groups"), 403, "permission denied");
  check_error(as_bot.post("/api/groups", {{"name", "mine"}}), 403, "permission denied");
  check_error(as_bot.get("/api/setup-keys"), 403, "permission denied");
  check_error(as_bot.get("/api/users"), 403, "permission denied");
  CHECK(as_bot.get("/api/peers").body.empty());
  check_error(as_bot.post("/api/users/" + me + "/tokens", {{"name", "steal"}, {"expires_in", 1}}),
              403, "no permission to manage tokens of this user");
  // Made admin, it may.
  CHECK(api.put("/api/users/" + bot,
                {{"role", "admin"}, {"auto_groups", json::array()}, {"is_blocked", false}})
            .body["role"] == "admin");
  CHECK(as_bot.get("/api/groups").status == 200);
  // Blocked, its token stops working; the owner cannot block or delete itself.
  CHECK(api.put("/api/users/" + bot,
                {{"role", "admin"}, {"auto_groups", json::array()}, {"is_blocked", true}})
            .status == 200);
  check_error(as_bot.get("/api/groups"), 401, "token invalid");
  check_error(api.put("/api/users/" + me,
                      {{"role", "owner"}, {"auto_groups", json::array()}, {"is_blocked", true}}),
              422, "unable to block own user");
  check_error(api.del("/api/users/" + me), 422, "self deletion is not allowed");
  // Deleting the token, then the user.
  CHECK(api.del("/api/users/" + bot + "/tokens/" + token_id).body == json::object());
  check_error(api.get("/api/users/" + bot + "/tokens/" + token_id), 404,
              "PAT: " + token_id + " not found");
  CHECK(api.del("/api/users/" + bot).body == json::object());
  check_error(api.del("/api/users/" + bot), 404, "user: " + bot + " not found");
}

TEST_CASE("rest: JWTs from the configured IdP (RS256, JWKS served on 127.0.0.1)") {
  rsa_key idp, stranger;
  // The IdP's JWKS over HTTP on 127.0.0.1.
  httplib::Server jwks;
  const std::string keys = json{{"keys", {idp.jwk("k1")}}}.dump();
  jwks.Get("/.well-known/jwks.json", [&](const httplib::Request&, httplib::Response& r) {
    r.set_content(keys, "application/json");
  });
  const int jwks_port = jwks.bind_to_any_port("127.0.0.1");
  std::thread jt([&] { jwks.listen_after_bind(); });
  // management.json: the tests' config with this IdP.
  auto cfg = json::parse(std::ifstream(test::fixture("management.json")));
  cfg["HttpConfig"]["AuthIssuer"] = "https://idp.test/";
  cfg["HttpConfig"]["AuthAudience"] = "netbird-dashboard";
  cfg["HttpConfig"]["AuthKeysLocation"] =
      "http://127.0.0.1:" + std::to_string(jwks_port) + "/.well-known/jwks.json";
  const auto path = test::temp_dir() + "/jwt-" + std::to_string(::getpid()) + ".json";
  std::ofstream(path) << cfg.dump(2);
  {
    // Multi-account mode: a new user gets an account of its own (single-account mode, NetBird's
    // default: tests/e2e/test_accounts).
    server s(storage::engine::sqlite, path, true, {"--disable-single-account-mode"});
    const auto now = static_cast<long long>(std::time(nullptr));
    const json good = {{"sub", s.owner},
                       {"iss", "https://idp.test/"},
                       {"aud", {"netbird-dashboard", "other"}},
                       {"exp", now + 300},
                       {"email", "owner@example.com"}};
    api_client api{s.api_port, "Bearer " + idp.sign("k1", good)};
    auto me = api.get("/api/users/current");
    REQUIRE(me.status == 200);
    CHECK(me.body["id"] == s.owner);
    CHECK(me.body["role"] == "owner");
    CHECK(api.get("/api/accounts").body[0]["id"] == s.account);

    const auto refused = [&](const json& claims, const rsa_key& by, const std::string& kid) {
      check_error(api.call("GET", "/api/groups", "", "Bearer " + by.sign(kid, claims)), 401,
                  "token invalid");
    };
    auto bad = good;
    bad["exp"] = now - 10;
    refused(bad, idp, "k1"); // expired
    bad = good;
    bad["aud"] = "someone-else";
    refused(bad, idp, "k1"); // audience
    bad = good;
    bad["iss"] = "https://evil.test/";
    refused(bad, idp, "k1");       // issuer
    refused(good, stranger, "k1"); // another key under the IdP's key id
    refused(good, stranger, "k9"); // a key id the IdP does not have
    check_error(api.call("GET", "/api/groups", "", "Bearer not-a-jwt"), 401, "token invalid");
    // Unsigned headers of any shape (alg and kid not strings, nested deep) are refused, not 500.
    for (const std::string& header :
         {std::string(R"({"alg":["RS256"],"kid":"k1"})"),
          std::string(R"({"alg":"RS256","kid":{"a":1}})"),
          R"({"alg":)" + std::string(2000, '[') + std::string(2000, ']') + "}"})
      check_error(api.call("GET", "/api/groups", "",
                           "Bearer " + b64url(header) + "." + b64url(good.dump()) + ".c2ln"),
                  401, "token invalid");

    // A user the store does not know yet: NetBird's first login makes an account it owns.
    auto fresh = good;
    fresh["sub"] = "idp-user-42";
    fresh["email"] = "new@corp.example";
    api_client newcomer{s.api_port, "Bearer " + idp.sign("k1", fresh)};
    auto acc = newcomer.get("/api/accounts");
    REQUIRE(acc.status == 200);
    CHECK(acc.body[0]["id"] != s.account);
    CHECK(acc.body[0]["domain"] == "corp.example");
    CHECK(newcomer.get("/api/users/current").body["role"] == "owner");
    // ... and nothing of the first account.
    check_error(newcomer.get("/api/groups/" + s.all_group), 404,
                "group: " + s.all_group + " not found");

    // SSO peers: a peer of the owner whose login expired is refused until the owner's JWT logs it
    // in again (issue 6's re-login), and another user's token cannot.
    const auto key = s.setup_key("--name k --reusable --auto-groups " + s.all_group);
    tools::peer_client laptop(s.target());
    REQUIRE(laptop.login(key, "laptop").ok());
    const auto lp = *s.peer_by_key(laptop.public_key_b64());
    {
      soci::session sql;
      storage::open_session(sql, s.db);
      const std::string owner = s.owner, id = lp.id;
      sql << "UPDATE peers SET user_id = :u, login_expiration_enabled = 1, "
             "last_login = '2020-01-01 00:00:00+00:00' WHERE id = :id",
          soci::use(owner, "u"), soci::use(id, "id");
      // Another process's change of a peer moves the account's serial (the server decides
      // logins from the account it holds and reads it again when the serial moves).
      const std::string account = s.account;
      sql << "UPDATE accounts SET network_serial = network_serial + 1 WHERE id = :a",
          soci::use(account, "a");
    }
    REQUIRE(api.put("/api/accounts/" + s.account,
                    {{"settings",
                      {{"peer_login_expiration_enabled", true}, {"peer_login_expiration", 3600}}}})
                .status == 200);
    auto expired = laptop.login("", "laptop");
    CHECK(expired.code == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(expired.message == "peer login has expired, please log in once more");
    auto other_user = laptop.login_jwt(idp.sign("k1", fresh), "laptop");
    CHECK(other_user.code == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(laptop.login_jwt(stranger.sign("k1", good), "laptop").code ==
          grpc::StatusCode::PERMISSION_DENIED); // a token the IdP did not sign
    auto again = laptop.login_jwt(idp.sign("k1", good), "laptop");
    REQUIRE_MESSAGE(again.ok(), again.message);
    auto renewed = *s.peer_by_key(laptop.public_key_b64());
    CHECK_FALSE(renewed.status.login_expired);
    REQUIRE(renewed.last_login.has_value());
    CHECK(renewed.last_login->rfind("2020", 0) != 0);
    // Its Sync is accepted right away.
    stream sl(laptop, "laptop");
    CHECK(sl.wait_maps(1, 5000ms));
  }
  jwks.stop();
  jt.join();
}

TEST_CASE("rest: gRPC and the REST API on one port (the default, as NetBird serves them)") {
  server s(storage::engine::sqlite);
  REQUIRE(s.api_port == s.port);
  api_client api{s.api_port, "Token " + s.pat};
  // HTTP/1.1 on the shared port reaches the REST API ...
  auto groups = api.get("/api/groups");
  REQUIRE(groups.status == 200);
  CHECK(groups.body[0]["name"] == "All");
  check_error(api.call("GET", "/api/groups", "", ""), 401, "no valid authentication provided");
  // ... and HTTP/2 on the same port is the gRPC service: register, sync, see a second peer.
  const auto key = s.setup_key("--name k --reusable --auto-groups " + s.all_group);
  tools::peer_client a(s.target()), b(s.target());
  // No retry: a first failure is a failure.
  const auto login = [&](tools::peer_client& p, const std::string& host) {
    auto r = p.login(key, host);
    INFO("login over the shared port: " << r.code << " " << r.message);
    CHECK(r.ok());
    return r.ok();
  };
  REQUIRE(login(a, "alpha"));
  stream sa(a, "alpha");
  REQUIRE(sa.wait_maps(1, 5000ms));
  REQUIRE(login(b, "beta"));
  REQUIRE(eventually([&] { return sa.last().size() == 1; }));
  // A REST change reaches the stream over the same port.
  auto peers = api.get("/api/peers");
  REQUIRE(peers.body.size() == 2);
  std::string def;
  for (const auto& p : api.get("/api/policies").body)
    if (p["name"] == "Default")
      def = p["id"];
  CHECK(api.del("/api/policies/" + def).status == 200);
  CHECK(eventually([&] { return sa.last().empty(); }));
  // The client address is the real one (loopback here), not the gRPC socket's fd name.
  CHECK(eventually([&] {
    auto p = s.peer_by_key(a.public_key_b64());
    return p && p->status.connected;
  }));

  // Prometheus metrics on --metrics-port: what the transports answered and what the actors hold.
  CHECK(metric(s, "nbm_sync_streams") == 1);
  CHECK(metric(s, "nbm_accounts_loaded") == 1);
  CHECK(metric(s, "nbm_account_peers") == 2);
  CHECK(metric(s, "nbm_grpc_requests_total{code=\"0\",method=\"Login\"}") >= 2);
  CHECK(metric(s, "management_http_response_counter_total{code=\"401\",endpoint=\"/api/groups\","
                  "method=\"GET\"}") == 1);
  CHECK(metric(s, "management_http_response_counter_total{code=\"200\",endpoint=\"/api/policies/"
                  "policyId\",method=\"DELETE\"}") == 1);
  CHECK(metric(s, "nbm_network_maps_sent_total") >= 3);
  CHECK(metric(s, "nbm_status_writes_landed_total") >= 1);
  // The peer deleted, its stream ends and the gauge follows.
  const auto pa = *s.peer_by_key(a.public_key_b64());
  CHECK(api.del("/api/peers/" + pa.id).status == 200);
  CHECK(sa.wait_end(5000ms));
  CHECK(eventually([&] { return metric(s, "nbm_sync_streams") == 0; }));
  CHECK(metric(s, "nbm_account_peers") == 1);

  // A metrics port that cannot be bound stops the server, as NetBird's (tests/e2e/test_tls:
  // "listening").
  s.stop();
}

// --- hostile requests (issue 11): no request takes the server down
// --------------------------------

namespace {

// The policy body that ended the process with SIGSEGV: 60,000 nested arrays inside `rules`.
std::string deep_policy_body() {
  return R"({"name":"deep","enabled":true,"rules":)" + std::string(60'000, '[') +
         std::string(60'000, ']') + "}";
}

const std::string int64_max = "9223372036854775807";

} // namespace

TEST_CASE("rest: a 60,000-deep body is 400 and the server keeps serving; overflowing numbers are "
          "refused and store nothing") {
  for (auto kind : engines()) {
    INFO(std::string(storage::to_string(kind)));
    server s(kind);
    api_client api{s.api_port, "Token " + s.pat};
    const auto before = all_lists(api);

    const auto deep = deep_policy_body();
    REQUIRE(deep.size() > 120'000);
    const auto default_policy = before["/api/policies"][0]["id"].get<std::string>();
    check_error(api.call("POST", "/api/policies", deep), 400, "couldn't parse JSON request");
    check_error(api.call("PUT", "/api/policies/" + default_policy, deep), 400,
                "couldn't parse JSON request");
    check_error(api.call("PUT", "/api/groups/" + s.all_group, deep), 400,
                "couldn't parse JSON request");
    for (const char* path :
         {"/api/groups", "/api/routes", "/api/setup-keys", "/api/users", "/api/dns/nameservers"})
      check_error(api.call("POST", path, std::string(60'000, '{')), 400,
                  "couldn't parse JSON request");
    // Still up and serving.
    CHECK(api.get("/api/groups").status == 200);

    // Numbers: refused before any arithmetic (422 out of range, 400 not an integer as in Go).
    const auto key = [&](const std::string& expires, const std::string& usage = "0") {
      return api.call("POST", "/api/setup-keys",
                      R"({"name":"k","type":"reusable","auto_groups":[],"expires_in":)" + expires +
                          R"(,"usage_limit":)" + usage + "}");
    };
    check_error(key(int64_max), 422, "expiresIn can not be more than 100 years");
    check_error(key("-1"), 422, "expiresIn can not be in the past");
    check_error(key("1e308"), 400, "couldn't parse JSON request");
    check_error(key("86400.5"), 400, "couldn't parse JSON request");
    check_error(key("86400", "-1"), 422, "usage limit can't be negative");
    check_error(key("86400", "1e308"), 400, "couldn't parse JSON request");
    const auto settings = [&](const std::string& field, const std::string& value) {
      return api.call("PUT", "/api/accounts/" + s.account,
                      R"({"settings":{")" + field + R"(":)" + value + "}}");
    };
    check_error(settings("peer_inactivity_expiration", int64_max), 422,
                "peer inactivity expiration can't be larger than 100 years");
    check_error(settings("peer_login_expiration", int64_max), 422,
                "peer login expiration can't be larger than 180 days");
    check_error(settings("peer_login_expiration", "-" + int64_max), 422,
                "peer login expiration can't be smaller than one hour");
    check_error(settings("peer_login_expiration", "1e308"), 400, "couldn't parse JSON request");
    check_error(api.call("POST", "/api/users/" + s.owner + "/tokens",
                         R"({"name":"t","expires_in":)" + int64_max + "}"),
                422, "expiration has to be between 1 and 365");
    check_error(
        api.call("POST", "/api/users/" + s.owner + "/tokens", R"({"name":"t","expires_in":1e308})"),
        400, "couldn't parse JSON request");
    check_error(api.call("POST", "/api/routes", R"({"network_id":"n","metric":1e308})"), 400,
                "couldn't parse JSON request");
    check_error(
        api.call(
            "POST", "/api/policies",
            R"({"name":"p","rules":[{"name":"r","action":"accept","protocol":"tcp",)"
            R"("port_ranges":[{"start":1,"end":4294967377}],"sources":[],"destinations":[]}]})"),
        422, "valid port value is in 1..65535 range");
    check_error(api.call("POST", "/api/dns/nameservers",
                         R"({"name":"n","nameservers":[{"ip":"1.1.1.1","port":65589}]})"),
                422, "invalid NS servers format");
    // Nothing was stored: every list reads as before (tokens included).
    const auto after = all_lists(api);
    for (const auto& [path, list] : before.items())
      CHECK_MESSAGE(after[path] == list, path);
    CHECK(api.get("/api/users/" + s.owner + "/tokens").body.size() == 1);
  }
}

TEST_CASE("rest: a policy rule id of another policy, or given twice, is 422 and changes nothing") {
  for (auto kind : engines()) {
    INFO(std::string(storage::to_string(kind)));
    server s(kind);
    api_client api{s.api_port, "Token " + s.pat};
    const json rule = {
        {"name", "r"},          {"enabled", true},          {"action", "accept"},
        {"protocol", "all"},    {"sources", {s.all_group}}, {"destinations", {s.all_group}},
        {"bidirectional", true}};
    auto a = api.post("/api/policies", {{"name", "a"}, {"enabled", true}, {"rules", {rule}}});
    auto b = api.post("/api/policies", {{"name", "b"}, {"enabled", true}, {"rules", {rule}}});
    REQUIRE(a.status == 200);
    REQUIRE(b.status == 200);
    const std::string a_rule = a.body["rules"][0]["id"], b_id = b.body["id"],
                      b_rule = b.body["rules"][0]["id"];
    REQUIRE(a_rule != b_rule);
    // B's rule claims A's rule id: NetBird's "invalid rule ID", never the store's unique violation.
    auto stolen = rule;
    stolen["id"] = a_rule;
    check_error(
        api.put("/api/policies/" + b_id, {{"name", "b"}, {"enabled", true}, {"rules", {stolen}}}),
        422, "invalid rule ID: " + a_rule);
    // Its own rule id twice.
    auto own = rule;
    own["id"] = b_rule;
    check_error(
        api.put("/api/policies/" + b_id, {{"name", "b"}, {"enabled", true}, {"rules", {own, own}}}),
        422, "invalid rule ID: " + b_rule);
    // A made-up id echoes a short prefix only.
    auto made_up = rule;
    made_up["id"] = std::string(5000, 'z');
    check_error(
        api.put("/api/policies/" + b_id, {{"name", "b"}, {"enabled", true}, {"rules", {made_up}}}),
        422, "invalid rule ID: " + std::string(64, 'z') + "...");
    // Both policies as they were; B's own rule id is still accepted.
    CHECK(api.get("/api/policies/" + b_id).body == b.body);
    CHECK(api.get("/api/policies/" + a.body["id"].get<std::string>()).body == a.body);
    auto renamed = own;
    renamed["name"] = "renamed";
    auto ok =
        api.put("/api/policies/" + b_id, {{"name", "b"}, {"enabled", true}, {"rules", {renamed}}});
    REQUIRE(ok.status == 200);
    CHECK(ok.body["rules"][0]["id"] == b_rule);
    CHECK(ok.body["rules"][0]["name"] == "renamed");
  }
}

TEST_CASE("rest: errors echo at most a short prefix of a long path or value") {
  server s(storage::engine::sqlite);
  api_client api{s.api_port, "Token " + s.pat};
  const std::string long_id(3000, 'q');
  check_error(api.get("/api/groups/" + long_id), 404,
              "group: " + std::string(64, 'q') + "... not found");
  check_error(api.get("/api/peers/" + long_id), 404,
              "peer not found: " + std::string(64, 'q') + "...");
  check_error(api.post("/api/setup-keys", {{"name", "k"}, {"type", long_id}}), 422,
              "unknown setup key type " + std::string(64, 'q') + "...");
  check_error(api.post("/api/groups", {{"name", "g"}, {"peers", {long_id}}}), 422,
              "peer with ID " + std::string(64, 'q') + "... not found");
  // A path as long as the HTTP server takes: split without a regex, answered, and still serving.
  const std::string longest(8000, 'q');
  check_error(api.get("/api/groups/" + longest), 404,
              "group: " + std::string(64, 'q') + "... not found");
  check_error(api.get("/api/groups/" + longest + "/a/b/c"), 404, "not found");
  CHECK(api.get("/api/groups").status == 200);
}

namespace {

// Makes the server's PostgreSQL database refuse every connection (and ends the open ones) until
// destroyed: to the server, a database it cannot reach. Connects through template1, which stays
// open.
struct database_refused {
  storage::db_options admin;
  std::string name;
  explicit database_refused(const server& s) {
    admin = {storage::engine::postgres,
             std::string(std::getenv("NBM_TEST_PG_DSN")) + " dbname=template1", 1};
    {
      soci::session own;
      storage::open_session(own, s.db);
      own << "SELECT current_database()", soci::into(name);
    }
    set(false);
    soci::session sql;
    storage::open_session(sql, admin);
    int killed = 0;
    sql << "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = :d",
        soci::use(name), soci::into(killed);
  }
  ~database_refused() { set(true); }
  void set(bool allow) {
    soci::session sql;
    storage::open_session(sql, admin);
    sql << "ALTER DATABASE \"" + name + "\" ALLOW_CONNECTIONS " + (allow ? "true" : "false");
  }
};

} // namespace

TEST_CASE("rest: while the database cannot be reached REST answers 503 with Retry-After, then "
          "recovers") {
  if (!test::postgres_available()) {
    const char* require = std::getenv("NBM_REQUIRE_PG");
    REQUIRE_MESSAGE(!(require && std::string(require) == "1"),
                    "NBM_REQUIRE_PG=1 but no PostgreSQL");
    return;
  }
  server s(storage::engine::postgres);
  api_client api{s.api_port, "Token " + s.pat};
  REQUIRE(api.get("/api/groups").status == 200);
  const auto groups_before = api.get("/api/groups").body;
  {
    database_refused down(s);
    // Reads, changes and authentication alike: 503, NetBird's body, a Retry-After, no 500.
    for (int i = 0; i < 3; ++i) {
      for (const auto& r :
           {api.get("/api/groups"), api.post("/api/groups", {{"name", "down"}}),
            api.get("/api/peers"),
            api.put("/api/accounts/" + s.account, {{"settings", json::object()}})}) {
        check_error(r, 503, "service unavailable, please retry");
        CHECK(r.retry_after == "2");
      }
    }
    CHECK(s.pid > 0);
    CHECK(::kill(s.pid, 0) == 0); // still running
  }
  // Back: the next requests succeed on fresh sessions (within a deadline, no sleep-and-hope).
  CHECK(eventually([&] { return api.get("/api/groups").status == 200; }, 10'000ms));
  CHECK(api.get("/api/groups").body == groups_before); // the refused change left nothing
  auto g = api.post("/api/groups", {{"name", "after"}});
  CHECK(g.status == 200);
  CHECK(api.get("/api/groups").body.size() == groups_before.size() + 1);
}
