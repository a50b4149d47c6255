// The message vocabulary of the actor system: every atom, message record and typed actor interface,
// in one place. Read this file to learn who talks to whom. Handlers are implemented one actor kind
// per file, its state struct in its header.
//
// Message types. A type is usable in a message if it has an inspect() overload (then it could also
// be serialized) or is declared CAF_ALLOW_UNSAFE_MESSAGE_TYPE; either way it is listed at the end
// of this file, in the type-ID block or the unsafe list (with the reason it has no inspect()).
//
// Atoms. One name per meaning: an atom is never reused for a different request, so a handler's
// signature says what it does (status_atom means "how are you?" for every actor, nothing else).
#pragma once

#include "actors/requests.hpp"
#include "actors/session_sink.hpp"
#include "actors/status.hpp"
#include "core/activity.hpp"
#include "core/change.hpp"
#include "core/cluster_note.hpp"
#include "core/model.hpp"
#include "core/network_map.hpp"
#include "core/session_token.hpp"
#include "core/status_write.hpp"

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/type_id.hpp>
#include <caf/typed_actor.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace nbm::actors {

using core::session_token;

// --- atoms (CAF 0.17: at most 10 characters)
// --------------------------------------------------------
// Each with its one meaning. An atom used by several interfaces means the same there (a Login is a
// Login at the directory, the login service and the account actor, each doing its part of it).
// Atoms are values: two declared with the same text would be one atom, so every text is distinct
// (CAF's own caf::close_atom, caf::tick_atom, ... share their texts with ours; no actor here
// handles CAF's).
using connect_atom = caf::atom_constant<caf::atom("connect")>;     // peer: a Sync stream opened
using disconn_atom = caf::atom_constant<caf::atom("disconnect")>;  // peer: a Sync stream ended
using write_atom = caf::atom_constant<caf::atom("write")>;         // status writer: a fenced write
using landed_atom = caf::atom_constant<caf::atom("landed")>;       // observers: a write landed
using find_peer_atom = caf::atom_constant<caf::atom("find_peer")>; // directory: peer actor of
using find_account_atom = caf::atom_constant<caf::atom("find_acct")>; // directory: account actor of
// The actors it knows or owns (directory: every actor; loader, status writer: their store
// workers), to be asked how they are.
using members_atom = caf::atom_constant<caf::atom("members")>;
using snapshot_atom = caf::atom_constant<caf::atom("snapshot")>; // account actor: the account
using serial_atom = caf::atom_constant<caf::atom("serial")>;     // account actor: store's serial
using poll_atom = caf::atom_constant<caf::atom("poll")>;         // internal: time to poll the store
using retry_atom = caf::atom_constant<caf::atom("retry")>;       // peer actor: retry a disconnect
using store_peers_atom = caf::atom_constant<caf::atom("storepeers")>; // loader: INSERT peers
using login_atom = caf::atom_constant<caf::atom("login")>;            // a Login (its part of it)
using lookup_atom = caf::atom_constant<caf::atom("lookup")>;   // login service: who holds a key
using logout_atom = caf::atom_constant<caf::atom("logout")>;   // a Logout (its part of it)
using close_atom = caf::atom_constant<caf::atom("close")>;     // peer: end the live stream
using attach_atom = caf::atom_constant<caf::atom("attach")>;   // account: a session landed
using detach_atom = caf::atom_constant<caf::atom("detach")>;   // account: a session ended
using map_atom = caf::atom_constant<caf::atom("map")>;         // peer: a map for its stream
using added_atom = caf::atom_constant<caf::atom("added")>;     // account: a peer added elsewhere
using deleted_atom = caf::atom_constant<caf::atom("deleted")>; // account: a peer deleted
using expired_atom = caf::atom_constant<caf::atom("expired")>; // account: a peer's login expired
using meta_atom = caf::atom_constant<caf::atom("meta")>;       // a peer's new meta (its part of it)
using sync_atom = caf::atom_constant<caf::atom("sync")>;       // a Sync begins (its part of it)
using flush_atom = caf::atom_constant<caf::atom("flush")>;     // account internal: run the fan-out
using mapped_atom = caf::atom_constant<caf::atom("mapped")>;   // account: a map worker's batch
using load_atom = caf::atom_constant<caf::atom("load")>;       // loader: read an account
using tick_atom = caf::atom_constant<caf::atom("tick")>;       // expiry: run what is due
using derive_atom = caf::atom_constant<caf::atom("derive")>;   // expiry: re-derive from the store
using dir_atom = caf::atom_constant<caf::atom("directory")>;   // here is the directory
using register_atom = caf::atom_constant<caf::atom("register")>; // account actor: a new peer
using keys_atom = caf::atom_constant<caf::atom("keys")>;         // directory: an account's keys
using change_atom = caf::atom_constant<caf::atom("change")>;     // an admin change (its part of it)
using read_atom = caf::atom_constant<caf::atom("read")>;         // a REST read (its part of it)
using token_atom = caf::atom_constant<caf::atom("token")>;       // loader: the account of a PAT
using user_atom = caf::atom_constant<caf::atom("user")>;         // loader: the account of a user
using note_atom = caf::atom_constant<caf::atom("note")>;         // what another replica wrote
using publish_atom = caf::atom_constant<caf::atom("publish")>;   // cluster: tell the others
using resync_atom = caf::atom_constant<caf::atom("resync")>;     // compare serials with the store
using supersede_atom = caf::atom_constant<caf::atom("supersede")>; // peer: newer session elsewhere
using lease_atom = caf::atom_constant<caf::atom("lease")>; // replica actor: heartbeat and sweep
using fenced_atom =
    caf::atom_constant<caf::atom("fenced")>; // directory: this replica lost its lease
