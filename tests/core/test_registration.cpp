// Registration rules: setup-key validity, IP allocation, DNS labels (NetBird's semantics).
#include "core/registration.hpp"

#include <doctest/doctest.h>

#include <set>

using namespace nbm::core;

TEST_CASE("store times parse in NetBird's, SQLite's and PostgreSQL's forms") {
  CHECK(*parse_store_time("2023-01-01 00:00:00+00:00") == doctest::Approx(1672531200.0));
  CHECK(*parse_store_time("2023-01-01 01:00:00+01:00") == doctest::Approx(1672531200.0));
  CHECK(*parse_store_time("2022-12-31 17:00:00-07:00") == doctest::Approx(1672531200.0));
  CHECK(*parse_store_time("2023-01-01 00:00:00") == doctest::Approx(1672531200.0)); // SQLite, UTC
  CHECK(*parse_store_time("2023-01-01 02:00:00.5+02") ==
        doctest::Approx(1672531200.5)); // PostgreSQL
  CHECK(*parse_store_time("2021-08-19 20:46:20.005936822+02:00") ==
        doctest::Approx(1629398780.005936822));
  CHECK_FALSE(parse_store_time("yesterday").has_value());
}

TEST_CASE("setup keys: revoked, expired, over-used, one-off and unlimited, as NetBird's IsValid") {
  setup_key k;
  k.type = "reusable";
  k.expires_at = "2030-01-01 00:00:00+00:00";
  const double now = 1'800'000'000.0; // 2027-01-15
  CHECK(check_setup_key(k, now) == key_verdict::valid);
  k.used_times = 1000; // usage_limit 0 = unlimited
  CHECK(check_setup_key(k, now) == key_verdict::valid);
  k.usage_limit = 1000;
  CHECK(check_setup_key(k, now) == key_verdict::overused);
  k.usage_limit = 1001;
  CHECK(check_setup_key(k, now) == key_verdict::valid);
  k.type = "one-off"; // limit 1 whatever usage_limit says
  k.used_times = 0;
  CHECK(check_setup_key(k, now) == key_verdict::valid);
  k.used_times = 1;
  CHECK(check_setup_key(k, now) == key_verdict::overused);
  k.used_times = 0;
  k.expires_at = "2026-01-01 00:00:00+00:00";
  CHECK(check_setup_key(k, now) == key_verdict::expired);
  k.expires_at = "0001-01-01 00:00:00+00:00"; // Go zero time: never expires
  CHECK(check_setup_key(k, now) == key_verdict::valid);
  k.expires_at.reset();
  CHECK(check_setup_key(k, now) == key_verdict::valid);
  k.revoked = true;
  CHECK(check_setup_key(k, now) == key_verdict::revoked);
}

TEST_CASE(
    "peer IPs: inside the network, never network/broadcast/taken, found whenever one is free") {
  std::set<std::string> taken;
  // A /29 has 6 host addresses: every seed fills it completely, with no duplicate, then reports
  // full.
  for (std::uint64_t seed : {0ull, 3ull, 12345678901ull}) {
    taken.clear();
    for (int i = 0; i < 6; ++i) {
      auto ip =
          allocate_peer_ip("100.64.0.8/29", taken, seed + static_cast<std::uint64_t>(i) * 7919);
      REQUIRE(ip.has_value());
      CHECK(*ip != "100.64.0.8");
      CHECK(*ip != "100.64.0.15");
      CHECK(taken.insert(*ip).second);
    }
    CHECK_FALSE(allocate_peer_ip("100.64.0.8/29", taken, seed).has_value());
  }
  // NetBird's /16 account networks: a seed picks the start, a taken address is skipped.
  auto a = allocate_peer_ip("100.77.0.0/16", {}, 41);
  REQUIRE(a.has_value());
  CHECK(a->rfind("100.77.", 0) == 0);
  auto b = allocate_peer_ip("100.77.0.0/16", {*a}, 41);
  REQUIRE(b.has_value());
  CHECK(*a != *b);
  CHECK_FALSE(allocate_peer_ip("not a prefix", {}, 1).has_value());
  CHECK_FALSE(allocate_peer_ip("fd00::/64", {}, 1).has_value());
}

TEST_CASE("DNS labels: NetBird's parsing and dedup") {
  CHECK(*parsed_domain_label("My-Laptop.local") == "my-laptop");
  CHECK(*parsed_domain_label("host_name with spaces") == "host-name-with-spaces");
  CHECK(*parsed_domain_label("a__b") == "a-b"); // a run of invalid characters is one '-'
  CHECK(*parsed_domain_label("Bücher") == "xn--bcher-kva");
  CHECK(*parsed_domain_label("münchen.example") == "xn--mnchen-3ya");
  CHECK(parsed_domain_label(std::string(80, 'x'))->size() == 59);
  CHECK_FALSE(parsed_domain_label("").has_value());
  CHECK_FALSE(parsed_domain_label("...").has_value());
  CHECK(*punycode_encode("ü") == "tda");
  CHECK_FALSE(punycode_encode("\xC3").has_value()); // truncated UTF-8

  std::set<std::string> taken{"testhost"};
  CHECK(*unique_host_label("other", taken) == "other");
  CHECK(*unique_host_label("testhost", taken) == "testhost-1");
  taken.insert("testhost-1");
  CHECK(*unique_host_label("testhost", taken) == "testhost-2");
  for (int i = 2; i < 1000; ++i)
    taken.insert("testhost-" + std::to_string(i));
  CHECK_FALSE(unique_host_label("testhost", taken).has_value());
}
