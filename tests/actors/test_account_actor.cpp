// Account actors against real SQLite and PostgreSQL stores: the first map of a landed session,
// fan-out of exactly the maps a change alters (k of n), nothing for plain connects and
// disconnects, reloads when the store's serial moves, a deleted peer's stream ends, an older
// session never receives a newer session's maps, and admins' mutations run inside the actor.
#include "storage/config_store.hpp"
#include "tests/support/actor_rig.hpp"
#include "tests/support/test_db.hpp"
#include "tests/support/wait.hpp"

#include <caf/all.hpp>
#include <doctest/doctest.h>
#include <soci/soci.h>

#include <algorithm>
#include <mutex>

using namespace nbm;
using namespace nbm::actors;

namespace {

// Records every map it is handed (and wakes NBM_WAIT_UNTIL).
struct map_sink : session_sink {
  std::mutex mu;
  std::vector<std::pair<map_update_ptr, bool>> maps;
  int closes = 0;
  void close(const std::string&) override {
    {
      std::lock_guard<std::mutex> lk(mu);
      ++closes;
    }
    test::changed();
  }
  void deliver(map_update_ptr u, bool initial) override {
    {
      std::lock_guard<std::mutex> lk(mu);
      maps.emplace_back(std::move(u), initial);
    }
    test::changed();
  }
  std::size_t count() {
    std::lock_guard<std::mutex> lk(mu);
    return maps.size();
  }
  int closed() {
    std::lock_guard<std::mutex> lk(mu);
    return closes;
  }
  std::pair<map_update_ptr, bool> last() {
    std::lock_guard<std::mutex> lk(mu);
    REQUIRE_FALSE(maps.empty());
    return maps.back();
  }
  // Ids of the peers the last map lists as reachable.
  std::vector<std::string> remote_ids() {
    auto [u, initial] = last();
    std::vector<std::string> out;
    for (auto i : u->map.remote_peers)
      out.push_back(u->change->view->acc().peers[i].id);
    std::sort(out.begin(), out.end());
    return out;
  }
};

core::peer make_peer(const std::string& account, const std::string& id, int n) {
  core::peer p;
  p.id = id;
  p.account_id = account;
  p.key = "key-" + id;
  p.ip = "100.64.0." + std::to_string(n);
  p.name = id;
  p.dns_label = id;
  p.meta.hostname = id;
  p.meta.wt_version = "0.60.0";
  return p;
}

struct world : test::account_world {
  using account_world::account_world;
  // A peer in the store, in All and `groups`; returns it.
  core::peer add_peer(const std::string& id, int n, const std::vector<std::string>& groups = {}) {
    auto p = make_peer(account, id, n);
    accounts().insert_peer(p);
    accounts().add_group_peer(account, all_group, id);
    for (const auto& g : groups)
      accounts().add_group_peer(account, g, id);
    bump();
    return p;
  }
  std::uint64_t bump() {
    *sql << "UPDATE accounts SET network_serial = network_serial + 1 WHERE id = :id",
        soci::use(account);
    return serial();
  }
  // The store's serial of the account.
  std::uint64_t serial() {
    long long s = 0;
    *sql << "SELECT network_serial FROM accounts WHERE id = :id", soci::into(s), soci::use(account);
    return static_cast<std::uint64_t>(s);
  }
  void drop_policies() {
    *sql << "DELETE FROM policy_rules WHERE policy_id IN (SELECT id FROM policies WHERE "
            "account_id = :a)",
        soci::use(account);
    *sql << "DELETE FROM policies WHERE account_id = :a", soci::use(account);
  }
  std::string add_group(const std::string& id, const std::vector<std::string>& members) {
    core::group g;
    g.id = id;
    g.account_id = account;
    g.name = id;
    g.issued = "api";
    g.peers = members;
    accounts().insert_group(g);
    return id;
  }
  // An accept-all bidirectional policy between two groups.
  void add_policy(const std::string& id, const std::string& src, const std::string& dst) {
    core::policy p;
    p.id = id;
    p.account_id = account;
    p.name = id;
    p.enabled = true;
    core::policy_rule r;
    r.id = id + "-rule";
    r.policy_id = id;
    r.name = id;
    r.enabled = true;
    r.bidirectional = true;
    r.action = "accept";
    r.protocol = "all";
    r.sources = {src};
    r.destinations = {dst};
    p.rules.push_back(r);
    accounts().insert_policy(p);
  }
};

struct rig : test::actor_rig {
  using actor_rig::actor_rig;
  bool connect(const peer_actor& p, session_token t, sink_ptr s) {
    return ask(p, connect_atom::value, t, std::move(s));
  }
  bool disconnect(const peer_actor& p, session_token t) { return ask(p, disconn_atom::value, t); }
  account_state_record status(const account_actor& a) {
    return record_of<account_state_record>(ask(a, status_atom::value));
  }
  // Until everything sent so far ran, by markers rather than time: a status request queues behind
  // every message already in an actor's mailbox (a request the account actor awaits holds it back
  // until that work is done), so its answer says they were handled. Each round covers one more
  // hop; the longest chain here has two: the account actor's flush to itself, then the peer
  // actors' deliveries to their sinks. (An attach comes from a peer actor after its write landed:
  // wait for its first map instead.)
  void settle(const account_actor& a, const std::vector<peer_actor>& peers) {
    for (int i = 0; i < 3; ++i) {
      status(a);
      for (const auto& p : peers)
        ask(p, status_atom::value);
    }
  }
};

using ids = std::vector<std::string>;

} // namespace

