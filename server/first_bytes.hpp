// What a new connection on the shared port speaks, told from its first bytes (peeked, not read):
// the HTTP/2 client preface (gRPC), an HTTP/1.1 request line (the REST API), a TLS ClientHello,
// or anything else. Pure and total: any byte string has an answer, nothing but the standard
// library is used (a fuzz target calls it directly).
#pragma once

#include <cstddef>
#include <string_view>

namespace nbm::server {

enum class first_bytes {
  undecided, // a prefix of something we would accept: wait for more bytes
  grpc,      // the whole HTTP/2 client preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
  http1,     // an HTTP/1.x request line begins: a known method followed by a space
  tls,       // a TLS handshake record (ClientHello): 0x16 0x03 0x00..0x04
  other,     // none of these: close the connection
};

// At most this many bytes ever decide (the length of the HTTP/2 preface): a caller peeks this
// many; a prefix of this length is never `undecided`.
inline constexpr std::size_t first_bytes_max = 24;

first_bytes classify_first_bytes(std::string_view prefix);

const char* to_string(first_bytes b);

} // namespace nbm::server
