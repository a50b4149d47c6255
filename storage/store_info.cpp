#include "storage/store_info.hpp"

#include <libpq-fe.h>
#include <soci/soci.h>

#include <filesystem>

namespace nbm::storage {

std::string describe(const db_options& opts) {
  if (opts.kind == engine::sqlite) {
    std::error_code ec;
    const auto abs = std::filesystem::absolute(opts.target, ec);
    return std::string("sqlite ") + (ec ? opts.target : abs.lexically_normal().string());
  }
  char* err = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(opts.target.c_str(), &err);
  if (!parsed) {
    if (err)
      PQfreemem(err);
    return "postgres (a DSN libpq cannot parse)";
  }
  std::string out = "postgres";
  for (const char* key : {"host", "hostaddr", "port", "dbname", "user", "options"})
    for (auto* o = parsed; o->keyword; ++o)
      if (std::string(o->keyword) == key && o->val && *o->val)
        out += std::string(" ") + key + "=" + o->val;
  PQconninfoFree(parsed);
  if (out == "postgres")
    out += " (libpq's defaults: local socket, PGHOST/PGDATABASE/PGUSER)";
  return out;
}

bool has_store_tables(soci::session& sql, engine kind) {
  int n = 0;
  if (kind == engine::sqlite)
    sql << "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'accounts'",
        soci::into(n);
  else
    sql << "SELECT CASE WHEN to_regclass('accounts') IS NULL THEN 0 ELSE 1 END", soci::into(n);
  return n > 0;
}

} // namespace nbm::storage
