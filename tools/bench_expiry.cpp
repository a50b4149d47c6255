// bench_expiry: what the expiry actor's book of deadlines costs for many scheduled peers — heap
// memory per peer (measured with glibc's mallinfo2, and the book's own estimate), and the
// throughput of scheduling, of the reschedules landed sessions cause (connect cancels, disconnect
// restarts), of cancelling, and of taking due deadlines.
//
//   bench_expiry [peers=100000] [accounts=1000]
#include "core/expiry.hpp"

#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace nbm::core;

namespace {

std::size_t heap_in_use() {
  return mallinfo2().uordblks;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// An xid-shaped 20-character id, as NetBird's.
std::string id_of(const char* prefix, std::size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%016zx", prefix, i);
  return buf;
}

} // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100000;
  const std::size_t accounts = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 1000;
  constexpr unix_ns sec = 1'000'000'000;
  const unix_ns t0 = 1714557600 * sec;

  // The peers as the store would give them: a third ephemeral (one deadline while disconnected),
  // two thirds SSO with login and inactivity expiration (two deadlines while disconnected).
  std::vector<lifecycle_facts> rows(n);
  for (std::size_t i = 0; i < n; ++i) {
    auto& f = rows[i];
    f.account_id = id_of("acct", i % accounts);
    f.peer_id = id_of("peer", i);
    f.settings = {true, 24 * 3600 * sec, true, 600 * sec}; // every row carries its account's
    if (i % 3 == 0) {
      f.ephemeral = true;
    } else {
      f.sso = f.login_expiration_enabled = f.inactivity_expiration_enabled = true;
      f.last_login = "2024-05-01 10:00:00." + std::to_string(100000 + i % 900000) + "+00:00";
    }
    f.last_seen = "2024-05-01 09:" + std::to_string(10 + i % 50) + ":00+00:00";
  }

  const std::size_t before = heap_in_use();
  expiry_book book;
  auto t = std::chrono::steady_clock::now();
  for (const auto& f : rows)
    book.upsert(f);
  const double schedule_s = seconds_since(t);
  const std::size_t used = heap_in_use() - before;
  std::printf("peers scheduled: %zu in %zu accounts, %zu deadlines\n", book.peers(),
              book.accounts(), book.scheduled());
  std::printf("heap in use: %.1f MiB = %.0f bytes per scheduled peer (book's estimate: %.0f)\n",
              used / 1048576.0, double(used) / n, double(book.memory_bytes()) / n);
  std::printf("schedule (upsert from store rows): %.0f peers/s\n", n / schedule_s);

  // Landed sessions: every peer connects (cancels its inactivity / cleanup deadline) and
  // disconnects again (restarts them).
  t = std::chrono::steady_clock::now();
  for (const auto& f : rows)
    book.on_connect(f.peer_id);
  for (std::size_t i = 0; i < n; ++i)
    book.on_disconnect(rows[i].peer_id, t0 + static_cast<unix_ns>(i));
  const double churn_s = seconds_since(t);
  std::printf("landed connect + disconnect (cancel + reschedule): %.0f peers/s\n", n / churn_s);
  std::printf("heap in use after the churn: %.0f bytes per peer\n",
              double(heap_in_use() - before) / n);

  t = std::chrono::steady_clock::now();
  std::size_t next_calls = 0;
  for (std::size_t i = 0; i < n; ++i)
    next_calls += book.next().has_value();
  std::printf("next deadline: %.0f lookups/s\n", next_calls / seconds_since(t));

  // Everything comes due.
  t = std::chrono::steady_clock::now();
  auto due = book.take_due(t0 + 365LL * 24 * 3600 * sec);
  const double due_s = seconds_since(t);
  std::printf("take due: %zu deadlines at %.0f/s\n", due.size(), due.size() / due_s);

  // Cancel: every peer forgotten.
  t = std::chrono::steady_clock::now();
  for (const auto& f : rows)
    book.forget(f.peer_id);
  std::printf("cancel (forget a peer): %.0f peers/s; %zu peers left\n", n / seconds_since(t),
              book.peers());
  return 0;
}
