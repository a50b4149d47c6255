#include "actors/inspector.hpp"

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_set>

namespace nbm::actors {

namespace {

using json = nlohmann::json;
using inspector_ptr = inspector_actor::stateful_pointer<inspector_state>;

// One round of status questions, all at once, answered within one deadline (never waiting on an
// actor past it). `done` runs exactly once, inside the inspector.
struct round {
  std::vector<actor_status> answers;
  std::vector<status_iface> handles; // who gave each answer (same order)
  std::map<std::string, std::uint64_t> missing;
  std::size_t outstanding = 0;
  std::function<void(round&)> done;
  void finish_one() {
    if (--outstanding == 0 && done) {
      auto d = std::move(done);
      done = nullptr;
      d(*this);
    }
  }
};

void ask_all(inspector_ptr self, std::vector<status_target> targets,
             std::function<void(round&)> done) {
  auto r = std::make_shared<round>();
  r->done = std::move(done);
  std::unordered_set<caf::actor_addr> seen;
  std::vector<status_target> ask;
  for (auto& t : targets)
    if (t.handle && seen.insert(t.handle.address()).second)
      ask.push_back(std::move(t));
  if (ask.empty()) {
    auto d = std::move(r->done);
    d(*r);
    return;
  }
  r->outstanding = ask.size();
  const auto deadline = self->state.cfg.deadline;
  for (auto& t : ask) {
    const auto kind = t.kind;
    self->request(t.handle, deadline, status_atom::value)
        .then(
            [r, h = t.handle](actor_status& s) {
              r->answers.push_back(std::move(s));
              r->handles.push_back(h);
              r->finish_one();
            },
            [self, r, kind](caf::error&) {
              ++r->missing[kind];
              ++self->state.missing;
              r->finish_one();
            });
  }
}

// Lists the actors the directory knows plus the configured others, then asks them all.
void ask_everyone(inspector_ptr self, std::function<void(round&)> done) {
  auto& cfg = self->state.cfg;
  auto others = cfg.others;
  if (!cfg.directory) {
    ask_all(self, std::move(others), std::move(done));
    return;
  }
  self->request(cfg.directory, cfg.deadline, members_atom::value)
      .then(
          [self, others, done](std::vector<status_target>& v) mutable {
            v.insert(v.end(), others.begin(), others.end());
            ask_all(self, std::move(v), std::move(done));
          },
          [self, others, done](caf::error&) mutable {
            ask_all(self, std::move(others), [done](round& r) {
              ++r.missing["directory"];
              done(r);
            });
          });
}

json missing_json(const round& r) {
  json m = json::object();
  for (const auto& [k, n] : r.missing)
    m[k] = n;
  return m;
}

// What a kind handled so far: a peer actor counts every message it handled; other kinds report
// the counters they keep (jobs, writes, ...), summed.
std::uint64_t handled_of(const actor_status& s) {
  if (auto it = s.counters.find("handled"); it != s.counters.end())
    return it->second;
  std::uint64_t n = 0;
  for (const auto& [k, v] : s.counters)
    n += v;
  return n;
}

// Every store worker and status writer with its queue. The queues come from their owners, which
// never block (the loader: jobs handed to each worker and not answered; the status writer: writes
// waiting, and the batch each database worker holds), so a worker inside a long SQL statement is
// still listed with its queue; what a worker says itself (jobs run, its mailbox) is added when it
// answered in time ("answered": false otherwise: it is busy).
json store_queues(const round& r) {
  json out = json::array();
  const actor_status *loader = nullptr, *writer = nullptr;
  std::map<std::string, const actor_status*> workers;
  for (const auto& s : r.answers) {
    if (s.kind == "account_loader")
      loader = &s;
    else if (s.kind == "status_writer")
      writer = &s;
    else if (s.kind == "store_worker")
      workers[s.id] = &s;
  }
  auto worker = [&out](const char* kind, const char* owner, const std::string& id,
                       std::int64_t queue, const actor_status* own) {
    json w = {{"kind", kind}, {"id", id}, {"owner", owner}, {"queue", queue}};
    w["answered"] = own != nullptr;
    w["mailbox"] = own ? json(own->mailbox) : json(nullptr);
    if (own)
      w["counters"] = own->counters;
    out.push_back(std::move(w));
  };
  std::set<std::string> listed;
  if (loader) {
    std::vector<std::string> ids;
    for (std::int64_t i = 0; i < loader->gauge("workers"); ++i)
      ids.push_back(std::to_string(i));
    if (loader->gauges.count("busy_worker_events"))
      ids.push_back("events");
    for (const auto& id : ids) {
      auto it = workers.find(id);
      worker("store_worker", "account_loader", id, loader->gauge("busy_worker_" + id),
             it == workers.end() ? nullptr : it->second);
      listed.insert(id);
    }
  }
  if (writer) {
    out.push_back({{"kind", "status_writer"},
                   {"id", writer->id},
                   {"owner", ""},
                   {"queue", writer->gauge("queued")},
                   {"in_flight", writer->gauge("in_flight")},
                   {"answered", true},
                   {"mailbox", writer->mailbox}});
    for (std::int64_t i = 0; i < writer->gauge("workers"); ++i) {
      const auto id = "status_" + std::to_string(i);
      auto it = workers.find(id);
      worker("store_worker", "status_writer", id, writer->gauge("in_flight_worker_" + id),
             it == workers.end() ? nullptr : it->second);
      listed.insert(id);
    }
  }
  for (const auto& [id, s] : workers) // answered, but its owner did not: its own mailbox
    if (!listed.count(id))
      worker("store_worker", "", id, s->mailbox, s);
  return out;
}

json overview(const round& first, const round& second, double seconds) {
  std::map<std::string, std::uint64_t> count, before, after;
  for (const auto& s : first.answers)
    before[s.kind] += handled_of(s);
  std::vector<const actor_status*> by_depth;
  for (const auto& s : second.answers) {
    ++count[s.kind];
    after[s.kind] += handled_of(s);
    by_depth.push_back(&s);
  }
  std::sort(by_depth.begin(), by_depth.end(),
            [](auto* a, auto* b) { return a->mailbox > b->mailbox; });
  json out;
  out["command"] = "overview";
  json kinds = json::object();
  for (const auto& [k, n] : count) {
    const auto b = before.count(k) ? before[k] : after[k];
    const double rate = after[k] >= b && seconds > 0 ? (after[k] - b) / seconds : 0.0;
    kinds[k] = {{"actors", n}, {"handled", after[k]}, {"per_second", rate}};
  }
  out["kinds"] = kinds;
  json top = json::array();
  for (std::size_t i = 0; i < by_depth.size() && i < 10; ++i)
    top.push_back(
        {{"kind", by_depth[i]->kind}, {"id", by_depth[i]->id}, {"mailbox", by_depth[i]->mailbox}});
  out["top_mailboxes"] = top;
  out["store_workers"] = store_queues(second);
  out["rate_window_ms"] = static_cast<std::int64_t>(seconds * 1000);
  out["missing"] = missing_json(second);
  return out;
}

json ring_json(const std::string& text) {
  json out = json::array();
  std::stringstream all(text);
  for (std::string item; std::getline(all, item, ';');) {
    std::stringstream f(item);
    std::uint64_t seq = 0, token = 0, serial = 0;
    std::int64_t at = 0;
    std::string what;
    if (f >> seq >> at >> what >> token >> serial)
      out.push_back({{"seq", seq},
                     {"at_ms", at},
                     {"what", what},
                     {"dir", what == "attach" ? "out" : "in"},
                     {"token", token},
                     {"serial", serial}});
  }
  return out;
}

json error_json(const std::string& command, const std::string& message) {
  return {{"command", command}, {"error", message}};
}

// The first word and the rest of a question.
std::vector<std::string> words(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream in(line);
  for (std::string w; in >> w;)
    out.push_back(w);
  return out;
}

// Every account actor's account (as committed: no store read), for peer lookups by key or name.
struct peer_row {
  std::string id, account, key, name, ip;
};

void list_peers(inspector_ptr self, std::function<void(std::vector<peer_row>, round&)> done) {
  ask_everyone(self, [self, done](round& r) {
    std::vector<account_actor> accounts;
    auto& cfg = self->state.cfg;
    (void)cfg;
    auto rr = std::make_shared<round>(std::move(r));
    auto rows = std::make_shared<std::vector<peer_row>>();
    // The account ids came back in the status answers; the directory finds their actors.
    std::vector<std::string> ids;
    for (const auto& s : rr->answers)
      if (s.kind == "account")
        ids.push_back(s.id);
    if (ids.empty() || !self->state.cfg.directory) {
      done(*rows, *rr);
      return;
    }
    auto left = std::make_shared<std::size_t>(ids.size());
    auto finish = [rows, rr, left, done]() {
      if (--*left == 0)
        done(*rows, *rr);
    };
    for (const auto& id : ids) {
      self->request(self->state.cfg.directory, self->state.cfg.deadline, find_account_atom::value,
                    id)
          .then(
              [self, rows, finish](const account_actor& a) {
                self->request(a, self->state.cfg.deadline, snapshot_atom::value, std::uint64_t{0})
                    .then(
                        [rows, finish](const account_ptr& acc) {
                          if (acc)
                            for (const auto& p : acc->peers)
                              rows->push_back({p.id, p.account_id, p.key, p.name, p.ip});
                          finish();
                        },
                        [finish](caf::error&) { finish(); });
              },
              [finish](caf::error&) { finish(); });
    }
  });
}

// A peer by id, key or name: its row (from the account actors) and its actor here, if any.
struct peer_hit {
  std::optional<peer_row> row;
  const actor_status* st = nullptr; // its peer actor's answer (null: none here)
  status_iface handle;              // that actor
};

void find_peer(inspector_ptr self, std::string query, std::function<void(peer_hit&, round&)> done) {
  list_peers(self, [query, done](std::vector<peer_row> rows, round& r) {
    peer_hit h;
    for (const auto& p : rows)
      if (p.id == query || p.key == query || p.name == query) {
        h.row = p;
        break;
      }
    // A peer actor this replica runs but whose account it has not loaded: by id still.
    for (std::size_t i = 0; i < r.answers.size(); ++i) {
      const auto& s = r.answers[i];
      if (s.kind == "peer" && (s.id == query || (h.row && s.id == h.row->id))) {
        h.st = &s;
        h.handle = r.handles[i];
      }
    }
    done(h, r);
  });
}

void answer_peer(inspector_ptr self, caf::typed_response_promise<std::string> rp, std::string query,
                 std::uint64_t since) {
  find_peer(self, std::move(query), [self, rp, since](peer_hit& h, round& r) mutable {
    const auto* hit = h.row ? &*h.row : nullptr;
    const auto* st = h.st;
    if (!hit && !st) {
      rp.deliver(error_json("peer", "no peer with this id, key or name on this replica").dump());
      return;
    }
    json out;
    out["command"] = "peer";
    out["id"] = hit ? hit->id : st->id;
    if (hit) {
      out["account"] = hit->account;
      out["key"] = hit->key;
      out["name"] = hit->name;
      out["ip"] = hit->ip;
    } else {
      out["account"] = st->label("account");
    }
    const auto& self_id = self->state.cfg.replica_id;
    if (st) {
      const bool held = st->gauge("has_sink") != 0 && st->gauge("token") != 0;
      out["actor"] = true;
      out["session_token"] = st->gauge("token");
      out["stream"] = held ? "open" : (st->gauge("token") != 0 ? "connecting" : "none");
      out["last_map_serial"] = st->gauge("last_map_serial");
      out["last_map_peers"] = st->gauge("last_map_peers");
      out["last_map_rules"] = st->gauge("last_map_rules");
      out["handled"] = st->counter("handled");
      out["tracers"] = st->gauge("tracers");
      out["mailbox"] = st->mailbox;
      out["counters"] = st->counters;
      json ring = ring_json(st->label("ring"));
      json later = json::array();
      for (auto& e : ring)
        if (e["seq"].get<std::uint64_t>() > since)
          later.push_back(e);
      out["messages"] = later;
      out["replica"] = held ? json(self_id) : json(nullptr);
    } else {
      out["actor"] = false; // no actor here: the peer never synced with this replica
      out["stream"] = "none";
      out["messages"] = json::array();
      out["replica"] = nullptr;
    }
    out["missing"] = missing_json(r);
    rp.deliver(out.dump());
  });
}

// `trace <peer>`: attaches `tracer` to the peer's actor, which answers the ring as it stood.
void start_trace(inspector_ptr self, caf::typed_response_promise<std::string> rp, std::string query,
                 caf::actor tracer) {
  find_peer(self, std::move(query), [self, rp, tracer](peer_hit& h, round&) mutable {
    if (!h.row && !h.st) {
      rp.deliver(error_json("trace", "no peer with this id, key or name on this replica").dump());
      return;
    }
    if (!h.st) {
      rp.deliver(error_json("trace", "this peer has no actor on this replica (it never synced "
                                     "here): nothing to trace")
                     .dump());
      return;
    }
    json head;
    head["command"] = "trace";
    head["id"] = h.st->id;
    head["account"] = h.row ? h.row->account : h.st->label("account");
    head["name"] = h.row ? json(h.row->name) : json(nullptr);
    auto peer = caf::actor_cast<peer_actor>(h.handle);
    // If this deadline passes but the actor attaches later, the tracer is dropped when the
    // listener lets it go (the actor monitors it).
    self->request(peer, self->state.cfg.deadline, trace_atom::value, tracer)
        .then(
            [rp, head](std::string& ring) mutable {
              head["messages"] = ring_json(ring);
              std::uint64_t seq = 0;
              for (const auto& e : head["messages"])
                seq = std::max(seq, e["seq"].get<std::uint64_t>());
              head["seq"] = seq; // every later message comes with seq + 1, + 2, ...
              rp.deliver(head.dump());
            },
            [rp](caf::error&) mutable {
              rp.deliver(
                  error_json("trace", "the peer actor did not answer in time: try again").dump());
            });
  });
}

json replica_json(const replica_view& v) {
  json j = {{"id", v.id},
            {"self", v.self},
            {"alive", v.alive},
            {"peers_held", v.peers_held},
            {"address", v.address.empty() ? json(nullptr) : json(v.address)},
            {"host", v.host.empty() ? json(nullptr) : json(v.host)},
            {"pid", v.pid > 0 ? json(v.pid) : json(nullptr)}};
  if (v.lease_ms > 0) {
    j["lease_ms"] = v.lease_ms;
    j["heartbeat_at_ms"] = v.heartbeat_at_ms;
    j["heartbeat_age_ms"] = v.heartbeat_age_ms;
    // Positive: the lease runs that much longer without another heartbeat; negative: past it
    // (a survivor declares the replica dead within a second of that).
    j["lease_expires_in_ms"] = v.lease_ms - v.heartbeat_age_ms;
    j["started_at_ms"] = v.started_at_ms;
    j["sessions_recorded"] = v.sessions_recorded;
  } else {
    j["lease_ms"] = nullptr; // no lease protocol (one process on SQLite)
  }
  return j;
}

} // namespace

inspector_actor spawn_inspector(caf::actor_system& sys, inspector_config cfg) {
  return sys.spawn([cfg = std::move(cfg)](inspector_actor::stateful_pointer<inspector_state> self)
                       -> inspector_actor::behavior_type {
    self->state.cfg = cfg;
    return {
        [self](inspect_atom, const std::string& line) -> caf::result<std::string> {
          auto& st = self->state;
          const auto w = words(line);
          if (w.empty()) {
            ++st.refused;
            return error_json("", "empty command").dump();
          }
          const auto& cmd = w[0];
          auto rp = self->make_response_promise<std::string>();
          if (cmd == "overview" && w.size() == 1) {
            ++st.questions;
            ask_everyone(self, [self, rp](round& first) mutable {
              auto a = std::make_shared<round>(std::move(first));
              const auto t0 = std::chrono::steady_clock::now();
              // The second round, one rate window later (the inspector stays free meanwhile).
              const auto id = ++self->state.next_later;
              self->state.later[id] = [self, rp, a, t0]() mutable {
                ask_everyone(self, [rp, a, t0](round& second) mutable {
                  const double secs =
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                  rp.deliver(overview(*a, second, secs).dump());
                });
              };
              self->delayed_send(self, self->state.cfg.rate_window, later_atom::value, id);
            });
            return rp;
          }
          if (cmd == "peers" && w.size() == 1) {
            ++st.questions;
            list_peers(self, [rp](std::vector<peer_row> rows, round& r) mutable {
              json out;
              out["command"] = "peers";
              json list = json::array();
              for (const auto& p : rows)
                list.push_back({{"id", p.id},
                                {"name", p.name},
                                {"key", p.key},
                                {"account", p.account},
                                {"ip", p.ip}});
              out["peers"] = list;
              out["missing"] = missing_json(r);
              rp.deliver(out.dump());
            });
            return rp;
          }
          if (cmd == "peer" && (w.size() == 2 || (w.size() == 4 && w[2] == "since"))) {
            ++st.questions;
            std::uint64_t since = 0;
            if (w.size() == 4) {
              try {
                since = std::stoull(w[3]);
              } catch (const std::exception&) {
                ++st.refused;
                return error_json("peer", "since: not a number").dump();
              }
            }
            answer_peer(self, rp, w[1], since);
            return rp;
          }
          if (cmd == "account" && w.size() == 2) {
            ++st.questions;
            const auto id = w[1];
            ask_everyone(self, [rp, id](round& r) mutable {
              const actor_status* a = nullptr;
              std::vector<std::string> connected;
              for (const auto& s : r.answers) {
                if (s.kind == "account" && s.id == id)
                  a = &s;
                if (s.kind == "peer" && s.label("account") == id && s.gauge("has_sink") != 0)
                  connected.push_back(s.id);
              }
              if (!a) {
                rp.deliver(
                    error_json("account", "no account actor with this id on this replica").dump());
                return;
              }
              std::sort(connected.begin(), connected.end());
              json out;
              out["command"] = "account";
              out["id"] = id;
              out["serial"] = a->gauge("serial");
              out["peers"] = a->gauge("peers");
              out["connected"] = a->gauge("connected");
              out["connected_peers"] = connected;
              out["last_fanout_us"] = a->gauge("last_fanout_us");
              out["last_fanout_maps"] = a->gauge("last_fanout_maps");
              out["pending_changes"] = a->gauge("pending_changes");
              out["pending_registrations"] = a->gauge("pending_registrations");
              out["pending_meta"] = a->gauge("pending_meta");
              out["maps_in_flight"] = a->gauge("maps_in_flight");
              out["awaiting_first_map"] = a->gauge("awaiting_first_map");
              out["mailbox"] = a->mailbox;
              out["counters"] = a->counters;
              out["missing"] = missing_json(r);
              rp.deliver(out.dump());
            });
            return rp;
          }
          if (cmd == "replicas" && w.size() == 1) {
            ++st.questions;
            ask_everyone(self, [self, rp](round& r) mutable {
              // The streams this replica holds, counted from its peer actors.
              std::int64_t streams = 0;
              for (const auto& s : r.answers)
                if (s.kind == "peer" && s.gauge("has_sink") != 0 && s.gauge("token") != 0)
                  ++streams;
              replica_table t;
              if (self->state.cfg.replicas)
                t = self->state.cfg.replicas();
              const bool table = !t.replicas.empty();
              if (!table) {
                replica_view me;
                me.id = self->state.cfg.replica_id;
                me.self = true;
                me.peers_held = streams;
                t.replicas.push_back(me);
              }
              json out;
              out["command"] = "replicas";
              json list = json::array();
              for (const auto& v : t.replicas)
                list.push_back(replica_json(v));
              out["replicas"] = list;
              out["source"] = table ? "replica table" : "this replica only";
              out["read_age_ms"] = table ? json(t.read_age_ms) : json(nullptr);
              if (!t.error.empty())
                out["read_error"] = t.error;
              out["streams_here"] = streams;
              out["missing"] = missing_json(r);
              rp.deliver(out.dump());
            });
            return rp;
          }
          ++st.refused;
          rp.deliver(error_json(cmd.substr(0, 32), "unknown command or wrong arguments (try: "
                                                   "overview, peers, peer <id|key|name>, "
                                                   "account <id>, replicas)")
                         .dump());
          return rp;
        },
        [self](trace_atom, const std::string& query,
               const caf::actor& tracer) -> caf::result<std::string> {
          ++self->state.questions;
          auto rp = self->make_response_promise<std::string>();
          start_trace(self, rp, query, tracer);
          return rp;
        },
        [self](later_atom, std::uint64_t id) {
          auto it = self->state.later.find(id);
          if (it == self->state.later.end())
            return;
          auto f = std::move(it->second);
          self->state.later.erase(it);
          f();
        },
        [self](status_atom) {
          auto s = status_of(self, "inspector");
          s.counters["questions"] = self->state.questions;
          s.counters["refused"] = self->state.refused;
          s.counters["missing"] = self->state.missing;
          return s;
        },
    };
  });
}

} // namespace nbm::actors
