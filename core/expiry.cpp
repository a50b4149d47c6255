#include "core/expiry.hpp"

#include "core/registration.hpp"

#include <algorithm>
#include <cmath>

namespace nbm::core {

const char* to_string(lifecycle_rule r) {
  switch (r) {
  case lifecycle_rule::login:
    return "login expiration";
  case lifecycle_rule::inactivity:
    return "inactivity expiration";
  case lifecycle_rule::ephemeral:
    return "ephemeral cleanup";
  }
  return "?";
}

std::optional<unix_ns> store_time_ns(const std::string& text) {
  auto s = parse_store_time(text);
  if (!s)
    return std::nullopt;
  // Go's zero time (year 1) and the like lie outside int64 nanoseconds: "long ago".
  constexpr double limit = 9.0e9;
  if (*s < -limit)
    return std::numeric_limits<unix_ns>::min() / 2;
  if (*s > limit)
    return std::numeric_limits<unix_ns>::max() / 2;
  return static_cast<unix_ns>(std::llround(*s * 1e9));
}

namespace {

// What a missing time means to NetBird's rules (Go's zero time): long ago. Far enough below any
// "now" that adding a period cannot overflow.
constexpr unix_ns go_zero_time_ns = std::numeric_limits<unix_ns>::min() / 2;

unix_ns seen_ns(const opt_time& t) {
  if (!t)
    return go_zero_time_ns;
  return store_time_ns(*t).value_or(go_zero_time_ns);
}

} // namespace

std::optional<unix_ns> login_expiry_at(const lifecycle_facts& f) {
  if (!f.sso || !f.login_expiration_enabled || !f.settings.login_enabled || f.login_expired ||
      !f.last_login)
    return std::nullopt;
  auto last = store_time_ns(*f.last_login);
  if (!last)
    return std::nullopt;
  return *last + f.settings.login_period_ns;
}

std::optional<unix_ns> inactivity_expiry_at(const lifecycle_facts& f) {
  if (!f.sso || !f.inactivity_expiration_enabled || !f.settings.inactivity_enabled ||
      f.login_expired || f.connected)
    return std::nullopt;
  return seen_ns(f.last_seen) + f.settings.inactivity_period_ns;
}

std::optional<unix_ns> ephemeral_cleanup_at(const lifecycle_facts& f, unix_ns lifetime_ns) {
  if (!f.ephemeral || f.connected)
    return std::nullopt;
  return seen_ns(f.last_seen) + lifetime_ns;
}

std::optional<unix_ns> due_at(const lifecycle_facts& f, lifecycle_rule r, unix_ns lifetime_ns) {
  switch (r) {
  case lifecycle_rule::login:
    return login_expiry_at(f);
  case lifecycle_rule::inactivity:
    return inactivity_expiry_at(f);
  case lifecycle_rule::ephemeral:
    return ephemeral_cleanup_at(f, lifetime_ns);
  }
  return std::nullopt;
}

bool must_log_in_again(const account& a, const peer& p, double now_unix) {
  return p.status.login_expired || login_expired(a, p, now_unix);
}

bool lifecycle_candidate(const lifecycle_facts& f) {
  return f.ephemeral || (f.sso && (f.login_expiration_enabled || f.inactivity_expiration_enabled));
}

// ---- deadline_schedule -----------------------------------------------------------------------

bool deadline_schedule::is_live(const entry& e) const {
  return e.slot < due_.size() && due_[e.slot][e.rule] == e.at;
}

void deadline_schedule::set(slot_id s, lifecycle_rule r, unix_ns at) {
  if (s >= due_.size()) {
    std::array<unix_ns, lifecycle_rule_count> empty;
    empty.fill(none);
    due_.resize(s + 1, empty);
  }
  auto& d = due_[s][static_cast<std::size_t>(r)];
  if (d == at)
    return;
  if (d == none)
    ++live_;
  d = at;
  heap_.push_back({at, s, static_cast<std::uint8_t>(r)});
  std::push_heap(heap_.begin(), heap_.end(), later);
  maybe_compact();
}

void deadline_schedule::cancel(slot_id s, lifecycle_rule r) {
  if (s >= due_.size())
    return;
  auto& d = due_[s][static_cast<std::size_t>(r)];
  if (d != none) {
    d = none;
    --live_;
    maybe_compact();
  }
}

void deadline_schedule::cancel_all(slot_id s) {
  for (std::size_t r = 0; r < lifecycle_rule_count; ++r)
    cancel(s, static_cast<lifecycle_rule>(r));
}

std::optional<unix_ns> deadline_schedule::at(slot_id s, lifecycle_rule r) const {
  if (s >= due_.size() || due_[s][static_cast<std::size_t>(r)] == none)
    return std::nullopt;
  return due_[s][static_cast<std::size_t>(r)];
}

void deadline_schedule::drop_stale_top() {
  while (!heap_.empty() && !is_live(heap_.front())) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    heap_.pop_back();
  }
}

