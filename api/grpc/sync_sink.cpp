#include "api/grpc/sync_sink.hpp"

#include "actors/telemetry.hpp"
#include "api/grpc/convert.hpp"
#include "api/grpc/wire_map.hpp"
#include "api/metrics/counters.hpp"
#include "crypto/crypto.hpp"
#include "management.pb.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

namespace nbm::api {

using management::EncryptedMessage;

namespace {

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

} // namespace

// ---- encoder threads
// -------------------------------------------------------------------------------------

encoder_pool::encoder_pool(unsigned n) {
  for (unsigned i = 0; i < std::max(1u, n); ++i)
    threads_.emplace_back([this] { run(); });
}

encoder_pool::~encoder_pool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_)
    t.join();
}

void encoder_pool::post(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void encoder_pool::run() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [this] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty())
        return; // stopping, and everything posted ran
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    try {
      job();
    } catch (const std::exception& e) {
      spdlog::error("encoding a map failed: {}", e.what());
    }
  }
}

// ---- the sink
// --------------------------------------------------------------------------------------------

void sync_stream::close(const std::string& reason) {
  std::lock_guard<std::mutex> lk(mu);
  spdlog::debug("closing sync stream of session {}: {}", token, reason);
  if (call)
    call->finish({}); // NetBird ends a replaced stream cleanly; the client reconnects
}

void sync_stream::deliver(actors::map_update_ptr update, bool initial) {
  // NetBird's SendUpdate: found (the stream is there), dropped (an unsent older map replaced).
  const auto began = actors::telemetry::now_ns();
  std::lock_guard<std::mutex> lk(mu);
  if (!call) {
    actors::telemetry::update_sent(actors::telemetry::us_since(began), false, false);
    return;
  }
  const bool dropped = pending != nullptr;
  pending = std::move(update);
  pending_initial = pending_initial || initial;
  if (!encoding) { // else the running job picks it up
    encoding = true;
    encoders->post([self = shared_from_this()] { self->encode_pending(); });
  }
  actors::telemetry::update_sent(actors::telemetry::us_since(began), true, dropped);
}

void sync_stream::encode_pending() {
  std::unique_lock<std::mutex> lk(mu);
  while (pending && call) {
    auto u = std::move(pending);
    const bool initial = std::exchange(pending_initial, false);
    lk.unlock();
    std::optional<management::NetbirdConfig> cfg;
    if (initial)
      cfg = to_netbird_config(deps->cfg, unix_now());
    EncryptedMessage env;
    env.set_wgpubkey(crypto::base64_encode(deps->server_public));
    const auto began = actors::telemetry::now_ns();
    auto plain = encode_sync_response(*u, cfg ? &*cfg : nullptr);
    actors::telemetry::sync_response_encoded(actors::telemetry::us_since(began));
    env.set_body(crypto::box_seal_precomputed(plain, box_key));
    if (spdlog::should_log(spdlog::level::debug)) {
      const auto& acc = u->change->view->acc();
      spdlog::debug("map sent to peer {} of account {}: serial {}, {} bytes{}, session {}",
                    acc.peers[u->peer].id, acc.id, u->map.serial, env.ByteSizeLong(),
                    initial ? " (initial)" : "", token);
    }
    lk.lock();
    if (call) {
      call->write(env.SerializeAsString());
      if (!first_map_sent) { // NetBird's sync duration: from the call to its first map
        first_map_sent = true;
        metrics::grpc_duration(
            "Sync",
            std::chrono::duration<double>(std::chrono::steady_clock::now() - opened).count());
      }
    }
  }
  pending.reset();
  encoding = false;
}

void sync_stream::fail(rpc_status s) {
  std::lock_guard<std::mutex> lk(mu);
  if (call)
    call->finish(std::move(s));
}

} // namespace nbm::api
