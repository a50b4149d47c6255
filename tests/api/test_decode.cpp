// The REST body decoders (api/http/decode.hpp): every refusal is a decode_error with NetBird's
// status and message; deep, oversized, malformed and out-of-range bodies are refused before any
// arithmetic, and nothing else ever escapes.
#include "api/http/decode.hpp"
#include "api/http/decode_posture.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <limits>
#include <string>

using namespace nbm::api::http;
using json = nlohmann::json;

namespace {

// The (status, message) a call refuses with; {0, ""} if it did not refuse.
std::pair<int, std::string> refusal(const std::function<void()>& f) {
  try {
    f();
  } catch (const decode::decode_error& e) {
    return {e.status, e.message};
  }
  return {0, ""};
}

const std::string unparsable = "couldn't parse JSON request";

std::string nested_arrays(std::size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

// A policy body with `rules` = what is given (raw JSON text).
std::string policy_with_rules(const std::string& rules) {
  return R"({"name":"p","enabled":true,"rules":)" + rules + "}";
}

std::string key_body(const std::string& expires_in, const std::string& usage = "0",
                     const std::string& type = "reusable") {
  return R"({"name":"k","type":")" + type + R"(","expires_in":)" + expires_in +
         R"(,"usage_limit":)" + usage + "}";
}

std::string settings_body(const std::string& field, const std::string& value) {
  return R"({"settings":{")" + field + R"(":)" + value + "}}";
}

// Settings as an account holds them before an update.
nbm::core::account_settings current_settings() {
  nbm::core::account_settings s;
  s.peer_login_expiration_ns = 86400LL * 1'000'000'000;
  s.peer_inactivity_expiration_ns = 600LL * 1'000'000'000;
  return s;
}

} // namespace

TEST_CASE("decode: nesting deeper than the limit is refused before parsing, at any size") {
  // The body that took the server down: 60,000 nested arrays in a policy's rules (120 KB).
  const auto deep = policy_with_rules(nested_arrays(60'000));
  CHECK(deep.size() > 120'000);
  CHECK(refusal([&] { decode::policy(deep, "acc", ""); }) == std::pair{400, unparsable});
  CHECK(refusal([&] { decode::check_body(deep); }) == std::pair{400, unparsable});
  // Unbalanced and object nesting too, in every decoder.
  const auto open_only = R"({"name":)" + std::string(100'000, '[');
  const auto objects = std::string(50'000, '{') + std::string(50'000, '}');
  for (const auto& body : {open_only, objects}) {
    CHECK(refusal([&] { decode::group(body, "acc", ""); }).first == 400);
    CHECK(refusal([&] { decode::route(body, "acc", ""); }).first == 400);
    CHECK(refusal([&] { decode::nameserver_group(body, "acc", ""); }).first == 400);
    CHECK(refusal([&] { decode::setup_key_create(body); }).first == 400);
    CHECK(refusal([&] { decode::account_settings(body, current_settings()); }).first == 400);
    CHECK(refusal([&] { decode::peer_update(body); }).first == 400);
    CHECK(refusal([&] { decode::user_create(body); }).first == 400);
    CHECK(refusal([&] { decode::token_create(body); }).first == 400);
    CHECK(refusal([&] { decode::dns_settings(body); }).first == 400);
  }
  // At the limit: the object itself is one level, so max_depth - 1 arrays inside fit...
  const auto at_limit = R"({"x":)" + nested_arrays(decode::max_depth - 1) + "}";
  CHECK(refusal([&] { decode::check_body(at_limit); }) == std::pair{0, std::string()});
  // ... and one more does not.
  const auto over = R"({"x":)" + nested_arrays(decode::max_depth) + "}";
  CHECK(refusal([&] { decode::check_body(over); }) == std::pair{400, unparsable});
  // Brackets inside strings (escaped quotes included) are text, not nesting.
  const auto in_string = R"({"name":"\")" + std::string(1000, '[') + R"(","peers":[]})";
  CHECK(decode::group(in_string, "acc", "").name == "\"" + std::string(1000, '['));
}

TEST_CASE("decode: oversized, malformed and non-object bodies are 400 with NetBird's message") {
  std::string big = R"({"name":")" + std::string(decode::max_body_bytes, 'a') + R"("})";
  CHECK(big.size() > decode::max_body_bytes);
  CHECK(refusal([&] { decode::group(big, "acc", ""); }) == std::pair{400, unparsable});
  for (const std::string body :
       {"", "{", "{not json", "null", "[]", "\"text\"", "42", "{\"name\":\"a\"} trailing",
        "{\"name\":\"\xff\xfe\"}", "{\"name\":1e999}", "{\"a\":01}", "{'name':'x'}"}) {
    INFO(body);
    CHECK(refusal([&] { decode::group(body, "acc", ""); }) == std::pair{400, unparsable});
  }
}

TEST_CASE("decode: fields of the wrong JSON type are 400") {
  const std::vector<std::pair<std::string, std::function<void(const std::string&)>>> cases = {
      {R"({"name":5})", [](auto& b) { decode::group(b, "a", ""); }},
      {R"({"name":"g","peers":"p1"})", [](auto& b) { decode::group(b, "a", ""); }},
      {R"({"name":"g","peers":[1]})", [](auto& b) { decode::group(b, "a", ""); }},
      {R"({"name":"g","peers":[null]})", [](auto& b) { decode::group(b, "a", ""); }},
      {policy_with_rules("{}"), [](auto& b) { decode::policy(b, "a", ""); }},
      {policy_with_rules("[1]"), [](auto& b) { decode::policy(b, "a", ""); }},
      {policy_with_rules(R"([{"enabled":"yes"}])"), [](auto& b) { decode::policy(b, "a", ""); }},
      {policy_with_rules(R"([{"port_ranges":{}}])"), [](auto& b) { decode::policy(b, "a", ""); }},
      {policy_with_rules(R"([{"port_ranges":[5]}])"), [](auto& b) { decode::policy(b, "a", ""); }},
      {policy_with_rules(R"([{"sourceResource":"x"}])"),
       [](auto& b) { decode::policy(b, "a", ""); }},
      {R"({"metric":"1"})", [](auto& b) { decode::route(b, "a", ""); }},
      {R"({"metric":true})", [](auto& b) { decode::route(b, "a", ""); }},
      {R"({"nameservers":{}})", [](auto& b) { decode::nameserver_group(b, "a", ""); }},
      {R"({"nameservers":["1.1.1.1"]})", [](auto& b) { decode::nameserver_group(b, "a", ""); }},
      {R"({"disabled_management_groups":"g"})", [](auto& b) { decode::dns_settings(b); }},
      {R"({"name":"k","type":"reusable","expires_in":"60"})",
       [](auto& b) { decode::setup_key_create(b); }},
      {R"({"revoked":1,"auto_groups":[]})", [](auto& b) { decode::setup_key_update(b); }},
      {R"({"name":7})", [](auto& b) { decode::peer_update(b); }},
      {R"({"ssh_enabled":"true"})", [](auto& b) { decode::peer_update(b); }},
      {R"({"role":"admin","is_service_user":"true"})", [](auto& b) { decode::user_create(b); }},
      {R"({"auto_groups":{}})", [](auto& b) { decode::user_update(b); }},
      {R"({"name":"t","expires_in":[30]})", [](auto& b) { decode::token_create(b); }},
      {settings_body("peer_login_expiration", "\"3600\""),
       [](auto& b) { decode::account_settings(b, current_settings()); }},
  };
  for (const auto& [body, f] : cases) {
    INFO(body);
    CHECK(refusal([&] { f(body); }) == std::pair{400, unparsable});
  }
}

TEST_CASE("decode: integer fields take integer literals within int64 only (Go's decoder)") {
  // Floats, exponents and 1e308 would be a float-to-int conversion: refused as Go refuses them.
  for (const std::string v : {"1.5", "3600.0", "1e3", "1e308", "-1e308", "9223372036854775808",
                              "18446744073709551615", "1e999"}) {
    INFO(v);
    CHECK(refusal([&] { decode::setup_key_create(key_body(v)); }).first == 400);
    CHECK(refusal([&] { decode::setup_key_create(key_body("60", v)); }).first == 400);
    CHECK(refusal([&] {
            decode::account_settings(settings_body("peer_login_expiration", v), current_settings());
          }).first == 400);
    CHECK(refusal([&] {
            decode::account_settings(settings_body("peer_inactivity_expiration", v),
                                     current_settings());
          }).first == 400);
    CHECK(refusal([&] { decode::token_create(R"({"name":"t","expires_in":)" + v + "}"); }).first ==
          400);
    CHECK(refusal([&] { decode::route(R"({"metric":)" + v + "}", "a", ""); }).first == 400);
    CHECK(refusal([&] {
            decode::policy(
                policy_with_rules(R"([{"port_ranges":[{"start":)" + v + R"(,"end":80}]}])"), "a",
                "");
          }).first == 400);
    CHECK(refusal([&] {
            decode::nameserver_group(R"({"nameservers":[{"ip":"1.1.1.1","port":)" + v + "}]}", "a",
                                     "");
          }).first == 400);
  }
  // The largest int64 is an integer: it is range-checked, not misread.
  CHECK(decode::route(R"({"metric":9223372036854775807})", "a", "").metric ==
        std::numeric_limits<std::int64_t>::max());
  CHECK(decode::route(R"({"metric":-9223372036854775808})", "a", "").metric ==
        std::numeric_limits<std::int64_t>::min());
}

TEST_CASE("decode: setup keys: expires_in and usage_limit range-checked (422)") {
  const auto max = std::to_string(std::numeric_limits<std::int64_t>::max());
  CHECK(refusal([&] { decode::setup_key_create(key_body(max)); }) ==
        std::pair{422, std::string("expiresIn can not be more than 100 years")});
  CHECK(refusal([&] {
          decode::setup_key_create(key_body(std::to_string(decode::max_duration_seconds + 1)));
        }).first == 422);
  CHECK(refusal([&] { decode::setup_key_create(key_body("-1")); }) ==
        std::pair{422, std::string("expiresIn can not be in the past")});
  CHECK(refusal([&] { decode::setup_key_create(key_body("-" + max)); }).first == 422);
  CHECK(refusal([&] { decode::setup_key_create(key_body("60", "-1")); }) ==
        std::pair{422, std::string("usage limit can't be negative")});
  CHECK(refusal([&] { decode::setup_key_create(key_body("60", "2", "one-off")); }).first == 422);
  CHECK(refusal([&] { decode::setup_key_create(key_body("60", "0", "weird")); }) ==
        std::pair{422, std::string("unknown setup key type weird")});
  CHECK(refusal([&] { decode::setup_key_create(R"({"type":"reusable"})"); }) ==
        std::pair{422, std::string("setup key name shouldn't be empty")});
  // Accepted at the edges.
  auto k = decode::setup_key_create(key_body(std::to_string(decode::max_duration_seconds), max));
  CHECK(k.expires_in_seconds == decode::max_duration_seconds);
  CHECK(k.usage_limit == std::numeric_limits<std::int64_t>::max());
  CHECK(k.reusable);
  k = decode::setup_key_create(key_body("0", "1", "one-off"));
  CHECK(k.expires_in_seconds == 0);
  CHECK_FALSE(k.reusable);
  // Updates need auto_groups.
  CHECK(refusal([&] { decode::setup_key_update(R"({"revoked":true})"); }) ==
        std::pair{400, std::string("auto_groups field can't be absent")});
  const auto u = decode::setup_key_update(R"({"revoked":true,"auto_groups":["g"]})");
  CHECK(u.revoked);
  CHECK(u.auto_groups == std::vector<std::string>{"g"});
}

TEST_CASE("decode: account settings: expirations checked in seconds before they become ns") {
  const auto cur = current_settings();
  const auto max = std::to_string(std::numeric_limits<std::int64_t>::max());
  const auto set = [&](const std::string& f, const std::string& v) {
    return decode::account_settings(settings_body(f, v), cur);
  };
  CHECK(refusal([&] { set("peer_login_expiration", max); }) ==
        std::pair{422, std::string("peer login expiration can't be larger than 180 days")});
  CHECK(refusal([&] { set("peer_login_expiration", "15552001"); }).first == 422);
  CHECK(refusal([&] { set("peer_login_expiration", "3599"); }) ==
        std::pair{422, std::string("peer login expiration can't be smaller than one hour")});
  CHECK(refusal([&] { set("peer_login_expiration", "-" + max); }).first == 422);
  CHECK(refusal([&] { set("peer_inactivity_expiration", max); }) ==
        std::pair{422, std::string("peer inactivity expiration can't be larger than 100 years")});
  CHECK(refusal([&] { set("peer_inactivity_expiration", "-1"); }) ==
        std::pair{422, std::string("peer inactivity expiration can't be negative")});
  CHECK(set("peer_login_expiration", "15552000").peer_login_expiration_ns ==
        15'552'000LL * 1'000'000'000);
  CHECK(set("peer_inactivity_expiration", std::to_string(decode::max_duration_seconds))
            .peer_inactivity_expiration_ns == decode::max_duration_seconds * 1'000'000'000);
  // Absent fields keep the account's values; settings itself is required.
  const auto same = decode::account_settings(R"({"settings":{}})", cur);
  CHECK(same == cur);
  CHECK(refusal([&] { decode::account_settings("{}", cur); }) ==
        std::pair{422, std::string("settings shouldn't be empty")});
  CHECK(refusal([&] { decode::account_settings(R"({"settings":[]})", cur); }).first == 422);
}

TEST_CASE("decode: tokens, ports, metrics and nameserver ports") {
  CHECK(refusal([&] { decode::token_create(R"({"name":"t","expires_in":0})"); }) ==
        std::pair{422, std::string("expiration has to be between 1 and 365")});
  CHECK(refusal([&] { decode::token_create(R"({"name":"t","expires_in":366})"); }).first == 422);
  CHECK(refusal([&] {
          decode::token_create(R"({"name":"t","expires_in":9223372036854775807})");
        }).first == 422);
  CHECK(refusal([&] { decode::token_create(R"({"expires_in":30})"); }) ==
        std::pair{422, std::string("name for personal access token should not be empty")});
  CHECK(decode::token_create(R"({"name":"t","expires_in":365})").expires_in_days == 365);

  for (const std::string range : {R"({"start":0,"end":80})", R"({"start":1,"end":65536})",
                                  R"({"start":-1,"end":80})", R"({"start":4294967297,"end":80})"}) {
    INFO(range);
    CHECK(refusal([&] {
            decode::policy(policy_with_rules(R"([{"port_ranges":[)" + range + "]}]"), "a", "");
          }) == std::pair{422, std::string("valid port value is in 1..65535 range")});
  }
  const auto p = decode::policy(
      policy_with_rules(R"([{"id":"r1","port_ranges":[{"start":1,"end":65535}]}])"), "a", "");
  REQUIRE(p.rules.size() == 1);
  CHECK(p.rules[0].port_ranges[0].end == 65535);
  CHECK(p.rules[0].id.empty()); // a new policy's rule ids come from the store
  CHECK(decode::policy(policy_with_rules(R"([{"id":"r1"}])"), "a", "pid").rules[0].id == "r1");

  for (const std::string port : {"0", "65536", "-53", "4294967349"}) {
    INFO(port);
    CHECK(refusal([&] {
            decode::nameserver_group(R"({"nameservers":[{"ip":"1.1.1.1","port":)" + port + "}]}",
                                     "a", "");
          }) == std::pair{422, std::string("invalid NS servers format")});
  }
  CHECK(refusal([&] {
          decode::nameserver_group(R"({"nameservers":[{"ip":"1.1.1.1","ns_type":"tcp"}]})", "a",
                                   "");
        }).first == 422);
  const auto g =
      decode::nameserver_group(R"({"name":"n","nameservers":[{"ip":"1.1.1.1"}]})", "a", "");
  REQUIRE(g.nameservers.size() == 1);
  CHECK(g.nameservers[0].port == 53);
  CHECK(refusal([&] { decode::route(R"({"network":"10.0.0.300/24"})", "a", ""); }) ==
        std::pair{422, std::string("invalid Prefix")});
  CHECK(decode::route(R"({"network":"10.1.2.3/16","metric":9999})", "a", "r").network ==
        "10.1.0.0/16");
}

TEST_CASE("decode: users and peers") {
  CHECK(refusal([&] { decode::user_create(R"({"role":"owner"})"); }) ==
        std::pair{422, std::string("can't create user with owner role")});
  CHECK(refusal([&] { decode::user_create(R"({"role":"king"})"); }) ==
        std::pair{422, std::string("invalid user role king")});
  CHECK(refusal([&] { decode::user_update(R"({"role":"king"})"); }).first == 422);
  const auto u = decode::user_create(
      R"({"role":"admin","is_service_user":true,"name":"bot","auto_groups":["g"]})");
  CHECK(u.is_service_user);
  CHECK(u.name == "bot");
  const auto c = decode::user_update(R"({"is_blocked":true})");
  CHECK_FALSE(c.role);
  CHECK_FALSE(c.auto_groups);
  CHECK(c.blocked == true);
  const auto pc =
      decode::peer_update(R"({"name":"n","approval_required":false,"ssh_enabled":null})");
  CHECK(pc.name == "n");
  CHECK(pc.approval_required == false);
  CHECK_FALSE(pc.ssh_enabled);
  CHECK(decode::dns_settings(R"({"disabled_management_groups":[]})").empty());
  CHECK(refusal([&] { decode::dns_settings("{}"); }).first == 422);
}

TEST_CASE("decode: error messages echo at most a short prefix of what the client sent") {
  const std::string huge(10'000, 'x');
  const auto [status, message] =
      refusal([&] { decode::setup_key_create(key_body("60", "0", huge)); });
  CHECK(status == 422);
  CHECK(message.size() < 120);
  CHECK(message.find(huge.substr(0, 64) + "...") != std::string::npos);
  CHECK(decode::clip("short") == "short");
  CHECK(decode::clip(std::string(65, 'a')) == std::string(64, 'a') + "...");
  CHECK(decode::clip(std::string(64, 'a')) == std::string(64, 'a'));
}

TEST_CASE("decode: arbitrary bytes give a value or a decode_error, nothing else") {
  // A small deterministic fuzz: mutations of valid bodies, every decoder.
  const std::vector<std::string> seeds = {
      policy_with_rules(R"([{"id":"r","name":"n","action":"accept","protocol":"tcp",)"
                        R"("ports":["80"],"port_ranges":[{"start":1,"end":2}],)"
                        R"("sources":["g"],"destinations":["g"],"sourceResource":{"id":"p"}}])"),
      key_body("86400", "5"),
      settings_body("peer_login_expiration", "86400"),
      R"({"name":"n","nameservers":[{"ip":"1.1.1.1","port":53,"ns_type":"udp"}],"groups":["g"]})",
      R"({"role":"admin","is_service_user":true,"name":"x","auto_groups":["a"],"is_blocked":true})",
      R"({"name":"t","expires_in":30,"revoked":false,"auto_groups":[],"metric":5,)"
      R"("disabled_management_groups":["g"],"network":"10.0.0.0/8"})",
  };
  std::string alphabet = "{}[]\",:\\0123456789.-eE+ntrufalsx";
  alphabet.push_back('\0');
  alphabet.push_back('\xff');
  std::uint64_t state = 0x9E3779B97F4A7C15ULL;
  const auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  std::size_t values = 0, refusals = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string body = seeds[next() % seeds.size()];
    const int edits = 1 + static_cast<int>(next() % 4);
    for (int e = 0; e < edits && !body.empty(); ++e) {
      const auto at = next() % body.size();
      switch (next() % 3) {
      case 0:
        body[at] = alphabet[next() % alphabet.size()];
        break;
      case 1:
        body.erase(at, 1);
        break;
      default:
        body.insert(at, 1, alphabet[next() % alphabet.size()]);
      }
    }
    const std::vector<std::function<void()>> calls = {
        [&] { decode::group(body, "a", "g"); },
        [&] { decode::policy(body, "a", "p"); },
        [&] { decode::route(body, "a", ""); },
        [&] { decode::nameserver_group(body, "a", ""); },
        [&] { decode::dns_settings(body); },
        [&] { decode::setup_key_create(body); },
        [&] { decode::setup_key_update(body); },
        [&] { decode::account_settings(body, current_settings()); },
        [&] { decode::peer_update(body); },
        [&] { decode::user_create(body); },
        [&] { decode::user_update(body); },
        [&] { decode::token_create(body); },
    };
    for (const auto& call : calls) {
      try {
        call();
        ++values;
      } catch (const decode::decode_error& e) {
        CHECK((e.status == 400 || e.status == 422));
        ++refusals;
      }
      // Anything else escapes and fails the test case.
    }
  }
  CHECK(values > 0);
  CHECK(refusals > 0);
}

TEST_CASE("decode: posture checks: every kind, wrong types 400, ranges as Go's netip reads them") {
  const auto spec = decode::posture_check(
      R"({"name":"all","description":"d","checks":{"nb_version_check":{"min_version":"0.28.0"},)"
      R"("os_version_check":{"linux":{"min_kernel_version":"6.0"},"ios":null},)"
      R"("geo_location_check":{"locations":[{"country_code":"DE"}],"action":"deny"},)"
      R"("peer_network_range_check":{"ranges":["10.1.2.3/8","2001:DB8:0::/32"],"action":"allow"},)"
      R"("process_check":{"processes":[{"linux_path":"/usr/bin/av"}]},"unknown":{}}})");
  CHECK(spec.name == "all");
  CHECK(spec.description == "d");
  CHECK(spec.checks.nb_min_version == std::optional<std::string>("0.28.0"));
  REQUIRE(spec.checks.os.has_value());
  CHECK(spec.checks.os->linux_kernel == std::optional<std::string>("6.0"));
  CHECK_FALSE(spec.checks.os->ios.has_value());
  REQUIRE(spec.checks.geo.has_value());
  CHECK(spec.checks.geo->locations.size() == 1);
  REQUIRE(spec.checks.network_range.has_value());
  CHECK(spec.checks.network_range->ranges.empty()); // read by posture_ranges
  CHECK(spec.raw_ranges == std::vector<std::string>{"10.1.2.3/8", "2001:DB8:0::/32"});
  auto ranged = spec;
  decode::posture_ranges(ranged);
  CHECK(ranged.checks.network_range->ranges ==
        std::vector<std::string>{"10.1.2.3/8", "2001:db8::/32"});
  REQUIRE(spec.checks.processes.has_value());
  CHECK((*spec.checks.processes)[0].linux_path == "/usr/bin/av");

  CHECK(decode::posture_check(R"({"name":"n"})").checks == nbm::core::posture_definition{});
  const std::pair<int, std::string> bad_json{400, unparsable},
      bad_prefix{422, "invalid network prefix"};
  for (const char* body :
       {R"({"name":1})", R"({"checks":[]})", R"({"checks":{"nb_version_check":"1"}})",
        R"({"checks":{"os_version_check":{"linux":{"min_kernel_version":6}}}})",
        R"({"checks":{"geo_location_check":{"locations":["DE"]}}})",
        R"({"checks":{"peer_network_range_check":{"ranges":"10.0.0.0/8"}}})",
        R"({"checks":{"peer_network_range_check":{"ranges":[10]}}})",
        R"({"checks":{"process_check":{"processes":[{"linux_path":false}]}}})", "[]", "{"})
    CHECK_MESSAGE(refusal([&] { (void)decode::posture_check(body); }) == bad_json, body);
  for (const char* range : {"2001:db8::/129", "fe80::1%eth0/64", "10.0.0.1", "2001:db8::/032"}) {
    auto s = decode::posture_check(
        std::string(R"({"checks":{"peer_network_range_check":{"ranges":["::/0",")") + range +
        R"("],"action":"deny"}}})");
    CHECK_MESSAGE(refusal([&] { decode::posture_ranges(s); }) == bad_prefix, range);
  }
}
