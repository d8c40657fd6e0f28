#include "discovery/discovery_flags.h"

#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/net/ip_endpoint.h"

// Defaults that mean "not given" (this Abseil has no public way to ask):
// then the environment, then the real default.
ABSL_FLAG(std::string, discovery_group, "default",
          "discovery multicast group ADDR:PORT (empty: static peers only); else $PICOS_DISCOVERY_GROUP, else "
          "239.255.97.5:9706");
ABSL_FLAG(std::string, discovery_iface, "",
          "interface to announce and listen on (name or address); else $PICOS_DISCOVERY_IFACE, else the first "
          "one up that is not loopback");
ABSL_FLAG(int, discovery_ttl, -1, "discovery multicast TTL / hop limit (0..255); else $PICOS_DISCOVERY_TTL, else 1");

namespace picos::discovery {
namespace {

// The flag's value when given (not `unset`), else the variable's when set,
// else `fallback`. `*from` names where the value came from, for errors.
std::string FlagOrEnv(const char* flag, const std::string& value, const std::string& unset, const char* env,
                      const std::string& fallback, std::string* from) {
  *from = absl::StrCat("--", flag);
  if (value != unset) return value;
  if (const char* v = std::getenv(env); v != nullptr) {
    *from = absl::StrCat("$", env);
    return std::string(v).substr(0, 512);
  }
  *from = "the default";
  return fallback;
}

}  // namespace

absl::StatusOr<DiscoveryOptions> DiscoveryOptionsFromFlags(const remote::NodeConfig& config) {
  DiscoveryOptions o;
  o.secret = config.options.secret;
  o.name = config.options.name.substr(0, MaxNameSize());
  o.peers = config.peers;
  std::string from;
  o.group = FlagOrEnv("discovery_group", absl::GetFlag(FLAGS_discovery_group), "default", kGroupEnv, kDefaultGroup,
                      &from);
  if (!o.group.empty()) {
    absl::StatusOr<IpEndpoint> g = IpEndpoint::ParseHostPort(o.group);
    if (!g.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(from, "=", o.group, ": ", g.status().message()));
    }
  }
  o.iface = FlagOrEnv("discovery_iface", absl::GetFlag(FLAGS_discovery_iface), "", kIfaceEnv, "", &from);
  if (o.iface.size() > 64) return absl::InvalidArgumentError(absl::StrCat(from, ": an interface name too long"));
  const std::string ttl =
      FlagOrEnv("discovery_ttl", absl::StrCat(absl::GetFlag(FLAGS_discovery_ttl)), "-1", kTtlEnv, "1", &from);
  if (!absl::SimpleAtoi(ttl, &o.ttl) || o.ttl < 0 || o.ttl > 255) {
    return absl::InvalidArgumentError(absl::StrCat(from, "=", ttl, ": a TTL is 0 to 255"));
  }
  return o;
}

}  // namespace picos::discovery
