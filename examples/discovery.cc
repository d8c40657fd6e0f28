// Discovery (discovery/discovery.h): start this in several terminals, or on
// several hosts of one LAN, with the same secret; each finds the others on
// the multicast group, connects to them, greets each peer's "discovery" task
// with a message, and prints peers as they join, leave and are lost. For
// each peer that joins it also finds that peer's task by a name only that
// peer registers ("discovery.NAME") with Location::Anywhere(), and calls the
// peer's remote service "discovery.whoami" (core/remote/service.h).
//
//   echo 'a shared secret of 16 bytes or more' > /tmp/secret
//   discovery --secret_file=/tmp/secret --node_name=one
//   discovery --secret_file=/tmp/secret --node_name=two     # another terminal
//
// It prints:
//   listening on tcp://10.0.0.5:40211
//   discovery on mcast://239.255.97.5:9706?iface=eth0&ttl=1
//   joined two tcp://10.0.0.6:39127
//   message from two: hello
//   message from two: found by Location::Anywhere()
//   service of two answered: two greets one
//   lost two tcp://10.0.0.6:39127: ... missed heartbeats
//
// Without --listen it listens on the discovery interface's IPv4 address (a
// node on 0.0.0.0 would announce an address no peer can dial). Flags: the
// node's (core/remote/node_flags.h: --listen, --peer for static peers,
// --secret_file, --node_name), discovery's (discovery/discovery_flags.h:
// --discovery_group, --discovery_iface, --discovery_ttl), and those below.
// With --run_for it says goodbye and ends after that long; else it runs
// until killed.
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
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

ABSL_FLAG(absl::Duration, run_for, absl::ZeroDuration(), "say goodbye and end after this long (0: run until killed)");
ABSL_FLAG(absl::Duration, heartbeat_interval, absl::Seconds(1),
          "node heartbeats: a peer silent for heartbeat_interval * heartbeat_misses is lost");
ABSL_FLAG(int, heartbeat_misses, 5, "heartbeats missed before a peer is lost (2..100)");
ABSL_FLAG(absl::Duration, announce_interval, absl::Seconds(1), "time between two announcements");