using events_atom = caf::atom_constant<caf::atom("events")>; // loader: an account's activity log
using record_atom = caf::atom_constant<caf::atom("record")>; // loader: append activity events
// A console asks to follow (peer actor: this tracer; inspector: the peer it names).
using trace_atom = caf::atom_constant<caf::atom("trace")>;
// What a followed peer actor sends its tracer: one message it handled (actors/msg_ring.hpp).
using traced_atom = caf::atom_constant<caf::atom("traced")>;

// account_change, map_update and session_sink (what a Sync stream's far end sees) live in
// actors/session_sink.hpp, a header without CAF: the transport includes only that one.

// Maps of some of an account's sessions, computed off the scheduler (actors/map_workers.hpp).
struct map_batch;
using map_batch_ptr = std::shared_ptr<map_batch>;

// --- message records
// -------------------------------------------------------------------------------- A landed
// (committed) session write, as side effects see it.
struct session_event {
  std::string account_id;
  std::string peer_id;
  session_token token = 0;
  bool connected = false;
  std::string connection_ip; // the stream's remote address (connects only)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, session_event& x) {
  return f(caf::meta::type_name("session_event"), x.account_id, x.peer_id, x.token, x.connected,
           x.connection_ip);
}

// What a peer actor reports about itself.
struct peer_state_record {
  std::string account_id;
  std::string peer_id;
  session_token token = 0;   // current session (0 = none)
  bool has_sink = false;     // a live stream is attached
  std::uint64_t landed = 0;  // writes that landed in the database
  std::uint64_t dropped = 0; // writes refused in memory (stale) before any SQL
  std::uint64_t refused = 0; // writes the database fence refused
  std::uint64_t failed = 0;  // writes that failed with an error
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, peer_state_record& x) {
  return f(caf::meta::type_name("peer_state_record"), x.account_id, x.peer_id, x.token, x.has_sink,
           x.landed, x.dropped, x.refused, x.failed);
}

// Its fields in an actor_status (kind "peer", id = peer id): see put_record / record_of.
template <class V>
void fields(V& v, peer_state_record& r) {
  v.label("account", r.account_id);
  v.label("peer", r.peer_id);
  v.gauge("token", r.token);
  v.gauge("has_sink", r.has_sink);
  v.counter("landed", r.landed);
  v.counter("dropped", r.dropped);
  v.counter("refused", r.refused);
  v.counter("failed", r.failed);
}

// What the status writer reports about itself.
struct writer_state_record {
  std::uint64_t queued = 0;    // writes waiting for a batch
  std::uint64_t in_flight = 0; // writes in batches being executed
  std::uint64_t batches = 0;   // statements/transactions issued
  std::uint64_t writes = 0;    // writes completed (landed or not)
  std::uint64_t landed = 0;
  std::uint64_t errors = 0;    // writes answered with an error
  std::uint64_t max_batch = 0; // largest batch so far
  std::uint64_t workers = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, writer_state_record& x) {
  return f(caf::meta::type_name("writer_state_record"), x.queued, x.in_flight, x.batches, x.writes,
           x.landed, x.errors, x.max_batch, x.workers);
}

// Its fields in an actor_status (kind "status_writer").
template <class V>
void fields(V& v, writer_state_record& r) {
  v.gauge("queued", r.queued);
  v.gauge("in_flight", r.in_flight);
  v.gauge("max_batch", r.max_batch);
  v.gauge("workers", r.workers);
  v.counter("batches", r.batches);
  v.counter("writes", r.writes);
  v.counter("landed", r.landed);
  v.counter("errors", r.errors);
}

using account_ptr = std::shared_ptr<const core::account>;

