// libFuzzer target: the REST body decoders (api/http/decode), each given the same fuzzed body.
// decode.hpp promises that every decoder is total: a value, or decode_error with NetBird's status
// (400 for a body that is not a JSON object within the limits or has a field of the wrong type,
// 422 for a value out of range) and a message that echoes at most a clipped prefix of client text.
// Anything else escaping, a crash or a sanitizer report is a finding. Also checked: a body that
// check_body refuses is refused by every decoder with 400.
// Seeds: tests/fuzz/corpus/rest_decode/ (bodies as NetBird's dashboard and API clients send them).
#include "api/http/decode.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>

namespace {

namespace decode = nbm::api::http::decode;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_rest_decode: check failed: %s\n", what);
    std::abort();
  }
}

// Longest message a refusal may carry: NetBird's text plus a clipped field or value.
constexpr std::size_t max_message = 512;

// Runs one decoder; returns the status it refused with, or 0 when it decoded.
int run(const std::function<void()>& decoder) {
  try {
    decoder();
    return 0;
  } catch (const decode::decode_error& e) {
    check(e.status == 400 || e.status == 422, "a refusal with a status other than 400/422");
    check(!e.message.empty(), "a refusal without a message");
    check(e.message.size() <= max_message, "a refusal echoing too much client text");
    return e.status;
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const std::string account = "ctq4ikjl0ubs73ciid80", id = "ctq4il3l0ubs73ciid8g";
  const int body_refused = run([&] { decode::check_body(body); });
  check(body_refused == 0 || body_refused == 400, "check_body refused with other than 400");
  const std::function<void()> decoders[] = {
      [&] { (void)decode::group(body, account, id); },
      [&] { (void)decode::policy(body, account, id); },
      [&] { (void)decode::policy(body, account, ""); },
      [&] { (void)decode::route(body, account, id); },
      [&] { (void)decode::nameserver_group(body, account, id); },
      [&] { (void)decode::dns_settings(body); },
      [&] { (void)decode::setup_key_create(body); },
      [&] { (void)decode::setup_key_update(body); },
      [&] { (void)decode::account_settings(body, nbm::core::account_settings{}); },
      [&] { (void)decode::peer_update(body); },
      [&] { (void)decode::user_create(body); },
      [&] { (void)decode::user_update(body); },
      [&] { (void)decode::token_create(body); },
  };
  for (const auto& d : decoders) {
    const int status = run(d);
    if (body_refused)
      check(status == 400, "a decoder took a body check_body refuses");
  }
  const auto clipped = decode::clip(body);
  check(clipped.size() <= 64 + 3, "clip longer than its limit");
  return 0;
}
