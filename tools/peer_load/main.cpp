// peer_load: thousands of NetBird peers from one process, over gRPC's asynchronous (completion
// queue) client API, to measure the management server under registration and Sync load.
//
//   peer_load register --server H:P --peers N --setup-key KEY --keys-file F [--concurrency C]
//   peer_load sync     --server H:P --peers N --keys-file F [--hold S] [--login]
//                      [--change K --setup-key KEY]
//   peer_load storm    --server H:P --peers N --keys-file F [--login]
//   peer_load churn    --server H:P --peers N --keys-file F [--fraction F] [--duration S] [--login]
// common: [--server-pid PID] [--channels K] [--threads T] [--timeout S] [--rpc-timeout S]
//
// Every peer has its own X25519 (WireGuard) key pair, kept in --keys-file (one "public private"
// base64 pair a line; missing ones are generated and appended), so a later run (after a server
// restart, say) speaks as the same registered peers. Peers share a small pool of channels (one
// HTTP/2 connection each, many streams on each) and a few completion-queue threads.
//
// register: N Logins with the setup key, C in flight; registrations/s and latency.
// sync:     all N open Sync at once; time from that moment to each peer's first map, how many hold
//           one, then (after the maps settle) whether each holds the account's newest map (its
//           serial); with --change K, K new peers register (--setup-key) and every stream must
//           get a newer map; after --hold seconds the server's resident memory per stream.
// storm:    sync, then every stream closes and reconnects at once; time to the new first maps.
// churn:    sync, then --fraction of the peers per second reconnect for --duration seconds.
// --login:  every (re)connect does Login (no setup key) before Sync, as a NetBird agent does.
// --server-pid: the server's CPU seconds (utime+stime from /proc/PID/stat) and resident memory
//           (VmRSS from /proc/PID/status) before and after the measured part of the phase.
//
// Output: lines "<what>: key=value ...", parsed by tests and scripts; exit 0 when every peer
// reached its goal (registered / holds a map), 1 otherwise, 2 on bad usage.
#include "crypto/crypto.hpp"
#include "tools/peer_sim/peer_client.hpp"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using namespace std::chrono_literals;
using management::EncryptedMessage;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "peer_load: %s\n"
               "usage: peer_load register|sync|storm|churn --server HOST:PORT --peers N "
               "--keys-file F\n"
               "  [--setup-key KEY] [--concurrency C] [--hold S] [--change K] [--fraction F]\n"
               "  [--duration S]\n"
               "  [--login] [--server-pid PID] [--channels K] [--threads T] [--timeout S]\n"
               "  [--rpc-timeout S]\n",
               why.c_str());
  std::exit(2);
}

struct options {
  std::string phase, server = "127.0.0.1:33073", keys_file, setup_key;
  std::size_t peers = 0, concurrency = 64;
  int channels = 4, threads = 2;
  double hold = 0, fraction = 0.1, duration = 10, timeout = 60, rpc_timeout = 60;
  std::size_t change = 0; // sync: then register this many new peers and wait for every map
  bool login = false;
  pid_t server_pid = 0;
};

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc)
        usage(a + " needs a value");
      return argv[++i];
    };
    auto num = [&](double lo, double hi) {
      const auto text = val();
      char* end = nullptr;
      const double v = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0' || !(v >= lo && v <= hi))
        usage(a + ": not a number in [" + std::to_string(lo) + ", " + std::to_string(hi) +
              "]: " + text.substr(0, 20));
      return v;
    };
    if (a == "--server")
      o.server = val();
    else if (a == "--keys-file")
      o.keys_file = val();
    else if (a == "--setup-key")
      o.setup_key = val();
    else if (a == "--peers")
      o.peers = static_cast<std::size_t>(num(1, 1e6));
    else if (a == "--concurrency")
      o.concurrency = static_cast<std::size_t>(num(1, 1e5));
    else if (a == "--channels")
      o.channels = static_cast<int>(num(1, 256));
    else if (a == "--threads")
      o.threads = static_cast<int>(num(1, 64));
    else if (a == "--hold")
      o.hold = num(0, 86400);
    else if (a == "--fraction")
      o.fraction = num(0, 1);
    else if (a == "--duration")
      o.duration = num(0, 86400);
    else if (a == "--timeout")
      o.timeout = num(0.1, 86400);
    else if (a == "--rpc-timeout")
      o.rpc_timeout = num(0.1, 86400);
    else if (a == "--server-pid")
      o.server_pid = static_cast<pid_t>(num(1, 1e9));
    else if (a == "--change")
      o.change = static_cast<std::size_t>(num(0, 1e5));
    else if (a == "--login")
      o.login = true;
    else if (a.rfind("--", 0) != 0 && o.phase.empty())
      o.phase = a;
    else
      usage("unknown argument " + a.substr(0, 40));
  }
  if (o.phase != "register" && o.phase != "sync" && o.phase != "storm" && o.phase != "churn")
    usage("the phase must be register, sync, storm or churn");
  if (o.peers == 0)
    usage("--peers N is required");
  if (o.keys_file.empty())
    usage("--keys-file is required");
  if (o.phase == "register" && o.setup_key.empty())
    usage("register needs --setup-key");
  if (o.change > 0 && (o.phase != "sync" || o.setup_key.empty()))
    usage("--change is for sync and needs --setup-key");
  return o;
}