// An account actor tells the directory which WireGuard keys it holds: keys added (key -> peer id)
// and keys gone, or, with `replace`, every key of the account (after a full read).
struct key_update {
  std::string account_id;
  std::vector<std::pair<std::string, std::string>> added; // key -> peer id
  std::vector<std::string> removed;                       // keys
  bool replace = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, key_update& x) {
  return f(caf::meta::type_name("key_update"), x.account_id, x.added, x.removed, x.replace);
}

// Who holds a key (requests.hpp, a header without CAF, defines it).
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, peer_ref& x) {
  return f(caf::meta::type_name("peer_ref"), x.account_id, x.peer_id, x.user_id);
}

// What the store says about a Login the directory could not answer from memory: an answer (a
// refusal, or an SSO login that renewed the peer), the peer that holds the key, or the setup key
// (valid) to register it with.
struct login_lookup {
  peer_view answer;
  std::optional<peer_ref> known;
  std::optional<core::setup_key> register_with;
  // An SSO login's JWT groups that change the user's (NetBird's SyncUserJWTGroups): committed by
  // the account's actor, as the user, before the answer goes out.
  std::optional<core::change::jwt_groups> jwt_sync;
  // What the login records in the activity log (after the JWT groups' own events).
  std::vector<core::activity::event> events;
};

// A peer an account actor registers: its choice of IP and DNS label, the groups it joins and the
// setup key whose use it counts.
struct peer_registration {
  core::peer peer;
  std::vector<std::string> groups;
  std::string setup_key_id;
};

enum class registered_as { registered, key_refused, conflict };

// What the store made of a batch of registrations: one result per registration, in order, and the
// account's serial as the transaction committed it (each registered peer moved it by one).
struct registration_outcome {
  std::vector<registered_as> results;
  std::uint64_t serial_after = 0;
};

// How a piece of store work ended (see actors/store_worker).
enum class store_failure {
  none,
  unavailable, // the store cannot be reached (its session neither opens nor answers)
  duplicate,   // the database refused a row as a duplicate of a unique key
  failed,      // anything else
};

// An administrator's change of an account (core/change.hpp), on its way to the account's actor.
// Handed over, never shared: whoever holds it last (the actor, then its store worker) fills in
// what the change derives.
using admin_change_ptr = std::shared_ptr<core::admin_change>;

// What became of an admin change: refused (NetBird's status and message; nothing written), the
// store failed (nothing written, or for `failed` nothing known), or committed: the account after
// it, as the actor now holds it, and what the commit created.
struct change_outcome {
  std::optional<core::problem> refused;
  store_failure failure = store_failure::none;
  account_ptr after;
  std::string id;        // the saved or created object's id
  std::string plain_key; // a created setup key's plain text, shown once (never logged)
  unsigned parts = 0;    // the storage::account_store::part bits the commit wrote
};

// A REST read of an account: the account as its actor holds it with what changes without a serial
// read again now (users, tokens, setup keys; with `peers`, the peers' status columns too).
struct read_request {
  bool peers = false;
  std::string token_hash; // a personal access token used for this read: marked used ("" = none)
};

struct read_outcome {
  store_failure failure = store_failure::none;
  account_ptr acc; // null: the account does not exist
};

// Who an authentication names: the account of a PAT (by its hash) or of an IdP user.
struct principal_lookup {
  store_failure failure = store_failure::none;
  std::string account_id; // "" = none
  // An IdP user's first login: an account was created for it, or it joined one (single-account
  // mode; `pending_approval` when the account requires user approval).
  bool created = false, joined = false, pending_approval = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, principal_lookup& x) {
  return f(caf::meta::type_name("principal_lookup"), x.failure, x.account_id, x.created, x.joined,
           x.pending_approval);
}

// An account's activity log, newest first (NetBird's Get: at most 10,000 events).
struct events_outcome {
  store_failure failure = store_failure::none;
  std::vector<core::activity::event> events;
};

// What the store made of a Logout's delete (see account_loader, logout_atom): whether the peer was
// there to delete, and the account's serial as the delete committed it.
struct logout_outcome {
  store_failure failure = store_failure::none;
  bool deleted = false;
  std::uint64_t serial_after = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, logout_outcome& x) {
  return f(caf::meta::type_name("logout_outcome"), x.failure, x.deleted, x.serial_after);
}

// An IdP user's first login creates an account it owns (NetBird's); what the JWT tells.
struct idp_user {
  std::string user_id, email;
};

// What the account loader reports about itself.
struct loader_state_record {
  std::uint64_t workers = 0;
  std::uint64_t in_flight = 0;               // jobs handed to workers, not answered yet
  std::vector<std::uint64_t> busy_by_worker; // the same, per worker
  std::uint64_t jobs = 0;                    // jobs answered
  std::uint64_t failed = 0;                  // of them, failed
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, loader_state_record& x) {
  return f(caf::meta::type_name("loader_state_record"), x.workers, x.in_flight, x.busy_by_worker,
           x.jobs, x.failed);
}

