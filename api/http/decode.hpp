// REST request bodies -> core values: the pure decoding half of the REST API (standard library,
// nlohmann-json inside the .cpp, core/; no CAF, no storage, no transport).
//
// Every function here is total over any input: it returns a value or throws decode_error with
// NetBird's HTTP status and message, nothing else (no crash, no undefined behaviour), whatever the
// bytes. A fuzzer may call any of them with arbitrary text.
//
// Rules shared by all bodies (NetBird's Go decoder and handlers):
//   - A body longer than max_body_bytes, nested deeper than max_depth (arrays and objects), not
//     JSON, or not an object: 400 "couldn't parse JSON request". Depth is checked by a byte scan
//     before parsing, so no deep tree is ever built; the trees are read by reference, never copied.
//   - A field of the wrong JSON type: the same 400 (Go refuses the whole body). An absent or null
//     field takes its default. Integer fields take integer literals only: 1.5, 1e3 or 1e308, and
//     integers outside int64, are a 400 as in Go; a value outside the field's range is a 422 with
//     NetBird's message (a unit conversion never overflows: ranges are checked first).
//   - Checks that need the account (groups exist, names unique, ...) are the caller's
//   (core/validate).
//
// Functions:
//   group(body, account_id, id)              POST/PUT /api/groups
//   policy(body, account_id, id)             POST/PUT /api/policies (rule ids: PUT only)
//   route(body, account_id, id)              POST/PUT /api/routes
//   nameserver_group(body, account_id, id)   POST/PUT /api/dns/nameservers
//   dns_settings(body)                       PUT /api/dns/settings
//   setup_key_create(body)                   POST /api/setup-keys
//   setup_key_update(body)                   PUT /api/setup-keys/{id}
//   account_settings(body, current)          PUT /api/accounts/{id}
//   peer_update(body)                        PUT /api/peers/{id}
//   user_create(body), user_update(body)     POST/PUT /api/users
//   token_create(body)                       POST /api/users/{id}/tokens
//   check_body(body)                         the size/depth/JSON-object check alone
// clip(text) shortens client text for error messages.
#pragma once

#include "core/model.hpp"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nbm::api::http::decode {

inline constexpr std::size_t max_body_bytes = 4 * 1024 * 1024; // as the HTTP listener's limit
inline constexpr int max_depth = 32;
// Longest duration (seconds) a setup key's expiry or the inactivity expiration may take: 100
// years, so every later sum with "now" in seconds or nanoseconds stays far inside int64.
inline constexpr std::int64_t max_duration_seconds = 100LL * 365 * 24 * 3600;

// A refused body: the HTTP status and NetBird's message for {"message","code"}.
struct decode_error : std::exception {
  int status;
  std::string message;
  decode_error(int s, std::string m) : status(s), message(std::move(m)) {}
  const char* what() const noexcept override { return message.c_str(); }
};

// At most `n` bytes of client text, then "..." when it was longer.
std::string clip(std::string_view text, std::size_t n = 64);

// Throws decode_error(400) unless `body` is a JSON object within the size and depth limits.
void check_body(std::string_view body);

core::group group(std::string_view body, const std::string& account_id, const std::string& id);
// `id` empty: a new policy (rule ids in the body are ignored, the store gives them).
core::policy policy(std::string_view body, const std::string& account_id, const std::string& id);
core::route route(std::string_view body, const std::string& account_id, const std::string& id);
core::nameserver_group nameserver_group(std::string_view body, const std::string& account_id,
                                        const std::string& id);
// disabled_management_groups (required).
std::vector<std::string> dns_settings(std::string_view body);

struct setup_key_spec {
  std::string name;
  bool reusable = false;
  std::int64_t expires_in_seconds = 0; // 0: never expires; 0..max_duration_seconds
  std::int64_t usage_limit = 0;        // 0: unlimited; >= 0
  std::vector<std::string> auto_groups;
  bool ephemeral = false, allow_extra_dns_labels = false;
};
setup_key_spec setup_key_create(std::string_view body);

struct setup_key_change {
  bool revoked = false;
  std::vector<std::string> auto_groups; // required
};
setup_key_change setup_key_update(std::string_view body);

// The account's settings after `body` ({"settings": {...}}) is applied to `current`; with
// `network_range`, the settings' "network_range" as sent ("" when absent or empty).
core::account_settings account_settings(std::string_view body,
                                        const core::account_settings& current,
                                        std::string* network_range = nullptr);

// What a peer update names (absent fields: unchanged).
struct peer_change {
  std::optional<std::string> name;
  std::optional<bool> ssh_enabled, login_expiration_enabled, inactivity_expiration_enabled,
      approval_required;
};
peer_change peer_update(std::string_view body);

struct user_spec {
  std::string role; // a known role other than owner
  std::vector<std::string> auto_groups;
  bool is_service_user = false;
  std::string name;
};
user_spec user_create(std::string_view body);

struct user_change {
  std::optional<std::string> role; // a known role
  std::optional<std::vector<std::string>> auto_groups;
  std::optional<bool> blocked;
};
user_change user_update(std::string_view body);

struct token_spec {
  std::string name;
  std::int64_t expires_in_days = 0; // 1..365
};
token_spec token_create(std::string_view body);

} // namespace nbm::api::http::decode
