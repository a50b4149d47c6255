// Accounts and users as a self-hosted NetBird admin has them: single-account mode (NetBird's
// default), the activity log. The real binary, JWTs of an IdP of the test's own.
#include "tests/e2e/rest_support.hpp"

#include <soci/soci.h>

using namespace nbm;
using namespace nbm::e2e;
using json = nlohmann::json;

namespace {

// Lists as text, for messages.
std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& x : v)
    out += (out.empty() ? "" : ",") + x;
  return out;
}

long long count_rows(const server& s, const std::string& table) {
  soci::session sql;
  storage::open_session(sql, s.db);
  long long n = 0;
  sql << "SELECT COUNT(*) FROM " + table, soci::into(n);
  return n;
}

// PostgreSQL cases: skipped without NBM_TEST_PG_DSN, a failure when NBM_REQUIRE_PG=1 asks for it.
bool have_pg() {
  if (test::postgres_available())
    return true;
  const char* req = std::getenv("NBM_REQUIRE_PG");
  REQUIRE_MESSAGE(!(req && std::string(req) == "1"),
                  "NBM_REQUIRE_PG=1 but NBM_TEST_PG_DSN is not set: no PostgreSQL for this case");
  MESSAGE("skipped: no PostgreSQL (NBM_TEST_PG_DSN)");
  return false;
}

// A management.json with a DataStoreEncryptionKey (NetBird keeps deleted users' names encrypted
// with it).
std::string with_encryption_key(const std::string& path) {
  auto cfg = json::parse(std::ifstream(path));
  cfg["DataStoreEncryptionKey"] = "X4kQ0yVh1H8m1pmRq3nH8V1dBu9Z9vF2Xr6x3fXc2Ws=";
  std::ofstream(path) << cfg.dump(2);
  return path;
}

void exec(const server& s, const std::string& statement) {
  soci::session sql;
  storage::open_session(sql, s.db);
  sql << statement;
}

// Makes a peer registered with a setup key a peer of `user_id` whose SSO login expired long ago
// (there is no SSO registration here yet), and moves the account's serial so the server reads it.
void make_user_peer(const server& s, const std::string& peer_id, const std::string& user_id,
                    bool expired) {
  exec(s, "UPDATE peers SET user_id = '" + user_id + "'" +
              (expired ? ", login_expiration_enabled = true, last_login = '2020-01-01 "
                         "00:00:00+00:00'"
                       : "") +
              " WHERE id = '" + peer_id + "'");
  exec(s, "UPDATE accounts SET network_serial = network_serial + 1 WHERE id = '" + s.account + "'");
}

// The activity log of an account as stored (oldest first): activity, initiator, target, meta.
struct stored_event {
  int activity = 0;
  std::string initiator, target;
  json meta;
};
std::vector<stored_event> stored_events(const server& s, const std::string& account) {
  soci::session sql;
  storage::open_session(sql, {storage::engine::sqlite, s.dir + "/events.db", 1});
  soci::rowset<soci::row> rows =
      (sql.prepare << "SELECT activity, initiator_id, target_id, meta FROM events WHERE "
                      "account_id = :a ORDER BY id",
       soci::use(account, "a"));
  std::vector<stored_event> out;
  for (const auto& r : rows)
    out.push_back({r.get<int>(0), r.get<std::string>(1), r.get<std::string>(2),
                   json::parse(r.get<std::string>(3), nullptr, false)});
  return out;
}

// Rows of an account in each of its tables (tokens and policy rules through their users and
// policies).
std::map<std::string, long long> account_rows(const server& s, const std::string& account) {
  soci::session sql;
  storage::open_session(sql, s.db);
  std::map<std::string, long long> out;
  const auto count = [&](const std::string& name, const std::string& query) {
    long long n = 0;
    sql << query, soci::use(account, "a"), soci::into(n);
    out[name] = n;
  };
  count("accounts", "SELECT COUNT(*) FROM accounts WHERE id = :a");
  for (const char* t : {"users", "group_peers", "groups", "policies", "setup_keys", "peers",
                        "routes", "name_server_groups", "posture_checks", "networks",
                        "network_routers", "network_resources", "account_onboardings"})
    count(t, std::string("SELECT COUNT(*) FROM \"") + t + "\" WHERE account_id = :a");
  count("personal_access_tokens", "SELECT COUNT(*) FROM personal_access_tokens WHERE user_id IN "
                                  "(SELECT id FROM users WHERE account_id = :a)");
  count("policy_rules", "SELECT COUNT(*) FROM policy_rules WHERE policy_id IN (SELECT id FROM "
                        "policies WHERE account_id = :a)");
  return out;
}

// PUT the account's settings: a login expiration of `expiration` s, user approval as `approval`
// says, and `more` (further settings fields) beside them. Returns the answer.
rest_reply put_settings(rest_client& owner, const std::string& account, bool approval,
                        json more = json::object(), int expiration = 86400) {
  more["peer_login_expiration"] = expiration;
  more["extra"] = {{"user_approval_required", approval}};
  return owner.put("/api/accounts/" + account, {{"settings", std::move(more)}});
}

} // namespace

TEST_CASE("accounts: single-account mode, a new IdP user joins the one account as a user") {
  test_idp idp;
  server s(storage::engine::sqlite, idp.config("single"));
  rest_client owner{s.api_port, "Token " + s.pat};
  // NetBird's new accounts require user approval; this one does not.
  REQUIRE(put_settings(owner, s.account, false).status == 200);
  rest_client alice{s.api_port, idp.bearer("idp-alice", "alice@gmail.com")};
  rest_client bob{s.api_port, idp.bearer("idp-bob", "bob@elsewhere.example")};

  auto me = alice.get("/api/users/current");
  REQUIRE(me.status == 200);
  CHECK(me.body["id"] == "idp-alice");
  CHECK(me.body["role"] == "user");
  CHECK(me.body["email"] == "alice@gmail.com");
  auto bme = bob.get("/api/users/current");
  REQUIRE(bme.status == 200);
  CHECK(bme.body["role"] == "user");
  // Both in the owner's account: one account in the store, three users in it.
  CHECK(count_rows(s, "accounts") == 1);
  auto users = owner.get("/api/users");
  REQUIRE(users.status == 200);
  std::set<std::string> ids;
  for (const auto& u : users.body)
    ids.insert(u["id"].get<std::string>());
  CHECK(ids == std::set<std::string>{s.owner, "idp-alice", "idp-bob"});
  // A regular user is no admin: the owner's objects are not its to change.
  check_rest_error(alice.post("/api/groups", {{"name", "mine"}}), 403, "permission denied");

  // A second login and a restart change nothing.
  s.stop();
  s.start();
  alice.port = bob.port = owner.port = s.api_port;
  CHECK(alice.get("/api/users/current").body["id"] == "idp-alice");
  CHECK(count_rows(s, "accounts") == 1);
  CHECK(count_rows(s, "users") == 3);

  // The account requires user approval: the next newcomer joins blocked, pending approval, and is
  // answered as NetBird's permissions manager answers.
  REQUIRE(put_settings(owner, s.account, true).status == 200);
  rest_client carol{s.api_port, idp.bearer("idp-carol", "carol@corp.example")};
  check_rest_error(carol.get("/api/users/current"), 403, "user is pending approval");
  CHECK(count_rows(s, "accounts") == 1);
  {
    soci::session sql;
    storage::open_session(sql, s.db);
    int blocked = 0, pending = 0;
    std::string role;
    sql << "SELECT role, blocked, pending_approval FROM users WHERE id = 'idp-carol'",
        soci::into(role), soci::into(blocked), soci::into(pending);
    CHECK(role == "user");
    CHECK(blocked == 1);
    CHECK(pending == 1);
  }
}

