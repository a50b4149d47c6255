// What the multi-process benchmarks share: a free loopback port, a command's output, a field of
// the admin CLI's "name: value" output, and a server process started on ports of its own with
// its log in its directory.
#pragma once

#include "tests/support/free_port.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <unistd.h>

namespace nbm::tools {

using test::free_port; // a TCP port on 127.0.0.1 that was free a moment ago

// The standard output of `cmd` run by the shell ("" when it cannot be run).
inline std::string run_command(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p)
    return out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p))
    out += buf;
  ::pclose(p);
  return out;
}

// The value of the line "name: value" in `text` ("" when there is none).
inline std::string field(const std::string& text, const std::string& name) {
  auto pos = text.find(name + ": ");
  if (pos == std::string::npos)
    return "";
  auto end = text.find('\n', pos);
  return text.substr(pos + name.size() + 2, end - pos - name.size() - 2);
}

// `bin management` with `config` and datadir `dir` on `port` and `metrics_port` (legacy port
// off, info logs appended to dir/server.log), forked; the child's pid.
inline pid_t spawn_server(const std::string& bin, const std::string& config, const std::string& dir,
                          int port, int metrics_port) {
  const std::string log = dir + "/server.log";
  std::fflush(stdout);
  const pid_t pid = ::fork();
  if (pid != 0)
    return pid;
  FILE* f = std::freopen(log.c_str(), "a", stdout);
  (void)f;
  ::dup2(::fileno(stdout), 2);
  std::vector<std::string> all = {bin,
                                  "management",
                                  "--config",
                                  config,
                                  "--datadir",
                                  dir,
                                  "--port",
                                  std::to_string(port),
                                  "--metrics-port",
                                  std::to_string(metrics_port),
                                  "--log-file",
                                  "console",
                                  "--log-level",
                                  "info",
                                  "--disable-legacy-port"};
  std::vector<char*> argv;
  for (auto& a : all)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execv(bin.c_str(), argv.data());
  std::_Exit(127);
}

} // namespace nbm::tools
