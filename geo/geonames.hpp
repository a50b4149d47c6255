// NetBird's GeoNames database (`geonames_*.db` in the datadir, SQLite, table `geonames`): the
// countries and cities /api/locations lists (management/server/geolocation/store.go). Read-only,
// thread-safe. A leaf: depends on nothing of ours.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace nbm::geo {

struct country {
  std::string code, name; // ISO code, name
};

struct city {
  std::int64_t geoname_id = 0;
  std::string name;
};

// The newest geonames_*.db in `datadir` (names sort by their date), if any.
std::optional<std::string> find_geonames_database(const std::string& datadir);

class geonames {
public:
  // Throws std::runtime_error when the file cannot be opened or holds no geonames table.
  explicit geonames(const std::string& path);
  ~geonames();
  geonames(const geonames&) = delete;
  geonames& operator=(const geonames&) = delete;

  // NetBird's GetAllCountries: one per country name, ordered by it.
  std::vector<country> countries() const;
  // NetBird's GetCitiesByCountry: one per city name of the country (ISO code as given).
  std::vector<city> cities(const std::string& country_code) const;

private:
  struct impl;
  std::unique_ptr<impl> p_;
};

} // namespace nbm::geo
