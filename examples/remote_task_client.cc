// pycos's remote_task_client.py in C++: connects to the peers of --peer,
// locates "server_task" at the first (the URI remote_task_server printed;
// default tcp://127.0.0.1:9705), sends it --count messages carrying this
// task's handle, prints the replies, and says "bye". The node's flags are
// core/remote/node_flags.h's; it listens nowhere unless --listen says so.
//
//   PICOS_REMOTE_SECRET=... remote_task_client --peer=tcp://127.0.0.1:9705 --count=5
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/cli/flags.h"
#include "core/kernel/naming.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "transports/default_transports.h"

ABSL_FLAG(int, count, 5, "messages to send");

namespace {

picos::Task<absl::Status> Main(int count) {
  const picos::TransportRegistry& transports = picos::transports::DefaultTransports();
  picos::remote::NodeFlagDefaults defaults;
  defaults.name = "remote_task_client";
  absl::StatusOr<picos::remote::NodeConfig> config = picos::remote::NodeConfigFromFlags(transports, defaults);
  if (!config.ok()) co_return config.status();
  if (config->peers.empty()) config->peers.push_back("tcp://127.0.0.1:9705");
  const std::string peer = config->peers[0];
  absl::StatusOr<std::unique_ptr<picos::remote::Node>> node =
      co_await picos::remote::Node::Start(transports, std::move(config->options));
  if (!node.ok()) co_return node.status();
  PICOS_CO_RETURN_IF_ERROR(co_await picos::remote::ConnectPeers(**node, config->peers));
  absl::StatusOr<picos::TaskRef> server =
      co_await picos::LocateTask("server_task", picos::Location::Peer(peer), absl::Seconds(10));
  if (!server.ok()) co_return server.status();
  std::printf("client: found %s\n", server->DebugString().c_str());
  for (int i = 0; i < count; ++i) {
    picos::Value msg = picos::Value::Map({{"client", picos::Self()}, {"text", absl::StrCat("message ", i)}});
    PICOS_CO_RETURN_IF_ERROR(server->Send(std::move(msg)));
    absl::StatusOr<picos::Value> reply = co_await picos::Receive(absl::Seconds(10));
    if (!reply.ok()) co_return reply.status();
    absl::StatusOr<std::string> echo = reply->Get<std::string>("echo");
    if (!echo.ok()) co_return echo.status();
    std::printf("client: server echoed '%s'\n", echo->c_str());
  }
  picos::Value bye = picos::Value::Map({{"client", picos::Self()}, {"text", "bye"}});
  PICOS_CO_RETURN_IF_ERROR(server->Send(std::move(bye)));
  // Accepted is not yet sent: write it out, and a goodbye, before the node goes.
  PICOS_CO_RETURN_IF_ERROR(co_await (*node)->Close());
  std::printf("done\n");
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Locates a task on another peer by name and messages it.");
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_count, 0, 100000)) return 2;
  return picos::RunMain("remote_task_client", Main, absl::GetFlag(FLAGS_count));
}
