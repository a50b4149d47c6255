// Posture checks as NetBird evaluates them (management/server/posture/*.go Check), and what a
// failing source peer loses in its map.
#include "core/network_map.hpp"
#include "core/posture.hpp"

#include <doctest/doctest.h>

using namespace nbm::core;

namespace {

peer linux_peer(const std::string& version = "0.32.0") {
  peer p;
  p.id = "p";
  p.meta.go_os = "linux";
  p.meta.wt_version = version;
  p.meta.kernel_version = "6.1.0-18-amd64";
  return p;
}

bool passes(const std::string& checks, const peer& p) {
  posture_check c;
  c.id = "c";
  c.checks_json = checks;
  return passes_posture(c, p);
}

} // namespace

TEST_CASE("NB version: the agent at least the minimum (sanitized), development builds fail") {
  const std::string check = R"({"NBVersionCheck":{"MinVersion":"0.31.0"}})";
  CHECK(passes(check, linux_peer("0.32.0")));
  CHECK(passes(check, linux_peer("0.31.0")));
  CHECK(passes(check, linux_peer("0.31.0-rc1"))); // "-rc1" dropped before comparing
  CHECK_FALSE(passes(check, linux_peer("0.30.9")));
  CHECK_FALSE(passes(check, linux_peer("development"))); // no version: NetBird's error, fails
  // Keys are matched without regard to case, as Go's decoder does.
  CHECK_FALSE(passes(R"({"nbversioncheck":{"minversion":"1.0"}})", linux_peer("0.32.0")));
}

TEST_CASE("OS version: per OS; an OS the check does not list fails; linux by kernel") {
  const std::string check =
      R"({"OSVersionCheck":{"Android":{"MinVersion":"11"},"Linux":{"MinKernelVersion":"5.10"}}})";
  CHECK(passes(check, linux_peer())); // kernel 6.1.0 (its "-18-amd64" dropped) >= 5.10
  auto old = linux_peer();
  old.meta.kernel_version = "5.4.0-150-generic";
  CHECK_FALSE(passes(check, old));
  auto phone = linux_peer();
  phone.meta.go_os = "android";
  phone.meta.os_version = "12";
  CHECK(passes(check, phone));
  phone.meta.os_version = "10";
  CHECK_FALSE(passes(check, phone));
  auto mac = linux_peer();
  mac.meta.go_os = "darwin";
  mac.meta.os_version = "14.2";
  CHECK_FALSE(passes(check, mac)); // Darwin not listed: not allowed
  mac.meta.go_os = "freebsd";
  CHECK(passes(check, mac)); // an OS the check has no field for passes
}

TEST_CASE("geo location: allow or deny listed places; an unlocated peer fails") {
  const std::string allow =
      R"({"GeoLocationCheck":{"Locations":[{"CountryCode":"DE","CityName":"Berlin"},)"
      R"({"CountryCode":"FR"}],"Action":"allow"}})";
  auto p = linux_peer();
  CHECK_FALSE(passes(allow, p)); // no location yet
  p.location.country_code = "DE";
  p.location.city_name = "Berlin";
  CHECK(passes(allow, p));
  p.location.city_name = "Munich";
  CHECK_FALSE(passes(allow, p));
  p.location = {"", "FR", "Paris", 0};
  CHECK(passes(allow, p)); // a country without a city: every city of it
  const std::string deny =
      R"({"GeoLocationCheck":{"Locations":[{"CountryCode":"FR"}],"Action":"deny"}})";
  CHECK_FALSE(passes(deny, p));
  p.location.country_code = "IT";
  CHECK(passes(deny, p));
  CHECK_FALSE(passes(R"({"GeoLocationCheck":{"Locations":[],"Action":"maybe"}})", p));
}

TEST_CASE("peer network range: the peer's interfaces and connection address") {
  const std::string deny =
      R"({"PeerNetworkRangeCheck":{"Action":"deny","Ranges":["172.16.1.0/24"]}})";
  auto p = linux_peer();
  CHECK_FALSE(passes(deny, p)); // no addresses at all: NetBird's error, fails
  p.meta.network_addresses_json = R"([{"NetIP":"192.168.1.2/24","Mac":"aa:bb"}])";
  CHECK(passes(deny, p));
  p.meta.network_addresses_json =
      R"([{"NetIP":"192.168.1.2/24","Mac":"aa"},{"NetIP":"172.16.1.7/24","Mac":"bb"}])";
  CHECK_FALSE(passes(deny, p));
  const std::string allow =
      R"({"PeerNetworkRangeCheck":{"Action":"allow","Ranges":["203.0.113.0/24"]}})";
  CHECK_FALSE(passes(allow, p));
  p.location.connection_ip = "203.0.113.9";
  CHECK(passes(allow, p));
  // A wider interface network is not inside a narrower range.
  p.location.connection_ip.clear();
  p.meta.network_addresses_json = R"([{"NetIP":"203.0.113.9/16"}])";
  CHECK_FALSE(passes(allow, p));
}

