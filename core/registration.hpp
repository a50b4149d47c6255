// Rules for registering a peer, as NetBird applies them: setup-key validity, the peer's IP from its
// account's network, and its DNS label from its hostname. Pure functions: no clock, no randomness,
// no I/O (the caller passes "now" and a random seed).
#pragma once

#include "core/model.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>

namespace nbm::core {

// Store time text ("2006-01-02 15:04:05[.fffffffff][+hh:mm|Z]", as NetBird and SQLite write it, or
// PostgreSQL's "+hh") -> Unix seconds. nullopt when it does not parse.
std::optional<double> parse_store_time(const std::string& text);

enum class key_verdict { valid, revoked, expired, overused };

// NetBird's SetupKey.IsValid: not revoked, not expired (a missing or zero expiry never expires),
// and used fewer times than its limit (one-off keys: 1; usage_limit 0 on reusable keys: unlimited).
key_verdict check_setup_key(const setup_key& key, double now_unix);

// A free IPv4 address of `prefix` ("100.64.0.0/16"), never the network or broadcast address, never
// one in `taken`. The scan starts at a seed-derived offset (spreading peers as NetBird's random
// pick does) and walks the whole range, so it finds a free address whenever one exists: unique by
// construction. nullopt when the network is full or the prefix is not IPv4.
std::optional<std::string> allocate_peer_ip(const std::string& prefix,
                                            const std::set<std::string>& taken, std::uint64_t seed);
// The same scan, asking `taken` about each candidate (dotted form) instead of building a set of
// every used address: cost grows with the candidates tried, not with the peers of the account.
std::optional<std::string>
allocate_peer_ip_with(const std::string& prefix,
                      const std::function<bool(const std::string&)>& taken, std::uint64_t seed);

// NetBird's GetParsedDomainLabel: the first dot-separated label, IDNA (punycode) to ASCII, every
// run of characters outside [a-zA-Z0-9-] replaced by '-', lower-cased, at most 59 characters.
// nullopt if empty.
std::optional<std::string> parsed_domain_label(const std::string& name);

// The label itself if free, else label-1 .. label-999 (NetBird's dedup); nullopt when all are
// taken.
std::optional<std::string> unique_host_label(const std::string& label,
                                             const std::set<std::string>& taken);
std::optional<std::string>
unique_host_label_with(const std::string& label,
                       const std::function<bool(const std::string&)>& taken);

// NetBird's peer login expiration: only peers added by a user (SSO) with expiration enabled on
// the peer and in the account expire, when last login + the account's period has passed (or the
// stored flag says so).
bool login_expired(const account& a, const peer& p, double now_unix);

// RFC 3492 punycode of a UTF-8 string (without the "xn--" prefix); nullopt on invalid UTF-8.
std::optional<std::string> punycode_encode(const std::string& utf8);

} // namespace nbm::core
