// Waiting for what happens on other threads without polling: whatever a test records from another
// thread (a sink handed a map, an observer told of a write) calls `test::changed()` after
// recording it, and `NBM_WAIT_UNTIL(condition)` checks its condition again at each such call until
// it holds, or fails the test once the deadline (10 s) passes. Header-only.
//
// The condition runs with the signal's lock held: it may lock what the recorders lock (they take
// the signal's lock only after releasing theirs), but it must not wait for an actor (an actor
// calling `changed()` would wait for the lock the condition holds).
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace nbm::test {

inline constexpr std::chrono::seconds wait_deadline{10};

struct change_signal {
  std::mutex mu;
  std::condition_variable cv;
};

inline change_signal& signal() {
  static change_signal s;
  return s;
}

// Wakes every waiter to check its condition again. Call it after recording, outside your lock.
inline void changed() {
  auto& s = signal();
  { std::lock_guard<std::mutex> lk(s.mu); } // a waiter between its check and its wait has it
  s.cv.notify_all();
}

// Whether `pred` held within the deadline (checked now and after every `changed()`).
template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds deadline = wait_deadline) {
  auto& s = signal();
  std::unique_lock<std::mutex> lk(s.mu);
  return s.cv.wait_for(lk, deadline, pred);
}

} // namespace nbm::test

// Requires the condition to hold within the deadline; the failure names the condition.
#define NBM_WAIT_UNTIL(...)                                                                        \
  REQUIRE_MESSAGE(::nbm::test::wait_until([&] { return static_cast<bool>(__VA_ARGS__); }),         \
                  "waited 10 s in vain for: " #__VA_ARGS__)
