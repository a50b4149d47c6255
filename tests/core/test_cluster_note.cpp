// The cluster channel's payloads (core/cluster_note): what one replica encodes the others decode,
// never more than PostgreSQL takes, and any other bytes are refused or skipped, never trusted.
#include "core/cluster_note.hpp"

#include <doctest/doctest.h>

using namespace nbm::core;

TEST_CASE("cluster notes: account writes and sessions survive the round trip") {
  account_note a{"acc1", 42, 2, 8 | 16, {"p1", "p2"}};
  account_note b{"acc2", 0, 0, 0, {}};
  session_note s{"acc1", "p1", 1732000000123456789, true};
  session_note d{"acc1", "p2", 17, false};
  auto ps = encode_cluster("host-abc123", 1000, {a, b}, {s, d});
  REQUIRE(ps.size() == 1);
  auto m = decode_cluster(ps[0]);
  REQUIRE(m);
  CHECK(m->replica == "host-abc123");
  CHECK(m->published_ns == 1000);
  REQUIRE(m->accounts.size() == 2);
  CHECK(m->accounts[0] == a);
  CHECK(m->accounts[1] == b);
  REQUIRE(m->sessions.size() == 2);
  CHECK(m->sessions[0] == s);
  CHECK(m->sessions[1] == d);
  CHECK(m->malformed == 0);
}

TEST_CASE("cluster notes: many events split into payloads PostgreSQL takes, in order") {
  std::vector<session_note> many;
  for (int i = 0; i < 1000; ++i)
    many.push_back(
        {"account-" + std::to_string(i % 7), "peer-" + std::to_string(i), 1000 + i, true});
  auto ps = encode_cluster("r1", 5, {}, many);
  REQUIRE(ps.size() > 1);
  std::vector<session_note> back;
  for (const auto& p : ps) {
    CHECK(p.size() <= max_payload);
    auto m = decode_cluster(p);
    REQUIRE(m);
    back.insert(back.end(), m->sessions.begin(), m->sessions.end());
  }
  CHECK(back == many);
}

TEST_CASE("cluster notes: a peer list too long for one payload becomes 'read everything'") {
  account_note big{"acc", 9, 400, 0, {}};
  for (int i = 0; i < 400; ++i)
    big.peers.push_back("peer-with-a-long-identifier-" + std::to_string(i));
  auto ps = encode_cluster("r1", 5, {big}, {});
  REQUIRE(ps.size() == 1);
  CHECK(ps[0].size() <= max_payload);
  auto m = decode_cluster(ps[0]);
  REQUIRE(m);
  REQUIRE(m->accounts.size() == 1);
  CHECK(m->accounts[0].peers.empty());
  CHECK(m->accounts[0].parts == 255);
  CHECK(m->accounts[0].serial == 9);
}

TEST_CASE("cluster notes: ids that would break the format are never sent") {
  auto ps = encode_cluster("r1", 5, {{"bad id", 1, 1, 0, {}}, {"ok", 1, 1, 0, {"a,b"}}},
                           {{"acc", "p\n1", 3, true}});
  REQUIRE(ps.size() == 1);
  auto m = decode_cluster(ps[0]);
  REQUIRE(m);
  REQUIRE(m->accounts.size() == 1); // "ok", its bad peer list replaced by "read everything"
  CHECK(m->accounts[0].account_id == "ok");
  CHECK(m->accounts[0].parts == 255);
  CHECK(m->sessions.empty());
  CHECK(encode_cluster("bad replica", 5, {{"a", 1, 1, 0, {}}}, {}).empty());
}

TEST_CASE("cluster notes: other payloads are refused, bad lines skipped and counted") {
  CHECK_FALSE(decode_cluster(""));
  CHECK_FALSE(decode_cluster("hello"));
  CHECK_FALSE(decode_cluster("nbm2 r1 5\n"));
  CHECK_FALSE(decode_cluster("nbm1 r1 x\n"));
  CHECK_FALSE(decode_cluster(std::string(9000, 'a')));
  auto m =
      decode_cluster("nbm1 r1 5\na acc 1 1 999 -\ns acc p -4 1\ns acc p 7 2\nzz\na acc x 1 0 -\n"
                     "a acc 3 1 0 p1,,p2\ns acc p 7 1\n");
  REQUIRE(m);
  CHECK(m->malformed == 6);
  REQUIRE(m->sessions.size() == 1);
  CHECK(m->sessions[0].token == 7);
  CHECK(m->accounts.empty());
}
