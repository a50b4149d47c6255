#include "storage/event_store.hpp"

#include "storage/admin_store.hpp"

#include <nlohmann/json.hpp>
#include <soci/soci.h>

#include <cstdlib>
#include <filesystem>

namespace nbm::storage {

namespace {

using json = nlohmann::json;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string meta_json(const core::activity::event& e) {
  json m = json::object();
  const bool user_deleted = e.activity == core::activity::user_deleted;
  for (const auto& [k, v] : e.m) {
    if (user_deleted && (k == "email" || k == "name"))
      continue;
    std::visit([&, key = k](const auto& x) { m[key] = x; }, v);
  }
  return m.dump(-1, ' ', false, json::error_handler_t::replace);
}

core::activity::meta meta_of(const std::string& text) {
  core::activity::meta out;
  const auto j = json::parse(text, nullptr, false);
  if (!j.is_object())
    return out;
  for (const auto& [k, v] : j.items()) {
    if (v.is_boolean())
      out.emplace_back(k, v.get<bool>());
    else if (v.is_number_integer())
      out.emplace_back(k, v.get<std::int64_t>());
    else if (v.is_string())
      out.emplace_back(k, v.get<std::string>());
    else
      out.emplace_back(k, v.dump());
  }
  return out;
}

} // namespace

db_options events_db_options(const std::string& datadir) {
  db_options o;
  const auto kind = env("NB_ACTIVITY_EVENT_STORE_ENGINE");
  if (kind.empty() || kind == "sqlite") {
    o.kind = engine::sqlite;
    auto file = env("NB_ACTIVITY_EVENT_SQLITE_FILE");
    if (file.empty())
      file = "events.db";
    o.target = std::filesystem::path(file).is_absolute()
                   ? file
                   : (std::filesystem::path(datadir) / file).string();
  } else if (kind == "postgres") {
    o.kind = engine::postgres;
    o.target = env("NB_ACTIVITY_EVENT_POSTGRES_DSN");
    if (o.target.empty())
      throw store_error("NB_ACTIVITY_EVENT_POSTGRES_DSN environment variable not set");
  } else {
    throw store_error("unsupported store engine: " + kind.substr(0, 32));
  }
  o.pool_size = 1;
  return o;
}

void event_store::ensure_schema() {
  if (kind_ == engine::postgres) {
    sql_ << "CREATE TABLE IF NOT EXISTS events (timestamp timestamptz, activity bigint, id "
            "bigserial PRIMARY KEY, initiator_id text, target_id text, account_id text, meta text)";
    sql_ << "CREATE TABLE IF NOT EXISTS deleted_users (id text PRIMARY KEY, email text NOT NULL, "
            "name text, enc_algo text NOT NULL)";
  } else {
    sql_ << "CREATE TABLE IF NOT EXISTS `events` (`timestamp` datetime,`activity` integer,`id` "
            "integer PRIMARY KEY AUTOINCREMENT,`initiator_id` text,`target_id` text,`account_id` "
            "text,`meta` text)";
    sql_ << "CREATE TABLE IF NOT EXISTS `deleted_users` (`id` text,`email` text NOT NULL,`name` "
            "text,`enc_algo` text NOT NULL,PRIMARY KEY (`id`))";
  }
  sql_ << "CREATE INDEX IF NOT EXISTS idx_events_account_id ON events (account_id)";
}

void event_store::append(const std::vector<core::activity::event>& events) {
  if (events.empty())
    return;
  const std::string ts_expr =
      kind_ == engine::postgres ? "CAST(:ts AS timestamptz)" : std::string(":ts");
  soci::transaction tr(sql_);
  for (const auto& e : events) {
    const std::string ts = e.timestamp.empty() ? store_time() : e.timestamp;
    const std::string meta = meta_json(e);
    const int activity = e.activity;
    sql_ << "INSERT INTO events (timestamp, activity, initiator_id, target_id, account_id, meta) "
            "VALUES (" +
                ts_expr + ", :a, :i, :t, :acc, :m)",
        soci::use(ts, "ts"), soci::use(activity, "a"), soci::use(e.initiator_id, "i"),
        soci::use(e.target_id, "t"), soci::use(e.account_id, "acc"), soci::use(meta, "m");
  }
  tr.commit();
}

std::vector<core::activity::event> event_store::list(const std::string& account_id,
                                                     std::size_t offset, std::size_t limit,
                                                     bool descending) {
  const std::string dir = descending ? "DESC" : "ASC";
  const std::string ts = kind_ == engine::postgres ? "to_char(timestamp AT TIME ZONE 'UTC', "
                                                     "'YYYY-MM-DD HH24:MI:SS.US') || '+00:00'"
                                                   : "CAST(timestamp AS TEXT)";
  const long long off = static_cast<long long>(offset), lim = static_cast<long long>(limit);
  soci::rowset<soci::row> rows =
      (sql_.prepare << "SELECT CAST(id AS bigint), " + ts +
                           ", activity, initiator_id, target_id, account_id, meta FROM events "
                           "WHERE account_id = :acc ORDER BY timestamp " +
                           dir + ", id " + dir + " LIMIT :lim OFFSET :off",
       soci::use(account_id, "acc"), soci::use(lim, "lim"), soci::use(off, "off"));
  std::vector<core::activity::event> out;
  for (const auto& r : rows) {
    core::activity::event e;
    const auto text = [&](std::size_t i) {
      return r.get_indicator(i) == soci::i_ok ? r.get<std::string>(i) : std::string();
    };
    const auto number = [&](std::size_t i) -> long long {
      if (r.get_indicator(i) != soci::i_ok)
        return 0;
      switch (r.get_properties(i).get_data_type()) {
      case soci::dt_integer:
        return r.get<int>(i);
      case soci::dt_long_long:
        return r.get<long long>(i);
      case soci::dt_unsigned_long_long:
        return static_cast<long long>(r.get<unsigned long long>(i));
      case soci::dt_double:
        return static_cast<long long>(r.get<double>(i));
      default:
        return std::atoll(r.get<std::string>(i).c_str());
      }
    };
    e.id = static_cast<std::uint64_t>(number(0));
    e.timestamp = text(1);
    e.activity = static_cast<int>(number(2));
    e.initiator_id = text(3);
    e.target_id = text(4);
    e.account_id = text(5);
    e.m = meta_of(text(6));
    out.push_back(std::move(e));
  }
  return out;
}

} // namespace nbm::storage
