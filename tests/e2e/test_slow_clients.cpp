// The shared port under slow and idle clients (issue 11): the real binary, a crowd of slow
// connections (tools/slow_crowd.hpp, from 127.0.0.2) held open while REST requests and gRPC calls
// from 127.0.0.1 are timed; deadlines for headers and bodies, the per-address cap, size limits,
// TLS and garbage closed at once, a prompt stop. Deadlines are shortened through the server's
// NBM_HTTP_* environment variables so that the cases run in seconds.
#include "tests/e2e/harness.hpp"
#include "tools/slow_crowd.hpp"

#include <httplib.h>

#include <arpa/inet.h>
#include <poll.h>

#include <cstdlib>
#include <string>

using namespace nbm;
using namespace nbm::e2e;
using clk = std::chrono::steady_clock;

namespace {

// Sets the server's NBM_HTTP_* variables for the servers started in its scope.
struct http_env {
  std::vector<std::string> names;
  http_env(std::initializer_list<std::pair<const char*, std::string>> vars) {
    for (const auto& [k, v] : vars) {
      ::setenv(k, v.c_str(), 1);
      names.emplace_back(k);
    }
  }
  ~http_env() {
    for (const auto& k : names)
      ::unsetenv(k.c_str());
  }
};

// A raw TCP connection to 127.0.0.1:port from `source`.
struct raw_conn {
  int fd = -1;
  raw_conn(int port, const char* source = "127.0.0.1") {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    ::inet_pton(AF_INET, source, &src.sin_addr);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) == 0);
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(static_cast<std::uint16_t>(port));
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) == 0);
  }
  ~raw_conn() {
    if (fd >= 0)
      ::close(fd);
  }
  bool send(const std::string& s) {
    return ::send(fd, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size());
  }
  // Reads until the server closes the connection or `limit` passes; true if it closed.
  bool read_to_close(std::chrono::milliseconds limit, std::string* got = nullptr) {
    const auto until = clk::now() + limit;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(until - clk::now()).count();
      if (left <= 0)
        return false;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0)
        continue;
      char buf[4096];
      const auto n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0)
        return true;
      if (got)
        got->append(buf, static_cast<std::size_t>(n));
    }
  }
  // Reads until `text` has arrived (true) or `limit` passes / the connection closes (false).
  bool read_until(const std::string& text, std::chrono::milliseconds limit, std::string& got) {
    const auto until = clk::now() + limit;
    while (got.find(text) == std::string::npos) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(until - clk::now()).count();
      if (left <= 0)
        return false;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0)
        continue;
      char buf[4096];
      const auto n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0)
        return false;
      got.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }
};

struct timed_reply {
  int status = 0;
  double ms = 0;
  std::string body, request_id;
};

timed_reply rest_get(int port, const std::string& pat, const std::string& path) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(5);
  cli.set_read_timeout(5);
  const auto began = clk::now();
  auto r = cli.Get(path, {{"Authorization", "Token " + pat}});
  timed_reply out;
  out.ms = std::chrono::duration<double, std::milli>(clk::now() - began).count();
  if (r) {
    out.status = r->status;
    out.body = r->body;
    out.request_id = r->get_header_value("X-Request-Id");
  }
  return out;
}

template <class Pred>
bool wait_for(Pred p, std::chrono::milliseconds limit) {
  return eventually(p, limit);
}

} // namespace