TEST_CASE("account actor: a landed session gets its first map; a new peer reaches exactly the "
          "peers it changes; plain connects send nothing") {
  for (const auto& opts : test::fresh_backends("acct_first")) {
    INFO(test::backend_name(opts));
    world w(opts); // the default policy: All <-> All
    w.add_peer("pa", 1);
    w.add_peer("pb", 2);
    w.add_peer("pc", 3);
    rig r(opts);
    auto acc = r.account(w.account);
    auto a = r.peer(w.account, "pa"), b = r.peer(w.account, "pb"), c = r.peer(w.account, "pc");
    auto sa = std::make_shared<map_sink>(), sb = std::make_shared<map_sink>();
    REQUIRE(r.connect(a, 10, sa));
    NBM_WAIT_UNTIL(sa->count() == 1);
    CHECK(sa->last().second);                   // initial
    CHECK(sa->remote_ids() == ids{"pb", "pc"}); // a disconnected peer is still in the map
    REQUIRE(r.connect(b, 11, sb));
    NBM_WAIT_UNTIL(sb->count() == 1);
    CHECK(sb->remote_ids() == ids{"pa", "pc"});
    r.settle(acc, {a, b});
    CHECK(sa->count() == 1); // b's connect changed no map

    // c connects and disconnects: nobody hears of it.
    auto sc = std::make_shared<map_sink>();
    REQUIRE(r.connect(c, 12, sc));
    NBM_WAIT_UNTIL(sc->count() == 1);
    REQUIRE(r.disconnect(c, 12));
    r.settle(acc, {a, b, c});
    CHECK(sa->count() == 1);
    CHECK(sb->count() == 1);
    CHECK(r.status(acc).connected == 2);

    // A registration (committed first) reaches both connected peers, once each.
    auto pd = w.add_peer("pd", 4);
    const auto serial = w.serial(); // add_peer's write, the only one since the actor read

    caf::anon_send(acc, added_atom::value, pd, std::vector<std::string>{w.all_group}, serial);
    NBM_WAIT_UNTIL(sa->count() == 2 && sb->count() == 2);
    r.settle(acc, {a, b});
    CHECK(sa->count() == 2);
    CHECK(sb->count() == 2);
    CHECK_FALSE(sa->last().second);
    CHECK(sa->remote_ids() == ids{"pb", "pc", "pd"});
    CHECK(sa->last().first->map.serial == serial);
    const auto st = r.status(acc);
    CHECK(st.maps_sent == 5); // 3 initial + 2 for the registration
    CHECK(st.peers == 4);
  }
}

