#include "acme/manager.hpp"

#include <cstdlib>
#include <spdlog/spdlog.h>

namespace nbm::acme {

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

} // namespace

options options_from_env(const std::filesystem::path& datadir, const std::string& domain) {
  options o;
  o.dir = datadir / "letsencrypt";
  o.domain = domain;
  if (auto d = env("NBM_ACME_DIRECTORY"); !d.empty())
    o.directory_url = d;
  o.ca_bundle = env("NBM_ACME_CA_BUNDLE");
  o.email = env("NBM_ACME_EMAIL");
  if (auto r = env("NBM_ACME_RENEW_BEFORE"); !r.empty()) {
    char* end = nullptr;
    long long v = std::strtoll(r.c_str(), &end, 10);
    if (*end != '\0' || v < 0)
      throw acme_error("NBM_ACME_RENEW_BEFORE must be a number of seconds, not \"" +
                       r.substr(0, 32) + "\"");
    o.renew_before = std::chrono::seconds(v);
  }
  return o;
}

manager::manager(options o, serving_target target)
    : opts_(std::move(o)), target_(std::move(target)) {
  opts_.domain = normalize_domain(opts_.domain);
  opts_.cancel = &cancel_;
}

manager::~manager() {
  stop();
}

bool manager::serve_stored() {
  std::string problem;
  auto c = load_stored(opts_, &problem);
  if (!problem.empty())
    spdlog::warn("Let's Encrypt: ignoring the stored certificate: {}", problem);
  if (!c)
    return false;
  if (std::chrono::system_clock::now() >= c->not_after) {
    spdlog::info("Let's Encrypt: the stored certificate for {} (serial {}) has expired",
                 opts_.domain, c->serial_hex);
    return false;
  }
  target_.serve(c->chain_pem, c->key_pem);
  std::lock_guard lk(mu_);
  current_ = std::move(c);
  return true;
}

void manager::start() {
  std::lock_guard lk(mu_);
  if (thread_.joinable())
    return;
  stopping_ = false;
  cancel_ = false;
  thread_ = std::thread([this] { loop(); });
}

void manager::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cancel_ = true;
  cv_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

std::size_t manager::issued() const {
  std::lock_guard lk(mu_);
  return issued_;
}

std::string manager::last_error() const {
  std::lock_guard lk(mu_);
  return last_error_;
}

void manager::loop() {
  using namespace std::chrono;
  auto retry = minutes(1);
  std::unique_lock lk(mu_);
  while (!stopping_) {
    auto now = system_clock::now();
    if (current_ && now < renewal_time(*current_, opts_.renew_before)) {
      // Sleep until due; at most an hour at a time, so a clock that jumps is noticed.
      auto due = renewal_time(*current_, opts_.renew_before);
      auto wait = std::min<system_clock::duration>(due - now, hours(1));
      cv_.wait_for(lk, wait, [&] { return stopping_; });
      continue;
    }
    lk.unlock();
    std::optional<certificate> got;
    std::string error;
    try {
      got = obtain(opts_, target_.hooks);
      target_.serve(got->chain_pem, got->key_pem);
    } catch (const std::exception& e) {
      got.reset();
      error = e.what();
    }
    lk.lock();
    if (got) {
      current_ = std::move(got);
      ++issued_;
      last_error_.clear();
      retry = minutes(1);
      spdlog::info(
          "Let's Encrypt: serving the certificate for {} (serial {}); renewal due in {} h",
          opts_.domain, current_->serial_hex,
          duration_cast<hours>(renewal_time(*current_, opts_.renew_before) - system_clock::now())
              .count());
      if (renewal_time(*current_, opts_.renew_before) <= system_clock::now()) {
        // A renewal window longer than the CA's lifetime: do not ask again at once.
        spdlog::warn("Let's Encrypt: the new certificate for {} is already due for renewal "
                     "(renew-before {} s)",
                     opts_.domain, opts_.renew_before.count());
        cv_.wait_for(lk, retry, [&] { return stopping_; });
      }
      continue;
    }
    if (stopping_)
      break;
    last_error_ = error;
    spdlog::error("Let's Encrypt: no certificate for {}: {}; trying again in {} s", opts_.domain,
                  error, duration_cast<seconds>(retry).count());
    cv_.wait_for(lk, retry, [&] { return stopping_; });
    retry = std::min<minutes>(retry * 2, hours(1));
  }
}

} // namespace nbm::acme