// --- the server process, from /proc ------------------------------------------------------------

struct proc_sample {
  bool ok = false;
  double cpu_s = 0; // utime + stime
  long rss_kib = 0; // VmRSS
  long hwm_kib = 0; // VmHWM (peak resident)
  long threads = 0;
};

proc_sample sample(pid_t pid) {
  proc_sample s;
  if (pid <= 0)
    return s;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close == std::string::npos)
    return s;
  // Fields after the command: 3 state, 4 ppid, ... 14 utime, 15 stime (in clock ticks).
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int n = 3; n <= 15 && rest >> field; ++n) {
    if (n == 14)
      utime = std::stoull(field);
    if (n == 15)
      stime = std::stoull(field);
  }
  s.cpu_s = static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    auto value = [&] { return std::atol(line.c_str() + line.find(':') + 1); };
    if (line.rfind("VmRSS:", 0) == 0)
      s.rss_kib = value();
    else if (line.rfind("VmHWM:", 0) == 0)
      s.hwm_kib = value();
    else if (line.rfind("Threads:", 0) == 0)
      s.threads = value();
  }
  s.ok = true;
  return s;
}

double own_cpu_s() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

void raise_fd_limit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &r) != 0)
      std::fprintf(stderr, "peer_load: cannot raise the open-file limit: %s\n",
                   std::strerror(errno));
  }
}

// --- keys ------------------------------------------------------------------------------------

struct key {
  std::string pub, priv; // raw 32 bytes each
};

// The first `n` key pairs of `path`, generating (and appending) what is missing.
std::vector<key> load_keys(const std::string& path, std::size_t n) {
  std::vector<key> keys;
  {
    std::ifstream in(path);
    std::string pub, priv;
    std::size_t line = 0;
    while (keys.size() < n && in >> pub >> priv) {
      ++line;
      auto p = nbm::crypto::base64_decode(pub), q = nbm::crypto::base64_decode(priv);
      if (!p || !q || p->size() != 32 || q->size() != 32) {
        std::fprintf(stderr, "peer_load: %s line %zu is not a base64 key pair\n", path.c_str(),
                     line);
        std::exit(2);
      }
      keys.push_back({*p, *q});
    }
  }
  const std::size_t had = keys.size();
  if (had < n) {
    std::ofstream out(path, std::ios::app);
    for (std::size_t i = had; i < n; ++i) {
      auto kp = nbm::crypto::make_wg_key_pair();
      out << nbm::crypto::base64_encode(kp.public_key) << " "
          << nbm::crypto::base64_encode(kp.private_key) << "\n";
      keys.push_back({kp.public_key, kp.private_key});
    }
    if (!out) {
      std::fprintf(stderr, "peer_load: cannot write %s\n", path.c_str());
      std::exit(2);
    }
    std::printf("keys: file=%s reused=%zu generated=%zu\n", path.c_str(), had, n - had);
  } else {
    std::printf("keys: file=%s reused=%zu generated=0\n", path.c_str(), had);
  }
  return keys;
}

// --- a map, read without building the message: NetworkMap (5) -> Serial (1), remotePeers (3) ----

bool scan_map(const std::string& plain, std::uint64_t& serial, std::uint32_t& remote) {
  using google::protobuf::internal::WireFormatLite;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const std::uint8_t*>(plain.data()),
                                            static_cast<int>(plain.size()));
  in.SetTotalBytesLimit(INT32_MAX);
  serial = 0;
  remote = 0;
  bool seen = false;
  while (const auto tag = in.ReadTag()) {
    if (WireFormatLite::GetTagFieldNumber(tag) == 5 &&
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      std::uint32_t len = 0;
      if (!in.ReadVarint32(&len))
        return false;
      const auto limit = in.PushLimit(static_cast<int>(len));
      while (const auto t = in.ReadTag()) {
        const auto field = WireFormatLite::GetTagFieldNumber(t);
        if (field == 1 && WireFormatLite::GetTagWireType(t) == WireFormatLite::WIRETYPE_VARINT) {
          if (!in.ReadVarint64(&serial))
            return false;
          continue;
        }
        if (field == 3)
          ++remote;
        if (!WireFormatLite::SkipField(&in, t))
          return false;
      }
      if (!in.ConsumedEntireMessage())
        return false;
      in.PopLimit(limit);
      seen = true;
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return false;
    }
  }
  return seen;
}

