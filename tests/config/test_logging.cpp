// --log-file / --log-level onto spdlog.
#include "config/logging.hpp"
#include "tests/config/config_env.hpp"
#include "tests/support/test_db.hpp"

#include <doctest/doctest.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <sstream>

using namespace nbm;
using test::env_of;
using test::error_of;
using test::no_env;

namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

} // namespace

TEST_CASE("logging: logrus level names") {
  using config::log_level;
  CHECK(config::parse_log_level("panic") == log_level::panic);
  CHECK(config::parse_log_level("fatal") == log_level::fatal);
  CHECK(config::parse_log_level("error") == log_level::error);
  CHECK(config::parse_log_level("warn") == log_level::warn);
  CHECK(config::parse_log_level("warning") == log_level::warn);
  CHECK(config::parse_log_level("Info") == log_level::info);
  CHECK(config::parse_log_level("DEBUG") == log_level::debug);
  CHECK(config::parse_log_level("trace") == log_level::trace);
  CHECK_FALSE(config::parse_log_level("verbose").has_value());
  CHECK_FALSE(config::parse_log_level("").has_value());
  CHECK(std::string(config::to_string(log_level::warn)) == "warning");
}

TEST_CASE("logging: a file (parent directories created), levels, layer loggers") {
  namespace fs = std::filesystem;
  const auto dir = fs::path(test::temp_dir()) / "logs" / "nested";
  fs::remove_all(dir);
  const auto file = (dir / "management.log").string();
  for (const auto& env : {no_env(), env_of({{"NB_LOG_DISABLE_ROTATION", "true"}})}) {
    fs::remove_all(dir);
    config::setup_logging(file, "info", env);
    auto storage = config::layer_logger("storage");
    spdlog::info("hello from the default logger");
    spdlog::debug("not at info");
    storage->warn("hello from storage");
    storage->flush();
    spdlog::default_logger()->flush();
    const auto text = read_all(file);
    CHECK(text.find("hello from the default logger") != std::string::npos);
    CHECK(text.find("[netbird-mgmt]") != std::string::npos);
    CHECK(text.find("hello from storage") != std::string::npos);
    CHECK(text.find("[storage]") != std::string::npos);
    CHECK(text.find("not at info") == std::string::npos);
  }
  // A second setup moves existing layer loggers along, with the new level.
  const auto second = (dir / "second.log").string();
  config::setup_logging(second, "debug", no_env());
  config::layer_logger("storage")->debug("debug now visible");
  config::layer_logger("storage")->flush();
  CHECK(read_all(second).find("debug now visible") != std::string::npos);
  CHECK(read_all(file).find("debug now visible") == std::string::npos);
  CHECK(config::layer_logger("storage") == config::layer_logger("storage"));

  // Leave the test binary logging to stderr again.
  config::setup_logging("stderr", "warn", no_env());
}

TEST_CASE("logging: errors name the file or the level") {
  namespace fs = std::filesystem;
  // A parent that is a regular file cannot become a directory (true even for root).
  const auto blocker = fs::path(test::temp_dir()) / "not-a-dir";
  std::ofstream(blocker) << "x";
  const auto path = (blocker / "management.log").string();
  auto e = error_of([&] { config::setup_logging(path, "info", no_env()); });
  CHECK(e.find(path) != std::string::npos);
  CHECK(e.find("failed setting up log file") != std::string::npos);
  e = error_of([&] { config::setup_logging(test::temp_dir(), "info", no_env()); });
  CHECK(e.find("is a directory") != std::string::npos);
  e = error_of([] { config::setup_logging("console", "loud", no_env()); });
  CHECK(e.find("loud") != std::string::npos);
  // Console, stderr and the empty path (NetBird keeps its output and warns) work.
  CHECK_NOTHROW(config::setup_logging("console", "error", no_env()));
  CHECK_NOTHROW(config::setup_logging("", "error", no_env()));
  CHECK_NOTHROW(config::setup_logging("stderr", "warn", no_env()));
}
