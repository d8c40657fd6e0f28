// pycos's remote_task_server.py in C++: a task registered as "server_task"
// on a peer that listens on --listen; clients in other processes locate it
// by that name at this peer's URI and message it, sending their own handle
// for the replies. Ends after --clients clients have said "bye" (and left).
//
//   PICOS_REMOTE_SECRET=... remote_task_server --listen=tcp://0.0.0.0:9705
//
// The node's flags (--listen, default tcp://127.0.0.1:9705; --secret_file,
// else $PICOS_REMOTE_SECRET, with no default; --peer, --advertise,
// --node_name) are core/remote/node_flags.h's. Run remote_task_client
// against the URI it prints.
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "core/cli/flags.h"
#include "core/kernel/naming.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "transports/default_transports.h"

ABSL_FLAG(int, clients, 1, "clients to serve before ending");

namespace {

// Answers {"client": handle, "text": s} with {"echo": s} until `clients`
// clients have sent "bye". Messages are input: a malformed one is skipped.
picos::Task<int64_t> ServerTask(int clients) {
  int64_t received = 0;
  while (clients > 0) {
    absl::StatusOr<picos::Value> msg = co_await picos::Receive();
    if (!msg.ok()) break;
    picos::TaskRef client;
    std::string text;
    absl::Status read = picos::MessageReader(*msg).Get("client", &client).Get("text", &text).status();
    if (!read.ok()) {
      std::printf("server: ignoring malformed message: %s\n", read.ToString().c_str());
      continue;
    }
    if (text == "bye") {
      std::printf("server: %s said bye\n", client.DebugString().c_str());
      --clients;
      continue;
    }
    ++received;
    std::printf("server: received '%s' from %s\n", text.c_str(), client.DebugString().c_str());
    (void)client.Send(picos::Value::Map({{"echo", text}}));
  }
  co_return received;
}

picos::Task<absl::Status> Main(int clients) {
  const picos::TransportRegistry& transports = picos::transports::DefaultTransports();
  picos::remote::NodeFlagDefaults defaults;
  defaults.name = "remote_task_server";
  defaults.listen.push_back("tcp://127.0.0.1:9705");
  absl::StatusOr<picos::remote::NodeConfig> config = picos::remote::NodeConfigFromFlags(transports, defaults);
  if (!config.ok()) co_return config.status();
  absl::StatusOr<std::unique_ptr<picos::remote::Node>> node =
      co_await picos::remote::Node::Start(transports, std::move(config->options));
  if (!node.ok()) co_return node.status();
  PICOS_CO_RETURN_IF_ERROR(co_await picos::remote::ConnectPeers(**node, config->peers));
  picos::TaskRef server = picos::ThisScheduler().SpawnNamed("server_task", ServerTask, clients);
  PICOS_CO_RETURN_IF_ERROR(picos::RegisterTask("server_task", server));
  std::printf("server: listening on %s\n", (*node)->uris()[0].c_str());
  std::fflush(stdout);
  absl::StatusOr<picos::Value> received = co_await server.Join();
  if (!received.ok()) co_return received.status();
  // The clients leave by themselves; their last replies are on their way.
  for (int i = 0; i < 2000 && !(*node)->peers().empty(); ++i) {
    absl::Status slept = co_await picos::Sleep(absl::Milliseconds(5));
    if (!slept.ok()) break;
  }
  std::printf("server: %lld messages from %d clients\n", static_cast<long long>(received->as_int()), clients);
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("A task that peers in other processes locate by name and message.");
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_clients, 1, 10000)) return 2;
  return picos::RunMain("remote_task_server", Main, absl::GetFlag(FLAGS_clients));
}
