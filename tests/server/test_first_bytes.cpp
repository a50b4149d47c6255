// classify_first_bytes: what the shared port makes of a connection's first bytes.
#include "server/first_bytes.hpp"

#include <doctest/doctest.h>

#include <string>

using nbm::server::classify_first_bytes;
using nbm::server::first_bytes;
using namespace std::string_literals;

namespace {
const std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
}

TEST_CASE("first bytes: the HTTP/2 preface is gRPC only when complete") {
  CHECK(preface.size() == nbm::server::first_bytes_max);
  CHECK(classify_first_bytes(preface) == first_bytes::grpc);
  CHECK(classify_first_bytes(preface + "\x00\x00\x12\x04"s) == first_bytes::grpc);
  for (std::size_t n = 1; n < preface.size(); ++n)
    CHECK_MESSAGE(classify_first_bytes(preface.substr(0, n)) == first_bytes::undecided, n);
  auto bent = preface;
  bent[20] = 'X';
  CHECK(classify_first_bytes(bent) == first_bytes::other);
  CHECK(classify_first_bytes("PRI * HTTP/1.1\r\n") == first_bytes::other);
}

TEST_CASE("first bytes: an HTTP/1.1 request line is decided by its method and a space") {
  for (const char* m : {"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE"}) {
    const std::string line = std::string(m) + " /api/peers HTTP/1.1\r\n";
    CHECK_MESSAGE(classify_first_bytes(line) == first_bytes::http1, m);
    CHECK_MESSAGE(classify_first_bytes(std::string(m) + " ") == first_bytes::http1, m);
    // A method without its space yet may still become something else.
    for (std::size_t n = 1; n <= std::string(m).size(); ++n)
      CHECK_MESSAGE(classify_first_bytes(std::string(m).substr(0, n)) == first_bytes::undecided,
                    m << " " << n);
  }
  CHECK(classify_first_bytes("P") == first_bytes::undecided); // PRI, POST, PUT, PATCH
  CHECK(classify_first_bytes("GETX /") == first_bytes::other);
  CHECK(classify_first_bytes("get / HTTP/1.1\r\n") == first_bytes::other); // methods are upper case
  CHECK(classify_first_bytes("CONNECT host:443 HTTP/1.1\r\n") == first_bytes::other);
  CHECK(classify_first_bytes("BREW /pot HTTP/1.1\r\n") == first_bytes::other);
}

TEST_CASE("first bytes: a TLS ClientHello, and garbage") {
  CHECK(classify_first_bytes("\x16"s) == first_bytes::undecided);
  CHECK(classify_first_bytes("\x16\x03"s) == first_bytes::undecided);
  CHECK(classify_first_bytes("\x16\x03\x01"s) == first_bytes::tls);
  CHECK(classify_first_bytes("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"s) == first_bytes::tls);
  CHECK(classify_first_bytes("\x16\x03\x00"s) == first_bytes::tls); // SSL 3.0 record version
  CHECK(classify_first_bytes("\x16\x03\x05"s) == first_bytes::other);
  CHECK(classify_first_bytes("\x16\x02"s) == first_bytes::other);
  CHECK(classify_first_bytes("\x15\x03\x01"s) == first_bytes::other); // an alert, not a hello
  CHECK(classify_first_bytes("\x00"s) == first_bytes::other);
  CHECK(classify_first_bytes("\r\n") == first_bytes::other);
  CHECK(classify_first_bytes("SSH-2.0-OpenSSH_9.2\r\n") == first_bytes::other);
  CHECK(classify_first_bytes("") == first_bytes::undecided);
}

TEST_CASE("first bytes: total — every input has an answer, and a full peek is never undecided") {
  // Every 1- and 2-byte string, and pseudo-random longer ones (a fixed LCG: reproducible).
  for (int a = 0; a < 256; ++a) {
    const std::string one(1, static_cast<char>(a));
    (void)classify_first_bytes(one);
    for (int b = 0; b < 256; ++b)
      (void)classify_first_bytes(one + static_cast<char>(b));
  }
  std::uint32_t x = 12345;
  for (int i = 0; i < 20000; ++i) {
    std::string s(nbm::server::first_bytes_max, '\0');
    for (auto& c : s) {
      x = x * 1664525u + 1013904223u;
      c = static_cast<char>(x >> 24);
    }
    if (i % 4 == 0) // starting like something we accept makes the tail matter
      s.replace(0, 4, i % 8 == 0 ? "PRI " : "GET ");
    CHECK(classify_first_bytes(s) != first_bytes::undecided);
    CHECK(classify_first_bytes(std::string_view(s).substr(0, 9)) != first_bytes::undecided);
  }
  // Decided never turns undecided as more bytes arrive: a prefix's answer holds for the whole.
  for (const std::string& s :
       {preface, "GET /api HTTP/1.1\r\n"s, "\x16\x03\x01\x02\x00"s, "garbage that goes on"s}) {
    first_bytes seen = first_bytes::undecided;
    for (std::size_t n = 1; n <= s.size(); ++n) {
      const auto now = classify_first_bytes(std::string_view(s).substr(0, n));
      if (seen != first_bytes::undecided)
        CHECK_MESSAGE(now == seen, s.substr(0, n));
      seen = now;
    }
  }
}

TEST_CASE("first bytes: names") {
  CHECK(std::string(nbm::server::to_string(first_bytes::grpc)) == "grpc");
  CHECK(std::string(nbm::server::to_string(first_bytes::http1)) == "http1");
  CHECK(std::string(nbm::server::to_string(first_bytes::other)) == "other");
}
