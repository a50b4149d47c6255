// libFuzzer target: posture checks, from the REST body to a peer's verdict. The fuzzed bytes are
//   1. a /api/posture-checks body (api/http/decode_posture): decoded, its ranges read as Go's
//      netip does, validated as NetBird does; every refusal a decode_error 400/422 with a short
//      message, nothing else escaping. What decodes is stored as NetBird's column
//      (posture_definition_json), which must be JSON and read back as the same definition, each
//      range printed as it re-parses; then evaluated against a set of fixed peers (IPv4, IPv6,
//      mapped, unlocated, several OSes), the account-wide evaluation agreeing with the per-peer
//      one;
//   2. a stored `checks` column (core/posture's own JSON reader): read, evaluated, its process
//      paths listed;
//   3. a peer's meta: the bytes as its network addresses and files JSON and its connection address,
//      evaluated against checks of every kind.
// A crash, a sanitizer report or a failed check is a finding.
// Seeds: tests/fuzz/corpus/posture/ (bodies as NetBird's dashboard sends them, stored columns).
#include "api/http/decode_posture.hpp"
#include "core/posture.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace decode = nbm::api::http::decode;
using namespace nbm::core;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_posture: check failed: %s\n", what);
    std::abort();
  }
}

constexpr std::size_t max_message = 512;

void refusal(const decode::decode_error& e, bool range_step) {
  check(range_step ? e.status == 422 : (e.status == 400 || e.status == 422),
        "a refusal with an unexpected status");
  check(!e.message.empty() && e.message.size() <= max_message, "a refusal's message size");
}

std::vector<peer> fixed_peers() {
  std::vector<peer> out;
  const auto add = [&](const char* os, const char* version, const char* kernel, const char* nics,
                       const char* conn, const char* country) {
    peer p;
    p.id = "p" + std::to_string(out.size());
    p.meta.go_os = os;
    p.meta.wt_version = version;
    p.meta.os_version = version;
    p.meta.kernel_version = kernel;
    p.meta.network_addresses_json = nics;
    p.meta.files_json = R"([{"Path":"/usr/bin/av","Exist":true,"ProcessIsRunning":true},)"
                        R"({"Path":"C:\\av.exe","Exist":true,"ProcessIsRunning":true}])";
    p.location.connection_ip = conn;
    p.location.country_code = country;
    out.push_back(std::move(p));
  };
  add("linux", "0.36.5", "6.1.0-27-amd64", R"([{"NetIP":"192.168.1.23/24","Mac":"aa"}])",
      "203.0.113.7", "DE");
  add("linux", "0.20.0", "5.4.0", R"([{"NetIP":"fe80::5054:ff:fe12:3456/64","Mac":"aa"}])",
      "2001:db8::7", "FR");
  add("windows", "0.36.5", "10.0.19045", R"([{"NetIP":"::ffff:10.1.2.3/120"}])",
      "::ffff:198.51.100.9", "");
  add("darwin", "development", "23.1.0", "[]", "", "");
  add("android", "v14.2-beta+x", "", R"([{"NetIP":"10.0.0.1/8"},{"NetIP":"bad"}])", "10.0.0.2",
      "US");
  add("ios", "", "", "not json", "garbage", "GB");
  return out;
}

// The account-wide evaluation (one parse for every peer) against the per-peer one.
void evaluate(const std::string& checks_json, const std::vector<peer>& peers) {
  posture_check c;
  c.id = "c";
  c.checks_json = checks_json;
  const auto all = passes_posture(c, peers);
  check(all.size() == peers.size(), "one verdict per peer");
  for (std::size_t i = 0; i < peers.size(); ++i)
    check(all[i] == (passes_posture(c, peers[i]) ? 1 : 0), "account-wide and per-peer disagree");
  (void)process_files(c);
}

void body(std::string_view text, const std::vector<peer>& peers) {
  decode::posture_check_spec spec;
  try {
    spec = decode::posture_check(text);
  } catch (const decode::decode_error& e) {
    refusal(e, false);
    return;
  }
  try {
    decode::posture_ranges(spec);
  } catch (const decode::decode_error& e) {
    refusal(e, true);
    check(e.message == "invalid network prefix", "a range refusal's message");
    return;
  }
  if (const auto& net = spec.checks.network_range) {
    check(net->ranges.size() == spec.raw_ranges.size(), "a range lost");
    for (const auto& r : net->ranges)
      check(go_prefix(r) == r, "a printed range does not re-parse as itself");
  }
  if (auto bad = validate_posture_definition(spec.name, spec.checks)) {
    check(bad->status == 422, "validation with a status other than 422");
    check(!bad->message.empty() && bad->message.size() <= max_message, "validation message size");
  }
  const auto stored = posture_definition_json(spec.checks);
  check(!nlohmann::json::parse(stored, nullptr, false).is_discarded(), "the column is not JSON");
  const auto back = parse_posture_definition(stored);
  check(back.has_value(), "the column does not read back");
  check(*back == spec.checks, "the column reads back as another definition");
  evaluate(stored, peers);
}

void meta(std::string_view text) {
  static const char* const checks[] = {
      R"({"PeerNetworkRangeCheck":{"Action":"allow","Ranges":["10.0.0.0/8","2001:db8::/32"]}})",
      R"({"PeerNetworkRangeCheck":{"Action":"deny","Ranges":["0.0.0.0/0","::/0"]}})",
      R"({"ProcessCheck":{"Processes":[{"LinuxPath":"/usr/bin/av","WindowsPath":"C:\\av.exe"}]}})",
      (R"({"NBVersionCheck":{"MinVersion":"0.30.0"},"OSVersionCheck":{"Linux":)"
       R"({"MinKernelVersion":"5.10"},"Windows":{"MinKernelVersion":"10.0"}}})"),
  };
  std::vector<peer> peers(3);
  for (auto& p : peers) {
    p.meta.network_addresses_json = std::string(text);
    p.meta.files_json = std::string(text);
    p.meta.wt_version = std::string(text.substr(0, 64));
    p.meta.kernel_version = std::string(text.substr(0, 64));
    p.location.connection_ip = std::string(text.substr(0, 64));
  }
  peers[0].meta.go_os = "linux";
  peers[1].meta.go_os = "windows";
  peers[2].meta.go_os = "darwin";
  for (const auto* c : checks)
    evaluate(c, peers);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto peers = fixed_peers();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  body(text, peers);
  if (auto d = parse_posture_definition(text)) {
    // Whatever the reader takes, the writer writes so that it reads back the same.
    const auto again = parse_posture_definition(posture_definition_json(*d));
    check(again && *again == *d, "a stored column does not survive a write and read");
  }
  evaluate(std::string(text), peers);
  meta(text);
  return 0;
}
