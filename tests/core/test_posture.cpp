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
