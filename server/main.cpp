// netbird-mgmt: command line -> config -> logging -> run.
#include "config/config.hpp"
#include "config/logging.hpp"
#include "server/admin.hpp"
#include "server/cli.hpp"
#include "server/inspect_client.hpp"
#include "server/run.hpp"

#include <csignal>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
  // `netbird-mgmt inspect`: the console, a client of a running server (its own flags, Ctrl-C).
  if (argc > 1 && std::string(argv[1]) == "inspect")
    return nbm::server::run_inspect(argc - 1, argv + 1);
  // Block the stop signals (and SIGHUP, the reload) before any thread exists, so only
  // run_management's sigtimedwait sees them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  auto parsed = nbm::server::parse_cli(argc, argv);
  std::cout << parsed.out << std::flush;
  std::cerr << parsed.err << std::flush;
  if (!parsed.options && !parsed.admin)
    return parsed.exit_code; // help, version, or a command-line error (already printed)

  try {
    if (parsed.admin) {
      nbm::config::management_config cfg;
      try {
        cfg = nbm::config::load_file(parsed.admin->config_path);
      } catch (const std::exception& e) {
        std::cerr << "Error: " << e.what()
                  << "\n(admin commands read the config the server runs with: pass the same "
                     "--config, e.g. `admin --config data/management.json ...`)\n";
        return 1;
      }
      // Admin commands print their results on stdout: logs go to stderr.
      nbm::config::setup_logging("stderr", parsed.admin->log_level);
      return nbm::server::run_admin(*parsed.admin, std::move(cfg));
    }
    auto opts = *parsed.options;
    auto cfg = nbm::config::load_file(opts.config_path);
    nbm::server::apply_overrides(opts, cfg);
    nbm::config::setup_logging(opts.log_file, opts.log_level);
    return nbm::server::run_management(opts, std::move(cfg));
  } catch (const std::exception& e) {
    std::cerr << "Error: " << e.what() << "\n";
    return 1;
  }
}