// Its fields in an actor_status (kind "account_loader"); busy_by_worker as the gauges
// "busy_worker_<i>" (see put_loader_record / loader_record_of).
template <class V>
void fields(V& v, loader_state_record& r) {
  v.gauge("workers", r.workers);
  v.gauge("in_flight", r.in_flight);
  v.counter("jobs", r.jobs);
  v.counter("failed", r.failed);
}

inline void put_loader_record(actor_status& out, const loader_state_record& r) {
  put_record(out, r);
  for (std::size_t i = 0; i < r.busy_by_worker.size(); ++i)
    out.gauges["busy_worker_" + std::to_string(i)] = static_cast<std::int64_t>(r.busy_by_worker[i]);
}

inline loader_state_record loader_record_of(const actor_status& s) {
  auto r = record_of<loader_state_record>(s);
  r.busy_by_worker.resize(r.workers);
  for (std::size_t i = 0; i < r.workers; ++i)
    r.busy_by_worker[i] = static_cast<std::uint64_t>(s.gauge("busy_worker_" + std::to_string(i)));
  return r;
}

// What an account actor reports about itself.
struct account_state_record {
  std::string account_id;
  bool loaded = false;
  std::uint64_t serial = 0;
  std::uint64_t peers = 0;
  std::uint64_t connected = 0;    // sessions attached
  std::uint64_t changes = 0;      // fan-outs run (each after one or more changes)
  std::uint64_t maps_sent = 0;    // maps handed to peers (initial ones included)
  std::uint64_t maps_skipped = 0; // connected peers a change left unchanged
  std::uint64_t reloads = 0;      // full reads of the account from the store
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, account_state_record& x) {
  return f(caf::meta::type_name("account_state_record"), x.account_id, x.loaded, x.serial, x.peers,
           x.connected, x.changes, x.maps_sent, x.maps_skipped, x.reloads);
}

// Its fields in an actor_status (kind "account", id = account id).
template <class V>
void fields(V& v, account_state_record& r) {
  v.label("account", r.account_id);
  v.gauge("loaded", r.loaded);
  v.gauge("serial", r.serial);
  v.gauge("peers", r.peers);
  v.gauge("connected", r.connected);
  v.counter("changes", r.changes);
  v.counter("maps_sent", r.maps_sent);
  v.counter("maps_skipped", r.maps_skipped);
  v.counter("reloads", r.reloads);
}

// What the expiry actor reports about itself.
struct expiry_state_record {
  std::uint64_t peers = 0;       // peers in its book (candidates of the lifecycle rules)
  std::uint64_t scheduled = 0;   // live deadlines
  std::int64_t next_ns = 0;      // the earliest deadline, Unix ns (0 = none)
  std::uint64_t expired = 0;     // login-expired marks that landed (login or inactivity)
  std::uint64_t deleted = 0;     // ephemeral peers deleted
  std::uint64_t refused = 0;     // decisions the store's fence refused (the row had changed)
  std::uint64_t derivations = 0; // accounts (re)derived from the store
  std::uint64_t errors = 0;      // store failures (retried)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, expiry_state_record& x) {
  return f(caf::meta::type_name("expiry_state_record"), x.peers, x.scheduled, x.next_ns, x.expired,
           x.deleted, x.refused, x.derivations, x.errors);
}

// Its fields in an actor_status (kind "expiry").
template <class V>
void fields(V& v, expiry_state_record& r) {
  v.gauge("peers", r.peers);
  v.gauge("scheduled", r.scheduled);
  v.gauge("next_ns", r.next_ns);
  v.counter("expired", r.expired);
  v.counter("deleted", r.deleted);
  v.counter("refused", r.refused);
  v.counter("derivations", r.derivations);
  v.counter("errors", r.errors);
}

// --- actor interfaces
// -------------------------------------------------------------------------------

// Receives the side effects of session writes that landed, after they committed (geo, expiry,
// fan-out).
using session_observer = caf::typed_actor<
    // One message per landed write; never for a write that was dropped, refused or failed.
    caf::reacts_to<landed_atom, session_event>>::extend_with<status_iface>;

// Persistence of fenced status writes with group commit; keeps each peer's writes in arrival order.
// Its batches run on store workers of its own (actors/store_worker).
using status_writer = caf::typed_actor<
    // One fenced write; answers whether it landed (an error if the database failed).
    caf::replies_to<write_atom, core::status_write>::with<bool>,
    // Its store workers ("status_<i>"), to be asked how they are (one blocked in SQL is reported
    // missing; the writer's own status has each one's writes in flight, "in_flight_worker_<id>").
    caf::replies_to<members_atom>::with<std::vector<status_target>>>::extend_with<status_iface>;

