// The wire's one door (actors/wire_facade) over the real directory, account, peer and status
// writer actors and a real store, on CAF's deterministic scheduler: nothing runs until the test
// runs the scheduler, and then in the order messages were sent, so every interleaving a test
// names is the one that runs. Sync ordering (supersede, connect-then-die at every step,
// disconnect after a newer connect), registrations through the door (one key twice, two keys
// racing for the last IP), a known key's Sync decided without the store workers, the meta of a
// Sync written only after its connect landed, Logout (store and memory, the stream ends), and a
// passed deadline answered UNAVAILABLE.
#include "actors/login_service.hpp"
#include "actors/wire_facade_make.hpp"
#include "storage/admin_store.hpp"
#include "tests/support/actor_rig.hpp"
#include "tests/support/det_ask.hpp"
#include "tests/support/peer_rows.hpp"
#include "tests/support/test_db.hpp"

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <doctest/doctest.h>
#include <soci/soci.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <set>

using namespace nbm;
using namespace nbm::actors;

namespace {

// A stream's far end: the maps it got and whether it was closed.
struct test_sink : session_sink {
  std::vector<bool> maps; // initial?
  std::vector<std::string> closes;
  void close(const std::string& reason) override { closes.push_back(reason); }
  void deliver(map_update_ptr, bool initial) override { maps.push_back(initial); }
};

// The server's actors on the test coordinator, the store workers as ordinary actors (their SQL
// runs when the scheduler runs them), and the facade the gRPC layer calls.
struct door_rig {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  status_writer writer;
  account_loader loader;
  login_service login;
  peer_directory dir;
  std::unique_ptr<wire_facade> door;

