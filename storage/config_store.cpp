#include "storage/config_store.hpp"

#include "storage/encode.hpp"

#include <soci/soci.h>

#include <utility>

namespace nbm::storage {

namespace {

using detail::row_values;

// accounts.network_serial + 1; false when there is no such account. Issued first in a write, so on
// PostgreSQL the account's row lock also orders concurrent writes to one account.
bool bump_serial(soci::session& sql, const std::string& account_id) {
  soci::statement st =
      (sql.prepare << "UPDATE accounts SET network_serial = COALESCE(network_serial, 0) + 1 "
                      "WHERE id = :acc",
       soci::use(account_id, "acc"));
  st.execute(true);
  return st.get_affected_rows() > 0;
}

std::uint64_t read_serial(soci::session& sql, const std::string& account_id) {
  long long serial = 0;
  soci::indicator ind = soci::i_null;
  sql << "SELECT network_serial FROM accounts WHERE id = :acc", soci::use(account_id, "acc"),
      soci::into(serial, ind);
  return ind == soci::i_null ? 0 : static_cast<std::uint64_t>(serial);
}

// The account a row of `table` belongs to; nullopt when there is no row with that id.
std::optional<std::string> owner_of(soci::session& sql, const std::string& table,
                                    const std::string& id) {
  std::string account;
  soci::indicator ind = soci::i_null;
  sql << "SELECT account_id FROM " + detail::sql_ident(table) + " WHERE id = :id",
      soci::use(id, "id"), soci::into(account, ind);
  if (!sql.got_data())
    return std::nullopt;
  return ind == soci::i_null ? std::string() : account;
}

// Runs `body` as one transaction; database errors come out as store_error naming `what`.
template <class Body>
auto in_transaction(soci::session& sql, const std::string& what, Body&& body) {
  try {
    soci::transaction tr(sql);
    bool commit = true; // a body that found nothing to do clears it: nothing was written
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

// Every save: bump the serial (refusing an unknown account), refuse an id of another account,
// insert the row or replace the stored one (keeping its public_id), then the child rows.
template <class Children>
saved save_object(soci::session& sql, engine kind, const std::string& what,
                  const std::string& table, const row_values& row, const std::string& id,
                  const std::string& account_id, Children&& children) {
  const std::string label = what + " " + id;
  return in_transaction(sql, "save " + label, [&](bool&) {
    if (account_id.empty() || !bump_serial(sql, account_id))
      throw store_error("save " + label + ": no account '" + account_id + "'");
    auto owner = owner_of(sql, table, id);
    if (owner && *owner != account_id)
      throw store_error("save " + label + ": the id belongs to another account");
    if (owner)
      detail::update_row(sql, kind, table, row, {"id"}, {"public_id"});
    else
      detail::insert_row(sql, kind, table, row);
    children();
    return saved{id, read_serial(sql, account_id)};
  });
}

// Every delete: the row of (account_id, id) or nothing at all, then its child rows, then the bump.
template <class Children>
std::optional<std::uint64_t> delete_object(soci::session& sql, const std::string& what,
                                           const std::string& table, const std::string& account_id,
                                           const std::string& id, Children&& children) {
  return in_transaction(
      sql, "delete " + what + " " + id, [&](bool& commit) -> std::optional<std::uint64_t> {
        soci::statement st = (sql.prepare << "DELETE FROM " + detail::sql_ident(table) +
                                                 " WHERE account_id = :acc AND id = :id",
                              soci::use(account_id, "acc"), soci::use(id, "id"));
        st.execute(true);
        if (st.get_affected_rows() == 0) {
          commit = false;
          return std::nullopt;
        }
        children();
        bump_serial(sql, account_id);
        return read_serial(sql, account_id);
      });
}

// An UPDATE of columns of the accounts row, then the bump; nullopt without the account.
std::optional<std::uint64_t> update_account(soci::session& sql, engine kind,
                                            const std::string& what, const row_values& row,
                                            const std::string& account_id) {
  return in_transaction(sql, what + " of account " + account_id,
                        [&](bool& commit) -> std::optional<std::uint64_t> {
                          if (detail::update_row(sql, kind, "accounts", row, {"id"}) == 0) {
                            commit = false;
                            return std::nullopt;
                          }
                          bump_serial(sql, account_id);
                          return read_serial(sql, account_id);
                        });
}

void delete_children(soci::session& sql, const std::string& table, const std::string& parent_col,
                     const std::string& parent_id) {
  sql << "DELETE FROM " + detail::sql_ident(table) + " WHERE " + parent_col + " = :p",
      soci::use(parent_id, "p");
}

} // namespace

saved config_store::save_group(const core::group& in) {
  core::group g = in;
  g.id = detail::or_new_id(g.id);
  return save_object(sql_, kind_, "group", "groups", detail::group_row(g), g.id, g.account_id, [&] {
    delete_children(sql_, "group_peers", "group_id", g.id);
    for (const auto& peer : g.peers)
      detail::write_group_peer(sql_, kind_, g.account_id, g.id, peer);
  });
}

std::optional<std::uint64_t> config_store::delete_group(const std::string& account_id,
                                                        const std::string& group_id) {
  return delete_object(sql_, "group", "groups", account_id, group_id,
                       [&] { delete_children(sql_, "group_peers", "group_id", group_id); });
}

core::policy config_store::as_saved(const core::policy& in) {
  core::policy p = in;
  p.id = detail::or_new_id(p.id);
  bool policy_id_taken = false;
  for (const auto& x : p.rules)
    policy_id_taken = policy_id_taken || x.id == p.id;
  for (auto& x : p.rules) {
    x.policy_id = p.id;
    if (x.id.empty()) {
      x.id = policy_id_taken ? detail::or_new_id("") : p.id;
      policy_id_taken = true;
    }
  }
  return p;
}

saved config_store::save_policy(const core::policy& in) {
  const core::policy p = as_saved(in);
  return save_object(
      sql_, kind_, "policy", "policies", detail::policy_row(p), p.id, p.account_id, [&] {
        delete_children(sql_, "policy_rules", "policy_id", p.id);
        for (const auto& x : p.rules)
          detail::insert_row(sql_, kind_, "policy_rules", detail::policy_rule_row(x, p.id));
      });
}

std::optional<std::uint64_t> config_store::delete_policy(const std::string& account_id,
                                                         const std::string& policy_id) {
  return delete_object(sql_, "policy", "policies", account_id, policy_id,
                       [&] { delete_children(sql_, "policy_rules", "policy_id", policy_id); });
}

saved config_store::save_route(const core::route& in) {
  core::route r = in;
  r.id = detail::or_new_id(r.id);
  return save_object(sql_, kind_, "route", "routes", detail::route_row(r), r.id, r.account_id,
                     [] {});
}

std::optional<std::uint64_t> config_store::delete_route(const std::string& account_id,
                                                        const std::string& route_id) {
  return delete_object(sql_, "route", "routes", account_id, route_id, [] {});
}

saved config_store::save_nameserver_group(const core::nameserver_group& in) {
  core::nameserver_group g = in;
  g.id = detail::or_new_id(g.id);
  return save_object(sql_, kind_, "nameserver group", "name_server_groups",
                     detail::nameserver_group_row(g), g.id, g.account_id, [] {});
}

std::optional<std::uint64_t> config_store::delete_nameserver_group(const std::string& account_id,
                                                                   const std::string& id) {
  return delete_object(sql_, "nameserver group", "name_server_groups", account_id, id, [] {});
}

std::optional<std::uint64_t> config_store::update_settings(const std::string& account_id,
                                                           const core::account_settings& s) {
  row_values r;
  r.text("id", account_id);
  detail::put_settings(r, s);
  return update_account(sql_, kind_, "update settings", r, account_id);
}

std::optional<std::uint64_t>
config_store::update_dns_settings(const std::string& account_id,
                                  const std::vector<std::string>& disabled_management_groups) {
  row_values r;
  r.text("id", account_id);
  r.strings("dns_settings_disabled_management_groups", disabled_management_groups);
  return update_account(sql_, kind_, "update DNS settings", r, account_id);
}

} // namespace nbm::storage
