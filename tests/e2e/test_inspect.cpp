// The inspector console end to end: the real binary with simulated peers (tools/peer_sim's
// client), `netbird-mgmt inspect` run as an operator would: every command's one-shot JSON, a wrong
// token refused, a console that goes away in the middle of a trace, and the interactive console
// driven in tmux (typing, Tab completion, history, watch stopped with Ctrl-C).
#include "tests/e2e/harness.hpp"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>

#include <map>
#include <set>
#include <thread>

using namespace nbm;
using namespace nbm::e2e;
using json = nlohmann::json;

namespace {

struct result {
  std::string out;
  int status = -1;
};

result sh(const std::string& cmd) {
  result r;
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p))
    r.out += buf;
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string inspect_in(const std::string& dir, const std::string& args) {
  return std::string(NBM_SERVER_BIN) + " inspect --datadir " + dir + " " + args;
}

std::string inspect_cmd(const server& s, const std::string& args) {
  return inspect_in(s.dir, args);
}

json inspect_dir(const std::string& dir, const std::string& command, int want_status = 0) {
  auto r = sh(inspect_in(dir, "--json " + command) + " 2>/dev/null");
  INFO("inspect " << command << ": " << r.out);
  REQUIRE(r.status == want_status);
  const auto nl = r.out.find('\n');
  REQUIRE(nl != std::string::npos);
  return json::parse(r.out.substr(0, nl));
}

json inspect(const server& s, const std::string& command, int want_status = 0) {
  return inspect_dir(s.dir, command, want_status);
}

bool has_event(const json& messages, const std::string& what) {
  for (const auto& m : messages)
    if (m["what"] == what)
      return true;
  return false;
}

// Two peers of one account, both synced: what every command has to show.
struct two_peers {
  server s{storage::engine::sqlite};
  std::string key = s.setup_key("--name k --reusable --auto-groups " + s.all_group);
  tools::peer_client a{s.target()}, b{s.target()};
  std::unique_ptr<stream> sa, sb;
  std::string ida, idb;
  two_peers() {
    REQUIRE(a.login(key, "alpha").ok());
    REQUIRE(b.login(key, "beta").ok());
    sa = std::make_unique<stream>(a, "alpha");
    sb = std::make_unique<stream>(b, "beta");
    REQUIRE(sa->wait_maps(1, 10000ms));
    REQUIRE(sb->wait_maps(1, 10000ms));
    ida = s.peer_by_key(a.public_key_b64())->id;
    idb = s.peer_by_key(b.public_key_b64())->id;
    // Both sessions attached (after their fenced writes landed).
    REQUIRE(
        eventually([&] { return inspect(s, "account " + s.account)["connected"] == 2; }, 10000ms));
  }
};

} // namespace

