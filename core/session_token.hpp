// Session tokens: the fencing token of a peer's Sync stream is its open time in Unix nanoseconds,
// made strictly increasing within one process so two streams opened in the same nanosecond still
// differ.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace nbm::core {

using session_token = std::int64_t;

// max(now_ns, last + 1), lock-free; safe to call from any thread.
class session_clock {
public:
  session_token next() {
    const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    session_token last = last_.load(std::memory_order_relaxed);
    session_token want;
    do {
      want = now > last ? now : last + 1;
    } while (!last_.compare_exchange_weak(last, want, std::memory_order_relaxed));
    return want;
  }

private:
  std::atomic<session_token> last_{0};
};

} // namespace nbm::core
