// peer_sim: a NetBird peer on the command line, over the real protocol (see usage() below).
#include "crypto/crypto.hpp"
#include "tools/peer_sim/peer_client.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <optional>
#include <signal.h>
#include <string>
#include <thread>
#include <vector>

namespace {

const char* const usage_text = R"(usage: peer_sim [OPTIONS] COMMAND

A NetBird peer over the real gRPC protocol of the management server: its own WireGuard key
pair, every message encrypted for the server's key, the system meta of a Linux NetBird agent.

Commands:
  server-key   print the server's WireGuard public key (base64), as "server_key: KEY"
  login        log in: registers the peer with --setup-key when the server does not know its
               key yet, else logs the known peer in; prints "login address=IP fqdn=NAME"
  sync         open a Sync stream and print each network map the moment it arrives, until
               Ctrl-C (or SIGTERM), --seconds, --maps, or the server ends the stream:
               "map serial=S address=IP fqdn=NAME peers=FQDN,... offline=FQDN,..."
               (the remote and the offline peers by FQDN, sorted)
  help         this text (also -h, --help)

Options (before or after the command):
  --server HOST:PORT  the management server's gRPC port (default 127.0.0.1:33073)
  --key-file FILE     the peer's key pair (two lines: public and private key, base64). An
                      existing file is read and never overwritten (a file that cannot be read
                      or holds no key pair is an error); a missing one is created with a new
                      pair. Without --key-file every run is a new peer.
  --hostname NAME     the hostname the peer announces (default peer-sim)
  --setup-key KEY     login: the setup key that registers a new peer
  --seconds S         sync: end the stream after S seconds (default 0: until Ctrl-C)
  --maps N            sync: end the stream after N maps (default 0: no limit)
  --timeout-ms MS     sync: as --seconds, in milliseconds

Login and sync end with "end code=C message=M" (C: the gRPC status code; 1 "stopped" when
peer_sim ended the stream itself).

Exit status: 0 done (sync: also ended by Ctrl-C, --seconds or --maps); 1 the server refused
or could not be reached, or the key file is unusable; 2 a usage error.

Example:
  peer_sim --server 127.0.0.1:33073 --key-file a.key login --setup-key KEY --hostname alpha
  peer_sim --server 127.0.0.1:33073 --key-file a.key sync --hostname alpha
)";

int usage_error(const std::string& message) {
  std::fprintf(stderr, "peer_sim: %s\n(peer_sim --help describes every command and option)\n",
               message.c_str());
  return 2;
}

// A whole decimal number in [0, max]; nullopt for anything else ("", "-1", "5x", overflow).
std::optional<long long> count_arg(const std::string& text, long long max) {
  long long v = 0;
  const auto* end = text.data() + text.size();
  const auto [p, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || p != end || v < 0 || v > max)
    return std::nullopt;
  return v;
}

std::string fqdns(const google::protobuf::RepeatedPtrField<management::RemotePeerConfig>& list) {
  std::vector<std::string> v;
  for (const auto& p : list)
    v.push_back(p.fqdn());
  std::sort(v.begin(), v.end());
  std::string s;
  for (const auto& n : v)
    s += (s.empty() ? "" : ",") + n;
  return s;
}

} // namespace