// `inspect --json trace <peer>` in a child process, its output into `out`.
pid_t trace_to(const server& s, const std::string& peer, const std::string& out) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(fd, 1);
    ::execl(NBM_SERVER_BIN, NBM_SERVER_BIN, "inspect", "--datadir", s.dir.c_str(), "--json",
            "trace", peer.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

TEST_CASE("inspect: every command's one-shot JSON describes the live server") {
  ::setenv("NBM_REPLICA_ID", "e2e-replica-1", 1);
  two_peers t;
  auto& s = t.s;

  { // the token: created 0600 in the datadir, never in the log
    struct stat st {};
    REQUIRE(::stat((s.dir + "/inspector.token").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    const auto token = read_file(s.dir + "/inspector.token");
    REQUIRE(token.size() > 32);
    CHECK(read_file(s.dir + "/server.log").find(token.substr(0, 40)) == std::string::npos);
  }
  { // overview
    const auto o = inspect(s, "overview");
    CHECK(o["command"] == "overview");
    CHECK(o["kinds"]["peer"]["actors"] == 2);
    CHECK(o["kinds"]["account"]["actors"] == 1);
    CHECK(o["kinds"]["peer"]["handled"].get<std::uint64_t>() >= 8); // connect, landed, attach, map
    CHECK(o["kinds"]["peer"].contains("per_second"));
    CHECK(o["kinds"].contains("status_writer"));
    CHECK(o["kinds"].contains("directory"));
    // Every store worker (the loader's four, the activity log's) and the status writer with its
    // database worker, each with an id and its queue; an idle server: all answered, queues 0.
    std::multiset<std::string> workers;
    for (const auto& w : o["store_workers"]) {
      INFO(w.dump());
      workers.insert(w["kind"].get<std::string>() + ":" + w["id"].get<std::string>());
      CHECK(w["queue"].get<std::int64_t>() == 0);
      CHECK(w["answered"] == true);
      if (w["kind"] == "store_worker")
        CHECK(w["owner"] == (w["id"] == "status_0" ? "status_writer" : "account_loader"));
    }
    CHECK(workers == std::multiset<std::string>{
                         "store_worker:0", "store_worker:1", "store_worker:2", "store_worker:3",
                         "store_worker:events", "status_writer:", "store_worker:status_0"});
    // The store workers have run jobs (the account's read at least).
    std::uint64_t jobs = 0;
    for (const auto& w : o["store_workers"])
      if (w["kind"] == "store_worker")
        jobs += w["counters"]["jobs"].get<std::uint64_t>();
    CHECK(jobs >= 1);
    REQUIRE(o["top_mailboxes"].size() >= 2);
    CHECK(o["top_mailboxes"][0]["mailbox"] >= o["top_mailboxes"][1]["mailbox"]);
    CHECK(o["rate_window_ms"].get<int>() >= 400);
    CHECK(o["missing"].empty());
  }
  { // peers: what completion offers
    const auto p = inspect(s, "peers");
    REQUIRE(p["peers"].size() == 2);
    std::set<std::string> names, ids;
    for (const auto& x : p["peers"]) {
      names.insert(x["name"]);
      ids.insert(x["id"]);
    }
    CHECK(names == std::set<std::string>{"alpha", "beta"});
    CHECK(ids == std::set<std::string>{t.ida, t.idb});
  }
  { // peer, by id, name and key: the same peer
    const auto p = inspect(s, "peer " + t.ida);
    CHECK(p["id"] == t.ida);
    CHECK(p["name"] == "alpha");
    CHECK(p["account"] == s.account);
    CHECK(p["stream"] == "open");
    CHECK(p["session_token"].get<std::int64_t>() > 0);
    CHECK(p["last_map_serial"].get<std::int64_t>() > 0);
    CHECK(p["last_map_peers"] == 1); // beta
    CHECK(p["replica"] == "e2e-replica-1");
    CHECK(has_event(p["messages"], "connect"));
    CHECK(has_event(p["messages"], "landed"));
    CHECK(has_event(p["messages"], "attach"));
    CHECK(has_event(p["messages"], "map"));
    for (const auto& m : p["messages"])
      CHECK(m["seq"].get<std::uint64_t>() <= p["handled"].get<std::uint64_t>());
    CHECK(inspect(s, "peer alpha")["id"] == t.ida);
    CHECK(inspect(s, "peer " + t.b.public_key_b64())["id"] == t.idb);
    // since: only what came after
    const auto later = inspect(s, "peer alpha since " + std::to_string(p["handled"].get<int>()));
    CHECK(later["messages"].empty());
  }
  { // account
    const auto a = inspect(s, "account " + s.account);
    CHECK(a["serial"].get<std::int64_t>() > 0);
    CHECK(a["peers"] == 2);
    CHECK(a["connected"] == 2);
    CHECK(a["connected_peers"] == json::array({std::min(t.ida, t.idb), std::max(t.ida, t.idb)}));
    CHECK(a["pending_changes"] == 0);
    CHECK(a["pending_registrations"] == 0);
    // A change (a new group, made by another process): the account fans out, timed.
    s.admin("group create --account " + s.account + " --name inspected");
    json after;
    REQUIRE(eventually(
        [&] {
          after = inspect(s, "account " + s.account);
          return after["last_fanout_us"].get<std::int64_t>() >= 0;
        },
        10000ms));
    CHECK(after["serial"].get<std::int64_t>() > a["serial"].get<std::int64_t>());
    CHECK(after["counters"]["changes"].get<std::uint64_t>() >
          a["counters"]["changes"].get<std::uint64_t>());
  }
  { // replicas: this replica, the peers whose sessions it holds
    const auto r = inspect(s, "replicas");
    REQUIRE(r["replicas"].size() == 1);
    CHECK(r["replicas"][0]["id"] == "e2e-replica-1");
    CHECK(r["replicas"][0]["self"] == true);
    CHECK(r["replicas"][0]["peers_held"] == 2);
    CHECK(r["replicas"][0]["alive"] == true);
    CHECK(r["replicas"][0]["lease_ms"].is_null()); // SQLite: one process, no lease
    CHECK(r["streams_here"] == 2);
    CHECK(r["source"] == "this replica only");
  }
  { // bad questions: a clear error, exit status 1, the server stays up
    CHECK(inspect(s, "no-such-command", 1).contains("error"));
    CHECK(inspect(s, "peer nobody", 1)["error"] ==
          "no peer with this id, key or name on this replica");
    CHECK(inspect(s, "account nope", 1).contains("error"));
    CHECK(inspect(s, "peer alpha since x", 1).contains("error"));
    CHECK(inspect(s, "replicas")["replicas"].size() == 1);
  }
  { // watch: refreshes until stopped (here: the client's exit after a few lines, by `head`)
    auto r =
        sh("timeout 10 " + inspect_cmd(s, "--json --interval 0.2 watch replicas") + " | head -n 3");
    CHECK(occurrences(r.out, "\"command\":\"replicas\"") == 3);
  }
}

TEST_CASE("inspect: a wrong token is refused, a console that goes away mid-trace costs nothing") {
  two_peers t;
  auto& s = t.s;
  { // wrong token: refused, no answer to anything
    const auto bad = s.dir + "/wrong.token";
    std::ofstream(bad) << "not-the-token-at-all-not-the-token-at-all-xxxx\n";
    auto r = sh(inspect_cmd(s, "--token-file " + bad + " --json overview") + " 2>&1");
    CHECK(r.status == 1);
    CHECK(r.out.find("wrong token") != std::string::npos);
    CHECK(r.out.find("\"kinds\"") == std::string::npos);
    // The raw protocol: a question before auth is refused too, and the connection closed.
    const auto addr = read_file(s.dir + "/inspector.addr");
    const auto port = std::stoi(addr.substr(addr.rfind(':') + 1));
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(static_cast<std::uint16_t>(port));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0);
    const std::string q = "overview\n";
    REQUIRE(::send(fd, q.data(), q.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(q.size()));
    std::string got;
    char buf[256];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;)
      got.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    CHECK(got == "{\"error\":\"wrong token\"}\n");
  }
  { // trace: follows the peer's messages live; killed mid-trace, the server does not notice
    const auto out = s.dir + "/trace.out";
    const pid_t pid = trace_to(s, "alpha", out);
    REQUIRE(eventually([&] { return read_file(out).find("\"connect\"") != std::string::npos; },
                       10000ms));
    // A new session of alpha: its disconnect and the next connect show up in the trace live.
    t.sa->cancel();
    REQUIRE(
        eventually([&] { return occurrences(read_file(out), "\"disconnect\"") >= 1; }, 10000ms));
    ::kill(pid, SIGKILL); // the console vanishes in the middle of the trace
    int st = 0;
    ::waitpid(pid, &st, 0);
    // The server is unaffected: beta's stream still gets maps, a new console is answered, and
    // alpha syncs again.
    stream sa2(t.a, "alpha");
    REQUIRE(sa2.wait_maps(1, 10000ms));
    REQUIRE(
        eventually([&] { return inspect(s, "account " + s.account)["connected"] == 2; }, 10000ms));
    CHECK(inspect(s, "peer alpha")["stream"] == "open");
    CHECK(!t.sb->finished);
    // The vanished console's tracer is forgotten by alpha's actor (it monitored it).
    CHECK(eventually([&] { return inspect(s, "peer alpha")["tracers"] == 0; }, 5000ms));
  }
}

namespace {

// The lines of a file, each parsed as JSON (lines that are not JSON are skipped).
std::vector<json> json_lines(const std::string& path) {
  std::vector<json> out;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);) {
    try {
      out.push_back(json::parse(line));
    } catch (const std::exception&) {
    }
  }
  return out;
}

} // namespace

