// What the real binary tells a person (issue 14): errors that say what is wrong and where, the
// front door's own HTTP errors in NetBird's JSON with one X-Request-Id, and the log lines at info
// and debug (setup-key refusals, logins, registrations, connects, disconnects, REST requests,
// maps sent), read from the server's log.
#include "tests/e2e/harness.hpp"

#include <cstdlib>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <sys/stat.h>

using namespace nbm;
using namespace nbm::e2e;
using json = nlohmann::json;

namespace {

// One HTTP/1.1 exchange on a raw socket to 127.0.0.1:`port`: everything the server sends until it
// closes (requests carry "Connection: close") or 10 s pass.
std::string raw_http(int port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  std::size_t sent = 0;
  while (sent < request.size()) {
    const auto n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0)
      break; // the server may answer (413) and close before it has read everything
    sent += static_cast<std::size_t>(n);
  }
  std::string out;
  char buf[4096];
  for (;;) {
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
      break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

struct http_answer {
  int status = 0;
  std::size_t request_ids = 0; // X-Request-Id headers
  json body;
};

http_answer parse_answer(const std::string& raw) {
  http_answer a;
  INFO(raw.substr(0, 400));
  REQUIRE(raw.rfind("HTTP/1.1 ", 0) == 0);
  a.status = std::stoi(raw.substr(9, 3));
  const auto end = raw.find("\r\n\r\n");
  REQUIRE(end != std::string::npos);
  std::string head = raw.substr(0, end);
  for (auto& c : head)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  a.request_ids = occurrences(head, "\r\nx-request-id:");
  a.body = json::parse(raw.substr(end + 4), nullptr, false);
  return a;
}

// NetBird's error body: {"message": <the status's meaning>, "code": <the status>}.
void check_error_answer(const std::string& raw, int status, const std::string& message) {
  const auto a = parse_answer(raw);
  INFO(raw.substr(0, 400));
  CHECK(a.status == status);
  CHECK(a.request_ids == 1);
  REQUIRE(a.body.is_object());
  CHECK(a.body.size() == 2);
  CHECK(a.body.value("message", "") == message);
  CHECK(a.body.value("code", 0) == status);
}

// `netbird-mgmt <args>` to its end (60 s at most): exit status and everything it printed.
std::pair<int, std::string> run_binary(const std::string& args, const std::string& prefix = "") {
  const auto out =
      run(prefix + "timeout 60 " + NBM_SERVER_BIN + " " + args + " 2>&1; echo \"rc=$?\"");
  const auto at = out.rfind("rc=");
  REQUIRE(at != std::string::npos);
  return {std::stoi(out.substr(at + 3)), out.substr(0, at)};
}

// The level ("info", "debug", ...) of the first log line holding `needle`; "" when none does.
// Lines read "<time> <level> [<logger>] <message>".
std::string level_of(const std::string& log, const std::string& needle) {
  const auto at = log.find(needle);
  if (at == std::string::npos)
    return "";
  const auto start = log.rfind('\n', at) == std::string::npos ? 0 : log.rfind('\n', at) + 1;
  std::istringstream line(log.substr(start, at - start));
  std::string time, level;
  line >> time >> level;
  return level;
}

std::string write_text(const std::string& name, const std::string& text) {
  const auto path = test::temp_dir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

} // namespace

TEST_CASE("messages: the front door's own errors are NetBird's JSON, one X-Request-Id each") {
  server s(storage::engine::sqlite);
  const std::string close = "Connection: close\r\n";
  const std::string host = "Host: 127.0.0.1\r\n";
  // An answer of the API itself: one X-Request-Id too.
  auto ok = parse_answer(raw_http(s.api_port, "GET /api/users/current HTTP/1.1\r\n" + host +
                                                  "Authorization: Token " + s.pat + "\r\n" + close +
                                                  "\r\n"));
  CHECK(ok.status == 200);
  CHECK(ok.request_ids == 1);
  // No such endpoint, outside the API and inside it.
  check_error_answer(raw_http(s.api_port, "GET /no/such/page HTTP/1.1\r\n" + host + close + "\r\n"),
                     404, "not found");
  check_error_answer(raw_http(s.api_port, "GET /api/no-such-endpoint HTTP/1.1\r\n" + host +
                                              "Authorization: Token " + s.pat + "\r\n" + close +
                                              "\r\n"),
                     404, "not found");
  // A method no endpoint takes.
  check_error_answer(raw_http(s.api_port, "PATCH /api/peers HTTP/1.1\r\n" + host +
                                              "Content-Length: 0\r\n" + close + "\r\n"),
                     405, "method not allowed");
  // A request that is not HTTP/1.1 as written.
  check_error_answer(raw_http(s.api_port, "GET /api/peers HTTP/1.1\r\n" + host +
                                              "Content-Length: twelve\r\n" + close + "\r\n"),
                     400, "malformed request");
  // A body over the limit, announced.
  check_error_answer(raw_http(s.api_port, "POST /api/groups HTTP/1.1\r\n" + host +
                                              "Content-Length: 104857600\r\n" + close + "\r\n"),
                     413, "request body too large");
  // A header over the limit.
  check_error_answer(raw_http(s.api_port, "GET /api/peers HTTP/1.1\r\n" + host + "X-Filler: " +
                                              std::string(40000, 'a') + "\r\n" + close + "\r\n"),
                     431, "request header too large");
  // The server is still up and answering.
  CHECK(parse_answer(raw_http(s.api_port, "GET /api/users/current HTTP/1.1\r\n" + host +
                                              "Authorization: Token " + s.pat + "\r\n" + close +
                                              "\r\n"))
            .status == 200);
}

TEST_CASE("messages: a port in use is named, with what to do") {
  // Someone else listens on the port (127.0.0.1 is enough to make 0.0.0.0 unavailable).
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(fd, 1) == 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const int port = ntohs(a.sin_port);
  const auto dir = test::temp_dir() + "/port-in-use";
  const auto [rc, out] =
      run_binary("management --config " + test::fixture("management.json") + " --datadir " + dir +
                 " --log-file console --port " + std::to_string(port) + " --metrics-port " +
                 std::to_string(free_port()));
  ::close(fd);
  INFO(out);
  CHECK(rc == 1);
  CHECK(out.find("cannot listen on port " + std::to_string(port) +
                 " for gRPC and the REST API (--port): address already in use") !=
        std::string::npos);
  CHECK(out.find("choose another port") != std::string::npos);
}

TEST_CASE("messages: an unwritable datadir says permission denied and the path") {
  // A directory of its own under the system's temp directory: the test run's own temp directory
  // may be private (mode 0700), and the server may run as nobody below, so every ancestor must be
  // traversable.
  std::string templ = (std::filesystem::temp_directory_path() / "nbm-ro-XXXXXX").string();
  REQUIRE(::mkdtemp(templ.data()) != nullptr);
  const std::string base = templ;
  const auto dir = base + "/data";
  std::filesystem::create_directories(dir);
  // Readable by anyone, writable by nobody but its owner (root when the tests run as root, so the
  // server then runs as nobody).
  ::chmod(base.c_str(), 0755);
  ::chmod(dir.c_str(), ::geteuid() == 0 ? 0755 : 0555);
  const auto config = base + "/management.json";
  std::filesystem::copy_file(test::fixture("management.json"), config,
                             std::filesystem::copy_options::overwrite_existing);
  ::chmod(config.c_str(), 0644);
  const std::string as_user =
      ::geteuid() == 0 ? "setpriv --reuid=65534 --regid=65534 --clear-groups " : "";
  const std::string args = "management --config " + config + " --log-file console --port " +
                           std::to_string(free_port()) + " --metrics-port " +
                           std::to_string(free_port()) + " --datadir ";
  {
    const auto [rc, out] = run_binary(args + dir, as_user);
    INFO(out);
    CHECK(rc == 1);
    CHECK(out.find("cannot write in the datadir " + dir + ": permission denied") !=
          std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir + "/store.db"));
  }
  { // A datadir that cannot be created.
    const auto [rc, out] = run_binary(args + dir + "/sub", as_user);
    INFO(out);
    CHECK(rc == 1);
    CHECK(out.find("cannot create the datadir " + dir + "/sub: permission denied") !=
          std::string::npos);
  }
  std::error_code ec;
  std::filesystem::remove_all(base, ec);
}

TEST_CASE("messages: a JSON syntax error in JSON's words, a tab in YAML, with line and column") {
  const auto dir = test::temp_dir() + "/config-messages";
  const std::string args = "management --log-file console --datadir " + dir + " --port " +
                           std::to_string(free_port()) + " --config ";
  {
    const auto path =
        write_text("missing-comma.json", "{\n  \"Signal\": {\n    \"Proto\": \"http\"\n"
                                         "    \"URI\": \"signal.example:10000\"\n  }\n}\n");
    const auto [rc, out] = run_binary(args + path);
    INFO(out);
    CHECK(rc == 1);
    CHECK(out.find(path + ": invalid JSON at line 4, column 5: ") != std::string::npos);
    CHECK(out.find("unexpected string literal; expected '}'") != std::string::npos);
    CHECK(out.find("YAML") == std::string::npos);
  }
  {
    const auto path = write_text("tab.yaml", "Signal:\n  Proto: http\nRelay:\n\tSecret: abc\n");
    const auto [rc, out] = run_binary(args + path);
    INFO(out);
    CHECK(rc == 1);
    CHECK(out.find(path + ": a tab at line 4, column 1: YAML indents with spaces only") !=
          std::string::npos);
    CHECK(out.find("abc") == std::string::npos);
  }
}

TEST_CASE("logs: setup-key refusals, logins, registrations, sessions, REST and maps") {
  server s(storage::engine::sqlite); // --log-level debug
  const auto log = [&] { return read_file(s.dir + "/server.log"); };
  const auto good = s.setup_key("--name fleet --reusable --auto-groups " + s.all_group);
  const auto once = s.setup_key("--name once");
  const auto revoked = s.setup_key("--name gone --reusable");
  const auto revoked_id = s.key_id_of(revoked);
  s.admin("setup-key revoke --account " + s.account + " --id " + revoked_id);
  const auto expiring = s.setup_key("--name brief --reusable --expires-in 1s");
  const auto expiring_id = s.key_id_of(expiring);
  const auto once_id = s.key_id_of(once);

  // Refusals: info lines with the key's id, never the key.
  tools::peer_client r1(s.target()), r2(s.target()), r3(s.target()), r4(s.target()), r5(s.target());
  const std::string unknown = "5D0E8C1A-0000-4000-8000-00000000BEEF";
  CHECK(r1.login(unknown, "stranger").code == grpc::StatusCode::NOT_FOUND);
  CHECK(r2.login(revoked, "late").code == grpc::StatusCode::NOT_FOUND);
  REQUIRE(r3.login(once, "first").ok());
  CHECK(r4.login(once, "second").code == grpc::StatusCode::NOT_FOUND);
  std::this_thread::sleep_for(1500ms); // the key's 1 s lifetime runs out
  CHECK(r5.login(expiring, "tardy").code == grpc::StatusCode::NOT_FOUND);
  CHECK(eventually([&] {
    const auto l = log();
    return l.find("setup key refused: key " + expiring_id) != std::string::npos;
  }));
  auto text = log();
  INFO(text);
  for (const auto& line :
       {"setup key refused: unknown key (hash " + crypto::sha256_base64(unknown).substr(0, 8) +
            "...)",
        "setup key refused: key " + revoked_id + " of account " + s.account + " is revoked",
        "setup key refused: key " + once_id + " of account " + s.account + " is used up",
        "setup key refused: key " + expiring_id + " of account " + s.account + " is expired"}) {
    CHECK_MESSAGE(occurrences(text, line) == 1, line);
    CHECK_MESSAGE(level_of(text, line) == "info", line);
  }
  for (const auto& k : {good, once, revoked, expiring, unknown})
    CHECK(text.find(k) == std::string::npos);
  CHECK(text.find(unknown.substr(0, 8)) == std::string::npos);

  // A registration, its login, a session, its maps and its end.
  tools::peer_client a(s.target());
  REQUIRE(a.login(good, "alpha").ok());
  const auto alpha = s.peer_by_key(a.public_key_b64());
  REQUIRE(alpha.has_value());
  const std::string who = "peer " + alpha->id + " of account " + s.account;
  {
    stream st(a, "alpha");
    REQUIRE(st.wait_maps(1, 5000ms));
    std::optional<core::peer> p;
    REQUIRE(eventually([&] {
      p = s.peer_by_key(a.public_key_b64());
      return p && p->status.connected;
    }));
    const auto session = std::to_string(p->status.session_started_at);
    REQUIRE(eventually(
        [&] { return log().find(who + " connected: session " + session) != std::string::npos; }));
    text = log();
    CHECK(level_of(text, "peer " + alpha->id + " registered in account " + s.account) == "info");
    CHECK(level_of(text, who + " logged in (registered now)") == "info");
    CHECK(level_of(text, who + " connected: session " + session + " from 127.0.0.1") == "info");
    CHECK(level_of(text, "map sent to " + who + ": serial ") == "debug");
    CHECK(level_of(text, " bytes (initial), session " + session) == "debug");
    // A REST request at debug: method, route, status, duration.
    const auto answer = raw_http(s.api_port, "GET /api/peers HTTP/1.1\r\nHost: x\r\n"
                                             "Authorization: Token " +
                                                 s.pat + "\r\nConnection: close\r\n\r\n");
    REQUIRE(parse_answer(answer).status == 200);
    CHECK(eventually([&] { return level_of(log(), "REST GET /api/peers 200 ") == "debug"; }));
    CHECK(log().find(s.pat) == std::string::npos);
    s.stop(); // ends the stream: the session ends with the server
  }
  text = log();
  CHECK(level_of(text, who + " disconnected: session ") == "info");

  // At info: the info lines, none of the debug ones.
  const auto before = log().size();
  s.log_level = "info";
  s.start();
  tools::peer_client b(s.target());
  REQUIRE(b.login(good, "beta").ok());
  const auto beta = s.peer_by_key(b.public_key_b64());
  REQUIRE(beta.has_value());
  {
    stream st(b, "beta");
    REQUIRE(st.wait_maps(1, 5000ms));
    REQUIRE(eventually([&] {
      return log().find("peer " + beta->id + " of account " + s.account + " connected") !=
             std::string::npos;
    }));
    REQUIRE(parse_answer(raw_http(s.api_port, "GET /api/peers HTTP/1.1\r\nHost: x\r\n"
                                              "Authorization: Token " +
                                                  s.pat + "\r\nConnection: close\r\n\r\n"))
                .status == 200);
    tools::peer_client r6(s.target());
    CHECK(r6.login(revoked, "again").code == grpc::StatusCode::NOT_FOUND);
    REQUIRE(eventually(
        [&] { return occurrences(log(), "setup key refused: key " + revoked_id) == 2; }));
    s.stop();
  }
  const auto at_info = log().substr(before);
  INFO(at_info);
  CHECK(level_of(at_info, "peer " + beta->id + " of account " + s.account +
                              " logged in (registered now)") == "info");
  CHECK(level_of(at_info, "peer " + beta->id + " of account " + s.account + " disconnected") ==
        "info");
  CHECK(at_info.find(" debug [") == std::string::npos);
  CHECK(at_info.find("REST GET") == std::string::npos);
  CHECK(at_info.find("map sent") == std::string::npos);
}