TEST_CASE("account actor: a change that alters k of n maps sends exactly k maps") {
  for (const auto& opts : test::fresh_backends("acct_kofn")) {
    INFO(test::backend_name(opts));
    world w(opts);
    w.drop_policies();
    w.add_group("g1", {});
    w.add_group("g2", {});
    w.add_policy("pol1", "g1", "g1");
    w.add_policy("pol2", "g2", "g2");
    for (int i = 0; i < 6; ++i)
      w.add_peer("p" + std::to_string(i), 10 + i, {i < 3 ? "g1" : "g2"});
    rig r(opts);
    auto acc = r.account(w.account);
    std::vector<peer_actor> peers;
    std::vector<std::shared_ptr<map_sink>> sinks;
    for (int i = 0; i < 6; ++i) {
      peers.push_back(r.peer(w.account, "p" + std::to_string(i)));
      sinks.push_back(std::make_shared<map_sink>());
      REQUIRE(r.connect(peers.back(), 100 + i, sinks.back()));
    }
    NBM_WAIT_UNTIL(
        std::all_of(sinks.begin(), sinks.end(), [](auto& s) { return s->count() == 1; }));
    CHECK(sinks[0]->remote_ids() == ids{"p1", "p2"});
    CHECK(sinks[4]->remote_ids() == ids{"p3", "p5"});
    const auto before = r.status(acc).maps_sent;

    // A new peer in g2: the maps of p3..p5 change, p0..p2 see nothing.
    auto p6 = w.add_peer("p6", 20, {"g2"});
    caf::anon_send(acc, added_atom::value, p6, std::vector<std::string>{w.all_group, "g2"},
                   w.serial());
    NBM_WAIT_UNTIL(sinks[3]->count() == 2);
    r.settle(acc, peers);
    for (int i = 0; i < 3; ++i)
      CHECK(sinks[i]->count() == 1);
    for (int i = 3; i < 6; ++i) {
      CHECK(sinks[i]->count() == 2);
      CHECK(sinks[i]->remote_ids().back() == "p6");
    }
    CHECK(r.status(acc).maps_sent == before + 3);

    // A policy made in the store by another process (g1 -> g2), noticed by the serial: every map
    // changes (g1 now reaches g2's peers and the reverse), each exactly once more.
    w.add_policy("pol3", "g1", "g2");
    const auto s = w.bump();
    caf::anon_send(acc, serial_atom::value, s);
    NBM_WAIT_UNTIL(sinks[0]->count() == 2 && sinks[5]->count() == 3);
    r.settle(acc, peers);
    for (int i = 0; i < 3; ++i)
      CHECK(sinks[i]->count() == 2);
    for (int i = 3; i < 6; ++i)
      CHECK(sinks[i]->count() == 3);
    CHECK(sinks[0]->remote_ids() == ids{"p1", "p2", "p3", "p4", "p5", "p6"});
    CHECK(r.status(acc).reloads == 1);
    // The same serial again: nothing to reload.
    caf::anon_send(acc, serial_atom::value, s);
    r.settle(acc, peers);
    CHECK(r.status(acc).reloads == 1);
  }
}