// One per peer with a live or recent session: its mailbox is the in-memory fence.
using peer_actor = caf::typed_actor<
    // A Sync stream opened with `token`; answers whether it now owns the session (in memory and
    // database). Once it owns it, the account actor is told (attach) and sends the first map.
    caf::replies_to<connect_atom, session_token, sink_ptr>::with<bool>,
    // The stream of `token` ended; answers whether that ended the session.
    caf::replies_to<disconn_atom, session_token>::with<bool>,
    // Internal: the fenced disconnect of `token` failed (the store unreachable); tried again
    // until it lands or a newer session of the peer exists.
    caf::reacts_to<retry_atom, session_token>,
    // A map for the session `token` (dropped when that session is no longer the current one).
    caf::reacts_to<map_atom, session_token, map_update_ptr, bool>,
    // The peer is gone (deleted, logged out): its live stream ends.
    caf::reacts_to<close_atom, std::string>,
    // A session `token` of this peer landed elsewhere (another replica): when it is newer than
    // ours, our stream ends at once and memory takes that token as the current one, so the later
    // disconnect of our older session is dropped here (the store's fence refuses it too).
    caf::reacts_to<supersede_atom, session_token>,
    // The inspector's `trace`: from now on every message the actor handles is sent on to
    // `tracer` as (traced_atom, seq, at_ms, event, token, serial) (actors/msg_ring.hpp), until
    // `tracer` goes down (it is monitored). Answers the ring as it stands (render()), so nothing
    // falls between what the console saw and what it is sent. Costs the actor nothing while no
    // tracer is attached: one null check per message.
    caf::replies_to<trace_atom, caf::actor>::with<std::string>>::extend_with<status_iface>;

// Whether a Sync may begin (code 0: yes, a gRPC status code with NetBird's message otherwise),
// decided by the account actor from the account it holds; on yes, the peer's actor that fences
// the stream's connect.
struct sync_verdict {
  int code = 0;
  std::string message;
  std::string account_id, peer_id;
  peer_actor peer;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sync_verdict& x) {
  return f(caf::meta::type_name("sync_verdict"), x.code, x.message, x.account_id, x.peer_id,
           x.peer);
}

// Reads accounts for the account actors: blocking store work on its own thread (detached).
using account_loader = caf::typed_actor<
    // The account with all its objects; a null pointer if it does not exist. The asking account
    // actor is then polled: told (serial_atom) the store's serial of its account at every tick.
    caf::replies_to<load_atom, std::string>::with<account_ptr>,
    // Decides an admin change on (a copy of) the given account, its users, tokens and setup keys
    // read again first (everything when the store's serial moved), commits it in one transaction
    // and reads back what it wrote (a peer's change is applied in memory, not read back).
    caf::replies_to<change_atom, admin_change_ptr, account_ptr>::with<change_outcome>,
    // A copy of the given account with what changes without a serial read again (see
    // read_request); the whole account when the store's serial moved.
    caf::replies_to<read_atom, read_request, account_ptr>::with<read_outcome>,
    // The account of a personal access token, by its hash.
    caf::replies_to<token_atom, std::string>::with<principal_lookup>,
    // The account of an IdP user; created (owned by the user) at its first login.
    caf::replies_to<user_atom, idp_user>::with<principal_lookup>,
    // The account's activity log (its events database; empty when none is configured).
    caf::replies_to<events_atom, std::string>::with<events_outcome>,
    // Appends events to the activity log, after every event recorded before (one events worker).
    caf::reacts_to<record_atom, std::vector<core::activity::event>>,
    // Registers peers of one account in one transaction (a savepoint each; see
    // storage::admin_store::register_peers).
    caf::replies_to<store_peers_atom, std::string,
                    std::vector<peer_registration>>::with<registration_outcome>,
    // Stores a peer's meta (its own columns; no serial moves); an error when the store failed.
    caf::replies_to<meta_atom, std::string, std::string, core::peer_meta>::with<bool>,
    // Logout: deletes the peer (NetBird's DeletePeer: group memberships, the row, the serial
    // bump, one transaction) on its account's worker and records PeerRemovedByUser.
    caf::replies_to<logout_atom, core::peer>::with<logout_outcome>,
    // Internal: a poll tick.
    caf::reacts_to<poll_atom>,
    // Compares the loaded accounts' serials with the store's now (notifications may have been
    // missed: the cluster channel reconnected).
    caf::reacts_to<resync_atom>,
    // Applies another replica's write (its parts and peers read again) to a copy of the given
    // account; everything is read when the store's serial is not the note's. Null: gone.
    caf::replies_to<note_atom, core::account_note, account_ptr>::with<account_ptr>,
    // Its store workers, to be asked how they are (status: its own jobs by worker).
    caf::replies_to<members_atom>::with<std::vector<status_target>>>::extend_with<status_iface>;

