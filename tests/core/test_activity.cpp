// NetBird's activity log as pure functions (core/activity): codes, messages and string codes as
// NetBird names them, the events an admin change records and their meta; and NetBird's JWT groups
// (core/jwt_groups): the allow-list and the changes a login's groups claim causes.
#include "core/activity.hpp"
#include "core/jwt_groups.hpp"

#include <doctest/doctest.h>

using namespace nbm::core;

namespace {

account sample() {
  account a;
  a.id = "acc";
  user owner;
  owner.id = "owner";
  owner.role = "owner";
  user u;
  u.id = "u";
  u.role = "user";
  a.users = {owner, u};
  group all{"all", "acc", "All", "api", {"p1", "p2"}, {}};
  group dev{"dev", "acc", "dev", "api", {"p1"}, {}};
  a.groups = {all, dev};
  peer p1;
  p1.id = "p1";
  p1.name = "alpha";
  p1.dns_label = "alpha";
  p1.ip = "100.64.0.1";
  peer p2 = p1;
  p2.id = "p2";
  p2.name = "beta";
  p2.dns_label = "beta";
  p2.ip = "100.64.0.2";
  a.peers = {p1, p2};
  return a;
}

std::string text(const activity::meta& m, const std::string& key) {
  for (const auto& [k, v] : m)
    if (k == key)
      if (const auto* s = std::get_if<std::string>(&v))
        return *s;
  return "<absent>";
}

} // namespace

TEST_CASE("activity: NetBird's codes, messages and string codes") {
  CHECK(activity::group_updated == 17);
  CHECK(std::string(activity::message(17)) == "Group updated");
  CHECK(std::string(activity::string_code(17)) == "group.update");
  CHECK(std::string(activity::string_code(activity::peer_added_with_setup_key)) ==
        "peer.setupkey.add");
  CHECK(std::string(activity::string_code(activity::user_joined)) == "user.join");
  CHECK(std::string(activity::string_code(activity::account_deleted)) == "account.delete");
  CHECK(std::string(activity::string_code(activity::setup_key_deleted)) == "setupkey.delete");
  CHECK(std::string(activity::string_code(activity::user_approved)) == "user.approve");
  CHECK(std::string(activity::message(123456)) == "UNKNOWN_ACTIVITY");
  CHECK(std::string(activity::string_code(-1)) == "UNKNOWN_ACTIVITY");
}

TEST_CASE("activity: a group's update records its rename and its members, as NetBird") {
  const auto before = sample();
  auto after = before;
  after.groups[1].name = "developers";
  after.groups[1].peers = {"p2"};
  admin_change c{"owner", change::save_group{after.groups[1]}};
  const auto evs = activity::events_of(c, before, after, "", "nb.test");
  REQUIRE(evs.size() == 3);
  CHECK(evs[0].activity == activity::group_updated);
  CHECK(evs[0].target_id == "dev");
  CHECK(evs[0].initiator_id == "owner");
  CHECK(evs[0].account_id == "acc");
  CHECK(text(evs[0].m, "old_name") == "dev");
  CHECK(text(evs[0].m, "new_name") == "developers");
  CHECK(evs[1].activity == activity::group_added_to_peer);
  CHECK(evs[1].target_id == "p2");
  CHECK(text(evs[1].m, "peer_fqdn") == "beta.nb.test");
  CHECK(evs[2].activity == activity::group_removed_from_peer);
  CHECK(evs[2].target_id == "p1");
  // The same group saved unchanged records nothing.
  admin_change same{"owner", change::save_group{before.groups[1]}};
  CHECK(activity::events_of(same, before, before, "", "nb.test").empty());
}

TEST_CASE("activity: settings record what changed, in NetBird's order") {
  const auto before = sample();
  auto after = before;
  after.settings.lazy_connection_enabled = true;
  after.settings.peer_login_expiration_enabled = true;
  after.settings.peer_login_expiration_ns = 7200;
  admin_change c{"owner", change::settings{"acc", after.settings}};
  const auto evs = activity::events_of(c, before, after, "", "");
  REQUIRE(evs.size() == 3);
  CHECK(evs[0].activity == activity::account_lazy_connection_enabled);
  CHECK(evs[1].activity == activity::account_peer_login_expiration_enabled);
  CHECK(evs[2].activity == activity::account_peer_login_expiration_duration_updated);
  CHECK(evs[0].target_id == "acc");
}

TEST_CASE("activity: the difference of two accounts, as the admin CLI records it") {
  const auto before = sample();
  auto after = before;
  after.groups.push_back({"ops", "acc", "ops", "api", {}, {}});
  after.groups.erase(after.groups.begin() + 1); // dev deleted
  const auto evs = activity::events_of_diff(before, after, "sys", "");
  REQUIRE(evs.size() == 2);
  CHECK(evs[0].activity == activity::group_created);
  CHECK(text(evs[0].m, "name") == "ops");
  CHECK(evs[1].activity == activity::group_deleted);
  CHECK(evs[1].initiator_id == "sys");
  CHECK(activity::events_of_diff(before, before, "sys", "").empty());
}