TEST_CASE("accounts: single-account mode is off with two accounts or when disabled") {
  test_idp idp;
  SUBCASE("--disable-single-account-mode") {
    server s(storage::engine::sqlite, idp.config("multi"), true, {"--disable-single-account-mode"});
    rest_client dave{s.api_port, idp.bearer("idp-dave", "dave@dave.example")};
    auto acc = dave.get("/api/accounts");
    REQUIRE(acc.status == 200);
    CHECK(acc.body[0]["id"] != s.account);
    CHECK(acc.body[0]["domain"] == "dave.example");
    CHECK(dave.get("/api/users/current").body["role"] == "owner");
    CHECK(count_rows(s, "accounts") == 2);
  }
  SUBCASE("two accounts in the store at start-up") {
    server s(storage::engine::sqlite, idp.config("two"));
    s.stop();
    s.admin("account create --domain second.example --allow-duplicate-domain");
    s.start();
    rest_client erin{s.api_port, idp.bearer("idp-erin", "erin@erin.example")};
    auto acc = erin.get("/api/accounts");
    REQUIRE(acc.status == 200);
    CHECK(acc.body[0]["domain"] == "erin.example");
    CHECK(erin.get("/api/users/current").body["role"] == "owner");
    CHECK(count_rows(s, "accounts") == 3);
  }
}

TEST_CASE("accounts: an invalid single-account-mode domain stops the server") {
  const auto dir = test::temp_dir() + "/badsingle-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const auto out = run("timeout 20 " + std::string(NBM_SERVER_BIN) + " management --config " +
                       test::fixture("management.json") + " --datadir " + dir + " --port " +
                       std::to_string(free_port()) +
                       " --disable-legacy-port --log-file console "
                       "--single-account-mode-domain 'bad domain!' 2>&1; echo rc=$?");
  CHECK_MESSAGE(out.find("invalid domain \"bad domain!\" provided for a single account mode") !=
                    std::string::npos,
                out);
  CHECK(out.find("rc=1") != std::string::npos);
}

namespace {

// The activity codes of an account's log, oldest first (the API answers newest first).
std::vector<std::string> codes(rest_client& api, const std::string& path = "/api/events/audit") {
  auto r = api.get(path);
  REQUIRE_MESSAGE(r.status == 200, r.body.dump());
  std::vector<std::string> out;
  for (auto it = r.body.rbegin(); it != r.body.rend(); ++it)
    out.push_back((*it)["activity_code"].get<std::string>());
  return out;
}

json newest(rest_client& api, const std::string& code) {
  auto r = api.get("/api/events/audit");
  for (const auto& e : r.body)
    if (e["activity_code"] == code)
      return e;
  return json();
}

} // namespace

TEST_CASE("events: REST changes, registrations and first logins, once each, in order, across "
          "a restart") {
  test_idp idp;
  server s(storage::engine::sqlite, idp.config("events"));
  rest_client api{s.api_port, "Token " + s.pat};
  // `admin account create` recorded the account's creation in events.db beside the store.
  REQUIRE(std::filesystem::exists(s.dir + "/events.db"));
  // ... with its owner's bootstrap token (the CLI as initiator).
  CHECK(codes(api) == std::vector<std::string>{"account.create", "personal.access.token.create"});

  auto g = api.post("/api/groups", {{"name", "devs"}});
  REQUIRE(g.status == 200);
  const std::string gid = g.body["id"];
  REQUIRE(api.put("/api/groups/" + gid, {{"name", "developers"}}).status == 200);
  auto p = api.post("/api/policies", {{"name", "web"},
                                      {"enabled", true},
                                      {"rules",
                                       {{{"name", "web"},
                                         {"enabled", true},
                                         {"action", "accept"},
                                         {"bidirectional", true},
                                         {"protocol", "all"},
                                         {"sources", {gid}},
                                         {"destinations", {gid}}}}}});
  REQUIRE_MESSAGE(p.status == 200, p.body.dump());
  const std::string pid = p.body["id"];
  REQUIRE(api.del("/api/policies/" + pid).status == 200);
  // Refused changes record nothing.
  check_rest_error(api.del("/api/groups/nope"), 404, "group: nope not found");
  CHECK(api.post("/api/groups", {{"name", ""}}).status == 422);

  const std::vector<std::string> want = {"account.create", "personal.access.token.create",
                                         "group.add",      "group.update",
                                         "policy.add",     "policy.delete"};
  CHECK(joined(codes(api)) == joined(want));
  CHECK(joined(codes(api, "/api/events")) == joined(want)); // the legacy path answers the same
  const auto renamed = newest(api, "group.update");
  CHECK(renamed["target_id"] == gid);
  CHECK(renamed["initiator_id"] == s.owner);
  CHECK(renamed["meta"]["old_name"] == "devs");
  CHECK(renamed["meta"]["new_name"] == "developers");
  CHECK(renamed["activity"] == "Group updated");
  CHECK(renamed["timestamp"].get<std::string>().back() == 'Z');
  CHECK(newest(api, "policy.add")["meta"]["name"] == "web");

  // A peer registered with a setup key; an IdP user's first login (single-account mode).
  const auto key = s.setup_key("--name laptops --reusable --auto-groups " + s.all_group);
  tools::peer_client laptop(s.target());
  REQUIRE(laptop.login(key, "laptop").ok());
  rest_client alice{s.api_port, idp.bearer("idp-alice", "alice@gmail.com")};
  // NetBird's new accounts require user approval: Alice joins pending, and may read nothing.
  check_rest_error(alice.get("/api/users/current"), 403, "user is pending approval");
  check_rest_error(alice.get("/api/events/audit"), 403, "user is pending approval");
  auto after = codes(api);
  // The CLI's setup key is recorded by `admin` itself (initiator "sys").
  const std::vector<std::string> more = {"account.create", "personal.access.token.create",
                                         "group.add",      "group.update",
                                         "policy.add",     "policy.delete",
                                         "setupkey.add",   "peer.setupkey.add",
                                         "user.join"};
  CHECK(joined(after) == joined(more));
  const auto added = newest(api, "peer.setupkey.add");
  CHECK(added["meta"]["name"] == "laptop");
  CHECK(added["meta"]["fqdn"].get<std::string>().rfind("laptop.", 0) == 0);
  CHECK(newest(api, "setupkey.add")["initiator_id"] == "sys");
  CHECK(newest(api, "user.join")["target_id"] == "idp-alice");
  CHECK(newest(api, "user.join")["meta"]["email"] == "alice@gmail.com");
  CHECK(newest(api, "user.join")["meta"]["pending_approval"] == "true");

  // A restart keeps them, and the next change adds exactly one.
  s.stop();
  s.start();
  api.port = s.api_port;
  CHECK(joined(codes(api)) == joined(more));
  REQUIRE(api.del("/api/groups/" + gid).status == 200);
  auto last = codes(api);
  REQUIRE(last.size() == more.size() + 1);
  CHECK(last.back() == "group.delete");
  // Ids are distinct and grow with time.
  auto r = api.get("/api/events/audit");
  std::set<std::string> ids;
  for (const auto& e : r.body)
    ids.insert(e["id"].get<std::string>());
  CHECK(ids.size() == r.body.size());
  CHECK(std::stoll(r.body[0]["id"].get<std::string>()) >
        std::stoll(r.body[1]["id"].get<std::string>()));

  // NetBird's table, as NetBird reads it: activity integers, JSON meta.
  {
    soci::session sql;
    storage::open_session(sql, {storage::engine::sqlite, s.dir + "/events.db", 1});
    int activity = -1;
    std::string meta;
    sql << "SELECT activity, meta FROM events WHERE target_id = :g AND activity = 17",
        soci::use(gid), soci::into(activity), soci::into(meta);
    CHECK(activity == 17); // GroupUpdated
    CHECK(json::parse(meta) == json{{"old_name", "devs"}, {"new_name", "developers"}});
  }

  // Another account sees none of them, and its own log only.
  auto out = s.admin("account create --domain other.example");
  rest_client other{s.api_port, "Token " + field(out, "personal_access_token")};
  CHECK(codes(other) == std::vector<std::string>{"account.create", "personal.access.token.create"});
  // Bad paths and methods.
  check_rest_error(api.get("/api/events/nope"), 404, "not found");
  check_rest_error(api.call("POST", "/api/events/audit", "{}"), 405, "method not allowed");
}

