// End to end over the real wire: the real netbird-mgmt binary on 127.0.0.1, driven by the peer
// simulator speaking NetBird's protocol (GetServerKey, Login, Sync), on SQLite and on PostgreSQL.
#include "tests/e2e/harness.hpp"

#include <algorithm>

using namespace nbm;
using namespace nbm::e2e;
using namespace std::chrono_literals;

TEST_CASE("wire: the server key is stored, survives a restart and is valid for the envelope") {
  for (auto kind : engines()) {
    INFO(std::string(storage::to_string(kind)));
    server s(kind);
    tools::peer_client a(s.target());
    REQUIRE(a.fetch_server_key().ok());
    const auto first = a.server_key();
    CHECK(first.size() == 32);
    s.stop();
    s.start();
    tools::peer_client b(s.target());
    REQUIRE(b.fetch_server_key().ok());
    CHECK(b.server_key() == first);
    grpc::ClientContext ctx;
    management::Empty e;
    management::ServerKeyResponse resp;
    REQUIRE(b.stub().GetServerKey(&ctx, e, &resp).ok());
    CHECK(resp.expiresat().seconds() > std::time(nullptr));
    grpc::ClientContext hctx;
    management::Empty out;
    CHECK(b.stub().isHealthy(&hctx, e, &out).ok());
  }
}

TEST_CASE(
    "wire: register, sync, see a new peer live; a newer stream replaces the older; disconnect") {
  for (auto kind : engines()) {
    INFO(std::string(storage::to_string(kind)));
    server s(kind);
    const auto key = s.setup_key("--name fleet --reusable --auto-groups " + s.all_group);
    tools::peer_client a(s.target()), b(s.target());
    management::LoginResponse la;
    REQUIRE(a.login(key, "alpha", &la).ok());
    CHECK(la.peerconfig().fqdn() == "alpha.netbird.selfhosted");
    // NetbirdConfig from the fixture config (tests/fixtures/management.json): STUN, time-based TURN
    // credentials, relay token, signal.
    const auto& nc = la.netbirdconfig();
    REQUIRE(nc.stuns_size() == 1);
    CHECK(nc.stuns(0).uri() == "stun:stun.fixture.test:3478");
    CHECK(nc.signal().uri() == "signal.fixture.test:10000");
    CHECK(nc.signal().protocol() == management::HostConfig::HTTP);
    REQUIRE(nc.turns_size() == 1);
    const auto now = static_cast<long long>(std::time(nullptr));
    const long long turn_expiry = std::stoll(nc.turns(0).user());
    CHECK(turn_expiry >= now + 3600 - 60);
    CHECK(turn_expiry <= now + 3600 + 60);
    CHECK(nc.turns(0).password() == crypto::base64_encode(crypto::hmac_sha1(
                                        "Zml4dHVyZS10dXJuLXNlY3JldA==", nc.turns(0).user())));
    CHECK(nc.relay().urls(0) == "rels://relay.fixture.test:443");
    const long long relay_expiry = std::stoll(nc.relay().tokenpayload());
    CHECK(relay_expiry >= now + 7200 - 60);
    CHECK(nc.relay().tokensignature() == crypto::base64_encode(crypto::hmac_sha256(
                                             "fixture-relay-secret", nc.relay().tokenpayload())));
    CHECK(la.peerconfig().address().find("/16") != std::string::npos);
    auto stored = s.peer_by_key(a.public_key_b64());
    REQUIRE(stored.has_value());
    CHECK(la.peerconfig().address() == stored->ip + "/16");
    CHECK(stored->dns_label == "alpha");
    CHECK(stored->meta.hostname == "alpha");

    stream first(a, "alpha");
    REQUIRE(first.wait_maps(1, 5000ms));
    CHECK(first.last().empty()); // alone in the account
    CHECK(eventually([&] { return s.peer_by_key(a.public_key_b64())->status.connected; }));

    // B registers: A's stream receives B within a second.
    const auto t0 = std::chrono::steady_clock::now();
    REQUIRE(b.login(key, "beta").ok());
    REQUIRE(first.wait_maps(2, 1000ms));
    CHECK(std::chrono::steady_clock::now() - t0 < 1000ms);
    CHECK(first.last() == std::vector<std::string>{"beta.netbird.selfhosted"});

    // A opens a second stream: the first one ends cleanly, A stays connected with the new session.
    const auto token_before = s.peer_by_key(a.public_key_b64())->status.session_started_at;
    auto second = std::make_unique<stream>(a, "alpha");
    REQUIRE(second->wait_maps(1, 5000ms));
    REQUIRE(first.wait_end(3000ms));
    CHECK(first.end.code == 0);
    CHECK(eventually([&] {
      auto p = s.peer_by_key(a.public_key_b64());
      return p->status.connected && p->status.session_started_at > token_before;
    }));
    std::this_thread::sleep_for(200ms); // the old stream's disconnect has been handled by now
    auto p = s.peer_by_key(a.public_key_b64());
    CHECK(p->status.connected);

    // Closing the newest stream marks A disconnected.
    s.stop(); // ends every stream
    second.reset();
    s.start();
    CHECK(eventually([&] { return !s.peer_by_key(a.public_key_b64())->status.connected; }));
  }
}