// One per account in use: owns the in-memory account, computes maps (core::account_view) and hands
// each connected peer whose map a change altered its new map, once. Changes are applied after
// they were committed to the store; several changes arriving together are fanned out once. A
// large fan-out's maps are computed by the map workers (actors/map_workers) while the actor goes
// on with its messages; one fan-out is in flight at a time, changes arriving meanwhile are fanned
// out once more after it.
using account_actor = caf::typed_actor<
    // A peer's session landed (committed): the peer actor's session `token` gets its first map
    // (computed at once when cheap, else by the map workers with the others waiting for theirs).
    caf::reacts_to<attach_atom, std::string, session_token, peer_actor>,
    // The session `token` of a peer ended.
    caf::reacts_to<detach_atom, std::string, session_token>,
    // A Sync is about to begin for the peer `peer_id` (its actor: the last argument): decided from
    // the account in memory (read once more first when the peer is not in it: another replica
    // registered it a moment ago). No store read or write before the fence: the meta the stream
    // brought goes into memory and the store when its session landed (attach).
    caf::replies_to<sync_atom, std::string, sync_open, peer_actor>::with<sync_verdict>,
    // SyncMeta: the peer's new meta, written by the store worker, then into memory (the agent
    // version shapes maps); 0 or a gRPC status code with message.
    caf::replies_to<meta_atom, std::string, core::peer_meta>::with<int, std::string>,
    // Registers a new peer with a setup key (looked up and found valid by the caller): IP and DNS
    // label from the actor's indexes, one INSERT transaction on its store worker, the peer then
    // added to the account in memory (no read back). A key already registered answers as the
    // login of that peer. Registrations that queue up while one is being written go to the store
    // together, one transaction for the batch.
    caf::replies_to<register_atom, login_request, core::setup_key>::with<peer_view>,
    // The Login of a registered peer (its id, as the store knows its key): registered? expired?
    // decided from the account in memory (read once more first when the peer is not in it: another
    // replica registered it a moment ago).
    caf::replies_to<login_atom, login_request, std::string>::with<peer_view>,
    // A peer was registered (committed) by someone else as member of these groups; the store's
    // serial after that write is `serial`. The actor takes that serial only when it was the one
    // write since its own; otherwise it reads the account again.
    caf::reacts_to<added_atom, core::peer, std::vector<std::string>, std::uint64_t>,
    // The expiry deleted a peer (committed; the store's serial after that write is `serial`), or
    // marked its login expired: memory follows, the other replicas are told which peer to read
    // again, and the serial is taken only when that was the one write since ours (else the
    // account is read again).
    caf::reacts_to<deleted_atom, std::string, std::uint64_t>,
    caf::reacts_to<expired_atom, std::string, std::uint64_t>,
    // Logout of the peer `peer_id` (its WireGuard key `wg_key`, for the refusal's message): the
    // store worker deletes it, then memory (one step: nothing else of the account is handled in
    // between); its stream ends, the other peers' maps lose it, the other replicas are told.
    // NotFound when the account does not hold the peer (read once more first).
    caf::replies_to<logout_atom, std::string, std::string>::with<peer_view>,
    // The store's serial of this account is `serial`: reload when it is ahead of ours (a change
    // made by another process or replica).
    caf::reacts_to<serial_atom, std::uint64_t>,
    // The account as committed, for readers; read again from the store first when `serial` (the
    // store's, as the asker just read it) is ahead of it.
    caf::replies_to<snapshot_atom, std::uint64_t>::with<account_ptr>,
    // A REST read: the account with users, tokens and setup keys (and with `peers` the peers'
    // status) read again by its store worker; a serial that moved meanwhile makes the actor read
    // the whole account too.
    caf::replies_to<read_atom, read_request>::with<read_outcome>,
    // An admin change (REST): decided by core::prepare_change on the account the actor holds
    // (users, tokens and setup keys read again first), committed by its store worker in one
    // transaction, then held and fanned out (a large fan-out's maps computed by the map workers
    // after the answer). Changes of one account run one at a time, in order with registrations
    // and session attaches.
    caf::replies_to<change_atom, admin_change_ptr>::with<change_outcome>,
    // Internal: run the fan-out of the changes applied so far.
    caf::reacts_to<flush_atom>,
    // Internal: a batch of maps a map worker computed (one fan-out in flight at a time; sessions
    // that ended or were superseded meanwhile get nothing).
    caf::reacts_to<mapped_atom, map_batch_ptr>,
    // Another replica committed a write to this account: applied exactly (the parts and peers it
    // names, read again) when it is the one write since the serial held here, else the account is
    // read again; then fanned out.
    caf::reacts_to<note_atom, core::account_note>>::extend_with<status_iface>;