std::optional<unix_ns> deadline_schedule::next() {
  drop_stale_top();
  if (heap_.empty())
    return std::nullopt;
  return heap_.front().at;
}

std::vector<std::pair<deadline_schedule::slot_id, lifecycle_rule>>
deadline_schedule::take_due(unix_ns now) {
  std::vector<std::pair<slot_id, lifecycle_rule>> out;
  for (;;) {
    drop_stale_top();
    if (heap_.empty() || heap_.front().at > now)
      break;
    const entry e = heap_.front();
    std::pop_heap(heap_.begin(), heap_.end(), later);
    heap_.pop_back();
    due_[e.slot][e.rule] = none;
    --live_;
    out.emplace_back(e.slot, static_cast<lifecycle_rule>(e.rule));
  }
  return out;
}

void deadline_schedule::maybe_compact() {
  // Stale entries may at most double the heap (plus some slack for small schedules).
  if (heap_.size() <= 2 * live_ + 1024)
    return;
  std::vector<entry> fresh;
  fresh.reserve(live_ + live_ / 2);
  for (slot_id s = 0; s < due_.size(); ++s)
    for (std::size_t r = 0; r < lifecycle_rule_count; ++r)
      if (due_[s][r] != none)
        fresh.push_back({due_[s][r], s, static_cast<std::uint8_t>(r)});
  std::make_heap(fresh.begin(), fresh.end(), later);
  heap_ = std::move(fresh);
}

std::size_t deadline_schedule::memory_bytes() const {
  return due_.capacity() * sizeof(due_[0]) + heap_.capacity() * sizeof(entry);
}

// ---- expiry_book -----------------------------------------------------------------------------

std::uint32_t expiry_book::account_slot(const std::string& account_id) {
  auto it = account_index_.find(account_id);
  if (it != account_index_.end())
    return it->second;
  std::uint32_t idx;
  if (!free_accounts_.empty()) {
    idx = free_accounts_.back();
    free_accounts_.pop_back();
    accounts_[idx] = account_entry{account_id, {}, {}};
  } else {
    idx = static_cast<std::uint32_t>(accounts_.size());
    accounts_.push_back(account_entry{account_id, {}, {}});
  }
  account_index_.emplace(account_id, idx);
  return idx;
}

std::optional<unix_ns> expiry_book::due(const lifecycle_facts& f, lifecycle_rule r) const {
  auto at = due_at(f, r, lifetime_);
  if (at && r == lifecycle_rule::ephemeral)
    at = std::max(*at, ephemeral_floor_);
  return at;
}

void expiry_book::schedule_slot(slot_id s, const lifecycle_facts& f) {
  for (std::size_t r = 0; r < lifecycle_rule_count; ++r) {
    const auto rule = static_cast<lifecycle_rule>(r);
    if (auto at = due(f, rule))
      schedule_.set(s, rule, *at);
    else
      schedule_.cancel(s, rule);
  }
}

void expiry_book::upsert(const lifecycle_facts& f) {
  if (!lifecycle_candidate(f)) {
    forget(f.peer_id);
    return;
  }
  const auto acc = account_slot(f.account_id);
  accounts_[acc].settings = f.settings;
  slot_id s;
  auto it = index_.find(f.peer_id);
  if (it == index_.end()) {
    if (!free_.empty()) {
      s = free_.back();
      free_.pop_back();
    } else {
      s = static_cast<slot_id>(slots_.size());
      slots_.emplace_back();
    }
    it = index_.emplace(f.peer_id, s).first;
    slots_[s].peer_id = &it->first;
    slots_[s].account = acc;
    accounts_[acc].slots.push_back(s);
  } else {
    s = it->second;
    if (slots_[s].account != acc) { // moved to another account (not a NetBird operation)
      auto& old = accounts_[slots_[s].account].slots;
      old.erase(std::remove(old.begin(), old.end(), s), old.end());
      slots_[s].account = acc;
      accounts_[acc].slots.push_back(s);
    }
  }
  std::uint8_t flags = 0;
  flags |= f.sso ? f_sso : 0;
  flags |= f.login_expiration_enabled ? f_login : 0;
  flags |= f.inactivity_expiration_enabled ? f_inactivity : 0;
  flags |= f.ephemeral ? f_ephemeral : 0;
  flags |= f.connected ? f_connected : 0;
  flags |= f.login_expired ? f_expired : 0;
  slots_[s].flags = flags;
  schedule_slot(s, f);
}

void expiry_book::release(slot_id s) {
  schedule_.cancel_all(s);
  auto& sl = slots_[s];
  auto& members = accounts_[sl.account].slots;
  members.erase(std::remove(members.begin(), members.end(), s), members.end());
  sl = slot{};
  free_.push_back(s);
}

void expiry_book::forget(const std::string& peer_id) {
  auto it = index_.find(peer_id);
  if (it == index_.end())
    return;
  const slot_id s = it->second;
  release(s);
  index_.erase(it);
}

