// Bootstrapping without an IdP: accounts with owner and PAT, setup keys and their atomic use, the
// server's key pair shared by replicas — on SQLite and PostgreSQL.
#include "core/registration.hpp"
#include "crypto/crypto.hpp"
#include "storage/account_store.hpp"
#include "storage/admin_store.hpp"
#include "storage/event_store.hpp"
#include "storage/schema.hpp"
#include "tests/support/test_db.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <thread>

using namespace nbm;
using storage::admin_store;

namespace {

struct session_of {
  soci::session sql;
  explicit session_of(const storage::db_options& o) {
    storage::open_session(sql, o);
    storage::ensure_schema(sql, o.kind);
  }
};

} // namespace

TEST_CASE("admin: a new account has NetBird's defaults, an owner and a working PAT") {
  for (const auto& opts : test::fresh_backends("admin_account")) {
    INFO(test::backend_name(opts));
    session_of s(opts);
    admin_store admin(s.sql, opts.kind);
    auto made = admin.create_account({"example.com", "owner@example.com", "Owner", true, true, ""});
    CHECK(made.account_id.size() == 20);
    storage::account_store accounts(s.sql, opts.kind);
    auto a = accounts.load_account(made.account_id);
    REQUIRE(a.has_value());
    CHECK(a->domain == "example.com");
    CHECK(a->net.net == made.network);
    CHECK(a->net.net.rfind("100.", 0) == 0);
    const int second = std::stoi(a->net.net.substr(4));
    CHECK(second >= 64);
    CHECK(second < 128);
    CHECK(a->net.net.size() > 3);
    CHECK(a->net.net.substr(a->net.net.size() - 3) == "/16");
    CHECK(a->settings.peer_login_expiration_enabled);
    CHECK(a->settings.peer_login_expiration_ns == 86400000000000);
    CHECK_FALSE(a->settings.peer_inactivity_expiration_enabled);
    CHECK(a->settings.groups_propagation_enabled);
    CHECK(a->settings.lazy_connection_enabled);
    auto* all = a->find_group_by_name("All");
    REQUIRE(all != nullptr);
    CHECK(all->id == made.all_group_id);
    REQUIRE(a->policies.size() == 1);
    REQUIRE(a->policies[0].rules.size() == 1);
    const auto& rule = a->policies[0].rules[0];
    CHECK(rule.sources == std::vector<std::string>{made.all_group_id});
    CHECK(rule.destinations == std::vector<std::string>{made.all_group_id});
    CHECK(rule.bidirectional);
    CHECK(rule.action == "accept");
    CHECK(rule.protocol == "all");
    REQUIRE(a->users.size() == 1);
    CHECK(a->users[0].id == made.owner_user_id);
    CHECK(a->users[0].role == "owner");
    CHECK(a->users[0].email == "owner@example.com");
    REQUIRE(a->tokens.size() == 1);
    CHECK(crypto::pat_well_formed(made.pat));
    CHECK(a->tokens[0].hashed_token == crypto::sha256_base64(made.pat));
    CHECK(a->tokens[0].user_id == made.owner_user_id);

    auto bare = admin.create_account({"other.com", "", "", false, false, ""});
    auto b = accounts.load_account(bare.account_id);
    REQUIRE(b.has_value());
    CHECK(b->policies.empty());
    CHECK(b->tokens.empty());
    CHECK(bare.pat.empty());
  }
}

