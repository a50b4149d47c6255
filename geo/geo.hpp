// GeoLite2 City lookups (libmaxminddb): a peer's country, city and GeoNames id from its connection
// IP.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

namespace nbm::geo {

struct location {
  std::string country_code;      // ISO 3166-1, e.g. "SE"
  std::string city_name;         // English name, e.g. "Linköping"
  std::uint64_t geo_name_id = 0; // the city's GeoNames id, as NetBird stores it
};

struct geo_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class database {
public:
  // Opens a MaxMind DB file; throws geo_error naming the file when it cannot.
  explicit database(const std::string& path);
  ~database();
  database(const database&) = delete;
  database& operator=(const database&) = delete;

  // nullopt for an address the database does not cover (or that does not parse).
  std::optional<location> lookup(const std::string& ip) const;
  const std::string& path() const { return path_; }

private:
  struct impl;
  std::unique_ptr<impl> impl_;
  std::string path_;
};

// The GeoLite2 City database NetBird keeps in its datadir (GeoLite2-City*.mmdb; the newest name
// wins).
std::optional<std::string> find_city_database(const std::string& datadir);

} // namespace nbm::geo