// --- peers and the engine --------------------------------------------------------------------

enum class op : std::uint8_t { login, sync_start, sync_read, sync_finish };
struct peer;
struct tag {
  peer* p;
  op o;
};

struct peer {
  std::size_t idx = 0;
  int cq = 0, channel = 0;
  std::string pub_b64, priv, shared, hostname;
  tag t_login{this, op::login}, t_start{this, op::sync_start}, t_read{this, op::sync_read},
      t_finish{this, op::sync_finish};

  // A Login in flight (owned by the completion-queue thread once started).
  bool login_registers = false; // register phase; else a reconnect's Login before its Sync
  std::int64_t login_start = 0;
  std::unique_ptr<grpc::ClientContext> lctx;
  std::unique_ptr<grpc::ClientAsyncResponseReader<EncryptedMessage>> lrpc;
  EncryptedMessage lresp;
  grpc::Status lstatus;

  // The Sync stream. `mu` guards sctx, streaming and the two request flags against the control
  // thread (which cancels); the rest belongs to the completion-queue thread.
  std::mutex mu;
  std::unique_ptr<grpc::ClientContext> sctx;
  std::unique_ptr<grpc::ClientAsyncReader<EncryptedMessage>> sreader;
  EncryptedMessage smsg;
  grpc::Status sstatus;
  bool streaming = false, cancel_requested = false, reopen = false;

  std::atomic<std::int64_t> since{0};         // when the current (re)connect was asked for
  std::atomic<std::int64_t> first_map{0};     // the current session's first map (0: none yet)
  std::atomic<std::int64_t> current_since{0}; // when its newest serial arrived
  std::atomic<std::uint64_t> serial{0};
  std::atomic<std::uint32_t> remote{0};
};

struct thread_stats {
  std::mutex mu;
  std::vector<std::int64_t> latencies; // ns, this phase
  std::map<std::string, std::size_t> errors;
};

std::string error_text(const grpc::Status& s) {
  static const char* names[] = {"OK",
                                "CANCELLED",
                                "UNKNOWN",
                                "INVALID_ARGUMENT",
                                "DEADLINE_EXCEEDED",
                                "NOT_FOUND",
                                "ALREADY_EXISTS",
                                "PERMISSION_DENIED",
                                "RESOURCE_EXHAUSTED",
                                "FAILED_PRECONDITION",
                                "ABORTED",
                                "OUT_OF_RANGE",
                                "UNIMPLEMENTED",
                                "INTERNAL",
                                "UNAVAILABLE",
                                "DATA_LOSS",
                                "UNAUTHENTICATED"};
  const int c = s.error_code();
  std::string name = c >= 0 && c <= 16 ? names[c] : std::to_string(c);
  return name + " " + s.error_message().substr(0, 80);
}

class engine {
public:
  engine(const options& o, const std::vector<key>& keys) : opt_(o) {
    for (int i = 0; i < o.channels; ++i) {
      grpc::ChannelArguments args;
      // Separate connections: a channel of its own subchannel pool and a distinct argument.
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      args.SetInt("nbm.peer_load.channel", i);
      args.SetMaxReceiveMessageSize(-1);
      channels_.push_back(
          grpc::CreateCustomChannel(o.server, grpc::InsecureChannelCredentials(), args));
      stubs_.push_back(management::ManagementService::NewStub(channels_.back()));
    }
    for (int i = 0; i < o.threads; ++i) {
      cqs_.push_back(std::make_unique<grpc::CompletionQueue>());
      stats_.push_back(std::make_unique<thread_stats>());
    }
    server_key_ = fetch_server_key();
    peers_.reserve(keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
      auto p = std::make_unique<peer>();
      p->idx = i;
      p->cq = static_cast<int>(i % cqs_.size());
      p->channel = static_cast<int>(i % channels_.size());
      p->pub_b64 = nbm::crypto::base64_encode(keys[i].pub);
      p->priv = keys[i].priv;
      p->hostname = "load-" + std::to_string(i);
      peers_.push_back(std::move(p));
    }
    // One Curve25519 multiplication per peer, shared over the worker threads.
    std::vector<std::thread> pre;
    const std::size_t workers = static_cast<std::size_t>(o.threads);
    for (std::size_t w = 0; w < workers; ++w)
      pre.emplace_back([this, w, workers] {
        for (std::size_t i = w; i < peers_.size(); i += workers)
          peers_[i]->shared = nbm::crypto::box_precompute(server_key_, peers_[i]->priv);
      });
    for (auto& t : pre)
      t.join();
    for (auto& c : channels_)
      if (!c->WaitForConnected(std::chrono::system_clock::now() + 10s)) {
        std::fprintf(stderr, "peer_load: cannot connect to %s\n", o.server.c_str());
        std::exit(1);
      }
    for (int i = 0; i < o.threads; ++i)
      threads_.emplace_back([this, i] { run(i); });
  }