TEST_CASE("admin: setup keys are created, found by their plain text, used, revoked") {
  for (const auto& opts : test::fresh_backends("admin_keys")) {
    INFO(test::backend_name(opts));
    session_of s(opts);
    admin_store admin(s.sql, opts.kind);
    auto acc = admin.create_account({"example.com", "", "", true, false, ""});

    storage::new_setup_key one;
    one.account_id = acc.account_id;
    one.name = "laptop";
    one.auto_groups = {acc.all_group_id};
    one.ephemeral = true;
    auto [key, plain] = admin.create_setup_key(one);
    CHECK(key.type == "one-off");
    CHECK(key.usage_limit == 1);
    CHECK(key.key_secret == plain.substr(0, 5) + "****");
    CHECK(key.key == crypto::sha256_base64(plain));
    std::string lower = plain;
    for (auto& c : lower)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto found = admin.setup_key_by_plain(lower); // NetBird upper-cases what the peer sends
    REQUIRE(found.has_value());
    CHECK(found->id == key.id);
    CHECK(found->ephemeral);
    CHECK(found->auto_groups == std::vector<std::string>{acc.all_group_id});
    REQUIRE(found->expires_at.has_value());
    const double now = static_cast<double>(std::time(nullptr));
    CHECK(*core::parse_store_time(*found->expires_at) ==
          doctest::Approx(now + 30 * 24 * 3600).epsilon(1e-6));
    CHECK(core::check_setup_key(*found, now) == core::key_verdict::valid);
    CHECK_FALSE(admin.setup_key_by_plain("00000000-0000-4000-8000-000000000000").has_value());

    CHECK(admin.use_setup_key(key.id));
    CHECK_FALSE(admin.use_setup_key(key.id)); // one-off: used up
    auto after = admin.setup_key_by_plain(plain);
    CHECK(after->used_times == 1);
    CHECK(after->last_used.has_value());
    CHECK(core::check_setup_key(*after, now) == core::key_verdict::overused);

    storage::new_setup_key multi;
    multi.account_id = acc.account_id;
    multi.name = "fleet";
    multi.reusable = true;
    multi.usage_limit = 2;
    multi.expires_in_seconds = 0; // never expires
    auto [mkey, mplain] = admin.create_setup_key(multi);
    CHECK(admin.use_setup_key(mkey.id));
    CHECK(admin.use_setup_key(mkey.id));
    CHECK_FALSE(admin.use_setup_key(mkey.id));

    multi.usage_limit = 0; // unlimited
    auto [ukey, uplain] = admin.create_setup_key(multi);
    for (int i = 0; i < 5; ++i)
      CHECK(admin.use_setup_key(ukey.id));
    CHECK(admin.revoke_setup_key(acc.account_id, ukey.id));
    CHECK_FALSE(admin.use_setup_key(ukey.id)); // revoked
    CHECK(admin.setup_key_by_plain(uplain)->revoked);
    CHECK_FALSE(admin.revoke_setup_key("other-account", mkey.id));
    CHECK(admin.list_setup_keys(acc.account_id).size() == 3);

    one.auto_groups = {"no-such-group"};
    CHECK_THROWS_WITH_AS(admin.create_setup_key(one), doctest::Contains("no-such-group"),
                         storage::store_error);
    one.account_id = "no-such-account";
    CHECK_THROWS_AS(admin.create_setup_key(one), storage::store_error);
  }
}

TEST_CASE("admin: two peers racing for a one-off key -> exactly one wins") {
  for (const auto& opts : test::fresh_backends("admin_race")) {
    INFO(test::backend_name(opts));
    std::string key_id;
    {
      session_of s(opts);
      admin_store admin(s.sql, opts.kind);
      auto acc = admin.create_account({"example.com", "", "", true, false, ""});
      storage::new_setup_key k;
      k.account_id = acc.account_id;
      k.name = "once";
      key_id = admin.create_setup_key(k).first.id;
    }
    constexpr int n = 8;
    std::vector<std::unique_ptr<session_of>> sessions;
    for (int i = 0; i < n; ++i)
      sessions.push_back(std::make_unique<session_of>(opts));
    std::barrier start(n);
    std::atomic<int> wins{0}, errors{0};
    std::vector<std::thread> ths;
    for (int i = 0; i < n; ++i)
      ths.emplace_back([&, i] {
        admin_store admin(sessions[i]->sql, opts.kind);
        start.arrive_and_wait();
        try {
          wins += admin.use_setup_key(key_id);
        } catch (...) {
          ++errors;
        }
      });
    for (auto& t : ths)
      t.join();
    CHECK(errors == 0);
    CHECK(wins == 1);
  }
}

