// GeoLite2 City lookups with NetBird's own test database.
#include "geo/geo.hpp"
#include "tests/support/test_db.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

using namespace nbm;

TEST_CASE("geo: NetBird's test GeoLite2 database answers as MaxMind documents it") {
  geo::database db(test::fixture("GeoLite2-City_20240305.mmdb"));
  auto se = db.lookup("89.160.20.128");
  REQUIRE(se.has_value());
  CHECK(se->country_code == "SE");
  CHECK(se->city_name == "Link\xC3\xB6ping");
  CHECK(se->geo_name_id == 2694762);
  auto gb = db.lookup("81.2.69.142");
  REQUIRE(gb.has_value());
  CHECK(gb->country_code == "GB");
  CHECK(gb->geo_name_id == 2643743);
  CHECK_FALSE(db.lookup("127.0.0.1").has_value());
  CHECK_FALSE(db.lookup("not an address").has_value());
}

TEST_CASE("geo: a file that is not a MaxMind DB is a clear error; the newest database is found") {
  const auto dir = test::temp_dir() + "/geo-find";
  std::filesystem::create_directories(dir);
  { std::ofstream(dir + "/GeoLite2-City_20200101.mmdb") << "not a database"; }
  CHECK_THROWS_WITH_AS(geo::database(dir + "/GeoLite2-City_20200101.mmdb"),
                       doctest::Contains("GeoLite2-City_20200101"), geo::geo_error);
  std::filesystem::copy_file(test::fixture("GeoLite2-City_20240305.mmdb"),
                             dir + "/GeoLite2-City_20240305.mmdb");
  { std::ofstream(dir + "/other.mmdb") << "x"; }
  auto found = geo::find_city_database(dir);
  REQUIRE(found.has_value());
  CHECK(std::filesystem::path(*found).filename() == "GeoLite2-City_20240305.mmdb");
  CHECK_FALSE(geo::find_city_database(dir + "/missing").has_value());
}
