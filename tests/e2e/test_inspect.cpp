// The inspector console end to end: the real binary with simulated peers (tools/peer_sim's
// client), `netbird-mgmt inspect` run as an operator would: every command's one-shot JSON, a wrong
// token refused, a console that goes away in the middle of a trace, and the interactive console
// driven in tmux (typing, Tab completion, history, watch stopped with Ctrl-C).
#include "tests/e2e/harness.hpp"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>

#include <set>

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

std::string inspect_cmd(const server& s, const std::string& args) {
  return std::string(NBM_SERVER_BIN) + " inspect --datadir " + s.dir + " " + args;
}

json inspect(const server& s, const std::string& command, int want_status = 0) {
  auto r = sh(inspect_cmd(s, "--json " + command) + " 2>/dev/null");
  INFO("inspect " << command << ": " << r.out);
  REQUIRE(r.status == want_status);
  const auto nl = r.out.find('\n');
  REQUIRE(nl != std::string::npos);
  return json::parse(r.out.substr(0, nl));
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
    CHECK(o["store_workers"].size() >= 1);
    for (const auto& w : o["store_workers"])
      CHECK(w["queue"].get<std::int64_t>() >= 0);
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
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(fd, 1);
      ::execl(NBM_SERVER_BIN, NBM_SERVER_BIN, "inspect", "--datadir", s.dir.c_str(), "--json",
              "trace", "alpha", static_cast<char*>(nullptr));
      ::_exit(127);
    }
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
  }
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
