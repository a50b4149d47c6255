#include "geo/geonames.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <stdexcept>

namespace nbm::geo {

std::optional<std::string> find_geonames_database(const std::string& datadir) {
  std::error_code ec;
  std::vector<std::string> found;
  for (const auto& e : std::filesystem::directory_iterator(datadir, ec)) {
    const auto name = e.path().filename().string();
    if (name.rfind("geonames_", 0) == 0 && e.path().extension() == ".db")
      found.push_back(e.path().string());
  }
  if (found.empty())
    return std::nullopt;
  return *std::max_element(found.begin(), found.end());
}

struct geonames::impl {
  sqlite3* db = nullptr;
  mutable std::mutex mu;

  // Runs `sql` with `arg` (if any) bound to ?1; `row` per result row.
  template <class Row>
  void query(const char* sql, const std::string* arg, Row row) const {
    std::lock_guard<std::mutex> lk(mu);
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("geonames: ") + sqlite3_errmsg(db));
    if (arg)
      sqlite3_bind_text(st, 1, arg->data(), static_cast<int>(arg->size()), SQLITE_TRANSIENT);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
      row(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
      throw std::runtime_error(std::string("geonames: ") + sqlite3_errmsg(db));
  }
  static std::string text(sqlite3_stmt* st, int i) {
    const auto* t = sqlite3_column_text(st, i);
    return t ? reinterpret_cast<const char*>(t) : "";
  }
};

geonames::geonames(const std::string& path) : p_(std::make_unique<impl>()) {
  if (sqlite3_open_v2(path.c_str(), &p_->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    const std::string why = p_->db ? sqlite3_errmsg(p_->db) : "out of memory";
    sqlite3_close(p_->db);
    throw std::runtime_error("cannot open " + path + ": " + why);
  }
  int tables = 0;
  try {
    p_->query("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'geonames'",
              nullptr, [&](sqlite3_stmt* st) { tables = sqlite3_column_int(st, 0); });
  } catch (const std::exception&) {
    tables = 0;
  }
  if (tables != 1) {
    sqlite3_close(p_->db);
    throw std::runtime_error(path + " holds no geonames table");
  }
}

geonames::~geonames() {
  sqlite3_close(p_->db);
}

std::vector<country> geonames::countries() const {
  std::vector<country> out;
  p_->query("SELECT MIN(country_iso_code), country_name FROM geonames GROUP BY country_name "
            "ORDER BY country_name",
            nullptr, [&](sqlite3_stmt* st) {
              out.push_back({impl::text(st, 0), impl::text(st, 1)});
            });
  return out;
}

std::vector<city> geonames::cities(const std::string& country_code) const {
  std::vector<city> out;
  p_->query("SELECT MIN(CAST(geoname_id AS INTEGER)), city_name FROM geonames WHERE "
            "country_iso_code = ?1 GROUP BY city_name ORDER BY city_name",
            &country_code, [&](sqlite3_stmt* st) {
              out.push_back({sqlite3_column_int64(st, 0), impl::text(st, 1)});
            });
  return out;
}

} // namespace nbm::geo
