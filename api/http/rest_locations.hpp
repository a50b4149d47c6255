// NetBird's /api/locations: the countries and cities of its GeoNames database (geonames_*.db in
// the datadir), for posture checks' geo rules. Without the database, NetBird's 412 answers.
#pragma once

#include "api/http/rest.hpp"
#include "geo/geonames.hpp"

#include <memory>
#include <string>

namespace nbm::api::http {

// The datadir's newest geonames_*.db, opened; null when there is none, it cannot be read, or
// NB_DISABLE_GEOLOCATION is true (logged).
std::unique_ptr<geo::geonames> open_geonames(const std::string& datadir);

// GET /api/locations/countries and /api/locations/countries/{country}/cities.
response locations_response(const geo::geonames* db, const request& req, const std::string& a,
                            const std::string& b, const std::string& c);

} // namespace nbm::api::http