TEST_CASE("wire: setup keys and peers that must be refused, with NetBird's codes") {
  for (auto kind : engines()) {
    INFO(std::string(storage::to_string(kind)));
    server s(kind);
    const auto once = s.setup_key("--name once");
    tools::peer_client p1(s.target()), p2(s.target());
    REQUIRE(p1.login(once, "one").ok());
    auto r = p2.login(once, "two"); // one-off key used twice
    CHECK(r.code == grpc::StatusCode::NOT_FOUND);
    CHECK(r.message == "couldn't add peer: setup key is invalid");

    const auto limited = s.setup_key("--name lim --reusable --usage-limit 1");
    tools::peer_client p3(s.target()), p4(s.target());
    REQUIRE(p3.login(limited, "three").ok());
    CHECK(p4.login(limited, "four").code == grpc::StatusCode::NOT_FOUND); // exhausted

    const auto revoked = s.setup_key("--name rev --reusable");
    s.admin("setup-key revoke --account " + s.account + " --id " + s.key_id_of(revoked));
    tools::peer_client p5(s.target());
    CHECK(p5.login(revoked, "five").code == grpc::StatusCode::NOT_FOUND);

    const auto expiring = s.setup_key("--name exp --reusable --expires-in 1s");
    std::this_thread::sleep_for(1500ms);
    tools::peer_client p6(s.target());
    CHECK(p6.login(expiring, "six").code == grpc::StatusCode::NOT_FOUND);

    tools::peer_client p7(s.target());
    CHECK(p7.login("00000000-0000-4000-8000-000000000000", "seven").code ==
          grpc::StatusCode::NOT_FOUND);
    auto none = p7.login("", "seven"); // unknown peer, no setup key
    CHECK(none.code == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(none.message ==
          "no peer auth method provided, please use a setup key or interactive SSO login");
    auto sync = p7.sync(
        "seven", [](const management::SyncResponse&) { return true; }, 5000);
    CHECK(sync.code == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(sync.message == "peer is not registered");

    // A garbage body, a body sealed for another key, an invalid wgPubKey.
    management::EncryptedMessage env;
    env.set_wgpubkey(p7.public_key_b64());
    env.set_body("not a box at all, just bytes");
    grpc::ClientContext c1;
    management::EncryptedMessage out;
    auto st = p7.stub().Login(&c1, env, &out);
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(st.error_message() == "invalid request message");
    tools::peer_client other(s.target());
    REQUIRE(other.fetch_server_key().ok());
    management::LoginRequest lr;
    lr.set_setupkey(once);
    auto sealed_by_other = other.envelope(lr);
    sealed_by_other.set_wgpubkey(p7.public_key_b64()); // claims to be p7, sealed by `other`
    grpc::ClientContext c2;
    CHECK(p7.stub().Login(&c2, sealed_by_other, &out).error_code() ==
          grpc::StatusCode::INVALID_ARGUMENT);
    env.set_wgpubkey("not-a-key");
    grpc::ClientContext c3;
    st = p7.stub().Login(&c3, env, &out);
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(st.error_message() == "provided wgPubKey not-a-key is invalid");

    // A JWT the configured IdP (NetBird's template config: its JWKS cannot be read) does not
    // vouch for, an unserved RPC, and flows that are not configured.
    tools::peer_client p8(s.target());
    REQUIRE(p8.fetch_server_key().ok());
    management::LoginRequest jwt;
    jwt.set_jwttoken("eyJhbGciOiJSUzI1NiJ9.e30.sig");
    jwt.mutable_meta()->set_hostname("eight");
    grpc::ClientContext c4;
    st = p8.stub().Login(&c4, p8.envelope(jwt), &out);
    CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(st.error_message() == "invalid jwt token");
    grpc::ClientContext c5;
    management::DeviceAuthorizationFlowRequest dreq;
    CHECK(p8.stub().GetDeviceAuthorizationFlow(&c5, p8.envelope(dreq), &out).error_code() ==
          grpc::StatusCode::NOT_FOUND);
    grpc::ClientContext c6;
    management::Empty empty;
    auto lo = p8.stub().Logout(&c6, p8.envelope(empty), &empty);
    CHECK(lo.error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK(lo.error_message() == "peer not found: " + p8.public_key_b64());

    // A body sealed for another server key does not open.
    auto fake_server = crypto::make_wg_key_pair();
    auto mine = crypto::make_wg_key_pair();
    management::EncryptedMessage wrong;
    wrong.set_wgpubkey(crypto::base64_encode(mine.public_key));
    wrong.set_body(
        crypto::box_seal(lr.SerializeAsString(), fake_server.public_key, mine.private_key));
    grpc::ClientContext c8;
    st = p8.stub().Login(&c8, wrong, &out);
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(st.error_message() == "invalid request message");

    // A 10 MiB message is refused by the transport limit, and the next client is served.
    management::EncryptedMessage huge;
    huge.set_wgpubkey(p8.public_key_b64());
    huge.set_body(std::string(10 * 1024 * 1024, 'x'));
    grpc::ClientContext c9;
    CHECK(p8.stub().Login(&c9, huge, &out).error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
    grpc::ClientContext c7;
    auto job = p8.stub().Job(&c7);
    job->WritesDone();
    CHECK(job->Finish().error_code() == grpc::StatusCode::UNIMPLEMENTED);

    // The server stayed up and nothing was half-written: two peers registered, the first still
    // there.
    tools::peer_client probe(s.target());
    CHECK(probe.fetch_server_key().ok());
    CHECK(s.peer_by_key(p1.public_key_b64()).has_value());
    CHECK_FALSE(s.peer_by_key(p2.public_key_b64()).has_value());
    CHECK_FALSE(s.peer_by_key(p7.public_key_b64()).has_value());
  }
}

TEST_CASE("wire: SyncMeta stores the meta; Logout deletes the peer, ends its stream and leaves the "
          "others' maps") {
  for (auto kind : engines()) {
    INFO(std::string(storage::to_string(kind)));
    server s(kind);
    const auto key = s.setup_key("--name fleet --reusable");
    tools::peer_client a(s.target()), b(s.target());
    REQUIRE(a.login(key, "alpha").ok());
    REQUIRE(b.login(key, "beta").ok());

    management::SyncMetaRequest meta;
    meta.mutable_meta()->set_hostname("alpha");
    meta.mutable_meta()->set_netbirdversion("0.61.2");
    meta.mutable_meta()->set_kernelversion("6.1.0");
    grpc::ClientContext c1;
    management::Empty empty;
    REQUIRE(a.stub().SyncMeta(&c1, a.envelope(meta), &empty).ok());
    auto pa = s.peer_by_key(a.public_key_b64());
    REQUIRE(pa.has_value());
    CHECK(pa->meta.wt_version == "0.61.2");
    CHECK(pa->meta.kernel_version == "6.1.0");

    stream sa(a, "alpha"), sb(b, "beta");
    REQUIRE(sa.wait_maps(1, 5000ms));
    REQUIRE(sb.wait_maps(1, 5000ms));
    CHECK(sa.last() == std::vector<std::string>{"beta.netbird.selfhosted"});

    grpc::ClientContext c2;
    REQUIRE(b.stub().Logout(&c2, b.envelope(empty), &empty).ok());
    CHECK_FALSE(s.peer_by_key(b.public_key_b64()).has_value());
    REQUIRE(sb.wait_end(3000ms));
    REQUIRE(sa.wait_maps(2, 2000ms));
    CHECK(sa.last().empty());
    s.stop();
  }
}

TEST_CASE(
    "wire: a peer syncing twice at once and racing itself ends connected with the newest session") {
  for (auto kind : engines()) {
    INFO(std::string(storage::to_string(kind)));
    server s(kind);
    const auto key = s.setup_key("--name fleet --reusable");
    tools::peer_client a(s.target());
    REQUIRE(a.login(key, "alpha").ok());
    std::vector<std::unique_ptr<stream>> streams;
    for (int i = 0; i < 4; ++i)
      streams.push_back(std::make_unique<stream>(a, "alpha"));
    // Exactly one stream survives; the others end (replaced, or refused as stale).
    CHECK(eventually(
        [&] {
          int live = 0;
          for (auto& st : streams)
            live += !st->finished;
          return live == 1;
        },
        5000ms));
    CHECK(eventually([&] { return s.peer_by_key(a.public_key_b64())->status.connected; }));
    s.stop();
  }
}

TEST_CASE("wire: behind a load balancer, a Login on one replica and the Sync on another are "
          "accepted at once, and the other replica's maps hold every peer") {
  if (!test::postgres_available()) {
    CHECK_MESSAGE(std::getenv("NBM_REQUIRE_PG") == nullptr, "NBM_REQUIRE_PG=1 but no PostgreSQL");
    return;
  }
  server a(storage::engine::postgres);
  // B never polls the account's serial here: only the read before a refusal can save the Sync.
  ::setenv("NBM_ACCOUNT_POLL_INTERVAL_MS", "600000", 1);
  replica b(a);
  ::setenv("NBM_ACCOUNT_POLL_INTERVAL_MS", "200", 1);
  const auto key = a.setup_key("--name lb --reusable");
  // B holds the account first: a peer registered and syncing there.
  tools::peer_client first(b.target());
  REQUIRE(first.login(key, "first").ok());
  stream on_first(first, "first");
  REQUIRE(on_first.wait_maps(1, 5000ms));
  // Fresh peers: Login on A, the Sync right after on B.
  std::vector<std::unique_ptr<stream>> streams;
  std::vector<std::unique_ptr<tools::peer_client>> clients;
  for (int i = 0; i < 5; ++i) {
    const auto host = "lb" + std::to_string(i);
    const std::string key_file = a.dir + "/" + host + ".key";
    tools::peer_client on_a(a.target(), key_file);
    auto r = on_a.login(key, host);
    REQUIRE_MESSAGE(r.ok(), r.message);
    clients.push_back(std::make_unique<tools::peer_client>(b.target(), key_file));
    REQUIRE(clients.back()->fetch_server_key().ok());
    streams.push_back(std::make_unique<stream>(*clients.back(), host));
    REQUIRE_MESSAGE(streams.back()->wait_maps(1, 5000ms),
                    "Sync on B ended: " << streams.back()->end.message);
  }
  // The last one's first map on B lists every peer registered before it (the default policy).
  auto names = streams.back()->last();
  std::sort(names.begin(), names.end());
  CHECK(names.size() == 5);
  CHECK(std::count_if(names.begin(), names.end(),
                      [](const std::string& n) { return n.rfind("first.", 0) == 0; }) == 1);
  b.stop();
  a.stop();
}

TEST_CASE("wire: 30 fresh peers at once, each with its Login on replica A and its Sync right after "
          "on replica B: every Sync is accepted and holds its first map") {
  if (!test::postgres_available()) {
    CHECK_MESSAGE(std::getenv("NBM_REQUIRE_PG") == nullptr, "NBM_REQUIRE_PG=1 but no PostgreSQL");
    return;
  }
  server a(storage::engine::postgres);
  // B never polls the account's serial: only the store lookup of a key it never saw (and the read
  // of the account before a refusal) can accept these Syncs.
  ::setenv("NBM_ACCOUNT_POLL_INTERVAL_MS", "600000", 1);
  replica b(a);
  ::setenv("NBM_ACCOUNT_POLL_INTERVAL_MS", "200", 1);
  const auto key = a.setup_key("--name lb30 --reusable");
  constexpr int n = 30;
  std::vector<std::unique_ptr<tools::peer_client>> on_b(n);
  std::vector<std::unique_ptr<stream>> streams(n);
  std::vector<std::string> login_errors(n);
  std::vector<std::thread> peers;
  for (int i = 0; i < n; ++i)
    peers.emplace_back([&, i] {
      const auto host = "fresh" + std::to_string(i);
      const std::string key_file = a.dir + "/" + host + ".key";
      tools::peer_client login_client(a.target(), key_file);
      auto r = login_client.login(key, host);
      if (!r.ok()) {
        login_errors[i] = r.message.empty() ? "failed" : r.message;
        return;
      }
      on_b[i] = std::make_unique<tools::peer_client>(b.target(), key_file);
      if (!on_b[i]->fetch_server_key().ok()) {
        login_errors[i] = "no server key from B";
        return;
      }
      streams[i] = std::make_unique<stream>(*on_b[i], host);
    });
  for (auto& t : peers)
    t.join();
  int accepted = 0;
  for (int i = 0; i < n; ++i) {
    CAPTURE(i);
    REQUIRE_MESSAGE(login_errors[i].empty(), login_errors[i]);
    REQUIRE(streams[i]);
    const bool got = streams[i]->wait_maps(1, 10000ms);
    CHECK_MESSAGE(got, "Sync on B ended: " << streams[i]->end.message);
    accepted += got;
  }
  CHECK(accepted == n);
  // B's maps come to hold every one of them (the default policy: everyone sees everyone).
  CHECK(eventually([&] { return streams[0]->last().size() == n - 1; }, 10000ms));
  b.stop();
  a.stop();
}