TEST_CASE("inspect: trace loses nothing in a burst; Ctrl-C stops it with the exact count") {
  two_peers t;
  auto& s = t.s;
  const auto out = s.dir + "/burst.out";
  const pid_t pid = trace_to(s, "alpha", out);
  // The ring as it stood comes first ("before"); then every message live.
  REQUIRE(eventually([&] { return read_file(out).find("\"before\":true") != std::string::npos; },
                     10000ms));
  REQUIRE(eventually([&] { return inspect(s, "peer alpha")["tracers"] == 1; }, 5000ms));
  // The burst: alpha's stream replaced again and again by new ones (three at a time), each a
  // connect, its fenced write, the attach and a map, and the older stream's end: far more than
  // the ring's 16 entries within a poll's 200 ms.
  t.sa->cancel();
  {
    std::vector<std::thread> th;
    for (int k = 0; k < 3; ++k)
      th.emplace_back([&] {
        for (int i = 0; i < 6; ++i) {
          stream again(t.a, "alpha");
          again.wait_maps(1, 5000ms);
        }
      });
    for (auto& x : th)
      x.join();
  }
  // Quiet again: the trace has every message the actor handled, up to its counter.
  std::uint64_t handled = 0;
  REQUIRE(eventually(
      [&] {
        handled = inspect(s, "peer alpha")["handled"].get<std::uint64_t>();
        const auto lines = json_lines(out);
        return !lines.empty() && lines.back().value("seq", std::uint64_t{0}) == handled &&
               inspect(s, "peer alpha")["handled"].get<std::uint64_t>() == handled;
      },
      20000ms));
  const auto lines = json_lines(out);
  std::uint64_t before = 0, live = 0, expect = 0;
  bool contiguous = true;
  std::map<std::string, int> what;
  for (const auto& l : lines) {
    const auto seq = l["seq"].get<std::uint64_t>();
    contiguous = contiguous && (expect == 0 || seq == expect);
    expect = seq + 1;
    CHECK(l["peer"] == t.ida);
    if (l.value("before", false))
      ++before;
    else {
      ++live;
      ++what[l["what"].get<std::string>()];
    }
  }
  INFO("before " << before << ", live " << live << ", handled " << handled);
  CHECK(contiguous);   // no gap: nothing lost
  CHECK(before >= 4);  // connect, landed, attach, map of the first session
  CHECK(before <= 16); // the ring
  CHECK(live >= 40);   // 18 sessions, several messages each
  CHECK(what["connect"] >= 10);
  CHECK(what["disconnect"] >= 1);
  CHECK(what["landed"] >= 10);
  // Ctrl-C: the console says stop, the server answers with how many it sent and dropped.
  ::kill(pid, SIGINT);
  int st = 0;
  REQUIRE(eventually([&] { return ::waitpid(pid, &st, WNOHANG) == pid; }, 10000ms));
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);
  const auto all = json_lines(out);
  REQUIRE(!all.empty());
  const auto& end = all.back();
  CHECK(end["stopped"] == true);
  CHECK(end["dropped"] == 0);
  CHECK(end["events"].get<std::uint64_t>() == live);
  CHECK(eventually([&] { return inspect(s, "peer alpha")["tracers"] == 0; }, 5000ms));
}