// NetBird's TestPeerNetworkRangeCheck_Check (management/server/posture/network_test.go), row by
// row, then the IPv6 and mixed rows: a range matches a peer prefix it fully contains (the same
// family, no more specific, the peer's network inside), the connection address taken as a /32 or
// /128 (an IPv4-mapped one as IPv4), the interfaces as they are (an IPv4-mapped one stays IPv6).
TEST_CASE("peer network range: NetBird's table, IPv6 and mixed families") {
  struct row {
    const char* name;
    const char* action;
    std::vector<std::string> ranges;
    std::vector<std::string> nics; // the meta's NetIP values
    std::string conn;              // the connection address, "" for none
    bool pass;
  };
  const std::vector<row> rows = {
      // NetBird's rows.
      {"allowed range holds an interface",
       "allow",
       {"192.168.0.0/24", "10.0.0.0/8"},
       {"192.168.0.123/24", "fe80::6089:eaff:fe0c:232f/64"},
       "",
       true},
      {"no interface in the allowed ranges",
       "allow",
       {"192.168.0.0/24", "10.0.0.0/8"},
       {"198.19.249.3/24"},
       "",
       false},
      {"no addresses at all (allow): an error, fails", "allow", {"192.168.0.0/16"}, {}, "", false},
      {"denied range holds an interface",
       "deny",
       {"192.168.0.0/24", "10.0.0.0/8"},
       {"192.168.0.123/24", "fe80::6089:eaff:fe0c:232f/64"},
       "",
       false},
      {"no interface in the denied ranges",
       "deny",
       {"192.168.0.0/24", "10.0.0.0/8"},
       {"198.19.249.3/24"},
       "",
       true},
      {"no addresses at all (deny): an error, fails", "deny", {"192.168.0.0/16"}, {}, "", false},
      {"connection address is the denied /32",
       "deny",
       {"109.41.115.194/32"},
       {"192.168.0.123/24"},
       "109.41.115.194",
       false},
      {"connection address not the denied /32",
       "deny",
       {"109.41.115.194/32"},
       {"192.168.0.123/24"},
       "8.8.8.8",
       true},
      {"connection address alone, allowed /32",
       "allow",
       {"109.41.115.194/32"},
       {},
       "109.41.115.194",
       true},
      {"IPv6 connection address is the denied /128",
       "deny",
       {"2001:db8::1/128"},
       {},
       "2001:db8::1",
       false},
      {"IPv6 connection address not the denied /128",
       "deny",
       {"2001:db8::1/128"},
       {},
       "2001:db8::2",
       true},
      {"IPv4-mapped connection address matches an IPv4 /32",
       "deny",
       {"109.41.115.194/32"},
       {},
       "::ffff:109.41.115.194",
       false},
      {"connection address inside an allowed /24",
       "allow",
       {"1.0.0.0/24", "2.2.2.2/32"},
       {},
       "1.0.0.55",
       true},
      {"connection address inside an allowed /23", "allow", {"3.0.0.0/23"}, {}, "3.0.1.200", true},
      {"connection address outside the allowed /24", "allow", {"1.0.0.0/24"}, {}, "1.0.1.5", false},
      {"connection address inside a denied /24", "deny", {"1.0.0.0/24"}, {}, "1.0.0.7", false},
      {"an interface /24 is not inside a /32 rule",
       "allow",
       {"192.168.0.5/32"},
       {"192.168.0.5/24"},
       "",
       false},
      {"an interface inside an allowed /16",
       "allow",
       {"192.168.0.0/16"},
       {"192.168.5.7/24"},
       "",
       true},
      // IPv6 interfaces and ranges.
      {"IPv6 interface inside an allowed /32",
       "allow",
       {"2001:db8::/32"},
       {"2001:db8:1:2::17/64"},
       "",
       true},
      {"IPv6 interface outside the allowed /32",
       "allow",
       {"2001:db8::/32"},
       {"2001:db9::17/64"},
       "",
       false},
      {"IPv6 interface inside a denied /48",
       "deny",
       {"fd00:1:2::/48"},
       {"fd00:1:2:3::5/64"},
       "",
       false},
      {"IPv6 interface outside the denied /48",
       "deny",
       {"fd00:1:2::/48"},
       {"fd00:1:3::5/64"},
       "",
       true},
      {"an IPv6 /64 interface is not inside a /128 rule",
       "allow",
       {"2001:db8::5/128"},
       {"2001:db8::5/64"},
       "",
       false},
      {"host bits of a range are masked away",
       "allow",
       {"2001:db8::ffff/32"},
       {"2001:db8:aaaa::1/64"},
       "",
       true},
      {"a non-octet boundary: /33",
       "allow",
       {"2001:db8:8000::/33"},
       {"2001:db8:8000:1::1/64"},
       "",
       true},
      {"a non-octet boundary: /33, the other half",
       "allow",
       {"2001:db8:8000::/33"},
       {"2001:db8:7fff::1/64"},
       "",
       false},
      {"::/0 holds every IPv6 interface", "allow", {"::/0"}, {"fe80::1/64"}, "", true},
      {"::/0 holds no IPv4 address", "allow", {"::/0"}, {"10.1.2.3/8"}, "192.0.2.1", false},
      {"0.0.0.0/0 holds no IPv6 address",
       "deny",
       {"0.0.0.0/0"},
       {"fe80::1/64"},
       "2001:db8::1",
       true},
      // Mixed families.
      {"mixed ranges: the IPv6 one matches",
       "allow",
       {"10.0.0.0/8", "2001:db8::/32"},
       {"192.168.1.2/24", "2001:db8::2/64"},
       "",
       true},
      {"mixed ranges: the IPv4 one matches the connection",
       "deny",
       {"2001:db8::/32", "203.0.113.0/24"},
       {"fe80::1/64"},
       "203.0.113.9",
       false},
      {"mixed ranges: nothing matches",
       "deny",
       {"10.0.0.0/8", "2001:db8::/32"},
       {"192.168.1.2/24", "fe80::1/64"},
       "2001:db9::1",
       true},
      {"an IPv4-mapped interface stays IPv6: no IPv4 range holds it",
       "allow",
       {"192.168.0.0/16"},
       {"::ffff:192.168.0.1/120"},
       "",
       false},
      {"an IPv4-mapped interface inside an IPv4-mapped range",
       "allow",
       {"::ffff:192.168.0.0/112"},
       {"::ffff:192.168.0.1/120"},
       "",
       true},
      {"an IPv4 connection is not inside an IPv4-mapped range",
       "allow",
       {"::ffff:0.0.0.0/96"},
       {},
       "192.0.2.1",
       false},
      // What Go's ParsePrefix refuses: NetBird drops such an interface when the meta arrives.
      {"unparsable interfaces only: no addresses, fails",
       "deny",
       {"10.0.0.0/8"},
       {"fe80::1%eth0/64", "10.0.0.01/8", "10.0.0.1", "garbage"},
       "",
       false},
      {"an unparsable interface beside a good one",
       "allow",
       {"10.0.0.0/8"},
       {"10.0.0.1/33", "10.2.3.4/16"},
       "",
       true},
      {"an unparsable connection address is no address",
       "deny",
       {"10.0.0.0/8"},
       {},
       "10.0.0",
       false},
      // An action other than allow or deny: NetBird's error, fails either way.
      {"unknown action, a match", "permit", {"10.0.0.0/8"}, {"10.2.3.4/16"}, "", false},
      {"unknown action, no match", "permit", {"10.0.0.0/8"}, {"192.168.2.3/16"}, "", false},
  };
  for (const auto& r : rows) {
    CAPTURE(r.name);
    // The texts need no escaping: the JSON is written as NetBird's columns hold it.
    const auto list = [](const std::vector<std::string>& items, const char* key) {
      std::string out = "[";
      for (const auto& x : items)
        out += (out.size() > 1 ? "," : "") + (key ? std::string("{\"") + key + "\":" : "") + "\"" +
               x + "\"" + (key ? ",\"Mac\":\"aa:bb\"}" : "");
      return out + "]";
    };
    const std::string check = std::string(R"({"PeerNetworkRangeCheck":{"Action":")") + r.action +
                              R"(","Ranges":)" + list(r.ranges, nullptr) + "}}";
    auto p = linux_peer();
    p.meta.network_addresses_json = list(r.nics, "NetIP");
    p.location.connection_ip = r.conn;
    CHECK(passes(check, p) == r.pass);
  }
}

