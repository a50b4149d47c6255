// No request takes the server down, end to end with the real binary: a kill -9 and a restart
// leave no peer "connected" forever and delete the ephemeral peers the dead process held after
// the lifetime counted from start-up; a PostgreSQL outage is answered UNAVAILABLE / 503 and the
// server serves again as soon as the database is back, having lost nothing; a request that is not
// protobuf at all answers INVALID_ARGUMENT; errors echo only a short prefix of client input.
#include "tests/e2e/harness.hpp"

#include <google/protobuf/wrappers.pb.h>
#include <grpcpp/generic/generic_stub.h>
#include <httplib.h>

#include <cstdlib>
#include <sstream>

using namespace nbm;
using namespace nbm::e2e;

namespace {

// kill -9: no shutdown, no disconnect written, sockets closed by the kernel.
void kill_hard(server& s) {
  REQUIRE(s.pid > 0);
  REQUIRE(::kill(s.pid, SIGKILL) == 0);
  int status = 0;
  ::waitpid(s.pid, &status, 0);
  s.pid = -1;
}

// Sends `bytes` as the whole request message of `method` (a unary or a server-streaming method
// alike) and answers the call's status.
grpc::Status raw_call(const std::string& target, const std::string& method,
                      const std::string& bytes) {
  auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  auto call = stub.PrepareCall(&ctx, method, &cq);
  void* tag = nullptr;
  bool ok = false;
  call->StartCall(reinterpret_cast<void*>(1));
  cq.Next(&tag, &ok);
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  call->WriteLast(request, grpc::WriteOptions(), reinterpret_cast<void*>(2));
  cq.Next(&tag, &ok);
  grpc::ByteBuffer response;
  call->Read(&response, reinterpret_cast<void*>(3));
  cq.Next(&tag, &ok);
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(4));
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

// The throwaway PostgreSQL of scripts/pg_throwaway.sh (NBM_TEST_PG_DIR), stopped and started
// again with its own data directory and options (read from postmaster.opts), so the DSN the
// server holds stays valid.
struct pg_server {
  std::string dir, bin, options;

  static std::optional<pg_server> find() {
    const char* d = std::getenv("NBM_TEST_PG_DIR");
    if (!d || !*d)
      return std::nullopt;
    pg_server p;
    p.dir = d;
    std::ifstream in(p.dir + "/data/postmaster.opts");
    std::string line;
    if (!std::getline(in, line))
      return std::nullopt;
    // /usr/lib/postgresql/15/bin/postgres "-D" "/tmp/nbm-pg.X/data" "-p" "123" ...
    const auto first = line.find(' ');
    if (first == std::string::npos)
      return std::nullopt;
    const std::string postgres = line.substr(0, first);
    p.bin = postgres.substr(0, postgres.rfind('/'));
    std::string rest = line.substr(first + 1);
    const std::string data_arg = "\"-D\" \"" + p.dir + "/data\"";
    if (auto at = rest.find(data_arg); at != std::string::npos)
      rest.erase(at, data_arg.size());
    p.options = rest;
    return p;
  }
  std::string ctl(const std::string& args) const {
    const std::string as = ::geteuid() == 0 ? "runuser -u postgres -- " : "";
    return as + bin + "/pg_ctl -D " + dir + "/data " + args + " >/dev/null 2>&1";
  }
  bool stop() const { return std::system(ctl("-m fast -w stop").c_str()) == 0; }
  bool start() const {
    return std::system(ctl("-w -l " + dir + "/log -o '" + options + "' start").c_str()) == 0;
  }
};

struct http_reply {
  int status = 0;
  std::string retry_after;
};

http_reply rest_get(const server& s, const std::string& path) {
  httplib::Client cli("127.0.0.1", s.api_port);
  cli.set_connection_timeout(5);
  cli.set_read_timeout(15);
  auto r = cli.Get(path, {{"Authorization", "Token " + s.pat}});
  if (!r)
    return {};
  return {r->status, r->get_header_value("Retry-After")};
}

} // namespace

