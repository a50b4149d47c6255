// NetBird's benchmark account shape (management/server/peer_test.go setupTestAccountManager):
// `peers` peers in `groups` groups, one group<->group policy per group and one routing peer per
// group serving a route to it; with add_networks also NetBird's networks, resource policies and
// posture checks. Shared by the benchmarks.
#pragma once

#include "core/model.hpp"
#include "crypto/crypto.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace nbm::bench {

inline std::string ip_of(int i) {
  return "100.64." + std::to_string(i / 256) + "." + std::to_string(i % 256);
}

inline core::account bench_account(int peers, int groups) {
  core::account a;
  a.id = "bench";
  a.domain = "bench.example";
  a.net.identifier = "net";
  a.net.net = "100.64.0.0/10";
  a.net.serial = 1;
  core::group all;
  all.id = "group-all";
  all.account_id = a.id;
  all.name = "All";
  all.issued = "api";
  auto add_peer = [&](const std::string& id, int n, const std::string& version) {
    core::peer p;
    p.id = id;
    p.account_id = a.id;
    p.key = crypto::base64_encode(crypto::make_wg_key_pair().public_key);
    p.ip = ip_of(n + 1);
    p.name = id;
    p.dns_label = id;
    p.meta.hostname = id;
    p.meta.wt_version = version;
    p.user_id = "regular_user";
    p.status.connected = true;
    a.peers.push_back(p);
    all.peers.push_back(id);
  };
  for (int i = 0; i < peers; ++i)
    add_peer("peer-" + std::to_string(i), i, "0.60.0");
  const int per_group = std::max(1, peers / groups);
  for (int g = 0; g < groups; ++g) {
    core::group gr;
    gr.id = "group-" + std::to_string(g);
    gr.account_id = a.id;
    gr.name = gr.id;
    gr.issued = "api";
    for (int i = g * per_group; i < std::min(peers, (g + 1) * per_group); ++i)
      gr.peers.push_back("peer-" + std::to_string(i));
    const std::string router = "peer-nr-" + std::to_string(g);
    add_peer(router, peers + g, "development");
    gr.peers.push_back(router);
    a.groups.push_back(gr);

    core::policy pol;
    pol.id = "policy-" + std::to_string(g);
    pol.account_id = a.id;
    pol.name = pol.id;
    pol.enabled = true;
    core::policy_rule r;
    r.id = pol.id + "-rule";
    r.policy_id = pol.id;
    r.name = r.id;
    r.enabled = true;
    r.bidirectional = true;
    r.action = "accept";
    r.protocol = "all";
    r.sources = {gr.id};
    r.destinations = {gr.id};
    pol.rules.push_back(r);
    a.policies.push_back(pol);

    core::route rt;
    rt.id = "route-" + std::to_string(g);
    rt.account_id = a.id;
    rt.network = "192.0.2.0/32";
    rt.network_type = 1;
    rt.net_id = "resource-" + std::to_string(g);
    rt.peer = router;
    rt.metric = 9999;
    rt.enabled = true;
    rt.groups = {gr.id};
    a.routes.push_back(rt);
  }
  a.groups.push_back(all);
  return a;
}

// NetBird's fixture adds, per group, a network whose router is the group's routing peer, a host
// resource and a policy from the group to the resource (setupTestAccountManager), and a posture
// check. Here the router and resource are enabled (NetBird leaves both disabled, so its maps skip
// them) and the resource policies name two checks every regular peer passes: the agent version
// and a process its meta reports running (so each of those maps carries Checks too). The routing
// peers ("development") fail the version check, as NetBird fails them.
inline void add_networks(core::account& a, int groups) {
  for (auto& p : a.peers) {
    p.meta.go_os = "linux";
    p.meta.files_json = R"([{"Path":"/usr/bin/netbird","Exist":true,"ProcessIsRunning":true}])";
  }
  a.posture_checks.push_back(
      {"PostureChecksAll", a.id, "All", "", R"({"NBVersionCheck":{"MinVersion":"0.0.1"}})"});
  a.posture_checks.push_back(
      {"PostureChecksProcess", a.id, "Agent running", "",
       R"({"ProcessCheck":{"Processes":[{"LinuxPath":"/usr/bin/netbird","MacPath":"","WindowsPath":""}]}})"});
  for (int g = 0; g < groups; ++g) {
    const auto n = std::to_string(g);
    a.networks.push_back({"network-" + n, a.id, "Network for Group " + n, ""});
    core::network_router rt;
    rt.id = "network-router-" + n;
    rt.network_id = "network-" + n;
    rt.account_id = a.id;
    rt.peer = "peer-nr-" + n;
    rt.metric = 9999;
    rt.enabled = true;
    a.network_routers.push_back(rt);
    core::network_resource res;
    res.id = "network-resource-" + n;
    res.network_id = "network-" + n;
    res.account_id = a.id;
    res.name = "Network resource for Group " + n;
    res.type = "host";
    res.prefix = "192.0.2.0/32";
    res.enabled = true;
    a.network_resources.push_back(res);
    core::policy pol;
    pol.id = "policy-nr-" + n;
    pol.account_id = a.id;
    pol.name = "Policy for network resource " + n;
    pol.enabled = true;
    pol.source_posture_checks = {"PostureChecksAll", "PostureChecksProcess"};
    core::policy_rule r;
    r.id = "rule-nr-" + n;
    r.policy_id = pol.id;
    r.name = "Rule for network resource " + n;
    r.enabled = true;
    r.bidirectional = true;
    r.action = "accept";
    r.protocol = "all";
    r.sources = {"group-" + n};
    r.destination_resource = {res.id, "host"};
    pol.rules.push_back(r);
    a.policies.push_back(pol);
  }
}

// The benchmark shapes: "plain" (peers, groups, group policies, routes) or "networks" (plain and
// add_networks, the default).
inline core::account bench_account(int peers, int groups, const std::string& shape) {
  auto a = bench_account(peers, groups);
  if (shape != "plain")
    add_networks(a, groups);
  return a;
}

// The benchmarks' command line: [--runs N] [--pg-dsn DSN] [--sizes P/G,...]. False (after a usage
// line on stderr) for anything else.
struct bench_args {
  int runs = 5;
  std::string pg_dsn;
  std::vector<std::pair<int, int>> sizes;
  std::string shape = "networks"; // --shape plain|networks (the benchmarks that take it)
};

inline bool parse_bench_args(int argc, char** argv, bench_args& out, int min_runs) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc)
      out.runs = std::max(min_runs, std::atoi(argv[++i]));
    else if (a == "--pg-dsn" && i + 1 < argc)
      out.pg_dsn = argv[++i];
    else if (a == "--sizes" && i + 1 < argc) {
      out.sizes.clear();
      std::stringstream ss(argv[++i]);
      std::string item;
      while (std::getline(ss, item, ',')) {
        auto slash = item.find('/');
        out.sizes.emplace_back(std::stoi(item.substr(0, slash)), std::stoi(item.substr(slash + 1)));
      }
    } else if (a == "--shape" && i + 1 < argc &&
               (std::string(argv[i + 1]) == "plain" || std::string(argv[i + 1]) == "networks")) {
      out.shape = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: %s [--runs N] [--pg-dsn DSN] [--sizes P/G,...] [--shape "
                   "plain|networks]\n",
                   argv[0]);
      return false;
    }
  }
  return true;
}

} // namespace nbm::bench
