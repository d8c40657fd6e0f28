#include "core/remote/node_flags.h"

#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/net/uri.h"

ABSL_FLAG(std::vector<std::string>, listen, {},
          "URIs to listen on (tcp://, tls://, unix://; host:port is tcp://), comma-separated or "
          "repeated; else $PICOS_REMOTE_LISTEN, else the program's default");
ABSL_FLAG(std::vector<std::string>, advertise, {},
          "URIs peers should dial instead of the bound ones (NAT, containers); else "
          "$PICOS_REMOTE_ADVERTISE");
ABSL_FLAG(std::vector<std::string>, peer, {},
          "URIs of peers to connect to at start, comma-separated or repeated; else "
          "$PICOS_REMOTE_PEERS");
ABSL_FLAG(std::string, secret_file, "",
          "file whose first line is the shared secret; else $PICOS_REMOTE_SECRET (no default)");
ABSL_FLAG(std::string, node_name, "", "this node's name in peers' logs; else the program's");

namespace picos::remote {
namespace {

constexpr const char* kListFlags[] = {"listen", "advertise", "peer"};

// "--peer=x" or "-peer=x" → ("peer", "x", true); "--peer" → ("peer", "", false).
struct FlagArg {
  std::string name;
  std::string value;
  bool has_value = false;
};

bool ParseFlagArg(const std::string& arg, FlagArg* out) {
  absl::string_view a = arg;
  if (absl::StartsWith(a, "--")) {
    a.remove_prefix(2);
  } else if (absl::StartsWith(a, "-")) {
    a.remove_prefix(1);
  } else {
    return false;
  }
  size_t eq = a.find('=');
  out->name = std::string(a.substr(0, eq));
  out->has_value = eq != absl::string_view::npos;
  out->value = out->has_value ? std::string(a.substr(eq + 1)) : std::string();
  return !out->name.empty();
}

// The list flags ParseCommandLine saw on the command line (absl does not
// say whether a flag was given, only its value: an empty --peer= must still
// win over $PICOS_REMOTE_PEERS).
std::set<std::string>& GivenListFlags() {
  static std::set<std::string>* given = new std::set<std::string>();
  return *given;
}

bool IsListFlag(const std::string& name) {
  for (const char* f : kListFlags) {
    if (name == f) return true;
  }
  return false;
}

// The URIs of one list (flag or environment), each checked: at most
// kMaxFlagUris, each a URI ParseUri accepts with a scheme `transports` has
// for streams; "host:port" becomes "tcp://host:port". `what` names the
// source in errors ("--listen", "$PICOS_REMOTE_PEERS").
absl::StatusOr<std::vector<std::string>> CheckUris(const std::vector<std::string>& raw,
                                                   const std::string& what,
                                                   const TransportRegistry& transports) {
  std::vector<std::string> uris;
  for (const std::string& r : raw) {
    std::string u(absl::StripAsciiWhitespace(r));
    if (u.empty()) continue;
    if (uris.size() == kMaxFlagUris) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": more than ", kMaxFlagUris, " URIs"));
    }
    if (u.size() > kMaxUriLength) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": a URI longer than ", kMaxUriLength, " bytes"));
    }
    if (!absl::StrContains(u, "://")) u = absl::StrCat("tcp://", u);
    absl::StatusOr<Uri> parsed = ParseUri(u);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(what, "=", u, ": ", parsed.status().message()));
    }
    absl::StatusOr<StreamTransport*> t = transports.StreamFor(parsed->scheme);
    if (!t.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(what, "=", u, ": no stream transport for ",
                                                     parsed->scheme, ":// (known: ",
                                                     absl::StrJoin(transports.stream_schemes(), ", "),
                                                     ")"));
    }
    uris.push_back(std::move(u));
  }
  return uris;
}

// The flag's values when it was given, else the environment variable's
// (commas or whitespace between URIs), checked.
absl::StatusOr<std::vector<std::string>> FlagOrEnv(bool set, const std::vector<std::string>& flag,
                                                   const char* flag_name, const char* env,
                                                   const TransportRegistry& transports) {
  if (set) return CheckUris(flag, absl::StrCat("--", flag_name), transports);
  const char* v = std::getenv(env);
  if (v == nullptr) return std::vector<std::string>();
  std::vector<std::string> raw = absl::StrSplit(v, absl::ByAnyChar(", \t\n"), absl::SkipEmpty());
  return CheckUris(raw, absl::StrCat("$", env), transports);
}

}  // namespace