// Finds or spawns the peer actor of a peer, and the account actor of an account.
using peer_directory = caf::typed_actor<
    // (account id, peer id) -> that peer's actor.
    caf::replies_to<find_peer_atom, std::string, std::string>::with<peer_actor>,
    // account id -> its account actor.
    caf::replies_to<find_account_atom, std::string>::with<account_actor>,
    // Every actor it knows, to be asked how it is: itself, its peer and account actors, and the
    // loader (with its store workers), status writer, login service and session observer it
    // hands them.
    caf::replies_to<members_atom>::with<std::vector<status_target>>,
    // The wire's one door. A Login: a key it knows goes straight to its account actor; the others
    // (and SSO logins) to the login service's store lookup first.
    caf::replies_to<login_atom, login_request>::with<peer_view>,
    // A Sync: a key it knows goes straight to its account actor (no store access before the
    // fence); a key it never saw is looked up in the store once before any refusal.
    caf::replies_to<sync_atom, sync_open>::with<sync_verdict>,
    // A SyncMeta, resolved as a Sync; the account actor takes the meta.
    caf::replies_to<meta_atom, sync_open>::with<int, std::string>,
    // Logout: resolved as a Sync; the peer's account actor deletes it (store and memory).
    caf::replies_to<logout_atom, std::string>::with<peer_view>,
    // This replica was declared dead (paused past its lease): another replica ended its sessions
    // in the store, so every stream it holds is closed (reason given) and its peers reconnect.
    caf::reacts_to<fenced_atom, std::string>,
    // An account actor's keys (see key_update).
    caf::reacts_to<keys_atom, key_update>,
    // What another replica published (actors/cluster): account writes to the account actors
    // alive here, landed sessions to the peer actors alive here (a newer session supersedes).
    caf::reacts_to<note_atom, core::cluster_message>>::extend_with<status_iface>;

// The store lookups of the wire RPCs that memory cannot answer, run on a store worker of its own
// (actors/store_worker): who holds a key this replica never saw, an SSO login, the setup key of a
// registration (the registration itself is the account actor's).
using login_service = caf::typed_actor<
    // A Login the directory could not answer from memory.
    caf::replies_to<login_atom, login_request>::with<login_lookup>,
    // Who holds this WireGuard key (one indexed read).
    caf::replies_to<lookup_atom, std::string>::with<peer_ref>>::extend_with<status_iface>;

// Login expiration, inactivity expiration and ephemeral-peer cleanup for the whole process: one
// book of deadlines derived from the store (at start, when an account's serial moves, and in a
// periodic sweep) and kept current by landed sessions; one pending timer. Every expiration or
// deletion is a write fenced by the store (storage/lifecycle_store); what lands is then told to
// the account actor (maps) and the peer's stream is ended.
using expiry_actor = caf::typed_actor<
    // A landed connect or disconnect (it is a session observer): reschedules that peer.
    caf::reacts_to<landed_atom, session_event>,
    // The directory whose account and peer actors hear of what was expired or deleted.
    caf::reacts_to<dir_atom, peer_directory>,
    // Runs what is due (the timer's message; tests with an injected clock send it themselves).
    caf::reacts_to<tick_atom, std::uint64_t>,
    // Re-derives an account's schedule from the store ("" = every account).
    caf::reacts_to<derive_atom, std::string>,
    // Internal: the poll of the accounts' serials (and the periodic sweep).
    caf::reacts_to<poll_atom>>::extend_with<status_iface>;

// The cluster channel (PostgreSQL LISTEN/NOTIFY on a connection of its own, actors/cluster):
// publishes this replica's committed account writes and landed sessions, and hands the other
// replicas' to the directory (account and peer actors), the expiry actor and the loader. Only on
// PostgreSQL; never on SQLite.
using cluster_actor = caf::typed_actor<
    // A landed session write here (it is a session observer): published.
    caf::reacts_to<landed_atom, session_event>,
    // A committed write to an account here: published.
    caf::reacts_to<publish_atom, core::account_note>,
    // Internal: what the listener received from another replica.
    caf::reacts_to<note_atom, core::cluster_message>,
    // Internal: the listener (re)connected; what it may have missed is found in the store's
    // serials.
    caf::reacts_to<resync_atom>,
    // The directory that delivers other replicas' writes to the account and peer actors.
    caf::reacts_to<dir_atom, peer_directory>>::extend_with<status_iface>;
