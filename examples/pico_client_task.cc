// pycos's pico_client_task.py in C++: connects to the peers of --peer
// (default tcp://127.0.0.1:9705), locates "pico_service" on any of them
// (Location::Anywhere: the first that has it answers), sends it --count
// requests for the time with this task as the reply address and a random
// delay below --max_delay_ms, and receives each answer with a timeout.
//
//   PICOS_REMOTE_SECRET=... pico_client_task --peer=tcp://127.0.0.1:9705
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/random/random.h"
#include "absl/time/time.h"
#include "core/cli/flags.h"
#include "core/kernel/naming.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "transports/default_transports.h"

ABSL_FLAG(int, count, 1, "requests to send, 1 to 1000");
ABSL_FLAG(int, max_delay_ms, 1000, "each request asks for a delay below this, 1 to 60000");
ABSL_FLAG(int, timeout_s, 10, "how long to wait for each answer (pycos: 10), 1 to 3600");

namespace {

picos::Task<absl::Status> Main(int count, int max_delay_ms, absl::Duration timeout) {
  const picos::TransportRegistry& transports = picos::transports::DefaultTransports();
  picos::remote::NodeFlagDefaults defaults;
  defaults.name = "pico_client";
  absl::StatusOr<picos::remote::NodeConfig> config = picos::remote::NodeConfigFromFlags(transports, defaults);
  if (!config.ok()) co_return config.status();
  if (config->peers.empty()) config->peers.push_back("tcp://127.0.0.1:9705");
  absl::StatusOr<std::unique_ptr<picos::remote::Node>> node =
      co_await picos::remote::Node::Start(transports, std::move(config->options));
  if (!node.ok()) co_return node.status();
  PICOS_CO_RETURN_IF_ERROR(co_await picos::remote::ConnectPeers(**node, config->peers));

  absl::StatusOr<picos::TaskRef> service =
      co_await picos::LocateTask("pico_service", picos::Location::Anywhere(), timeout);
  if (!service.ok()) co_return service.status();
  std::printf("pico_client: found %s\n", service->DebugString().c_str());
  absl::BitGen random;
  for (int i = 0; i < count; ++i) {
    const double delay = absl::Uniform(random, 0, max_delay_ms) / 1000.0;
    picos::Value req = picos::Value::Map({{"req", "time"}, {"reply", picos::Self()}, {"delay", delay}});
    PICOS_CO_RETURN_IF_ERROR(service->Send(std::move(req)));
    absl::StatusOr<picos::Value> answer = co_await picos::Receive(timeout);
    if (!answer.ok()) co_return answer.status();
    std::string result;
    picos::TaskRef from;
    PICOS_CO_RETURN_IF_ERROR(picos::MessageReader(*answer).Get("result", &result).Get("from", &from).status());
    std::printf("pico_client: time at %s is %s (asked for a %.3fs delay)\n", from.DebugString().c_str(),
                result.c_str(), delay);
    std::fflush(stdout);
  }
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Locates a tiny service on any peer and asks it the time.");
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_count, 1, 1000) || !picos::FlagInRange(FLAGS_max_delay_ms, 1, 60000) ||
      !picos::FlagInRange(FLAGS_timeout_s, 1, 3600)) {
    return 2;
  }
  return picos::RunMain("pico_client_task", Main, absl::GetFlag(FLAGS_count), absl::GetFlag(FLAGS_max_delay_ms),
                        absl::Seconds(absl::GetFlag(FLAGS_timeout_s)));
}