TEST_CASE("process: every listed process running, by the peer's OS path") {
  const std::string check =
      R"({"ProcessCheck":{"Processes":[{"LinuxPath":"/usr/bin/av","WindowsPath":"C:\\av.exe"}]}})";
  auto p = linux_peer();
  CHECK_FALSE(passes(check, p));
  p.meta.files_json = R"([{"Path":"/usr/bin/av","Exist":true,"ProcessIsRunning":true}])";
  CHECK(passes(check, p));
  p.meta.files_json = R"([{"Path":"/usr/bin/av","Exist":true,"ProcessIsRunning":false}])";
  CHECK_FALSE(passes(check, p));
  p.meta.go_os = "darwin"; // no MacPath listed: fails
  p.meta.files_json = R"([{"Path":"/usr/bin/av","ProcessIsRunning":true}])";
  CHECK_FALSE(passes(check, p));
  p.meta.go_os = "ios"; // unsupported OS: fails
  CHECK_FALSE(passes(check, p));
}

TEST_CASE("several kinds in one check all have to pass; broken JSON fails") {
  const std::string both = R"({"NBVersionCheck":{"MinVersion":"0.31.0"},)"
                           R"("PeerNetworkRangeCheck":{"Action":"deny","Ranges":["10.0.0.0/8"]}})";
  auto p = linux_peer("0.32.0");
  p.meta.network_addresses_json = R"([{"NetIP":"192.168.1.2/24"}])";
  CHECK(passes(both, p));
  p.meta.wt_version = "0.20.0";
  CHECK_FALSE(passes(both, p));
  CHECK_FALSE(passes("{not json", p));
  CHECK(passes("{}", p)); // no checks: nothing to fail
}