TEST_CASE(
    "server key: created once, the same for every replica and restart, sealed at rest when asked") {
  for (const auto& opts : test::fresh_backends("server_key")) {
    INFO(test::backend_name(opts));
    // Replicas starting together: every one gets the same pair.
    constexpr int n = 4;
    std::vector<std::string> pubs(n);
    std::vector<std::unique_ptr<session_of>> sessions;
    for (int i = 0; i < n; ++i)
      sessions.push_back(std::make_unique<session_of>(opts));
    std::barrier start(n);
    std::vector<std::thread> ths;
    std::atomic<int> errors{0};
    for (int i = 0; i < n; ++i)
      ths.emplace_back([&, i] {
        admin_store admin(sessions[i]->sql, opts.kind);
        start.arrive_and_wait();
        try {
          pubs[i] = admin.server_key_pair("").public_key;
        } catch (const std::exception& e) {
          MESSAGE(e.what());
          ++errors;
        }
      });
    for (auto& t : ths)
      t.join();
    CHECK(errors == 0);
    for (int i = 1; i < n; ++i)
      CHECK(pubs[i] == pubs[0]);
    CHECK(pubs[0].size() == 32);
    // The pair works for the envelope: a peer seals for the server, the server opens.
    admin_store admin(sessions[0]->sql, opts.kind);
    auto server = admin.server_key_pair("");
    auto peer = crypto::make_wg_key_pair();
    auto body = crypto::box_seal("hello", server.public_key, peer.private_key);
    CHECK(*crypto::box_open(body, peer.public_key, server.private_key) == "hello");
  }
  for (const auto& opts : test::fresh_backends("server_key_sealed")) {
    INFO(test::backend_name(opts));
    session_of s(opts);
    admin_store admin(s.sql, opts.kind);
    const std::string enc = crypto::base64_encode(std::string(32, '\x07'));
    auto kp = admin.server_key_pair(enc);
    std::string stored;
    s.sql << "SELECT private_key FROM netbird_mgmt_server_keys WHERE id = 1", soci::into(stored);
    CHECK(stored != crypto::base64_encode(kp.private_key)); // not in the clear
    CHECK(admin.server_key_pair(enc).private_key == kp.private_key);
    CHECK_THROWS_WITH_AS(admin.server_key_pair(crypto::base64_encode(std::string(32, 'x'))),
                         doctest::Contains("does not open"), storage::store_error);
    CHECK_THROWS_WITH_AS(admin.server_key_pair(""), doctest::Contains("no DataStoreEncryptionKey"),
                         storage::store_error);
    CHECK_THROWS_WITH_AS(admin.server_key_pair("not-base64!"), doctest::Contains("32 bytes"),
                         storage::store_error);
  }
}

