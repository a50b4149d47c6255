// libFuzzer target: the one-port mux's first bytes (server/first_bytes). Every prefix of the input
// up to twice first_bytes_max is classified, and the answers must agree with what the mux relies
// on, whatever way TCP splits the bytes:
//   - a prefix of first_bytes_max bytes or more is never `undecided`;
//   - once a prefix is decided, every longer prefix gets the same answer (the mux may decide on
//     any of them, depending on how many bytes have arrived);
//   - the same prefix always gets the same answer, and every answer has a name.
// Seeds: tests/fuzz/corpus/first_bytes/.
#include "server/first_bytes.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace {

using nbm::server::first_bytes;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_first_bytes: check failed: %s\n", what);
    std::abort();
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  const std::size_t upto = std::min(size, 2 * nbm::server::first_bytes_max);
  bool decided = false;
  first_bytes decision = first_bytes::undecided;
  for (std::size_t n = 0; n <= upto; ++n) {
    const auto prefix = all.substr(0, n);
    const auto b = nbm::server::classify_first_bytes(prefix);
    check(b == nbm::server::classify_first_bytes(prefix), "not deterministic");
    check(nbm::server::to_string(b) != nullptr, "an answer without a name");
    if (n >= nbm::server::first_bytes_max)
      check(b != first_bytes::undecided, "undecided after first_bytes_max bytes");
    if (decided)
      check(b == decision, "a longer prefix changed a decided answer");
    else if (b != first_bytes::undecided) {
      decided = true;
      decision = b;
    }
  }
  // The whole input as the mux never peeks it (longer than it reads): still total.
  (void)nbm::server::classify_first_bytes(all);
  return 0;
}
