#include "storage/network_store.hpp"

#include "crypto/crypto.hpp"
#include "storage/encode.hpp"

#include <nlohmann/json.hpp>
#include <soci/soci.h>

namespace nbm::storage {

namespace {

bool bump_serial(soci::session& sql, const std::string& account_id) {
  soci::statement st =
      (sql.prepare << "UPDATE accounts SET network_serial = COALESCE(network_serial, 0) + 1 "
                      "WHERE id = :acc",
       soci::use(account_id, "acc"));
  st.execute(true);
  return st.get_affected_rows() > 0;
}

bool exists(soci::session& sql, const std::string& table, const std::string& account_id,
            const std::string& id) {
  int n = 0;
  sql << "SELECT COUNT(*) FROM " + detail::sql_ident(table) +
             " WHERE account_id = :acc AND id = :id",
      soci::use(account_id, "acc"), soci::use(id, "id"), soci::into(n);
  return n > 0;
}

std::size_t delete_where(soci::session& sql, const std::string& table, const std::string& column,
                         const std::string& account_id, const std::string& value) {
  soci::statement st =
      (sql.prepare << "DELETE FROM " + detail::sql_ident(table) + " WHERE account_id = :acc AND " +
                          detail::sql_ident(column) + " = :v",
       soci::use(account_id, "acc"), soci::use(value, "v"));
  st.execute(true);
  return static_cast<std::size_t>(st.get_affected_rows());
}

// The groups' resources column, as NetBird writes it ([{"ID":..,"Type":..}]).
void write_group_resources(soci::session& sql, engine kind, const std::vector<core::group>& gs) {
  for (const auto& g : gs) {
    detail::row_values r;
    r.text("id", g.id);
    r.text("account_id", g.account_id);
    nlohmann::ordered_json res = nlohmann::ordered_json::array();
    for (const auto& x : g.resources)
      res.push_back({{"ID", x.id}, {"Type", x.type}});
    r.json_text("resources", res.dump());
    detail::update_row(sql, kind, "groups", r, {"id", "account_id"});
  }
}

template <class Body>
auto in_transaction(soci::session& sql, const std::string& what, Body&& body) {
  try {
    soci::transaction tr(sql);
    bool commit = true;
    auto result = body(commit);
    if (commit)
      tr.commit();
    else
      tr.rollback();
    return result;
  } catch (const store_error&) {
    throw;
  } catch (const std::exception& e) {
    throw store_error(what + ": " + e.what());
  }
}

// Inserts or replaces one row of (account, id), keeping a stored row's public_id.
std::string upsert(soci::session& sql, engine kind, const std::string& table,
                   const detail::row_values& row, const std::string& account_id,
                   const std::string& id) {
  if (!bump_serial(sql, account_id))
    return "";
  if (exists(sql, table, account_id, id))
    detail::update_row(sql, kind, table, row, {"id", "account_id"}, {"public_id"});
  else
    detail::insert_row(sql, kind, table, row);
  return id;
}

} // namespace

std::string network_store::save_network(const core::network_def& in) {
  auto n = in;
  n.id = detail::or_new_id(n.id);
  return in_transaction(sql_, "save network", [&](bool& commit) {
    auto id = upsert(sql_, kind_, "networks", detail::network_row(n), n.account_id, n.id);
    commit = !id.empty();
    return id;
  });
}

bool network_store::delete_network(const std::string& account_id, const std::string& id,
                                   const std::vector<core::group>& touched) {
  return in_transaction(sql_, "delete network", [&](bool& commit) {
    if (delete_where(sql_, "networks", "id", account_id, id) == 0)
      return commit = false;
    delete_where(sql_, "network_resources", "network_id", account_id, id);
    delete_where(sql_, "network_routers", "network_id", account_id, id);
    write_group_resources(sql_, kind_, touched);
    bump_serial(sql_, account_id);
    return true;
  });
}

std::string network_store::save_resource(const core::network_resource& r,
                                         const std::vector<core::group>& touched) {
  return in_transaction(sql_, "save network resource", [&](bool& commit) {
    auto id = upsert(sql_, kind_, "network_resources", detail::network_resource_row(r),
                     r.account_id, r.id);
    commit = !id.empty();
    if (commit)
      write_group_resources(sql_, kind_, touched);
    return id;
  });
}

bool network_store::delete_resource(const std::string& account_id, const std::string& id,
                                    const std::vector<core::group>& touched) {
  return in_transaction(sql_, "delete network resource", [&](bool& commit) {
    if (delete_where(sql_, "network_resources", "id", account_id, id) == 0)
      return commit = false;
    write_group_resources(sql_, kind_, touched);
    bump_serial(sql_, account_id);
    return true;
  });
}

std::string network_store::save_router(const core::network_router& in) {
  auto r = in;
  r.id = detail::or_new_id(r.id);
  return in_transaction(sql_, "save network router", [&](bool& commit) {
    auto id =
        upsert(sql_, kind_, "network_routers", detail::network_router_row(r), r.account_id, r.id);
    commit = !id.empty();
    return id;
  });
}

bool network_store::delete_router(const std::string& account_id, const std::string& id) {
  return in_transaction(sql_, "delete network router", [&](bool& commit) {
    if (delete_where(sql_, "network_routers", "id", account_id, id) == 0)
      return commit = false;
    bump_serial(sql_, account_id);
    return true;
  });
}

// A new check is written with a serial bump too (NetBird's create moves no serial; here the bump
// is what tells the other replicas of the cluster that the account changed).
std::string network_store::save_posture_check(const core::posture_check& in) {
  auto c = in;
  c.id = detail::or_new_id(c.id);
  detail::row_values r;
  r.text("id", c.id);
  r.text("name", c.name);
  r.text("description", c.description);
  r.text("account_id", c.account_id);
  r.text("public_id", crypto::random_id());
  r.json_text("checks", c.checks_json);
  return in_transaction(sql_, "save posture checks", [&](bool& commit) {
    auto id = upsert(sql_, kind_, "posture_checks", r, c.account_id, c.id);
    commit = !id.empty();
    return id;
  });
}

bool network_store::delete_posture_check(const std::string& account_id, const std::string& id) {
  return in_transaction(sql_, "delete posture checks", [&](bool& commit) {
    if (delete_where(sql_, "posture_checks", "id", account_id, id) == 0)
      return commit = false;
    bump_serial(sql_, account_id);
    return true;
  });
}

} // namespace nbm::storage
