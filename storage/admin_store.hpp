// Writes that bootstrap and administer a store without an IdP: accounts with their owner and a
// personal access token, setup keys, and the server's own WireGuard key pair.
#pragma once

#include "core/model.hpp"
#include "storage/database.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace soci {
class session;
}

namespace nbm::storage {

// "YYYY-MM-DD HH:MM:SS.ffffff+00:00" for now + offset_seconds (NetBird's text form of a UTC time:
// Go's layout, no trailing zeros in the fraction).
std::string store_time(std::int64_t offset_seconds = 0);

struct new_account {
  std::string domain;
  std::string owner_email;
  std::string owner_name;
  bool default_policy = true; // NetBird: the All<->All policy unless DisableDefaultPolicy
  bool with_pat = true;
  std::string owner_user_id; // the IdP's user id (JWT subject); empty: a fresh id
};

struct created_account {
  std::string account_id;
  std::string owner_user_id;
  std::string all_group_id;
  std::string network; // e.g. "100.93.0.0/16"
  std::string pat;     // the plain token, shown once ("" without with_pat)
};

struct new_setup_key {
  std::string account_id;
  std::string name;
  bool reusable = false;
  std::int64_t expires_in_seconds = 30 * 24 * 3600; // NetBird's default 30 days; 0 = never
  std::int64_t usage_limit = 0;                     // 0 = unlimited (one-off keys: 1)
  std::vector<std::string> auto_groups;
  bool ephemeral = false;
  bool allow_extra_dns_labels = false;
};

class admin_store {
public:
  admin_store(soci::session& sql, engine kind) : sql_(sql), kind_(kind) {}

  // One transaction: account (a random /16 of 100.64.0.0/10, NetBird's defaults), group All, the
  // default policy, the owner user, and a PAT for the owner.
  created_account create_account(const new_account& spec);

  // NetBird's single-account mode at an IdP user's first login: the domain of any account in the
  // store ("" when there is none), and the primary private account of a domain ("" = none).
  std::string any_account_domain();
  std::string primary_domain_account(const std::string& domain);
  // NetBird's addNewUserToDomainAccount: the user joins `account_id` with role "user", blocked
  // and pending approval when the account requires user approval (`pending` says so). One
  // statement.
  void add_regular_user(const std::string& account_id, const std::string& user_id,
                        const std::string& email, const std::string& name, bool& pending);

  // Returns the stored key and its plain text (shown once). Throws store_error for an unknown
  // account or auto-group.
  std::pair<core::setup_key, std::string> create_setup_key(const new_setup_key& spec);
  // The same without reading the account (its caller checked the account and the auto-groups).
  std::pair<core::setup_key, std::string> insert_setup_key(const new_setup_key& spec);
  std::vector<core::setup_key> list_setup_keys(const std::string& account_id);
  bool revoke_setup_key(const std::string& account_id, const std::string& key_id);
  // The stored key a peer presents (NetBird upper-cases, then hashes).
  std::optional<core::setup_key> setup_key_by_plain(const std::string& plain);
  // Counts one use, atomically: lands only while the key is not revoked and under its limit, so of
  // two peers racing for a one-off key exactly one wins.
  bool use_setup_key(const std::string& key_id);

  enum class register_result { registered, key_refused, conflict };
  // One transaction: counts a use of `setup_key_id` (refused when used up or revoked meanwhile),
  // inserts the peer (status columns at their defaults: never connected), adds it to `group_ids`,
  // bumps the account's network serial. `conflict` = the IP, DNS label or WireGuard key is taken
  // (another registration won a race): nothing was written and the caller may retry with fresh
  // choices.
  register_result register_peer(const core::peer& p, const std::vector<std::string>& group_ids,
                                const std::string& setup_key_id);

  struct registration {
    core::peer peer; // its last_login (when set) is written as its last login and creation time
    std::vector<std::string> group_ids;
    std::string setup_key_id;
  };
  // Several registrations of one account in one transaction, a savepoint each: one refused or
  // conflicting registration rolls back only itself. The account's serial moves by one per peer
  // registered; `serial_after` is the account's serial as this transaction committed it (read
  // inside it), so the caller can tell whether anyone else wrote since it last read the account.
  std::vector<register_result> register_peers(const std::string& account_id,
                                              const std::vector<registration>& batch,
                                              std::uint64_t& serial_after);

  // NetBird's DeleteAccount, in one transaction: every row of the account (tokens of its users,
  // users, group memberships, groups, policy rules, policies, setup keys, peers, routes,
  // nameserver groups, posture checks, networks with their routers and resources, onboarding; on
  // PostgreSQL the replicas' session records of its peers) and the account. False: no such account.
  bool delete_account(const std::string& account_id);

  // NetBird's DeletePeer, in one transaction: group memberships, the peer, the account serial bump.
  // With `serial_after`, the account's serial as the transaction committed it.
  bool delete_peer(const std::string& account_id, const std::string& peer_id,
                   std::uint64_t* serial_after = nullptr);

  // --- the REST API's writes (each one statement or one transaction; false / nullopt: no such
  // object in that account) ---------------------------------------------------------------------
  // role, auto_groups and blocked of the stored user (account_id, id).
  bool update_user(const core::user& u);
  // The user and its personal access tokens.
  bool delete_user(const std::string& account_id, const std::string& user_id);
  bool delete_token(const std::string& user_id, const std::string& token_id);
  bool delete_setup_key(const std::string& account_id, const std::string& key_id);
  bool update_setup_key_groups(const std::string& account_id, const std::string& key_id,
                               const std::vector<std::string>& auto_groups);
  // A peer's editable fields (name, DNS label, SSH, expiration flags, approval); bumps the
  // account's network serial (they reach maps). Never the session status columns.
  std::optional<std::uint64_t> update_peer(const core::peer& p);

  struct server_key {
    std::string public_key;  // raw 32 bytes
    std::string private_key; // raw 32 bytes
  };
  // The server's key pair: created once (the first replica to get there wins), then read by
  // everyone. With `encryption_key_b64` (DataStoreEncryptionKey) the private half is stored sealed.
  server_key server_key_pair(const std::string& encryption_key_b64);

private:
  // The INSERTs of registrations (peer rows, group memberships), one statement per table;
  // throws soci_error.
  void insert_registered_peers(const std::vector<registration>& batch);
  // The whole batch inside a savepoint, or nothing of it (false): see register_peers.
  bool register_all(const std::vector<registration>& batch);

  soci::session& sql_;
  engine kind_;
};

} // namespace nbm::storage