TEST_CASE("admin: an account deleted takes every row of it along, and nothing of another") {
  for (const auto& opts : test::fresh_backends("admin_delete")) {
    INFO(test::backend_name(opts));
    session_of s(opts);
    admin_store admin(s.sql, opts.kind);
    storage::account_store accounts(s.sql, opts.kind);
    std::vector<std::string> ids;
    for (const char* domain : {"a.example", "b.example"}) {
      auto made =
          admin.create_account({domain, "owner@" + std::string(domain), "", true, true, ""});
      storage::new_setup_key k;
      k.account_id = made.account_id;
      k.name = "k";
      k.reusable = true;
      const auto key = admin.create_setup_key(k).first;
      core::peer p;
      p.id = crypto::random_id();
      p.account_id = made.account_id;
      p.key = crypto::base64_encode(crypto::make_wg_key_pair().public_key);
      p.ip = "100.64.0.7";
      p.dns_label = "peer";
      p.name = "peer";
      REQUIRE(admin.register_peer(p, {made.all_group_id}, key.id) ==
              admin_store::register_result::registered);
      ids.push_back(made.account_id);
    }
    const auto count = [&](const std::string& query, const std::string& id) {
      long long n = 0;
      s.sql << query, soci::use(id, "a"), soci::into(n);
      return n;
    };
    const auto rows = [&](const std::string& id) {
      long long n = 0;
      for (const char* t :
           {"users", "group_peers", "\"groups\"", "policies", "setup_keys", "peers"})
        n += count(std::string("SELECT COUNT(*) FROM ") + t + " WHERE account_id = :a", id);
      return n + count("SELECT COUNT(*) FROM accounts WHERE id = :a", id);
    };
    const auto b_before = rows(ids[1]);
    const auto b_account = accounts.load_account(ids[1]);
    long long tokens = 0, rules = 0;
    s.sql << "SELECT COUNT(*) FROM personal_access_tokens", soci::into(tokens);
    s.sql << "SELECT COUNT(*) FROM policy_rules", soci::into(rules);
    CHECK(rows(ids[0]) > 6);

    CHECK(admin.delete_account(ids[0]));
    CHECK_FALSE(accounts.load_account(ids[0]).has_value());
    CHECK(rows(ids[0]) == 0);
    long long tokens_after = 0, rules_after = 0;
    s.sql << "SELECT COUNT(*) FROM personal_access_tokens", soci::into(tokens_after);
    s.sql << "SELECT COUNT(*) FROM policy_rules", soci::into(rules_after);
    CHECK(tokens_after == tokens - 1);
    CHECK(rules_after == rules - 1);
    CHECK(rows(ids[1]) == b_before);
    CHECK(accounts.load_account(ids[1]) == b_account);
    // A second delete, or an unknown account: nothing (false).
    CHECK_FALSE(admin.delete_account(ids[0]));
    CHECK_FALSE(admin.delete_account("nope"));
  }
}

TEST_CASE("events: a deleted user's name and email kept encrypted, as NetBird's deleted_users") {
  for (const auto& opts : test::fresh_backends("events_deleted")) {
    INFO(test::backend_name(opts));
    session_of s(opts);
    const std::string key = "X4kQ0yVh1H8m1pmRq3nH8V1dBu9Z9vF2Xr6x3fXc2Ws=";
    storage::event_store events(s.sql, opts.kind, key);
    events.ensure_schema();
    core::activity::event del;
    del.activity = core::activity::user_deleted;
    del.initiator_id = "owner";
    del.target_id = "dave";
    del.account_id = "acc";
    del.m = {{"name", std::string("Dave")},
             {"email", std::string("dave@corp.example")},
             {"issued", std::string("api")}};
    core::activity::event by_dave;
    by_dave.activity = core::activity::group_created;
    by_dave.initiator_id = "dave";
    by_dave.target_id = "g1";
    by_dave.account_id = "acc";
    by_dave.m = {{"name", std::string("devs")}};
    events.append({by_dave, del});
    std::string stored_meta, email, algo;
    s.sql << "SELECT meta FROM events WHERE target_id = 'dave'", soci::into(stored_meta);
    CHECK(stored_meta == R"({"issued":"api"})");
    s.sql << "SELECT email, enc_algo FROM deleted_users WHERE id = 'dave'", soci::into(email),
        soci::into(algo);
    CHECK(algo == "GCM");
    CHECK(crypto::field_decrypt(email, *crypto::base64_decode(key)) ==
          std::optional<std::string>("dave@corp.example"));
    const auto text = [](const core::activity::meta& m, const std::string& k) {
      for (const auto& [name, v] : m)
        if (name == k)
          return std::get<std::string>(v);
      return std::string("<absent>");
    };
    auto got = events.list("acc", 0, 10, false);
    REQUIRE(got.size() == 2);
    CHECK(got[0].initiator_name == "Dave"); // a deleted initiator
    CHECK(got[0].initiator_email == "dave@corp.example");
    CHECK(text(got[1].m, "username") == "Dave"); // a deleted target
    CHECK(text(got[1].m, "email") == "dave@corp.example");
    // Another key cannot read them: NetBird's fallbacks.
    got = storage::event_store(s.sql, opts.kind, crypto::base64_encode(std::string(32, 'x')))
              .list("acc", 0, 10, false);
    CHECK(got[0].initiator_name == "unknown");
    CHECK(text(got[1].m, "email") == "unknown@unknown.com");
    // Without a key the name and email stay in the meta (nothing goes to deleted_users).
    storage::event_store plain(s.sql, opts.kind);
    del.target_id = "erin";
    plain.append({del});
    long long n = 0;
    s.sql << "SELECT COUNT(*) FROM deleted_users WHERE id = 'erin'", soci::into(n);
    CHECK(n == 0);
    s.sql << "SELECT meta FROM events WHERE target_id = 'erin'", soci::into(stored_meta);
    CHECK(nlohmann::json::parse(stored_meta)["email"] == "dave@corp.example");
  }
}

