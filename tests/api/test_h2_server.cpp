// Our HTTP/2 transport for gRPC (api/grpc/h2_server) against gRPC's own C++ client over a
// socketpair, and against raw bytes where a client misbehaves.
#include "api/grpc/h2_server.hpp"
#include "management.grpc.pb.h"

#include <doctest/doctest.h>
#include <grpcpp/create_channel_posix.h>
#include <grpcpp/grpcpp.h>

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

using namespace nbm::api;
using namespace std::chrono_literals;

namespace {

// What the handler saw, waited on with a deadline (never polled).
struct seen {
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;                   // calls whose on_done ran
  std::shared_ptr<rpc_call> held; // a stream left open by the handler

  void note_done() {
    {
      std::lock_guard<std::mutex> lk(mu);
      ++done;
    }
    cv.notify_all();
  }
  bool wait_done(int n) {
    std::unique_lock<std::mutex> lk(mu);
    return cv.wait_for(lk, 10s, [&] { return done >= n; });
  }
  std::shared_ptr<rpc_call> wait_held() {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait_for(lk, 10s, [&] { return held != nullptr; });
    return held;
  }
};

// The service under test: isHealthy answers; Login echoes its request's key back in the answer
// (or refuses with a message that needs percent-encoding); Sync writes three messages and ends,
// or (key "hold") stays open until the test ends it.
struct fixture {
  seen s;
  std::shared_ptr<h2_server> srv;
  explicit fixture(h2_options o = {}) {
    o.serves = [](const std::string& m) { return m == "isHealthy" || m == "Login" || m == "Sync"; };
    srv = h2_server::start(
        [this](const std::shared_ptr<rpc_call>& c) {
          c->on_done([this] { s.note_done(); });
          management::EncryptedMessage req;
          if (c->method == "isHealthy")
            return c->reply({}, management::Empty().SerializeAsString());
          if (!req.ParseFromString(c->request))
            return c->reply({3, "invalid request message"});
          if (c->method == "Login") {
            if (req.wgpubkey() == "refuse")
              return c->reply({7, "nicht erlaubt: 100% \xc3\xa9"});
            management::EncryptedMessage out;
            out.set_wgpubkey(req.wgpubkey());
            out.set_body(req.body());
            return c->reply({}, out.SerializeAsString());
          }
          if (req.wgpubkey().rfind("big", 0) == 0) { // one large message, named by the key
            management::EncryptedMessage m;
            m.set_wgpubkey(req.wgpubkey());
            m.set_body(std::string(300 * 1024, req.wgpubkey().back()));
            c->write(m.SerializeAsString());
            c->finish({});
            return;
          }
          if (req.wgpubkey() == "hold") {
            std::lock_guard<std::mutex> lk(s.mu);
            s.held = c;
            s.cv.notify_all();
            return;
          }
          for (int i = 0; i < 3; ++i) {
            management::EncryptedMessage m;
            m.set_wgpubkey("m" + std::to_string(i));
            c->write(m.SerializeAsString());
          }
          c->finish({});
        },
        std::move(o));
  }
  ~fixture() { srv->shutdown(); }

