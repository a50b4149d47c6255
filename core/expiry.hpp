// The peer lifecycle rules NetBird applies — login expiration, inactivity expiration and the
// cleanup of ephemeral peers — as pure functions of what the store holds, and the book of their
// deadlines for many peers: one binary heap of 16-byte entries, not a timer per peer. No clock, no
// I/O: callers pass "now" (Unix nanoseconds).
#pragma once

#include "core/model.hpp"

#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace nbm::core {

using unix_ns = std::int64_t;

enum class lifecycle_rule : std::uint8_t {
  login = 0,      // an SSO peer's login expired (last_login + the account's period)
  inactivity = 1, // an SSO peer stayed disconnected longer than the account's period
  ephemeral = 2,  // an ephemeral peer stayed disconnected longer than the lifetime: deleted
};
constexpr std::size_t lifecycle_rule_count = 3;
const char* to_string(lifecycle_rule r);

// NetBird's EphemeralLifeTime.
constexpr unix_ns default_ephemeral_lifetime_ns = 10LL * 60 * 1000 * 1000 * 1000;

// The lifecycle-relevant settings of an account (NetBird's Settings fields).
struct lifecycle_settings {
  bool login_enabled = false;
  std::int64_t login_period_ns = 0;
  bool inactivity_enabled = false;
  std::int64_t inactivity_period_ns = 0;

  bool operator==(const lifecycle_settings&) const = default;
};

// What the rules read of one peer, as stored. The times are the store's text exactly as read: the
// guarded writes compare them, so a decision lands only on the row it was made on.
struct lifecycle_facts {
  std::string account_id, peer_id;
  bool sso = false; // user_id != "" (NetBird's AddedWithSSOLogin)
  bool login_expiration_enabled = false;
  bool inactivity_expiration_enabled = false;
  bool ephemeral = false;
  bool connected = false;
  bool login_expired = false;
  session_token session_started_at = 0;
  opt_time last_login, last_seen;
  lifecycle_settings settings; // of the peer's account

  bool operator==(const lifecycle_facts&) const = default;
};

// Store time text -> Unix nanoseconds (nullopt when it does not parse).
std::optional<unix_ns> store_time_ns(const std::string& text);

// When the peer's login expires: SSO peer, expiration enabled on the peer and in the account, not
// yet marked expired, a last login on record -> last_login + the account's period.
std::optional<unix_ns> login_expiry_at(const lifecycle_facts& f);
// When the peer becomes inactive: SSO peer, inactivity expiration enabled on the peer and in the
// account, disconnected, not yet marked expired -> last_seen + the account's period (a missing
// last_seen counts as long ago, as Go's zero time does).
std::optional<unix_ns> inactivity_expiry_at(const lifecycle_facts& f);
// When an ephemeral peer is deleted: ephemeral, disconnected -> last_seen + lifetime (a missing
// last_seen counts as long ago).
std::optional<unix_ns> ephemeral_cleanup_at(const lifecycle_facts& f, unix_ns lifetime_ns);
std::optional<unix_ns> due_at(const lifecycle_facts& f, lifecycle_rule r, unix_ns lifetime_ns);

// NetBird's peerLoginExpired, the gate of Login and Sync: the login expired by time (SSO peer,
// expiration enabled on the peer and in the account), or the store says so (a login or inactivity
// expiration marked it), whatever the toggles say now.
bool must_log_in_again(const account& a, const peer& p, double now_unix);

// Whether `f` is a peer the lifecycle rules may ever concern (the store's candidate filter):
// ephemeral, or SSO with one of the expirations enabled on the peer.
bool lifecycle_candidate(const lifecycle_facts& f);

// Deadlines of many slots, each with up to one per rule, in one binary min-heap. Moving or
// cancelling a deadline leaves its old heap entry behind; it is skipped when it surfaces (it no
// longer matches the slot's deadline), and the heap is rebuilt when stale entries outnumber live
// ones, so memory stays proportional to the live deadlines.
class deadline_schedule {
public:
  using slot_id = std::uint32_t;
  static constexpr unix_ns none = std::numeric_limits<unix_ns>::min();

  void set(slot_id s, lifecycle_rule r, unix_ns at);
  void cancel(slot_id s, lifecycle_rule r);
  void cancel_all(slot_id s);
  // The slot's deadline for `r`, or nullopt.
  std::optional<unix_ns> at(slot_id s, lifecycle_rule r) const;
  // The earliest live deadline.
  std::optional<unix_ns> next();
  // Removes and returns every live deadline at or before `now`, earliest first.
  std::vector<std::pair<slot_id, lifecycle_rule>> take_due(unix_ns now);

