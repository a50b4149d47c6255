// Replica liveness on one PostgreSQL, end to end with real server processes: a replica killed
// with -9 has its sessions ended by a survivor within the lease (and only the sessions that still
// hold its tokens); a replica paused with SIGSTOP past the lease finds its sessions fenced out
// when it resumes, closes those streams and leaves the store correct; a restarted replica rejoins.
// PostgreSQL only (SQLite has one process): skipped without it, a failure with NBM_REQUIRE_PG=1.
#include "tests/e2e/harness.hpp"

#include <httplib.h>

#include <cstdlib>

using namespace nbm;
using namespace nbm::e2e;

namespace {

constexpr auto lease = 2000ms;

bool have_pg() {
  if (test::postgres_available())
    return true;
  const char* req = std::getenv("NBM_REQUIRE_PG");
  // Required: go on, so the missing database fails the test (fresh_store throws).
  return req && std::string(req) == "1";
}

void short_lease() {
  ::setenv("NBM_REPLICA_LEASE_MS", std::to_string(lease.count()).c_str(), 1);
  ::setenv("NBM_REPLICA_HEARTBEAT_MS", "250", 1);
  ::setenv("NBM_EPHEMERAL_LIFETIME", "600s", 1);
}

// The replica id process `pid` registered ("" while it has not).
std::string replica_id_of(const server& s, pid_t pid) {
  soci::session sql;
  storage::open_session(sql, s.db);
  std::string id;
  long long p = pid;
  soci::indicator ind = soci::i_null;
  sql << "SELECT id FROM nbm_replicas WHERE pid = :pid", soci::use(p, "pid"), soci::into(id, ind);
  return sql.got_data() && ind == soci::i_ok ? id : std::string();
}

// The replica the store records as holding `peer_id`'s session ("" when none).
std::string holder_of(const server& s, const std::string& peer_id) {
  soci::session sql;
  storage::open_session(sql, s.db);
  std::string id;
  std::string p = peer_id;
  soci::indicator ind = soci::i_null;
  sql << "SELECT replica_id FROM nbm_replica_sessions WHERE peer_id = :p", soci::use(p, "p"),
      soci::into(id, ind);
  return sql.got_data() && ind == soci::i_ok ? id : std::string();
}

bool connected(server& s, tools::peer_client& p) {
  auto row = s.peer_by_key(p.public_key_b64());
  return row && row->status.connected;
}

std::int64_t token_of(server& s, tools::peer_client& p) {
  auto row = s.peer_by_key(p.public_key_b64());
  return row ? row->status.session_started_at : -1;
}

double metric(int port, const std::string& name) {
  httplib::Client cli("127.0.0.1", port);
  auto r = cli.Get("/metrics");
  if (!r || r->status != 200)
    return -1;
  std::istringstream in(r->body);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(name + " ", 0) == 0)
      return std::stod(line.substr(name.size() + 1));
  return -1;
}

} // namespace

