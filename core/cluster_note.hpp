// What replicas on one PostgreSQL tell each other (LISTEN/NOTIFY, actors/cluster): committed
// account changes and landed sessions, as compact text payloads of at most `max_payload` bytes
// (PostgreSQL refuses more than 8000). Ids, serials and session tokens only: never a key, a token
// of a user or any other secret. Pure and total: decode takes any bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nbm::core {

// A committed write to an account.
struct account_note {
  std::string account_id;
  std::uint64_t serial = 0;       // the store's network serial after the write (0: unknown)
  std::uint64_t moved = 0;        // how much this write moved the serial
  unsigned parts = 0;             // storage::account_store::part bits written (besides `peers`)
  std::vector<std::string> peers; // peers the write added, changed or removed (read by id)
  bool operator==(const account_note&) const = default;
};

// A landed (committed) session write of a peer.
struct session_note {
  std::string account_id, peer_id;
  std::int64_t token = 0;
  bool connected = false;
  bool operator==(const session_note&) const = default;
};

// One payload: who published it, when (Unix ns, for the lag), and what.
struct cluster_message {
  std::string replica;
  std::int64_t published_ns = 0;
  std::vector<account_note> accounts;
  std::vector<session_note> sessions;
  std::size_t malformed = 0; // lines that could not be read (skipped)
};

constexpr std::size_t max_payload = 7900;

// The notes as few payloads as fit, each at most `max_payload` bytes, in order. An account note
// whose peer list alone would not fit is sent without its peers and with every part set (the
// receivers read the whole account). Ids with blanks or control characters are never sent (such a
// note is left out: the receivers' serial poll still finds its change).
std::vector<std::string> encode_cluster(const std::string& replica, std::int64_t published_ns,
                                        const std::vector<account_note>& accounts,
                                        const std::vector<session_note>& sessions);

// nullopt when the payload is not one of ours (another header, a version we do not know).
std::optional<cluster_message> decode_cluster(std::string_view payload);

} // namespace nbm::core