TEST_CASE("crash: after kill -9 and a restart no peer stays connected, the ephemeral peer the dead "
          "process held is deleted after the lifetime from start-up, one that reconnects stays") {
  ::setenv("NBM_EPHEMERAL_LIFETIME", "3s", 1);
  for (auto kind : engines()) {
    INFO(std::string(storage::to_string(kind)));
    server s(kind);
    const auto key = s.setup_key("--name fleet --reusable");
    const auto eph_key = s.setup_key("--name ci --reusable --ephemeral");
    const std::string back_key_file = s.dir + "/back.key";
    tools::peer_client fixed(s.target()), eph(s.target()), back(s.target(), back_key_file);
    REQUIRE(fixed.login(key, "fixed").ok());
    REQUIRE(eph.login(eph_key, "gone").ok());
    REQUIRE(back.login(eph_key, "back").ok());
    {
      stream s1(fixed, "fixed", 60000), s2(eph, "gone", 60000), s3(back, "back", 60000);
      REQUIRE(s1.wait_maps(1, 5000ms));
      REQUIRE(s2.wait_maps(1, 5000ms));
      REQUIRE(s3.wait_maps(1, 5000ms));
      for (auto* p : {&fixed, &eph, &back})
        REQUIRE(eventually([&] { return s.peer_by_key(p->public_key_b64())->status.connected; }));
      kill_hard(s);
      CHECK(s1.wait_end(5000ms));
      CHECK(s2.wait_end(5000ms));
      CHECK(s3.wait_end(5000ms));
    }
    // What the dead process left: three peers "connected", with their sessions' tokens.
    for (auto* p : {&fixed, &eph, &back}) {
      auto row = s.peer_by_key(p->public_key_b64());
      REQUIRE(row);
      CHECK(row->status.connected);
      CHECK(row->status.session_started_at != 0);
    }

    const auto started = std::chrono::steady_clock::now();
    s.start(); // returns once gRPC answers: the sweep ran before serving
    for (auto* p : {&fixed, &eph, &back}) {
      auto row = s.peer_by_key(p->public_key_b64());
      REQUIRE(row);
      CHECK_FALSE(row->status.connected);
      CHECK(row->status.session_started_at == 0);
    }
    CHECK(occurrences(read_file(s.dir + "/server.log"), "start-up: 3 leftover session(s)") == 1);

    // "back" comes back (a new client on the new port, same key) and stays.
    tools::peer_client back_again(s.target(), back_key_file);
    REQUIRE(back_again.public_key_b64() == back.public_key_b64());
    REQUIRE(back_again.login("", "back").ok());
    stream s3(back_again, "back", 15000);
    REQUIRE(s3.wait_maps(1, 5000ms));
    REQUIRE(eventually([&] { return s.peer_by_key(back.public_key_b64())->status.connected; }));

    // "gone" never does: deleted after the lifetime counted from start-up, not before.
    REQUIRE(eventually([&] { return !s.peer_by_key(eph.public_key_b64()); }, 15000ms));
    CHECK(std::chrono::steady_clock::now() - started >= 3s);
    // A moment later: "back" is there, still connected; "fixed" (not ephemeral) is there,
    // disconnected.
    std::this_thread::sleep_for(1000ms);
    auto b = s.peer_by_key(back.public_key_b64());
    REQUIRE(b);
    CHECK(b->status.connected);
    CHECK_FALSE(s3.finished);
    auto f = s.peer_by_key(fixed.public_key_b64());
    REQUIRE(f);
    CHECK_FALSE(f->status.connected);
    s.stop();
  }
}

TEST_CASE("crash: a restart ends nothing while another replica serves the PostgreSQL store") {
  if (!test::postgres_available())
    return;
  ::setenv("NBM_EPHEMERAL_LIFETIME", "600s", 1);
  server a(storage::engine::postgres);
  const auto key = a.setup_key("--name fleet --reusable");
  tools::peer_client p(a.target());
  REQUIRE(p.login(key, "alive").ok());
  stream on_a(p, "alive", 20000);
  REQUIRE(on_a.wait_maps(1, 5000ms));
  REQUIRE(eventually([&] { return a.peer_by_key(p.public_key_b64())->status.connected; }));
  const auto token = a.peer_by_key(p.public_key_b64())->status.session_started_at;
  // A second replica starts while A serves the peer: it must leave A's session alone.
  replica b(a);
  auto row = a.peer_by_key(p.public_key_b64());
  REQUIRE(row);
  CHECK(row->status.connected);
  CHECK(row->status.session_started_at == token);
  CHECK(read_file(b.log).find("other replicas serve this store") != std::string::npos);
  CHECK_FALSE(on_a.finished);
  b.stop();
  a.stop();
}

