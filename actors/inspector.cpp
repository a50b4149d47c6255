#include "actors/inspector.hpp"

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <memory>
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
            [r](actor_status& s) {
              r->answers.push_back(std::move(s));
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

json overview(const round& first, const round& second, double seconds) {
  std::map<std::string, std::uint64_t> count, before, after;
  for (const auto& s : first.answers)
    before[s.kind] += handled_of(s);
  std::vector<const actor_status*> by_depth;
  json workers = json::array();
  for (const auto& s : second.answers) {
    ++count[s.kind];
    after[s.kind] += handled_of(s);
    by_depth.push_back(&s);
    if (s.kind == "store_worker" || s.kind == "status_db_worker")
      workers.push_back({{"kind", s.kind}, {"id", s.id}, {"queue", s.mailbox}});
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
  out["store_workers"] = workers;
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

void answer_peer(inspector_ptr self, caf::typed_response_promise<std::string> rp, std::string query,
                 std::uint64_t since) {
  list_peers(self, [self, rp, query, since](std::vector<peer_row> rows, round& r) mutable {
    const peer_row* hit = nullptr;
    for (const auto& p : rows)
      if (p.id == query || p.key == query || p.name == query) {
        hit = &p;
        break;
      }
    // A peer actor this replica runs but whose account it has not loaded: by id still.
    const actor_status* st = nullptr;
    for (const auto& s : r.answers)
      if (s.kind == "peer" && (s.id == query || (hit && s.id == hit->id)))
        st = &s;
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
              self->delayed_send(self, self->state.cfg.rate_window, inspect_atom::value, id);
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
              std::vector<replica_view> reps;
              if (self->state.cfg.replicas)
                reps = self->state.cfg.replicas();
              if (reps.empty()) {
                replica_view me;
                me.id = self->state.cfg.replica_id;
                me.self = true;
                me.peers_held = 0;
                for (const auto& s : r.answers)
                  if (s.kind == "peer" && s.gauge("has_sink") != 0 && s.gauge("token") != 0)
                    ++me.peers_held;
                reps.push_back(me);
              }
              json out;
              out["command"] = "replicas";
              json list = json::array();
              for (const auto& v : reps)
                list.push_back({{"id", v.id},
                                {"lease", v.lease.empty() ? json(nullptr) : json(v.lease)},
                                {"peers_held", v.peers_held},
                                {"self", v.self}});
              out["replicas"] = list;
              out["source"] = self->state.cfg.replicas ? "replica table" : "this replica only";
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
        [self](inspect_atom, std::uint64_t id) {
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