  std::size_t live() const { return live_; }
  std::size_t heap_entries() const { return heap_.size(); }
  std::size_t memory_bytes() const;

private:
  struct entry {
    unix_ns at;
    slot_id slot;
    std::uint8_t rule;
  };
  static bool later(const entry& a, const entry& b) { return a.at > b.at; }
  bool is_live(const entry& e) const;
  void drop_stale_top();
  void maybe_compact();

  std::vector<std::array<unix_ns, lifecycle_rule_count>> due_; // per slot; `none` = no deadline
  std::vector<entry> heap_;
  std::size_t live_ = 0;
};

// The lifecycle book of one process: which peers (of which accounts) have which deadlines.
// Built from the store (derive), kept current by landed session events (on_connect,
// on_disconnect), consulted by the timer (take_due). Peer ids are stored once (as keys of the
// index); a slot is 16 bytes plus its deadlines.
class expiry_book {
public:
  using slot_id = deadline_schedule::slot_id;

  explicit expiry_book(unix_ns ephemeral_lifetime_ns = default_ephemeral_lifetime_ns)
      : lifetime_(ephemeral_lifetime_ns) {}

  unix_ns ephemeral_lifetime() const { return lifetime_; }
  // No ephemeral peer is deleted before `at` (NetBird's loadEphemeralPeers: at start-up every
  // ephemeral peer gets the whole lifetime counted from then, so peers that could not reconnect
  // while no server ran are not deleted on sight). Applies to deadlines computed from now on.
  void ephemeral_not_before(unix_ns at) { ephemeral_floor_ = at; }
  // `due_at` with this book's lifetime and floor: when `r` falls due for the peer as stored.
  std::optional<unix_ns> due(const lifecycle_facts& f, lifecycle_rule r) const;

  // Takes the peer as stored: (re)computes its deadlines from the facts, or forgets it when no
  // rule can concern it. The account's settings come with the facts.
  void upsert(const lifecycle_facts& f);
  // Replaces everything known of the account by `rows` (its candidates, as stored now); peers no
  // longer listed are forgotten. `settings` apply even when `rows` is empty.
  void derive_account(const std::string& account_id, const lifecycle_settings& settings,
                      const std::vector<lifecycle_facts>& rows);
  // The account is gone (or has no candidates any more).
  void forget_account(const std::string& account_id);
  void forget(const std::string& peer_id);

  // A connect landed: the peer is not inactive and not to be cleaned up. Unknown peers: nothing.
  void on_connect(const std::string& peer_id);
  // A disconnect landed at `now`: the ephemeral lifetime and the inactivity period start.
  void on_disconnect(const std::string& peer_id, unix_ns now);

  // Sets one deadline of a known peer directly (a retry after a failure); unknown peers: nothing.
  void set_deadline(const std::string& peer_id, lifecycle_rule r, unix_ns at);

  std::optional<unix_ns> next() { return schedule_.next(); }
  struct due_item {
    std::string account_id, peer_id;
    lifecycle_rule rule;
  };
  // Every deadline at or before `now` (removed from the schedule).
  std::vector<due_item> take_due(unix_ns now);

  std::optional<unix_ns> deadline(const std::string& peer_id, lifecycle_rule r) const;
  bool knows(const std::string& peer_id) const { return index_.count(peer_id) > 0; }
  std::vector<std::string> account_ids() const;
  std::size_t peers() const { return index_.size(); }
  std::size_t accounts() const { return account_index_.size(); }
  std::size_t scheduled() const { return schedule_.live(); }
  // An estimate of the heap memory the book holds (containers and strings), for the benchmark.
  std::size_t memory_bytes() const;

private:
  enum flag : std::uint8_t {
    f_sso = 1,
    f_login = 2,
    f_inactivity = 4,
    f_ephemeral = 8,
    f_connected = 16,
    f_expired = 32,
  };
  struct slot {
    const std::string* peer_id = nullptr; // the key in index_
    std::uint32_t account = 0;
    std::uint8_t flags = 0;
  };
  struct account_entry {
    std::string id;
    lifecycle_settings settings;
    std::vector<slot_id> slots;
  };

  std::uint32_t account_slot(const std::string& account_id);
  void release(slot_id s);
  void schedule_slot(slot_id s, const lifecycle_facts& f);

  unix_ns lifetime_;
  unix_ns ephemeral_floor_ = std::numeric_limits<unix_ns>::min();
  std::unordered_map<std::string, slot_id> index_;
  std::vector<slot> slots_;
  std::vector<slot_id> free_;
  std::vector<account_entry> accounts_;
  std::vector<std::uint32_t> free_accounts_;
  std::unordered_map<std::string, std::uint32_t> account_index_;
  deadline_schedule schedule_;
};

} // namespace nbm::core
