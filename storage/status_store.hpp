// Fenced peer-status writes: the only code that touches peers.peer_status_connected, _last_seen,
// _session_started_at (and _login_expired on connect). Each write is ONE optimistic UPDATE whose
// WHERE clause carries the fence; rows affected (or rows returned) say whether it landed. No
// read-then-write, no transaction around a single write, and the caller never supplies last_seen:
// the database's clock does.
#pragma once

#include "core/status_write.hpp"
#include "storage/database.hpp"

#include <memory>
#include <string>
#include <vector>

namespace nbm::storage {

using status_op = core::status_op;
using status_write = core::status_write;

// Bound to one soci::session (not thread-safe: one per thread / detached actor). Its prepared
// statements live as long as it does: kept on a store worker's session as its attachment.
class status_store : public session_attachment {
public:
  // Opens its own session for `opts`. With a `replica_id` (PostgreSQL), every landed connect is
  // recorded as that replica's session in nbm_replica_sessions, and every landed disconnect drops
  // its record, in the same statement as the fenced UPDATE (storage/replica_store.hpp).
  explicit status_store(const db_options& opts, std::string replica_id = {});
  // The same on a session it borrows (a store worker's): `sql` must outlive it.
  status_store(soci::session& sql, engine kind, std::string replica_id = {});
  ~status_store() override;
  status_store(const status_store&) = delete;
  status_store& operator=(const status_store&) = delete;

  engine kind() const { return kind_; }
  // Whether its session still reaches the database (see session_alive).
  bool alive();

  // connected=true, login_expired=false, session_started_at=token, last_seen=now
  // WHERE account_id, id match AND session_started_at < token.
  bool connect(const std::string& account_id, const std::string& peer_id,
               core::session_token token);

  // connected=false, session_started_at=0, last_seen=now WHERE ... AND session_started_at = token.
  // token 0 is refused here, before any SQL (it would match every never-connected peer).
  bool disconnect(const std::string& account_id, const std::string& peer_id,
                  core::session_token token);

  // Group commit: every item keeps its own fence predicate. PostgreSQL: one UPDATE ... FROM
  // (unnest) ... RETURNING id; SQLite: one transaction of single-row UPDATEs. Precondition: no peer
  // appears twice (the caller orders a peer's writes across batches). Returns landed per item, in
  // input order.
  std::vector<bool> apply_batch(const std::vector<status_write>& batch);

  // The start-up sweep: ends the sessions the store shows connected that no process serves any
  // more (a crashed process's leftovers; call it only when no other process serving this store is
  // alive). end_leftover_sessions() is connected_sessions() then end_sessions().
  struct sweep_result {
    std::size_t found = 0; // rows shown connected
    std::size_t ended = 0; // of them, ended by a landed fenced write
  };
  sweep_result end_leftover_sessions();
  // Every row with peer_status_connected true, as a disconnect of exactly the token it holds (0: a
  // row NetBird's own server wrote; it keeps no token).
  std::vector<status_write> connected_sessions();
  // Ends each session with the disconnect fenced on its token, in batches of apply_batch (SQLite:
  // one transaction each; PostgreSQL: one statement each), so a row whose session changed since it
  // was read (a new connect) is left alone. A token-0 session is ended only while its row still is
  // connected with token 0. `batch`: writes per statement. Returns how many landed.
  std::size_t end_sessions(const std::vector<status_write>& sessions, std::size_t batch = 1000);

  // SQL statements issued so far (tests assert "no SQL" for refused writes).
  std::size_t statements() const { return statements_; }

private:
  void prepare(std::string replica_id);

  struct impl;
  std::unique_ptr<impl> impl_;
  engine kind_;
  std::size_t statements_ = 0;
};

} // namespace nbm::storage