TEST_CASE("users: approval of users who joined pending (approve, reject), invites without an IdP") {
  test_idp idp;
  server s(storage::engine::sqlite, with_encryption_key(idp.config("approval")));
  rest_client owner{s.api_port, "Token " + s.pat};
  // The account requires user approval (over REST: honoured, not dropped).
  auto put =
      owner.put("/api/accounts/" + s.account, {{"settings",
                                                {{"peer_login_expiration_enabled", false},
                                                 {"peer_login_expiration", 86400},
                                                 {"extra", {{"user_approval_required", true}}}}}});
  REQUIRE_MESSAGE(put.status == 200, put.body.dump());
  CHECK(put.body["settings"]["extra"]["user_approval_required"] == true);
  rest_client carol{s.api_port, idp.bearer("idp-carol", "carol@corp.example")};
  rest_client dave{s.api_port, idp.bearer("idp-dave", "dave@corp.example")};
  check_rest_error(carol.get("/api/users/current"), 403, "user is pending approval");
  check_rest_error(dave.get("/api/users/current"), 403, "user is pending approval");

  // Bad input first: nothing changes.
  check_rest_error(owner.post("/api/users/nope/approve", json::object()), 404,
                   "user: nope not found");
  check_rest_error(owner.post("/api/users/" + s.owner + "/approve", json::object()), 422,
                   "user " + s.owner + " is not pending approval");
  check_rest_error(owner.call("GET", "/api/users/idp-carol/approve"), 405, "method not allowed");
  check_rest_error(owner.call("POST", "/api/users/idp-carol/reject", "{}"), 405,
                   "method not allowed");
  // Another account's admin cannot see them.
  auto other = s.admin("account create --domain other.example");
  rest_client stranger{s.api_port, "Token " + field(other, "personal_access_token")};
  check_rest_error(stranger.post("/api/users/idp-carol/approve", json::object()), 404,
                   "user: idp-carol not found");
  check_rest_error(stranger.del("/api/users/idp-dave/reject"), 404, "user: idp-dave not found");
  check_rest_error(carol.get("/api/users/current"), 403, "user is pending approval");

  auto approved = owner.post("/api/users/idp-carol/approve", json::object());
  REQUIRE_MESSAGE(approved.status == 200, approved.body.dump());
  CHECK(approved.body["id"] == "idp-carol");
  CHECK(approved.body["is_blocked"] == false);
  CHECK(approved.body["pending_approval"] == false);
  auto me = carol.get("/api/users/current");
  REQUIRE(me.status == 200);
  CHECK(me.body["role"] == "user");
  // Carol is no admin: she cannot reject Dave.
  check_rest_error(carol.del("/api/users/idp-dave/reject"), 403, "permission denied");
  CHECK(owner.del("/api/users/idp-dave/reject").body == json::object());
  check_rest_error(owner.del("/api/users/idp-dave/reject"), 404, "user: idp-dave not found");
  std::set<std::string> ids;
  for (const auto& u : owner.get("/api/users").body)
    ids.insert(u["id"].get<std::string>());
  CHECK(ids == std::set<std::string>{s.owner, "idp-carol"});

  // The log: joined pending, approved, deleted and rejected.
  auto log = owner.get("/api/events/audit");
  std::vector<std::string> codes_seen;
  for (auto it = log.body.rbegin(); it != log.body.rend(); ++it)
    codes_seen.push_back((*it)["activity_code"].get<std::string>());
  CHECK(joined(codes_seen) ==
        "account.create,personal.access.token.create,account.setting.peer.login.expiration."
        "disable,user.join,user.join,user.approve,user.delete,user.reject");
  // Dave, rejected (deleted), keeps his email in the log: NetBird's deleted_users, encrypted
  // with the DataStoreEncryptionKey.
  for (const auto& e : log.body)
    if (e["activity_code"] == "user.delete")
      CHECK(e["meta"]["email"] == "dave@corp.example");
  for (const auto& e : log.body)
    if (e["activity_code"] == "user.join" && e["target_id"] == "idp-carol")
      CHECK(e["meta"]["pending_approval"] == "true");

  // Invites need an IdP manager: NetBird's 412 answers, not 404.
  check_rest_error(owner.post("/api/users", {{"role", "user"}, {"email", "x@y.z"}}), 412,
                   "IdP manager must be enabled to send user invites");
  check_rest_error(owner.post("/api/users/idp-carol/invite", json::object()), 412,
                   "IdP manager must be enabled to send user invites");
  check_rest_error(owner.get("/api/users/invites"), 412,
                   "invite links are only available with embedded identity provider");
}

