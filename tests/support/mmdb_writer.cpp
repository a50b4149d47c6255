#include "tests/support/mmdb_writer.hpp"

#include "tests/support/test_db.hpp"

#include <arpa/inet.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace nbm::test {

namespace {

// The data section's encoding: a control byte (type in the top 3 bits, size in the low 5),
// an extended-type byte for types above 7, then the size's extra bytes.
class encoder {
public:
  std::string out;

  void control(int type, std::size_t size) {
    std::uint8_t first = static_cast<std::uint8_t>((type <= 7 ? type : 0) << 5);
    std::string extra;
    if (size < 29) {
      first |= static_cast<std::uint8_t>(size);
    } else if (size < 285) {
      first |= 29;
      extra += static_cast<char>(size - 29);
    } else if (size < 65821) {
      first |= 30;
      const auto s = size - 285;
      extra += static_cast<char>(s >> 8);
      extra += static_cast<char>(s & 0xff);
    } else {
      first |= 31;
      const auto s = size - 65821;
      extra += static_cast<char>(s >> 16);
      extra += static_cast<char>((s >> 8) & 0xff);
      extra += static_cast<char>(s & 0xff);
    }
    out += static_cast<char>(first);
    if (type > 7)
      out += static_cast<char>(type - 7);
    out += extra;
  }
  void string(const std::string& s) {
    control(2, s.size());
    out += s;
  }
  void unsigned_int(int type, std::uint64_t v) { // 5 uint16, 6 uint32, 9 uint64
    std::string bytes;
    for (; v != 0; v >>= 8)
      bytes.insert(bytes.begin(), static_cast<char>(v & 0xff));
    control(type, bytes.size());
    out += bytes;
  }
  void map(std::size_t pairs) { control(7, pairs); }
  void array(std::size_t items) { control(11, items); }
};

// The 128 bits of an address (IPv4 as ::a.b.c.d) and the prefix length of a CIDR.
std::pair<std::array<std::uint8_t, 16>, int> parse_cidr(const std::string& cidr) {
  const auto slash = cidr.find('/');
  if (slash == std::string::npos)
    throw std::runtime_error("not a CIDR: " + cidr);
  const auto addr = cidr.substr(0, slash);
  const int len = std::stoi(cidr.substr(slash + 1));
  std::array<std::uint8_t, 16> bits{};
  in_addr v4{};
  if (::inet_pton(AF_INET, addr.c_str(), &v4) == 1) {
    if (len < 1 || len > 32)
      throw std::runtime_error("bad prefix length in " + cidr);
    std::memcpy(bits.data() + 12, &v4, 4);
    return {bits, 96 + len};
  }
  if (::inet_pton(AF_INET6, addr.c_str(), bits.data()) != 1 || len < 1 || len > 128)
    throw std::runtime_error("not a CIDR: " + cidr);
  return {bits, len};
}

} // namespace

void write_city_database(const std::string& path, const std::vector<city_network>& networks,
                         std::uint64_t build_epoch) {
  // Data section: one record per network.
  encoder data;
  std::vector<std::size_t> offsets;
  for (const auto& n : networks) {
    offsets.push_back(data.out.size());
    data.map(n.city_name.empty() ? 1 : 2);
    if (!n.city_name.empty()) {
      data.string("city");
      data.map(2);
      data.string("geoname_id");
      data.unsigned_int(6, n.city_geoname_id);
      data.string("names");
      data.map(1);
      data.string("en");
      data.string(n.city_name);
    }
    data.string("country");
    data.map(3);
    data.string("geoname_id");
    data.unsigned_int(6, n.country_geoname_id);
    data.string("iso_code");
    data.string(n.country_code);
    data.string("names");
    data.map(1);
    data.string("en");
    data.string(n.country_name);
  }

  // Search tree: node i has two records (bit 0, bit 1); a record is a node index, "empty"
  // or a data offset, resolved once the node count is known.
  constexpr std::int64_t empty = -1;
  constexpr std::int64_t data_flag = std::int64_t{1} << 40;
  std::vector<std::array<std::int64_t, 2>> nodes{{empty, empty}};
  for (std::size_t k = 0; k < networks.size(); ++k) {
    const auto [bits, len] = parse_cidr(networks[k].cidr);
    std::size_t node = 0;
    for (int i = 0; i < len; ++i) {
      const int bit = (bits[i / 8] >> (7 - i % 8)) & 1;
      const std::int64_t rec = nodes[node][bit]; // by value: push_back below moves the nodes
      if (i == len - 1) {
        if (rec != empty)
          throw std::runtime_error("overlapping network " + networks[k].cidr);
        nodes[node][bit] = data_flag + static_cast<std::int64_t>(offsets[k]);
        break;
      }
      if (rec >= data_flag)
        throw std::runtime_error("overlapping network " + networks[k].cidr);
      if (rec == empty) {
        nodes.push_back({empty, empty});
        nodes[node][bit] = static_cast<std::int64_t>(nodes.size() - 1);
      }
      node = static_cast<std::size_t>(nodes[node][bit]);
    }
  }
  const auto node_count = static_cast<std::uint64_t>(nodes.size());
  std::string file;
  for (const auto& n : nodes)
    for (const auto rec : n) {
      const std::uint64_t v = rec == empty       ? node_count
                              : rec >= data_flag ? node_count + 16 + (rec - data_flag)
                                                 : static_cast<std::uint64_t>(rec);
      if (v >= (std::uint64_t{1} << 24))
        throw std::runtime_error("database too large for 24-bit records");
      file += static_cast<char>(v >> 16);
      file += static_cast<char>((v >> 8) & 0xff);
      file += static_cast<char>(v & 0xff);
    }
  file += std::string(16, '\0'); // the data section separator
  file += data.out;

  encoder meta;
  meta.map(9);
  meta.string("binary_format_major_version");
  meta.unsigned_int(5, 2);
  meta.string("binary_format_minor_version");
  meta.unsigned_int(5, 0);
  meta.string("build_epoch");
  meta.unsigned_int(9, build_epoch);
  meta.string("database_type");
  meta.string("GeoLite2-City");
  meta.string("description");
  meta.map(1);
  meta.string("en");
  meta.string("netbird-mgmt test database");
  meta.string("ip_version");
  meta.unsigned_int(5, 6);
  meta.string("languages");
  meta.array(1);
  meta.string("en");
  meta.string("node_count");
  meta.unsigned_int(6, node_count);
  meta.string("record_size");
  meta.unsigned_int(5, 24);
  file += std::string("\xAB\xCD\xEF") + "MaxMind.com";
  file += meta.out;

  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(file.data(), static_cast<std::streamsize>(file.size()));
  if (!f)
    throw std::runtime_error("cannot write " + path);
}

std::string city_database() {
  static const std::string path = [] {
    const auto p = (std::filesystem::path(temp_dir()) / "GeoLite2-City_20240601.mmdb").string();
    write_city_database(
        p, {
               {"198.51.100.0/24", "CH", "Switzerland", 2658434, "Z\xC3\xBCrich", 2657896},
               {"203.0.113.0/25", "GB", "United Kingdom", 2635167, "London", 2643743},
               {"192.0.2.0/24", "FR", "France", 3017382, "", 0},
               {"2001:db8:1::/48", "DE", "Germany", 2921044, "Berlin", 2950159},
           });
    return p;
  }();
  return path;
}

} // namespace nbm::test
