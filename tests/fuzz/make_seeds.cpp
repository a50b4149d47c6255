// Writes the seed inputs of fuzz_envelope into a directory (the committed corpus
// tests/fuzz/corpus/envelope/ was made with it): real Login / Sync / SyncMeta requests as a NetBird
// client fills them, plain and sealed into envelopes with the fixed keys fuzz_envelope uses.
//   make_seeds <dir>
#include "crypto/crypto.hpp"
#include "management.pb.h"

#include <sodium.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace {

using namespace nbm;

std::string public_of(const std::string& priv) {
  std::string pub(32, '\0');
  crypto_scalarmult_base(reinterpret_cast<unsigned char*>(pub.data()),
                         reinterpret_cast<const unsigned char*>(priv.data()));
  return pub;
}

void fill_meta(management::PeerSystemMeta& m) {
  m.set_hostname("laptop-7");
  m.set_goos("linux");
  m.set_kernel("Linux");
  m.set_core("12");
  m.set_platform("x86_64");
  m.set_os("Debian GNU/Linux");
  m.set_netbirdversion("0.36.5");
  m.set_uiversion("netbird-desktop-ui/0.36.5");
  m.set_kernelversion("6.1.0-27-amd64");
  m.set_osversion("12");
  auto* a = m.add_networkaddresses();
  a->set_netip("192.168.1.23/24");
  a->set_mac("52:54:00:12:34:56");
  a = m.add_networkaddresses();
  a->set_netip("fe80::5054:ff:fe12:3456/64");
  a->set_mac("52:54:00:12:34:56");
  m.set_sysserialnumber("PF2XK9QZ");
  m.set_sysproductname("ThinkPad T14");
  m.set_sysmanufacturer("LENOVO");
  m.mutable_environment()->set_cloud("");
  m.mutable_environment()->set_platform("");
  auto* f = m.add_files();
  f->set_path("/usr/bin/falcon-sensor");
  f->set_exist(true);
  f->set_processisrunning(true);
  m.mutable_flags()->set_rosenpassenabled(true);
  m.mutable_flags()->set_serversshallowed(true);
  m.mutable_flags()->set_lazyconnectionenabled(true);
  m.add_capabilities(static_cast<management::PeerCapability>(1));
  m.set_syncmessageversion(1);
}

void write(const std::string& dir, const std::string& name, const std::string& bytes) {
  std::ofstream(dir + "/" + name, std::ios::binary) << bytes;
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds <dir>\n");
    return 2;
  }
  const std::string dir = argv[1];
  crypto::init();
  const std::string server_private(32, '\x5e'), peer_private(32, '\x9a');
  const auto server_public = public_of(server_private), peer_public = public_of(peer_private);
  const auto peer_b64 = crypto::base64_encode(peer_public);
  auto envelope = [&](const google::protobuf::MessageLite& msg) {
    management::EncryptedMessage env;
    env.set_wgpubkey(peer_b64);
    env.set_body(crypto::box_seal(msg.SerializeAsString(), server_public, peer_private));
    return env;
  };

  management::LoginRequest setup_key_login;
  setup_key_login.set_setupkey("A2C8E62B-38F5-4553-B31E-DD66C696CEBB");
  fill_meta(*setup_key_login.mutable_meta());
  setup_key_login.mutable_peerkeys()->set_sshpubkey(
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl");
  setup_key_login.mutable_peerkeys()->set_wgpubkey(peer_b64);
  setup_key_login.add_dnslabels("printer");
  setup_key_login.add_dnslabels("nas.home");
  write(dir, "login_setup_key.pb", setup_key_login.SerializeAsString());
  write(dir, "login_setup_key.env", envelope(setup_key_login).SerializeAsString());
  write(dir, "login_setup_key.box", envelope(setup_key_login).body());

  management::LoginRequest sso_login;
  sso_login.set_jwttoken("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2ln");
  fill_meta(*sso_login.mutable_meta());
  write(dir, "login_jwt.env", envelope(sso_login).SerializeAsString());

  management::LoginRequest bare;
  bare.set_setupkey("A2C8E62B-38F5-4553-B31E-DD66C696CEBB");
  write(dir, "login_no_meta.env", envelope(bare).SerializeAsString());

  management::SyncRequest sync;
  fill_meta(*sync.mutable_meta());
  write(dir, "sync.pb", sync.SerializeAsString());
  write(dir, "sync.env", envelope(sync).SerializeAsString());

  management::SyncMetaRequest sync_meta;
  fill_meta(*sync_meta.mutable_meta());
  sync_meta.mutable_meta()->set_hostname("laptop-7-renamed");
  write(dir, "sync_meta.env", envelope(sync_meta).SerializeAsString());

  management::EncryptedMessage bad_key;
  bad_key.set_wgpubkey("not-a-key");
  bad_key.set_body(envelope(bare).body());
  write(dir, "bad_key.env", bad_key.SerializeAsString());
  return 0;
}
