// The e2e harness: the real netbird-mgmt binary on 127.0.0.1 with its own store (SQLite file or a
// fresh PostgreSQL schema), driven through its admin subcommands and by peer simulators.
#pragma once

#include "crypto/crypto.hpp"
#include "storage/account_store.hpp"
#include "tests/support/free_port.hpp"
#include "tests/support/test_db.hpp"
#include "tools/peer_sim/peer_client.hpp"

#include <doctest/doctest.h>
#include <grpcpp/grpcpp.h>
#include <soci/soci.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <netinet/in.h>
#include <optional>
#include <sstream>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace nbm::e2e {

using namespace std::chrono_literals;

using test::free_port;

inline std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[512];
  while (std::fgets(buf, sizeof buf, p))
    out += buf;
  ::pclose(p);
  return out;
}

inline std::string field(const std::string& text, const std::string& name) {
  auto pos = text.find(name + ": ");
  if (pos == std::string::npos)
    return "";
  auto end = text.find('\n', pos);
  return text.substr(pos + name.size() + 2, end - pos - name.size() - 2);
}

// How many times a server logged its ready line into `log`.
inline int ready_lines(const std::string& log) {
  std::ifstream in(log);
  int n = 0;
  for (std::string line; std::getline(in, line);)
    n += line.find(" ready: store ") != std::string::npos;
  return n;
}

// Starts `netbird-mgmt management <args>` with its stdout and stderr appended to `log`; returns
// its pid at once.
inline pid_t spawn_server(const std::vector<std::string>& args, const std::string& log) {
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    FILE* f = std::freopen(log.c_str(), "a", stdout);
    (void)f;
    ::dup2(::fileno(stdout), 2);
    std::vector<std::string> all = {NBM_SERVER_BIN, "management"};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(NBM_SERVER_BIN, argv.data());
    std::_Exit(127);
  }
  return pid;
}

// Starts `netbird-mgmt management <args>` with its output appended to `log`; returns its pid once
// GetServerKey answers on 127.0.0.1:`port` (fails the test if it never does), over a channel of
// `creds` (plaintext when null).
inline pid_t launch(const std::vector<std::string>& args, const std::string& log, int port,
                    std::shared_ptr<grpc::ChannelCredentials> creds = nullptr) {
  const int ready_before = ready_lines(log);
  const pid_t pid = spawn_server(args, log);
  // A deadline, not a count: a loaded 2-core CI machine can take seconds to start the server.
  const std::string target = "127.0.0.1:" + std::to_string(port);
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  // Up means gRPC answers and the server logged its ready line (every listener, the REST API's
  // own port included, is then open). The log is appended to across restarts: count the lines.
  while (std::chrono::steady_clock::now() < deadline) {
    tools::peer_client probe(target, creds ? creds : grpc::InsecureChannelCredentials());
    if (probe.fetch_server_key().ok() && ready_lines(log) > ready_before)
      return pid;
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid)
      break; // it exited: no point waiting
    std::this_thread::sleep_for(100ms);
  }
  // What the server said, so a failure in CI shows why.
  std::string tail;
  {
    std::ifstream in(log);
    std::deque<std::string> lines;
    for (std::string line; std::getline(in, line);) {
      lines.push_back(line);
      if (lines.size() > 30)
        lines.pop_front();
    }
    for (const auto& l : lines)
      tail += l + "\n";
  }
  FAIL("server did not come up on " << target << "; the end of its log:\n" << tail);
  return pid;
}

// SIGTERM, then up to 10 s for a clean exit (a clean shutdown takes well under that), then
// SIGKILL. Returns whether it exited in time, and its wait status.
inline std::pair<bool, int> terminate(pid_t pid) {
  ::kill(pid, SIGTERM);
  int status = 0;
  bool exited = false;
  for (int i = 0; i < 200 && !exited; ++i) {
    exited = ::waitpid(pid, &status, WNOHANG) == pid;
    if (!exited)
      std::this_thread::sleep_for(50ms);
  }
  if (!exited) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  return {exited, status};
}

// The real server, its store and an account with a setup key.
struct server {
  storage::db_options db;
  std::string dir, config, account, all_group, pat, owner;
  int port = 0;
  int api_port = 0;     // the REST API
  int metrics_port = 0; // Prometheus /metrics (chosen at the first start, kept across restarts)
  bool shared_port = false;
  std::string log_level = "debug"; // --log-level of the next start()
  pid_t pid = -1;
  std::vector<std::string> extra_args; // more flags for `management` (e.g. --cert-file F)
  std::shared_ptr<grpc::ChannelCredentials> creds; // how to reach its gRPC (null: plaintext)