void expiry_book::derive_account(const std::string& account_id, const lifecycle_settings& settings,
                                 const std::vector<lifecycle_facts>& rows) {
  const auto acc = account_slot(account_id);
  accounts_[acc].settings = settings;
  // Peers listed now, by id; every other peer of the account is forgotten.
  std::unordered_map<std::string_view, const lifecycle_facts*> listed;
  listed.reserve(rows.size());
  for (const auto& r : rows)
    listed.emplace(r.peer_id, &r);
  const auto members = accounts_[acc].slots; // copy: forget() edits it
  for (auto s : members)
    if (!listed.count(*slots_[s].peer_id))
      forget(*slots_[s].peer_id);
  for (const auto& r : rows)
    upsert(r);
  if (accounts_[acc].slots.empty())
    forget_account(account_id);
}

void expiry_book::forget_account(const std::string& account_id) {
  auto it = account_index_.find(account_id);
  if (it == account_index_.end())
    return;
  const auto acc = it->second;
  const auto members = accounts_[acc].slots;
  for (auto s : members)
    forget(*slots_[s].peer_id);
  accounts_[acc] = account_entry{};
  free_accounts_.push_back(acc);
  account_index_.erase(it);
}

void expiry_book::on_connect(const std::string& peer_id) {
  auto it = index_.find(peer_id);
  if (it == index_.end())
    return;
  const slot_id s = it->second;
  auto& sl = slots_[s];
  sl.flags |= f_connected;
  // A connected peer is neither inactive nor to be cleaned up; its login deadline stands (it
  // depends on the last login only).
  schedule_.cancel(s, lifecycle_rule::inactivity);
  schedule_.cancel(s, lifecycle_rule::ephemeral);
}

void expiry_book::on_disconnect(const std::string& peer_id, unix_ns now) {
  auto it = index_.find(peer_id);
  if (it == index_.end())
    return;
  const slot_id s = it->second;
  auto& sl = slots_[s];
  sl.flags &= static_cast<std::uint8_t>(~f_connected);
  const auto& set = accounts_[sl.account].settings;
  if (sl.flags & f_ephemeral)
    schedule_.set(s, lifecycle_rule::ephemeral, std::max(now + lifetime_, ephemeral_floor_));
  if ((sl.flags & f_sso) && (sl.flags & f_inactivity) && !(sl.flags & f_expired) &&
      set.inactivity_enabled)
    schedule_.set(s, lifecycle_rule::inactivity, now + set.inactivity_period_ns);
}

void expiry_book::set_deadline(const std::string& peer_id, lifecycle_rule r, unix_ns at) {
  auto it = index_.find(peer_id);
  if (it != index_.end())
    schedule_.set(it->second, r, at);
}

std::vector<std::string> expiry_book::account_ids() const {
  std::vector<std::string> out;
  out.reserve(account_index_.size());
  for (const auto& [id, idx] : account_index_)
    out.push_back(id);
  return out;
}

std::vector<expiry_book::due_item> expiry_book::take_due(unix_ns now) {
  std::vector<due_item> out;
  for (const auto& [s, rule] : schedule_.take_due(now))
    out.push_back({accounts_[slots_[s].account].id, *slots_[s].peer_id, rule});
  return out;
}

std::optional<unix_ns> expiry_book::deadline(const std::string& peer_id, lifecycle_rule r) const {
  auto it = index_.find(peer_id);
  if (it == index_.end())
    return std::nullopt;
  return schedule_.at(it->second, r);
}

std::size_t expiry_book::memory_bytes() const {
  // Node-based maps: one allocation per element (next pointer, cached hash, value), rounded to
  // malloc's 16-byte granularity, plus the bucket array; strings longer than the small-string
  // buffer hold their characters on the heap.
  auto node = [](std::size_t value) { return (16 + value + 15) / 16 * 16; };
  auto str_heap = [](const std::string& s) {
    return s.capacity() > 15 ? (s.capacity() + 1 + 15) / 16 * 16 : 0;
  };
  std::size_t n = 0;
  n += index_.bucket_count() * sizeof(void*);
  for (const auto& [k, v] : index_)
    n += node(sizeof(std::pair<const std::string, slot_id>)) + str_heap(k);
  n += slots_.capacity() * sizeof(slot) + free_.capacity() * sizeof(slot_id);
  n += accounts_.capacity() * sizeof(account_entry) + free_accounts_.capacity() * 4;
  for (const auto& a : accounts_)
    n += a.slots.capacity() * sizeof(slot_id) + str_heap(a.id);
  n += account_index_.bucket_count() * sizeof(void*);
  for (const auto& [k, v] : account_index_)
    n += node(sizeof(std::pair<const std::string, std::uint32_t>)) + str_heap(k);
  n += schedule_.memory_bytes();
  return n;
}

} // namespace nbm::core
