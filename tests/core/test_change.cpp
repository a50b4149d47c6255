// Admin changes as typed values: core::prepare_change decides them against an account as NetBird's
// handlers do (rights, existence, references, names), refuses with NetBird's status and message,
// and completes what a change derives. The account is never touched: a refusal loses nothing.
#include "core/change.hpp"

#include <doctest/doctest.h>

using namespace nbm::core;

namespace {

account sample() {
  account a;
  a.id = "acc";
  a.net.net = "100.64.0.0/16";
  user owner;
  owner.id = "owner";
  owner.account_id = "acc";
  owner.role = "owner";
  user admin = owner;
  admin.id = "admin";
  admin.role = "admin";
  user regular = owner;
  regular.id = "regular";
  regular.role = "user";
  user svc = owner;
  svc.id = "svc";
  svc.role = "user";
  svc.is_service_user = true;
  user blocked = owner;
  blocked.id = "blocked";
  blocked.blocked = true;
  a.users = {owner, admin, regular, svc, blocked};
  group all;
  all.id = "all";
  all.name = "All";
  group dev;
  dev.id = "dev";
  dev.name = "dev";
  peer p1;
  p1.id = "p1";
  p1.name = "one";
  p1.dns_label = "one";
  p1.ip = "100.64.0.5";
  peer p2 = p1;
  p2.id = "p2";
  p2.name = "two";
  p2.dns_label = "two";
  p2.ip = "100.64.1.7";
  p2.user_id = "regular";
  a.peers = {p1, p2};
  all.peers = {"p1", "p2"};
  a.groups = {all, dev};
  setup_key k;
  k.id = "key";
  k.revoked = true;
  a.setup_keys = {k};
  personal_access_token t;
  t.id = "tok";
  t.user_id = "svc";
  a.tokens = {t};
  return a;
}

verdict run(const account& a, const std::string& caller, change_kind what) {
  admin_change c{caller, std::move(what)};
  return prepare_change(a, c);
}

void refused(const verdict& v, int status, const std::string& message) {
  REQUIRE(v);
  CHECK(v->status == status);
  CHECK(v->message == message);
}

} // namespace

TEST_CASE("admin changes: the caller must be a user of the account, not blocked") {
  const auto a = sample();
  refused(run(a, "stranger", change::delete_group{"dev"}), 401, "token invalid");
  refused(run(a, "blocked", change::delete_group{"dev"}), 401, "token invalid");
  CHECK_FALSE(run(a, "admin", change::delete_group{"dev"}));
}

TEST_CASE("admin changes: a regular user changes nothing of the account's objects") {
  const auto a = sample();
  group g;
  g.name = "new";
  refused(run(a, "regular", change::save_group{g}), 403, "permission denied");
  refused(run(a, "regular", change::delete_policy{"x"}), 403, "permission denied");
  refused(run(a, "regular", change::dns_settings{{}}), 403, "permission denied");
  refused(run(a, "regular", change::create_setup_key{}), 403, "permission denied");
  // Someone else's peer does not exist for a regular user; its own peer it may not change either.
  refused(run(a, "regular", change::delete_peer{"p1"}), 404, "peer not found: p1");
  refused(run(a, "regular", change::delete_peer{"p2"}), 403, "permission denied");
  // Tokens: its own only.
  refused(run(a, "regular", change::delete_token{"svc", "tok"}), 403,
          "no permission to manage tokens of this user");
}

TEST_CASE("admin changes: objects that are not there, references that do not resolve") {
  const auto a = sample();
  refused(run(a, "admin", change::delete_policy{"nope"}), 404, "policy: nope not found");
  refused(run(a, "admin", change::delete_route{"nope"}), 404, "route: nope not found");
  refused(run(a, "admin", change::delete_nameservers{"nope"}), 404,
          "nameserver group: nope not found");
  refused(run(a, "admin", change::delete_setup_key{"nope"}), 404, "setup key: nope not found");
  refused(run(a, "admin", change::delete_user{"nope"}), 404, "user: nope not found");
  refused(run(a, "admin", change::delete_token{"svc", "nope"}), 404, "PAT: nope not found");
  refused(run(a, "admin", change::dns_settings{{"ghost"}}), 422, "group ghost not found");
  refused(run(a, "admin", change::settings{"other", {}}), 404, "account not found: other");
  refused(run(a, "admin", change::update_setup_key{"key", false, {}}), 422,
          "can't un-revoke a revoked setup key");
  change::create_setup_key k;
  k.auto_groups = {"all"};
  refused(run(a, "admin", k), 422, "can't add 'All' group to the setup key");
  k.auto_groups = {"ghost"};
  refused(run(a, "admin", k), 422, "invalid auto groups: group ghost not found");
  group all;
  all.id = "all";
  all.name = "everyone";
  refused(run(a, "admin", change::save_group{all}), 422, "updating group ALL is not allowed");
  refused(run(a, "admin", change::delete_group{"all"}), 400, "deleting group ALL is not allowed");
  group dup;
  dup.name = "dev";
  refused(run(a, "admin", change::save_group{dup}), 409, "group with name dev already exists");
}

