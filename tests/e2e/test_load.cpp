// The load generator (tools/peer_load) against the real binary: a few peers register, open Sync,
// reconnect in a storm and churn, and peer_load's report says what the server did — checked here
// against the store and the maps' contents.
#include "tests/e2e/harness.hpp"

#include <sstream>

using namespace nbm;
using namespace nbm::e2e;

namespace {

struct load_run {
  int rc = -1;
  std::string out;
  // The value of `key` on the first line that starts with "<what>:" ("" if none).
  std::string get(const std::string& what, const std::string& key) const {
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind(what + ":", 0) != 0)
        continue;
      std::istringstream words(line);
      for (std::string w; words >> w;)
        if (w.rfind(key + "=", 0) == 0)
          return w.substr(key.size() + 1);
      return "";
    }
    return "";
  }
  long num(const std::string& what, const std::string& key) const {
    const auto v = get(what, key);
    return v.empty() || v == "-" ? -1 : std::atol(v.c_str());
  }
};

load_run peer_load(const std::string& args) {
  load_run r;
  const auto cmd = std::string(NBM_PEER_LOAD_BIN) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[512];
  while (std::fgets(buf, sizeof buf, p))
    r.out += buf;
  const int status = ::pclose(p);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Deletes every policy of the account (the default All policy, in a fresh one).
void remove_policies(server& s) {
  // The policies' lines (the admin's "store: ..." line on stderr is not one of them).
  auto policies = [&s] {
    std::istringstream in(s.admin("policy list --account " + s.account));
    std::vector<std::string> ids;
    for (std::string line; std::getline(in, line);)
      if (!line.empty() && line[0] != ' ' && line.rfind("store: ", 0) != 0)
        ids.push_back(line.substr(0, line.find(' ')));
    return ids;
  };
  const auto ids = policies();
  REQUIRE(!ids.empty());
  for (const auto& id : ids)
    s.admin("policy delete --account " + s.account + " --policy-id " + id);
  REQUIRE(policies().empty());
}

std::size_t peers_in_store(server& s) {
  soci::session sql;
  storage::open_session(sql, s.db);
  int n = 0;
  sql << "SELECT COUNT(*) FROM peers WHERE account_id = :a", soci::use(s.account), soci::into(n);
  return static_cast<std::size_t>(n);
}

} // namespace

TEST_CASE("peer_load: 20 peers register, all hold a map, storm and churn reconnect them") {
  for (auto kind : engines()) {
    INFO(std::string(storage::to_string(kind)));
    server s(kind);
    remove_policies(s);
    const auto key = s.setup_key("--name load --reusable");
    const auto keys = s.dir + "/peers.keys";
    const auto common = "--server " + s.target() + " --peers 20 --keys-file " + keys +
                        " --server-pid " + std::to_string(s.pid) + " --channels 3";

    auto reg = peer_load("register " + common + " --setup-key " + key + " --concurrency 8");
    INFO(reg.out);
    CHECK(reg.rc == 0);
    CHECK(reg.get("keys", "generated") == "20");
    CHECK(reg.num("register", "ok") == 20);
    CHECK(reg.num("register", "failed") == 0);
    CHECK(reg.get("server", "cpu_s") != "");
    CHECK(reg.num("server", "rss_kib") > 0);
    CHECK(peers_in_store(s) == 20);

    // Registered and alone: every map holds no other peer (no policy), the serial is the same.
    auto sync = peer_load("sync " + common);
    INFO(sync.out);
    CHECK(sync.rc == 0);
    CHECK(sync.get("keys", "reused") == "20");
    CHECK(sync.num("sync", "with_map") == 20);
    CHECK(sync.num("sync", "failed") == 0);
    CHECK(sync.get("sync", "complete") == "yes");
    CHECK(sync.num("maps", "current") == 20);
    CHECK(sync.num("maps", "remote_peers_max") == 0);
    CHECK(sync.num("maps", "bad") == 0);
    CHECK(sync.num("held", "rss_kib") > 0);
    CHECK(peers_in_store(s) == 20); // the same peers: nothing registered anew

    // Every stream closes and reconnects at once, each through a Login first.
    auto storm = peer_load("storm --login " + common);
    INFO(storm.out);
    CHECK(storm.rc == 0);
    CHECK(storm.num("sync", "with_map") == 20);
    CHECK(storm.num("storm", "with_map") == 20);
    CHECK(storm.num("storm", "failed") == 0);

    auto churn = peer_load("churn " + common + " --fraction 0.5 --duration 1");
    INFO(churn.out);
    CHECK(churn.rc == 0);
    CHECK(churn.num("churn", "reconnects") >= 5);
    CHECK(churn.num("churn", "with_map") == churn.num("churn", "reconnects"));
    CHECK(churn.num("churn", "holding") == 20);
  }
}

TEST_CASE("peer_load: with the default All policy every map holds every other peer") {
  server s(storage::engine::sqlite);
  const auto key = s.setup_key("--name load --reusable");
  const auto common =
      "--server " + s.target() + " --peers 12 --keys-file " + s.dir + "/all.keys" + " --threads 1";
  auto reg = peer_load("register " + common + " --setup-key " + key);
  INFO(reg.out);
  REQUIRE(reg.rc == 0);
  auto sync = peer_load("sync " + common);
  INFO(sync.out);
  CHECK(sync.rc == 0);
  CHECK(sync.num("maps", "remote_peers_min") == 11);
  CHECK(sync.num("maps", "remote_peers_max") == 11);
  CHECK(sync.num("maps", "current") == 12);
  CHECK(sync.get("server", "cpu_s") == ""); // no --server-pid: unmeasured, said so

  // A change while all hold their maps: two more peers register; every stream gets a newer map
  // that holds them.
  auto change = peer_load("sync " + common + " --change 2 --setup-key " + key);
  INFO(change.out);
  CHECK(change.rc == 0);
  CHECK(change.num("change", "registered") == 2);
  CHECK(change.num("change", "updated") == 12);
  CHECK(change.num("change", "current") == 12);
  CHECK(change.num("change", "serial_newest") > change.num("change", "serial_before"));
  CHECK(change.get("change", "all_current_within_s") != "-");
  CHECK(peers_in_store(s) == 14);
}

TEST_CASE("peer_load: unknown peers, a wrong setup key and bad usage are reported, not hidden") {
  server s(storage::engine::sqlite);
  const auto common = "--server " + s.target() + " --peers 5 --keys-file " + s.dir + "/x.keys";
  // Never registered: every Sync fails, with the server's status in the report.
  auto sync = peer_load("sync " + common + " --timeout 10");
  INFO(sync.out);
  CHECK(sync.rc == 1);
  CHECK(sync.num("sync", "with_map") == 0);
  CHECK(sync.num("sync", "failed") == 5);
  CHECK(sync.out.find("error: count=5 what=sync ended") != std::string::npos);

  auto reg = peer_load("register " + common + " --setup-key 00000000-0000-0000-0000-000000000000");
  INFO(reg.out);
  CHECK(reg.rc == 1);
  CHECK(reg.num("register", "ok") == 0);
  CHECK(reg.num("register", "failed") == 5);
  CHECK(reg.out.find("error: count=5 what=login") != std::string::npos);
  CHECK(peers_in_store(s) == 0);

  CHECK(peer_load("fly " + common).rc == 2);
  CHECK(peer_load("register " + common).rc == 2); // no setup key
  CHECK(peer_load("sync --peers 5").rc == 2);     // no keys file
  CHECK(peer_load("sync " + common + " --hold x").rc == 2);
}
