// Maps off the scheduler (actors/map_workers). On CAF's deterministic scheduler with map workers
// that have no thread of their own (the test runs their queue when it chooses), so a fan-out is
// held "in flight" for exactly as long as a test needs: a change during a fan-out in flight makes
// exactly one more fan-out, with the newest map; a session superseded or ended while its map was
// computed gets nothing; an unchanged map is not sent again; the account actor answers while maps
// are computed; a fan-out is handed out a batch at a time, the next computed only after the
// previous one's maps went to their peers; without workers each map is sent before the next is
// computed. With real threads: the workers run jobs, stop() drops what waits and joins, and rapid
// changes reach every stream in order, ending with the newest map, with no more maps held at once
// than the workers' credit allows.
#include "actors/map_workers.hpp"
#include "storage/admin_store.hpp"
#include "tests/support/actor_rig.hpp"
#include "tests/support/det_ask.hpp"
#include "tests/support/test_db.hpp"

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <doctest/doctest.h>
#include <soci/soci.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

using namespace nbm;
using namespace nbm::actors;

namespace {

using ids = std::vector<std::string>;

// A stream's far end on the deterministic scheduler (everything runs on the test's thread).
struct recording_sink : session_sink {
  std::vector<std::pair<map_update_ptr, bool>> maps; // (map, initial)
  std::vector<std::string> closes;
  void close(const std::string& reason) override { closes.push_back(reason); }
  void deliver(map_update_ptr u, bool initial) override {
    maps.emplace_back(std::move(u), initial);
  }
  // Ids of the peers the last map lists as reachable.
  ids remote_ids() const {
    REQUIRE_FALSE(maps.empty());
    const auto& u = *maps.back().first;
    ids out;
    for (auto i : u.map.remote_peers)
      out.push_back(u.change->view->acc().peers[i].id);
    std::sort(out.begin(), out.end());
    return out;
  }
};

struct world : test::account_world {
  using account_world::account_world;
  // A peer in the store, in All and `groups`; returns it.
  core::peer add_peer(const std::string& id, int n, const std::vector<std::string>& groups = {}) {
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
    for (const auto& g : groups)
      accounts().add_group_peer(account, g, id);
    *sql << "UPDATE accounts SET network_serial = network_serial + 1 WHERE id = :id",
        soci::use(account);
    return p;
  }
  std::uint64_t serial() {
    long long s = 0;
    *sql << "SELECT network_serial FROM accounts WHERE id = :id", soci::into(s), soci::use(account);
    return static_cast<std::uint64_t>(s);
  }
  // Only a policy g <-> g (NetBird's default All <-> All removed).
  void only_policy_within(const std::string& g, const std::vector<std::string>& members) {
    *sql << "DELETE FROM policy_rules WHERE policy_id IN (SELECT id FROM policies WHERE "
            "account_id = :a)",
        soci::use(account);
    *sql << "DELETE FROM policies WHERE account_id = :a", soci::use(account);
    core::group grp;
    grp.id = g;
    grp.account_id = account;
    grp.name = g;
    grp.issued = "api";
    grp.peers = members;
    accounts().insert_group(grp);
    core::policy p;
    p.id = g + "-pol";
    p.account_id = account;
    p.name = p.id;
    p.enabled = true;
    core::policy_rule r;
    r.id = p.id + "-rule";
    r.policy_id = p.id;
    r.name = r.id;
    r.enabled = true;
    r.bidirectional = true;
    r.action = "accept";
    r.protocol = "all";
    r.sources = {g};
    r.destinations = {g};
    p.rules.push_back(r);
    accounts().insert_policy(p);
  }
};

// The server's actors on the test coordinator, with map workers whose jobs wait for the test
// (no thread; every batch goes to them: nothing is cheap enough to compute on the actor), or
// none (`workers` null: every map is computed on the account actor).
struct map_rig {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  std::shared_ptr<map_workers> workers;
  status_writer writer;
  account_loader loader;
  peer_directory dir;

