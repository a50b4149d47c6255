#include "config/logging.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>

#include <syslog.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <mutex>
#include <vector>

namespace nbm::config {

namespace {

constexpr const char* default_logger_name = "netbird-mgmt";
constexpr const char* pattern = "%Y-%m-%dT%H:%M:%S.%e%z %l [%n] %v";

struct logging_state {
  std::mutex mutex;
  std::vector<spdlog::sink_ptr> sinks;
  spdlog::level::level_enum level = spdlog::level::info;
  std::map<std::string, std::shared_ptr<spdlog::logger>> layers;
};

logging_state& state() {
  static logging_state s;
  return s;
}

spdlog::level::level_enum to_spdlog(log_level l) {
  switch (l) {
  case log_level::trace:
    return spdlog::level::trace;
  case log_level::debug:
    return spdlog::level::debug;
  case log_level::info:
    return spdlog::level::info;
  case log_level::warn:
    return spdlog::level::warn;
  case log_level::error:
    return spdlog::level::err;
  case log_level::fatal:
  case log_level::panic:
    break;
  }
  return spdlog::level::critical;
}

void configure(spdlog::logger& logger, spdlog::level::level_enum level) {
  logger.set_level(level);
  logger.set_pattern(pattern);
  logger.flush_on(spdlog::level::info);
}

std::vector<spdlog::sink_ptr> make_sinks(const std::string& log_file, const env_getter& env) {
  if (log_file == "console")
    return {std::make_shared<spdlog::sinks::stdout_sink_mt>()};
  if (log_file == "stderr")
    return {std::make_shared<spdlog::sinks::stderr_sink_mt>()};
  if (log_file == "syslog")
    return {std::make_shared<spdlog::sinks::syslog_sink_mt>(default_logger_name, LOG_PID, LOG_USER,
                                                            true)};
  namespace fs = std::filesystem;
  const fs::path path = log_file;
  std::error_code ec;
  if (const auto parent = path.parent_path(); !parent.empty()) {
    fs::create_directories(parent, ec);
    if (ec)
      throw config_error("failed setting up log file: " + log_file + ": cannot create " +
                         parent.string() + ": " + ec.message());
  }
  if (fs::is_directory(path, ec))
    throw config_error("failed setting up log file: " + log_file + ": is a directory");

  bool rotate = true;
  if (auto v = env("NB_LOG_DISABLE_ROTATION")) {
    std::string s = *v;
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (s == "1" || s == "t" || s == "true") // Go's strconv.ParseBool
      rotate = false;
  }
  std::size_t max_mb = 15;
  if (auto v = env("NB_LOG_MAX_SIZE_MB")) {
    try {
      std::size_t pos = 0;
      const long long mb = std::stoll(*v, &pos);
      if (pos == v->size() && mb > 0)
        max_mb = static_cast<std::size_t>(mb);
    } catch (const std::exception&) {
      // NetBird logs the bad value and keeps the default.
    }
  }
  try {
    if (!rotate)
      return {std::make_shared<spdlog::sinks::basic_file_sink_mt>(log_file, false)};
    return {
        std::make_shared<spdlog::sinks::rotating_file_sink_mt>(log_file, max_mb * 1024 * 1024, 10)};
  } catch (const spdlog::spdlog_ex& e) {
    throw config_error("failed setting up log file: " + log_file + ": " + e.what());
  }
}

} // namespace

std::optional<log_level> parse_log_level(const std::string& text) {
  std::string s = text;
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (s == "panic")
    return log_level::panic;
  if (s == "fatal")
    return log_level::fatal;
  if (s == "error")
    return log_level::error;
  if (s == "warn" || s == "warning")
    return log_level::warn;
  if (s == "info")
    return log_level::info;
  if (s == "debug")
    return log_level::debug;
  if (s == "trace")
    return log_level::trace;
  return std::nullopt;
}

const char* to_string(log_level level) {
  switch (level) {
  case log_level::trace:
    return "trace";
  case log_level::debug:
    return "debug";
  case log_level::info:
    return "info";
  case log_level::warn:
    return "warning";
  case log_level::error:
    return "error";
  case log_level::fatal:
    return "fatal";
  case log_level::panic:
    break;
  }
  return "panic";
}

void setup_logging(const std::string& log_file, const std::string& level, const env_getter& env) {
  const auto parsed = parse_log_level(level);
  if (!parsed)
    throw config_error("failed parsing log-level " + level + ": not a valid logrus Level: \"" +
                       level + "\" (use panic, fatal, error, warn, info, debug or trace)");
  const auto lvl = to_spdlog(*parsed);
  auto& st = state();
  std::lock_guard<std::mutex> lock(st.mutex);
  // NetBird warns about an empty path and keeps its current output.
  const bool keep = log_file.empty();
  if (!keep)
    st.sinks = make_sinks(log_file, env);
  else if (st.sinks.empty())
    st.sinks = {std::make_shared<spdlog::sinks::stderr_sink_mt>()};
  st.level = lvl;

  auto main =
      std::make_shared<spdlog::logger>(default_logger_name, st.sinks.begin(), st.sinks.end());
  configure(*main, lvl);
  spdlog::set_default_logger(main);
  for (auto& [name, logger] : st.layers) {
    logger->sinks() = st.sinks;
    configure(*logger, lvl);
  }
  if (keep)
    main->warn("empty log path received: \"\"");
}

std::shared_ptr<spdlog::logger> layer_logger(const std::string& layer) {
  auto& st = state();
  std::lock_guard<std::mutex> lock(st.mutex);
  if (auto it = st.layers.find(layer); it != st.layers.end())
    return it->second;
  if (st.sinks.empty())
    st.sinks = {std::make_shared<spdlog::sinks::stderr_sink_mt>()};
  auto logger = std::make_shared<spdlog::logger>(layer, st.sinks.begin(), st.sinks.end());
  configure(*logger, st.level);
  st.layers.emplace(layer, logger);
  return logger;
}

} // namespace nbm::config
