// peer_sim: a command-line NetBird peer for tests and by hand.
//   peer_sim --server 127.0.0.1:33073 --key-file a.key login --setup-key KEY [--hostname NAME]
//   peer_sim --server ... --key-file a.key sync [--hostname NAME] [--maps N] [--timeout-ms MS]
//   peer_sim --server ... server-key
// Each received map prints one line: "map serial=S address=A fqdn=F peers=host1,host2 offline=..."
// (peers by FQDN, sorted), flushed at once; the last line is "end code=C message=M".
#include "tools/peer_sim/peer_client.hpp"

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  std::string server = "127.0.0.1:33073", key_file, cmd, setup_key, hostname = "peer-sim";
  int maps = 0, timeout_ms = 10000;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--server")
      server = val();
    else if (a == "--key-file")
      key_file = val();
    else if (a == "--setup-key")
      setup_key = val();
    else if (a == "--hostname")
      hostname = val();
    else if (a == "--maps")
      maps = std::stoi(val());
    else if (a == "--timeout-ms")
      timeout_ms = std::stoi(val());
    else if (cmd.empty())
      cmd = a;
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  nbm::tools::peer_client peer(server, key_file);
  if (cmd == "server-key") {
    auto r = peer.fetch_server_key();
    std::printf("end code=%d message=%s\n", r.code, r.message.c_str());
    return r.ok() ? 0 : 1;
  }
  if (cmd == "login") {
    management::LoginResponse lr;
    auto r = peer.login(setup_key, hostname, &lr);
    if (r.ok())
      std::printf("login address=%s fqdn=%s\n", lr.peerconfig().address().c_str(),
                  lr.peerconfig().fqdn().c_str());
    std::printf("end code=%d message=%s\n", r.code, r.message.c_str());
    return r.ok() ? 0 : 1;
  }
  if (cmd == "sync") {
    int seen = 0;
    auto r = peer.sync(
        hostname,
        [&](const management::SyncResponse& sr) {
          const auto& m = sr.networkmap();
          auto names = [](const auto& list) {
            std::vector<std::string> v;
            for (const auto& p : list)
              v.push_back(p.fqdn());
            std::sort(v.begin(), v.end());
            std::string s;
            for (const auto& n : v)
              s += (s.empty() ? "" : ",") + n;
            return s;
          };
          std::printf("map serial=%llu address=%s fqdn=%s peers=%s offline=%s\n",
                      static_cast<unsigned long long>(m.serial()), m.peerconfig().address().c_str(),
                      m.peerconfig().fqdn().c_str(), names(m.remotepeers()).c_str(),
                      names(m.offlinepeers()).c_str());
          std::fflush(stdout);
          return maps == 0 || ++seen < maps;
        },
        timeout_ms);
    std::printf("end code=%d message=%s\n", r.code, r.message.c_str());
    std::fflush(stdout);
    return (r.ok() || r.code == 1) ? 0 : 1;
  }
  std::fprintf(stderr,
               "usage: peer_sim [--server HOST:PORT] [--key-file F] server-key|login|sync ...\n");
  return 2;
}