TEST_CASE("slow clients: REST and gRPC answer while 150 slow connections are held") {
  tools::raise_open_files_limit();
  http_env env{{"NBM_HTTP_MAX_CONNS_PER_IP", "0"}}; // every slow connection is held
  server s(storage::engine::sqlite);
  REQUIRE(rest_get(s.port, s.pat, "/api/peers").status == 200);

  tools::slow_crowd crowd({s.port, "127.0.0.2", 150, 1000, 500});
  // All held at once: far more than the 8 request workers (a thread per connection would stall).
  REQUIRE_MESSAGE(wait_for([&] { return crowd.open() == 150; }, 5000ms), "held " << crowd.open());
  const auto key = s.setup_key("--name k --reusable --auto-groups " + s.all_group);
  for (int i = 0; i < 30; ++i) {
    const auto r = rest_get(s.port, s.pat, "/api/peers");
    CHECK(r.status == 200);
    CHECK_MESSAGE(r.ms < 2000, "REST took " << r.ms << " ms");
    if (i % 10 == 0) { // gRPC on the same port, on a new connection: key, login
      tools::peer_client peer(s.target());
      CHECK(peer.login(key, "during-" + std::to_string(i)).ok());
    }
  }
  CHECK(crowd.open() >= 140); // still pressing while we measured
  CHECK(crowd.connect_failures() == 0);

  // A stop does not wait for the held connections.
  const auto began = clk::now();
  s.stop();
  CHECK(clk::now() - began < 5s);
}

TEST_CASE("slow clients: deadlines close trickling headers, half bodies and silent connections") {
  http_env env{{"NBM_HTTP_HEADER_TIMEOUT_MS", "1000"},
               {"NBM_HTTP_BODY_TIMEOUT_MS", "1000"},
               {"NBM_HTTP_IDLE_TIMEOUT_MS", "1000"}};
  server s(storage::engine::sqlite);

  // Slowloris: a request line, then a header byte every 100 ms — closed by the header deadline
  // although bytes keep coming.
  {
    raw_conn c(s.port);
    const auto began = clk::now();
    REQUIRE(c.send("GET /api/peers HTTP/1.1\r\nHost: x\r\nX-Slow: "));
    bool closed = false;
    while (!closed && clk::now() - began < 5s) {
      if (!c.send("a"))
        closed = true;
      else
        closed = c.read_to_close(100ms);
    }
    const auto took = clk::now() - began;
    CHECK(closed);
    CHECK(took >= 900ms);
    CHECK(took < 3s);
  }
  // Silent after connecting: closed by the same deadline.
  {
    raw_conn c(s.port);
    const auto began = clk::now();
    CHECK(c.read_to_close(4s));
    CHECK(clk::now() - began >= 900ms);
  }
  // Half a body: closed by the body deadline, with no answer.
  {
    raw_conn c(s.port);
    REQUIRE(c.send("POST /api/groups HTTP/1.1\r\nHost: x\r\nAuthorization: Token " + s.pat +
                   "\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\":"));
    const auto began = clk::now();
    std::string got;
    CHECK(c.read_to_close(4s, &got));
    CHECK(clk::now() - began >= 900ms);
    CHECK(got.empty());
  }
  // A kept-alive connection answers its request, then is closed when idle.
  {
    raw_conn c(s.port);
    REQUIRE(c.send("GET /api/groups HTTP/1.1\r\nHost: x\r\nAuthorization: Token " + s.pat +
                   "\r\n\r\n"));
    std::string got;
    REQUIRE(c.read_until("\r\n\r\n", 3s, got));
    CHECK(got.rfind("HTTP/1.1 200", 0) == 0);
    const auto began = clk::now();
    CHECK(c.read_to_close(4s));
    CHECK(clk::now() - began >= 800ms);
  }
  // Meanwhile the server answers as ever.
  CHECK(rest_get(s.port, s.pat, "/api/groups").status == 200);
}

