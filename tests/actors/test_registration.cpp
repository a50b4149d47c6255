// Registration inside the account actor, on CAF's deterministic scheduler (the order of messages
// is the test's, never the machine's): IP and DNS label from the actor's indexes, one transaction,
// the peer applied to memory without reading the account back, and the serial rule: the actor
// moves to a store serial only with everything that serial holds.
#include "core/change.hpp"
#include "storage/admin_store.hpp"
#include "tests/support/actor_rig.hpp"
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

// The account actor and its store worker on the test coordinator: nothing runs until the test
// runs the scheduler, and then in the order messages were sent.
struct det_rig {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  account_loader loader;
  peer_directory
      dir; // with_directory: the directory spawned the account actor, which tells it keys
  account_actor acc;

  det_rig(const storage::db_options& db, const std::string& account_id,
          bool with_directory = false) {
    cfg.set("scheduler.policy", caf::atom("testing"));
    sys = std::make_unique<caf::actor_system>(cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
    loader_config lc;
    lc.db = db;
    lc.poll_interval = std::chrono::milliseconds(0);
    lc.detached = false; // its store work runs when the scheduler runs it
    loader = spawn_account_loader(*sys, lc);
    if (with_directory) {
      directory_config dc;
      dc.loader = loader;
      dir = spawn_peer_directory(*sys, dc);
      auto found = ask_of<account_actor>(dir, find_account_atom::value, account_id);
      sched->run(); // the first load
      REQUIRE(found->has_value());
      acc = **found;
    } else {
      acc = spawn_account_actor(*sys, account_id, loader, {});
      sched->run(); // the first load
    }
  }
  ~det_rig() {
    if (dir)
      caf::anon_send_exit(dir, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(acc, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(loader, caf::exit_reason::user_shutdown);
    sched->run();
    dir = peer_directory{};
    acc = account_actor{};
    loader = account_loader{};
    sys.reset();
  }

  // Sends a request when the scheduler next runs (requests sent before one another keep their
  // order); the answer lands in the returned slot.
  template <class R, class... Ts>
  std::shared_ptr<std::optional<R>> ask(Ts... xs) {
    return ask_of<R>(acc, xs...);
  }
  template <class R, class Handle, class... Ts>
  std::shared_ptr<std::optional<R>> ask_of(const Handle& dest, Ts... xs) {
    auto out = std::make_shared<std::optional<R>>();
    sys->spawn([=](caf::event_based_actor* self) {
      self->request(dest, caf::infinite, xs...)
          .then([=](R& r) { *out = std::move(r); },
                [=](caf::error& e) { FAIL("request failed: " << caf::to_string(e)); });
    });
    return out;
  }
  std::shared_ptr<std::optional<peer_view>> register_peer(const std::string& wg_key,
                                                          const std::string& hostname,
                                                          const core::setup_key& key) {
    login_request req;
    req.wg_key = wg_key;
    req.setup_key = "plain";
    req.has_meta = true;
    req.meta.hostname = hostname;
    req.meta.wt_version = "0.60.0";
    return ask<peer_view>(register_atom::value, req, key);
  }
  account_state_record status() {
    auto s = ask<actor_status>(status_atom::value);
    sched->run();
    REQUIRE(s->has_value());
    return record_of<account_state_record>(**s);
  }
  account_ptr account() {
    auto a = ask<account_ptr>(snapshot_atom::value, std::uint64_t{0});
    sched->run();
    REQUIRE(a->has_value());
    return **a;
  }
};

struct world : test::account_world {
  core::setup_key key;

  explicit world(storage::db_options o) : account_world(std::move(o)) {
    storage::new_setup_key spec;
    spec.account_id = account;
    spec.name = "k";
    spec.reusable = true;
    key = storage::admin_store(*sql, db.kind).create_setup_key(spec).first;
  }
  std::uint64_t serial() {
    long long s = 0;
    *sql << "SELECT network_serial FROM accounts WHERE id = :id", soci::into(s), soci::use(account);
    return static_cast<std::uint64_t>(s);
  }
  std::uint64_t bump() {
    *sql << "UPDATE accounts SET network_serial = network_serial + 1 WHERE id = :id",
        soci::use(account);
    return serial();
  }
  // Another process's registration: the peer row, its All membership, the serial bump.
  core::peer insert_peer(const std::string& id, const std::string& ip, const std::string& label) {
    core::peer p;
    p.id = id;
    p.account_id = account;
    p.key = "key-" + id;
    p.ip = ip;
    p.name = label;
    p.dns_label = label;
    p.meta.hostname = label;
    accounts().insert_peer(p);
    accounts().add_group_peer(account, all_group, id);
    bump();
    return p;
  }
  std::size_t stored_peers() {
    auto a = accounts().load_account(account);
    REQUIRE(a);
    return a->peers.size();
  }
};

std::set<std::string> ids_of(const core::account& a) {
  std::set<std::string> out;
  for (const auto& p : a.peers)
    out.insert(p.id);
  return out;
}

} // namespace

TEST_CASE("registration: the account actor registers from its indexes, applies its own write "
          "without reading back, and its serial is the store's") {
  for (const auto& opts : test::fresh_backends("reg_basic")) {
    INFO(test::backend_name(opts));
    world w(opts);
    det_rig r(opts, w.account);
    const auto before = r.status();
    auto a = r.register_peer("wg-a", "alpha", w.key);
    auto b = r.register_peer("wg-b", "alpha", w.key); // the same hostname: label alpha-1
    r.sched->run();
    REQUIRE(a->has_value());
    REQUIRE(b->has_value());
    CHECK((*a)->code == 0);
    CHECK((*b)->code == 0);
    CHECK((*a)->registered);
    CHECK((*b)->registered);
    CHECK((*a)->peer.dns_label == "alpha");
    CHECK((*b)->peer.dns_label == "alpha-1");
    CHECK((*a)->peer.ip != (*b)->peer.ip);
    const auto st = r.status();
    CHECK(st.peers == 2);
    CHECK(st.reloads == before.reloads); // its own write is never read back
    CHECK(st.serial == w.serial());      // ...and its serial is the store's
    CHECK(st.serial == before.serial + 2);
    // Memory holds what the store holds.
    auto mem = r.account();
    auto stored = w.accounts().load_account(w.account);
    REQUIRE(stored);
    CHECK(ids_of(*mem) == ids_of(*stored));
    for (const auto& p : stored->peers) {
      auto it = std::find_if(mem->peers.begin(), mem->peers.end(),
                             [&](const core::peer& q) { return q.id == p.id; });
      REQUIRE(it != mem->peers.end());
      CHECK(it->ip == p.ip);
      CHECK(it->dns_label == p.dns_label);
      CHECK(it->key == p.key);
      CHECK(it->meta.hostname == p.meta.hostname);
      CHECK(it->meta.wt_version == p.meta.wt_version);
    }
    const auto* all = mem->find_group_by_name("All");
    REQUIRE(all);
    const auto* stored_all = stored->find_group_by_name("All");
    REQUIRE(stored_all);
    CHECK(std::set<std::string>(all->peers.begin(), all->peers.end()) ==
          std::set<std::string>(stored_all->peers.begin(), stored_all->peers.end()));
    CHECK(all->peers.size() == 2);
  }
}

TEST_CASE("registration: two registrations of one key make one peer; the second is its login") {
  for (const auto& opts : test::fresh_backends("reg_same_key")) {
    INFO(test::backend_name(opts));
    world w(opts);
    det_rig r(opts, w.account);
    // Both arrive before the first is written (one batch), and once more after it was.
    auto first = r.register_peer("wg-same", "host", w.key);
    auto second = r.register_peer("wg-same", "host", w.key);
    r.sched->run();
    auto third = r.register_peer("wg-same", "host", w.key);
    r.sched->run();
    for (auto* v : {&first, &second, &third}) {
      REQUIRE((*v)->has_value());
      CHECK((**v)->code == 0);
      CHECK((**v)->peer.id == (*first)->peer.id);
      CHECK((**v)->peer.ip == (*first)->peer.ip);
    }
    CHECK((*first)->registered);
    CHECK_FALSE((*second)->registered);
    CHECK_FALSE((*third)->registered);
    CHECK(w.stored_peers() == 1);
    CHECK(r.status().peers == 1);
  }
}

TEST_CASE("registration: two registrations racing for the last IPs get distinct ones; then the "
          "network is full") {
  for (const auto& opts : test::fresh_backends("reg_ip_race")) {
    INFO(test::backend_name(opts));
    world w(opts);
    // A /30: two host addresses.
    const std::string net = R"({"IP":"100.77.0.0","Mask":"/////A=="})";
    *w.sql << "UPDATE accounts SET network_net = :n WHERE id = :id", soci::use(net),
        soci::use(w.account);
    REQUIRE(w.accounts().load_account(w.account)->net.net == "100.77.0.0/30");
    det_rig r(opts, w.account);
    auto a = r.register_peer("wg-a", "a", w.key);
    auto b = r.register_peer("wg-b", "b", w.key);
    r.sched->run();
    REQUIRE(a->has_value());
    REQUIRE(b->has_value());
    REQUIRE((*a)->code == 0);
    REQUIRE((*b)->code == 0);
    CHECK(std::set<std::string>{(*a)->peer.ip, (*b)->peer.ip} ==
          std::set<std::string>{"100.77.0.1", "100.77.0.2"});
    auto c = r.register_peer("wg-c", "c", w.key);
    r.sched->run();
    REQUIRE(c->has_value());
    CHECK((*c)->code == 9); // FAILED_PRECONDITION
    CHECK((*c)->message == "network 100.77.0.0/30 is out of IPs");
    CHECK(w.stored_peers() == 2);
  }
}

TEST_CASE("deleted peer: its IP, label and key are free again at once, the directory forgets that "
          "key alone, and the peers after it are still found (REST delete and Logout)") {
  for (const bool by_logout : {false, true}) {
    for (const auto& opts : test::fresh_backends(by_logout ? "del_logout" : "del_rest")) {
      INFO(test::backend_name(opts));
      INFO((by_logout ? "Logout" : "REST delete"));
      world w(opts);
      // A /30: two host addresses, so the next registration's IP can only be a freed one.
      const std::string net = R"({"IP":"100.77.0.0","Mask":"/////A=="})";
      *w.sql << "UPDATE accounts SET network_net = :n WHERE id = :id", soci::use(net),
          soci::use(w.account);
      const auto owner = w.accounts().load_account(w.account)->users.at(0).id;
      det_rig r(opts, w.account, true);
      const auto known_keys = [&] {
        auto s = r.ask_of<actor_status>(r.dir, status_atom::value);
        r.sched->run();
        REQUIRE(s->has_value());
        return (*s)->gauge("known_keys");
      };
      // A Login through the directory: a key it knows goes to the account actor, which finds the
      // peer by the position its index holds (a wrong one would make it read the account again).
      const auto login = [&](const std::string& key) {
        login_request req;
        req.wg_key = key;
        auto v = r.ask_of<peer_view>(r.dir, login_atom::value, req);
        r.sched->run();
        REQUIRE(v->has_value());
        return **v;
      };
      auto a = r.register_peer("wg-a", "alpha", w.key); // first in the account's peers
      r.sched->run();
      auto b = r.register_peer("wg-b", "beta", w.key);
      r.sched->run();
      REQUIRE((*a)->code == 0);
      REQUIRE((*b)->code == 0);
      auto full = r.register_peer("wg-c", "alpha", w.key);
      r.sched->run();
      CHECK((*full)->code == 9); // out of IPs
      CHECK(known_keys() == 2);
      const auto reloads = r.status().reloads;

      const auto a_id = (*a)->peer.id;
      if (by_logout) {
        auto out = r.ask<peer_view>(logout_atom::value, a_id, std::string("wg-a"));
        r.sched->run();
        REQUIRE(out->has_value());
        CHECK((*out)->code == 0);
      } else {
        auto del = std::make_shared<core::admin_change>(
            core::admin_change{owner, core::change::delete_peer{a_id}});
        auto out = r.ask<change_outcome>(change_atom::value, del);
        r.sched->run();
        REQUIRE(out->has_value());
        CHECK_FALSE((*out)->refused);
        CHECK((*out)->failure == store_failure::none);
      }
      CHECK(w.stored_peers() == 1);
      CHECK(known_keys() == 1); // wg-a forgotten, and only it:
      auto seen_b = login("wg-b");
      CHECK(seen_b.code == 0);
      CHECK(seen_b.peer.id == (*b)->peer.id);
      CHECK(seen_b.peer.key == "wg-b");
      CHECK(login("wg-a").code != 0);

      // The freed IP and label are the next registration's.
      auto c = r.register_peer("wg-c", "alpha", w.key);
      r.sched->run();
      REQUIRE((*c)->code == 0);
      CHECK((*c)->peer.ip == (*a)->peer.ip);
      CHECK((*c)->peer.dns_label == "alpha");
      CHECK(known_keys() == 2);
      CHECK(login("wg-c").peer.id == (*c)->peer.id);
      CHECK(login("wg-b").peer.id == (*b)->peer.id);
      auto d = r.register_peer("wg-d", "delta", w.key);
      r.sched->run();
      CHECK((*d)->code == 9);               // full again: both IPs are used
      CHECK(r.status().reloads == reloads); // nothing was read again to find a peer
      CHECK(r.status().peers == 2);
    }
  }
}

TEST_CASE("renamed peer: its old DNS label is free again at once, its new one taken") {
  for (const auto& opts : test::fresh_backends("rename_label")) {
    INFO(test::backend_name(opts));
    world w(opts);
    const auto owner = w.accounts().load_account(w.account)->users.at(0).id;
    det_rig r(opts, w.account);
    auto a = r.register_peer("wg-a", "alpha", w.key);
    r.sched->run();
    REQUIRE((*a)->code == 0);
    const auto reloads = r.status().reloads;
    core::change::update_peer rename;
    rename.id = (*a)->peer.id;
    rename.name = "omega";
    auto out = r.ask<change_outcome>(change_atom::value, std::make_shared<core::admin_change>(
                                                             core::admin_change{owner, rename}));
    r.sched->run();
    REQUIRE(out->has_value());
    REQUIRE_FALSE((*out)->refused);
    REQUIRE((*out)->after);
    CHECK((*out)->after->find_peer((*a)->peer.id)->dns_label == "omega");
    auto b = r.register_peer("wg-b", "alpha", w.key);
    auto c = r.register_peer("wg-c", "omega", w.key);
    r.sched->run();
    REQUIRE((*b)->code == 0);
    REQUIRE((*c)->code == 0);
    CHECK((*b)->peer.dns_label == "alpha");   // freed by the rename
    CHECK((*c)->peer.dns_label == "omega-1"); // the renamed peer holds it
    CHECK(r.status().reloads == reloads);
  }
}

TEST_CASE("registration: a peer another process inserted meanwhile is read, its label conflict "
          "retried, and the actor then holds both") {
  for (const auto& opts : test::fresh_backends("reg_other_writer")) {
    INFO(test::backend_name(opts));
    world w(opts);
    det_rig r(opts, w.account);
    const auto before = r.status();
    // Another replica registers "alpha" behind the actor's back (the actor does not know it).
    w.insert_peer("other", "100.64.250.250", "alpha");
    auto mine = r.register_peer("wg-mine", "alpha", w.key);
    r.sched->run();
    REQUIRE(mine->has_value());
    CHECK((*mine)->code == 0);
    CHECK((*mine)->registered);
    CHECK((*mine)->peer.dns_label == "alpha-1"); // the first choice conflicted, read, retried
    const auto st = r.status();
    CHECK(st.reloads > before.reloads);
    CHECK(st.peers == 2);
    CHECK(st.serial == w.serial());
    auto mem = r.account();
    CHECK(ids_of(*mem) == std::set<std::string>{"other", (*mine)->peer.id});
    CHECK(mem->find_group_by_name("All")->peers.size() == 2);

    // Another process writes (a group) while the actor's registration goes through without a
    // conflict: the serial after it is two ahead, so the actor reads the account again and holds
    // the other's change with that serial.
    core::group g;
    g.id = "g-other";
    g.account_id = w.account;
    g.name = "other's group";
    g.issued = "api";
    w.accounts().insert_group(g);
    w.bump();
    auto next = r.register_peer("wg-next", "beta", w.key);
    r.sched->run();
    REQUIRE(next->has_value());
    CHECK((*next)->code == 0);
    const auto st2 = r.status();
    CHECK(st2.serial == w.serial());
    CHECK(st2.peers == 3);
    mem = r.account();
    CHECK(mem->find_group_by_name("other's group") != nullptr);
  }
}

TEST_CASE("serial rule: a peer added by someone else with a serial two ahead brings the other "
          "change too (never a serial without its changes)") {
  for (const auto& opts : test::fresh_backends("reg_serial_rule")) {
    INFO(test::backend_name(opts));
    world w(opts);
    det_rig r(opts, w.account);
    const auto ours = r.status().serial;
    // Two writes by other processes: a group, then a peer; the actor is told only of the peer,
    // with the serial after both.
    core::group g;
    g.id = "g-unseen";
    g.account_id = w.account;
    g.name = "unseen";
    g.issued = "api";
    w.accounts().insert_group(g);
    w.bump();
    auto p = w.insert_peer("pz", "100.64.9.9", "pz");
    const auto serial = w.serial();
    REQUIRE(serial == ours + 2);
    caf::anon_send(r.acc, added_atom::value, p, std::vector<std::string>{w.all_group}, serial);
    r.sched->run();
    auto mem = r.account();
    CHECK(mem->net.serial == serial);
    // With `serial = max(ours, serial)` the actor claimed this serial without the group.
    CHECK(mem->find_group_by_name("unseen") != nullptr);
    CHECK(ids_of(*mem) == std::set<std::string>{"pz"});

    // The one write since ours: taken as is, without a read.
    const auto reloads = r.status().reloads;
    auto q = w.insert_peer("pq", "100.64.9.10", "pq");
    caf::anon_send(r.acc, added_atom::value, q, std::vector<std::string>{w.all_group}, w.serial());
    r.sched->run();
    const auto st = r.status();
    CHECK(st.reloads == reloads);
    CHECK(st.serial == w.serial());
    CHECK(st.peers == 2);
  }
}