namespace {

void Say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

// The registered "discovery" task: prints each greeting. Messages are input:
// a malformed one is skipped.
picos::Task<> Greetings() {
  for (;;) {
    absl::StatusOr<picos::Value> m = co_await picos::Receive();
    if (!m.ok()) co_return;
    std::string from, text;
    absl::Status read = picos::MessageReader(*m).Get("from", &from).Get("text", &text).status();
    if (!read.ok()) continue;
    Say(absl::StrCat("message from ", from.substr(0, 128), ": ", text.substr(0, 256)));
  }
}

// The service "discovery.whoami": answers the caller (a name, checked: it
// came from the network) with this process's name.
picos::Task<absl::StatusOr<picos::Value>> WhoAmI(std::string me, picos::Value arg) {
  if (!arg.is_string() || arg.as_string().empty() || arg.as_string().size() > 128) {
    co_return absl::InvalidArgumentError("discovery.whoami takes the caller's name");
  }
  co_return picos::Value(absl::StrCat(me, " greets ", arg.as_string()));
}

// Greets the "discovery" task of the peer `name` at `uri`; finds its task
// again by the name only it registers, anywhere; calls its service.
picos::Task<> Greet(std::string uri, std::string name, std::string me) {
  absl::StatusOr<picos::TaskRef> far =
      co_await picos::LocateTask("discovery", picos::Location::Peer(uri), absl::Seconds(10));
  if (!far.ok()) {
    Say(absl::StrCat("cannot greet ", uri, ": ", far.status().ToString()));
    co_return;
  }
  (void)far->Send(picos::Value::Map({{"from", me}, {"text", "hello"}}));
  absl::StatusOr<picos::TaskRef> anywhere =
      co_await picos::LocateTask(absl::StrCat("discovery.", name), picos::Location::Anywhere(), absl::Seconds(10));
  if (!anywhere.ok()) {
    Say(absl::StrCat("cannot find discovery.", name, " anywhere: ", anywhere.status().ToString()));
  } else {
    (void)anywhere->Send(picos::Value::Map({{"from", me}, {"text", "found by Location::Anywhere()"}}));
  }
  absl::StatusOr<picos::remote::Service> whoami =
      co_await picos::remote::Service::Locate("discovery.whoami", picos::Location::Peer(uri), absl::Seconds(10));
  if (!whoami.ok()) {
    Say(absl::StrCat("cannot locate the service of ", name, ": ", whoami.status().ToString()));
    co_return;
  }
  absl::StatusOr<picos::TaskRef> call = co_await whoami->Run(picos::Value(me), absl::Seconds(10));
  if (!call.ok()) {
    Say(absl::StrCat("the service of ", name, " refused: ", call.status().ToString()));
    co_return;
  }
  absl::StatusOr<picos::Value> answer = co_await call->Join(absl::Seconds(10));
  if (!answer.ok() || !answer->is_string()) {
    Say(absl::StrCat("the service of ", name, " failed: ",
                     answer.ok() ? answer->DebugString() : answer.status().ToString()));
    co_return;
  }
  Say(absl::StrCat("service of ", name, " answered: ", answer->as_string().substr(0, 256)));
}

// Prints the node's peer events, and greets each peer that joins.
picos::Task<> Watch(std::string me) {
  for (;;) {
    absl::StatusOr<picos::Value> m = co_await picos::Receive();
    if (!m.ok()) co_return;
    const picos::Value* p = picos::SystemMessagePayload(*m, picos::remote::kPeerEventMessage);
    if (p == nullptr || !(*p)["event"].is_string()) continue;
    const std::string& event = (*p)["event"].as_string();
    const std::string name = (*p)["name"].is_string() ? (*p)["name"].as_string() : "?";
    const std::string uri = (*p)["uri"].is_string() ? (*p)["uri"].as_string() : "?";
    if (event == "joined") {
      Say(absl::StrCat("joined ", name, " ", uri));
      picos::ThisScheduler().Spawn({.name = "greet", .daemon = true}, Greet, uri, name, me);
    } else {
      const std::string why = (*p)["reason"].is_string() ? (*p)["reason"].as_string() : "";
      Say(absl::StrCat(event, " ", name, " ", uri, ": ", why));
    }
  }
}

picos::Task<absl::Status> Main() {
  const picos::TransportRegistry& transports = picos::transports::DefaultTransports();
  // The interface first: the node listens there unless told otherwise.
  PICOS_CO_ASSIGN_OR_RETURN(picos::discovery::DiscoveryOptions probe,
                            picos::discovery::DiscoveryOptionsFromFlags(picos::remote::NodeConfig()));
  picos::remote::NodeFlagDefaults defaults;
  defaults.name = "discovery";
  PICOS_CO_ASSIGN_OR_RETURN(std::string listen, picos::discovery::ListenUriOn(probe.iface));
  defaults.listen.push_back(listen);
  PICOS_CO_ASSIGN_OR_RETURN(picos::remote::NodeConfig config,
                            picos::remote::NodeConfigFromFlags(transports, defaults));
  config.options.heartbeat_interval = absl::GetFlag(FLAGS_heartbeat_interval);
  config.options.heartbeat_misses = absl::GetFlag(FLAGS_heartbeat_misses);
  // A broken link gets as long to come back as a silent one: a peer whose
  // process died is lost within one liveness time either way.
  config.options.reconnect_grace = config.options.heartbeat_interval * config.options.heartbeat_misses;
  PICOS_CO_ASSIGN_OR_RETURN(picos::discovery::DiscoveryOptions options,
                            picos::discovery::DiscoveryOptionsFromFlags(config));
  options.announce_interval = absl::GetFlag(FLAGS_announce_interval);
  const std::string me = config.options.name;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::remote::Node::Start(transports, std::move(config.options)));
  picos::TaskRef greetings = picos::ThisScheduler().Spawn({.name = "discovery", .daemon = true}, Greetings);
  PICOS_CO_RETURN_IF_ERROR(picos::RegisterTask("discovery", greetings));
  PICOS_CO_RETURN_IF_ERROR(picos::RegisterTask(absl::StrCat("discovery.", me), greetings));
  PICOS_CO_ASSIGN_OR_RETURN(
      picos::remote::RegisteredService whoami,
      picos::remote::RegisterService("discovery.whoami", [me](picos::Value arg) { return WhoAmI(me, std::move(arg)); }));
  picos::TaskRef watcher = picos::ThisScheduler().Spawn({.name = "watch", .daemon = true}, Watch, me);
  PICOS_CO_RETURN_IF_ERROR(picos::Channel(node->peer_events()).Subscribe(watcher));
  Say(absl::StrCat("listening on ", node->uris()[0]));
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::discovery::Discovery> discovery,
                            co_await picos::discovery::Discovery::Start(*node, std::move(options)));
  Say(absl::StrCat("discovery on ", discovery->group_uri().empty() ? "static peers only" : discovery->group_uri()));
  const absl::Duration run_for = absl::GetFlag(FLAGS_run_for);
  PICOS_CO_RETURN_IF_ERROR(co_await picos::Sleep(run_for > absl::ZeroDuration() ? run_for : absl::InfiniteDuration()));
  absl::Status bye = co_await discovery->Stop();
  if (!bye.ok()) Say(absl::StrCat("goodbye not sent: ", bye.ToString()));
  const picos::discovery::DiscoveryStats s = discovery->stats();
  Say(absl::StrCat("peers: ", node->peers().size(), ", announcements accepted: ", s.accepted,
                   ", refused: ", s.refused_total()));
  (void)co_await node->Close(absl::Seconds(2));  // peers report it "left"
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Finds peers on the LAN by authenticated multicast and prints them as they come and go.");
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_heartbeat_misses, 2, 100)) return 2;
  return picos::RunMain("discovery", Main);
}
