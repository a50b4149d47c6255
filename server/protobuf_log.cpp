#include "server/protobuf_log.hpp"

#include "config/logging.hpp"

#include <google/protobuf/stubs/logging.h>
#include <spdlog/spdlog.h>

#include <string>

namespace nbm::server {

namespace {

void to_spdlog(google::protobuf::LogLevel level, const char* file, int line,
               const std::string& message) {
  static const auto log = config::layer_logger("grpc");
  if (level == google::protobuf::LOGLEVEL_FATAL)
    log->error("libprotobuf {}:{}: {}", file, line, message);
  else
    log->debug("libprotobuf: {}", message);
}

} // namespace

void route_protobuf_logs() {
  google::protobuf::SetLogHandler(&to_spdlog);
}

} // namespace nbm::server
