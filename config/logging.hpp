// Logging as NetBird's util.InitLog sets it up, on spdlog: --log-level takes logrus' level names,
// --log-file a path (rotated at NB_LOG_MAX_SIZE_MB, default 15 MB, 10 old files kept; plain append
// with NB_LOG_DISABLE_ROTATION=true), "console" or "syslog". Every layer logs through its own
// named logger (layer_logger("storage")) sharing the same sinks and level.
#pragma once

#include "config/config.hpp"

#include <memory>
#include <optional>
#include <string>

namespace spdlog {
class logger;
}

namespace nbm::config {

// logrus levels, most verbose first.
enum class log_level { trace, debug, info, warn, error, fatal, panic };

// logrus.ParseLevel: panic, fatal, error, warn|warning, info, debug, trace, case-insensitive.
std::optional<log_level> parse_log_level(const std::string& text);
const char* to_string(log_level level);

// Points all logging at `log_file`:
// - "console": stdout, no colours (NetBird's console log goes to stderr; this project's README and
//   the container's `--log-file console` read it on stdout);
// - "stderr": stderr (netbird-mgmt only; the admin commands keep stdout for their output);
// - "syslog": the local syslog (ident netbird-mgmt);
// - "": left as it is (NetBird warns and keeps its default output, stderr);
// - anything else: a file, parent directories created.
// `level` as parse_log_level accepts. Throws config_error naming the file when it cannot be
// created or written, or the level when it is unknown. May be called again (tests, reload): the
// default logger and every layer logger move to the new sinks.
void setup_logging(const std::string& log_file, const std::string& level,
                   const env_getter& env = process_env());

// The logger of one layer ("grpc", "storage", "actors", ...): created on first use with the sinks
// and level of the last setup_logging (stderr at info before any).
std::shared_ptr<spdlog::logger> layer_logger(const std::string& layer);

} // namespace nbm::config