TEST_CASE("activity: an account deleted by its owner, as NetBird's DeleteAccount records it") {
  auto before = sample();
  before.domain = "corp.example";
  before.created_at = "2026-01-02 03:04:05+00:00";
  before.users[1].name = "Ursula";
  before.users[1].email = "u@corp.example";
  user bot;
  bot.id = "bot";
  bot.is_service_user = true;
  bot.service_user_name = "ci";
  before.users.push_back(bot);
  before.peers[0].user_id = "u"; // alpha is u's peer; beta came with a setup key
  admin_change c{"owner", change::delete_account{"acc"}};
  REQUIRE_FALSE(prepare_change(before, c).has_value());
  const auto evs = activity::events_of(c, before, account{}, "", "nb.test");
  REQUIRE(evs.size() == 5);
  // The others first: u's peer (u as initiator), u, the service user; then the owner; then the
  // account.
  CHECK(evs[0].activity == activity::peer_removed_by_user);
  CHECK(evs[0].target_id == "p1");
  CHECK(evs[0].initiator_id == "u");
  CHECK(text(evs[0].m, "fqdn") == "alpha.nb.test");
  CHECK(evs[1].activity == activity::user_deleted);
  CHECK(evs[1].target_id == "u");
  CHECK(text(evs[1].m, "email") == "u@corp.example");
  CHECK(text(evs[1].m, "name") == "Ursula");
  CHECK(evs[2].activity == activity::service_user_deleted);
  CHECK(text(evs[2].m, "name") == "ci");
  CHECK(evs[3].activity == activity::user_deleted);
  CHECK(evs[3].target_id == "owner");
  CHECK(evs[4].activity == activity::account_deleted);
  CHECK(evs[4].target_id == "acc");
  CHECK(text(evs[4].m, "domain") == "corp.example");
  CHECK(text(evs[4].m, "created_at") == "2026-01-02 03:04:05+00:00");
  for (const auto& e : evs)
    CHECK(e.account_id == "acc");
  // Only the owner, and only its own account.
  admin_change by_user{"u", change::delete_account{"acc"}};
  const auto refused = prepare_change(before, by_user);
  REQUIRE(refused.has_value());
  CHECK(refused->status == 403);
  CHECK(refused->message ==
        "user is not allowed to delete account. Only account owner can delete account");
  admin_change other{"owner", change::delete_account{"other"}};
  CHECK(prepare_change(before, other)->status == 404);
  CHECK(prepare_change(before, other)->message == "account not found: other");
}

TEST_CASE("activity: a dashboard login is recorded when newer than a login before it") {
  auto before = sample();
  admin_change c{"u",
                 change::dashboard_login{"u", "2030-01-02 10:00:00+00:00", "2030-01-02T10:00:00Z"}};
  REQUIRE_FALSE(prepare_change(before, c).has_value());
  CHECK(activity::events_of(c, before, before, "", "").empty()); // never logged in before
  before.users[1].last_login = "2030-01-01 10:00:00+00:00";
  const auto evs = activity::events_of(c, before, before, "", "");
  REQUIRE(evs.size() == 1);
  CHECK(evs[0].activity == activity::dashboard_login);
  CHECK(evs[0].initiator_id == "u");
  CHECK(evs[0].target_id == "u");
  CHECK(text(evs[0].m, "timestamp") == "2030-01-02T10:00:00Z");
  before.users[1].last_login = "2030-01-03 10:00:00+00:00";
  CHECK(activity::events_of(c, before, before, "", "").empty()); // older than the one stored
  admin_change other{"owner", change::dashboard_login{"u", "2030-01-02 10:00:00+00:00", ""}};
  CHECK(prepare_change(before, other)->status == 403); // only the user itself
}

TEST_CASE("jwt groups: the allow-list, and what a login's groups change") {
  auto a = sample();
  a.settings.jwt_groups_enabled = true;
  CHECK(jwt_groups_allowed(a.settings, {}));
  a.settings.jwt_allow_groups = {"netbird"};
  CHECK_FALSE(jwt_groups_allowed(a.settings, {}));
  CHECK_FALSE(jwt_groups_allowed(a.settings, {"devs"}));
  CHECK(jwt_groups_allowed(a.settings, {"devs", "netbird"}));
  a.settings.jwt_groups_enabled = false; // the allow-list applies only with JWT groups on
  CHECK(jwt_groups_allowed(a.settings, {}));

  a.groups.push_back({"j1", "acc", "netbird", "jwt", {}, {}});
  a.users[1].auto_groups = {"dev", "j1"};
  const auto& u = a.users[1];
  CHECK_FALSE(jwt_groups_change(a, u, {"netbird"}));
  CHECK_FALSE(jwt_groups_change(a, u, {"netbird", "dev"})); // "dev" is the API's: never taken
  CHECK(jwt_groups_change(a, u, {"netbird", "fresh"}));
  CHECK(jwt_groups_change(a, u, {}));

  change::jwt_groups c;
  c.user_id = "u";
  c.names = {"netbird", "dev", "new", "new"};
  REQUIRE_FALSE(prepare_jwt_groups(a, u, c));
  CHECK(c.create == std::vector<std::string>{"new"});
  CHECK(c.add.empty()); // the API's "dev" is not taken over
  CHECK(c.remove.empty());
  CHECK(c.auto_groups == std::vector<std::string>{"dev", "j1"});
  change::jwt_groups drop;
  drop.user_id = "u";
  REQUIRE_FALSE(prepare_jwt_groups(a, u, drop));
  CHECK(drop.remove == std::vector<std::string>{"j1"});
  CHECK(drop.auto_groups == std::vector<std::string>{"dev"});
  // Only the user itself syncs its groups.
  auto other = c;
  other.user_id = "owner";
  CHECK(prepare_jwt_groups(a, u, other)->status == 403);
}
