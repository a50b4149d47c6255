#include "geo/geo.hpp"

#include <maxminddb.h>

#include <algorithm>
#include <filesystem>
#include <vector>

namespace nbm::geo {

struct database::impl {
  MMDB_s db{};
};

database::database(const std::string& path) : impl_(std::make_unique<impl>()), path_(path) {
  const int rc = MMDB_open(path.c_str(), MMDB_MODE_MMAP, &impl_->db);
  if (rc != MMDB_SUCCESS)
    throw geo_error("cannot open GeoLite2 database " + path + ": " + MMDB_strerror(rc));
}

database::~database() {
  MMDB_close(&impl_->db);
}

std::optional<location> database::lookup(const std::string& ip) const {
  int gai = 0, err = 0;
  MMDB_lookup_result_s r = MMDB_lookup_string(&impl_->db, ip.c_str(), &gai, &err);
  if (gai != 0 || err != MMDB_SUCCESS || !r.found_entry)
    return std::nullopt;
  location out;
  MMDB_entry_data_s d;
  if (MMDB_get_value(&r.entry, &d, "country", "iso_code", nullptr) == MMDB_SUCCESS && d.has_data &&
      d.type == MMDB_DATA_TYPE_UTF8_STRING)
    out.country_code.assign(d.utf8_string, d.data_size);
  if (MMDB_get_value(&r.entry, &d, "city", "names", "en", nullptr) == MMDB_SUCCESS && d.has_data &&
      d.type == MMDB_DATA_TYPE_UTF8_STRING)
    out.city_name.assign(d.utf8_string, d.data_size);
  if (MMDB_get_value(&r.entry, &d, "city", "geoname_id", nullptr) == MMDB_SUCCESS && d.has_data &&
      d.type == MMDB_DATA_TYPE_UINT32)
    out.geo_name_id = d.uint32;
  return out;
}

std::optional<std::string> find_city_database(const std::string& datadir) {
  std::error_code ec;
  std::vector<std::string> found;
  for (const auto& e : std::filesystem::directory_iterator(datadir, ec)) {
    const auto name = e.path().filename().string();
    if (name.rfind("GeoLite2-City", 0) == 0 && e.path().extension() == ".mmdb")
      found.push_back(e.path().string());
  }
  if (found.empty())
    return std::nullopt;
  return *std::max_element(found.begin(), found.end());
}

} // namespace nbm::geo
