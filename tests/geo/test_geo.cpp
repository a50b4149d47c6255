// GeoLite2 City lookups with the tests' own database (tests/support/mmdb_writer: written by the
// test in MaxMind DB format, read by libmaxminddb as the server reads MaxMind's file).
#include "geo/geo.hpp"
#include "tests/support/mmdb_writer.hpp"
#include "tests/support/test_db.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

using namespace nbm;

TEST_CASE("geo: a GeoLite2 City database answers country, city and GeoNames id") {
  geo::database db(test::city_database());
  auto ch = db.lookup("198.51.100.77");
  REQUIRE(ch.has_value());
  CHECK(ch->country_code == "CH");
  CHECK(ch->city_name == "Z\xC3\xBCrich"); // UTF-8 as stored
  CHECK(ch->geo_name_id == 2657896);       // the city's id, not the country's
  auto gb = db.lookup("203.0.113.1");
  REQUIRE(gb.has_value());
  CHECK(gb->country_code == "GB");
  CHECK(gb->city_name == "London");
  CHECK(gb->geo_name_id == 2643743);
  // The other half of 203.0.113.0/24 is not in the database.
  CHECK_FALSE(db.lookup("203.0.113.200").has_value());
  // A network known by country only: no city, id 0.
  auto fr = db.lookup("192.0.2.9");
  REQUIRE(fr.has_value());
  CHECK(fr->country_code == "FR");
  CHECK(fr->city_name.empty());
  CHECK(fr->geo_name_id == 0);
  // IPv6.
  auto de = db.lookup("2001:db8:1:2::5");
  REQUIRE(de.has_value());
  CHECK(de->country_code == "DE");
  CHECK(de->city_name == "Berlin");
  CHECK_FALSE(db.lookup("2001:db8:2::1").has_value());
  CHECK_FALSE(db.lookup("127.0.0.1").has_value());
  CHECK_FALSE(db.lookup("not an address").has_value());
}

TEST_CASE("geo: the test database writer refuses overlapping networks and bad CIDRs") {
  const auto path = test::temp_dir() + "/overlap.mmdb";
  CHECK_THROWS(test::write_city_database(
      path, {{"10.0.0.0/8", "AA", "A", 1, "", 0}, {"10.1.0.0/16", "BB", "B", 2, "", 0}}));
  CHECK_THROWS(test::write_city_database(path, {{"10.0.0.0/33", "AA", "A", 1, "", 0}}));
  CHECK_THROWS(test::write_city_database(path, {{"nope", "AA", "A", 1, "", 0}}));
}

TEST_CASE("geo: a file that is not a MaxMind DB is a clear error; the newest database is found") {
  const auto dir = test::temp_dir() + "/geo-find";
  std::filesystem::create_directories(dir);
  { std::ofstream(dir + "/GeoLite2-City_20200101.mmdb") << "not a database"; }
  CHECK_THROWS_WITH_AS(geo::database(dir + "/GeoLite2-City_20200101.mmdb"),
                       doctest::Contains("GeoLite2-City_20200101"), geo::geo_error);
  std::filesystem::copy_file(test::city_database(), dir + "/GeoLite2-City_20240601.mmdb");
  { std::ofstream(dir + "/other.mmdb") << "x"; }
  auto found = geo::find_city_database(dir);
  REQUIRE(found.has_value());
  CHECK(std::filesystem::path(*found).filename() == "GeoLite2-City_20240601.mmdb");
  // The newest is a real database.
  CHECK(geo::database(*found).lookup("198.51.100.1").has_value());
  CHECK_FALSE(geo::find_city_database(dir + "/missing").has_value());
}