  // A gRPC client over one end of a socketpair; the server adopts the other.
  std::unique_ptr<management::ManagementService::Stub> client() {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    srv->adopt(sv[0], "192.0.2.7", "192.0.2.7:5000");
    auto ch = grpc::CreateInsecureChannelFromFd("test", sv[1]);
    return management::ManagementService::NewStub(ch);
  }
  // The raw other end, for bytes no gRPC client sends.
  int raw() {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    srv->adopt(sv[0], "192.0.2.8", "192.0.2.8:5000");
    timeval tv{10, 0}; // a read that waits longer has failed the test
    setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return sv[1];
  }
};

// Reads until the server closes the connection; false when it did not within the read timeout.
bool closed_by_server(int fd) {
  char buf[4096];
  for (;;) {
    const auto n = ::read(fd, buf, sizeof buf);
    if (n == 0)
      return true;
    if (n < 0)
      return false;
  }
}

const std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const std::string empty_settings("\0\0\0\x04\0\0\0\0\0", 9);

std::string frame(std::uint8_t type, std::uint8_t flags, std::uint32_t stream,
                  const std::string& payload) {
  std::string out;
  const auto n = payload.size();
  out += static_cast<char>(n >> 16);
  out += static_cast<char>(n >> 8);
  out += static_cast<char>(n);
  out += static_cast<char>(type);
  out += static_cast<char>(flags);
  out += static_cast<char>(stream >> 24);
  out += static_cast<char>(stream >> 16);
  out += static_cast<char>(stream >> 8);
  out += static_cast<char>(stream);
  return out + payload;
}

// A Sync request on stream 1 as a client writes it: HEADERS (HPACK literals without indexing)
// and one DATA frame with the length-prefixed message, ending the client's side.
std::string sync_request(const std::string& key) {
  std::string block;
  auto literal = [&](const std::string& name, const std::string& value) {
    block += '\0';
    block += static_cast<char>(name.size());
    block += name;
    block += static_cast<char>(value.size());
    block += value;
  };
  literal(":method", "POST");
  literal(":scheme", "http");
  literal(":path", "/management.ManagementService/Sync");
  literal(":authority", "test");
  literal("content-type", "application/grpc");
  literal("te", "trailers");
  management::EncryptedMessage m;
  m.set_wgpubkey(key);
  const auto body = m.SerializeAsString();
  std::string msg(1, '\0');
  msg += std::string(3, '\0');
  msg += static_cast<char>(body.size());
  msg += body;
  return frame(1, 0x4, 1, block) + frame(0, 0x1, 1, msg);
}

} // namespace

TEST_CASE("h2: unary calls answer, refusals carry their code and message, streams end in order") {
  fixture f;
  auto stub = f.client();
  grpc::ClientContext c1;
  management::Empty e;
  CHECK(stub->isHealthy(&c1, e, &e).ok());

  grpc::ClientContext c2;
  management::EncryptedMessage req, out;
  req.set_wgpubkey("key");
  req.set_body(std::string(100000, 'b')); // more than one DATA frame each way
  auto st = stub->Login(&c2, req, &out);
  REQUIRE(st.ok());
  CHECK(out.wgpubkey() == "key");
  CHECK(out.body() == req.body());

  grpc::ClientContext c3;
  req.set_wgpubkey("refuse");
  st = stub->Login(&c3, req, &out);
  CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(st.error_message() == "nicht erlaubt: 100% \xc3\xa9");

  grpc::ClientContext c4;
  req.set_wgpubkey("three");
  auto reader = stub->Sync(&c4, req);
  std::vector<std::string> got;
  management::EncryptedMessage m;
  while (reader->Read(&m))
    got.push_back(m.wgpubkey());
  CHECK(reader->Finish().ok());
  CHECK(got == std::vector<std::string>{"m0", "m1", "m2"});
  CHECK(f.s.wait_done(4));
}

TEST_CASE("h2: unknown methods, bad messages and oversized requests are refused; the connection "
          "goes on serving") {
  h2_options o;
  o.max_message = 1024;
  fixture f(o);
  auto stub = f.client();
  management::EncryptedMessage req, out;

  grpc::ClientContext c1;
  auto job = stub->Job(&c1); // a method this server does not serve
  job->WritesDone();
  CHECK(job->Finish().error_code() == grpc::StatusCode::UNIMPLEMENTED);

  grpc::ClientContext c2;
  req.set_wgpubkey("big");
  req.set_body(std::string(4096, 'x'));
  CHECK(stub->Login(&c2, req, &out).error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);

  grpc::ClientContext c3; // a compressed message: not supported, said so
  c3.set_compression_algorithm(GRPC_COMPRESS_GZIP);
  req.set_body(std::string(100, 'x'));
  CHECK(stub->Login(&c3, req, &out).error_code() == grpc::StatusCode::UNIMPLEMENTED);

  grpc::ClientContext c4;
  management::Empty e;
  CHECK(stub->isHealthy(&c4, e, &e).ok());
}