// The account-wide evaluation reads each check once and decides once per distinct set of the
// fields a check reads; it must agree with the peer-by-peer evaluation for every peer, including
// peers that share some of those fields and differ in another.
TEST_CASE("every peer at once agrees with peer by peer, peers sharing some fields") {
  std::vector<peer> peers;
  for (const char* os : {"linux", "windows", "darwin", "android"})
    for (const char* version : {"0.40.0", "0.20.0", "development"})
      for (const char* files : {R"([{"Path":"/usr/bin/av","ProcessIsRunning":true}])",
                                R"([{"Path":"/usr/bin/av","ProcessIsRunning":false}])",
                                R"([{"Path":"C:\\av.exe","ProcessIsRunning":true}])"})
        for (const char* country : {"DE", "FR", ""}) {
          peer p = linux_peer(version);
          p.id = "p" + std::to_string(peers.size());
          p.meta.go_os = os;
          p.meta.os_version = peers.size() % 2 ? "14.2" : "12";
          p.meta.kernel_version = peers.size() % 3 ? "6.1.0-18-amd64" : "10.0.19045";
          p.meta.files_json = files;
          p.location.country_code = country;
          p.location.city_name = peers.size() % 5 ? "Berlin" : "";
          p.meta.network_addresses_json =
              peers.size() % 4 ? R"([{"NetIP":"10.1.2.3/16"}])" : R"([{"NetIP":"2001:db8::5/64"}])";
          peers.push_back(std::move(p));
        }
  int passing = 0, failing = 0;
  for (
      const std::string checks :
      {R"({"NBVersionCheck":{"MinVersion":"0.30.0"}})",
       (R"({"OSVersionCheck":{"Android":{"MinVersion":"13"},"Darwin":{"MinVersion":"14.0"},)"
        R"("Linux":{"MinKernelVersion":"5.10"},"Windows":{"MinKernelVersion":"10.0.20000"}}})"),
       (R"({"GeoLocationCheck":{"Locations":[{"CountryCode":"DE","CityName":"Berlin"}],)"
        R"("Action":"allow"}})"),
       R"({"ProcessCheck":{"Processes":[{"LinuxPath":"/usr/bin/av","WindowsPath":"C:\\av.exe"}]}})",
       R"({"PeerNetworkRangeCheck":{"Action":"deny","Ranges":["2001:db8::/32"]}})",
       (R"({"NBVersionCheck":{"MinVersion":"0.30.0"},"ProcessCheck":{"Processes":)"
        R"([{"LinuxPath":"/usr/bin/av"}]},"GeoLocationCheck":{"Locations":[{"CountryCode":"FR"}],)"
        R"("Action":"deny"}})"),
       "{}", "not json"}) {
    CAPTURE(checks);
    posture_check c;
    c.id = "c";
    c.checks_json = checks;
    const auto all = passes_posture(c, peers);
    REQUIRE(all.size() == peers.size());
    for (std::size_t i = 0; i < peers.size(); ++i) {
      CAPTURE(peers[i].id);
      CHECK(all[i] == (passes_posture(c, peers[i]) ? 1 : 0));
      (all[i] ? passing : failing)++;
    }
  }
  CHECK(passing > 100); // both verdicts well represented
  CHECK(failing > 100);
}

