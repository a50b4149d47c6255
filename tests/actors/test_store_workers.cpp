// Store workers: accounts hashed onto N workers, so one account's slow SQL holds up only the
// accounts that share its worker. The slow SQL is real: another session holds the lock the change
// needs (SQLite: the database's write lock; PostgreSQL: the account's row) until the test lets go.
#include "actors/account_actor.hpp"
#include "actors/directory.hpp"
#include "actors/status_writer.hpp"
#include "actors/store_worker.hpp"
#include "storage/admin_store.hpp"
#include "storage/schema.hpp"
#include "tests/support/test_db.hpp"
#include "tests/support/wait.hpp"

#include <caf/all.hpp>
#include <doctest/doctest.h>
#include <soci/soci.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <thread>

using namespace nbm;
using namespace nbm::actors;

namespace {

struct rig {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  status_writer writer;
  account_loader loader;
  peer_directory dir;

  rig(const storage::db_options& db, std::size_t workers) {
    sys = std::make_unique<caf::actor_system>(cfg);
    writer = spawn_status_writer(*sys, {db, 1, 1024});
    loader_config lc;
    lc.db = db;
    lc.poll_interval = std::chrono::milliseconds(0);
    lc.workers = workers;
    loader = spawn_account_loader(*sys, lc);
    dir = spawn_peer_directory(*sys, {writer, {}, loader, {}, {}, {}});
  }
  ~rig() {
    caf::anon_send_exit(dir, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(writer, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(loader, caf::exit_reason::user_shutdown);
    writer = status_writer{};
    loader = account_loader{};
    dir = peer_directory{};
    sys.reset();
  }

  // The answer within `deadline`, or nothing.
  template <class R, class Handle, class... Ts>
  std::optional<R> ask(std::chrono::milliseconds deadline, const Handle& h, Ts&&... xs) {
    caf::scoped_actor self{*sys};
    std::optional<R> out;
    self->request(h, deadline, std::forward<Ts>(xs)...)
        .receive([&](R& x) { out = std::move(x); }, [&](caf::error&) {});
    return out;
  }
  account_actor account(const std::string& id) {
    return *ask<account_actor>(std::chrono::seconds(10), dir, find_account_atom::value, id);
  }
  loader_state_record status() {
    return loader_record_of(
        *ask<actor_status>(std::chrono::seconds(10), loader, status_atom::value));
  }
};

// Until the loader says a job is with the given worker. The loader's gauge is seen only by asking
// it, and nothing tells the test when the account actor handed its change over: each ask waits for
// the loader's answer and the next follows at once (no sleep), until the deadline.
bool busy_worker(rig& r, std::size_t worker, std::uint64_t at_least = 1) {
  const auto until = std::chrono::steady_clock::now() + test::wait_deadline;
  while (std::chrono::steady_clock::now() < until)
    if (r.status().busy_by_worker.at(worker) >= at_least)
      return true;
  return false;
}

struct two_accounts {
  std::string a, b, owner_a;
};

// Two accounts the given number of workers serves on different workers.
two_accounts make_accounts(soci::session& sql, storage::engine kind, std::size_t workers) {
  storage::admin_store admin(sql, kind);
  storage::new_account spec;
  spec.with_pat = false;
  spec.owner_email = "a@example.com";
  auto a = admin.create_account(spec);
  for (;;) {
    spec.owner_email = "b@example.com";
    auto b = admin.create_account(spec);
    if (workers == 1 ||
        store_worker_index(a.account_id, workers) != store_worker_index(b.account_id, workers))
      return {a.account_id, b.account_id, a.owner_user_id};
  }
}

// Holds the lock a change of `account` needs, on a session of its own, until release().
struct lock_holder {
  soci::session sql;
  storage::engine kind;
  explicit lock_holder(const storage::db_options& db, const std::string& account) : kind(db.kind) {
    storage::open_session(sql, db);
    if (kind == storage::engine::sqlite) {
      sql << "BEGIN IMMEDIATE"; // the write lock of the whole file; readers go on (WAL)
    } else {
      sql << "BEGIN";
      std::string id;
      sql << "SELECT id FROM accounts WHERE id = :id FOR UPDATE", soci::use(account),
          soci::into(id);
    }
  }
  void release() { sql << "ROLLBACK"; }
};

// A request sent from an actor of its own: `done` turns true when it is answered (waking
// NBM_WAIT_UNTIL).
template <class R>
struct pending {
  std::shared_ptr<std::atomic<bool>> done = std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<R> out = std::make_shared<R>();
};

template <class R, class Handle, class... Ts>
pending<R> send_request(caf::actor_system& sys, const Handle& h, Ts... xs) {
  pending<R> p;
  sys.spawn([=](caf::event_based_actor* self) {
    const auto answered = [=] {
      *p.done = true;
      test::changed();
    };
    self->request(h, caf::infinite, xs...)
        .then(
            [=](R& o) {
              *p.out = std::move(o);
              answered();
            },
            [=](caf::error&) { answered(); });
  });
  return p;
}

pending<change_outcome> send_change(caf::actor_system& sys, const account_actor& acc,
                                    core::admin_change c) {
  return send_request<change_outcome>(sys, acc, change_atom::value,
                                      std::make_shared<core::admin_change>(std::move(c)));
}

core::admin_change new_group(const std::string& owner, const std::string& name) {
  core::group g;
  g.name = name;
  return {owner, core::change::save_group{g}};
}

} // namespace

TEST_CASE("store workers: a change of one account waiting for a lock holds up no read (and on "
          "PostgreSQL no change) of an account on another worker") {
  for (const auto& opts : test::fresh_backends("store_workers")) {
    INFO(test::backend_name(opts));
    {
      storage::database d(opts);
      storage::ensure_schema(d);
    }
    soci::session sql;
    storage::open_session(sql, opts);
    const std::size_t workers = 4;
    const auto acc = make_accounts(sql, opts.kind, workers);
    rig r(opts, workers);
    auto a = r.account(acc.a);
    auto b = r.account(acc.b);
    const auto wa = store_worker_index(acc.a, workers);

    lock_holder lock(opts, acc.a);
    auto slow = send_change(*r.sys, a, new_group(acc.owner_a, "slow"));
    // A's change is with its worker (it waits there for the lock).
    REQUIRE(busy_worker(r, wa));

    auto read_b =
        r.ask<read_outcome>(std::chrono::seconds(10), b, read_atom::value, read_request{true, {}});
    REQUIRE(read_b);
    REQUIRE(read_b->acc);
    CHECK(read_b->acc->id == acc.b);
    if (opts.kind == storage::engine::postgres) {
      // Only A's row is locked: B's change commits while A's waits.
      const auto owner_b = read_b->acc->users.at(0).id;
      auto change_b =
          r.ask<change_outcome>(std::chrono::seconds(10), b, change_atom::value,
                                std::make_shared<core::admin_change>(new_group(owner_b, "quick")));
      REQUIRE(change_b);
      CHECK_FALSE(change_b->refused);
      CHECK(change_b->failure == store_failure::none);
    }
    CHECK_FALSE(slow.done->load()); // A's change was waiting all along

    lock.release();
    NBM_WAIT_UNTIL(slow.done->load());
    CHECK_FALSE(slow.out->refused);
    CHECK(slow.out->failure == store_failure::none);
    REQUIRE(slow.out->after);
    CHECK(slow.out->after->find_group_by_name("slow"));
  }
}

TEST_CASE("store workers: with one worker the same read waits behind the change (what the test "
          "above would see without per-account workers)") {
  const auto opts = test::fresh_store(storage::engine::sqlite, "store_worker_one");
  {
    storage::database d(opts);
    storage::ensure_schema(d);
  }
  soci::session sql;
  storage::open_session(sql, opts);
  const auto acc = make_accounts(sql, opts.kind, 1);
  rig r(opts, 1);
  auto a = r.account(acc.a);
  auto b = r.account(acc.b);
  lock_holder lock(opts, acc.a);
  auto slow = send_change(*r.sys, a, new_group(acc.owner_a, "slow"));
  REQUIRE(busy_worker(r, 0));
  // Behind A's change on the one worker: answered only after it, so not while the lock is held
  // (the change cannot finish before).
  auto read_b = send_request<read_outcome>(*r.sys, b, read_atom::value, read_request{});
  // Both jobs are on the worker, the read behind the change the lock holds up: not answered.
  // (The order in which the two answers then arrive is the actors' business: A's applies its
  // change before it answers, so B's read may overtake it.)
  REQUIRE(busy_worker(r, 0, 2));
  CHECK_FALSE(read_b.done->load());
  CHECK_FALSE(slow.done->load());
  lock.release();
  NBM_WAIT_UNTIL(slow.done->load() && read_b.done->load());
  CHECK(read_b.out->acc);
}

TEST_CASE("store workers: an account's worker is the same for every process (FNV-1a)") {
  CHECK(store_worker_index("anything", 1) == 0);
  CHECK(store_worker_index("anything", 0) == 0);
  // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c.
  CHECK(store_worker_index("a", 1000) == 0xaf63dc4c8601ec8cull % 1000);
  std::size_t seen[4] = {};
  for (int i = 0; i < 400; ++i)
    ++seen[store_worker_index("account-" + std::to_string(i), 4)];
  for (auto n : seen)
    CHECK(n > 50); // spread over every worker
}

namespace {

// Locks account `first`, then, once the other session holds `second`, account `second`: a real
// deadlock with a session that takes them the other way round. Later runs just write.
struct crossing_job : store_job {
  std::string first, second;
  std::atomic<bool>* mine_locked;
  std::atomic<bool>* theirs_locked;
  bool retry = true;
  std::atomic<int> runs{0};
  bool retry_on_conflict() const override { return retry; }
  std::string what() const override { return "crossing locks"; }
  void run(soci::session& sql, storage::engine) override {
    const int n = ++runs;
    soci::transaction tr(sql);
    std::string id;
    sql << "SELECT id FROM accounts WHERE id = :id FOR UPDATE", soci::use(first), soci::into(id);
    if (n == 1) {
      *mine_locked = true;
      test::changed();
      test::wait_until([&] { return theirs_locked->load(); });
    }
    sql << "SELECT id FROM accounts WHERE id = :id FOR UPDATE", soci::use(second), soci::into(id);
    tr.commit();
  }
};

// What the job ended as, after the other session (taking b then a, with a deadlock check much
// later than the job's, so PostgreSQL picks the job as the deadlock's victim) gave up its locks.
store_failure run_crossing(const storage::db_options& opts, crossing_job& job,
                           caf::actor_system& sys, const store_worker& w, const two_accounts& acc) {
  std::atomic<bool> mine{false}, theirs{false};
  job.first = acc.a;
  job.second = acc.b;
  job.mine_locked = &mine;
  job.theirs_locked = &theirs;
  std::thread other([&] {
    soci::session s;
    storage::open_session(s, opts);
    test::wait_until([&] { return mine.load(); });
    // PostgreSQL's deadlock check runs in a backend that has waited deadlock_timeout (1 s) for a
    // lock, and that backend is the victim. This side's check comes only after a minute, so the
    // job's is the one that finds the deadlock, whichever of the two begins to wait first.
    s << "SET deadlock_timeout = '60s'";
    s << "BEGIN";
    std::string id;
    s << "SELECT id FROM accounts WHERE id = :id FOR UPDATE", soci::use(acc.b), soci::into(id);
    theirs = true;
    test::changed();
    try {
      s << "SELECT id FROM accounts WHERE id = :id FOR UPDATE", soci::use(acc.a), soci::into(id);
      s << "COMMIT";
    } catch (const std::exception&) {
      s << "ROLLBACK"; // this side was the victim after all: the job went through
    }
  });
  caf::scoped_actor self{sys};
  store_failure out = store_failure::failed;
  store_job_ptr ptr(&job, [](store_job*) {});
  self->request(w, std::chrono::seconds(30), run_atom::value, ptr)
      .receive([&](store_job_ptr& done) { out = done->failure; }, [&](caf::error&) {});
  other.join();
  return out;
}

} // namespace

TEST_CASE("store workers: a job PostgreSQL rolls back for a deadlock runs again and lands; one "
          "that may not repeat fails") {
  if (!test::postgres_available()) {
    CHECK_MESSAGE(std::getenv("NBM_REQUIRE_PG") == nullptr, "NBM_REQUIRE_PG=1 but no PostgreSQL");
    return;
  }
  const auto opts = test::fresh_store(storage::engine::postgres, "store_deadlock");
  {
    storage::database d(opts);
    storage::ensure_schema(d);
  }
  soci::session sql;
  storage::open_session(sql, opts);
  const auto acc = make_accounts(sql, opts.kind, 1);
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto w = spawn_store_worker(sys, opts, true);

  crossing_job again;
  CHECK(run_crossing(opts, again, sys, w, acc) == store_failure::none);
  CHECK(again.runs == 2); // the deadlock's victim, then the run that landed

  crossing_job once;
  once.retry = false;
  CHECK(run_crossing(opts, once, sys, w, acc) == store_failure::failed);
  CHECK(once.runs == 1);
  caf::anon_send_exit(w, caf::exit_reason::user_shutdown);
}