TEST_CASE("outage: PostgreSQL stopped for 8 s: UNAVAILABLE and 503 meanwhile, then everything "
          "serves again within seconds and nothing acknowledged is lost") {
  if (!test::postgres_available())
    return;
  auto pg = pg_server::find();
  if (!pg) {
    const char* require = std::getenv("NBM_REQUIRE_PG");
    if (require && std::string(require) == "1")
      FAIL("NBM_TEST_PG_DIR (scripts/pg_throwaway.sh) is needed to stop PostgreSQL");
    MESSAGE("no NBM_TEST_PG_DIR: the outage case needs scripts/pg_throwaway.sh");
    return;
  }
  server s(storage::engine::postgres);
  const auto key = s.setup_key("--name fleet --reusable");
  tools::peer_client a(s.target()), b(s.target()), c(s.target()), d(s.target()), e(s.target());
  REQUIRE(a.login(key, "alpha").ok());
  REQUIRE(b.login(key, "beta").ok());
  REQUIRE(d.login(key, "delta").ok());
  REQUIRE(e.login(key, "epsilon").ok());
  stream sa(a, "alpha", 60000);
  REQUIRE(sa.wait_maps(1, 5000ms));
  REQUIRE(eventually([&] { return s.peer_by_key(a.public_key_b64())->status.connected; }));
  const auto a_row = *s.peer_by_key(a.public_key_b64());
  REQUIRE(rest_get(s, "/api/peers").status == 200);
  // epsilon's stream ends while the database is down: its disconnect cannot be written then.
  const auto opened = std::chrono::steady_clock::now();
  stream se(e, "epsilon", 4000);
  REQUIRE(se.wait_maps(1, 3000ms));
  REQUIRE(eventually([&] { return s.peer_by_key(e.public_key_b64())->status.connected; }));

  REQUIRE(pg->stop());
  const auto stopped = std::chrono::steady_clock::now();
  REQUIRE(stopped - opened < 3500ms); // the stream ends during the outage
  bool restarted = false;
  // Whatever fails below, PostgreSQL runs again for the cases after this one.
  struct restart_guard {
    pg_server& pg;
    bool& done;
    ~restart_guard() {
      if (!done)
        pg.start();
    }
  } guard{*pg, restarted};

  {
    auto r = c.login(key, "gamma"); // a registration
    CHECK(r.code == grpc::StatusCode::UNAVAILABLE);
    CHECK(r.message.find("unavailable") != std::string::npos);
    r = b.login(key, "beta"); // a known peer: answered from the account its actor holds
    CHECK_MESSAGE(r.ok(), r.message);
    r = b.sync(
        "beta", [](const management::SyncResponse&) { return false; }, 5000);
    CHECK(r.code == grpc::StatusCode::UNAVAILABLE);
    grpc::ClientContext ctx;
    management::SyncMetaRequest meta;
    meta.mutable_meta()->set_hostname("beta");
    management::Empty empty;
    CHECK(b.stub().SyncMeta(&ctx, b.envelope(meta), &empty).error_code() ==
          grpc::StatusCode::UNAVAILABLE);
    grpc::ClientContext ctx2;
    CHECK(d.stub().Logout(&ctx2, d.envelope(management::Empty()), &empty).error_code() ==
          grpc::StatusCode::UNAVAILABLE);
    // REST: 503 with Retry-After (api/http/rest.cpp; another change brings it).
    auto rest = rest_get(s, "/api/peers");
    CHECK(rest.status == 503);
    CHECK_FALSE(rest.retry_after.empty());
  }
  CHECK(se.wait_end(5000ms));
  // The server is up all along.
  CHECK(tools::peer_client(s.target()).fetch_server_key().ok());
  CHECK_FALSE(sa.finished);

  std::this_thread::sleep_until(stopped + 8s);
  REQUIRE(pg->start());
  restarted = true;
  const auto back = std::chrono::steady_clock::now();

  // Within a few seconds: logins, syncs and REST answer again.
  CHECK(eventually([&] { return c.login(key, "gamma").ok(); }, 5000ms));
  const auto serving = std::chrono::steady_clock::now() - back;
  MESSAGE("first login after PostgreSQL came back: "
          << std::chrono::duration_cast<std::chrono::milliseconds>(serving).count() << " ms");
  CHECK(b.login(key, "beta").ok());
  stream sb(b, "beta", 5000);
  CHECK(sb.wait_maps(1, 5000ms));
  CHECK(eventually([&] { return rest_get(s, "/api/peers").status == 200; }, 5000ms));
  grpc::ClientContext ctx;
  management::Empty empty;
  CHECK(d.stub().Logout(&ctx, d.envelope(management::Empty()), &empty).ok());

  // Nothing acknowledged was lost: alpha's session still stands (its stream is open, its row
  // connected with the same token), beta and gamma are registered, delta logged out.
  CHECK_FALSE(sa.finished);
  auto a_now = s.peer_by_key(a.public_key_b64());
  REQUIRE(a_now);
  CHECK(a_now->status.connected);
  CHECK(a_now->status.session_started_at == a_row.status.session_started_at);
  CHECK(s.peer_by_key(b.public_key_b64()).has_value());
  CHECK(s.peer_by_key(c.public_key_b64()).has_value());
  CHECK_FALSE(s.peer_by_key(d.public_key_b64()).has_value());
  // epsilon's session, whose end could not be written during the outage, ends in the store once
  // the database is back (no peer stays "connected" for good).
  CHECK(eventually([&] { return !s.peer_by_key(e.public_key_b64())->status.connected; }, 5000ms));
  CHECK(read_file(s.dir + "/server.log").find("landed on a retry") != std::string::npos);
  // The replica's presence hold is back too.
  CHECK(eventually(
      [&] {
        return read_file(s.dir + "/server.log").find("holding the presence lock again") !=
               std::string::npos;
      },
      5000ms));
  s.stop();
}

