#include "examples/dispycos_client_lib.h"

#include <cstdio>
#include <utility>

#include "core/kernel/status.h"
#include "core/remote/node_flags.h"
#include "transports/default_transports.h"

namespace picos::examples {

Task<absl::StatusOr<std::unique_ptr<remote::Node>>> StartClientNode(std::string name,
                                                                    std::vector<std::string> listen) {
  const TransportRegistry& t = transports::DefaultTransports();
  remote::NodeFlagDefaults defaults;
  defaults.name = std::move(name);
  defaults.listen = std::move(listen);
  PICOS_CO_ASSIGN_OR_RETURN(remote::NodeConfig config, remote::NodeConfigFromFlags(t, defaults));
  co_return co_await remote::Node::Start(t, std::move(config.options));
}

Task<absl::Status> ScheduleOrClose(compute::Computation* computation, std::vector<std::string> nodes) {
  absl::Status scheduled = co_await computation->Schedule(nodes);
  if (!scheduled.ok()) {
    (void)co_await computation->Close();  // the nodes scheduled before the failure
  }
  co_return scheduled;
}

Task<absl::StatusOr<std::unique_ptr<compute::Computation>>> ScheduleComputation(
    compute::ComputationOptions options, std::vector<std::string> nodes) {
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<compute::Computation> computation,
                            compute::Computation::Create(options));
  absl::Status scheduled = co_await ScheduleOrClose(computation.get(), std::move(nodes));
  if (!scheduled.ok()) co_return scheduled;
  co_return computation;
}

bool NodesGiven(const char* name, const std::vector<std::string>& nodes) {
  if (!nodes.empty()) return true;
  std::fprintf(stderr, "%s: --nodes: give at least one picos-node URI\n", name);
  return false;
}

}  // namespace picos::examples
