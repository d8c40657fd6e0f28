// pycos's rps_pico_client.py in C++: locates the service "pico_service" at
// the peer given with --peer, starts --count tasks with it on that peer at
// once, then joins each for its result. One malformed request first shows
// the service refusing it with a status.
//
//   PICOS_REMOTE_SECRET=... rps_pico_client --peer=tcp://127.0.0.1:9705 --count=5
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

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
#include "core/remote/service.h"
#include "transports/default_transports.h"

ABSL_FLAG(int, count, 5, "tasks to run with the service");

namespace {

picos::Task<absl::Status> Main(int count) {
  const picos::TransportRegistry& transports = picos::transports::DefaultTransports();
  picos::remote::NodeFlagDefaults defaults;
  defaults.name = "rps_pico_client";
  PICOS_CO_ASSIGN_OR_RETURN(picos::remote::NodeConfig config,
                            picos::remote::NodeConfigFromFlags(transports, defaults));
  if (config.peers.empty()) config.peers.push_back("tcp://127.0.0.1:9705");
  const std::string peer = config.peers[0];
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::remote::Node::Start(transports, std::move(config.options)));
  PICOS_CO_RETURN_IF_ERROR(co_await picos::remote::ConnectPeers(*node, config.peers));
  PICOS_CO_ASSIGN_OR_RETURN(
      picos::remote::Service service,
      co_await picos::remote::Service::Locate("pico_service", picos::Location::Peer(peer), absl::Seconds(10)));
  std::printf("client: found service %s at %s\n", service.name().c_str(), service.server().DebugString().c_str());
  // A request the service refuses: no task is started. (Values are built
  // before the co_await: g++ 12 miscompiles a braced list inside one.)
  picos::Value malformed = picos::Value::Map({{"n", 1}, {"delay_ms", "soon"}});
  absl::StatusOr<picos::TaskRef> bad = co_await service.Run(std::move(malformed));
  if (bad.ok()) co_return absl::InternalError("the service ran a malformed request");
  std::printf("client: malformed request refused: %s\n", bad.status().ToString().c_str());
  std::vector<picos::TaskRef> tasks;
  for (int i = 0; i < count; ++i) {
    picos::Value req = picos::Value::Map({{"n", i}, {"delay_ms", 10 * (count - i)}});
    PICOS_CO_ASSIGN_OR_RETURN(picos::TaskRef t, co_await service.Run(std::move(req)));
    tasks.push_back(t);
  }
  for (int i = 0; i < count; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(picos::Value r, co_await tasks[i].Join(absl::Seconds(10)));
    int64_t n = 0, square = 0;
    std::string server;
    PICOS_CO_RETURN_IF_ERROR(
        picos::MessageReader(r).Get("n", &n).Get("square", &square).Get("server", &server).status());
    std::printf("client: task %s: n=%lld square=%lld from %s\n", tasks[i].DebugString().c_str(),
                static_cast<long long>(n), static_cast<long long>(square), server.c_str());
  }
  std::printf("done\n");
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Runs tasks with a remote service and joins them (pycos rps_pico_client.py).");
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_count, 1, 10000)) return 2;
  return picos::RunMain("rps_pico_client", Main, absl::GetFlag(FLAGS_count));
}