TEST_CASE("accounts: settings honoured or refused, the answer NetBird's spec requires") {
  test_idp idp;
  server s(storage::engine::sqlite, idp.config("settings"));
  rest_client owner{s.api_port, "Token " + s.pat};
  auto acc = owner.get("/api/accounts");
  REQUIRE(acc.status == 200);
  const auto a = acc.body[0];
  for (const char* k :
       {"id", "settings", "domain", "domain_category", "created_at", "created_by", "onboarding"})
    CHECK_MESSAGE(a.contains(k), k);
  for (const char* k : {"peer_login_expiration_enabled", "peer_login_expiration",
                        "peer_inactivity_expiration_enabled", "peer_inactivity_expiration",
                        "regular_users_view_blocked", "peer_expose_enabled", "peer_expose_groups"})
    CHECK_MESSAGE(a["settings"].contains(k), k);
  for (const char* k :
       {"peer_approval_enabled", "user_approval_required", "network_traffic_logs_enabled",
        "network_traffic_logs_groups", "network_traffic_packet_counter_enabled"})
    CHECK_MESSAGE(a["settings"]["extra"].contains(k), k);
  CHECK(a["onboarding"] ==
        json{{"signup_form_pending", false}, {"onboarding_flow_pending", false}});

  // What the server cannot honour is refused (422), and nothing changes.
  const auto refused = [&](const json& settings, const std::string& message) {
    json body = {{"settings", settings}};
    body["settings"]["peer_login_expiration"] = 86400;
    check_rest_error(owner.put("/api/accounts/" + s.account, body), 422, message);
  };
  refused({{"extra", {{"peer_approval_enabled", true}}}},
          "peer approval needs an integrated peer validator, which this server does not have");
  refused({{"extra", {{"network_traffic_logs_enabled", true}}}},
          "network traffic logs are not available on this server");
  refused({{"auto_update_version", "0.40.0"}},
          "automatic client updates are not available on this server");
  refused({{"peer_expose_enabled", true}}, "peer expose is not available on this server");
  refused({{"local_mfa_enabled", true}}, "local MFA is not available on this server");
  CHECK(owner.get("/api/accounts").body[0] == a);
  // Another account's id: 404, nothing changed.
  auto other = s.admin("account create --domain other.example");
  check_rest_error(owner.put("/api/accounts/" + field(other, "account_id"),
                             {{"settings", {{"peer_login_expiration", 86400}}}}),
                   404, "account not found: " + field(other, "account_id"));
  // The dashboard's own defaults pass (it sends the settings back as it read them).
  auto same = a;
  auto back = owner.put("/api/accounts/" + s.account, {{"settings", same["settings"]}});
  REQUIRE_MESSAGE(back.status == 200, back.body.dump());
  CHECK(back.body == a);
}

TEST_CASE("accounts: JWT groups, an allow-list and groups from the token's claim") {
  test_idp idp;
  server s(storage::engine::sqlite, idp.config("jwtgroups"));
  rest_client owner{s.api_port, "Token " + s.pat};
  // A group of the API's own with a name the token will use is not taken over.
  auto ops = owner.post("/api/groups", {{"name", "ops"}});
  REQUIRE(ops.status == 200);
  auto put =
      owner.put("/api/accounts/" + s.account, {{"settings",
                                                {{"peer_login_expiration", 86400},
                                                 {"extra", {{"user_approval_required", false}}},
                                                 {"jwt_groups_enabled", true},
                                                 {"jwt_groups_claim_name", "groups"},
                                                 {"jwt_allow_groups", {"netbird"}}}}});
  REQUIRE_MESSAGE(put.status == 200, put.body.dump());
  CHECK(put.body["settings"]["jwt_groups_enabled"] == true);
  CHECK(put.body["settings"]["jwt_groups_claim_name"] == "groups");
  CHECK(put.body["settings"]["jwt_allow_groups"] == json{"netbird"});

  // Outside the allow-list: refused (NetBird's "token invalid").
  rest_client outsider{s.api_port,
                       idp.bearer("idp-eve", "eve@corp.example", {{"groups", {"devs"}}})};
  check_rest_error(outsider.get("/api/users/current"), 401, "token invalid");
  rest_client none{s.api_port, idp.bearer("idp-eve", "eve@corp.example")};
  check_rest_error(none.get("/api/users/current"), 401, "token invalid");

  rest_client frank{s.api_port, idp.bearer("idp-frank", "frank@corp.example",
                                           {{"groups", {"netbird", "devs", "ops"}}})};
  auto me = frank.get("/api/users/current");
  REQUIRE_MESSAGE(me.status == 200, me.body.dump());
  std::map<std::string, json> groups;
  for (const auto& g : owner.get("/api/groups").body)
    groups[g["name"].get<std::string>()] = g;
  REQUIRE(groups.count("netbird"));
  REQUIRE(groups.count("devs"));
  CHECK(groups["netbird"]["issued"] == "jwt");
  CHECK(groups["devs"]["issued"] == "jwt");
  CHECK(groups["ops"]["issued"] == "api");
  const std::set<std::string> auto_groups(me.body["auto_groups"].begin(),
                                          me.body["auto_groups"].end());
  CHECK(auto_groups == std::set<std::string>{groups["netbird"]["id"], groups["devs"]["id"]});

  // The next login with fewer groups: the user leaves "devs" (the group stays).
  rest_client frank2{s.api_port,
                     idp.bearer("idp-frank", "frank@corp.example", {{"groups", {"netbird"}}})};
  auto again = frank2.get("/api/users/current");
  REQUIRE(again.status == 200);
  CHECK(again.body["auto_groups"] == json{groups["netbird"]["id"]});
  CHECK(owner.get("/api/groups/" + groups["devs"]["id"].get<std::string>()).status == 200);
  // The same login again changes nothing (no second sync).
  auto log_before = owner.get("/api/events/audit").body.size();
  REQUIRE(frank2.get("/api/users/current").status == 200);
  CHECK(owner.get("/api/events/audit").body.size() == log_before);
  std::vector<std::string> seen;
  auto log = owner.get("/api/events/audit").body;
  for (auto it = log.rbegin(); it != log.rend(); ++it)
    if ((*it)["target_id"] == "idp-frank")
      seen.push_back((*it)["activity_code"].get<std::string>());
  CHECK(joined(seen) == "user.join,user.group.add,user.group.add,user.group.delete");
}