TEST_CASE("account actor: a newer session takes the maps; a deleted peer's stream ends") {
  for (const auto& opts : test::fresh_backends("acct_sessions")) {
    INFO(test::backend_name(opts));
    world w(opts);
    w.add_peer("pa", 1);
    w.add_peer("pb", 2);
    rig r(opts);
    auto acc = r.account(w.account);
    auto a = r.peer(w.account, "pa"), b = r.peer(w.account, "pb");
    auto old_sink = std::make_shared<map_sink>(), new_sink = std::make_shared<map_sink>();
    auto sb = std::make_shared<map_sink>();
    REQUIRE(r.connect(a, 100, old_sink));
    NBM_WAIT_UNTIL(old_sink->count() == 1);
    REQUIRE(r.connect(a, 200, new_sink));
    NBM_WAIT_UNTIL(new_sink->count() == 1);
    CHECK(new_sink->last().second); // the new session's own first map
    CHECK(old_sink->closed() == 1);
    REQUIRE(r.connect(b, 300, sb));
    NBM_WAIT_UNTIL(sb->count() == 1);
    // The old stream ends late: its disconnect is dropped, the new session keeps its maps.
    CHECK_FALSE(r.disconnect(a, 100));
    auto pc = w.add_peer("pc", 3);
    caf::anon_send(acc, added_atom::value, pc, std::vector<std::string>{w.all_group}, w.serial());
    NBM_WAIT_UNTIL(new_sink->count() == 2);
    r.settle(acc, {a, b});
    CHECK(old_sink->count() == 1);
    CHECK(new_sink->remote_ids() == ids{"pb", "pc"});

    // b is deleted (committed): its stream ends, a's map loses it.
    // The serial that write left is the one after the account's: taken without a read.
    const auto reloads = r.status(acc).reloads;
    std::uint64_t after = 0;
    REQUIRE(storage::admin_store(*w.sql, opts.kind).delete_peer(w.account, "pb", &after));
    caf::anon_send(acc, deleted_atom::value, std::string("pb"), after);
    NBM_WAIT_UNTIL(new_sink->count() == 3);
    NBM_WAIT_UNTIL(sb->closed() == 1);
    CHECK(new_sink->remote_ids() == ids{"pc"});
    r.settle(acc, {a});
    const auto st = r.status(acc);
    CHECK(st.connected == 1);
    CHECK(st.serial == after);
    CHECK(st.reloads == reloads);
  }
}

