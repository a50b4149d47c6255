// A MaxMind DB (GeoLite2 City layout) written by the tests themselves: the format of
// https://maxmind.github.io/MaxMind-DB/ with a 24-bit IPv6 search tree (IPv4 under ::/96, where
// libmaxminddb looks IPv4 addresses up), so no database from outside the repository is needed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nbm::test {

// One network of the database and what GeoLite2 City says about it.
struct city_network {
  std::string cidr;         // "198.51.100.0/24" or "2001:db8:1::/48"; networks must not overlap
  std::string country_code; // country.iso_code
  std::string country_name; // country.names.en
  std::uint32_t country_geoname_id = 0;
  std::string city_name; // city.names.en; empty: no city map (a country-only network)
  std::uint32_t city_geoname_id = 0;
};

// Writes the networks as a GeoLite2-City database to `path` (throws std::runtime_error on a bad
// CIDR or an unwritable path).
void write_city_database(const std::string& path, const std::vector<city_network>& networks,
                         std::uint64_t build_epoch = 1717200000);

// The tests' database: written once per run into temp_dir() as GeoLite2-City_20240601.mmdb.
//   198.51.100.0/24  CH Switzerland 2658434, Zürich 2657896
//   203.0.113.0/25   GB United Kingdom 2635167, London 2643743
//   192.0.2.0/24     FR France 3017382, no city
//   2001:db8:1::/48  DE Germany 2921044, Berlin 2950159
std::string city_database();

} // namespace nbm::test