TEST_CASE("peers: accessible peers; locations from a GeoNames database") {
  server s(storage::engine::sqlite);
  rest_client api{s.api_port, "Token " + s.pat};
  const auto key = s.setup_key("--name k --reusable --auto-groups " + s.all_group);
  tools::peer_client a(s.target()), b(s.target()), c(s.target());
  REQUIRE(a.login(key, "alpha").ok());
  REQUIRE(b.login(key, "beta").ok());
  REQUIRE(c.login(key, "gamma").ok());
  const auto pa = *s.peer_by_key(a.public_key_b64());
  // The default All policy: alpha reaches beta and gamma.
  auto r = api.get("/api/peers/" + pa.id + "/accessible-peers");
  REQUIRE_MESSAGE(r.status == 200, r.body.dump());
  std::set<std::string> names;
  for (const auto& p : r.body) {
    names.insert(p["name"].get<std::string>());
    for (const char* k : {"id", "name", "ip", "dns_label", "user_id", "os", "country_code",
                          "city_name", "geoname_id", "connected", "last_seen"})
      CHECK_MESSAGE(p.contains(k), k);
  }
  CHECK(names == std::set<std::string>{"beta", "gamma"});
  // Without a policy: nobody.
  for (const auto& p : api.get("/api/policies").body)
    REQUIRE(api.del("/api/policies/" + p["id"].get<std::string>()).status == 200);
  CHECK(api.get("/api/peers/" + pa.id + "/accessible-peers").body == json::array());
  check_rest_error(api.get("/api/peers/nope/accessible-peers"), 404, "peer not found");
  check_rest_error(api.call("POST", "/api/peers/" + pa.id + "/accessible-peers", "{}"), 405,
                   "method not allowed");
  auto other = s.admin("account create --domain other.example");
  rest_client stranger{s.api_port, "Token " + field(other, "personal_access_token")};
  check_rest_error(stranger.get("/api/peers/" + pa.id + "/accessible-peers"), 404,
                   "peer not found");

  // No GeoNames database: NetBird's 412.
  check_rest_error(api.get("/api/locations/countries"), 412,
                   "Geo location database is not initialized");
  check_rest_error(api.get("/api/locations/countries/DE/cities"), 412,
                   "Geo location database is not initialized. Check the self-hosted Geo "
                   "database documentation at https://docs.netbird.io/selfhosted/geo-support");
  // A tiny one of our own, in NetBird's shape, found at the next start.
  {
    soci::session sql;
    storage::open_session(sql, {storage::engine::sqlite, s.dir + "/geonames_20240305.db", 1});
    sql << "CREATE TABLE geonames (geoname_id TEXT, locale_code TEXT, continent_code TEXT, "
           "continent_name TEXT, country_iso_code TEXT, country_name TEXT, "
           "subdivision_1_iso_code TEXT, subdivision_1_name TEXT, subdivision_2_iso_code TEXT, "
           "subdivision_2_name TEXT, city_name TEXT, metro_code TEXT, time_zone TEXT, "
           "is_in_european_union TEXT)";
    sql << "INSERT INTO geonames (geoname_id, country_iso_code, country_name, city_name) VALUES "
           "('2950159', 'DE', 'Germany', 'Berlin'), ('2867714', 'DE', 'Germany', 'Munich'), "
           "('2950160', 'DE', 'Germany', 'Berlin'), ('2643743', 'GB', 'United Kingdom', "
           "'London'), ('3017382', 'FR', 'France', '')";
  }
  s.stop();
  s.start();
  api.port = stranger.port = s.api_port;
  auto countries = api.get("/api/locations/countries");
  REQUIRE(countries.status == 200);
  CHECK(countries.body == json::parse(R"([{"country_name":"France","country_code":"FR"},
      {"country_name":"Germany","country_code":"DE"},
      {"country_name":"United Kingdom","country_code":"GB"}])"));
  auto cities = api.get("/api/locations/countries/DE/cities");
  REQUIRE(cities.status == 200);
  CHECK(cities.body == json::parse(R"([{"city_name":"Berlin","geoname_id":2950159},
      {"city_name":"Munich","geoname_id":2867714}])"));
  // As NetBird's query: a row without a city is listed as it is; a country without rows is empty.
  CHECK(api.get("/api/locations/countries/FR/cities").body ==
        json::parse(R"([{"city_name":"","geoname_id":3017382}])"));
  CHECK(api.get("/api/locations/countries/IT/cities").body == json::array());
  check_rest_error(api.get("/api/locations/countries/DEU/cities"), 422, "invalid country code");
  check_rest_error(api.get("/api/locations/countries/1x/cities"), 422, "invalid country code");
  check_rest_error(api.get("/api/locations/nope"), 404, "not found");
  // Any user of an account may list them (NetBird asks no permission).
  CHECK(stranger.get("/api/locations/countries").status == 200);
}

TEST_CASE("accounts on PostgreSQL: a join, JWT groups, an approval and their events") {
  if (!have_pg())
    return;
  test_idp idp;
  server s(storage::engine::postgres, idp.config("pg-accounts"));
  rest_client owner{s.api_port, "Token " + s.pat};
  REQUIRE(put_settings(owner, s.account, false,
                       {{"groups_propagation_enabled", true},
                        {"jwt_groups_enabled", true},
                        {"jwt_groups_claim_name", "groups"}})
              .status == 200);
  rest_client frank{s.api_port,
                    idp.bearer("idp-frank", "frank@corp.example", {{"groups", {"devs", "ops"}}})};
  auto me = frank.get("/api/users/current");
  REQUIRE_MESSAGE(me.status == 200, me.body.dump());
  CHECK(me.body["role"] == "user");
  CHECK(me.body["auto_groups"].size() == 2);
  CHECK(count_rows(s, "accounts") == 1);
  REQUIRE(put_settings(owner, s.account, true).status == 200);
  rest_client carol{s.api_port, idp.bearer("idp-carol", "carol@corp.example")};
  check_rest_error(carol.get("/api/users/current"), 403, "user is pending approval");
  REQUIRE(owner.post("/api/users/idp-carol/approve", json::object()).status == 200);
  CHECK(carol.get("/api/users/current").status == 200);
  std::vector<std::string> seen;
  auto log = owner.get("/api/events/audit").body;
  for (auto it = log.rbegin(); it != log.rend(); ++it)
    if ((*it)["target_id"] == "idp-frank" || (*it)["target_id"] == "idp-carol")
      seen.push_back((*it)["activity_code"].get<std::string>());
  CHECK(joined(seen) == "user.join,user.group.add,user.group.add,user.join,user.approve");
}

