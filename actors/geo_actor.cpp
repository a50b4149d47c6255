#include "actors/geo_actor.hpp"

#include "geo/geo.hpp"
#include "storage/account_store.hpp"

#include <caf/all.hpp>
#include <soci/soci.h>
#include <spdlog/spdlog.h>

namespace nbm::actors {

namespace {

session_observer::behavior_type geo_impl(session_observer::stateful_pointer<geo_state> self,
                                         storage::db_options db,
                                         std::shared_ptr<const geo::database> g) {
  self->state.db = std::move(db);
  self->state.geo = std::move(g);
  return {
      [self](landed_atom, const session_event& ev) {
        if (!ev.connected || ev.connection_ip.empty())
          return;
        auto& st = self->state;
        ++st.events;
        try {
          if (!st.sql)
            st.sql = std::make_unique<storage::worker_session>(st.db);
          storage::account_store accounts(st.sql->get(), st.db.kind);
          auto p = accounts.peer_by_id(ev.account_id, ev.peer_id);
          if (!p || p->location.connection_ip == ev.connection_ip)
            return; // same address as stored: nothing to look up or write
          core::peer_location loc;
          loc.connection_ip = ev.connection_ip;
          if (auto found = st.geo->lookup(ev.connection_ip)) {
            loc.country_code = found->country_code;
            loc.city_name = found->city_name;
            loc.geo_name_id = found->geo_name_id;
          }
          accounts.update_location(ev.account_id, ev.peer_id, loc);
          ++st.written;
        } catch (const std::exception& e) {
          ++st.errors;
          if (st.sql)
            st.sql->reset();
          spdlog::warn("geolocation of peer {} failed: {}", ev.peer_id, e.what());
        }
      },
      [self](status_atom) {
        auto& st = self->state;
        auto s = status_of(self, "geo");
        s.counters["connects"] = st.events;
        s.counters["locations_written"] = st.written;
        s.counters["errors"] = st.errors;
        return s;
      },
  };
}

} // namespace

session_observer spawn_geo_actor(caf::actor_system& sys, storage::db_options db,
                                 std::shared_ptr<const geo::database> geo) {
  return sys.spawn<caf::detached>(geo_impl, std::move(db), std::move(geo));
}

} // namespace nbm::actors