  ~engine() {
    stopping_ = true;
    const auto until = now_ns() + 10'000'000'000LL;
    while ((streams_ > 0 || logins_ > 0) && now_ns() < until) {
      close_all(); // again: a Login that ended just before `stopping_` may have opened one
      std::this_thread::sleep_for(5ms);
    }
    for (auto& cq : cqs_)
      cq->Shutdown();
    for (auto& t : threads_)
      t.join();
  }

  std::size_t size() const { return peers_.size(); }

  // Starts a new measured phase: latencies, errors and failure counts from zero.
  void begin_phase() {
    for (auto& s : stats_) {
      std::lock_guard<std::mutex> lk(s->mu);
      s->latencies.clear();
      s->errors.clear();
    }
    logins_done_ = 0;
    logins_ok_ = 0;
    failed_ = 0;
    ended_by_server_ = 0;
  }

  // --- register ---
  struct register_result {
    std::size_t ok = 0, failed = 0; // answered (on a timeout: also those then in flight)
    double elapsed_s = 0;
    bool complete = false; // every peer answered within --timeout
  };
  register_result register_all() {
    begin_phase();
    next_login_ = 0;
    const auto t0 = now_ns();
    const std::size_t first = std::min(opt_.concurrency, peers_.size());
    next_login_ = first;
    for (std::size_t i = 0; i < first; ++i)
      start_login(*peers_[i], true);
    register_result r;
    r.complete = wait_for([&] { return logins_done_ >= peers_.size(); });
    r.elapsed_s = static_cast<double>(now_ns() - t0) / 1e9;
    r.ok = logins_ok_;
    r.failed = logins_done_ - logins_ok_;
    if (!r.complete) { // out of time: no new Logins; those in flight end (or time out) first
      stop_logins_ = true;
      const auto until =
          now_ns() + static_cast<std::int64_t>(opt_.rpc_timeout * 1e9) + 1'000'000'000;
      while (logins_ > 0 && now_ns() < until)
        std::this_thread::sleep_for(5ms);
      r.elapsed_s = static_cast<double>(now_ns() - t0) / 1e9;
      r.ok = logins_ok_;
      r.failed = logins_done_ - logins_ok_;
    }
    return r;
  }

  // --- sync ---
  // Every peer (re)connects now: a stream that is open is closed and opened again.
  std::int64_t connect_all() {
    begin_phase();
    const auto t0 = now_ns();
    for (auto& p : peers_)
      reconnect(*p, t0, true);
    return t0;
  }
  // Waits until every connect asked for got its first map or failed (or the timeout).
  bool wait_connected() {
    return wait_for([&] { return pending_ == 0; });
  }
  // Waits until no map arrived for `quiet` (or the timeout): the fan-out has settled.
  void wait_settled(std::chrono::milliseconds quiet) {
    const auto q = std::chrono::duration_cast<std::chrono::nanoseconds>(quiet).count();
    wait_for([&] { return now_ns() - last_map_ > q; });
  }
  // Asks `p` to reconnect: a stream that holds a map is closed and opened again. A peer without a
  // stream is connected only when `open_idle` (connect_all, when nothing is in flight). False when
  // nothing was asked (a connect of `p` is still under way).
  bool reconnect(peer& p, std::int64_t since, bool open_idle) {
    {
      std::lock_guard<std::mutex> lk(p.mu);
      if (p.streaming) {
        if (p.reopen || p.first_map == 0)
          return false;
        p.since = since;
        p.reopen = true;
        p.cancel_requested = true;
        ++pending_;
        p.sctx->TryCancel();
        return true;
      }
    }
    if (!open_idle)
      return false;
    p.since = since;
    ++pending_;
    connect(p);
    return true;
  }
  peer& at(std::size_t i) { return *peers_[i]; }

  void close_all() {
    for (auto& p : peers_) {
      std::lock_guard<std::mutex> lk(p->mu);
      if (p->streaming && !p->cancel_requested) {
        p->cancel_requested = true;
        p->sctx->TryCancel();
      }
    }
  }