TEST_CASE("account actor: an admin change is decided on the account it holds, committed, held "
          "and fanned out; a refused one changes nothing; a store ahead of it is read first") {
  for (const auto& opts : test::fresh_backends("acct_change")) {
    INFO(test::backend_name(opts));
    world w(opts);
    w.drop_policies();
    w.add_group("g1", {});
    w.add_policy("pol1", "g1", "g1");
    w.add_peer("p0", 10, {"g1"});
    w.add_peer("p1", 11, {"g1"});
    w.add_peer("p2", 12);
    const auto owner = w.accounts().load_account(w.account)->users.at(0).id;
    const auto change = [&](core::change_kind what) {
      return std::make_shared<core::admin_change>(core::admin_change{owner, std::move(what)});
    };
    rig r(opts);
    auto acc = r.account(w.account);
    std::vector<peer_actor> peers;
    std::vector<std::shared_ptr<map_sink>> sinks;
    for (int i = 0; i < 3; ++i) {
      peers.push_back(r.peer(w.account, "p" + std::to_string(i)));
      sinks.push_back(std::make_shared<map_sink>());
      REQUIRE(r.connect(peers.back(), 100 + i, sinks.back()));
    }
    NBM_WAIT_UNTIL(
        std::all_of(sinks.begin(), sinks.end(), [](auto& s) { return s->count() == 1; }));
    CHECK(sinks[2]->remote_ids().empty());
    const auto serial0 = r.ask(acc, snapshot_atom::value, std::uint64_t{0})->net.serial;

    // p2 joins g1: a typed change, as the REST API hands it over.
    core::group g1;
    g1.id = "g1";
    g1.name = "g1";
    g1.peers = {"p0", "p1", "p2"};
    auto joined = r.ask(acc, change_atom::value, change(core::change::save_group{g1}));
    REQUIRE_FALSE(joined.refused);
    REQUIRE(joined.failure == store_failure::none);
    REQUIRE(joined.after);
    CHECK(joined.id == "g1");
    CHECK(joined.after->net.serial == serial0 + 1);
    const auto stored = *w.accounts().load_account(w.account);
    CHECK(joined.after->groups == stored.groups); // what the actor holds is what was committed
    CHECK(joined.after->net.serial == stored.net.serial);
    NBM_WAIT_UNTIL(sinks[2]->count() == 2);
    CHECK(sinks[2]->remote_ids() == ids{"p0", "p1"});
    NBM_WAIT_UNTIL(sinks[0]->count() == 2);
    CHECK(sinks[0]->remote_ids() == ids{"p1", "p2"});

    // Refused changes: NetBird's status and message come back, nothing moved, nobody gets a map.
    core::group clash;
    clash.name = "g1"; // a new group with a taken name
    auto refused = r.ask(acc, change_atom::value, change(core::change::save_group{clash}));
    REQUIRE(refused.refused);
    CHECK(refused.refused->status == 409);
    CHECK(refused.refused->message == "group with name g1 already exists");
    CHECK_FALSE(refused.after);
    auto gone = r.ask(acc, change_atom::value, change(core::change::delete_policy{"nope"}));
    REQUIRE(gone.refused);
    CHECK(gone.refused->status == 404);
    CHECK(gone.refused->message == "policy: nope not found");
    auto linked = r.ask(acc, change_atom::value, change(core::change::delete_group{"g1"}));
    REQUIRE(linked.refused);
    CHECK(linked.refused->status == 400);
    auto stranger = std::make_shared<core::admin_change>(
        core::admin_change{"no-such-user", core::change::delete_peer{"p0"}});
    auto denied = r.ask(acc, change_atom::value, stranger);
    REQUIRE(denied.refused);
    CHECK(denied.refused->status == 401);
    const auto after_refusals = *w.accounts().load_account(w.account);
    CHECK(after_refusals.net.serial == joined.after->net.serial);
    CHECK(after_refusals.groups == stored.groups);
    CHECK(after_refusals.peers.size() == 3);
    r.settle(acc, peers);
    for (auto& s : sinks)
      CHECK(s->count() == 2);

    // Another process changed the store (the actor does not poll here): the next change is
    // decided on the account as stored (g9 exists only there), and readers get it too.
    w.add_group("g9", {"p0"});
    const auto moved = w.bump();
    auto dropped = r.ask(acc, change_atom::value, change(core::change::delete_group{"g9"}));
    REQUIRE_FALSE(dropped.refused);
    REQUIRE(dropped.after);
    CHECK(dropped.after->net.serial == moved + 1);
    CHECK(std::none_of(dropped.after->groups.begin(), dropped.after->groups.end(),
                       [](const core::group& x) { return x.id == "g9"; }));
    CHECK(r.ask(acc, snapshot_atom::value, moved + 1)->net.serial == moved + 1);
    w.add_group("g10", {});
    const auto moved2 = w.bump();
    auto read = r.ask(acc, read_atom::value, read_request{});
    REQUIRE(read.acc);
    CHECK(read.acc->net.serial == moved2);
    CHECK(std::any_of(read.acc->groups.begin(), read.acc->groups.end(),
                      [](const core::group& x) { return x.id == "g10"; }));

    // Another process changes the account before a change that moves no serial (a user): the
    // actor ends up with both, not with the user alone.
    w.add_group("g11", {});
    w.bump();
    core::change::create_user u;
    u.id = "svc-user";
    u.role = "user";
    u.name = "svc";
    u.is_service_user = true;
    auto both = r.ask(acc, change_atom::value, change(u));
    REQUIRE_FALSE(both.refused);
    REQUIRE(both.after);
    CHECK(std::any_of(both.after->users.begin(), both.after->users.end(),
                      [](const core::user& x) { return x.id == "svc-user"; }));
    CHECK(std::any_of(both.after->groups.begin(), both.after->groups.end(),
                      [](const core::group& x) { return x.id == "g11"; }));
    CHECK(both.after->groups == w.accounts().load_account(w.account)->groups);

    // Principals moved in the store without the serial (as when a token or setup key is used): a
    // read has them read again, and the actor keeps that account, so the next read answers with
    // it as it is rather than with another copy of the whole account.
    *w.sql << "UPDATE users SET name = 'seen-again' WHERE id = 'svc-user'";
    auto first = r.ask(acc, read_atom::value, read_request{});
    REQUIRE(first.acc);
    CHECK(first.acc != both.after);
    CHECK(std::any_of(first.acc->users.begin(), first.acc->users.end(),
                      [](const core::user& x) { return x.name == "seen-again"; }));
    auto second = r.ask(acc, read_atom::value, read_request{});
    CHECK(second.acc == first.acc);

    // A peer's update is applied in memory (its status stays), a deletion ends its stream.
    core::change::update_peer rename;
    rename.id = "p1";
    rename.name = "renamed";
    auto renamed = r.ask(acc, change_atom::value, change(rename));
    REQUIRE_FALSE(renamed.refused);
    REQUIRE(renamed.after->find_peer("p1"));
    CHECK(renamed.after->find_peer("p1")->name == "renamed");
    CHECK(renamed.after->find_peer("p1")->dns_label == "renamed");
    CHECK(w.accounts().peer_by_id(w.account, "p1")->dns_label == "renamed");
    auto deleted = r.ask(acc, change_atom::value, change(core::change::delete_peer{"p2"}));
    REQUIRE_FALSE(deleted.refused);
    CHECK_FALSE(deleted.after->find_peer("p2"));
    CHECK_FALSE(w.accounts().peer_by_id(w.account, "p2"));
  }
}