  explicit door_rig(const storage::db_options& db) {
    cfg.set("scheduler.policy", caf::atom("testing"));
    sys = std::make_unique<caf::actor_system>(cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
    status_writer_config wc;
    wc.db = db;
    wc.detached = false;
    writer = spawn_status_writer(*sys, wc);
    loader_config lc;
    lc.db = db;
    lc.poll_interval = std::chrono::milliseconds(0);
    lc.detached = false;
    loader = spawn_account_loader(*sys, lc);
    login_service_config sc;
    sc.db = db;
    sc.detached = false;
    login = spawn_login_service(*sys, sc);
    directory_config dc;
    dc.writer = writer;
    dc.loader = loader;
    dc.login = login;
    dir = spawn_peer_directory(*sys, dc);
    door = make_wire_facade(*sys, caf::actor_cast<caf::actor>(dir), std::chrono::seconds(20));
    sched->run();
  }
  ~door_rig() {
    door.reset();
    caf::anon_send_exit(dir, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(writer, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(loader, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(login, caf::exit_reason::user_shutdown);
    sched->run();
    dir = peer_directory{};
    writer = status_writer{};
    loader = account_loader{};
    login = login_service{};
    sys.reset();
  }

  struct stream {
    std::shared_ptr<test_sink> sink = std::make_shared<test_sink>();
    sync_session_ptr session;
    std::shared_ptr<std::optional<sync_answer>> answer =
        std::make_shared<std::optional<sync_answer>>();
  };
  // Opens a Sync of `key` with `token` (it runs when the scheduler runs).
  stream sync(const std::string& key, session_token token, const core::peer_meta* meta = nullptr) {
    stream s;
    sync_open open;
    open.wg_key = key;
    if (meta) {
      open.has_meta = true;
      open.meta = *meta;
    }
    auto out = s.answer;
    s.session = door->sync(open, token, s.sink, [out](sync_answer a) {
      REQUIRE_FALSE(out->has_value()); // answered exactly once
      *out = std::move(a);
    });
    return s;
  }
  void end(const stream& s) { door->stream_end(s.session); }

  std::shared_ptr<std::optional<peer_view>>
  login_peer(const std::string& key, const std::string& hostname, const std::string& setup_key) {
    auto out = std::make_shared<std::optional<peer_view>>();
    login_request req;
    req.wg_key = key;
    req.setup_key = setup_key;
    req.has_meta = true;
    req.meta.hostname = hostname;
    req.meta.wt_version = "0.60.0";
    door->login(req, [out](peer_view v) {
      REQUIRE_FALSE(out->has_value());
      *out = std::move(v);
    });
    return out;
  }

  std::shared_ptr<std::optional<peer_view>> logout(const std::string& key) {
    auto out = std::make_shared<std::optional<peer_view>>();
    door->logout(key, [out](peer_view v) {
      REQUIRE_FALSE(out->has_value()); // answered exactly once
      *out = std::move(v);
    });
    return out;
  }

  template <class R, class Handle, class... Ts>
  R ask(const Handle& h, Ts... xs) {
    return test::det_ask<R>(*sys, *sched, h, xs...);
  }
  peer_state_record peer_state(const std::string& account, const std::string& id) {
    auto p = ask<peer_actor>(dir, find_peer_atom::value, account, id);
    return record_of<peer_state_record>(ask<actor_status>(p, status_atom::value));
  }
};

struct world : test::account_world {
  std::string plain_key; // a reusable setup key, in plain text
  explicit world(storage::db_options o) : account_world(std::move(o)) {
    storage::new_setup_key spec;
    spec.account_id = account;
    spec.name = "k";
    spec.reusable = true;
    auto made = storage::admin_store(*sql, db.kind).create_setup_key(spec);
    plain_key = made.second;
  }
  // A registered peer with key "key-<id>".
  core::peer add_peer(const std::string& id, int n) {
    core::peer p;
    p.id = id;
    p.account_id = account;
    p.key = "key-" + id;
    p.ip = "100.64.0." + std::to_string(n);
    p.name = id;
    p.dns_label = id;
    p.meta.hostname = id;
    p.meta.wt_version = "0.60.0";
    accounts().insert_peer(p);
    accounts().add_group_peer(account, all_group, id);
    *sql << "UPDATE accounts SET network_serial = network_serial + 1 WHERE id = :id",
        soci::use(account);
    return p;
  }
  std::string stored_hostname(const std::string& id) {
    std::string h;
    *sql << "SELECT meta_hostname FROM peers WHERE id = :id", soci::into(h), soci::use(id);
    return h;
  }
  std::uint64_t stored_serial() {
    long long n = 0;
    *sql << "SELECT network_serial FROM accounts WHERE id = :a", soci::into(n), soci::use(account);
    return static_cast<std::uint64_t>(n);
  }
  std::size_t stored_memberships(const std::string& peer) {
    int n = 0;
    *sql << "SELECT COUNT(*) FROM group_peers WHERE peer_id = :p", soci::into(n), soci::use(peer);
    return static_cast<std::size_t>(n);
  }
  std::size_t stored_peers() {
    int n = 0;
    *sql << "SELECT COUNT(*) FROM peers WHERE account_id = :a", soci::into(n), soci::use(account);
    return static_cast<std::size_t>(n);
  }
};

} // namespace

TEST_CASE("door: a newer Sync supersedes an older one; the older stream's end changes nothing") {
  for (const auto& opts : test::fresh_backends("door_supersede")) {
    INFO(test::backend_name(opts));
    world w(opts);
    w.add_peer("pa", 1);
    door_rig r(opts);
    auto first = r.sync("key-pa", 1000);
    r.sched->run();
    REQUIRE(first.answer->has_value());
    CHECK((*first.answer)->code == 0);
    CHECK((*first.answer)->owns);
    CHECK(first.sink->maps == std::vector<bool>{true}); // its first map, initial
    CHECK(test::read_status(opts, "pa").token == 1000);

    auto second = r.sync("key-pa", 2000);
    r.sched->run();
    REQUIRE(second.answer->has_value());
    CHECK((*second.answer)->owns);
    CHECK(first.sink->closes.size() == 1); // the older stream ends
    CHECK(second.sink->maps == std::vector<bool>{true});
    // The older stream's end arrives after the newer connect: dropped in memory, the store keeps
    // the newer session connected.
    r.end(first);
    r.sched->run();
    auto st = test::read_status(opts, "pa");
    CHECK(st.connected);
    CHECK(st.token == 2000);
    CHECK(r.peer_state(w.account, "pa").token == 2000);
    CHECK(r.peer_state(w.account, "pa").has_sink);

    // An older token arriving late never takes over.
    auto late = r.sync("key-pa", 1500);
    r.sched->run();
    REQUIRE(late.answer->has_value());
    CHECK((*late.answer)->code == wire_aborted);
    CHECK(test::read_status(opts, "pa").token == 2000);
    CHECK(second.sink->closes.empty());
  }
}

TEST_CASE("door: a stream that connects and dies, at every step of its Sync, ends disconnected") {
  for (const auto& opts : test::fresh_backends("door_die")) {
    INFO(test::backend_name(opts));
    world w(opts);
    // How many scheduler steps a whole Sync takes, measured on a peer of its own.
    w.add_peer("probe", 1);
    constexpr int peers = 24;
    for (int k = 0; k < peers; ++k)
      w.add_peer("d" + std::to_string(k), 10 + k);
    door_rig r(opts);
    {
      auto warm = r.sync("key-probe", 10); // loads the account: the steps below are the hot path
      r.sched->run();
      REQUIRE(warm.answer->has_value());
      r.end(warm);
      r.sched->run();
    }
    auto probe = r.sync("key-probe", 20);
    int steps = 0;
    while (r.sched->try_run_once())
      ++steps;
    REQUIRE((*probe.answer)->owns);
    r.end(probe);
    r.sched->run();
    REQUIRE(steps > 3);
    REQUIRE(steps < peers);
    // The stream ends after k steps, for every k from before the first step to after the last.
    for (int k = 0; k <= steps; ++k) {
      CAPTURE(k);
      const std::string id = "d" + std::to_string(k);
      auto s = r.sync("key-" + id, 100 + k);
      for (int i = 0; i < k; ++i)
        r.sched->try_run_once();
      r.end(s);
      r.sched->run();
      REQUIRE(s.answer->has_value()); // answered, whichever step the end came at
      const auto st = test::read_status(opts, id);
      CHECK_FALSE(st.connected);
      CHECK(r.peer_state(w.account, id).token == 0);
      CHECK_FALSE(r.peer_state(w.account, id).has_sink);
    }
  }
}

TEST_CASE("door: a disconnect after a newer connect (same peer, two streams) leaves the newer") {
  for (const auto& opts : test::fresh_backends("door_newer")) {
    INFO(test::backend_name(opts));
    world w(opts);
    w.add_peer("pn", 1);
    door_rig r(opts);
    // Both streams open before anything runs; the older one ends right after the newer opened.
    auto older = r.sync("key-pn", 1000);
    auto newer = r.sync("key-pn", 2000);
    r.end(older);
    r.sched->run();
    REQUIRE(newer.answer->has_value());
    CHECK((*newer.answer)->owns);
    auto st = test::read_status(opts, "pn");
    CHECK(st.connected);
    CHECK(st.token == 2000);
    CHECK(newer.sink->maps == std::vector<bool>{true});
    CHECK(newer.sink->closes.empty());
    // The newer one ends: disconnected, fenced on its own token.
    r.end(newer);
    r.sched->run();
    st = test::read_status(opts, "pn");
    CHECK_FALSE(st.connected);
  }
}

TEST_CASE("door: two Logins registering one key make one peer; two keys racing for the last IP "
          "get distinct ones") {
  for (const auto& opts : test::fresh_backends("door_register")) {
    INFO(test::backend_name(opts));
    world w(opts);
    const std::string net = R"({"IP":"100.78.0.0","Mask":"/////A=="})"; // a /30: two hosts
    *w.sql << "UPDATE accounts SET network_net = :n WHERE id = :id", soci::use(net),
        soci::use(w.account);
    door_rig r(opts);
    auto a1 = r.login_peer("wg-one", "one", w.plain_key);
    auto a2 = r.login_peer("wg-one", "one", w.plain_key);
    r.sched->run();
    REQUIRE(a1->has_value());
    REQUIRE(a2->has_value());
    CHECK((*a1)->code == 0);
    CHECK((*a2)->code == 0);
    CHECK((*a1)->peer.id == (*a2)->peer.id);
    CHECK((*a1)->registered != (*a2)->registered); // one registered it, the other logged in
    CHECK(w.stored_peers() == 1);

    // One address left: two new keys race for it; one gets it, the other is refused.
    auto b = r.login_peer("wg-two", "two", w.plain_key);
    auto c = r.login_peer("wg-three", "three", w.plain_key);
    r.sched->run();
    REQUIRE(b->has_value());
    REQUIRE(c->has_value());
    std::set<int> codes{(*b)->code, (*c)->code};
    CHECK(codes == std::set<int>{0, 9}); // OK and FAILED_PRECONDITION (out of IPs)
    const auto& won = (*b)->code == 0 ? **b : **c;
    CHECK(won.peer.ip != (*a1)->peer.ip);
    CHECK(w.stored_peers() == 2);

    // The registered keys are known to the door now: a Login of one is answered from memory.
    auto again = r.login_peer("wg-one", "one", "");
    r.sched->run();
    REQUIRE(again->has_value());
    CHECK((*again)->code == 0);
    CHECK((*again)->peer.id == (*a1)->peer.id);
  }
}

TEST_CASE("door: a known key's Sync lands with the store workers gone; an unknown key needs them") {
  for (const auto& opts : test::fresh_backends("door_no_store")) {
    INFO(test::backend_name(opts));
    world w(opts);
    w.add_peer("pk", 1);
    w.add_peer("pl", 2);
    door_rig r(opts);
    // The first Sync of the account: its key is looked up in the store, the account read.
    auto first = r.sync("key-pk", 1000);
    r.sched->run();
    REQUIRE((*first.answer)->owns);
    // Now the login service and the account loader (every store reader of the Sync path) are
    // gone: a request to either fails. Only the status writer (the fence) is left.
    caf::anon_send_exit(r.login, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(r.loader, caf::exit_reason::user_shutdown);
    r.sched->run();
    // A peer of the account that never synced here: decided from memory, fenced, first map.
    auto other = r.sync("key-pl", 2000);
    r.sched->run();
    REQUIRE(other.answer->has_value());
    CHECK((*other.answer)->code == 0);
    CHECK((*other.answer)->owns);
    CHECK(other.sink->maps == std::vector<bool>{true});
    CHECK(test::read_status(opts, "pl").connected);
    // A known key again, with a newer stream.
    auto again = r.sync("key-pk", 3000);
    r.sched->run();
    CHECK((*again.answer)->owns);
    CHECK(first.sink->closes.size() == 1);
    // A key this replica never saw needs the store: without it, a clear error, not a refusal.
    auto unknown = r.sync("key-nobody", 4000);
    r.sched->run();
    REQUIRE(unknown.answer->has_value());
    CHECK_FALSE((*unknown.answer)->owns);
    CHECK((*unknown.answer)->code != 0);
    CHECK((*unknown.answer)->message != "peer is not registered");
  }
}

TEST_CASE("door: a key this replica never saw is looked up in the store before any refusal") {
  for (const auto& opts : test::fresh_backends("door_unknown")) {
    INFO(test::backend_name(opts));
    world w(opts);
    w.add_peer("pu", 1);
    door_rig r(opts);
    auto known = r.sync("key-pu", 1000); // the account is loaded, its keys known
    r.sched->run();
    REQUIRE((*known.answer)->owns);
    // Another replica registers a peer behind this one's back.
    w.add_peer("pv", 2);
    auto fresh = r.sync("key-pv", 2000);
    r.sched->run();
    REQUIRE(fresh.answer->has_value());
    CHECK((*fresh.answer)->code == 0);
    CHECK((*fresh.answer)->owns);
    CHECK(fresh.sink->maps == std::vector<bool>{true});
    // Nobody's key: refused as NetBird refuses it.
    auto nobody = r.sync("key-nobody", 3000);
    r.sched->run();
    REQUIRE(nobody.answer->has_value());
    CHECK((*nobody.answer)->code == 7); // PERMISSION_DENIED
    CHECK((*nobody.answer)->message == "peer is not registered");
  }
}

TEST_CASE("door: the meta a Sync brings is stored only after its connect landed") {
  for (const auto& opts : test::fresh_backends("door_meta")) {
    INFO(test::backend_name(opts));
    world w(opts);
    w.add_peer("pm", 1);
    door_rig r(opts);
    auto first = r.sync("key-pm", 1000);
    r.sched->run();
    REQUIRE((*first.answer)->owns);
    // Another replica holds a newer session in the store: this stream's connect will not land.
    test::exec_sql(opts, "UPDATE peers SET peer_status_session_started_at = 5000 WHERE id = 'pm'");
    core::peer_meta m;
    m.hostname = "renamed";
    m.wt_version = "0.61.0";
    auto refused = r.sync("key-pm", 2000, &m);
    r.sched->run();
    REQUIRE(refused.answer->has_value());
    CHECK_FALSE((*refused.answer)->owns);
    CHECK(w.stored_hostname("pm") == "pm"); // not written: its session did not land
    // A newer one that lands: its meta is in the store and in its first map's account.
    auto landed = r.sync("key-pm", 6000, &m);
    r.sched->run();
    REQUIRE((*landed.answer)->owns);
    CHECK(w.stored_hostname("pm") == "renamed");
    auto acc = r.ask<account_ptr>(r.ask<account_actor>(r.dir, find_account_atom::value, w.account),
                                  snapshot_atom::value, std::uint64_t{0});
    const auto* p = acc->find_peer("pm");
    REQUIRE(p);
    CHECK(p->meta.hostname == "renamed");
    CHECK(p->meta.wt_version == "0.61.0");
  }
}

TEST_CASE("door: a request whose deadline passes is answered UNAVAILABLE, not left hanging") {
  for (const auto& opts : test::fresh_backends("door_deadline")) {
    INFO(test::backend_name(opts));
    world w(opts);
    w.add_peer("pd", 1);
    door_rig r(opts);
    auto s = r.sync("key-pd", 1000);
    // The facade's request goes out; its deadline passes before the directory runs.
    REQUIRE(r.sched->try_run_once());
    REQUIRE(r.sched->trigger_timeouts() > 0);
    r.sched->run_once_lifo(); // the facade, holding the timeout, before the directory
    REQUIRE(s.answer->has_value());
    CHECK((*s.answer)->code == wire_unavailable);
    CHECK((*s.answer)->message == "the server did not answer in time, please try again");
    r.sched->run(); // the directory's late answer changes nothing: no connect was sent
    r.end(s);
    r.sched->run();
    CHECK_FALSE(test::read_status(opts, "pd").connected);
    CHECK(s.sink->maps.empty());
  }
}

TEST_CASE("door: Logout deletes the peer in the store and in its account actor at once, ends its "
          "stream, and the other peers' maps lose it") {
  for (const auto& opts : test::fresh_backends("door_logout")) {
    INFO(test::backend_name(opts));
    world w(opts);
    w.add_peer("pa", 1);
    w.add_peer("pb", 2);
    door_rig r(opts);
    auto sa = r.sync("key-pa", 1000);
    auto sb = r.sync("key-pb", 1100);
    r.sched->run();
    REQUIRE((*sa.answer)->owns);
    REQUIRE((*sb.answer)->owns);
    REQUIRE(sa.sink->maps == std::vector<bool>{true});
    auto acc = r.ask<account_actor>(r.dir, find_account_atom::value, w.account);
    const auto reloads = [&] {
      return record_of<account_state_record>(r.ask<actor_status>(acc, status_atom::value)).reloads;
    };
    const auto reloads_before = reloads();
    const auto serial_before = w.stored_serial();

    auto out = r.logout("key-pb");
    r.sched->run();
    REQUIRE(out->has_value());
    CHECK((*out)->code == 0);
    CHECK((*out)->peer.id == "pb");
    // The store: the row and its memberships gone, the serial moved by one.
    CHECK(w.stored_peers() == 1);
    CHECK(w.stored_memberships("pb") == 0);
    CHECK(w.stored_serial() == serial_before + 1);
    // Memory: gone from the account the actor holds, which took the serial of its own delete
    // without reading the account back.
    auto held = r.ask<account_ptr>(acc, snapshot_atom::value, std::uint64_t{0});
    CHECK(held->find_peer("pb") == nullptr);
    CHECK(held->find_peer("pa") != nullptr);
    CHECK(held->net.serial == serial_before + 1);
    for (const auto& g : held->groups)
      CHECK(std::find(g.peers.begin(), g.peers.end(), "pb") == g.peers.end());
    CHECK(reloads() == reloads_before);
    // Its stream ended; the other peer got a map without it (and nothing else changed for it).
    CHECK(sb.sink->closes == std::vector<std::string>{"peer deleted"});
    CHECK(sa.sink->closes.empty());
    CHECK(sa.sink->maps == std::vector<bool>{true, false});
    // Its key is forgotten: a Sync is refused as for any unknown key, a second Logout NotFound.
    auto again = r.sync("key-pb", 1200);
    r.sched->run();
    REQUIRE(again.answer->has_value());
    CHECK((*again.answer)->code == 7);
    CHECK((*again.answer)->message == "peer is not registered");
    auto twice = r.logout("key-pb");
    r.sched->run();
    REQUIRE(twice->has_value());
    CHECK((*twice)->code == 5);
    CHECK((*twice)->message == "peer not found: key-pb");
    CHECK(w.stored_peers() == 1);

    // A peer another replica registered behind this one's back: found in the store, deleted.
    w.add_peer("pc", 3);
    auto other = r.logout("key-pc");
    r.sched->run();
    REQUIRE(other->has_value());
    CHECK((*other)->code == 0);
    CHECK(w.stored_peers() == 1);
    held = r.ask<account_ptr>(acc, snapshot_atom::value, std::uint64_t{0});
    CHECK(held->find_peer("pc") == nullptr);
    CHECK(held->net.serial == w.stored_serial());
    CHECK(sa.sink->closes.empty());
  }
}