  // Latencies recorded in this phase (ns, sorted) and errors by kind.
  std::vector<std::int64_t> latencies() {
    std::vector<std::int64_t> all;
    for (auto& s : stats_) {
      std::lock_guard<std::mutex> lk(s->mu);
      all.insert(all.end(), s->latencies.begin(), s->latencies.end());
    }
    std::sort(all.begin(), all.end());
    return all;
  }
  std::map<std::string, std::size_t> errors() {
    std::map<std::string, std::size_t> all;
    for (auto& s : stats_) {
      std::lock_guard<std::mutex> lk(s->mu);
      for (const auto& [k, n] : s->errors)
        all[k] += n;
    }
    return all;
  }
  std::size_t failed() const { return failed_; }
  std::size_t ended_by_server() const { return ended_by_server_; }
  std::size_t maps_received() const { return maps_; }
  std::size_t bad_maps() const { return bad_maps_; }
  std::size_t holding() const {
    std::size_t n = 0;
    for (const auto& p : peers_)
      n += p->first_map != 0 ? 1 : 0;
    return n;
  }

private:
  std::string fetch_server_key() {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    management::Empty req;
    management::ServerKeyResponse resp;
    const auto s = stubs_[0]->GetServerKey(&ctx, req, &resp);
    if (!s.ok()) {
      std::fprintf(stderr, "peer_load: GetServerKey on %s: %s\n", opt_.server.c_str(),
                   error_text(s).c_str());
      std::exit(1);
    }
    auto k = nbm::crypto::base64_decode(resp.key());
    if (!k || k->size() != 32) {
      std::fprintf(stderr, "peer_load: the server key is not a 32-byte base64 key\n");
      std::exit(1);
    }
    return *k;
  }

  template <class Pred>
  bool wait_for(Pred done) {
    const auto until = now_ns() + static_cast<std::int64_t>(opt_.timeout * 1e9);
    while (!done()) {
      if (now_ns() > until)
        return false;
      std::this_thread::sleep_for(2ms);
    }
    return true;
  }

  void record_error(const peer& p, const std::string& what) {
    auto& s = *stats_[static_cast<std::size_t>(p.cq)];
    std::lock_guard<std::mutex> lk(s.mu);
    ++s.errors[what];
  }
  void record_latency(const peer& p, std::int64_t ns) {
    auto& s = *stats_[static_cast<std::size_t>(p.cq)];
    std::lock_guard<std::mutex> lk(s.mu);
    s.latencies.push_back(ns);
  }

  EncryptedMessage envelope(const peer& p, const google::protobuf::Message& m) const {
    EncryptedMessage env;
    env.set_wgpubkey(p.pub_b64);
    env.set_body(nbm::crypto::box_seal_precomputed(m.SerializeAsString(), p.shared));
    return env;
  }

  void connect(peer& p) {
    if (opt_.login)
      start_login(p, false);
    else
      start_sync(p);
  }