namespace {

// A management.json of the test's own: the fixture with `InspectorAddress` set to `address`.
std::string config_with_inspector(const server& s, const std::string& name,
                                  const std::string& address) {
  auto cfg = json::parse(read_file(s.config));
  cfg["InspectorAddress"] = address;
  const auto path = s.dir + "/" + name;
  std::ofstream(path) << cfg.dump(2);
  return path;
}

} // namespace

TEST_CASE("inspect: the address from --inspector-addr, NBM_INSPECTOR_ADDR, InspectorAddress, in "
          "that order, for the server and for `inspect`") {
  server s{storage::engine::sqlite};
  const auto port = [] { return std::to_string(free_port()); };
  const std::string from_config = "127.0.0.1:" + port(), nowhere = "127.0.0.1:" + port();
  const std::string from_env = "127.0.0.1:" + port(), from_flag = "127.0.0.1:" + port();
  const auto cfg = config_with_inspector(s, "inspector.json", from_config);
  const auto cfg_nowhere = config_with_inspector(s, "nowhere.json", nowhere);
  const auto restart = [&](const std::vector<std::string>& flags) {
    s.stop();
    s.extra_args = flags;
    s.start();
  };
  auto bound = [&] {
    auto a = read_file(s.dir + "/inspector.addr");
    return a.substr(0, a.find('\n'));
  };
  // `inspect` with `env` (an environment of its own: "" = NBM_INSPECTOR_ADDR unset).
  auto client = [&](const std::string& env, const std::string& args) {
    return sh((env.empty() ? "env -u NBM_INSPECTOR_ADDR " : "env NBM_INSPECTOR_ADDR=" + env + " ") +
              inspect_cmd(s, args) + " 2>&1");
  };
  ::unsetenv("NBM_INSPECTOR_ADDR"); // the harness's port 0; the config decides now
  const auto log = [&] { return read_file(s.dir + "/server.log"); };
  { // the config's InspectorAddress
    s.config = cfg;
    restart({});
    CHECK(bound() == from_config);
    CHECK(log().find("inspector on " + from_config + " (InspectorAddress") != std::string::npos);
    // The console finds it through the same config ...
    auto r = client("", "--config " + cfg + " --json replicas");
    CHECK(r.status == 0);
    CHECK(r.out.find("\"command\":\"replicas\"") != std::string::npos);
    // ... and goes where its config says, before the address the server wrote,
    r = client("", "--config " + cfg_nowhere + " --json replicas");
    CHECK(r.status == 1);
    CHECK(r.out.find("cannot connect to the inspector on " + nowhere) != std::string::npos);
    // unless --addr or NBM_INSPECTOR_ADDR says otherwise.
    CHECK(client("", "--config " + cfg_nowhere + " --addr " + from_config + " --json replicas")
              .status == 0);
    CHECK(client(from_config, "--config " + cfg_nowhere + " --json replicas").status == 0);
    // No config, no variable: what the server wrote into its datadir.
    CHECK(client("", "--config /nonexistent/none.json --json replicas").status == 1);
    CHECK(client("", "--json replicas").status == 0);
  }
  { // NBM_INSPECTOR_ADDR before the config
    ::setenv("NBM_INSPECTOR_ADDR", from_env.c_str(), 1);
    restart({});
    ::unsetenv("NBM_INSPECTOR_ADDR");
    CHECK(bound() == from_env);
    CHECK(log().find("inspector on " + from_env + " (NBM_INSPECTOR_ADDR") != std::string::npos);
    CHECK(client(from_env, "--config " + cfg + " --json replicas").status == 0);
  }
  { // --inspector-addr before both
    ::setenv("NBM_INSPECTOR_ADDR", from_env.c_str(), 1);
    restart({"--inspector-addr", from_flag});
    ::unsetenv("NBM_INSPECTOR_ADDR");
    CHECK(bound() == from_flag);
    CHECK(log().find("inspector on " + from_flag + " (--inspector-addr") != std::string::npos);
    // The console cannot see the server's flag: the address the server wrote tells it.
    CHECK(client("", "--json replicas").status == 0);
    CHECK(client("", "--addr " + from_flag + " --json replicas").status == 0);
  }
  { // off: nothing listens, the address file goes, the console says why
    restart({"--inspector-addr", "off"});
    CHECK(!std::filesystem::exists(s.dir + "/inspector.addr"));
    CHECK(log().find("inspector off (--inspector-addr)") != std::string::npos);
    auto r = client("off", "--json replicas");
    CHECK(r.status == 1);
    CHECK(r.out.find("the inspector is turned off (NBM_INSPECTOR_ADDR)") != std::string::npos);
    r = client("", "--addr " + from_flag + " --json replicas");
    CHECK(r.status == 1);
    CHECK(r.out.find("cannot connect") != std::string::npos);
  }
  { // an address that is no address, from the config: the server does not start, and says why
    s.stop();
    const auto bad = config_with_inspector(s, "bad.json", "not-an-address");
    const auto before = log().size();
    const pid_t pid =
        spawn_server({"--config", bad, "--datadir", s.dir, "--port", port(), "--log-file",
                      "console", "--metrics-port", port(), "--disable-legacy-port"},
                     s.dir + "/server.log");
    int st = 0;
    REQUIRE(eventually([&] { return ::waitpid(pid, &st, WNOHANG) == pid; }, 20000ms));
    CHECK(WIFEXITED(st));
    CHECK(WEXITSTATUS(st) != 0);
    CHECK(log().substr(before).find("for the inspector (InspectorAddress") != std::string::npos);
    s.config = cfg;
    s.extra_args = {};
    s.start(); // the config's address again, for the destructor's clean stop
    CHECK(bound() == from_config);
  }
  ::setenv("NBM_INSPECTOR_ADDR", "127.0.0.1:0", 1);
}

