// Typed reads and writes of NetBird's core objects in NetBird's encodings (JSON columns as NetBird
// writes them, booleans 0/1 on SQLite and boolean on PostgreSQL, times as text / timestamptz),
// column-scoped peer writes that never touch the session-status columns, the atomic use of a setup
// key, and a whole-store copy between engines (the SQLite -> PostgreSQL migration).
#pragma once

#include "core/model.hpp"
#include "storage/database.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace soci {
class session;
}

namespace nbm::storage {

class account_store {
public:
  account_store(soci::session& sql, engine kind) : sql_(sql), kind_(kind) {}

  // --- reads -------------------------------------------------------------------------------------
  std::vector<std::string> account_ids();
  // The account with every child object (peers, users, tokens, groups with members, policies with
  // rules, setup keys, routes, nameserver groups, posture checks); nullopt if it does not exist.
  // Times read back as NetBird's text form; from PostgreSQL in UTC ("...+00:00", microseconds).
  std::optional<core::account> load_account(const std::string& account_id);
  // The parts of an account load_parts reads again, as load_account reads them.
  enum part : unsigned {
    part_account = 1,    // the accounts row: network (serial included), settings, DNS settings
    part_peers = 2,      //
    part_principals = 4, // users, their personal access tokens, setup keys
    part_groups = 8,     // groups with their members
    part_policies = 16,  // policies with their rules
    part_routes = 32,    //
    part_nameservers = 64,
    part_posture = 128,
    part_networks = 256, // networks, their resources and routers
    part_all = 511,
  };
  // Replaces the given parts of `a` (a.id set) with what the store holds now; false when
  // part_account is asked for and the account does not exist.
  bool load_parts(core::account& a, unsigned parts);
  std::optional<core::peer> peer_by_key(const std::string& wg_key);
  // Who holds a WireGuard key: one indexed read of three columns (a Login's first question).
  struct peer_ref {
    std::string id, account_id, user_id;
  };
  std::optional<peer_ref> peer_ref_by_key(const std::string& wg_key);
  std::optional<core::peer> peer_by_id(const std::string& account_id, const std::string& peer_id);
  // The account of the user owning the personal access token stored as `hashed_token`.
  std::optional<std::string> account_of_token(const std::string& hashed_token);
  // The account a user (by id: an IdP subject or NetBird's id) belongs to.
  std::optional<std::string> account_of_user(const std::string& user_id);
  // By the stored key: base64(SHA-256(upper-case plain key)), as NetBird looks it up.
  std::optional<core::setup_key> setup_key_by_hashed_key(const std::string& hashed_key);
  std::optional<core::setup_key> setup_key_by_id(const std::string& account_id,
                                                 const std::string& key_id);

  // --- inserts (one row each unless said otherwise; throw on a duplicate key)
  // --------------------- Missing public_ids are generated. Nothing here bumps the account's
  // network serial.
  void insert_account(const core::account& a); // the accounts row only
  // The account and every child object it holds, in one transaction.
  void insert_account_tree(const core::account& a);
  void insert_peer(const core::peer& p); // every column, the status as given
  void insert_user(const core::user& u);
  void insert_token(const core::personal_access_token& t);
  void insert_group(const core::group& g); // the group and its group_peers rows
  // Membership rows; add is a no-op (false) when present, remove false when absent.
  bool add_group_peer(const std::string& account_id, const std::string& group_id,
                      const std::string& peer_id);
  bool remove_group_peer(const std::string& account_id, const std::string& group_id,
                         const std::string& peer_id);
  void insert_policy(const core::policy& p); // the policy and its rules, in one transaction
  void insert_setup_key(const core::setup_key& k);
  void insert_route(const core::route& r);
  void insert_nameserver_group(const core::nameserver_group& g);
  void insert_network(const core::network_def& n);
  void insert_network_resource(const core::network_resource& x);
  void insert_network_router(const core::network_router& x);
  void insert_posture_check(const core::posture_check& c);

  // --- setup keys --------------------------------------------------------------------------------
  // Counts one use of the key in one guarded UPDATE: lands only while the key is not revoked, not
  // expired (a NULL or Go-zero expires_at never expires) and used fewer times than its limit
  // (one-off keys: 1, whatever usage_limit says; reusable: usage_limit, 0 = unlimited), so of
  // racing registrations exactly as many land as the key allows. Sets last_used from the database
  // clock. Returns whether the use landed. With `uses` > 1, all of them land or none (the key
  // must have that many uses left).
  bool use_setup_key(const std::string& key_id, long long uses = 1);
  // A personal access token was used now (NetBird's MarkPATUsed); false if it is gone.
  bool mark_token_used(const std::string& token_id);

  // --- column-scoped peer writes -----------------------------------------------------------------
  // Each updates only its own columns, never connected, last_seen, session_started_at or
  // login_expired (those belong to the fenced status writes). Return whether the peer was there.
  bool update_peer_meta(const std::string& account_id, const std::string& peer_id,
                        const core::peer_meta& meta);
  bool rename_peer(const std::string& account_id, const std::string& peer_id,
                   const std::string& name, const std::string& dns_label);
  bool update_last_login(const std::string& account_id, const std::string& peer_id,
                         const std::string& when);
  bool update_location(const std::string& account_id, const std::string& peer_id,
                       const core::peer_location& loc);

private:
  soci::session& sql_;
  engine kind_;
};

// The fields of `a` in the given parts (account_store::part bits), the others left empty.
core::account copy_parts(const core::account& a, unsigned parts);
// `dst`'s fields in the given parts replaced by `src`'s (moved out of it).
void take_parts(core::account& dst, core::account&& src, unsigned parts);
// Whether `a` and `b` hold the same in the given parts.
bool same_parts(const core::account& a, const core::account& b, unsigned parts);

// Reads cache each table's columns (per engine); ensure_schema calls this after it changed a
// schema.
void forget_catalog();

// Copies every row of the core tables from `src` into `dst` (whose schema ensure_schema made and
// whose core tables must be empty: store_error otherwise), converting column types per engine
// (numeric 0/1 <-> boolean, datetime text <-> timestamptz; PostgreSQL times arrive in SQLite as
// UTC "YYYY-MM-DD HH:MM:SS.ffffff+00:00"). Columns only one side has are skipped. Returns the
// number of rows copied. One transaction on `dst`: on failure nothing was copied.
std::size_t copy_store(soci::session& src, engine src_kind, soci::session& dst, engine dst_kind);

} // namespace nbm::storage
