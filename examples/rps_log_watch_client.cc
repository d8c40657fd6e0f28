// pycos's rps_log_watch_client.py in C++: watches Node::peer_events() (pycos
// peer_status) and, for every peer that joins, locates the service
// "log_watch" at that peer and starts a watch task there that streams the
// matching lines of its log to this task; prints them per host. After
// --lines lines it closes every service (Service::Close terminates the
// remote watch tasks, and with them their tail | grep pipelines) and ends.
//
// Peers come from discovery (discovery/discovery.h), as pycos's come from
// discover_peers: servers announcing on the group (--discovery_group,
// --discovery_iface, --discovery_ttl or $PICOS_DISCOVERY_*) are dialled as
// they are heard, and static --peer servers are dialled until they answer.
// This client does not listen: it announces no URI, and dials the servers.
// With neither a --peer nor a group it dials tcp://127.0.0.1:9705.
//
//   PICOS_REMOTE_SECRET=... rps_log_watch_client                 # servers on the LAN
//   PICOS_REMOTE_SECRET=... rps_log_watch_client --discovery_group= --peer=tcp://10.0.0.2:9705
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "core/cli/flags.h"
#include "core/kernel/channel.h"
#include "core/kernel/naming.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/system_message.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "core/remote/service.h"
#include "discovery/discovery.h"
#include "discovery/discovery_flags.h"
#include "transports/default_transports.h"

ABSL_FLAG(int, lines, 3, "matching lines to receive before ending");
ABSL_FLAG(absl::Duration, wait, absl::Seconds(60), "longest wait for the next line or peer");

namespace {

// A peer joined: start a watch there. A peer without the service is
// reported and skipped.
picos::Task<absl::Status> StartWatch(std::string uri, std::vector<picos::remote::Service>* services) {
  absl::StatusOr<picos::remote::Service> service =
      co_await picos::remote::Service::Locate("log_watch", picos::Location::Peer(uri), absl::Seconds(10));
  if (!service.ok()) {
    std::printf("client: %s has no log_watch: %s\n", uri.c_str(), service.status().ToString().c_str());
    co_return absl::OkStatus();
  }
  picos::Value req = picos::Value::Map({{"client", picos::Self()}});
  PICOS_CO_ASSIGN_OR_RETURN(picos::TaskRef watch, co_await service->Run(std::move(req)));
  std::printf("client: watching %s with %s\n", uri.c_str(), watch.DebugString().c_str());
  std::fflush(stdout);
  services->push_back(*std::move(service));
  co_return absl::OkStatus();
}

picos::Task<absl::Status> Main(int want, absl::Duration wait) {
  const picos::TransportRegistry& transports = picos::transports::DefaultTransports();
  picos::remote::NodeFlagDefaults defaults;
  defaults.name = "rps_log_watch_client";
  PICOS_CO_ASSIGN_OR_RETURN(picos::remote::NodeConfig config,
                            picos::remote::NodeConfigFromFlags(transports, defaults));
  PICOS_CO_ASSIGN_OR_RETURN(picos::discovery::DiscoveryOptions discovery_options,
                            picos::discovery::DiscoveryOptionsFromFlags(config));
  if (discovery_options.peers.empty() && discovery_options.group.empty()) {
    discovery_options.peers.push_back("tcp://127.0.0.1:9705");
  }
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::remote::Node::Start(transports, std::move(config.options)));
  // Before discovery dials: the peers' "joined" events are what starts the watches.
  PICOS_CO_RETURN_IF_ERROR(picos::Channel(node->peer_events()).Subscribe(picos::Self()));
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::discovery::Discovery> discovery,
                            co_await picos::discovery::Discovery::Start(*node, std::move(discovery_options)));
  std::printf("client: discovery on %s\n",
              discovery->group_uri().empty() ? "static peers only" : discovery->group_uri().c_str());
  std::fflush(stdout);
  std::vector<picos::remote::Service> services;
  int got = 0;
  absl::Status result;
  while (got < want) {
    absl::StatusOr<picos::Value> m = co_await picos::Receive(wait);
    if (!m.ok()) {
      result = m.status();
      break;
    }
    if (const picos::Value* ev = picos::SystemMessagePayload(*m, picos::remote::kPeerEventMessage)) {
      std::string event, name, uri;
      absl::Status read = picos::MessageReader(*ev).Get("event", &event).Get("name", &name).Get("uri", &uri).status();
      if (!read.ok()) continue;
      std::printf("client: peer %s (%s) %s\n", name.c_str(), uri.c_str(), event.c_str());
      if (event == "joined") PICOS_CO_RETURN_IF_ERROR(co_await StartWatch(uri, &services));
      continue;
    }
    std::string host, line;
    absl::Status read = picos::MessageReader(*m).Get("host", &host).Get("line", &line).status();
    if (!read.ok()) {  // from the network: checked, and skipped if wrong
      std::printf("client: skipped %s: %s\n", m->DebugString().c_str(), read.ToString().c_str());
      continue;
    }
    std::printf("client: %s: %s\n", host.c_str(), line.c_str());
    std::fflush(stdout);
    ++got;
  }
  for (picos::remote::Service& s : services) {
    absl::Status closed = s.Close();
    if (!closed.ok()) std::printf("client: closing %s: %s\n", s.name().c_str(), closed.ToString().c_str());
  }
  // No more dials (a server that ends is not called back), then the
  // terminations, accepted but not yet sent, are written out, and a goodbye.
  (void)co_await discovery->Stop();
  PICOS_CO_RETURN_IF_ERROR(co_await node->Close());
  PICOS_CO_RETURN_IF_ERROR(result);
  std::printf("client: %d lines from %zu watches\n", got, services.size());
  std::printf("done\n");
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Streams matching log lines from every peer that joins (pycos rps_log_watch_client.py).");
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_lines, 1, 1000000)) return 2;
  if (absl::GetFlag(FLAGS_wait) <= absl::ZeroDuration()) {
    std::fprintf(stderr, "rps_log_watch_client: --wait must be positive\n");
    return 2;
  }
  return picos::RunMain("rps_log_watch_client", Main, absl::GetFlag(FLAGS_lines), absl::GetFlag(FLAGS_wait));
}
