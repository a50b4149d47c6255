#include "server/inspect_client.hpp"

#include "config/config.hpp"
#include "server/cli.hpp"

#include <nlohmann/json.hpp>
#include <readline/history.h>
#include <readline/readline.h>

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace nbm::server {

namespace {

using json = nlohmann::json;

std::atomic<bool> interrupted{false};
extern "C" void on_sigint(int) {
  interrupted = true;
}

struct options {
  std::string datadir = "/var/lib/netbird/";
  bool datadir_set = false;
  std::string config = "/etc/netbird/management.json";
  bool config_set = false;
  std::string addr, token_file;
  bool json_out = false;
  double interval = 1.0; // watch
  std::vector<std::string> command;
};

std::string read_line_of(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  if (in)
    std::getline(in, s);
  return s;
}

class connection {
public:
  ~connection() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  // Connects and authenticates; false with `error` set.
  bool open(const std::string& addr, const std::string& token, std::string& error) {
    const auto colon = addr.rfind(':');
    if (colon == std::string::npos) {
      error = "not host:port: " + addr;
      return false;
    }
    auto host = addr.substr(0, colon);
    if (host.size() > 2 && host.front() == '[')
      host = host.substr(1, host.size() - 2);
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (::getaddrinfo(host.c_str(), addr.substr(colon + 1).c_str(), &hints, &res) != 0 || !res) {
      error = "cannot resolve " + addr;
      return false;
    }
    fd_ = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const bool ok = fd_ >= 0 && ::connect(fd_, res->ai_addr, res->ai_addrlen) == 0;
    ::freeaddrinfo(res);
    if (!ok) {
      error = "cannot connect to the inspector on " + addr + ": " + std::strerror(errno) +
              " (is the server running, with its inspector on?)";
      return false;
    }
    auto j = ask("auth " + token);
    if (!j || !j->value("ok", false)) {
      error = j && j->contains("error") ? (*j)["error"].get<std::string>()
                                        : std::string("the server closed the connection");
      return false;
    }
    return true;
  }
  bool send_line(const std::string& line) {
    const auto out = line + "\n";
    std::size_t off = 0;
    while (off < out.size()) {
      auto n = ::send(fd_, out.data() + off, out.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return false;
      off += static_cast<std::size_t>(n);
    }
    return true;
  }
  // The next line within `timeout_ms` (-1: wait): a line, "" with `timed_out` set when none came
  // in time (or a signal interrupted the wait), nullopt when the connection is gone.
  std::optional<std::string> next_line(int timeout_ms, bool& timed_out) {
    timed_out = false;
    for (;;) {
      if (auto nl = buf_.find('\n'); nl != std::string::npos) {
        auto text = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return text;
      }
      pollfd p{fd_, POLLIN, 0};
      const int r = ::poll(&p, 1, timeout_ms);
      if (r == 0 || (r < 0 && errno == EINTR)) {
        timed_out = true;
        return std::string();
      }
      char chunk[4096];
      auto n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return std::nullopt;
      buf_.append(chunk, static_cast<std::size_t>(n));
    }
  }
  // One question, one answer (nullopt: the connection is gone).
  std::optional<json> ask(const std::string& line, std::string* raw = nullptr) {
    if (!send_line(line))
      return std::nullopt;
    bool interrupted = false;
    std::optional<std::string> text;
    do // an answer always comes (or the connection goes): a signal does not end the wait
      text = next_line(-1, interrupted);
    while (text && interrupted);
    if (!text)
      return std::nullopt;
    if (raw)
      *raw = *text;
    try {
      return json::parse(*text);
    } catch (const std::exception&) {
      return json{{"error", "an answer that is not JSON"}};
    }
  }

private:
  int fd_ = -1;
  std::string buf_;
};

void print(const json& j, const std::string& raw, bool as_json) {
  if (as_json)
    std::cout << raw << "\n";
  else
    std::cout << j.dump(2) << "\n";
  std::cout << std::flush;
}

void sleep_interruptibly(double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!interrupted && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

std::string join(const std::vector<std::string>& w, std::size_t from) {
  std::string s;
  for (std::size_t i = from; i < w.size(); ++i)
    s += (s.empty() ? "" : " ") + w[i];
  return s;
}

// Runs one console command. Returns 0 ok, 1 error (answer carried "error"), 3 connection lost.
int run_command(connection& c, const std::vector<std::string>& w, const options& o,
                bool interactive) {
  if (w.empty())
    return 0;
  std::string raw;
  if (w[0] == "watch") {
    if (w.size() < 2) {
      std::cerr << "usage: watch <overview|peer X|account X|replicas>\n";
      return 1;
    }
    const auto q = join(w, 1);
    interrupted = false;
    while (!interrupted) {
      auto j = c.ask(q, &raw);
      if (!j)
        return 3;
      if (interactive && !o.json_out)
        std::cout << "\x1b[H\x1b[2J"
                  << "every " << o.interval << " s: " << q << "   (Ctrl-C stops)\n";
      print(*j, raw, o.json_out);
      if (j->contains("error"))
        return 1;
      if (!std::cout.good()) // the reader went away (a pipe closed)
        return 0;
      sleep_interruptibly(o.interval);
    }
    interrupted = false;
    return 0;
  }
  if (w[0] == "trace") {
    if (w.size() != 2) {
      std::cerr << "usage: trace <peer id|key|name>\n";
      return 1;
    }
    // The server sends every message the peer actor handles as it handles it (none lost), until
    // this console says `stop` (Ctrl-C) or goes away.
    interrupted = false;
    if (!c.send_line("trace " + w[1]))
      return 3;
    bool timed_out = false;
    auto first = c.next_line(-1, timed_out);
    while (first && timed_out) // a signal woke the wait (Ctrl-C: stopped once it began)
      first = c.next_line(-1, timed_out);
    if (!first)
      return 3;
    json head;
    try {
      head = json::parse(*first);
    } catch (const std::exception&) {
      head = json{{"error", "an answer that is not JSON"}};
    }
    if (head.contains("error")) {
      print(head, *first, o.json_out);
      return 1;
    }
    auto show = [&](const json& m, bool before) {
      if (o.json_out) {
        json line = m;
        line.erase("event");
        line["peer"] = head["id"];
        if (before)
          line["before"] = true; // in the ring already when the trace began
        std::cout << line.dump() << "\n";
      } else {
        std::cout << (before ? "  (before) " : "  ") << m["seq"] << " "
                  << (m["dir"] == "out" ? "-> " : "<- ") << m["what"].get<std::string>()
                  << " token=" << m["token"] << " serial=" << m["serial"] << "\n";
      }
    };
    if (!o.json_out)
      std::cout << "tracing " << head["id"].get<std::string>() << " (Ctrl-C stops)\n";
    for (const auto& m : head["messages"])
      show(m, true);
    std::cout << std::flush;
    bool stopping = false;
    for (;;) {
      if (interrupted && !stopping) {
        stopping = true;
        if (!c.send_line("stop"))
          return 3;
      }
      auto l = c.next_line(200, timed_out);
      if (!l)
        return stopping ? 0 : 3;
      if (timed_out)
        continue;
      json m;
      try {
        m = json::parse(*l);
      } catch (const std::exception&) {
        continue;
      }
      if (m.value("event", "") == "trace") {
        show(m, false);
      } else if (m.value("event", "") == "dropped") {
        if (o.json_out)
          std::cout << *l << "\n";
        else
          std::cout << "  (" << m["count"] << " messages dropped: this console read too slowly)\n";
      } else if (m.value("stopped", false)) {
        if (o.json_out)
          std::cout << *l << "\n";
        else
          std::cout << "stopped: " << m["events"] << " messages, " << m["dropped"] << " dropped\n";
        std::cout << std::flush;
        interrupted = false;
        return 0;
      }
      std::cout << std::flush;
      if (!std::cout.good()) // the reader went away (a pipe closed)
        return 0;
    }
  }
  auto j = c.ask(join(w, 0), &raw);
  if (!j)
    return 3;
  print(*j, raw, o.json_out);
  return j->contains("error") ? 1 : 0;
}

// --- the interactive console: readline completion from what the server knows.
const std::vector<std::string> commands = {"overview", "peers", "peer", "account", "replicas",
                                           "watch",    "trace", "help", "quit"};
connection* completion_conn = nullptr;
std::vector<std::string> candidates;

void refresh_candidates(const std::string& first_word) {
  candidates.clear();
  if (first_word.empty() || first_word == "watch") {
    candidates = commands;
    return;
  }
  if (!completion_conn)
    return;
  auto j = completion_conn->ask("peers");
  if (!j || !j->contains("peers"))
    return;
  for (const auto& p : (*j)["peers"]) {
    if (first_word == "account") {
      candidates.push_back(p.value("account", ""));
    } else if (first_word == "peer" || first_word == "trace") {
      candidates.push_back(p.value("id", ""));
      if (!p.value("name", "").empty())
        candidates.push_back(p.value("name", ""));
    }
  }
  std::sort(candidates.begin(), candidates.end());
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
}

char* generate(const char* text, int state) {
  static std::size_t i;
  static std::string prefix;
  if (state == 0) {
    i = 0;
    prefix = text;
  }
  while (i < candidates.size()) {
    const auto& c = candidates[i++];
    if (c.compare(0, prefix.size(), prefix) == 0)
      return ::strdup(c.c_str());
  }
  return nullptr;
}

char** complete(const char* text, int start, int) {
  ::rl_attempted_completion_over = 1; // no file names
  std::string before(::rl_line_buffer, static_cast<std::size_t>(start));
  std::stringstream in(before);
  std::vector<std::string> w;
  for (std::string s; in >> s;)
    w.push_back(s);
  // watch <command ...>: complete as the command after it.
  if (!w.empty() && w[0] == "watch")
    w.erase(w.begin());
  if (w.size() > 1)
    return nullptr;
  refresh_candidates(w.empty() ? std::string() : w[0]);
  return ::rl_completion_matches(text, generate);
}

const char* help_text =
    "  overview                 actors by kind, top mailboxes, messages/s, store-worker queues\n"
    "  peers                    the peers of the accounts this replica holds\n"
    "  peer <id|key|name>       session, stream, last map, the last messages it handled\n"
    "  account <id>             serial, connected peers, last fan-out, pending changes\n"
    "  replicas                 replicas, leases, peers held\n"
    "  watch <command>          refresh every second until Ctrl-C\n"
    "  trace <peer>             the peer actor's messages as they happen, until Ctrl-C\n"
    "  quit                     (or Ctrl-D)\n";

int console(connection& c, const options& o) {
  completion_conn = &c;
  ::rl_attempted_completion_function = complete;
  ::rl_readline_name = "netbird-mgmt-inspect";
  std::string hist;
  if (const char* home = std::getenv("HOME"); home && *home) {
    hist = std::string(home) + "/.netbird-mgmt-inspect_history";
    ::read_history(hist.c_str());
  }
  std::cout << "netbird-mgmt inspector (help: commands, Tab completes, Ctrl-D quits)\n";
  int rc = 0;
  for (;;) {
    interrupted = false;
    char* line = ::readline("inspect> ");
    if (!line)
      break;
    std::string l = line;
    std::free(line);
    std::stringstream in(l);
    std::vector<std::string> w;
    for (std::string s; in >> s;)
      w.push_back(s);
    if (w.empty())
      continue;
    ::add_history(l.c_str());
    if (!hist.empty())
      ::write_history(hist.c_str());
    if (w[0] == "quit" || w[0] == "exit")
      break;
    if (w[0] == "help") {
      std::cout << help_text;
      continue;
    }
    if (run_command(c, w, o, true) == 3) {
      std::cerr << "the server closed the connection\n";
      rc = 1;
      break;
    }
  }
  return rc;
}

int usage(const char* why) {
  if (why)
    std::cerr << "Error: " << why << "\n";
  std::cerr << "usage: netbird-mgmt inspect [--config FILE] [--datadir DIR] [--addr HOST:PORT] "
               "[--token-file F] [--json] [--interval S] [COMMAND ...]\n"
               "The address: --addr, else NBM_INSPECTOR_ADDR, else the config's InspectorAddress, "
               "else what the server wrote to <datadir>/inspector.addr, else 127.0.0.1:33079.\n"
               "commands:\n"
            << help_text;
  return 2;
}

// Where the server's inspector listens, as the server decides it (server/cli.hpp): --addr, else
// NBM_INSPECTOR_ADDR, else the config's InspectorAddress; an address with port 0 (chosen by the
// system), or none set, is read from <datadir>/inspector.addr, which the server writes when it
// listens; else the default. `why` explains an empty result (turned off).
std::string inspector_address(const options& o, const std::optional<std::string>& from_config,
                              std::string& why) {
  if (!o.addr.empty())
    return o.addr;
  const char* env = std::getenv("NBM_INSPECTOR_ADDR");
  const auto choice = resolve_inspector_address(
      std::nullopt, env ? std::optional<std::string>(env) : std::nullopt, from_config);
  const bool any_port =
      choice.address.size() > 2 && choice.address.compare(choice.address.size() - 2, 2, ":0") == 0;
  if (choice.configured() && !choice.address.empty() && !any_port)
    return choice.address;
  namespace fs = std::filesystem;
  if (auto bound = read_line_of((fs::path(o.datadir) / "inspector.addr").string()); !bound.empty())
    return bound;
  if (choice.address.empty()) {
    why = "the inspector is turned off (" + choice.source +
          "); pass --addr if the server listens anyway";
    return {};
  }
  if (any_port) {
    why = "the inspector listens on a port the system chose (" + choice.source + "), and " +
          (fs::path(o.datadir) / "inspector.addr").string() +
          " does not say which: is the server running with this --datadir?";
    return {};
  }
  return choice.address;
}

} // namespace

int run_inspect(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc)
        return false;
      out = argv[++i];
      return true;
    };
    if (a == "--json")
      o.json_out = true;
    else if (a == "--datadir") {
      if (!value(o.datadir))
        return usage("--datadir needs a directory");
      o.datadir_set = true;
    } else if (a == "--config") {
      if (!value(o.config))
        return usage("--config needs a file");
      o.config_set = true;
    } else if (a == "--addr" || a == "--inspector-addr") {
      if (!value(o.addr) || o.addr.empty())
        return usage("--addr needs host:port");
    } else if (a == "--token-file") {
      if (!value(o.token_file))
        return usage("--token-file needs a file");
    } else if (a == "--interval") {
      std::string v;
      if (!value(v) || (o.interval = std::atof(v.c_str())) <= 0)
        return usage("--interval needs seconds");
    } else if (a == "-h" || a == "--help")
      return usage(nullptr);
    else if (!a.empty() && a[0] == '-' && o.command.empty())
      return usage(("unknown flag " + a.substr(0, 32)).c_str());
    else
      o.command.push_back(a);
  }
  // The server's config: its InspectorAddress, and its Datadir when --datadir is not given (as
  // the server decides: server/cli.hpp effective_datadir). The default file is read when it can
  // be; one named with --config must be.
  std::optional<std::string> from_config;
  if (o.config_set || std::filesystem::exists(o.config)) {
    try {
      auto cfg = config::load_file(o.config);
      from_config = cfg.inspector_address;
      if (!o.datadir_set && !cfg.datadir.empty())
        o.datadir = cfg.datadir;
    } catch (const std::exception& e) {
      if (o.config_set) {
        std::cerr << "Error: " << e.what() << "\n";
        return 1;
      }
    }
  }
  namespace fs = std::filesystem;
  std::string why;
  const auto addr = inspector_address(o, from_config, why);
  if (addr.empty()) {
    std::cerr << "Error: " << why << "\n";
    return 1;
  }
  if (o.token_file.empty())
    o.token_file = (fs::path(o.datadir) / "inspector.token").string();
  const auto token = read_line_of(o.token_file);
  if (token.empty()) {
    std::cerr << "Error: cannot read the inspector token from " << o.token_file
              << " (the server creates it in its datadir: pass --datadir or --token-file; "
                 "reading it needs the server's user)\n";
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  connection c;
  if (std::string err; !c.open(addr, token, err)) {
    std::cerr << "Error: " << err << "\n";
    return 1;
  }
  if (o.command.empty())
    return console(c, o);
  const int rc = run_command(c, o.command, o, false);
  if (rc == 3)
    std::cerr << "Error: the server closed the connection\n";
  return rc == 0 ? 0 : 1;
}

} // namespace nbm::server
