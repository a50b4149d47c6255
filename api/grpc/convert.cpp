#include "api/grpc/convert.hpp"

#include "crypto/crypto.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <optional>

namespace nbm::api {

namespace {

management::HostConfig::Protocol protocol_of(std::string proto) {
  std::transform(proto.begin(), proto.end(), proto.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (proto == "tcp")
    return management::HostConfig::TCP;
  if (proto == "http")
    return management::HostConfig::HTTP;
  if (proto == "https")
    return management::HostConfig::HTTPS;
  if (proto == "dtls")
    return management::HostConfig::DTLS;
  return management::HostConfig::UDP;
}

void fill_host(management::HostConfig& out, const config::host& h) {
  out.set_uri(h.uri);
  out.set_protocol(protocol_of(h.proto));
}

} // namespace

management::NetbirdConfig to_netbird_config(const config::management_config& cfg,
                                            std::int64_t now_unix) {
  management::NetbirdConfig nc;
  for (const auto& s : cfg.stuns)
    fill_host(*nc.add_stuns(), s);
  if (cfg.turn) {
    // Time-based credentials as NetBird's: user = expiry (Unix s), password = base64 HMAC-SHA1.
    std::optional<crypto::timed_token> creds;
    if (cfg.turn->time_based_credentials)
      creds = crypto::turn_credentials(
          cfg.turn->secret,
          now_unix +
              std::chrono::duration_cast<std::chrono::seconds>(cfg.turn->credentials_ttl).count());
    for (const auto& t : cfg.turn->turns) {
      auto* pt = nc.add_turns();
      fill_host(*pt->mutable_hostconfig(), t);
      pt->set_user(creds ? creds->payload : t.username);
      pt->set_password(creds ? creds->signature : t.password);
    }
  }
  if (cfg.signal)
    fill_host(*nc.mutable_signal(), *cfg.signal);
  if (cfg.relay && !cfg.relay->addresses.empty()) {
    auto* relay = nc.mutable_relay();
    for (const auto& a : cfg.relay->addresses)
      relay->add_urls(a);
    auto token = crypto::relay_token(
        cfg.relay->secret,
        now_unix +
            std::chrono::duration_cast<std::chrono::seconds>(cfg.relay->credentials_ttl).count());
    relay->set_tokenpayload(token.payload);
    relay->set_tokensignature(token.signature);
  }
  return nc;
}

management::PeerConfig to_peer_config(const core::peer& p, const std::string& network,
                                      const std::string& dns_domain) {
  management::PeerConfig pc;
  const auto slash = network.find('/');
  pc.set_address(p.ip + (slash == std::string::npos ? "/32" : network.substr(slash)));
  pc.set_fqdn(p.dns_label + "." + dns_domain);
  pc.mutable_sshconfig()->set_sshenabled(p.ssh_enabled);
  return pc;
}

management::RemotePeerConfig to_remote_peer(const core::peer& p, const std::string& dns_domain) {
  management::RemotePeerConfig r;
  r.set_wgpubkey(p.key);
  r.add_allowedips(p.ip + "/32");
  r.mutable_sshconfig()->set_sshpubkey(p.ssh_key);
  r.set_fqdn(p.dns_label + "." + dns_domain);
  r.set_agentversion(p.meta.wt_version);
  return r;
}

core::peer_meta to_meta(const management::PeerSystemMeta& m) {
  using json = nlohmann::json;
  core::peer_meta out;
  out.hostname = m.hostname();
  out.go_os = m.goos();
  out.kernel = m.kernel();
  out.core = m.core();
  out.platform = m.platform();
  out.os = m.os();
  out.os_version = m.osversion().empty() ? m.core() : m.osversion(); // NetBird falls back to core
  out.wt_version = m.netbirdversion();
  out.ui_version = m.uiversion();
  out.kernel_version = m.kernelversion();
  out.system_serial_number = m.sysserialnumber();
  out.system_product_name = m.sysproductname();
  out.system_manufacturer = m.sysmanufacturer();
  // JSON columns in NetBird's shapes.
  json addrs = json::array();
  for (const auto& a : m.networkaddresses())
    addrs.push_back({{"NetIP", a.netip()}, {"Mac", a.mac()}});
  out.network_addresses_json = addrs.dump();
  out.environment_json =
      json{{"Cloud", m.environment().cloud()}, {"Platform", m.environment().platform()}}.dump();
  json files = json::array();
  for (const auto& f : m.files())
    files.push_back(
        {{"Path", f.path()}, {"Exist", f.exist()}, {"ProcessIsRunning", f.processisrunning()}});
  out.files_json = files.dump();
  const auto& fl = m.flags();
  out.flags_json = json{{"RosenpassEnabled", fl.rosenpassenabled()},
                        {"RosenpassPermissive", fl.rosenpasspermissive()},
                        {"ServerSSHAllowed", fl.serversshallowed()},
                        {"DisableClientRoutes", fl.disableclientroutes()},
                        {"DisableServerRoutes", fl.disableserverroutes()},
                        {"DisableDNS", fl.disabledns()},
                        {"DisableFirewall", fl.disablefirewall()},
                        {"BlockLANAccess", fl.blocklanaccess()},
                        {"BlockInbound", fl.blockinbound()},
                        {"LazyConnectionEnabled", fl.lazyconnectionenabled()}}
                       .dump();
  json caps = json::array();
  for (auto c : m.capabilities())
    caps.push_back(static_cast<int>(c));
  out.capabilities_json = caps.dump();
  return out;
}

} // namespace nbm::api