  void start_login(peer& p, bool registers) {
    management::LoginRequest req;
    if (registers)
      req.set_setupkey(opt_.setup_key);
    nbm::tools::fill_meta(*req.mutable_meta(), p.hostname);
    p.login_registers = registers;
    p.lctx = std::make_unique<grpc::ClientContext>();
    p.lctx->set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(static_cast<long>(opt_.rpc_timeout * 1000)));
    ++logins_;
    p.login_start = now_ns();
    p.lrpc = stubs_[static_cast<std::size_t>(p.channel)]->PrepareAsyncLogin(
        p.lctx.get(), envelope(p, req), cqs_[static_cast<std::size_t>(p.cq)].get());
    p.lrpc->StartCall();
    p.lrpc->Finish(&p.lresp, &p.lstatus, &p.t_login);
  }

  void on_login(peer& p) {
    const auto t = now_ns();
    bool ok = p.lstatus.ok();
    if (!ok) {
      record_error(p, "login " + error_text(p.lstatus));
    } else {
      auto plain = nbm::crypto::box_open_precomputed(p.lresp.body(), p.shared);
      management::LoginResponse lr;
      if (!plain || !lr.ParseFromString(*plain) || lr.peerconfig().address().empty()) {
        ok = false;
        record_error(p, "login: the answer does not open or holds no address");
      }
    }
    p.lrpc.reset();
    p.lctx.reset();
    --logins_;
    if (p.login_registers) {
      record_latency(p, t - p.login_start);
      if (ok)
        ++logins_ok_;
      ++logins_done_;
      const auto i = next_login_++;
      if (i < peers_.size() && !stop_logins_)
        start_login(*peers_[i], true);
      return;
    }
    if (ok && !stopping_) {
      start_sync(p);
    } else {
      ++failed_;
      --pending_;
    }
  }

  void start_sync(peer& p) {
    management::SyncRequest req;
    nbm::tools::fill_meta(*req.mutable_meta(), p.hostname);
    auto env = envelope(p, req);
    p.first_map = 0;
    p.serial = 0;
    p.current_since = 0;
    std::lock_guard<std::mutex> lk(p.mu);
    p.sctx = std::make_unique<grpc::ClientContext>();
    p.streaming = true;
    p.cancel_requested = false;
    ++streams_;
    p.sreader = stubs_[static_cast<std::size_t>(p.channel)]->PrepareAsyncSync(
        p.sctx.get(), env, cqs_[static_cast<std::size_t>(p.cq)].get());
    p.sreader->StartCall(&p.t_start);
  }

  void on_map(peer& p) {
    const auto t = now_ns();
    ++maps_;
    last_map_ = t;
    std::uint64_t serial = 0;
    std::uint32_t remote = 0;
    auto plain = nbm::crypto::box_open_precomputed(p.smsg.body(), p.shared);
    if (!plain || !scan_map(*plain, serial, remote)) {
      ++bad_maps_;
      record_error(p, "sync: a message that does not open or holds no network map");
      return;
    }
    if (serial != p.serial || p.current_since == 0) {
      p.serial = serial;
      p.current_since = t;
    }
    p.remote = remote;
    if (p.first_map == 0) {
      p.first_map = t;
      record_latency(p, t - p.since);
      --pending_;
    }
  }

  void on_finish(peer& p) {
    bool reopen = false, ours = false;
    {
      std::lock_guard<std::mutex> lk(p.mu);
      p.streaming = false;
      reopen = p.reopen;
      ours = p.cancel_requested;
      p.reopen = false;
      p.cancel_requested = false;
      p.sreader.reset();
      p.sctx.reset();
    }
    --streams_;
    const bool had_map = p.first_map != 0;
    if (!ours) {
      ++ended_by_server_;
      record_error(p, "sync ended " + error_text(p.sstatus));
    }
    if (!had_map) { // this session's connect failed
      ++failed_;
      --pending_;
    }
    p.first_map = 0;
    if (reopen && !stopping_)
      connect(p);
    else if (reopen)
      --pending_;
  }

  void run(int i) {
    auto& cq = *cqs_[static_cast<std::size_t>(i)];
    void* raw = nullptr;
    bool ok = false;
    while (cq.Next(&raw, &ok)) {
      auto* t = static_cast<tag*>(raw);
      peer& p = *t->p;
      switch (t->o) {
      case op::login:
        on_login(p);
        break;
      case op::sync_start:
        if (ok)
          p.sreader->Read(&p.smsg, &p.t_read);
        else
          p.sreader->Finish(&p.sstatus, &p.t_finish);
        break;
      case op::sync_read:
        if (ok) {
          on_map(p);
          p.sreader->Read(&p.smsg, &p.t_read);
        } else {
          p.sreader->Finish(&p.sstatus, &p.t_finish);
        }
        break;
      case op::sync_finish:
        on_finish(p);
        break;
      }
    }
  }

  options opt_;
  std::string server_key_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<management::ManagementService::Stub>> stubs_;
  std::vector<std::unique_ptr<grpc::CompletionQueue>> cqs_;
  std::vector<std::unique_ptr<thread_stats>> stats_;
  std::vector<std::thread> threads_;
  std::vector<std::unique_ptr<peer>> peers_;

  std::atomic<bool> stopping_{false}, stop_logins_{false};
  std::atomic<std::size_t> next_login_{0}, logins_done_{0}, logins_ok_{0};
  std::atomic<long> logins_{0}, streams_{0}, pending_{0};
  std::atomic<std::size_t> failed_{0}, ended_by_server_{0}, maps_{0}, bad_maps_{0};
  std::atomic<std::int64_t> last_map_{0};
};

// --- reports -----------------------------------------------------------------------------------

double ms(std::int64_t ns) {
  return static_cast<double>(ns) / 1e6;
}

std::string percentiles(const std::vector<std::int64_t>& sorted) {
  if (sorted.empty())
    return "p50=- p99=- max=-";
  auto at = [&](double q) {
    const auto i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size()))) -
                   (q > 0 ? 1 : 0);
    return ms(sorted[std::min(i, sorted.size() - 1)]);
  };
  char buf[128];
  std::snprintf(buf, sizeof buf, "p50=%.1f p99=%.1f max=%.1f", at(0.50), at(0.99),
                ms(sorted.back()));
  return buf;
}

void print_errors(engine& e) {
  for (const auto& [what, n] : e.errors())
    std::printf("error: count=%zu what=%s\n", n, what.c_str());
}

// CPU and memory of the server over a part of a phase, per operation (registration, stream, ...).
void print_server(const proc_sample& before, const proc_sample& after, std::size_t ops,
                  const char* per, std::size_t peers) {
  if (!before.ok || !after.ok) {
    std::printf("server: unmeasured (no --server-pid or /proc unreadable)\n");
    return;
  }
  const double cpu = after.cpu_s - before.cpu_s;
  const long rss_delta = after.rss_kib - before.rss_kib;
  std::printf("server: cpu_s=%.2f cpu_ms_per_%s=%.3f rss_kib_before=%ld rss_kib=%ld "
              "rss_delta_kib=%ld rss_delta_kib_per_%s=%.2f rss_kib_per_peer=%.2f hwm_kib=%ld "
              "threads=%ld\n",
              cpu, per, ops ? cpu * 1000 / static_cast<double>(ops) : 0.0, before.rss_kib,
              after.rss_kib, rss_delta, per,
              ops ? static_cast<double>(rss_delta) / static_cast<double>(ops) : 0.0,
              static_cast<double>(after.rss_kib) / static_cast<double>(peers), after.hwm_kib,
              after.threads);
}