  // `config_path`: a management.json of the test's own (default: tests/fixtures/management.json).
  // `one_port`: gRPC and the REST API on one port (the default, as NetBird serves them); false:
  // the REST API on a port of its own (--api-port).
  explicit server(storage::engine kind, const std::string& config_path = "", bool one_port = true,
                  std::vector<std::string> extra = {},
                  std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr)
      : shared_port(one_port), extra_args(std::move(extra)), creds(std::move(credentials)) {
    db = test::fresh_store(kind, "wire");
    dir = test::temp_dir() + "/wire-" + std::to_string(::getpid()) + "-" +
          std::to_string(free_port());
    std::filesystem::create_directories(dir);
    config = config_path.empty() ? test::fixture("management.json") : config_path;
    // Changes made through the admin subcommands (another process) reach live streams when the
    // server polls the accounts' serials; keep that quick in tests (unless the test chose a poll:
    // the cluster tests show that replicas need none).
    ::setenv("NBM_ACCOUNT_POLL_INTERVAL_MS", "200", 0);
    // Many test servers run at once: each inspector on a port of its own (datadir/inspector.addr).
    ::setenv("NBM_INSPECTOR_ADDR", "127.0.0.1:0", 0);
    if (kind == storage::engine::postgres) {
      ::setenv("NETBIRD_STORE_ENGINE", "postgres", 1);
      ::setenv("NB_STORE_ENGINE_POSTGRES_DSN", db.target.c_str(), 1);
    } else {
      ::setenv("NETBIRD_STORE_ENGINE", "sqlite", 1);
      db.target = dir + "/store.db";
    }
    auto out = admin("account create --domain example.com");
    account = field(out, "account_id");
    all_group = field(out, "all_group_id");
    pat = field(out, "personal_access_token");
    owner = field(out, "owner_user_id");
    REQUIRE(account.size() == 20);
    start();
  }
  ~server() { stop(); }

  std::string admin(const std::string& args) {
    return run(std::string(NBM_SERVER_BIN) + " admin --config " + config + " --datadir " + dir +
               " " + args + " 2>&1");
  }
  std::string setup_key(const std::string& args) {
    auto out = admin("setup-key create --account " + account + " " + args);
    auto k = field(out, "setup_key");
    REQUIRE_MESSAGE(k.size() == 36, out);
    return k;
  }
  std::string key_id_of(const std::string& plain) {
    auto out = admin("setup-key list --account " + account);
    auto pos = out.find("key=" + plain.substr(0, 5));
    REQUIRE(pos != std::string::npos);
    auto line_start = out.rfind('\n', pos);
    line_start = line_start == std::string::npos ? 0 : line_start + 1;
    return out.substr(line_start, out.find(' ', line_start) - line_start);
  }
  std::string target() const { return "127.0.0.1:" + std::to_string(port); }

  void start() {
    port = free_port();
    api_port = shared_port ? port : free_port();
    if (metrics_port == 0)
      metrics_port = free_port();
    std::vector<std::string> args = {"--config", config, "--datadir", dir, "--port",
                                     std::to_string(port), "--log-file", "console", "--log-level",
                                     log_level, "--metrics-port", std::to_string(metrics_port),
                                     // many test servers run at once: none takes 33073
                                     "--disable-legacy-port"};
    if (!shared_port) {
      args.push_back("--api-port");
      args.push_back(std::to_string(api_port));
    }
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    pid = launch(args, dir + "/server.log", port, creds);
  }
  void stop() {
    if (pid <= 0)
      return;
    const auto [exited, status] = terminate(pid);
    pid = -1;
    if (!exited) { // where it waited: the end of its log
      std::ifstream in(dir + "/server.log");
      std::deque<std::string> tail;
      for (std::string line; std::getline(in, line);) {
        tail.push_back(line);
        if (tail.size() > 40)
          tail.pop_front();
      }
      std::string text;
      for (const auto& l : tail)
        text += l + "\n";
      MESSAGE("server log tail:\n" << text);
    }
    CHECK_MESSAGE(exited, "the server did not stop within 10 s of SIGTERM");
    CHECK_MESSAGE((exited && WIFEXITED(status) && WEXITSTATUS(status) == 0),
                  "server exit status " << status);
  }