namespace {

// A peer as the account actor hands it to register_peers: every written field set.
core::peer batch_peer(const std::string& account_id, int i) {
  core::peer p;
  p.id = crypto::random_id();
  p.account_id = account_id;
  p.key = crypto::base64_encode(crypto::make_wg_key_pair().public_key);
  p.ip = "100.64.0." + std::to_string(10 + i);
  p.dns_label = "host-" + std::to_string(i);
  p.name = "host " + std::to_string(i);
  p.ssh_key = "ssh-ed25519 AAAA" + std::to_string(i);
  p.ssh_enabled = i % 2 == 0;
  p.login_expiration_enabled = i % 2 == 1;
  p.ephemeral = i == 2;
  p.extra_dns_labels = {"extra-" + std::to_string(i)};
  p.meta.hostname = p.name;
  p.meta.go_os = "linux";
  p.meta.kernel = "Linux";
  p.meta.os = "Debian \"bookworm\"";
  p.meta.wt_version = "0.36.0";
  p.meta.system_serial_number = "Ser\\ial " + std::to_string(i);
  p.meta.network_addresses_json =
      R"([{"NetIP":"10.0.0.)" + std::to_string(i) + R"(/24","Mac":""}])";
  p.meta.capabilities_json = i == 0 ? "" : "[1,2]";
  // Times as store_time() writes them (Go's layout), with and without trailing fraction digits.
  p.last_login = i % 3 == 0   ? storage::store_time()
                 : i % 3 == 1 ? "2026-11-30 08:00:00.25+00:00"
                              : "2026-11-30 08:00:01+00:00";
  return p;
}

std::uint64_t serial_of(soci::session& sql, const std::string& account_id) {
  long long serial = 0;
  sql << "SELECT network_serial FROM accounts WHERE id = :a", soci::use(account_id, "a"),
      soci::into(serial);
  return static_cast<std::uint64_t>(serial);
}

bool contains_peer(const core::account& a, const std::string& peer_id) {
  const auto& members = a.find_group_by_name("All")->peers;
  return std::find(members.begin(), members.end(), peer_id) != members.end();
}

long long used_times(soci::session& sql, const std::string& key_id) {
  long long n = 0;
  sql << "SELECT used_times FROM setup_keys WHERE id = :k", soci::use(key_id, "k"), soci::into(n);
  return n;
}

} // namespace

