#include "storage/event_store.hpp"

#include "crypto/crypto.hpp"
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

// `skip_user`: the meta's "email" and "name" went to deleted_users.
std::string meta_json(const core::activity::event& e, bool skip_user) {
  json m = json::object();
  for (const auto& [k, v] : e.m) {
    if (skip_user && (k == "email" || k == "name"))
      continue;
    std::visit([&, key = k](const auto& x) { m[key] = x; }, v);
  }
  return m.dump(-1, ' ', false, json::error_handler_t::replace);
}

// The text of a meta value (Go's %v, as NetBird's Sprintf("%s")).
std::string text_of(const core::activity::meta_value& v) {
  if (const auto* s = std::get_if<std::string>(&v))
    return *s;
  if (const auto* b = std::get_if<bool>(&v))
    return *b ? "true" : "false";
  return std::to_string(std::get<std::int64_t>(v));
}

const core::activity::meta_value* find_meta(const core::activity::meta& m, const char* key) {
  for (const auto& [k, v] : m)
    if (k == key)
      return &v;
  return nullptr;
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

event_store::event_store(soci::session& sql, engine kind, const std::string& encryption_key_b64)
    : sql_(sql), kind_(kind) {
  if (!encryption_key_b64.empty())
    if (auto k = crypto::base64_decode(encryption_key_b64); k && k->size() == 32)
      key_ = std::move(*k);
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
    const auto* email = find_meta(e.m, "email");
    const auto* name = find_meta(e.m, "name");
    const bool deleted_user = !key_.empty() && email && name;
    if (deleted_user) {
      const std::string enc_email = crypto::field_encrypt(text_of(*email), key_);
      const std::string enc_name = crypto::field_encrypt(text_of(*name), key_);
      sql_ << "INSERT INTO deleted_users (id, email, name, enc_algo) VALUES (:id, :e, :n, 'GCM') "
              "ON CONFLICT (id) DO UPDATE SET email = excluded.email, name = excluded.name",
          soci::use(e.target_id, "id"), soci::use(enc_email, "e"), soci::use(enc_name, "n");
    }
    const std::string meta = meta_json(e, deleted_user);
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
  // NetBird's Get: deleted users joined by initiator and by target (their names decrypted below).
  soci::rowset<soci::row> rows =
      (sql_.prepare << "SELECT CAST(events.id AS bigint), " + ts +
                           ", activity, initiator_id, target_id, account_id, meta, u.name, "
                           "u.email, t.name, t.email FROM events LEFT JOIN deleted_users u ON "
                           "u.id = events.initiator_id LEFT JOIN deleted_users t ON t.id = "
                           "events.target_id WHERE account_id = :acc ORDER BY timestamp " +
                           dir + ", events.id " + dir + " LIMIT :lim OFFSET :off",
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
    // A deleted user's name and email (NetBird's processResult; what does not open with this key
    // reads as NetBird's fallbacks).
    const auto open = [&](std::size_t i, const char* fallback) -> std::string {
      const auto enc = text(i);
      if (enc.empty())
        return {};
      auto plain = key_.empty() ? std::nullopt : crypto::field_decrypt(enc, key_);
      return plain ? *plain : std::string(fallback);
    };
    if (auto n = open(9, "unknown"); !n.empty())
      e.m.emplace_back("username", n);
    if (auto m = open(10, "unknown@unknown.com"); !m.empty())
      e.m.emplace_back("email", m);
    e.initiator_name = open(7, "unknown");
    e.initiator_email = open(8, "unknown@unknown.com");
    out.push_back(std::move(e));
  }
  return out;
}

} // namespace nbm::storage