TEST_CASE("accounts: the owner deletes the account: everything in it, its streams, its events") {
  test_idp idp;
  server s(storage::engine::sqlite, with_encryption_key(idp.config("delete")));
  rest_client owner{s.api_port, "Token " + s.pat};
  REQUIRE(put_settings(owner, s.account, false).status == 200);
  // Something of every kind: a group, a policy, a route, nameservers, a setup key and a peer of
  // Alice (an IdP user who joined), a service user with a token.
  auto g = owner.post("/api/groups", {{"name", "devs"}});
  REQUIRE(g.status == 200);
  const std::string gid = g.body["id"];
  REQUIRE(owner
              .post("/api/policies", {{"name", "web"},
                                      {"enabled", true},
                                      {"rules",
                                       {{{"name", "web"},
                                         {"enabled", true},
                                         {"action", "accept"},
                                         {"bidirectional", true},
                                         {"protocol", "all"},
                                         {"sources", {gid}},
                                         {"destinations", {gid}}}}}})
              .status == 200);
  rest_client alice{s.api_port, idp.bearer("idp-alice", "alice@corp.example")};
  REQUIRE(alice.get("/api/users/current").status == 200);
  const auto key = s.setup_key("--name k --reusable --auto-groups " + s.all_group);
  tools::peer_client laptop(s.target());
  REQUIRE(laptop.login(key, "laptop").ok());
  const auto lp = *s.peer_by_key(laptop.public_key_b64());
  make_user_peer(s, lp.id, "idp-alice", false);
  REQUIRE(owner
              .post("/api/routes", {{"description", "office"},
                                    {"network_id", "office"},
                                    {"enabled", true},
                                    {"peer", lp.id},
                                    {"network", "10.1.0.0/16"},
                                    {"metric", 100},
                                    {"masquerade", true},
                                    {"groups", {gid}}})
              .status == 200);
  REQUIRE(owner
              .post("/api/dns/nameservers",
                    {{"name", "corp"},
                     {"description", ""},
                     {"nameservers", {{{"ip", "10.0.0.53"}, {"ns_type", "udp"}, {"port", 53}}}},
                     {"enabled", true},
                     {"groups", {gid}},
                     {"primary", false},
                     {"domains", {"corp.example"}},
                     {"search_domains_enabled", true}})
              .status == 200);
  auto bot = owner.post("/api/users", {{"name", "bot"},
                                       {"role", "admin"},
                                       {"auto_groups", json::array()},
                                       {"is_service_user", true}});
  REQUIRE(bot.status == 200);
  const std::string bot_id = bot.body["id"];
  auto bt = owner.post("/api/users/" + bot_id + "/tokens", {{"name", "ci"}, {"expires_in", 1}});
  REQUIRE(bt.status == 200);
  rest_client robot{s.api_port, "Token " + bt.body["plain_token"].get<std::string>()};
  stream sl(laptop, "laptop");
  REQUIRE(sl.wait_maps(1, 5000ms));

  // Another account with a peer of its own, streaming.
  auto other = s.admin("account create --domain other.example --allow-duplicate-domain");
  const auto other_id = field(other, "account_id");
  rest_client stranger{s.api_port, "Token " + field(other, "personal_access_token")};
  auto ok = s.admin("setup-key create --account " + other_id + " --name o --reusable");
  tools::peer_client desk(s.target());
  REQUIRE(desk.login(field(ok, "setup_key"), "desk").ok());
  stream sd(desk, "desk");
  REQUIRE(sd.wait_maps(1, 5000ms));

  const auto mine = account_rows(s, s.account);
  const auto theirs = account_rows(s, other_id);
  for (const char* t :
       {"accounts", "users", "groups", "group_peers", "policies", "policy_rules", "setup_keys",
        "peers", "routes", "name_server_groups", "personal_access_tokens"})
    CHECK_MESSAGE(mine.at(t) > 0, t);
  const auto rules_total = count_rows(s, "policy_rules");
  const auto tokens_total = count_rows(s, "personal_access_tokens");

  // Refused, and nothing changes: another account's id (either way), an unknown id, anyone but
  // the owner (a regular user, an admin service user), no id.
  const std::string not_owner =
      "user is not allowed to delete account. Only account owner can delete account";
  check_rest_error(stranger.del("/api/accounts/" + s.account), 404,
                   "account not found: " + s.account);
  check_rest_error(owner.del("/api/accounts/" + other_id), 404, "account not found: " + other_id);
  check_rest_error(owner.del("/api/accounts/nope"), 404, "account not found: nope");
  check_rest_error(alice.del("/api/accounts/" + s.account), 403, not_owner);
  check_rest_error(robot.del("/api/accounts/" + s.account), 403, not_owner);
  check_rest_error(owner.del("/api/accounts"), 405, "method not allowed");
  CHECK(account_rows(s, s.account) == mine);
  CHECK(account_rows(s, other_id) == theirs);
  CHECK_FALSE(sl.finished.load());

  auto gone = owner.del("/api/accounts/" + s.account);
  REQUIRE_MESSAGE(gone.status == 200, gone.body.dump());
  CHECK(gone.body == json::object());
  // Its peer's stream ends at once; the other account's stays.
  CHECK(sl.wait_end(5000ms));
  CHECK_FALSE(sd.finished.load());
  // Not a row of it is left; the other account's are all there.
  for (const auto& [t, n] : account_rows(s, s.account))
    CHECK_MESSAGE(n == 0, t);
  CHECK(account_rows(s, other_id) == theirs);
  CHECK(count_rows(s, "policy_rules") == rules_total - mine.at("policy_rules"));
  CHECK(count_rows(s, "personal_access_tokens") ==
        tokens_total - mine.at("personal_access_tokens"));
  // Its tokens, its peer and its setup key are refused now; the other account works.
  check_rest_error(owner.get("/api/groups"), 401, "token invalid");
  check_rest_error(robot.get("/api/users/current"), 401, "token invalid");
  check_rest_error(owner.del("/api/accounts/" + s.account), 401, "token invalid");
  auto relogin = laptop.login("", "laptop");
  CHECK(relogin.code == grpc::StatusCode::PERMISSION_DENIED);
  auto reuse = laptop.login(key, "laptop");
  CHECK(reuse.code == grpc::StatusCode::NOT_FOUND);
  CHECK(reuse.message == "couldn't add peer: setup key is invalid");
  CHECK(stranger.get("/api/groups").status == 200);
  CHECK(occurrences(read_file(s.dir + "/server.log"),
                    "account " + s.account + ": deleted; its actor ends") == 1);

  // NetBird's events, once each: the service user, Alice's peer then Alice, the owner, the account.
  const auto check_log = [&] {
    const auto evs = stored_events(s, s.account);
    REQUIRE(evs.size() >= 5);
    const auto n = evs.size();
    std::multiset<std::string> tail;
    for (std::size_t i = n - 5; i < n; ++i)
      tail.insert(std::to_string(evs[i].activity) + " " + evs[i].initiator + " " + evs[i].target);
    CHECK(tail == std::multiset<std::string>{"44 " + s.owner + " " + bot_id, "5 idp-alice " + lp.id,
                                             "47 " + s.owner + " idp-alice",
                                             "47 " + s.owner + " " + s.owner,
                                             "99999 " + s.owner + " " + s.account});
    CHECK(evs[n - 1].activity == 99999);
    CHECK(evs[n - 1].meta["domain"] == "example.com");
    CHECK(evs[n - 1].meta["account_id"] == s.account);
    CHECK(evs[n - 2].target == s.owner); // the owner last of the users
    std::size_t peer_at = 0, alice_at = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (evs[i].activity == 5)
        peer_at = i;
      if (evs[i].activity == 47 && evs[i].target == "idp-alice")
        alice_at = i;
    }
    CHECK(peer_at < alice_at);
    CHECK(evs[peer_at].meta["name"] == "laptop");
    // A deleted user's name and email leave the meta for NetBird's deleted_users (encrypted).
    CHECK_FALSE(evs[alice_at].meta.contains("email"));
    int deleted_flag = 0;
    for (const auto& e : evs)
      deleted_flag += e.activity == 99999;
    CHECK(deleted_flag == 1);
    return n;
  };
  const auto logged = check_log();
  {
    soci::session sql;
    storage::open_session(sql, {storage::engine::sqlite, s.dir + "/events.db", 1});
    std::string email, algo;
    sql << "SELECT email, enc_algo FROM deleted_users WHERE id = 'idp-alice'", soci::into(email),
        soci::into(algo);
    CHECK(algo == "GCM");
    CHECK(!email.empty());
    CHECK(email.find("alice") == std::string::npos); // encrypted
  }

  // A restart: the account stays gone, its log stays as it was, the other account serves.
  sd.cancel();
  s.stop();
  s.start();
  owner.port = stranger.port = s.api_port;
  CHECK(count_rows(s, "accounts") == 1);
  check_rest_error(owner.get("/api/groups"), 401, "token invalid");
  CHECK(stranger.get("/api/groups").status == 200);
  CHECK(check_log() == logged);
}

