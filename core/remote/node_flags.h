// The command-line flags every remote picos program shares, defined once,
// and what turns them into NodeOptions (node.h):
//
//   --listen=URI[,URI...]    URIs to listen on; repeatable. Else
//                            $PICOS_REMOTE_LISTEN, else the program's default.
//   --advertise=URI[,URI...] URIs peers should dial instead of the bound ones
//                            (NAT, containers); repeatable. Else
//                            $PICOS_REMOTE_ADVERTISE.
//   --peer=URI[,URI...]      peers to connect to at start (pycos's static
//                            peer list); repeatable. Else $PICOS_REMOTE_PEERS.
//   --secret_file=PATH       the shared secret's file (its first line). Else
//                            $PICOS_REMOTE_SECRET. There is no default secret.
//   --node_name=NAME         the name peers see in their logs; else the
//                            program's.
//
// A flag given on the command line wins over its environment variable, even
// when given empty (`--peer=` connects to nobody). Lists in flags and in the
// environment are separated by commas (environment: commas or whitespace).
// A URI without a scheme ("127.0.0.1:9705") is tcp://, the common case, as
// pycos's host:port; any other scheme the transport registry knows
// (tcp://, tls://, unix://) is written out.
//
//   int main(int argc, char** argv) {
//     picos::remote::ParseCommandLine(argc, argv);  // instead of absl::ParseCommandLine
//     return picos::RunMain("server", Main);
//   }
//   picos::Task<absl::Status> Main() {
//     const picos::TransportRegistry& t = picos::transports::DefaultTransports();
//     PICOS_CO_ASSIGN_OR_RETURN(picos::remote::NodeConfig config,
//         picos::remote::NodeConfigFromFlags(t, {.name = "server", .listen = {"tcp://127.0.0.1:9705"}}));
//     PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
//         co_await picos::remote::Node::Start(t, std::move(config.options)));
//     PICOS_CO_RETURN_IF_ERROR(co_await picos::remote::ConnectPeers(*node, config.peers));
//
// Flags and environment are input: every URI is parsed (core/net/uri.h) and
// its scheme checked against the registry, and an error names the flag or
// variable and the bad value; no message ever quotes the secret.
#ifndef PICOS_CORE_REMOTE_NODE_FLAGS_H_
#define PICOS_CORE_REMOTE_NODE_FLAGS_H_

#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/kernel/task.h"
#include "core/net/transport.h"
#include "core/remote/node.h"

ABSL_DECLARE_FLAG(std::vector<std::string>, listen);
ABSL_DECLARE_FLAG(std::vector<std::string>, advertise);
ABSL_DECLARE_FLAG(std::vector<std::string>, peer);
ABSL_DECLARE_FLAG(std::string, secret_file);
ABSL_DECLARE_FLAG(std::string, node_name);

namespace picos::remote {

// Environment variables read when the matching flag is not given.
inline constexpr char kListenEnv[] = "PICOS_REMOTE_LISTEN";
inline constexpr char kAdvertiseEnv[] = "PICOS_REMOTE_ADVERTISE";
inline constexpr char kPeersEnv[] = "PICOS_REMOTE_PEERS";
inline constexpr char kSecretEnv[] = "PICOS_REMOTE_SECRET";

// Most URIs one list may hold (flags and environment are input).
inline constexpr size_t kMaxFlagUris = 64;

// What a program supplies when neither a flag nor the environment does.
struct NodeFlagDefaults {
  // The node's name (--node_name overrides it).
  std::string name;
  // Where a server listens by default; empty for a client-only program.
  std::vector<std::string> listen;
};

// The flags' raw values, as the command line gave them; `set` says which
// were given at all (an absent flag falls back to the environment).
struct NodeFlagValues {
  std::vector<std::string> listen, advertise, peers;
  std::string secret_file, node_name;
  bool listen_set = false, advertise_set = false, peers_set = false;
};

// The validated result: options for Node::Start and the peers to connect to
// once it has started (ConnectPeers).
struct NodeConfig {
  NodeOptions options;
  std::vector<std::string> peers;
};

// absl::ParseCommandLine, after joining repeated --listen, --advertise and
// --peer into one comma-separated value each (absl keeps only the last of a
// repeated flag). Exits as absl::ParseCommandLine does on an unknown flag.
// Gives the positional arguments.
std::vector<char*> ParseCommandLine(int argc, char** argv);

// The arguments `argv` with repeated list flags joined (what
// ParseCommandLine passes to absl). Pure; exposed for its test.
std::vector<std::string> JoinRepeatedListFlags(const std::vector<std::string>& argv);

// The flags' current values (after ParseCommandLine).
NodeFlagValues NodeFlagValuesFromCommandLine();

// Validates `values` (with the environment where a flag was not given) and
// builds the node's options: kInvalidArgument naming the flag or variable
// and the bad URI, kNotFound when no secret is given. Reads the secret file
// or $PICOS_REMOTE_SECRET. Any thread; never suspends.
absl::StatusOr<NodeConfig> NodeConfigFromValues(const NodeFlagValues& values,
                                                const TransportRegistry& transports,
                                                const NodeFlagDefaults& defaults = {});

// NodeConfigFromValues(NodeFlagValuesFromCommandLine(), ...).
absl::StatusOr<NodeConfig> NodeConfigFromFlags(const TransportRegistry& transports,
                                               const NodeFlagDefaults& defaults = {});

// Connects `node` to every URI of `peers` (Node::Connect), one after the
// other. Stops at the first that fails, with its error prefixed by the
// peer's URI ("--peer tcp://10.0.0.2:9705: ..."). Suspends.
Task<absl::Status> ConnectPeers(Node& node, std::vector<std::string> peers);

}  // namespace picos::remote

#endif  // PICOS_CORE_REMOTE_NODE_FLAGS_H_