TEST_CASE("maps: a source peer failing a policy's posture check loses that policy's access") {
  account a;
  a.id = "acc";
  for (auto [id, version] :
       {std::pair{"new", "0.40.0"}, {"old", "0.20.0"}, {"dst", "0.40.0"}, {"rt", "0.40.0"}}) {
    peer p = linux_peer(version);
    p.id = id;
    p.key = std::string("key-") + id;
    p.ip = "100.64.0." + std::to_string(a.peers.size() + 1);
    a.peers.push_back(p);
  }
  a.groups.push_back({"src", "acc", "src", "api", {"new", "old"}, {}});
  a.groups.push_back({"dst", "acc", "dst", "api", {"dst"}, {{"res", "host"}}});
  a.posture_checks.push_back(
      {"pc", "acc", "min version", "", R"({"NBVersionCheck":{"MinVersion":"0.30.0"}})"});
  policy pol;
  pol.id = "pol";
  pol.enabled = true;
  pol.source_posture_checks = {"pc"};
  policy_rule r;
  r.id = "rule";
  r.enabled = true;
  r.action = "accept";
  r.protocol = "all";
  r.sources = {"src"};
  r.destinations = {"dst"};
  pol.rules.push_back(r);
  a.policies.push_back(pol);
  a.network_resources.push_back({"res", "n", "acc", "res", "", "host", "", "10.0.0.1/32", true});
  a.network_routers.push_back({"r", "n", "acc", "rt", {}, false, 10, true});
  const auto view = [&] { return account_view(std::make_shared<const account>(a), {}); };
  const auto names = [](const account_view& v, const std::vector<std::uint32_t>& idx) {
    std::vector<std::string> out;
    for (auto i : idx)
      out.push_back(v.acc().peers[i].id);
    return out;
  };
  auto v = view();
  // "new" passes: it reaches dst and the resource; "old" (0.20.0) fails: neither.
  CHECK(names(v, v.map_for(0).remote_peers) == std::vector<std::string>{"dst", "rt"});
  CHECK(v.map_for(0).routes.size() == 1);
  CHECK(v.map_for(1).remote_peers.empty());
  CHECK(v.map_for(1).routes.empty());
  // dst sees only the compliant source; the router admits only it.
  CHECK(names(v, v.map_for(2).remote_peers) == std::vector<std::string>{"new"});
  const auto rt = v.map_for(3);
  REQUIRE(rt.route_firewall_rules.size() == 1);
  CHECK(rt.route_firewall_rules[0].source_ranges == std::vector<std::string>{"100.64.0.1/32"});
  // The old agent upgrades (its meta changes): it gets its access back.
  a.peers[1].meta.wt_version = "0.31.0";
  auto v2 = view();
  CHECK(names(v2, v2.map_for(1).remote_peers) == std::vector<std::string>{"dst", "rt"});
  // A check id the account does not hold is skipped, as NetBird skips it.
  a.peers[1].meta.wt_version = "0.20.0";
  a.policies[0].source_posture_checks = {"gone"};
  auto v3 = view();
  CHECK(names(v3, v3.map_for(1).remote_peers) == std::vector<std::string>{"dst", "rt"});
}

TEST_CASE("definition: NetBird's stored JSON reads and writes back byte for byte") {
  // extended-store.sql's two checks, as NetBird's Go encoder wrote them.
  for (
      const std::string stored :
      {R"({"NBVersionCheck":{"MinVersion":"0.31.0"}})",
       R"({"GeoLocationCheck":{"Locations":[{"CountryCode":"DE","CityName":"Berlin"}],"Action":"allow"},"PeerNetworkRangeCheck":{"Action":"deny","Ranges":["172.16.1.0/24"]}})",
       R"({"OSVersionCheck":{"Android":null,"Darwin":{"MinVersion":"14.2"},"Ios":null,"Linux":{"MinKernelVersion":"5.10"},"Windows":null},"ProcessCheck":{"Processes":[{"LinuxPath":"/usr/bin/agent","MacPath":"","WindowsPath":"C:\\agent.exe"}]}})"}) {
    auto d = parse_posture_definition(stored);
    REQUIRE(d.has_value());
    CHECK(posture_definition_json(*d) == stored);
  }
  auto d = parse_posture_definition(
      R"({"OSVersionCheck":{"Linux":{"MinKernelVersion":"5.10"}},"ProcessCheck":{"Processes":[{"WindowsPath":"C:\\agent.exe"}]}})");
  REQUIRE(d.has_value());
  CHECK_FALSE(d->nb_min_version.has_value());
  REQUIRE(d->os.has_value());
  CHECK(d->os->linux_kernel == std::optional<std::string>("5.10"));
  CHECK_FALSE(d->os->android.has_value());
  REQUIRE(d->processes.has_value());
  CHECK((*d->processes)[0].windows_path == "C:\\agent.exe");
  CHECK_FALSE(parse_posture_definition("[1]").has_value());
  CHECK_FALSE(parse_posture_definition("{nope").has_value());
  CHECK(parse_posture_definition(R"({"NBVersionCheck":null})") == posture_definition{});
}