// The first maps of a connect-all: how many, how fast (from `t0`, when the connects were asked
// for), and how long the wait for them took.
bool report_connect(engine& e, const char* what, std::int64_t t0, bool complete) {
  const auto waited = static_cast<double>(now_ns() - t0) / 1e9;
  const auto lat = e.latencies();
  const auto n = e.size();
  const auto holding = e.holding();
  std::printf("%s: peers=%zu with_map=%zu failed=%zu complete=%s waited_s=%.3f "
              "all_within_s=%s first_map_ms %s\n",
              what, n, holding, e.failed(), complete ? "yes" : "no", waited,
              holding == n && !lat.empty()
                  ? std::to_string(static_cast<double>(lat.back()) / 1e9).c_str()
                  : "-",
              percentiles(lat).c_str());
  return holding == n;
}

void report_current(engine& e, std::int64_t t0) {
  std::uint64_t newest = 0;
  std::uint32_t remote_min = UINT32_MAX, remote_max = 0;
  for (std::size_t i = 0; i < e.size(); ++i) {
    auto& p = e.at(i);
    if (p.first_map == 0)
      continue;
    newest = std::max<std::uint64_t>(newest, p.serial);
    remote_min = std::min<std::uint32_t>(remote_min, p.remote);
    remote_max = std::max<std::uint32_t>(remote_max, p.remote);
  }
  std::size_t current = 0;
  std::int64_t last = 0;
  for (std::size_t i = 0; i < e.size(); ++i) {
    auto& p = e.at(i);
    if (p.first_map != 0 && p.serial == newest) {
      ++current;
      last = std::max<std::int64_t>(last, p.current_since);
    }
  }
  std::printf("maps: received=%zu bad=%zu serial_newest=%llu current=%zu "
              "all_current_within_s=%s remote_peers_min=%u remote_peers_max=%u "
              "ended_by_server=%zu\n",
              e.maps_received(), e.bad_maps(), static_cast<unsigned long long>(newest), current,
              current == e.size() ? std::to_string(static_cast<double>(last - t0) / 1e9).c_str()
                                  : "-",
              remote_min == UINT32_MAX ? 0 : remote_min, remote_max, e.ended_by_server());
}

std::uint64_t newest_serial(engine& e) {
  std::uint64_t newest = 0;
  for (std::size_t i = 0; i < e.size(); ++i)
    newest = std::max<std::uint64_t>(newest, e.at(i).serial);
  return newest;
}

// A change while every peer holds its map: `opt.change` new peers register (fresh keys, one after
// another, not kept in the keys file); then the time until every stream holds a map of a newer
// serial, and the newest one.
bool change(engine& e, const options& opt) {
  const auto before_serial = newest_serial(e);
  const auto before = sample(opt.server_pid);
  const auto t1 = now_ns();
  std::size_t registered = 0;
  for (std::size_t k = 0; k < opt.change; ++k) {
    nbm::tools::peer_client c(opt.server);
    const auto r = c.login(opt.setup_key,
                           "load-change-" + std::to_string(::getpid()) + "-" + std::to_string(k));
    if (r.ok())
      ++registered;
    else
      std::printf("error: count=1 what=change login %d %s\n", r.code,
                  r.message.substr(0, 80).c_str());
  }
  const auto t2 = now_ns();
  auto updated = [&] {
    std::size_t n = 0;
    for (std::size_t i = 0; i < e.size(); ++i)
      n += e.at(i).first_map != 0 && e.at(i).serial > before_serial ? 1 : 0;
    return n;
  };
  const auto until = t2 + static_cast<std::int64_t>(opt.timeout * 1e9);
  while (updated() < e.holding() && now_ns() < until)
    std::this_thread::sleep_for(2ms);
  const auto t3 = now_ns();
  const auto after = sample(opt.server_pid);
  e.wait_settled(500ms);
  const auto newest = newest_serial(e);
  std::size_t current = 0;
  std::int64_t last = 0;
  for (std::size_t i = 0; i < e.size(); ++i)
    if (e.at(i).first_map != 0 && e.at(i).serial == newest) {
      ++current;
      last = std::max<std::int64_t>(last, e.at(i).current_since);
    }
  const auto n_updated = updated();
  std::printf(
      "change: registered=%zu of=%zu registering_s=%.3f serial_before=%llu "
      "serial_newest=%llu updated=%zu all_updated_within_s=%s current=%zu "
      "all_current_within_s=%s\n",
      registered, opt.change, static_cast<double>(t2 - t1) / 1e9,
      static_cast<unsigned long long>(before_serial), static_cast<unsigned long long>(newest),
      n_updated,
      n_updated == e.size() ? std::to_string(static_cast<double>(t3 - t1) / 1e9).c_str() : "-",
      current,
      current == e.size() ? std::to_string(static_cast<double>(last - t1) / 1e9).c_str() : "-");
  print_server(before, after, e.size(), "stream_updated", e.size());
  return registered == opt.change && current == e.size();
}

} // namespace

