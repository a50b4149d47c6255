#include "server/first_bytes.hpp"

#include <array>

namespace nbm::server {

namespace {

constexpr std::string_view http2_preface{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24};
static_assert(http2_preface.size() == first_bytes_max);

// The methods the REST API answers (and the few others an HTTP/1.1 client may send: they get a
// 404 from the HTTP side rather than a silent close).
constexpr std::array<std::string_view, 8> methods{"GET ",  "POST ",    "PUT ",   "DELETE ",
                                                  "HEAD ", "OPTIONS ", "PATCH ", "TRACE "};

bool starts_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(0, p.size()) == p;
}

} // namespace

first_bytes classify_first_bytes(std::string_view prefix) {
  if (prefix.empty())
    return first_bytes::undecided;
  bool could_be_more = false;
  // gRPC: the complete preface, nothing less.
  if (starts_with(prefix, http2_preface))
    return first_bytes::grpc;
  if (starts_with(http2_preface, prefix))
    could_be_more = true;
  for (auto m : methods) {
    if (starts_with(prefix, m))
      return first_bytes::http1;
    if (starts_with(m, prefix))
      could_be_more = true;
  }
  // TLS: handshake content type, then the record's major version 3 and a minor version 0..4.
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(prefix[i]); };
  if (b(0) == 0x16) {
    if (prefix.size() == 1 || (prefix.size() == 2 && b(1) == 0x03))
      could_be_more = true;
    else if (prefix.size() >= 3 && b(1) == 0x03 && b(2) <= 0x04)
      return first_bytes::tls;
  }
  return could_be_more ? first_bytes::undecided : first_bytes::other;
}

const char* to_string(first_bytes b) {
  switch (b) {
  case first_bytes::undecided:
    return "undecided";
  case first_bytes::grpc:
    return "grpc";
  case first_bytes::http1:
    return "http1";
  case first_bytes::tls:
    return "tls";
  case first_bytes::other:
    return "other";
  }
  return "?";
}

} // namespace nbm::server
