// cluster: the replicas of one PostgreSQL store tell each other what they committed (see
// interfaces.hpp, cluster_actor). A thread of its own holds a libpq connection (storage/
// notify_link) that LISTENs on the store's channel and NOTIFYs what this replica publishes
// (core/cluster_note payloads); the actor hands what other replicas published to the directory
// (account and peer actors) and the expiry actor, and after every (re)connect of the listener has
// the loader compare every loaded account's serial with the store's (what was missed meanwhile).
// Never on SQLite.
#pragma once

#include "actors/interfaces.hpp"

#include <caf/fwd.hpp>

#include <chrono>
#include <cstdint>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

namespace nbm::actors {

struct cluster_config {
  std::string dsn;       // the store's (PostgreSQL); never logged
  std::string replica;   // this replica's id (no blanks); its own notifications are skipped
  account_loader loader; // compares the loaded accounts' serials after a (re)connect
  expiry_actor expiry;   // other replicas' landed sessions and account writes (may be invalid)
  std::chrono::milliseconds retry{1000};     // between connection attempts
  std::chrono::milliseconds idle_ping{5000}; // a quiet connection is checked this often
};

cluster_actor spawn_cluster(caf::actor_system& sys, cluster_config cfg);

// A replica id: NBM_REPLICA_ID when set (blanks and commas replaced), else the host name and a
// random suffix.
std::string make_replica_id();

// The notification lag buckets (ms) of cluster_state_record and nbm_cluster_notification_lag_ms.
inline constexpr std::int64_t cluster_lag_buckets_ms[] = {1,  2,   5,   10,   25,
                                                          50, 100, 250, 1000, 5000};

// What the cluster actor reports about itself (kind "cluster"), besides the lag buckets (counters
// "lag_le_<ms>").
struct cluster_state_record {
  std::string replica;
  bool listening = false;            // the LISTEN connection is up
  std::uint64_t sent = 0;            // notifications published
  std::uint64_t events_sent = 0;     // account writes and sessions in them
  std::uint64_t received = 0;        // notifications of other replicas
  std::uint64_t events_received = 0; // account writes and sessions in them
  std::uint64_t malformed = 0;       // payloads (or lines) that could not be read
  std::uint64_t connects = 0;        // LISTEN connections made (the first one included)
  std::uint64_t dropped = 0;         // events not published (queue full while disconnected)
  std::int64_t lag_last_ms = 0;      // publish time in the payload -> handled here
  std::int64_t lag_max_ms = 0;
  std::uint64_t lag_sum_ms = 0;
};

template <class V>
void fields(V& v, cluster_state_record& r) {
  v.label("replica", r.replica);
  v.gauge("listening", r.listening);
  v.counter("sent", r.sent);
  v.counter("events_sent", r.events_sent);
  v.counter("received", r.received);
  v.counter("events_received", r.events_received);
  v.counter("malformed", r.malformed);
  v.counter("connects", r.connects);
  v.counter("dropped", r.dropped);
  v.gauge("lag_last_ms", r.lag_last_ms);
  v.gauge("lag_max_ms", r.lag_max_ms);
  v.counter("lag_sum_ms", r.lag_sum_ms);
}

// The listener thread and what it shares with the actor (defined in actors/cluster.cpp).
struct cluster_link;

// Its state (actors/cluster.cpp has the behavior).
struct cluster_state {
  cluster_config cfg;
  cluster_state_record rec;
  std::vector<std::uint64_t> lag_buckets =
      std::vector<std::uint64_t>(std::size(cluster_lag_buckets_ms) + 1, 0);
  peer_directory dir;
  std::shared_ptr<cluster_link> link; // the listener thread (actors/cluster.cpp)
  static inline const char* name = "cluster";
};

} // namespace nbm::actors