TEST_CASE("accounts: an SSO login over gRPC: the JWT groups allow-list and sync, its event") {
  test_idp idp;
  server s(storage::engine::sqlite, idp.config("ssogroups"));
  rest_client owner{s.api_port, "Token " + s.pat};
  REQUIRE(
      owner
          .put("/api/accounts/" + s.account, {{"settings",
                                               {{"peer_login_expiration_enabled", true},
                                                {"peer_login_expiration", 3600},
                                                {"groups_propagation_enabled", true},
                                                {"jwt_groups_enabled", true},
                                                {"jwt_groups_claim_name", "groups"},
                                                {"jwt_allow_groups", {"netbird"}},
                                                {"extra", {{"user_approval_required", false}}}}}})
          .status == 200);
  // Frank joins over REST with one group; his laptop is his SSO peer, its login expired.
  rest_client frank{s.api_port,
                    idp.bearer("idp-frank", "frank@corp.example", {{"groups", {"netbird"}}})};
  REQUIRE(frank.get("/api/users/current").status == 200);
  rest_client eve{s.api_port, idp.bearer("idp-eve", "eve@corp.example", {{"groups", {"netbird"}}})};
  REQUIRE(eve.get("/api/users/current").status == 200);
  const auto key = s.setup_key("--name k --reusable --auto-groups " + s.all_group);
  tools::peer_client laptop(s.target());
  REQUIRE(laptop.login(key, "laptop").ok());
  const auto lp = *s.peer_by_key(laptop.public_key_b64());
  make_user_peer(s, lp.id, "idp-frank", true);
  REQUIRE(eventually([&] {
    return laptop.login("", "laptop").message == "peer login has expired, please log in once more";
  }));
  // The expiry marks it (and records so) on its own.
  REQUIRE(eventually(
      [&] {
        auto c = codes(owner);
        return !c.empty() && c.back() == "peer.login.expire";
      },
      10000ms));
  const auto log_before = codes(owner);
  const auto raw = [&](const std::string& sub, const json& groups) {
    return idp.bearer(sub, sub + "@corp.example", {{"groups", groups}}).substr(7);
  };

  // Refused, nothing renewed or recorded: outside the allow-list, another user's token, a token
  // the IdP did not sign.
  auto outside = laptop.login_jwt(raw("idp-frank", {"devs"}), "laptop");
  CHECK(outside.code == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(outside.message == "user does not belong to any of the allowed JWT groups");
  auto theirs = laptop.login_jwt(raw("idp-eve", {"netbird"}), "laptop");
  CHECK(theirs.code == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(theirs.message == "peer is not registered to the user of this token");
  auto forged = laptop.login_jwt("eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "laptop");
  CHECK(forged.code == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(laptop.login("", "laptop").code == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(codes(owner) == log_before);

  // The login: Frank's JWT groups become "netbird" and "ops" (created, issued "jwt"), his peer
  // joins them (groups propagation), the login is renewed and recorded once.
  auto in = laptop.login_jwt(raw("idp-frank", {"netbird", "ops"}), "laptop");
  REQUIRE_MESSAGE(in.ok(), in.message);
  std::map<std::string, std::string> group_ids;
  for (const auto& gr : owner.get("/api/groups").body)
    group_ids[gr["name"].get<std::string>()] = gr["id"].get<std::string>();
  REQUIRE(group_ids.count("ops"));
  json me;
  for (const auto& u : owner.get("/api/users").body)
    if (u["id"] == "idp-frank")
      me = u;
  CHECK(std::set<std::string>(me["auto_groups"].begin(), me["auto_groups"].end()) ==
        std::set<std::string>{group_ids["netbird"], group_ids["ops"]});
  // NetBird propagates the groups the user joined (not those it had) to the user's peers.
  long long in_ops = 0;
  {
    soci::session sql;
    storage::open_session(sql, s.db);
    sql << "SELECT COUNT(*) FROM group_peers WHERE peer_id = :p AND group_id = :g",
        soci::use(lp.id, "p"), soci::use(group_ids["ops"], "g"), soci::into(in_ops);
  }
  CHECK(in_ops == 1);
  // (the reply kept: a range-for over a member of a temporary's subscript would dangle)
  const auto groups_of_peer = [&] {
    std::set<std::string> out;
    const auto peer = owner.get("/api/peers/" + lp.id);
    for (const auto& gr : peer.body["groups"])
      out.insert(gr["name"].get<std::string>());
    return out;
  };
  auto peer_groups = groups_of_peer();
  CHECK(peer_groups.count("ops") == 1);
  CHECK(peer_groups.count("netbird") == 0);
  CHECK(laptop.login("", "laptop").ok());
  auto after = codes(owner);
  REQUIRE(after.size() == log_before.size() + 2);
  CHECK(after[after.size() - 2] == "user.group.add");
  CHECK(after.back() == "user.peer.login");
  const auto login = newest(owner, "user.peer.login");
  CHECK(login["initiator_id"] == "idp-frank");
  CHECK(login["target_id"] == lp.id);
  CHECK(login["meta"]["name"] == "laptop");
  CHECK(newest(owner, "user.group.add")["meta"]["group"] == "ops");

  // Again with the same groups, not expired: nothing to sync, nothing recorded.
  REQUIRE(laptop.login_jwt(raw("idp-frank", {"netbird", "ops"}), "laptop").ok());
  CHECK(codes(owner) == after);
  // Fewer groups: Frank leaves "ops" (the group stays), his peer too; no login event.
  REQUIRE(laptop.login_jwt(raw("idp-frank", {"netbird"}), "laptop").ok());
  auto last = codes(owner);
  REQUIRE(last.size() == after.size() + 1);
  CHECK(last.back() == "user.group.delete");
  peer_groups = groups_of_peer();
  CHECK(peer_groups.count("ops") == 0);

  // Dashboard logins (NetBird's "<audience>/nb_last_login" claim): the first stored, a newer one
  // recorded once, an older, a repeated or a malformed one nothing (and the request is served).
  const auto dashboard = [&](const std::string& when) {
    rest_client c{s.api_port,
                  idp.bearer("idp-frank", "frank@corp.example",
                             {{"groups", {"netbird"}}, {"netbird-dashboard/nb_last_login", when}})};
    return c.get("/api/users/current").status;
  };
  CHECK(dashboard("2030-01-01T10:00:00Z") == 200);
  CHECK(codes(owner) == last);
  CHECK(dashboard("2030-01-02T10:00:00.5+02:00") == 200);
  for (const char* bad : {"2030-01-01T09:00:00Z", "2030-01-02T10:00:00.5+02:00", "2030-13-45T99:00",
                          "yesterday", "2030-01-03 10:00:00Z"})
    CHECK(dashboard(bad) == 200);
  last.push_back("dashboard.login");
  CHECK(codes(owner) == last);
  const auto dash = newest(owner, "dashboard.login");
  CHECK(dash["initiator_id"] == "idp-frank");
  CHECK(dash["target_id"] == "idp-frank");
  CHECK(dash["meta"]["timestamp"] == "2030-01-02T10:00:00.5+02:00");

  // A restart keeps the log as it is.
  s.stop();
  s.start();
  owner.port = s.api_port;
  CHECK(codes(owner) == last);
}

TEST_CASE("accounts: the network range is kept or refused, never dropped; PATs of the CLI logged") {
  server s(storage::engine::sqlite);
  rest_client owner{s.api_port, "Token " + s.pat};
  const auto a = owner.get("/api/accounts").body[0];
  const std::string range = a["settings"]["network_range"];
  REQUIRE(range.size() > 8);
  const auto put = [&](const json& r) {
    return owner.put("/api/accounts/" + s.account,
                     {{"settings", {{"peer_login_expiration", 86400}, {"network_range", r}}}});
  };
  check_rest_error(put("10.10.0.0/16"), 422,
                   "changing the network range (re-allocating every peer's IP) is not available "
                   "on this server");
  check_rest_error(put("nonsense"), 422, "invalid CIDR format: nonsense");
  check_rest_error(put("fd00::/64"), 422, "network range must be an IPv4 address");
  CHECK(owner.get("/api/accounts").body[0] == a);
  // The range it has (as the dashboard sends it back), or none: accepted.
  CHECK(put(range).status == 200);
  CHECK(put("").status == 200);
  CHECK(owner.get("/api/accounts").body[0]["settings"]["network_range"] == range);

  // The CLI's tokens are in the log: the bootstrap token of `account create` and `token create`.
  CHECK(joined(codes(owner)) == "account.create,personal.access.token.create");
  auto made = s.admin("token create --user " + s.owner + " --name cli --expires-in 7");
  REQUIRE_MESSAGE(field(made, "personal_access_token").size() > 10, made);
  CHECK(joined(codes(owner)) ==
        "account.create,personal.access.token.create,personal.access.token.create");
  const auto pat = newest(owner, "personal.access.token.create");
  CHECK(pat["initiator_id"] == "sys");
  CHECK(pat["target_id"] == s.owner);
  CHECK(pat["meta"]["name"] == "cli");
  // A refused CLI command records nothing.
  s.admin("token create --user nobody --name x --expires-in 7");
  CHECK(codes(owner).size() == 3);
}

TEST_CASE("accounts on PostgreSQL: a delete ends the account's streams on every replica; "
          "first logins racing on two replicas make one account") {
  if (!have_pg())
    return;
  test_idp idp;
  server s(storage::engine::postgres, idp.config("pg-delete"));
  replica r(s);
  rest_client owner{s.api_port, "Token " + s.pat};
  const auto key = s.setup_key("--name k --reusable --auto-groups " + s.all_group);
  tools::peer_client laptop(r.target());
  REQUIRE(laptop.login(key, "laptop").ok());
  stream sl(laptop, "laptop"); // on the replica
  REQUIRE(sl.wait_maps(1, 5000ms));
  check_rest_error(rest_client{r.api_port, "Token " + s.pat}.del("/api/accounts/nope"), 404,
                   "account not found: nope");
  CHECK_FALSE(sl.finished.load());
  auto gone = owner.del("/api/accounts/" + s.account);
  REQUIRE_MESSAGE(gone.status == 200, gone.body.dump());
  // The replica learns of it from the cluster channel (its poll is 30 s away) and ends the stream.
  CHECK(sl.wait_end(5000ms));
  CHECK(count_rows(s, "accounts") == 0);
  check_rest_error(rest_client{r.api_port, "Token " + s.pat}.get("/api/groups"), 401,
                   "token invalid");

  // No account now, single-account mode on both replicas: eight IdP users log in for the first
  // time at once, half on each. One account is made; the others join it.
  std::vector<std::thread> logins;
  std::vector<int> statuses(8, 0);
  for (int i = 0; i < 8; ++i)
    logins.emplace_back([&, i] {
      rest_client c{i % 2 ? r.api_port : s.api_port,
                    idp.bearer("idp-racer-" + std::to_string(i),
                               "racer" + std::to_string(i) + "@corp.example")};
      statuses[static_cast<std::size_t>(i)] = c.get("/api/users/current").status;
    });
  for (auto& t : logins)
    t.join();
  for (int st : statuses) // the owner, or joined pending approval (NetBird's new accounts)
    CHECK((st == 200 || st == 403));
  CHECK(count_rows(s, "accounts") == 1);
  CHECK(count_rows(s, "users") == 8);
  long long owners = 0;
  {
    soci::session sql;
    storage::open_session(sql, s.db);
    sql << "SELECT COUNT(*) FROM users WHERE role = 'owner'", soci::into(owners);
  }
  CHECK(owners == 1);
}