TEST_CASE("definition: Go's \\u escapes read as the text they stand for") {
  // Go's encoder writes <, > and & as \u003c, \u003e, \u0026; a client's JSON may escape anything.
  const std::string stored =
      R"({"ProcessCheck":{"Processes":[{"LinuxPath":"/opt/a\u0026b \u003cx\u003e",)"
      R"("MacPath":"/Applications/\u00e9t\u00E9 \ud83d\ude00","WindowsPath":"C:\\x\ud800y"}]}})";
  auto d = parse_posture_definition(stored);
  REQUIRE(d.has_value());
  REQUIRE(d->processes.has_value());
  const auto& p = (*d->processes)[0];
  CHECK(p.linux_path == "/opt/a&b <x>");
  CHECK(p.mac_path == "/Applications/\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80"); // été, U+1F600
  CHECK(p.windows_path == "C:\\x\xef\xbf\xbdy"); // a lone surrogate: U+FFFD, as Go
  // What the reader takes, the writer writes back so that it reads the same.
  CHECK(parse_posture_definition(posture_definition_json(*d)) == d);
  posture_check c;
  c.checks_json = stored;
  CHECK(process_files(c) == std::vector<std::string>{p.linux_path, p.mac_path, p.windows_path});
  auto peer = linux_peer();
  peer.meta.files_json = R"([{"Path":"/opt/a\u0026b \u003cx\u003e","ProcessIsRunning":true}])";
  CHECK(passes_posture(c, peer));
  // A control character survives the column: written as \u00XX, read back as itself.
  posture_definition ctl;
  ctl.processes = std::vector<posture_definition::process>{{"/tmp/a\x01\x1f", "", ""}};
  CHECK(posture_definition_json(ctl).find("\\u0001") != std::string::npos);
  CHECK(parse_posture_definition(posture_definition_json(ctl)) == ctl);
  for (const char* bad : {R"({"NBVersionCheck":{"MinVersion":"\u00"}})",
                          R"({"NBVersionCheck":{"MinVersion":"\uzzzz"}})",
                          R"({"NBVersionCheck":{"MinVersion":"\ud800\u12"}})"})
    CHECK_MESSAGE(!parse_posture_definition(bad).has_value(), bad);
}

TEST_CASE("definition: NetBird's Validate, its order and messages") {
  const auto check = [](const posture_definition& d, const std::string& message,
                        const std::string& name = "n") {
    auto v = validate_posture_definition(name, d);
    REQUIRE(v.has_value());
    CHECK(v->status == 422);
    CHECK(v->message == message);
  };
  posture_definition ok;
  ok.nb_min_version = "0.31.0";
  CHECK_FALSE(validate_posture_definition("n", ok));
  check(ok, "posture checks name shouldn't be empty", "");
  check({}, "posture checks shouldn't be empty");
  auto nb = ok;
  nb.nb_min_version = "";
  check(nb, "NBVersionCheck minimum version shouldn't be empty");
  nb.nb_min_version = "not.a version";
  check(nb, "NBVersionCheck version: not.a version is not valid");
  nb.nb_min_version = "v1.2.3-beta.1+build5"; // go-version takes these
  CHECK_FALSE(validate_posture_definition("n", nb));
  nb.nb_min_version = std::string(200, '1') + "x";
  auto long_one = validate_posture_definition("n", nb);
  REQUIRE(long_one.has_value());
  CHECK(long_one->message.size() < 120); // the client's text is clipped

  posture_definition os;
  os.os = posture_definition::os_versions{};
  check(os, "OSVersionCheck at least one OS version check is required");
  os.os->darwin = "x y";
  os.os->ios = "bad ios";
  check(os, "OSVersionCheck ios version: bad ios is not valid"); // ios before darwin
  os.os->ios = "17.3.1";
  check(os, "OSVersionCheck  darwin version: x y is not valid");
  os.os->darwin = "14";
  os.os->linux_kernel = "5..1";
  check(os, "OSVersionCheck  linux kernel version: 5..1 is not valid");

  posture_definition geo;
  geo.geo = posture_definition::geo_check{};
  check(geo, "GeoLocationCheck action shouldn't be empty");
  geo.geo->action = "maybe";
  check(geo, "GeoLocationCheck action is not valid");
  geo.geo->action = "allow";
  check(geo, "GeoLocationCheck locations shouldn't be empty");
  geo.geo->locations = {{"", "Berlin"}};
  check(geo, "GeoLocationCheck country code shouldn't be empty");
  geo.geo->locations = {{"DEU", ""}};
  check(geo, "GeoLocationCheck country code must be 2 letters (ISO 3166-1 alpha-2 format)");
  geo.geo->locations = {{"de", ""}};
  CHECK_FALSE(validate_posture_definition("n", geo));

  posture_definition net;
  net.network_range = posture_definition::range_check{};
  check(net, "action for peer network range check shouldn't be empty");
  net.network_range->action = "block";
  check(net, "PeerNetworkRangeCheck action is not valid");
  net.network_range->action = "deny";
  check(net, "PeerNetworkRangeCheck network ranges shouldn't be empty");

  posture_definition proc;
  proc.processes = std::vector<posture_definition::process>{};
  check(proc, "ProcessCheck processes shouldn't be empty");
  proc.processes->push_back({"", "", ""});
  check(proc, "ProcessCheck path shouldn't be empty");
  (*proc.processes)[0].mac_path = "/Applications/x";
  CHECK_FALSE(validate_posture_definition("n", proc));
}