std::vector<std::string> JoinRepeatedListFlags(const std::vector<std::string>& argv) {
  std::vector<std::string> out;
  std::map<std::string, std::vector<std::string>> joined;  // flag name → its values, in order
  std::map<std::string, size_t> first;                     // flag name → its index in `out`
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (i == 0 || arg == "--") {  // the program's name; after "--" everything is positional
      if (arg == "--" && i != 0) {
        out.insert(out.end(), argv.begin() + i, argv.end());
        break;
      }
      out.push_back(arg);
      continue;
    }
    FlagArg f;
    if (!ParseFlagArg(arg, &f) || !IsListFlag(f.name)) {
      out.push_back(arg);
      continue;
    }
    std::string value = f.value;
    if (!f.has_value) {  // "--peer URI": absl takes the next argument as the value
      if (i + 1 == argv.size()) {
        out.push_back(arg);  // absl reports the missing value
        continue;
      }
      value = argv[++i];
    }
    auto [it, inserted] = first.emplace(f.name, out.size());
    if (inserted) out.push_back("");
    if (!value.empty()) joined[f.name].push_back(value);
  }
  for (const auto& [name, index] : first) {
    out[index] = absl::StrCat("--", name, "=", absl::StrJoin(joined[name], ","));
  }
  return out;
}

std::vector<char*> ParseCommandLine(int argc, char** argv) {
  // absl's positional arguments point into the array it parses: keep it
  // for the life of the program.
  static std::vector<std::string>* args = new std::vector<std::string>(
      JoinRepeatedListFlags(std::vector<std::string>(argv, argv + argc)));
  for (const std::string& a : *args) {
    if (a == "--") break;
    FlagArg f;
    if (ParseFlagArg(a, &f) && IsListFlag(f.name)) GivenListFlags().insert(f.name);
  }
  static std::vector<char*>* ptrs = [] {
    auto* p = new std::vector<char*>();
    for (std::string& a : *args) p->push_back(a.data());
    p->push_back(nullptr);
    return p;
  }();
  return absl::ParseCommandLine(static_cast<int>(args->size()), ptrs->data());
}

NodeFlagValues NodeFlagValuesFromCommandLine() {
  NodeFlagValues v;
  v.listen = absl::GetFlag(FLAGS_listen);
  v.advertise = absl::GetFlag(FLAGS_advertise);
  v.peers = absl::GetFlag(FLAGS_peer);
  v.secret_file = absl::GetFlag(FLAGS_secret_file);
  v.node_name = absl::GetFlag(FLAGS_node_name);
  // A program that parsed with absl::ParseCommandLine itself: a non-empty
  // value was given.
  v.listen_set = GivenListFlags().count("listen") > 0 || !v.listen.empty();
  v.advertise_set = GivenListFlags().count("advertise") > 0 || !v.advertise.empty();
  v.peers_set = GivenListFlags().count("peer") > 0 || !v.peers.empty();
  return v;
}

absl::StatusOr<NodeConfig> NodeConfigFromValues(const NodeFlagValues& values,
                                                const TransportRegistry& transports,
                                                const NodeFlagDefaults& defaults) {
  NodeConfig config;
  absl::StatusOr<std::vector<std::string>> listen =
      FlagOrEnv(values.listen_set, values.listen, "listen", kListenEnv, transports);
  if (!listen.ok()) return listen.status();
  if (!values.listen_set && std::getenv(kListenEnv) == nullptr) {
    listen = CheckUris(defaults.listen, "the default --listen", transports);
    if (!listen.ok()) return listen.status();
  }
  absl::StatusOr<std::vector<std::string>> advertise =
      FlagOrEnv(values.advertise_set, values.advertise, "advertise", kAdvertiseEnv, transports);
  if (!advertise.ok()) return advertise.status();
  absl::StatusOr<std::vector<std::string>> peers =
      FlagOrEnv(values.peers_set, values.peers, "peer", kPeersEnv, transports);
  if (!peers.ok()) return peers.status();
  if (values.node_name.size() > 256) {
    return absl::InvalidArgumentError("--node_name: longer than 256 bytes");
  }
  absl::StatusOr<std::string> secret = LoadSecret(values.secret_file, kSecretEnv);
  if (!secret.ok()) {
    // LoadSecret's messages name the file or the variable, never the secret.
    return absl::Status(secret.status().code(),
                        absl::StrCat("--secret_file / $", kSecretEnv, ": ", secret.status().message()));
  }
  config.options.secret = *std::move(secret);
  config.options.listen = *std::move(listen);
  config.options.advertise = *std::move(advertise);
  config.options.name = values.node_name.empty() ? defaults.name : values.node_name;
  config.peers = *std::move(peers);
  return config;
}

absl::StatusOr<NodeConfig> NodeConfigFromFlags(const TransportRegistry& transports,
                                               const NodeFlagDefaults& defaults) {
  return NodeConfigFromValues(NodeFlagValuesFromCommandLine(), transports, defaults);
}

Task<absl::Status> ConnectPeers(Node& node, std::vector<std::string> peers) {
  for (const std::string& peer : peers) {
    absl::Status s = co_await node.Connect(peer);
    if (!s.ok()) co_return absl::Status(s.code(), absl::StrCat("--peer ", peer, ": ", s.message()));
  }
  co_return absl::OkStatus();
}

}  // namespace picos::remote