  std::optional<core::peer> peer_by_key(const std::string& key) {
    soci::session sql;
    storage::open_session(sql, db);
    return storage::account_store(sql, db.kind).peer_by_key(key);
  }
};

// A second server process on the store of `s` (PostgreSQL): another replica of the cluster.
struct replica {
  std::string dir, log;
  int port = 0, api_port = 0, metrics_port = 0;
  pid_t pid = -1;

  // `name`: the replica's directory next to the server's (several replicas need several names).
  explicit replica(const server& s, const std::string& name = "replica")
      : dir(s.dir + "-" + name), log(dir + "/server.log") {
    std::filesystem::create_directories(dir);
    port = free_port();
    api_port = port; // the REST API next to gRPC (the default)
    metrics_port = free_port();
    pid = launch({"--config", s.config, "--datadir", dir, "--port", std::to_string(port),
                  "--log-file", "console", "--log-level", "debug", "--metrics-port",
                  std::to_string(metrics_port), "--disable-legacy-port"},
                 log, port);
  }
  ~replica() { stop(); }
  void stop() {
    if (pid <= 0)
      return;
    const auto [exited, status] = terminate(pid);
    pid = -1;
    CHECK_MESSAGE(exited, "the replica did not stop within 10 s of SIGTERM");
    (void)status;
  }
  std::string target() const { return "127.0.0.1:" + std::to_string(port); }
};

// A Sync stream on its own thread, recording every map (as the FQDNs of its remote peers). A
// stream still open when it goes out of scope is cancelled (a client that goes away), so no test
// waits for its deadline.
struct stream {
  std::mutex mu;
  std::mutex ctx_mu;
  grpc::ClientContext* ctx = nullptr; // the open call, under ctx_mu
  bool cancelled = false;             // under ctx_mu
  std::vector<std::vector<std::string>> maps;
  std::vector<management::SyncResponse> responses;
  tools::call_result end;
  std::atomic<bool> finished{false};
  std::thread th;

  stream(tools::peer_client& peer, const std::string& hostname, int timeout_ms = 20000) {
    th = std::thread([this, &peer, hostname, timeout_ms] {
      auto r = peer.sync(
          hostname,
          [this](const management::SyncResponse& sr) {
            std::vector<std::string> names;
            for (const auto& p : sr.networkmap().remotepeers())
              names.push_back(p.fqdn());
            std::lock_guard<std::mutex> lk(mu);
            maps.push_back(names);
            responses.push_back(sr);
            return true;
          },
          timeout_ms,
          [this](grpc::ClientContext* c) {
            std::lock_guard<std::mutex> lk(ctx_mu);
            ctx = c;
            if (ctx && cancelled)
              ctx->TryCancel();
          });
      std::lock_guard<std::mutex> lk(mu);
      end = r;
      finished = true;
    });
  }
  ~stream() { cancel(); }
  // Ends the stream from the client's side (as a client that quits) and waits for its thread.
  void cancel() {
    {
      std::lock_guard<std::mutex> lk(ctx_mu);
      cancelled = true;
      if (ctx)
        ctx->TryCancel();
    }
    if (th.joinable())
      th.join();
  }
  std::size_t count() {
    std::lock_guard<std::mutex> lk(mu);
    return maps.size();
  }
  management::SyncResponse last_response() {
    std::lock_guard<std::mutex> lk(mu);
    return responses.empty() ? management::SyncResponse{} : responses.back();
  }
  std::vector<std::string> last() {
    std::lock_guard<std::mutex> lk(mu);
    return maps.empty() ? std::vector<std::string>{} : maps.back();
  }
  bool wait_maps(std::size_t n, std::chrono::milliseconds limit) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (count() < n && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(10ms);
    return count() >= n;
  }
  bool wait_end(std::chrono::milliseconds limit) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (!finished && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(10ms);
    return finished;
  }
};

template <class Pred>
inline bool eventually(Pred p, std::chrono::milliseconds limit = 3000ms) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (p())
      return true;
    std::this_thread::sleep_for(20ms);
  }
  return p();
}

inline std::vector<storage::engine> engines() {
  std::vector<storage::engine> e{storage::engine::sqlite};
  if (test::postgres_available())
    e.push_back(storage::engine::postgres);
  return e;
}

// A whole file as text ("" when it cannot be read), e.g. a server's log.
inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// How often `needle` occurs in `text` (overlaps counted).
inline std::size_t occurrences(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1))
    ++n;
  return n;
}

} // namespace nbm::e2e