TEST_CASE("h2: a stream ends for its handler when the client cancels it or its connection goes") {
  fixture f;
  management::EncryptedMessage req;
  req.set_wgpubkey("hold");
  {
    auto stub = f.client();
    grpc::ClientContext ctx;
    auto reader = stub->Sync(&ctx, req);
    auto held = f.s.wait_held();
    REQUIRE(held);
    management::EncryptedMessage m;
    m.set_wgpubkey("first");
    held->write(m.SerializeAsString());
    REQUIRE(reader->Read(&m));
    CHECK(m.wgpubkey() == "first");
    ctx.TryCancel();
    CHECK(f.s.wait_done(1));
    reader->Finish();
    held->write(m.SerializeAsString()); // after the end: dropped, no harm
    std::lock_guard<std::mutex> lk(f.s.mu);
    f.s.held.reset();
  }
  // The connection itself goes (the peer's socket closed) with a stream open.
  const int fd = f.raw();
  const auto bytes = preface + empty_settings + sync_request("hold");
  REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  REQUIRE(f.s.wait_held());
  ::close(fd);
  CHECK(f.s.wait_done(2));
}

TEST_CASE("h2: bytes that are not HTTP/2 close the connection; a silent peer is dropped after "
          "its keepalive PING goes unanswered") {
  h2_options o;
  o.keepalive_ms = 100;
  o.keepalive_timeout_ms = 100;
  fixture f(o);
  const int garbage = f.raw();
  const std::string junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  REQUIRE(::write(garbage, junk.data(), junk.size()) == static_cast<ssize_t>(junk.size()));
  CHECK(closed_by_server(garbage));
  ::close(garbage);

  // A peer that opened HTTP/2 properly and then went silent: never acknowledges the PING.
  const int silent = f.raw();
  const auto hello = preface + empty_settings;
  REQUIRE(::write(silent, hello.data(), hello.size()) == static_cast<ssize_t>(hello.size()));
  CHECK(closed_by_server(silent));
  ::close(silent);

  // The server is unharmed, and a client that answers PINGs (gRPC's does) keeps its connection
  // across several keepalive periods.
  auto stub = f.client();
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext c;
    management::Empty e;
    CHECK(stub->isHealthy(&c, e, &e).ok());
  }
}

TEST_CASE("h2: shutdown ends open streams UNAVAILABLE and their handlers see the end") {
  fixture f;
  auto stub = f.client();
  grpc::ClientContext ctx;
  management::EncryptedMessage req;
  req.set_wgpubkey("hold");
  auto reader = stub->Sync(&ctx, req);
  auto held = f.s.wait_held();
  REQUIRE(held);
  f.srv->shutdown();
  CHECK(f.s.wait_done(1));
  management::EncryptedMessage m;
  CHECK_FALSE(reader->Read(&m));
  const auto st = reader->Finish();
  CHECK(st.error_code() == grpc::StatusCode::UNAVAILABLE);
  held->write("late"); // after shutdown: dropped
  std::lock_guard<std::mutex> lk(f.s.mu);
  f.s.held.reset();
}

TEST_CASE("h2: many streams with large messages on one connection all complete, each intact") {
  // More streams than writing turns: every turn must pass on, or a stream waits for ever.
  fixture f;
  auto stub = f.client();
  constexpr int streams = 12;
  std::vector<std::thread> readers;
  std::atomic<int> intact{0};
  for (int i = 0; i < streams; ++i)
    readers.emplace_back([&, i] {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + 20s);
      management::EncryptedMessage req, m;
      req.set_wgpubkey("big" + std::string(1, static_cast<char>('a' + i)));
      auto reader = stub->Sync(&ctx, req);
      int got = 0;
      bool ok = true;
      while (reader->Read(&m)) {
        ++got;
        ok = ok && m.wgpubkey() == req.wgpubkey() && m.body().size() == 300 * 1024 &&
             m.body().find_first_not_of(req.wgpubkey().back()) == std::string::npos;
      }
      if (reader->Finish().ok() && got == 1 && ok)
        ++intact;
    });
  for (auto& t : readers)
    t.join();
  CHECK(intact == streams);
}