TEST_CASE("prefixes as Go's netip parses and prints them") {
  CHECK(go_prefix("10.0.0.1/8") == std::optional<std::string>("10.0.0.1/8")); // host bits kept
  CHECK(go_prefix("0.0.0.0/0") == std::optional<std::string>("0.0.0.0/0"));
  CHECK(go_prefix("2001:DB8:0:0:1::/64") == std::optional<std::string>("2001:db8:0:0:1::/64"));
  CHECK(go_prefix("2001:db8:0:0:0:1:0:0/64") == std::optional<std::string>("2001:db8::1:0:0/64"));
  CHECK(go_prefix("2001:db8:0:0:1:0:0:1/128") ==
        std::optional<std::string>("2001:db8::1:0:0:1/128")); // the first longest run
  CHECK(go_prefix("::/0") == std::optional<std::string>("::/0"));
  CHECK(go_prefix("::ffff:1.2.3.4/128") == std::optional<std::string>("::ffff:1.2.3.4/128"));
  CHECK(go_prefix("::1.2.3.4/128") == std::optional<std::string>("::102:304/128"));
  CHECK(go_prefix("::ffff:1.2.3.4/96") == std::optional<std::string>("::ffff:1.2.3.4/96"));
  CHECK(go_prefix("fd00:0:0:0:0:0:0:0/8") == std::optional<std::string>("fd00::/8"));
  CHECK(go_prefix("1:0:0:2:0:0:0:3/128") == std::optional<std::string>("1:0:0:2::3/128"));
  CHECK(go_prefix("0:0:0:0:0:0:0:1/128") == std::optional<std::string>("::1/128"));
  CHECK(go_prefix("1:2:3:4:5:6:7:0/128") == std::optional<std::string>("1:2:3:4:5:6:7:0/128"));
  CHECK(go_prefix("2001:db8::/128") == std::optional<std::string>("2001:db8::/128"));
  for (const char* bad : {"10.0.0.1",
                          "10.0.0.01/8",
                          "10.0.0.1/33",
                          "10.0.0.1/08",
                          "10.0.0/8",
                          "fe80::1%eth0/64",
                          "::1/129",
                          "10.0.0.1/+8",
                          "host/24",
                          "/8",
                          "",
                          "2001:db8::/",
                          "2001:db8::/-1",
                          "2001:db8::/064",
                          "2001:db8:::/64",
                          "2001:db8::1::2/64",
                          "2001:db8:10000::/48",
                          "1:2:3:4:5:6:7:8:9/128",
                          "::ffff:1.2.3.04/128",
                          "::ffff:1.2.3/128",
                          "2001:db8::/32/32",
                          " 2001:db8::/32",
                          "2001:db8::/32 ",
                          "[2001:db8::]/32",
                          "2001:db8::/1000"})
    CHECK_MESSAGE(!go_prefix(bad).has_value(), bad);
}

TEST_CASE("checks a client reports: the process paths of the checks its source policies name") {
  account a;
  a.id = "acc";
  for (const char* id : {"src", "dst", "other"}) {
    peer p = linux_peer();
    p.id = id;
    p.key = std::string("key-") + id;
    p.ip = "100.64.0." + std::to_string(a.peers.size() + 1);
    a.peers.push_back(p);
  }
  a.groups.push_back({"gs", "acc", "src", "api", {"src"}, {}});
  a.groups.push_back({"gd", "acc", "dst", "api", {"dst"}, {}});
  a.posture_checks.push_back(
      {"p1", "acc", "agent", "",
       R"({"ProcessCheck":{"Processes":[{"LinuxPath":"/usr/bin/agent","MacPath":"/Applications/Agent","WindowsPath":""}]}})"});
  a.posture_checks.push_back(
      {"p2", "acc", "version", "", R"({"NBVersionCheck":{"MinVersion":"0.1.0"}})"});
  policy pol;
  pol.id = "pol";
  pol.enabled = true;
  pol.source_posture_checks = {"p2", "p1"};
  policy_rule r;
  r.id = "rule";
  r.enabled = true;
  r.action = "accept";
  r.protocol = "all";
  r.sources = {"gs"};
  r.destinations = {"gd"};
  pol.rules.push_back(r);
  a.policies.push_back(pol);
  const std::vector<std::vector<std::string>> agent{{"/usr/bin/agent", "/Applications/Agent"}};
  // The source peer is asked for the process check's paths (the version check has none); the
  // destination and the bystander are asked for nothing.
  CHECK(client_checks(a, "src") == agent);
  CHECK(client_checks(a, "dst").empty());
  CHECK(client_checks(a, "other").empty());
  auto view = [&] { return account_view(std::make_shared<const account>(a), {}); };
  {
    auto v = view();
    CHECK(v.map_for(0).checks == agent);
    CHECK(v.map_for(1).checks.empty());
    // A change of what the peer must report changes its map's fingerprint (a new map is sent).
    auto before = v.fingerprint(v.map_for(0));
    a.posture_checks[0].checks_json =
        R"({"ProcessCheck":{"Processes":[{"LinuxPath":"/usr/bin/other"}]}})";
    auto v2 = view();
    CHECK(v2.map_for(0).checks == std::vector<std::vector<std::string>>{{"/usr/bin/other"}});
    CHECK(v2.fingerprint(v2.map_for(0)) != before);
  }
  // A disabled rule or policy asks for nothing.
  a.policies[0].rules[0].enabled = false;
  CHECK(client_checks(a, "src").empty());
  CHECK(view().map_for(0).checks.empty());
  a.policies[0].rules[0].enabled = true;
  a.policies[0].enabled = false;
  CHECK(client_checks(a, "src").empty());
  CHECK(view().map_for(0).checks.empty());

  // Several groups and policies: each check once, in the account's order of checks, whichever
  // policy or group asks for it; the map agrees with client_checks for every peer.
  a.policies[0].enabled = true;
  a.posture_checks.push_back(
      {"p3", "acc", "edr", "", R"({"ProcessCheck":{"Processes":[{"LinuxPath":"/opt/edr"}]}})"});
  a.groups.push_back({"go", "acc", "other", "api", {"other", "src"}, {}});
  policy second = pol;
  second.id = "pol2";
  second.source_posture_checks = {"p3", "p1"};
  second.rules[0].sources = {"go"};
  a.policies.push_back(second);
  const std::vector<std::vector<std::string>> both{{"/usr/bin/other"},
                                                   {"/opt/edr"}}; // p1 changed above
  CHECK(client_checks(a, "src") == both);
  CHECK(client_checks(a, "other") == both);
  CHECK(client_checks(a, "dst").empty());
  auto v = view();
  for (std::uint32_t i = 0; i < a.peers.size(); ++i)
    CHECK(v.map_for(i).checks == client_checks(a, a.peers[i].id));
}

