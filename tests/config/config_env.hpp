// Helpers of the config tests: an injected environment, never the machine's.
#pragma once

#include "config/config.hpp"

#include <map>
#include <string>

namespace nbm::test {

inline config::env_getter env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& k) -> std::optional<std::string> {
    auto it = vars.find(k);
    if (it == vars.end())
      return std::nullopt;
    return it->second;
  };
}

inline const config::env_getter& no_env() {
  static const config::env_getter empty = env_of({});
  return empty;
}

// The message of the config_error `f` throws ("no error" when it does not throw).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const config::config_error& e) {
    return e.what();
  }
  return "no error";
}

} // namespace nbm::test
