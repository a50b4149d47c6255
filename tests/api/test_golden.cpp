// Golden wire encodings: messages built with our generated code, compared byte for byte with
// encodings derived by hand from NetBird's field numbers and types (tag = field << 3 | wire type; 0
// varint, 2 length-delimited). A renumbered or retyped field changes the bytes and fails here.
#include "management.pb.h"

#include <doctest/doctest.h>

#include <string>

namespace {

std::string hex(const std::string& bytes) {
  static const char d[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    if (!out.empty())
      out += ' ';
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

template <class Msg>
std::string wire(const Msg& m) {
  std::string s;
  REQUIRE(m.SerializeToString(&s));
  return hex(s);
}

} // namespace

TEST_CASE("golden: envelope and server key") {
  management::EncryptedMessage e;
  e.set_wgpubkey("k");                    // 1 string: 0a 01 'k'
  e.set_body(std::string("\x01\x02", 2)); // 2 bytes: 12 02 01 02
  e.set_version(3);                       // 3 int32: 18 03
  CHECK(wire(e) == "0a 01 6b 12 02 01 02 18 03");

  management::ServerKeyResponse k;
  k.set_key("k");                        // 1 string
  k.mutable_expiresat()->set_seconds(1); // 2 Timestamp{seconds=1}: 12 02 08 01
  k.set_version(2);                      // 3 int32
  CHECK(wire(k) == "0a 01 6b 12 02 08 01 18 02");
}

TEST_CASE("golden: login request and peer meta") {
  management::LoginRequest l;
  l.set_setupkey("K");                     // 1: 0a 01 4b
  l.mutable_meta()->set_hostname("h");     // 2 PeerSystemMeta{hostname=1}: 12 03 0a 01 68
  l.set_jwttoken("j");                     // 3: 1a 01 6a
  l.mutable_peerkeys()->set_wgpubkey("w"); // 4 PeerKeys{wgPubKey=2}: 22 03 12 01 77
  l.add_dnslabels("a");                    // 5 repeated string: 2a 01 61
  CHECK(wire(l) == "0a 01 4b 12 03 0a 01 68 1a 01 6a 22 03 12 01 77 2a 01 61");

  management::PeerSystemMeta m;
  m.set_netbirdversion("v");                                         // 7: 3a 01 76
  m.add_capabilities(management::PeerCapabilityComponentNetworkMap); // 18 packed enum: 92 01 01 03
  m.set_syncmessageversion(1);                                       // 19 int32: 98 01 01
  CHECK(wire(m) == "3a 01 76 92 01 01 03 98 01 01");
  management::PeerSystemMeta f;
  f.mutable_flags()->set_lazyconnectionenabled(true); // 17 Flags{10 bool}: 8a 01 02 50 01
  f.mutable_environment()->set_platform("p");         // 15 Environment{platform=2}: 7a 03 12 01 70
  CHECK(wire(f) == "7a 03 12 01 70 8a 01 02 50 01");
}

TEST_CASE("golden: sync response, network map and remote peers") {
  management::SyncResponse r;
  r.set_remotepeersisempty(true);        // 4 bool: 20 01
  r.mutable_networkmap()->set_serial(7); // 5 NetworkMap{Serial=1 uint64}: 2a 04 08 07 20 01
  r.mutable_networkmap()->set_remotepeersisempty(true);
  r.set_version(1); // 9 int32: 48 01
  CHECK(wire(r) == "20 01 2a 04 08 07 20 01 48 01");

  management::RemotePeerConfig p;
  p.set_wgpubkey("p");     // 1
  p.add_allowedips("a");   // 2
  p.set_fqdn("f");         // 4
  p.set_agentversion("v"); // 5
  CHECK(wire(p) == "0a 01 70 12 01 61 22 01 66 2a 01 76");

  management::PeerConfig c;
  c.set_address("a");                          // 1
  c.set_dns("d");                              // 2
  c.set_fqdn("f");                             // 4
  c.set_routingpeerdnsresolutionenabled(true); // 5 bool: 28 01
  c.set_mtu(1280);                             // 7 int32 1280: 38 80 0a
  CHECK(wire(c) == "0a 01 61 12 01 64 22 01 66 28 01 38 80 0a");

  management::NetbirdConfig n;
  auto* h = n.add_stuns(); // 1 HostConfig{uri=1, protocol=2 (DTLS = 4)}: 0a 05 0a 01 75 10 04
  h->set_uri("u");
  h->set_protocol(management::HostConfig::DTLS);
  n.mutable_relay()->add_urls("r"); // 4 RelayConfig{urls=1}: 22 03 0a 01 72
  CHECK(wire(n) == "0a 05 0a 01 75 10 04 22 03 0a 01 72");
}

TEST_CASE("golden: firewall rules, ports and auth flows") {
  management::FirewallRule f;
  f.set_direction(management::OUT); // 2 enum OUT=1: 10 01
  f.set_action(management::DROP);   // 3 enum DROP=1: 18 01
  f.set_protocol(management::TCP);  // 4 enum TCP=2: 20 02
  f.set_port("22");                 // 5 string: 2a 02 32 32
  f.mutable_portinfo()->mutable_range()->set_start(
      1); // 6 PortInfo{range=2 {1, 2}}: 32 06 12 04 08 01 10 02
  f.mutable_portinfo()->mutable_range()->set_end(2);
  CHECK(wire(f) == "10 01 18 01 20 02 2a 02 32 32 32 06 12 04 08 01 10 02");

  management::PortInfo single;
  single.set_port(443); // 1 uint32 443: 08 bb 03
  CHECK(wire(single) == "08 bb 03");

  management::DeviceAuthorizationFlow d;
  d.set_provider(management::DeviceAuthorizationFlow::HOSTED); // 1 enum HOSTED=0: not written
  d.mutable_providerconfig()->set_clientid(
      "c"); // 2 ProviderConfig{ClientID=1, Scope=7, UseIDToken=8}
  d.mutable_providerconfig()->set_scope("s");
  d.mutable_providerconfig()->set_useidtoken(true);
  CHECK(wire(d) == "12 08 0a 01 63 3a 01 73 40 01");
}
