// The last messages one actor handled, for the inspector (`peer`, `trace`): a fixed ring of plain
// entries written in place. Noting a message costs one clock read and a few stores: no
// allocation, no lock (only the owning actor writes it, inside its handlers). Rendered to text
// only when someone asks (the actor's status answer).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>

namespace nbm::actors {

// What a peer actor handled ("in": a message to it) or sent on ("out": to its stream / account).
enum class ring_event : std::uint8_t {
  connect,    // in: a Sync stream's connect(token)
  disconnect, // in: the stream ended
  retry,      // in: a disconnect tried again
  map,        // in: a map for the current session (out: handed to the stream)
  map_stale,  // in: a map for an older session (dropped)
  close,      // in: the account actor ended the stream
  landed,     // in: the fenced write landed (the answer of the status writer)
  not_landed, // in: the fence refused the write (a newer session elsewhere)
  attach,     // out: the landed session attached to the account actor
};

inline const char* to_string(ring_event e) {
  switch (e) {
  case ring_event::connect:
    return "connect";
  case ring_event::disconnect:
    return "disconnect";
  case ring_event::retry:
    return "retry";
  case ring_event::map:
    return "map";
  case ring_event::map_stale:
    return "map_stale";
  case ring_event::close:
    return "close";
  case ring_event::landed:
    return "landed";
  case ring_event::not_landed:
    return "not_landed";
  case ring_event::attach:
    return "attach";
  }
  return "?";
}

// "out" for what the actor sent on (attach), "in" for what it handled.
inline const char* direction(ring_event e) {
  return e == ring_event::attach ? "out" : "in";
}

template <std::size_t N>
class msg_ring {
public:
  struct entry {
    std::uint64_t seq = 0;    // 1, 2, ... (0: empty slot)
    std::int64_t at_ms = 0;   // wall clock, ms since the epoch
    std::uint64_t token = 0;  // the session it concerned
    std::uint64_t serial = 0; // a map's serial (0: none)
    ring_event what = ring_event::connect;
  };

  void note(ring_event what, std::uint64_t token, std::uint64_t serial = 0) noexcept {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    auto& e = ring_[seq_ % N];
    e.seq = ++seq_;
    e.at_ms = ms;
    e.token = token;
    e.serial = serial;
    e.what = what;
  }

  std::uint64_t seq() const noexcept { return seq_; }
  // The entry noted last (seq 0: none yet).
  const entry& last() const noexcept { return ring_[(seq_ + N - 1) % N]; }

  // The entries after `since`, oldest first: "seq at_ms what token serial" joined by ';'.
  std::string render(std::uint64_t since = 0) const {
    std::string out;
    const std::uint64_t first = seq_ > N ? seq_ - N + 1 : 1;
    for (std::uint64_t s = std::max(first, since + 1); s <= seq_; ++s) {
      const auto& e = ring_[(s - 1) % N];
      if (!out.empty())
        out += ';';
      out += std::to_string(e.seq) + ' ' + std::to_string(e.at_ms) + ' ' + to_string(e.what) + ' ' +
             std::to_string(e.token) + ' ' + std::to_string(e.serial);
    }
    return out;
  }

private:
  std::array<entry, N> ring_{};
  std::uint64_t seq_ = 0;
};

} // namespace nbm::actors