TEST_CASE("admin: a batch of registrations lands in one go, or row by row when one cannot") {
  using rr = admin_store::register_result;
  for (const auto& opts : test::fresh_backends("admin_batch")) {
    INFO(test::backend_name(opts));
    session_of s(opts);
    admin_store admin(s.sql, opts.kind);
    storage::account_store accounts(s.sql, opts.kind);
    auto bulk = admin.create_account({"bulk.example", "", "", true, false, ""});
    auto key_for = [&](const std::string& account_id, bool reusable, std::int64_t limit) {
      storage::new_setup_key k;
      k.account_id = account_id;
      k.name = "k";
      k.reusable = reusable;
      k.usage_limit = limit;
      return admin.create_setup_key(k).first.id;
    };
    const auto bulk_key = key_for(bulk.account_id, true, 0);

    // Three peers in one batch (one INSERT per table): stored exactly as the account actor holds
    // them without reading them back (created and last seen at their login time).
    std::vector<admin_store::registration> batch;
    for (int i = 0; i < 3; ++i)
      batch.push_back({batch_peer(bulk.account_id, i), {bulk.all_group_id}, bulk_key});
    const auto bulk_serial = serial_of(s.sql, bulk.account_id);
    std::uint64_t serial_after = 0;
    CHECK(admin.register_peers(bulk.account_id, batch, serial_after) ==
          std::vector<rr>(3, rr::registered));
    CHECK(serial_after == bulk_serial + 3);
    CHECK(used_times(s.sql, bulk_key) == 3);
    const auto a = accounts.load_account(bulk.account_id);
    REQUIRE(a);
    REQUIRE(a->peers.size() == 3);
    CHECK(a->find_group_by_name("All")->peers.size() == 3);
    for (const auto& r : batch) {
      auto want = r.peer;
      want.created_at = want.last_login;
      want.status.last_seen = want.last_login;
      const auto* got = a->find_peer(want.id);
      REQUIRE(got);
      CHECK(*got == want);
      CHECK(contains_peer(*a, want.id));
    }

    // A one-off key used twice in a batch: the first row lands, the second is refused.
    const auto once = key_for(bulk.account_id, false, 0);
    batch.clear();
    for (int i = 3; i < 5; ++i)
      batch.push_back({batch_peer(bulk.account_id, i), {bulk.all_group_id}, once});
    CHECK(admin.register_peers(bulk.account_id, batch, serial_after) ==
          std::vector<rr>{rr::registered, rr::key_refused});
    CHECK(serial_after == bulk_serial + 4);
    CHECK(used_times(s.sql, once) == 1);

    // A key with 1 use left among 2 rows: as many land as the key allows.
    const auto limited = key_for(bulk.account_id, true, 3);
    batch.clear();
    for (int i = 5; i < 7; ++i)
      batch.push_back({batch_peer(bulk.account_id, i), {bulk.all_group_id}, limited});
    CHECK(admin.register_peers(bulk.account_id, batch, serial_after) ==
          std::vector<rr>(2, rr::registered));
    batch.clear();
    for (int i = 7; i < 9; ++i)
      batch.push_back({batch_peer(bulk.account_id, i), {bulk.all_group_id}, limited});
    CHECK(admin.register_peers(bulk.account_id, batch, serial_after) ==
          std::vector<rr>{rr::registered, rr::key_refused});
    CHECK(used_times(s.sql, limited) == 3);

    // A row whose WireGuard key is taken (another replica registered it): only it conflicts, the
    // others land, and the key counts only the uses that landed.
    const auto taken = accounts.load_account(bulk.account_id)->peers.front().key;
    batch.clear();
    for (int i = 9; i < 12; ++i)
      batch.push_back({batch_peer(bulk.account_id, i), {bulk.all_group_id}, bulk_key});
    batch[1].peer.key = taken;
    const auto before = serial_of(s.sql, bulk.account_id);
    CHECK(admin.register_peers(bulk.account_id, batch, serial_after) ==
          std::vector<rr>{rr::registered, rr::conflict, rr::registered});
    CHECK(serial_after == before + 2);
    CHECK(used_times(s.sql, bulk_key) == 5);
    const auto after = accounts.load_account(bulk.account_id);
    CHECK(after->peers.size() == 9);
    CHECK(after->find_group_by_name("All")->peers.size() == 9);
  }
}
