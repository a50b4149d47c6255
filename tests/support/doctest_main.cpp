#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <spdlog/spdlog.h>

// Test binaries log warnings and errors only (NBM_TEST_LOG=debug for everything).
int main(int argc, char** argv) {
  const char* level = std::getenv("NBM_TEST_LOG");
  spdlog::set_level(level ? spdlog::level::from_str(level) : spdlog::level::warn);
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