int main(int argc, char** argv) {
  std::string server = "127.0.0.1:33073", key_file, cmd, setup_key, hostname = "peer-sim";
  long long maps = 0, timeout_ms = 0;
  constexpr long long max_ms = 365LL * 24 * 3600 * 1000; // a year: far beyond any use
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help" || a == "help") {
      std::fputs(usage_text, stdout);
      return 0;
    }
    const bool takes_value = a == "--server" || a == "--key-file" || a == "--setup-key" ||
                             a == "--hostname" || a == "--maps" || a == "--seconds" ||
                             a == "--timeout-ms";
    if (takes_value && i + 1 >= argc)
      return usage_error(a + " needs a value");
    if (a == "--server")
      server = argv[++i];
    else if (a == "--key-file")
      key_file = argv[++i];
    else if (a == "--setup-key")
      setup_key = argv[++i];
    else if (a == "--hostname")
      hostname = argv[++i];
    else if (a == "--maps") {
      const auto v = count_arg(argv[++i], 1000000000);
      if (!v)
        return usage_error("--maps: not a count of maps: \"" + std::string(argv[i]).substr(0, 32) +
                           "\" (want a whole number, 0 for no limit)");
      maps = *v;
    } else if (a == "--seconds" || a == "--timeout-ms") {
      const bool secs = a == "--seconds";
      const auto v = count_arg(argv[++i], secs ? max_ms / 1000 : max_ms);
      if (!v)
        return usage_error(a + ": not a number of " + (secs ? "seconds" : "milliseconds") + ": \"" +
                           std::string(argv[i]).substr(0, 32) +
                           "\" (want a whole number, 0 for no limit)");
      timeout_ms = secs ? *v * 1000 : *v;
    } else if (a.rfind("-", 0) == 0)
      return usage_error("unknown option " + a.substr(0, 64));
    else if (cmd.empty())
      cmd = a;
    else
      return usage_error("unexpected argument " + a.substr(0, 64) + " after the command " + cmd);
  }
  if (cmd.empty())
    return usage_error("no command (server-key, login or sync)");
  if (cmd != "server-key" && cmd != "login" && cmd != "sync")
    return usage_error("unknown command " + cmd.substr(0, 64) + " (server-key, login or sync)");

  // sync ends cleanly on Ctrl-C: the signals are blocked before gRPC starts any thread, and one
  // thread of ours waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  if (cmd == "sync")
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  std::optional<nbm::tools::peer_client> peer;
  try {
    peer.emplace(server, key_file);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "peer_sim: %s\n", e.what());
    return 1;
  }
  if (cmd == "server-key") {
    auto r = peer->fetch_server_key();
    if (!r.ok()) {
      std::fprintf(stderr, "peer_sim: GetServerKey from %s failed: code=%d message=%s\n",
                   server.c_str(), r.code, r.message.c_str());
      return 1;
    }
    std::printf("server_key: %s\n", nbm::crypto::base64_encode(peer->server_key()).c_str());
    return 0;
  }
  if (cmd == "login") {
    management::LoginResponse lr;
    auto r = peer->login(setup_key, hostname, &lr);
    if (r.ok())
      std::printf("login address=%s fqdn=%s\n", lr.peerconfig().address().c_str(),
                  lr.peerconfig().fqdn().c_str());
    std::printf("end code=%d message=%s\n", r.code, r.message.c_str());
    return r.ok() ? 0 : 1;
  }

  // sync: our watcher ends it on Ctrl-C, SIGTERM or --seconds. The stream is then closed with the
  // process (the server sees the connection go, as when an agent stops); the last line says so.
  std::mutex print;
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!done) {
      timespec slice{0, 100 * 1000 * 1000};
      if (sigtimedwait(&stop_signals, nullptr, &slice) > 0 ||
          (timeout_ms > 0 && std::chrono::steady_clock::now() >= until)) {
        std::lock_guard<std::mutex> lk(print);
        std::printf("end code=1 message=stopped\n");
        std::fflush(stdout);
        std::_Exit(0);
      }
    }
  });
  long long seen = 0;
  auto r = peer->sync(
      hostname,
      [&](const management::SyncResponse& sr) {
        const auto& m = sr.networkmap();
        std::lock_guard<std::mutex> lk(print);
        std::printf("map serial=%llu address=%s fqdn=%s peers=%s offline=%s\n",
                    static_cast<unsigned long long>(m.serial()), m.peerconfig().address().c_str(),
                    m.peerconfig().fqdn().c_str(), fqdns(m.remotepeers()).c_str(),
                    fqdns(m.offlinepeers()).c_str());
        std::fflush(stdout);
        return maps == 0 || ++seen < maps;
      },
      0);
  done = true;
  watcher.join();
  std::printf("end code=%d message=%s\n", r.code, r.message.c_str());
  std::fflush(stdout);
  return (r.ok() || r.code == 1) ? 0 : 1;
}