namespace {

bool have_pg() {
  if (test::postgres_available())
    return true;
  const char* req = std::getenv("NBM_REQUIRE_PG");
  // Required: go on, so the missing database fails the test (fresh_store throws).
  return req && std::string(req) == "1";
}

} // namespace

TEST_CASE("inspect: replicas lists every replica of the PostgreSQL store, its lease and the peers "
          "it holds, from either replica") {
  if (!have_pg()) {
    MESSAGE("no PostgreSQL (NBM_TEST_PG_DSN): skipped; NBM_REQUIRE_PG=1 makes this a failure");
    return;
  }
  ::setenv("NBM_REPLICA_LEASE_MS", "2000", 1);
  ::setenv("NBM_REPLICA_HEARTBEAT_MS", "250", 1);
  ::setenv("NBM_REPLICA_ID", "insp-a", 1);
  server a(storage::engine::postgres);
  ::setenv("NBM_REPLICA_ID", "insp-b", 1);
  auto b = std::make_unique<replica>(a);
  ::unsetenv("NBM_REPLICA_ID");
  const auto key = a.setup_key("--name fleet --reusable");
  // One peer streams through A, two through B.
  tools::peer_client p1(a.target()), p2(b->target()), p3(b->target());
  REQUIRE(p1.login(key, "one").ok());
  REQUIRE(p2.login(key, "two").ok());
  REQUIRE(p3.login(key, "three").ok());
  stream s1(p1, "one", 60000), s2(p2, "two", 60000), s3(p3, "three", 60000);
  for (auto* x : {&s1, &s2, &s3})
    REQUIRE(x->wait_maps(1, 10000ms));
  // What each replica shows: both rows, alive, with the peers each holds (the table as read at
  // the last heartbeat: a quarter of a second here).
  auto listing = [](const json& r) {
    std::map<std::string, json> by_id;
    for (const auto& x : r["replicas"])
      by_id[x["id"].get<std::string>()] = x;
    return by_id;
  };
  for (const auto& [dir, me] :
       {std::pair{a.dir, std::string("insp-a")}, std::pair{b->dir, std::string("insp-b")}}) {
    INFO("asking " << me);
    json r;
    REQUIRE(eventually(
        [&] {
          r = inspect_dir(dir, "replicas");
          auto l = listing(r);
          return l.size() == 2 && l["insp-a"]["peers_held"] == 1 && l["insp-b"]["peers_held"] == 2;
        },
        10000ms));
    CHECK(r["source"] == "replica table");
    CHECK(r["read_age_ms"].get<std::int64_t>() >= 0);
    CHECK(r["read_age_ms"].get<std::int64_t>() < 5000);
    CHECK(r["streams_here"] == (me == "insp-a" ? 1 : 2));
    for (auto& [id, x] : listing(r)) {
      INFO(x.dump());
      CHECK(x["self"] == (id == me));
      CHECK(x["alive"] == true);
      CHECK(x["lease_ms"] == 2000);
      CHECK(x["heartbeat_age_ms"].get<std::int64_t>() >= 0);
      CHECK(x["heartbeat_age_ms"].get<std::int64_t>() < 2000);
      CHECK(x["lease_expires_in_ms"].get<std::int64_t>() > 0);
      CHECK(x["pid"] == (id == "insp-a" ? a.pid : b->pid));
      CHECK(x["sessions_recorded"] == x["peers_held"]);
      CHECK(x["started_at_ms"].get<std::int64_t>() > 1700000000000);
    }
  }
  // B killed: A shows it silent, then gone once A declared it dead (its two sessions ended).
  ::kill(b->pid, SIGKILL);
  ::waitpid(b->pid, nullptr, 0);
  b->pid = -1;
  bool seen_dead = false;
  REQUIRE(eventually(
      [&] {
        auto l = listing(inspect_dir(a.dir, "replicas"));
        if (l.count("insp-b") && l["insp-b"]["alive"] == false)
          seen_dead = true;
        return l.size() == 1 && l.count("insp-a") && l["insp-a"]["alive"] == true;
      },
      15000ms));
  MESSAGE("B was seen past its lease before it was swept: " << seen_dead);
  b.reset();
  ::unsetenv("NBM_REPLICA_LEASE_MS");
  ::unsetenv("NBM_REPLICA_HEARTBEAT_MS");
}