TEST_CASE("changes: a posture check saved or deleted as NetBird decides it") {
  account a;
  a.id = "acc";
  a.users.push_back({});
  a.users[0].id = "admin";
  a.users[0].role = "admin";
  a.users.push_back({});
  a.users[1].id = "user";
  a.users[1].role = "user";
  a.posture_checks.push_back(
      {"pc", "acc", "version", "", R"({"NBVersionCheck":{"MinVersion":"0.31.0"}})"});
  const auto decide = [&](const std::string& caller, change_kind what) {
    admin_change c{caller, std::move(what)};
    return prepare_change(a, c);
  };
  posture_check fresh{"", "", "version", "", R"({"NBVersionCheck":{"MinVersion":"0.40.0"}})"};
  auto dup = decide("admin", change::save_posture_check{fresh});
  REQUIRE(dup.has_value());
  CHECK(dup->status == 422);
  CHECK(dup->message == "posture checks with name version already exists");
  fresh.name = "newer";
  CHECK_FALSE(decide("admin", change::save_posture_check{fresh}));
  auto denied = decide("user", change::save_posture_check{fresh});
  REQUIRE(denied.has_value());
  CHECK(denied->status == 403);
  fresh.id = "ghost";
  auto gone = decide("admin", change::save_posture_check{fresh});
  REQUIRE(gone.has_value());
  CHECK(gone->status == 404);
  CHECK(gone->message == "posture checks: ghost not found");
  fresh.id = "pc"; // an update keeps or changes its name freely
  fresh.checks_json = "{}";
  auto empty = decide("admin", change::save_posture_check{fresh});
  REQUIRE(empty.has_value());
  CHECK(empty->message == "posture checks shouldn't be empty");

  // A policy naming the check: the check stays (412); a policy naming an unknown check is refused.
  policy pol;
  pol.id = "pol";
  pol.name = "guarded";
  pol.enabled = true;
  pol.source_posture_checks = {"pc"};
  pol.rules.push_back({});
  pol.rules[0].name = "r";
  pol.rules[0].action = "accept";
  pol.rules[0].protocol = "all";
  a.groups.push_back({"g", "acc", "g", "api", {}, {}});
  pol.rules[0].sources = {"g"};
  pol.rules[0].destinations = {"g"};
  CHECK_FALSE(validate_policy(a, pol));
  auto unknown = pol;
  unknown.source_posture_checks = {"pc", "nope"};
  auto refused = validate_policy(a, unknown);
  REQUIRE(refused.has_value());
  CHECK(refused->status == 422);
  CHECK(refused->message == "posture checks: nope not found");
  a.policies.push_back(pol);
  auto linked = decide("admin", change::delete_posture_check{"pc"});
  REQUIRE(linked.has_value());
  CHECK(linked->status == 412);
  CHECK(linked->message == "posture checks have been linked to policy: guarded");
  auto missing = decide("admin", change::delete_posture_check{"nope"});
  REQUIRE(missing.has_value());
  CHECK(missing->status == 404);
  a.policies.clear();
  CHECK_FALSE(decide("admin", change::delete_posture_check{"pc"}));
}
