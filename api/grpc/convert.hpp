// Conversions between the wire messages and our values: config -> NetbirdConfig, peers ->
// PeerConfig and RemotePeerConfig, PeerSystemMeta -> core::peer_meta. No I/O.
#pragma once

#include "config/config.hpp"
#include "core/model.hpp"
#include "management.pb.h"

#include <cstdint>
#include <string>

namespace nbm::api {

// STUN/TURN/Signal/Relay from the config; TURN (when time-based) and relay credentials expire `TTL`
// after `now_unix`, signed as NetBird signs them.
management::NetbirdConfig to_netbird_config(const config::management_config& cfg,
                                            std::int64_t now_unix);

// address "ip/bits" from the account network, fqdn "<dns_label>.<dns_domain>".
management::PeerConfig to_peer_config(const core::peer& p, const std::string& network,
                                      const std::string& dns_domain);

management::RemotePeerConfig to_remote_peer(const core::peer& p, const std::string& dns_domain);

core::peer_meta to_meta(const management::PeerSystemMeta& m);

} // namespace nbm::api
