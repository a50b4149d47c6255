// NetBird's posture checks (management/server/posture): NB version, OS version, geo location, peer
// network range and process checks, read from the check's stored JSON (NetBird's Checks struct),
// evaluated against a peer's meta and location; their validation as NetBird's API applies it, and
// the process paths a client is asked to report (the Checks of Login and Sync responses). Pure C++.
#pragma once

#include "core/change.hpp"
#include "core/model.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nbm::core {

// Whether `p` passes every check of `c` (NetBird's peerPassesPostureChecks). A check NetBird would
// fail with an error (an unparsable version, no location, an unknown action or OS) fails; JSON
// that is not NetBird's Checks object fails every peer.
bool passes_posture(const posture_check& c, const peer& p);
// The same for every peer (the check's JSON read once): 1 where peers[i] passes.
std::vector<std::uint8_t> passes_posture(const posture_check& c, const std::vector<peer>& peers);

// NetBird's ChecksDefinition: absent members are checks the definition does not hold.
struct posture_definition {
  struct os_versions {
    std::optional<std::string> android, darwin, ios;         // MinVersion
    std::optional<std::string> linux_kernel, windows_kernel; // MinKernelVersion
    bool operator==(const os_versions&) const = default;
  };
  struct location {
    std::string country_code, city_name;
    bool operator==(const location&) const = default;
  };
  struct geo_check {
    std::string action;
    std::vector<location> locations;
    bool operator==(const geo_check&) const = default;
  };
  struct range_check {
    std::string action;
    std::vector<std::string> ranges; // prefixes as Go's netip.Prefix prints them
    bool operator==(const range_check&) const = default;
  };
  struct process {
    std::string linux_path, mac_path, windows_path;
    bool operator==(const process&) const = default;
  };

  std::optional<std::string> nb_min_version;
  std::optional<os_versions> os;
  std::optional<geo_check> geo;
  std::optional<range_check> network_range;
  std::optional<std::vector<process>> processes;

  bool operator==(const posture_definition&) const = default;
};

// The stored `checks` column (NetBird's JSON, keys matched without regard to case as Go does);
// nullopt when it is not a JSON object.
std::optional<posture_definition> parse_posture_definition(std::string_view checks_json);
// The column as NetBird's Go encoder writes it ({"NBVersionCheck":{"MinVersion":...},...}).
std::string posture_definition_json(const posture_definition& d);
// NetBird's Checks.Validate (422 with its messages; client text clipped).
verdict validate_posture_definition(const std::string& name, const posture_definition& d);
// Go's netip.ParsePrefix followed by Prefix.String() (no host bits cleared; IPv6 in RFC 5952
// form); nullopt where Go refuses the text.
std::optional<std::string> go_prefix(std::string_view text);

// NetBird's toProtocolCheck: the Linux, macOS and Windows paths of a check's processes, empty
// ones left out; empty for a check without a process check.
std::vector<std::string> process_files(const posture_check& c);
// NetBird's getPeerPostureChecks + toProtocolChecks: for every posture check an enabled policy
// names and one of whose enabled rules has a source group holding the peer, its process files (a
// check without any left out), once each, in the account's order of checks.
std::vector<std::vector<std::string>> client_checks(const account& a, const std::string& peer_id);

// NetBird's SavePostureChecks / DeletePostureChecks decisions (after the caller's rights): the
// definition valid, an updated check there, a new one's name free; a check a policy names is not
// deleted (412).
verdict prepare_posture_change(const account& a, change::save_posture_check& c);
verdict prepare_posture_change(const account& a, change::delete_posture_check& c);

} // namespace nbm::core
