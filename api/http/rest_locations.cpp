#include "api/http/rest_locations.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cstdlib>

namespace nbm::api::http {

namespace {

using json = nlohmann::json;

response answer(int status, const json& body) {
  return {status, body.dump(-1, ' ', false, json::error_handler_t::replace), {}};
}

response error(int status, const std::string& message) {
  return answer(status, {{"message", message}, {"code", status}});
}

bool country_code(const std::string& s) {
  const auto letter = [](char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'); };
  return s.size() == 2 && letter(s[0]) && letter(s[1]);
}

} // namespace

std::unique_ptr<geo::geonames> open_geonames(const std::string& datadir) {
  const char* off = std::getenv("NB_DISABLE_GEOLOCATION");
  if ((off && std::string(off) == "true") || datadir.empty())
    return nullptr;
  const auto path = geo::find_geonames_database(datadir);
  if (!path)
    return nullptr;
  try {
    auto db = std::make_unique<geo::geonames>(*path);
    spdlog::info("locations from {}", *path);
    return db;
  } catch (const std::exception& e) {
    spdlog::warn("locations: {}", e.what());
    return nullptr;
  }
}

response locations_response(const geo::geonames* db, const request& req, const std::string& a,
                            const std::string& b, const std::string& c) {
  const bool countries = a == "countries" && b.empty();
  const bool cities = a == "countries" && !b.empty() && c == "cities";
  if (!countries && !cities)
    return error(404, "not found");
  if (req.method != "GET")
    return error(405, "method not allowed");
  if (cities && !country_code(b))
    return error(422, "invalid country code");
  if (!db)
    return error(412, countries ? "Geo location database is not initialized"
                                : "Geo location database is not initialized. Check the "
                                  "self-hosted Geo database documentation at "
                                  "https://docs.netbird.io/selfhosted/geo-support");
  try {
    json out = json::array();
    if (countries)
      for (const auto& x : db->countries())
        out.push_back({{"country_name", x.name}, {"country_code", x.code}});
    else
      for (const auto& x : db->cities(b))
        out.push_back({{"city_name", x.name}, {"geoname_id", x.geoname_id}});
    return answer(200, out);
  } catch (const std::exception& e) {
    spdlog::error("locations: {}", e.what());
    return error(500, "internal server error");
  }
}

} // namespace nbm::api::http
