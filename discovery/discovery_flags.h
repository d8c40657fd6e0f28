// The command-line flags of discovery, and what turns them (with the node's
// flags, core/remote/node_flags.h) into DiscoveryOptions:
//
//   --discovery_group=ADDR:PORT  multicast group and port ("239.255.97.5:9706",
//                                "[ff02::7069:636f]:9706"); empty: no
//                                multicast, static peers only. Else
//                                $PICOS_DISCOVERY_GROUP, else kDefaultGroup.
//   --discovery_iface=NAME|ADDR  interface to announce and listen on. Else
//                                $PICOS_DISCOVERY_IFACE, else the first
//                                interface up that is not loopback (or "lo").
//   --discovery_ttl=N            multicast TTL / hop limit, 0..255. Else
//                                $PICOS_DISCOVERY_TTL, else 1.
//
// The static peers are the node's --peer list (NodeConfig::peers), retried
// by discovery until they answer rather than dialled once. A flag given on
// the command line wins over its variable (an empty --discovery_iface counts
// as not given: both mean "choose"); values are checked as input
// (a bad one is kInvalidArgument naming the flag or variable).
//
//   picos::remote::ParseCommandLine(argc, argv);
//   ...
//   PICOS_CO_ASSIGN_OR_RETURN(picos::discovery::DiscoveryOptions o,
//       picos::discovery::DiscoveryOptionsFromFlags(config));   // config: a NodeConfig
//   PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::discovery::Discovery> d,
//       co_await picos::discovery::Discovery::Start(*node, std::move(o)));
#ifndef PICOS_DISCOVERY_DISCOVERY_FLAGS_H_
#define PICOS_DISCOVERY_DISCOVERY_FLAGS_H_

#include <string>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "core/remote/node_flags.h"
#include "discovery/discovery.h"

ABSL_DECLARE_FLAG(std::string, discovery_group);
ABSL_DECLARE_FLAG(std::string, discovery_iface);
ABSL_DECLARE_FLAG(int, discovery_ttl);

namespace picos::discovery {

inline constexpr char kGroupEnv[] = "PICOS_DISCOVERY_GROUP";
inline constexpr char kIfaceEnv[] = "PICOS_DISCOVERY_IFACE";
inline constexpr char kTtlEnv[] = "PICOS_DISCOVERY_TTL";

// Options for Discovery::Start from the flags (or environment) above and the
// node's configuration: its secret, name and static peers. Validates the
// TTL and the group's form; Discovery::Start checks the rest. Any thread.
absl::StatusOr<DiscoveryOptions> DiscoveryOptionsFromFlags(const remote::NodeConfig& config);

}  // namespace picos::discovery

#endif  // PICOS_DISCOVERY_DISCOVERY_FLAGS_H_