TEST_CASE("replicas: kill -9 of a replica holding sessions: a survivor ends exactly those within "
          "the lease; the restarted replica rejoins") {
  if (!have_pg())
    return;
  short_lease();
  server a(storage::engine::postgres);
  const auto key = a.setup_key("--name fleet --reusable");
  auto b = std::make_unique<replica>(a);
  REQUIRE(eventually([&] { return !replica_id_of(a, b->pid).empty(); }, 5000ms));
  const auto b_id = replica_id_of(a, b->pid);
  const auto a_id = replica_id_of(a, a.pid);
  REQUIRE_FALSE(a_id.empty());
  CHECK(a_id != b_id);

  // Three peers stream through B; a fourth streamed through B, then moved to A (a newer session:
  // B's record of it is stale and must not end it).
  const std::string k1 = a.dir + "/one.key", k4 = a.dir + "/moved.key";
  tools::peer_client p1(b->target(), k1), p2(b->target()), p3(b->target()), moved(b->target(), k4);
  REQUIRE(p1.login(key, "one").ok());
  REQUIRE(p2.login(key, "two").ok());
  REQUIRE(p3.login(key, "three").ok());
  REQUIRE(moved.login(key, "moved").ok());
  tools::peer_client moved_on_a(a.target(), k4);
  std::chrono::steady_clock::time_point killed;
  {
    // The streams on B end with B (the kill); A's stream ends by its deadline.
    stream s1(p1, "one", 60000), s2(p2, "two", 60000), s3(p3, "three", 60000),
        s4(moved, "moved", 60000);
    for (auto* s : {&s1, &s2, &s3, &s4})
      REQUIRE(s->wait_maps(1, 5000ms));
    for (auto* p : {&p1, &p2, &p3, &moved})
      REQUIRE(eventually([&] { return connected(a, *p); }));
    const auto moved_id = a.peer_by_key(moved.public_key_b64())->id;
    CHECK(holder_of(a, a.peer_by_key(p1.public_key_b64())->id) == b_id);
    REQUIRE(moved_on_a.login("", "moved").ok());
    stream s4a(moved_on_a, "moved", 9000);
    REQUIRE(s4a.wait_maps(1, 5000ms));
    REQUIRE(eventually([&] { return holder_of(a, moved_id) == a_id; }));
    const auto moved_token = token_of(a, moved);

    ::kill(b->pid, SIGKILL);
    ::waitpid(b->pid, nullptr, 0);
    b->pid = -1;
    killed = std::chrono::steady_clock::now();
    // The dead replica's three sessions end within the lease (+ a heartbeat and a margin).
    CHECK(eventually([&] { return !connected(a, p1) && !connected(a, p2) && !connected(a, p3); },
                     lease + 3000ms));
    const auto took = std::chrono::steady_clock::now() - killed;
    MESSAGE("sessions of the killed replica ended after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
    CHECK(took >= lease - 300ms); // not before its lease ran out
    // The peer that had moved to A keeps its session (the fence: its token is A's).
    CHECK(connected(a, moved));
    CHECK(token_of(a, moved) == moved_token);
    CHECK_FALSE(s4a.finished);
    const auto log = read_file(a.dir + "/server.log");
    CHECK(occurrences(log, "replica " + b_id) >= 1);
    CHECK(log.find("declared dead after") != std::string::npos);
    CHECK(log.find("sessions ended: 3 (3 recorded") != std::string::npos);
    CHECK(metric(a.metrics_port, "nbm_replica_sessions_ended_total") == 3);
    CHECK(metric(a.metrics_port, "nbm_replicas_declared_dead_total") == 1);
    CHECK(holder_of(a, a.peer_by_key(p1.public_key_b64())->id).empty());
  }

  // B restarts (a new process): it rejoins, and serves sessions again.
  b = std::make_unique<replica>(a);
  REQUIRE(eventually([&] { return !replica_id_of(a, b->pid).empty(); }, 5000ms));
  const auto b2_id = replica_id_of(a, b->pid);
  tools::peer_client p1_again(b->target(), k1);
  REQUIRE(p1_again.login("", "one").ok());
  stream s1(p1_again, "one", 4000);
  REQUIRE(s1.wait_maps(1, 5000ms));
  REQUIRE(eventually([&] { return connected(a, p1); }));
  CHECK(holder_of(a, a.peer_by_key(p1.public_key_b64())->id) == b2_id);
  CHECK(eventually([&] { return metric(a.metrics_port, "nbm_replicas_alive") == 2; }, 3000ms));
  b->stop();
  a.stop();
}

TEST_CASE(
    "replicas: a replica paused past its lease finds its sessions fenced out when it resumes, "
    "closes those streams and writes nothing stale") {
  if (!have_pg())
    return;
  short_lease();
  server a(storage::engine::postgres);
  const auto key = a.setup_key("--name fleet --reusable");
  replica b(a);
  REQUIRE(eventually([&] { return !replica_id_of(a, b.pid).empty(); }, 5000ms));
  const auto b_id = replica_id_of(a, b.pid);
  const std::string k2 = a.dir + "/two.key";
  tools::peer_client p1(b.target()), p2(b.target(), k2);
  REQUIRE(p1.login(key, "one").ok());
  REQUIRE(p2.login(key, "two").ok());
  stream s1(p1, "one", 30000), s2(p2, "two", 30000);
  REQUIRE(s1.wait_maps(1, 5000ms));
  REQUIRE(s2.wait_maps(1, 5000ms));
  REQUIRE(eventually([&] { return connected(a, p1) && connected(a, p2); }));

  REQUIRE(::kill(b.pid, SIGSTOP) == 0);
  const auto paused = std::chrono::steady_clock::now();
  // A declares B dead and ends both sessions.
  CHECK(eventually([&] { return !connected(a, p1) && !connected(a, p2); }, lease + 3000ms));
  MESSAGE("sessions of the paused replica ended after "
          << std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::steady_clock::now() - paused)
                 .count()
          << " ms");
  // Meanwhile p2 reconnects to A (its stream on B hangs, as a client behind a frozen server's
  // open TCP connection would).
  tools::peer_client p2_on_a(a.target(), k2);
  REQUIRE(p2_on_a.login("", "two").ok());
  stream s2a(p2_on_a, "two", 12000);
  REQUIRE(s2a.wait_maps(1, 5000ms));
  REQUIRE(eventually([&] { return connected(a, p2); }));
  const auto p2_token = token_of(a, p2);
  CHECK_FALSE(s1.finished);
  CHECK_FALSE(s2.finished);

  REQUIRE(::kill(b.pid, SIGCONT) == 0);
  // B finds its row gone and closes both streams, at once (its heartbeat timer is overdue).
  CHECK(s1.wait_end(3000ms));
  CHECK(s2.wait_end(3000ms));
  CHECK(eventually([&] {
    return read_file(b.log).find("declared dead by another replica") != std::string::npos;
  }));
  // The store stays true: p1 disconnected, p2 connected with A's session; B wrote nothing stale.
  std::this_thread::sleep_for(500ms); // what B would write after the close has had time to land
  CHECK_FALSE(connected(a, p1));
  CHECK(connected(a, p2));
  CHECK(token_of(a, p2) == p2_token);
  CHECK_FALSE(s2a.finished);
  // B registered again under its id and serves: p1 connects through it and its session is B's.
  REQUIRE(eventually([&] { return replica_id_of(a, b.pid) == b_id; }));
  tools::peer_client p1_again(b.target());
  REQUIRE(p1_again.login(key, "one-again").ok());
  stream s3(p1_again, "one-again", 3000);
  REQUIRE(s3.wait_maps(1, 5000ms));
  REQUIRE(eventually([&] { return connected(a, p1_again); }));
  CHECK(holder_of(a, a.peer_by_key(p1_again.public_key_b64())->id) == b_id);
  CHECK(metric(a.metrics_port, "nbm_replicas_declared_dead_total") == 1);
}