TEST_CASE("inspect: the console in tmux, as a person types it") {
  if (sh("command -v tmux >/dev/null 2>&1").status != 0) {
    if (std::getenv("NBM_REQUIRE_TMUX"))
      FAIL("tmux is not installed (scripts/install-deps.sh --test)");
    MESSAGE("tmux not installed: the console test is skipped");
    return;
  }
  two_peers t;
  auto& s = t.s;
  const std::string sock = s.dir + "/tmux.sock";
  const std::string tmux = "tmux -S " + sock + " ";
  const std::string home = s.dir + "/home";
  std::filesystem::create_directories(home);
  REQUIRE(sh(tmux + "new-session -d -s insp -x 160 -y 300 'env HOME=" + home + " " +
             inspect_cmd(s, "") + "'")
              .status == 0);
  // What the pane shows now (tall enough for any answer; C-l clears it between commands).
  auto screen = [&] { return sh(tmux + "capture-pane -p -t insp").out; };
  auto keys = [&](const std::string& k) { sh(tmux + "send-keys -t insp " + k); };
  auto shows = [&](const std::string& text, std::chrono::milliseconds limit = 5000ms) {
    return eventually([&] { return screen().find(text) != std::string::npos; }, limit);
  };
  REQUIRE(shows("inspect>"));
  // Completion of a command: "rep" Tab -> "replicas".
  keys("C-l rep Tab");
  CHECK(shows("inspect> replicas"));
  keys("Enter");
  CHECK(shows("\"peers_held\": 2"));
  // Completion of a peer name: "peer al" Tab -> "peer alpha".
  keys("C-l 'peer al' Tab");
  CHECK(shows("inspect> peer alpha"));
  keys("Enter");
  CHECK(shows("\"name\": \"alpha\""));
  // And of a peer id: the first characters of beta's id.
  keys("C-l");
  keys("'peer " + t.idb.substr(0, 6) + "' Tab Enter");
  CHECK(shows("\"id\": \"" + t.idb + "\""));
  // History: Up brings the last command back.
  keys("C-l Up");
  CHECK(shows("inspect> peer " + t.idb));
  keys("C-u");
  // watch: refreshes until Ctrl-C, then the prompt again.
  keys("C-l 'watch overview' Enter");
  CHECK(shows("(Ctrl-C stops)"));
  keys("C-c");
  CHECK(shows("inspect>"));
  keys("C-l help Enter");
  CHECK(shows("trace <peer>"));
  keys("quit Enter");
  CHECK(eventually([&] { return sh(tmux + "has-session -t insp 2>/dev/null").status != 0; }));
  sh(tmux + "kill-server 2>/dev/null");
  CHECK(read_file(home + "/.netbird-mgmt-inspect_history").find("peer alpha") != std::string::npos);
}
