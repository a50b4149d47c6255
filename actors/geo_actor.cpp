#include "actors/geo_actor.hpp"

#include "geo/geo.hpp"
#include "storage/account_store.hpp"

#include <caf/all.hpp>
#include <soci/soci.h>
#include <spdlog/spdlog.h>

namespace nbm::actors {

namespace {

// One landed connect: the stored location read, looked up and written when the address moved.
struct locate_job : store_job {
  session_event ev;
  std::shared_ptr<const geo::database> geo;
  bool written = false;

  void run(soci::session& sql, storage::engine kind) override {
    written = false;
    storage::account_store accounts(sql, kind);
    auto p = accounts.peer_by_id(ev.account_id, ev.peer_id);
    if (!p || p->location.connection_ip == ev.connection_ip)
      return; // same address as stored: nothing to look up or write
    core::peer_location loc;
    loc.connection_ip = ev.connection_ip;
    if (auto found = geo->lookup(ev.connection_ip)) {
      loc.country_code = found->country_code;
      loc.city_name = found->city_name;
      loc.geo_name_id = found->geo_name_id;
    }
    accounts.update_location(ev.account_id, ev.peer_id, loc);
    written = true;
  }
  std::string what() const override { return "geolocation of peer " + ev.peer_id; }
};

session_observer::behavior_type geo_impl(session_observer::stateful_pointer<geo_state> self,
                                         storage::db_options db,
                                         std::shared_ptr<const geo::database> g, bool detached) {
  auto& st = self->state;
  st.geo = std::move(g);
  st.worker = spawn_store_worker(self->system(), std::move(db), detached, "geo");
  self->link_to(*st.worker); // the worker lives and dies with it
  return {
      [self](landed_atom, const session_event& ev) {
        if (!ev.connected || ev.connection_ip.empty())
          return;
        auto& st = self->state;
        ++st.events;
        auto job = std::make_shared<locate_job>();
        job->ev = ev;
        job->geo = st.geo;
        ++st.busy;
        self->request(*st.worker, caf::infinite, run_atom::value, store_job_ptr(job))
            .then(
                [self, job](const store_job_ptr&) {
                  auto& st = self->state;
                  --st.busy;
                  if (job->failure != store_failure::none) {
                    ++st.errors;
                    spdlog::warn("geolocation of peer {} failed: {}", job->ev.peer_id, job->error);
                  } else if (job->written)
                    ++st.written;
                },
                [self](caf::error&) { // the worker is gone (shutting down)
                  --self->state.busy;
                  ++self->state.errors;
                });
      },
      [self](status_atom) {
        auto& st = self->state;
        auto s = status_of(self, "geo");
        s.counters["connects"] = st.events;
        s.counters["locations_written"] = st.written;
        s.counters["errors"] = st.errors;
        s.gauges["busy_worker_geo"] = static_cast<std::int64_t>(st.busy);
        return s;
      },
  };
}

} // namespace

session_observer spawn_geo_actor(caf::actor_system& sys, storage::db_options db,
                                 std::shared_ptr<const geo::database> geo, bool detached) {
  return sys.spawn(geo_impl, std::move(db), std::move(geo), detached);
}

} // namespace nbm::actors