int main(int argc, char** argv) {
  const auto opt = parse(argc, argv);
  raise_fd_limit();
  nbm::crypto::init();
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const auto keys = load_keys(opt.keys_file, opt.peers);
  engine e(opt, keys);
  std::printf("setup: server=%s peers=%zu channels=%d threads=%d login=%s\n", opt.server.c_str(),
              e.size(), opt.channels, opt.threads, opt.login ? "yes" : "no");
  const double client_cpu0 = own_cpu_s();
  bool ok = true;

  if (opt.phase == "register") {
    const auto before = sample(opt.server_pid);
    const auto r = e.register_all();
    const auto after = sample(opt.server_pid);
    const auto lat = e.latencies();
    std::printf("register: peers=%zu ok=%zu failed=%zu complete=%s concurrency=%zu "
                "elapsed_s=%.3f per_s=%.1f latency_ms %s\n",
                e.size(), r.ok, r.failed, r.complete ? "yes" : "no", opt.concurrency, r.elapsed_s,
                r.elapsed_s > 0 ? static_cast<double>(r.ok) / r.elapsed_s : 0.0,
                percentiles(lat).c_str());
    print_server(before, after, r.ok, "registration", e.size());
    print_errors(e);
    ok = r.ok == e.size();
  } else {
    // Connect all at once; first maps.
    auto before = sample(opt.server_pid);
    auto t0 = e.connect_all();
    bool complete = e.wait_connected();
    auto after = sample(opt.server_pid);
    ok = report_connect(e, "sync", t0, complete);
    print_server(before, after, e.holding(), "stream", e.size());
    print_errors(e);
    if (opt.phase == "sync") {
      e.wait_settled(1000ms);
      report_current(e, t0);
      if (opt.change > 0)
        ok = change(e, opt) && ok;
      if (opt.hold > 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(opt.hold * 1000)));
      const auto held = sample(opt.server_pid);
      if (held.ok)
        std::printf("held: seconds=%.1f rss_kib=%ld rss_delta_kib_per_stream=%.2f "
                    "rss_kib_per_peer=%.2f cpu_s_while_held=%.2f holding=%zu\n",
                    opt.hold, held.rss_kib,
                    static_cast<double>(held.rss_kib - before.rss_kib) /
                        static_cast<double>(e.size()),
                    static_cast<double>(held.rss_kib) / static_cast<double>(e.size()),
                    held.cpu_s - after.cpu_s, e.holding());
      ok = ok && e.holding() == e.size();
    } else if (opt.phase == "storm") {
      e.wait_settled(500ms);
      before = sample(opt.server_pid);
      t0 = e.connect_all();
      complete = e.wait_connected();
      after = sample(opt.server_pid);
      ok = report_connect(e, "storm", t0, complete) && ok;
      print_server(before, after, e.holding(), "reconnect", e.size());
      print_errors(e);
      e.wait_settled(500ms);
      report_current(e, t0);
    } else { // churn
      e.wait_settled(500ms);
      e.begin_phase();
      before = sample(opt.server_pid);
      std::mt19937_64 rng(42);
      std::uniform_int_distribution<std::size_t> pick(0, e.size() - 1);
      const auto start = now_ns();
      const auto end = start + static_cast<std::int64_t>(opt.duration * 1e9);
      double owed = 0;
      std::size_t asked = 0;
      // Every 100 ms, the tenth of a second's share of reconnects.
      while (now_ns() < end) {
        owed += opt.fraction * static_cast<double>(e.size()) / 10.0;
        for (; owed >= 1; owed -= 1)
          for (int tries = 0; tries < 8; ++tries)
            if (e.reconnect(e.at(pick(rng)), now_ns(), false)) {
              ++asked;
              break;
            }
        std::this_thread::sleep_for(100ms);
      }
      const double elapsed = static_cast<double>(now_ns() - start) / 1e9;
      complete = e.wait_connected();
      after = sample(opt.server_pid);
      const auto lat = e.latencies();
      std::printf("churn: peers=%zu fraction_per_s=%.3f duration_s=%.1f reconnects=%zu "
                  "with_map=%zu failed=%zu complete=%s holding=%zu first_map_ms %s\n",
                  e.size(), opt.fraction, elapsed, asked, lat.size(), e.failed(),
                  complete ? "yes" : "no", e.holding(), percentiles(lat).c_str());
      print_server(before, after, asked, "reconnect", e.size());
      print_errors(e);
      ok = ok && complete && e.failed() == 0 && e.holding() == e.size();
    }
  }
  std::printf("client: cpu_s=%.2f\n", own_cpu_s() - client_cpu0);
  return ok ? 0 : 1;
}
