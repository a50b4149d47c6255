// The store side of the peer lifecycle (login expiration, inactivity expiration, ephemeral
// cleanup): reading the candidates the rules may concern, and the two writes the rules decide,
// each FENCED BY THE STORE rather than by timing. A write carries in its WHERE clause exactly the
// facts its decision was based on (the times as read, the connection state, the session token,
// the account's period), so it lands only if the row is still the one observed: a peer that
// reconnected meanwhile — on this replica or another — is never expired or deleted, and two
// replicas deciding at once write once. Each write that lands bumps accounts.network_serial in the
// same transaction (NetBird's IncrementNetworkSerial), which is how other replicas learn of it.
#pragma once

#include "core/expiry.hpp"
#include "storage/database.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace soci {
class session;
}

namespace nbm::storage {

struct account_lifecycle {
  core::lifecycle_settings settings;
  std::vector<core::lifecycle_facts> peers; // the candidates (core::lifecycle_candidate)
};

class lifecycle_store {
public:
  lifecycle_store(soci::session& sql, engine kind) : sql_(sql), kind_(kind) {}

  // Every account's id and network serial.
  std::vector<std::pair<std::string, std::uint64_t>> account_serials();
  // Every candidate peer of every account, with its account's settings.
  std::vector<core::lifecycle_facts> candidates();
  // One account's settings and candidates; nullopt when the account does not exist.
  std::optional<account_lifecycle> account(const std::string& account_id);
  // One peer as the rules see it, candidate or not; nullopt when it does not exist.
  std::optional<core::lifecycle_facts> peer(const std::string& account_id,
                                            const std::string& peer_id);

  // Marks the peer login-expired (and not connected; the session token stays, so its stream's
  // disconnect still lands), for `rule` login or inactivity, only if the row is as `observed`:
  //   login:      SSO, login expiration enabled, not expired, last_login as observed, and the
  //               account's login expiration still enabled with the observed period;
  //   inactivity: SSO, inactivity expiration enabled, not expired, disconnected, last_seen as
  //               observed, and the account's inactivity expiration still enabled with that
  //               period.
  // Returns whether it landed (then the serial was bumped; `serial_after` is the account's serial
  // as this write left it).
  bool mark_login_expired(const core::lifecycle_facts& observed, core::lifecycle_rule rule,
                          std::uint64_t* serial_after = nullptr);

  // Deletes the ephemeral peer with its group memberships, only if it is still ephemeral,
  // disconnected, with the observed session token and last_seen. Returns whether it landed (then
  // the serial was bumped; `serial_after` as with mark_login_expired).
  bool delete_ephemeral(const core::lifecycle_facts& observed,
                        std::uint64_t* serial_after = nullptr);

  // A successful login of the peer: last_login = `when` (store time text), login_expired = false;
  // bumps the serial. Returns whether the peer was there.
  bool record_login(const std::string& account_id, const std::string& peer_id,
                    const std::string& when);

private:
  std::vector<core::lifecycle_facts> select(const std::string& where, const std::string& account,
                                            const std::string& peer);
  std::string time_expr(const std::string& column) const;
  std::uint64_t bump_serial(const std::string& account_id); // the serial it moved to

  soci::session& sql_;
  engine kind_;
};

} // namespace nbm::storage