TEST_CASE("admin changes: users keep their own role and the owner's") {
  const auto a = sample();
  change::update_user self;
  self.id = "admin";
  self.blocked = true;
  refused(run(a, "admin", self), 422, "unable to block own user");
  self.blocked.reset();
  self.role = "user";
  refused(run(a, "admin", self), 403, "admins can't change their own role");
  change::update_user owner;
  owner.id = "owner";
  owner.role = "admin";
  refused(run(a, "admin", owner), 403, "only an owner can change an owner's role");
  refused(run(a, "admin", change::delete_user{"admin"}), 422, "self deletion is not allowed");
  refused(run(a, "admin", change::delete_user{"owner"}), 403,
          "unable to delete a user with owner role");
  change::create_user u;
  u.id = "new";
  u.role = "user";
  refused(run(a, "admin", u), 412, "IdP manager must be enabled to send user invites");
  u.is_service_user = true;
  u.auto_groups = {"ghost"};
  refused(run(a, "admin", u), 422, "group ghost not found");
  u.auto_groups = {"dev"};
  CHECK_FALSE(run(a, "admin", u));
  u.id = "svc"; // taken
  refused(run(a, "admin", u), 409, "an object with this id already exists");
}

TEST_CASE(
    "admin changes: what a change derives is filled in; a refusal leaves the change as given") {
  const auto a = sample();
  // A rename takes a label another peer holds: the label gets the address's last two octets.
  change::update_peer rename;
  rename.id = "p2";
  rename.name = "one";
  admin_change c{"admin", rename};
  REQUIRE_FALSE(prepare_change(a, c));
  const auto& done = std::get<change::update_peer>(c.what).result;
  CHECK(done.id == "p2");
  CHECK(done.name == "one");
  CHECK(done.dns_label == "one-1-7");
  // Expiration only for peers a user added.
  change::update_peer expire;
  expire.id = "p1";
  expire.login_expiration_enabled = true;
  admin_change e{"admin", expire};
  refused(prepare_change(a, e), 412,
          "this peer hasn't been added with the SSO login, therefore the login expiration can't "
          "be updated");
  CHECK(std::get<change::update_peer>(e.what).result.id.empty()); // nothing derived
  change::update_peer empty;
  empty.id = "p1";
  empty.name = "";
  refused(run(a, "admin", empty), 422, "peer name shouldn't be empty");
  // An update of a group keeps what the API does not send.
  account with_resources = a;
  with_resources.groups[1].issued = "jwt";
  with_resources.groups[1].resources = {{"r1", "host"}};
  group dev;
  dev.id = "dev";
  dev.name = "developers";
  dev.peers = {"p1"};
  admin_change g{"admin", change::save_group{dev}};
  REQUIRE_FALSE(prepare_change(with_resources, g));
  const auto& kept = std::get<change::save_group>(g.what).g;
  CHECK(kept.issued == "jwt");
  REQUIRE(kept.resources.size() == 1);
  CHECK(kept.account_id == "acc");
  dev.peers = {"ghost"};
  refused(run(a, "admin", change::save_group{dev}), 422, "peer with ID ghost not found");
}

TEST_CASE("admin changes: which move the serial; what a vanished object is called") {
  CHECK(moves_serial({"x", change::delete_group{"g"}}));
  CHECK(moves_serial({"x", change::update_peer{}}));
  CHECK(moves_serial({"x", change::settings{}}));
  CHECK_FALSE(moves_serial({"x", change::create_setup_key{}}));
  CHECK_FALSE(moves_serial({"x", change::update_user{}}));
  CHECK_FALSE(moves_serial({"x", change::delete_token{}}));
  CHECK(not_found_problem({"x", change::delete_route{"r"}}).message == "route: r not found");
  change::update_peer gone;
  gone.id = "p";
  CHECK(not_found_problem({"x", gone}).message == "peer not found: p");
  CHECK(not_found_problem({"x", change::delete_route{std::string(100, 'r')}}).message ==
        "route: " + std::string(64, 'r') + "... not found");
}
