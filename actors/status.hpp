// The one status protocol: every long-lived actor answers `status_atom` with one `actor_status`
// record (its kind, its id, its mailbox depth, named gauges and counters). Every actor interface
// extends `status_iface`, so any handle converts to a `status_iface` and can be asked the same way
// (api/metrics asks them all in parallel with a deadline; see actors/status_probe.hpp).
// Kept apart from interfaces.hpp and free of the domain: a reader of status needs nothing else.
#pragma once

#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <cstdint>
#include <map>
#include <string>

namespace nbm::actors {

// "How are you?": asked of any actor, answered with its actor_status. Used for nothing else.
using status_atom = caf::atom_constant<caf::atom("status")>;

// What one actor says about itself. Values are copied at the moment of asking.
struct actor_status {
  std::string kind;          // "peer", "account", "status_writer", ... (one per actor kind)
  std::string id;            // which one of its kind ("" for the one per process)
  std::int64_t mailbox = -1; // messages waiting in its mailbox when it answered; -1: unknown
  std::map<std::string, std::int64_t> gauges;    // current values (may go down)
  std::map<std::string, std::uint64_t> counters; // monotonic since the actor started
  std::map<std::string, std::string> labels;     // text (the account a peer actor belongs to)

  std::int64_t gauge(const std::string& name) const {
    auto it = gauges.find(name);
    return it == gauges.end() ? 0 : it->second;
  }
  std::uint64_t counter(const std::string& name) const {
    auto it = counters.find(name);
    return it == counters.end() ? 0 : it->second;
  }
  std::string label(const std::string& name) const {
    auto it = labels.find(name);
    return it == labels.end() ? std::string() : it->second;
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, actor_status& x) {
  return f(caf::meta::type_name("actor_status"), x.kind, x.id, x.mailbox, x.gauges, x.counters,
           x.labels);
}

// The part every actor interface shares (caf::typed_actor<...>::extend_with<status_iface>).
using status_iface = caf::typed_actor<caf::replies_to<status_atom>::with<actor_status>>;

// An actor to ask, with the kind it is (so one that does not answer is reported by kind).
struct status_target {
  std::string kind;
  status_iface handle;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, status_target& x) {
  return f(caf::meta::type_name("status_target"), x.kind, x.handle);
}

// The start of an answer: kind, id and the asking actor's mailbox depth (`self` is the actor
// answering, inside its handler; only the owner may look at its mailbox).
template <class Self>
actor_status status_of(Self* self, std::string kind, std::string id = {}) {
  actor_status s;
  s.kind = std::move(kind);
  s.id = std::move(id);
  s.mailbox = static_cast<std::int64_t>(self->mailbox().size());
  return s;
}

// Per-kind records (peer_state_record, ...) as views of an actor_status. A record lists its fields
// once, `template <class V> void fields(V& v, R& r)` calling v.label / v.gauge / v.counter with a
// name and a reference; these two visitors turn it into an actor_status and back.
struct status_writer_visitor {
  actor_status& out;
  void label(const char* name, const std::string& v) { out.labels[name] = v; }
  template <class T>
  void gauge(const char* name, const T& v) {
    out.gauges[name] = static_cast<std::int64_t>(v);
  }
  void counter(const char* name, std::uint64_t v) { out.counters[name] = v; }
};

struct status_reader_visitor {
  const actor_status& in;
  void label(const char* name, std::string& v) { v = in.label(name); }
  template <class T>
  void gauge(const char* name, T& v) {
    v = static_cast<T>(in.gauge(name));
  }
  void counter(const char* name, std::uint64_t& v) { v = in.counter(name); }
};

template <class Record>
void put_record(actor_status& out, const Record& r) {
  status_writer_visitor v{out};
  fields(v, const_cast<Record&>(r)); // the writer only reads
}

template <class Record>
Record record_of(const actor_status& s) {
  Record r;
  status_reader_visitor v{s};
  fields(v, r);
  return r;
}

} // namespace nbm::actors
