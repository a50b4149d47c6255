// libFuzzer target: the config parser (management.json / YAML) as the server runs it at start.
// load_text promises config_error for every bad input: any other exception, a crash or a sanitizer
// report is a finding. Also: Go durations and IP prefixes from the same bytes, where a duration
// that parses must print (format_go_duration) as text that parses back to itself.
// Seeds: tests/fuzz/corpus/config/.
#include "config/config.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace {

using namespace nbm;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_config: check failed: %s\n", what);
    std::abort();
  }
}

// A fixed environment: templates see a set, an empty and an unset variable.
std::optional<std::string> env(const std::string& name) {
  if (name == "NB_SET")
    return std::string("value");
  if (name == "NB_EMPTY")
    return std::string();
  return std::nullopt;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto cfg = config::load_text(text, "fuzz.json", env);
    (void)config::auth_audiences(cfg);
    config::oidc_configuration oidc{"https://idp.example/", "https://idp.example/token",
                                    "https://idp.example/device", "https://idp.example/jwks",
                                    "https://idp.example/authorize"};
    config::apply_oidc_configuration(cfg, oidc);
  } catch (const config::config_error&) {
  }

  try {
    const auto d = config::parse_go_duration(text);
    const auto printed = config::format_go_duration(d);
    check(config::parse_go_duration(printed) == d, "a printed duration parses differently");
  } catch (const std::invalid_argument&) {
  }
  (void)config::valid_ip_prefix(text);
  return 0;
}