  explicit map_rig(const storage::db_options& db,
                   std::shared_ptr<map_workers> w = std::make_shared<map_workers>(0, 0))
      : workers(std::move(w)) {
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
    directory_config dc;
    dc.writer = writer;
    dc.loader = loader;
    dc.mappers = workers;
    dir = spawn_peer_directory(*sys, dc);
    sched->run();
  }
  ~map_rig() {
    caf::anon_send_exit(dir, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(writer, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(loader, caf::exit_reason::user_shutdown);
    sched->run();
    if (workers)
      workers->stop(); // batches still queued go (with their actor handles) before the system
    dir = peer_directory{};
    writer = status_writer{};
    loader = account_loader{};
    sys.reset();
  }

  template <class R, class Handle, class... Ts>
  R ask(const Handle& h, Ts... xs) {
    return test::det_ask<R>(*sys, *sched, h, xs...);
  }
  account_actor account(const std::string& id) {
    return ask<account_actor>(dir, find_account_atom::value, id);
  }
  peer_actor peer(const std::string& acc, const std::string& id) {
    return ask<peer_actor>(dir, find_peer_atom::value, acc, id);
  }
  bool connect(const peer_actor& p, session_token t, sink_ptr s) {
    return ask<bool>(p, connect_atom::value, t, std::move(s));
  }
  actor_status status(const account_actor& a) { return ask<actor_status>(a, status_atom::value); }
  account_state_record record(const account_actor& a) {
    return record_of<account_state_record>(status(a));
  }
  // One round of the map workers: the batches queued now, their results handled.
  std::size_t compute() {
    if (!workers)
      return 0;
    const auto n = workers->run_queued();
    sched->run();
    return n;
  }
  // Until neither the actors nor the map workers have anything left (a few rounds: more would
  // be batches begetting batches, a bug).
  void settle() {
    sched->run();
    int rounds = 0;
    while (compute() > 0)
      REQUIRE(++rounds < 10);
  }
};

} // namespace

TEST_CASE("map workers: a change during a fan-out in flight makes exactly one more fan-out, with "
          "the newest map; the actor answers meanwhile") {
  const auto opts = test::fresh_store(storage::engine::sqlite, "maps_inflight");
  world w(opts); // NetBird's default policy: All <-> All
  w.add_peer("pa", 1);
  w.add_peer("pb", 2);
  map_rig r(opts);
  auto acc = r.account(w.account);
  auto a = r.peer(w.account, "pa"), b = r.peer(w.account, "pb");
  auto sa = std::make_shared<recording_sink>(), sb = std::make_shared<recording_sink>();
  REQUIRE(r.connect(a, 100, sa));
  REQUIRE(r.connect(b, 101, sb));
  // The first maps are the workers' too: nothing until they ran.
  CHECK(sa->maps.empty());
  CHECK(r.status(acc).gauge("awaiting_first_map") + r.status(acc).gauge("maps_in_flight") == 2);
  r.settle();
  REQUIRE(sa->maps.size() == 1);
  REQUIRE(sb->maps.size() == 1);
  CHECK(sa->maps[0].second); // initial
  CHECK(sb->maps[0].second);
  CHECK(sa->remote_ids() == ids{"pb"});
  const auto changes_before = r.record(acc).changes;

  // Change 1 (a peer registered elsewhere): its fan-out goes to the workers and stays there.
  auto pc = w.add_peer("pc", 3);
  caf::anon_send(acc, added_atom::value, pc, std::vector<std::string>{w.all_group}, w.serial());
  r.sched->run();
  CHECK(r.workers->queued() == 1);
  auto s = r.status(acc); // answered while the maps are computed
  CHECK(s.gauge("maps_in_flight") == 2);
  CHECK(s.gauge("pending_changes") == 0);
  CHECK(sa->maps.size() == 1);

  // Changes 2 and 3 arrive while it is in flight: no second flight, one fan-out wanted.
  auto pd = w.add_peer("pd", 4);
  caf::anon_send(acc, added_atom::value, pd, std::vector<std::string>{w.all_group}, w.serial());
  r.sched->run();
  auto pe = w.add_peer("pe", 5);
  const auto newest = w.serial();
  caf::anon_send(acc, added_atom::value, pe, std::vector<std::string>{w.all_group}, newest);
  r.sched->run();
  CHECK(r.workers->queued() == 1);
  CHECK(r.status(acc).gauge("pending_changes") == 1);
  CHECK(sa->maps.size() == 1);

  // The flight lands: change 1's maps go out, and the one more fan-out starts.
  CHECK(r.compute() == 1);
  REQUIRE(sa->maps.size() == 2);
  REQUIRE(sb->maps.size() == 2);
  CHECK(sa->remote_ids() == ids{"pb", "pc"});
  CHECK_FALSE(sa->maps[1].second);
  CHECK(r.workers->queued() == 1);

  // It lands with the newest map; nothing more follows.
  CHECK(r.compute() == 1);
  REQUIRE(sa->maps.size() == 3);
  REQUIRE(sb->maps.size() == 3);
  CHECK(sa->remote_ids() == ids{"pb", "pc", "pd", "pe"});
  CHECK(sb->remote_ids() == ids{"pa", "pc", "pd", "pe"});
  CHECK(sa->maps.back().first->map.serial == newest);
  CHECK(r.compute() == 0);
  const auto rec = r.record(acc);
  CHECK(rec.changes == changes_before + 2);
  CHECK(rec.maps_sent == 6);
  s = r.status(acc);
  CHECK(s.gauge("maps_in_flight") == 0);
  CHECK(s.gauge("pending_changes") == 0);
  CHECK(s.gauge("last_fanout_maps") == 2);
  CHECK(s.gauge("last_fanout_us") >= 0);
  CHECK(s.counter("map_batches_offloaded") == 4); // two first maps, two fan-outs
  CHECK(s.counter("maps_stale") == 0);
}

TEST_CASE("map workers: a session superseded or ended while its map is computed gets nothing; the "
          "newer session's first map comes after") {
  const auto opts = test::fresh_store(storage::engine::sqlite, "maps_stale");
  world w(opts);
  w.add_peer("pa", 1);
  w.add_peer("pb", 2);
  map_rig r(opts);
  auto acc = r.account(w.account);
  auto a = r.peer(w.account, "pa"), b = r.peer(w.account, "pb");
  auto old_a = std::make_shared<recording_sink>(), sb = std::make_shared<recording_sink>();
  REQUIRE(r.connect(a, 100, old_a));
  REQUIRE(r.connect(b, 101, sb));
  r.settle();
  REQUIRE(old_a->maps.size() == 1);
  REQUIRE(sb->maps.size() == 1);
  const auto sent_before = r.record(acc).maps_sent;

  // A change: both sessions' maps are being computed...
  auto pc = w.add_peer("pc", 3);
  caf::anon_send(acc, added_atom::value, pc, std::vector<std::string>{w.all_group}, w.serial());
  r.sched->run();
  REQUIRE(r.workers->queued() == 1);
  // ... when pa connects again (a newer session) and pb's stream ends.
  auto new_a = std::make_shared<recording_sink>();
  REQUIRE(r.connect(a, 200, new_a));
  CHECK(old_a->closes.size() == 1);
  REQUIRE(r.ask<bool>(b, disconn_atom::value, session_token{101}));
  CHECK(r.status(acc).gauge("awaiting_first_map") == 1); // pa's new session, behind the flight
  CHECK(new_a->maps.empty());

  // The flight lands: neither its pa map (for session 100) nor its pb map is sent.
  CHECK(r.compute() == 1);
  CHECK(old_a->maps.size() == 1);
  CHECK(sb->maps.size() == 1);
  auto s = r.status(acc);
  CHECK(s.counter("maps_stale") == 2);
  CHECK(record_of<account_state_record>(s).maps_sent == sent_before);
  CHECK(new_a->maps.empty());
  // Then the newer session's first map: initial, the account as it is now.
  CHECK(r.compute() == 1);
  REQUIRE(new_a->maps.size() == 1);
  CHECK(new_a->maps[0].second);
  CHECK(new_a->remote_ids() == ids{"pb", "pc"});
  CHECK(r.compute() == 0);
  CHECK(old_a->maps.size() == 1);
  CHECK(sb->maps.size() == 1);
  CHECK(r.record(acc).connected == 1);
}

TEST_CASE("map workers: an unchanged map is not sent again; a first map is sent whatever it is") {
  const auto opts = test::fresh_store(storage::engine::sqlite, "maps_unchanged");
  world w(opts);
  w.add_peer("pa", 1);
  w.add_peer("pb", 2);
  w.add_peer("pc", 3);
  w.only_policy_within("g1", {"pa", "pb"});
  map_rig r(opts);
  auto acc = r.account(w.account);
  auto a = r.peer(w.account, "pa"), b = r.peer(w.account, "pb"), c = r.peer(w.account, "pc");
  auto sa = std::make_shared<recording_sink>(), sb = std::make_shared<recording_sink>(),
       sc = std::make_shared<recording_sink>();
  REQUIRE(r.connect(a, 100, sa));
  REQUIRE(r.connect(b, 101, sb));
  REQUIRE(r.connect(c, 102, sc));
  r.settle();
  REQUIRE(sc->maps.size() == 1);
  CHECK(sc->maps[0].second);
  CHECK(sc->remote_ids().empty()); // reaches nobody, still gets its first map
  CHECK(sa->remote_ids() == ids{"pb"});
  const auto before = r.record(acc);

  // A peer in no group with a policy: nobody's map changes.
  auto pz = w.add_peer("pz", 9);
  caf::anon_send(acc, added_atom::value, pz, std::vector<std::string>{w.all_group}, w.serial());
  r.sched->run();
  CHECK(r.compute() == 1);
  CHECK(r.compute() == 0);
  CHECK(sa->maps.size() == 1);
  CHECK(sb->maps.size() == 1);
  CHECK(sc->maps.size() == 1);
  auto after = r.record(acc);
  CHECK(after.maps_sent == before.maps_sent);
  CHECK(after.maps_skipped == before.maps_skipped + 3);
  CHECK(after.changes == before.changes + 1);

  // pz joins g1: exactly pa's and pb's maps change.
  auto py = w.add_peer("py", 10, {"g1"});
  caf::anon_send(acc, added_atom::value, py, std::vector<std::string>{w.all_group, "g1"},
                 w.serial());
  r.settle();
  CHECK(sa->maps.size() == 2);
  CHECK(sb->maps.size() == 2);
  CHECK(sc->maps.size() == 1);
  CHECK(sa->remote_ids() == ids{"pb", "py"});
  after = r.record(acc);
  CHECK(after.maps_sent == before.maps_sent + 2);
  CHECK(after.maps_skipped == before.maps_skipped + 4);
}

TEST_CASE("map workers: a fan-out is computed a batch at a time; the next batch only after the "
          "previous one's maps went to their peers") {
  const auto opts = test::fresh_store(storage::engine::sqlite, "maps_batches");
  world w(opts); // NetBird's default policy: every map changes with every new peer
  const ids names{"pa", "pb", "pc", "pd", "pe"};
  for (std::size_t i = 0; i < names.size(); ++i)
    w.add_peer(names[i], static_cast<int>(1 + i));
  map_rig r(opts, std::make_shared<map_workers>(0, 0, 2)); // batches of at most 2 maps
  auto acc = r.account(w.account);
  std::vector<std::shared_ptr<recording_sink>> sinks;
  for (std::size_t i = 0; i < names.size(); ++i) {
    sinks.push_back(std::make_shared<recording_sink>());
    REQUIRE(r.connect(r.peer(w.account, names[i]), session_token(100 + i), sinks.back()));
  }
  r.settle();
  const auto maps_delivered = [&] {
    std::size_t n = 0;
    for (const auto& s : sinks)
      n += s->maps.size();
    return n;
  };
  REQUIRE(maps_delivered() == names.size());
  const auto batches_before = r.status(acc).counter("map_batches_offloaded");

  // A change: five maps to compute, handed out two at a time.
  auto pz = w.add_peer("pz", 9);
  caf::anon_send(acc, added_atom::value, pz, std::vector<std::string>{w.all_group}, w.serial());
  r.sched->run();
  std::vector<std::size_t> batch_maps;
  while (r.workers->queued() > 0) {
    CHECK(r.workers->queued() == 1); // one batch out at a time (no thread: a credit of one)
    const auto before = maps_delivered();
    CHECK(r.workers->run_queued() == 1);
    // Computed and handed back, not yet sent: nothing more is computed meanwhile.
    CHECK(r.workers->queued() == 0);
    CHECK(r.workers->run_queued() == 0);
    CHECK(maps_delivered() == before);
    r.sched->run(); // the actor sends the batch's maps, then hands out the next batch
    batch_maps.push_back(maps_delivered() - before);
  }
  CHECK(batch_maps == std::vector<std::size_t>{2, 2, 1});
  for (const auto& s : sinks) {
    REQUIRE(s->maps.size() == 2);
    CHECK_FALSE(s->maps.back().second);
    const auto remote = s->remote_ids();
    CHECK(std::count(remote.begin(), remote.end(), "pz") == 1);
  }
  const auto s = r.status(acc);
  CHECK(s.counter("map_batches_offloaded") == batches_before + 3);
  CHECK(s.gauge("maps_in_flight") == 0);
  CHECK(s.gauge("maps_held") == 0);
  CHECK(s.gauge("maps_held_peak") == 2); // never more than a batch computed and not yet sent
  CHECK(s.gauge("last_fanout_maps") == 5);
}

TEST_CASE("map workers: without workers each map is sent before the next is computed") {
  const auto opts = test::fresh_store(storage::engine::sqlite, "maps_inline");
  world w(opts);
  const ids names{"pa", "pb", "pc", "pd"};
  for (std::size_t i = 0; i < names.size(); ++i)
    w.add_peer(names[i], static_cast<int>(1 + i));
  map_rig r(opts, nullptr);
  auto acc = r.account(w.account);
  std::vector<std::shared_ptr<recording_sink>> sinks;
  for (std::size_t i = 0; i < names.size(); ++i) {
    sinks.push_back(std::make_shared<recording_sink>());
    REQUIRE(r.connect(r.peer(w.account, names[i]), session_token(100 + i), sinks.back()));
    REQUIRE(sinks.back()->maps.size() == 1); // the first map at once, on the actor
  }
  auto pz = w.add_peer("pz", 9);
  caf::anon_send(acc, added_atom::value, pz, std::vector<std::string>{w.all_group}, w.serial());
  r.sched->run();
  for (const auto& s : sinks) {
    REQUIRE(s->maps.size() == 2);
    const auto remote = s->remote_ids();
    CHECK(std::count(remote.begin(), remote.end(), "pz") == 1);
  }
  const auto s = r.status(acc);
  CHECK(s.gauge("last_fanout_maps") == 4);
  CHECK(s.gauge("maps_held") == 0);
  CHECK(s.gauge("maps_held_peak") == 1); // one map at a time, sent before the next
  CHECK(s.counter("map_batches_offloaded") == 0);
  CHECK(s.counter("map_batches_inline") >= 5);
}

TEST_CASE("map workers: jobs run on the workers' threads; stop() drops what waits and joins") {
  map_workers pool(2, 0);
  CHECK(pool.threads() == 2);
  std::latch started(2), dropped(3);
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  std::atomic<int> ran{0};
  const auto caller = std::this_thread::get_id();
  std::atomic<bool> elsewhere{true};
  // Two jobs hold both threads until the gate opens.
  for (int i = 0; i < 2; ++i)
    pool.post([&] {
      if (std::this_thread::get_id() == caller)
        elsewhere = false;
      started.count_down();
      std::unique_lock<std::mutex> lk(mu);
      cv.wait(lk, [&] { return open; });
      ++ran;
    });
  started.wait();
  // Three more wait in the queue; each tells when it is destroyed.
  struct on_drop {
    std::latch* l;
    ~on_drop() { l->count_down(); }
  };
  for (int i = 0; i < 3; ++i) {
    std::shared_ptr<on_drop> token(new on_drop{&dropped});
    pool.post([&ran, token] { ++ran; });
  }
  CHECK(pool.queued() == 3);
  std::thread stopper([&] { pool.stop(); });
  dropped.wait(); // stop() dropped the three while both threads still ran theirs
  {
    std::lock_guard<std::mutex> lk(mu);
    open = true;
  }
  cv.notify_all();
  stopper.join(); // the threads finished their jobs and were joined
  CHECK(ran == 2);
  CHECK(elsewhere);
  CHECK(pool.queued() == 0);
  CHECK(pool.jobs_run() == 2);
  // After stop(): a job is destroyed at once, unrun.
  auto token = std::make_shared<int>(0);
  pool.post([&ran, token] { ++ran; });
  CHECK(token.use_count() == 1);
  CHECK(pool.queued() == 0);
  CHECK(ran == 2);
}

TEST_CASE("map workers: with real threads, rapid changes reach every stream in order and end "
          "with the newest map") {
  const auto opts = test::fresh_store(storage::engine::sqlite, "maps_threads");
  world w(opts);
  constexpr int n = 12;
  for (int i = 0; i < n; ++i)
    w.add_peer("p" + std::to_string(i), 10 + i);

  // A sink that can be waited on for a serial.
  struct waiting_sink : session_sink {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::uint64_t> serials;
    std::vector<bool> initial;
    void close(const std::string&) override {}
    void deliver(map_update_ptr u, bool first) override {
      std::lock_guard<std::mutex> lk(mu);
      serials.push_back(u->map.serial);
      initial.push_back(first);
      cv.notify_all();
    }
    bool wait_for(std::uint64_t serial) {
      std::unique_lock<std::mutex> lk(mu);
      return cv.wait_for(lk, std::chrono::seconds(30),
                         [&] { return !serials.empty() && serials.back() >= serial; });
    }
  };

  test::actor_rig base(opts);
  // The rig's directory without workers; this one hands every batch to two threads, at most two
  // maps a batch.
  auto workers = std::make_shared<map_workers>(2, 0, 2);
  directory_config dc;
  dc.writer = base.writer;
  dc.loader = base.loader;
  dc.mappers = workers;
  auto dir = spawn_peer_directory(*base.sys, dc);
  auto acc = base.ask(dir, find_account_atom::value, w.account);
  std::vector<std::shared_ptr<waiting_sink>> sinks;
  for (int i = 0; i < n; ++i) {
    auto p = base.ask(dir, find_peer_atom::value, w.account, "p" + std::to_string(i));
    sinks.push_back(std::make_shared<waiting_sink>());
    REQUIRE(base.ask(p, connect_atom::value, session_token(100 + i), sink_ptr(sinks.back())));
  }
  const auto first = w.serial();
  for (auto& s : sinks)
    REQUIRE(s->wait_for(first));
  // Ten registrations told back to back: every map changes with each.
  for (int k = 0; k < 10; ++k) {
    auto p = w.add_peer("q" + std::to_string(k), 100 + k);
    caf::anon_send(acc, added_atom::value, p, std::vector<std::string>{w.all_group}, w.serial());
  }
  const auto last = w.serial();
  for (auto& s : sinks) {
    REQUIRE(s->wait_for(last));
    std::lock_guard<std::mutex> lk(s->mu);
    CHECK(s->initial.front());
    CHECK(std::count(s->initial.begin(), s->initial.end(), true) == 1);
    // Never an older map after a newer one, never the same map twice.
    CHECK(std::adjacent_find(s->serials.begin(), s->serials.end(),
                             [](auto x, auto y) { return y <= x; }) == s->serials.end());
    CHECK(s->serials.back() == last);
  }
  const auto st = base.ask(acc, status_atom::value);
  CHECK(st.counter("map_batches_offloaded") >= 2);
  // Never more maps computed and not yet sent than the workers' credit in batches (2 x 2 x 2).
  REQUIRE(workers->credit() * workers->batch_max() == 8);
  CHECK(st.gauge("maps_held_peak") >= 1);
  CHECK(st.gauge("maps_held_peak") <= 8);
  CHECK(st.gauge("maps_held") == 0);
  caf::anon_send_exit(dir, caf::exit_reason::user_shutdown);
  workers->stop();
}
