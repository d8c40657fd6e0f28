// pycos's rps_monitor_client.py in C++: locates the service "rps_server" at
// --peer, makes the server forward the MonitorStatus of every task it
// starts for this client to a monitor task here (Service::SetMonitor, pycos
// rps.monitor), starts --count tasks and sends each a message: even ones a
// number to return, odd ones a request to fail. The monitor prints how each
// ended.
//
//   PICOS_REMOTE_SECRET=... rps_monitor_client --peer=tcp://127.0.0.1:9705 --count=5
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/cli/flags.h"
#include "core/kernel/monitor.h"
#include "core/kernel/naming.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "core/remote/service.h"
#include "transports/default_transports.h"

ABSL_FLAG(int, count, 5, "tasks to start with the service");

namespace {

// Prints the MonitorStatus of `count` tasks; gives how many failed.
picos::Task<absl::StatusOr<int64_t>> MonitorTask(int count) {
  int64_t failed = 0;
  for (int i = 0; i < count; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(picos::Value m, co_await picos::Receive(absl::Seconds(30)));
    absl::StatusOr<picos::MonitorStatus> st = picos::MonitorStatus::FromValue(m);
    if (!st.ok()) {  // a message from anywhere: checked
      std::printf("client: monitor: not a monitor status: %s\n", st.status().ToString().c_str());
      --i;
      continue;
    }
    if (st->outcome != picos::MonitorOutcome::kValue) ++failed;
    std::printf("client: monitor: %s#%llu %s %s\n", st->name.c_str(), static_cast<unsigned long long>(st->id),
                picos::MonitorOutcomeName(st->outcome),
                st->outcome == picos::MonitorOutcome::kValue ? st->value.DebugString().c_str()
                                                             : st->error.ToString().c_str());
    std::fflush(stdout);
  }
  co_return failed;
}

picos::Task<absl::Status> Main(int count) {
  const picos::TransportRegistry& transports = picos::transports::DefaultTransports();
  picos::remote::NodeFlagDefaults defaults;
  defaults.name = "rps_monitor_client";
  PICOS_CO_ASSIGN_OR_RETURN(picos::remote::NodeConfig config,
                            picos::remote::NodeConfigFromFlags(transports, defaults));
  if (config.peers.empty()) config.peers.push_back("tcp://127.0.0.1:9705");
  const std::string peer = config.peers[0];
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::remote::Node::Start(transports, std::move(config.options)));
  PICOS_CO_RETURN_IF_ERROR(co_await picos::remote::ConnectPeers(*node, config.peers));
  PICOS_CO_ASSIGN_OR_RETURN(
      picos::remote::Service service,
      co_await picos::remote::Service::Locate("rps_server", picos::Location::Peer(peer), absl::Seconds(10)));
  picos::TaskRef monitor = picos::ThisScheduler().SpawnNamed("monitor", MonitorTask, count);
  service.SetMonitor(monitor);
  for (int i = 0; i < count; ++i) {
    picos::Value req = picos::Value::Map({{"delay_ms", 10 * i}});
    PICOS_CO_ASSIGN_OR_RETURN(picos::TaskRef t, co_await service.Run(std::move(req)));
    picos::Value msg = i % 2 == 0 ? picos::Value(i) : picos::Value::Map({{"raise", absl::StrCat("task ", i, " fails")}});
    std::printf("client: started %s, sending %s\n", t.DebugString().c_str(), msg.DebugString().c_str());
    PICOS_CO_RETURN_IF_ERROR(t.Send(std::move(msg)));
  }
  PICOS_CO_ASSIGN_OR_RETURN(picos::Value failed, co_await monitor.Join(absl::Seconds(60)));
  std::printf("client: %d tasks ended, %lld failed\n", count, static_cast<long long>(failed.as_int()));
  std::printf("done\n");
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Monitors the tasks it runs with a remote service (pycos rps_monitor_client.py).");
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_count, 1, 10000)) return 2;
  return picos::RunMain("rps_monitor_client", Main, absl::GetFlag(FLAGS_count));
}