TEST_CASE("slow clients: per-address cap, size limits, TLS and garbage, HTTP details") {
  tools::raise_open_files_limit();
  http_env env{{"NBM_HTTP_MAX_CONNS_PER_IP", "5"}, {"NBM_HTTP_MAX_BODY_BYTES", "65536"}};
  server s(storage::engine::sqlite);

  SUBCASE("over the cap: refused at once; other addresses and gRPC are not held back") {
    std::vector<std::unique_ptr<raw_conn>> held;
    for (int i = 0; i < 5; ++i)
      held.push_back(std::make_unique<raw_conn>(s.port, "127.0.0.2"));
    // The sixth from that address is closed at once (accepts are taken in order).
    {
      raw_conn sixth(s.port, "127.0.0.2");
      const auto began = clk::now();
      CHECK(sixth.read_to_close(3s));
      CHECK(clk::now() - began < 1s);
    }
    // Another address is served.
    CHECK(rest_get(s.port, s.pat, "/api/groups").status == 200);
    // gRPC connections from one address do not count once they are gRPC: ten connections (each
    // channel with subchannels of its own) stay up from 127.0.0.1 beside REST from there.
    std::vector<std::shared_ptr<grpc::Channel>> channels;
    const auto server_key = [](const std::shared_ptr<grpc::Channel>& ch) {
      auto stub = management::ManagementService::NewStub(ch);
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      management::Empty req;
      management::ServerKeyResponse resp;
      return stub->GetServerKey(&ctx, req, &resp).ok();
    };
    for (int i = 0; i < 10; ++i) {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      channels.push_back(
          grpc::CreateCustomChannel(s.target(), grpc::InsecureChannelCredentials(), args));
      CHECK(server_key(channels.back()));
    }
    for (auto& ch : channels) {
      CHECK(server_key(ch));
      CHECK(ch->GetState(false) == GRPC_CHANNEL_READY);
    }
    CHECK(rest_get(s.port, s.pat, "/api/groups").status == 200);
    // A held connection of the capped address leaves: that address is served again.
    held.pop_back();
    CHECK(wait_for(
        [&] {
          raw_conn c(s.port, "127.0.0.2");
          std::string got;
          c.send("GET /api/groups HTTP/1.1\r\nHost: x\r\nAuthorization: Token " + s.pat +
                 "\r\n\r\n");
          return c.read_until("\r\n\r\n", 1s, got) && got.rfind("HTTP/1.1 200", 0) == 0;
        },
        3000ms));
  }

  SUBCASE("a body over the limit: 413 (announced or chunked); a header over 16 KiB: 431") {
    {
      raw_conn c(s.port);
      REQUIRE(c.send("POST /api/groups HTTP/1.1\r\nHost: x\r\nAuthorization: Token " + s.pat +
                     "\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"));
      std::string got;
      CHECK(c.read_to_close(3s, &got));
      CHECK(got.rfind("HTTP/1.1 413", 0) == 0);
      CHECK(got.find(R"({"message":"request body too large","code":413})") != std::string::npos);
      CHECK(got.find("X-Request-Id: ") != std::string::npos);
    }
    {
      raw_conn c(s.port);
      REQUIRE(c.send("POST /api/groups HTTP/1.1\r\nHost: x\r\nAuthorization: Token " + s.pat +
                     "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"));
      const std::string chunk(16384, 'x');
      bool sent = true;
      for (int i = 0; i < 5 && sent; ++i)
        sent = c.send("4000\r\n" + chunk + "\r\n");
      std::string got;
      CHECK(c.read_to_close(3s, &got));
      CHECK(got.rfind("HTTP/1.1 413", 0) == 0);
    }
    {
      raw_conn c(s.port);
      REQUIRE(c.send("GET /api/groups HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'b') +
                     "\r\n\r\n"));
      std::string got;
      CHECK(c.read_to_close(3s, &got));
      CHECK(got.rfind("HTTP/1.1 431", 0) == 0);
    }
    // A body under the limit goes through (a group with a long name is refused by the API, not
    // the transport: what matters is that the handler answered).
    {
      httplib::Client cli("127.0.0.1", s.port);
      auto r = cli.Post("/api/groups", {{"Authorization", "Token " + s.pat}},
                        R"({"name":"big-)" + std::string(30000, 'n') + R"("})", "application/json");
      REQUIRE(r);
      CHECK(r->status != 413);
    }
    // Still serving after all that.
    CHECK(rest_get(s.port, s.pat, "/api/groups").status == 200);
  }

  SUBCASE("a TLS ClientHello and garbage are closed at once; a malformed request gets 400") {
    for (const std::string& first :
         {std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),
          std::string("SSH-2.0-OpenSSH_9.2\r\n"), std::string("\x00\x01\x02\x03", 4)}) {
      raw_conn c(s.port);
      REQUIRE(c.send(first));
      const auto began = clk::now();
      std::string got;
      CHECK(c.read_to_close(3s, &got));
      CHECK(clk::now() - began < 1s);
      CHECK(got.empty());
    }
    raw_conn c(s.port);
    REQUIRE(c.send("GET /api/groups HTTP/1.1\r\nHost x no colon\r\n\r\n"));
    std::string got;
    CHECK(c.read_to_close(3s, &got));
    CHECK(got.rfind("HTTP/1.1 400", 0) == 0);
  }

  SUBCASE("as before: request ids, CORS preflight, 404 JSON outside /api, query strings") {
    auto a = rest_get(s.port, s.pat, "/api/groups");
    auto b = rest_get(s.port, s.pat, "/api/groups");
    CHECK(a.request_id.size() >= 8);
    CHECK(a.request_id != b.request_id);
    CHECK(a.body.back() == '\n');
    httplib::Client cli("127.0.0.1", s.port);
    auto o = cli.Options("/api/peers");
    REQUIRE(o);
    CHECK(o->status == 200);
    CHECK(o->get_header_value("Access-Control-Allow-Origin") == "*");
    CHECK(o->get_header_value("Access-Control-Allow-Methods") == "GET, POST, PUT, DELETE, OPTIONS");
    CHECK(o->get_header_value("Access-Control-Allow-Headers") == "Authorization, Content-Type");
    CHECK(!o->get_header_value("X-Request-Id").empty());
    auto n = cli.Get("/not-api");
    REQUIRE(n);
    CHECK(n->status == 404);
    CHECK(n->body == "{\"message\":\"not found\",\"code\":404}\n");
    CHECK(n->get_header_value("Content-Type") == "application/json; charset=UTF-8");
    CHECK(!n->get_header_value("X-Request-Id").empty());
    auto g = cli.Get("/api/groups", {{"Authorization", "Token " + s.pat}});
    REQUIRE(g);
    CHECK(g->get_header_value("Access-Control-Allow-Origin") == "*");
    CHECK(g->get_header_value("Content-Type") == "application/json; charset=UTF-8");
    // Keep-alive: two requests on one connection.
    raw_conn c(s.port);
    const std::string req =
        "GET /api/groups HTTP/1.1\r\nHost: x\r\nAuthorization: Token " + s.pat + "\r\n\r\n";
    REQUIRE(c.send(req + req));
    std::string got;
    const auto answers = [&] {
      std::size_t n = 0;
      for (auto at = got.find("HTTP/1.1 200"); at != std::string::npos;
           at = got.find("HTTP/1.1 200", at + 1))
        ++n;
      return n;
    };
    CHECK(wait_for(
        [&] {
          c.read_until("never sent", 50ms, got); // whatever arrives within 50 ms
          return answers() == 2;
        },
        3000ms));
  }
}

TEST_CASE("slow clients: the REST API on its own port (--api-port) is served the same way") {
  tools::raise_open_files_limit();
  http_env env{{"NBM_HTTP_HEADER_TIMEOUT_MS", "1000"}};
  server s(storage::engine::sqlite, "", false);
  REQUIRE(s.api_port != s.port);
  tools::slow_crowd crowd({s.api_port, "127.0.0.2", 60, 200, 200});
  REQUIRE(wait_for([&] { return crowd.open() >= 60; }, 5000ms));
  for (int i = 0; i < 10; ++i) {
    const auto r = rest_get(s.api_port, s.pat, "/api/groups");
    CHECK(r.status == 200);
    CHECK(r.ms < 2000);
  }
  tools::peer_client peer(s.target());
  CHECK(peer.fetch_server_key().ok());
  // The HTTP/2 preface on the REST port is not gRPC's: closed.
  raw_conn c(s.api_port);
  REQUIRE(c.send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
  CHECK(c.read_to_close(3s));
  // The header deadline closes the trickling ones here too.
  CHECK(wait_for([&] { return crowd.closed(tools::slow_crowd::kind::trickle) > 0; }, 5000ms));
}