TEST_CASE("account actor: a change applied in memory equals the store; one another writer's "
          "commit joined is read back whole") {
  // SQLite: a trigger stands in for another writer committing inside the change's transaction.
  const auto opts = test::fresh_store(storage::engine::sqlite, "acct_apply");
  world w(opts);
  w.add_group("g1", {});
  w.add_peer("p0", 10, {"g1"});
  w.add_peer("p1", 11);
  const auto owner = w.accounts().load_account(w.account)->users.at(0).id;
  const auto change = [&](core::change_kind what) {
    return std::make_shared<core::admin_change>(core::admin_change{owner, std::move(what)});
  };
  rig r(opts);
  auto acc = r.account(w.account);
  const auto serial0 = r.ask(acc, snapshot_atom::value, std::uint64_t{0})->net.serial;

  // Ours alone: applied in memory, and what the store holds.
  core::group g1;
  g1.id = "g1";
  g1.name = "first";
  g1.peers = {"p1", "p0", "p1"};
  auto applied = r.ask(acc, change_atom::value, change(core::change::save_group{g1}));
  REQUIRE_FALSE(applied.refused);
  REQUIRE(applied.after);
  auto stored = *w.accounts().load_account(w.account);
  CHECK(applied.after->net.serial == serial0 + 1);
  CHECK(applied.after->net.serial == stored.net.serial);
  CHECK(applied.after->groups == stored.groups);
  CHECK(applied.after->policies == stored.policies);

  // Another writer's group and serial bump land in the same commit: the serial after it is two
  // ahead, so the actor gets the account as stored, the other group included.
  *w.sql << "CREATE TRIGGER other_writer AFTER UPDATE ON groups WHEN NEW.id = 'g1' BEGIN "
            "INSERT INTO groups (id, account_id, name, issued, resources) VALUES ('g-other', "
            "NEW.account_id, 'other', 'api', '[]'); UPDATE accounts SET network_serial = "
            "network_serial + 1 WHERE id = NEW.account_id; END";
  g1.name = "renamed";
  auto joined = r.ask(acc, change_atom::value, change(core::change::save_group{g1}));
  REQUIRE_FALSE(joined.refused);
  REQUIRE(joined.after);
  stored = *w.accounts().load_account(w.account);
  CHECK(stored.net.serial == serial0 + 3);
  CHECK(joined.after->net.serial == stored.net.serial);
  CHECK(joined.after->groups == stored.groups);
  CHECK(std::any_of(joined.after->groups.begin(), joined.after->groups.end(),
                    [](const core::group& x) { return x.id == "g-other"; }));
}
