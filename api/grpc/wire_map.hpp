// A peer's network map on the wire: core::network_map -> NetBird's SyncResponse bytes. The
// remote-peer entries every receiver of one change shares are encoded once per change and spliced
// into each receiver's message (protobuf's wire format concatenates repeated fields).
#pragma once

#include "actors/session_sink.hpp"
#include "management.pb.h"

#include <string>

namespace nbm::api {

// PeerConfig of the receiving peer (address with the network's prefix length, FQDN, SSH on when the
// peer or a policy turns it on, the account's DNS-resolution and lazy-connection settings).
management::PeerConfig peer_config_of(const core::account_view& view, std::uint32_t peer,
                                      bool ssh_from_policies);

// The serialized SyncResponse for `u`. `config` (a stream's first message) adds NetbirdConfig.
std::string encode_sync_response(const actors::map_update& u,
                                 const management::NetbirdConfig* config);

// The same message as a protobuf object (tests, tools).
management::SyncResponse to_sync_response(const actors::map_update& u,
                                          const management::NetbirdConfig* config);

} // namespace nbm::api