TEST_CASE("wire: a request that is not protobuf answers INVALID_ARGUMENT; an unserved method stays "
          "UNIMPLEMENTED; errors echo only a prefix of what the client sent") {
  server s(storage::engine::sqlite);
  // An invalid tag, then a length that runs past the end.
  const std::string garbage("\xff\xff\xff\xff\x0f\x0a\xff\x01x", 9);
  for (const char* method : {"Login", "Sync", "SyncMeta", "Logout", "GetDeviceAuthorizationFlow",
                             "GetPKCEAuthorizationFlow"}) {
    INFO(method);
    auto st = raw_call(s.target(), std::string("/management.ManagementService/") + method, garbage);
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(st.error_message() == "invalid request message");
  }
  auto unserved = raw_call(s.target(), "/management.ManagementService/CreateExpose", "");
  CHECK(unserved.error_code() == grpc::StatusCode::UNIMPLEMENTED);
  auto unknown = raw_call(s.target(), "/management.ManagementService/NoSuchMethod", garbage);
  CHECK(unknown.error_code() == grpc::StatusCode::UNIMPLEMENTED);

  // A 4 KiB "key": the message names at most a prefix of it.
  tools::peer_client p(s.target());
  REQUIRE(p.fetch_server_key().ok());
  management::EncryptedMessage env;
  env.set_wgpubkey(std::string(4096, 'A'));
  env.set_body("x");
  management::EncryptedMessage out;
  grpc::ClientContext c1;
  auto st = p.stub().Login(&c1, env, &out);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(st.error_message().size() < 120);
  CHECK(st.error_message().rfind("provided wgPubKey AAAA", 0) == 0);
  grpc::ClientContext c2;
  st = p.stub().GetPKCEAuthorizationFlow(&c2, env, &out);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(st.error_message().size() < 160);
  {
    grpc::ClientContext c3;
    auto reader = p.stub().Sync(&c3, env);
    management::EncryptedMessage m;
    while (reader->Read(&m)) {
    }
    st = reader->Finish();
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(st.error_message().size() < 120);
  }
  // The server is still up and serves.
  const auto key = s.setup_key("--name k");
  CHECK(tools::peer_client(s.target()).login(key, "after").ok());
}

TEST_CASE("wire: a Login whose strings are not UTF-8 answers INVALID_ARGUMENT and leaves no "
          "libprotobuf line in the info log (no console flood from client input)") {
  server s(storage::engine::sqlite);
  tools::peer_client p(s.target());
  REQUIRE(p.fetch_server_key().ok());
  // Field 1 (a LoginRequest's setupKey), length 2, bytes that are no UTF-8: BytesValue writes the
  // same wire bytes a string field would.
  google::protobuf::BytesValue body;
  body.set_value("\xc3\x28");
  for (int i = 0; i < 20; ++i) {
    auto env = p.envelope(body);
    management::EncryptedMessage out;
    grpc::ClientContext ctx;
    auto st = p.stub().Login(&ctx, env, &out);
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  }
  // The server still serves.
  CHECK(p.fetch_server_key().ok());
  // The harness runs the server at debug: there each such line is a debug line of the grpc layer,
  // so at info (the default) nothing of it shows. libprotobuf's own format is "[libprotobuf ERROR".
  std::istringstream log(read_file(s.dir + "/server.log"));
  int protobuf_lines = 0;
  for (std::string line; std::getline(log, line);) {
    if (line.find("libprotobuf") == std::string::npos)
      continue;
    ++protobuf_lines;
    INFO(line);
    CHECK(line.find(" debug [grpc] libprotobuf: ") != std::string::npos);
  }
  CHECK(protobuf_lines == 20);
  s.stop();
}