// Replica liveness on PostgreSQL (actors/replica_actor): heartbeats this replica's row, declares
// silent replicas dead and ends their sessions, notices its own lease lost.
using replica_actor =
    caf::typed_actor<caf::reacts_to<lease_atom>>::extend_with<status_iface>; // lease: one round

} // namespace nbm::actors

// --- message types: the type-ID block
// ---------------------------------------------------------
// Every type a message carries, in one place: the block below (types with an inspect() overload)
// and the unsafe list after it. Atoms, the standard scalars, std::string and CAF's own types
// (caf::actor, caf::error, ...) have IDs from CAF's core block. CAF 0.17.6 only checks the block:
// built with CAF_ENABLE_TYPE_ID_CHECKS (caf_core's compile arguments in meson.build), a message
// holding a type that is in neither list does not compile. Moving to CAF 0.18 means adding the
// atoms (CAF_ADD_ATOM) and the unsafe types to this block and calling
// caf::init_global_meta_objects<caf::id_block::nbm>() at start-up.
CAF_BEGIN_TYPE_ID_BLOCK(nbm, caf::first_custom_type_id)
// The status protocol (actors/status.hpp).
CAF_ADD_TYPE_ID(nbm, (nbm::actors::actor_status))
CAF_ADD_TYPE_ID(nbm, (nbm::actors::status_target))
CAF_ADD_TYPE_ID(nbm, (std::vector<nbm::actors::status_target>))
// Records of this file.
CAF_ADD_TYPE_ID(nbm, (nbm::actors::session_event))
CAF_ADD_TYPE_ID(nbm, (nbm::actors::key_update))
CAF_ADD_TYPE_ID(nbm, (nbm::actors::peer_ref))
CAF_ADD_TYPE_ID(nbm, (nbm::actors::principal_lookup))
CAF_ADD_TYPE_ID(nbm, (nbm::actors::logout_outcome))
CAF_ADD_TYPE_ID(nbm, (nbm::actors::sync_verdict))
// Handles sent in messages (a peer actor to its account actor, the directory to the expiry and
// cluster actors, the directory's answers).
CAF_ADD_TYPE_ID(nbm, (nbm::actors::peer_actor))
CAF_ADD_TYPE_ID(nbm, (nbm::actors::account_actor))
CAF_ADD_TYPE_ID(nbm, (nbm::actors::peer_directory))
// Standard containers not in CAF's block.
CAF_ADD_TYPE_ID(nbm, (std::vector<std::string>))
CAF_END_TYPE_ID_BLOCK(nbm)

namespace nbm::actors {
class store_job; // actors/store_worker.hpp
} // namespace nbm::actors

// Unsafe message types: allowed in messages without inspect(), so never serialized or printed by
// CAF (they travel between actors of one process only). Each with the reason it has no inspect().
// core/ stays free of CAF (it includes only the standard library): no inspect() overloads there,
// so core values travel unsafe, and so does every record that holds one.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nbm::core::setup_key)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nbm::core::peer_meta)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nbm::core::peer)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nbm::core::account_note)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nbm::core::cluster_message)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nbm::core::status_write) // the fenced write peer actors hand over
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<nbm::core::activity::event>)
// Records of actors/requests.hpp (a header without CAF: api/grpc and the fuzz targets decode into
// them) holding core values: login_request and sync_open a core::peer_meta, peer_view a
// core::peer.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nbm::actors::login_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nbm::actors::sync_open)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nbm::actors::peer_view)
// Records of this file holding core values: peer_registration a core::peer; login_lookup a
// peer_view, a core::setup_key, JWT groups and activity events; change_outcome a core::problem
// (and an account_ptr); events_outcome activity events.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<nbm::actors::peer_registration>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nbm::actors::login_lookup)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nbm::actors::change_outcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nbm::actors::events_outcome)
// Kept out of CAF's printing (to_string of a message, its log): read_request carries the hash of
// the personal access token the request authenticated with, idp_user a user's email address.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nbm::actors::read_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nbm::actors::idp_user)
// A vector of an enum: CAF 0.17's deserializer of one (caf::data_processor::fill_range) trips
// GCC 12's -Wmaybe-uninitialized, an error here (-Werror).
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nbm::actors::registration_outcome)
// Shared pointers: identity and sharing are the point (an immutable account or map shared by every
// receiver; a sink with one owner at a time); a copy by serialization would defeat it. read_outcome
// is an account_ptr with a failure beside it.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nbm::actors::sink_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nbm::actors::map_update_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nbm::actors::account_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nbm::actors::read_outcome)
// Handed over, never shared: one owner at a time (the change: the actor, then its store worker;
// the store job: its asker, then the worker, then its asker again).
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nbm::actors::admin_change_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<nbm::actors::store_job>)
// Handed back, never shared: a map worker's batch (computed, then the account actor's).
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nbm::actors::map_batch_ptr)
