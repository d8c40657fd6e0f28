// What the dispycos example clients (examples/dispycos_*.cc) each did for
// themselves before their own work: a remote Node from the node flags
// (core/remote/node_flags.h), a Computation scheduled on the nodes --nodes
// names, closed again when scheduling fails (the nodes scheduled before the
// failure would otherwise keep its workers), and the usage error of a client
// given no node.
//
//   Task<absl::Status> Client() {
//     PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<remote::Node> node,
//                               co_await examples::StartClientNode("dispycos_client2"));
//     compute::ComputationOptions o;
//     o.library = absl::GetFlag(FLAGS_library);
//     PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<compute::Computation> computation,
//                               co_await examples::ScheduleComputation(o, absl::GetFlag(FLAGS_nodes)));
//     ...  // jobs
//     co_return co_await computation->Close();
//   }
//   int main(int argc, char** argv) {
//     remote::ParseCommandLine(argc, argv);
//     if (!examples::NodesGiven("dispycos_client2", absl::GetFlag(FLAGS_nodes))) return 2;
//     return RunMain("dispycos_client2", Client);
//   }
//
// Everything here runs on the calling task's scheduler; the coroutines
// suspend. Keep the Node alive as long as the Computation: declare it first.
#ifndef PICOS_EXAMPLES_DISPYCOS_CLIENT_LIB_H_
#define PICOS_EXAMPLES_DISPYCOS_CLIENT_LIB_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "compute/computation.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"

namespace picos::examples {

// Starts this process's remote Node from the node flags over the default
// transports, named `name` unless --node_name says otherwise, listening on
// `listen` unless --listen says otherwise (none: a client only). A bad flag
// is kInvalidArgument; a listen address that cannot be bound, its error.
Task<absl::StatusOr<std::unique_ptr<remote::Node>>> StartClientNode(
    std::string name, std::vector<std::string> listen = std::vector<std::string>());

// Schedules `computation` on `nodes` (empty: all a shared scheduler gives,
// ComputationOptions::scheduler); when that fails, closes it (it may already
// hold workers on the nodes scheduled before the failure) and returns
// Schedule's error, not Close's.
Task<absl::Status> ScheduleOrClose(compute::Computation* computation, std::vector<std::string> nodes);

// Computation::Create(options), then ScheduleOrClose on `nodes`: a
// computation with its workers started, or why not (nothing left running).
Task<absl::StatusOr<std::unique_ptr<compute::Computation>>> ScheduleComputation(
    compute::ComputationOptions options, std::vector<std::string> nodes);

// False, after "<name>: --nodes: give at least one picos-node URI" on
// stderr, when `nodes` is empty: main then exits 2 (a usage error).
bool NodesGiven(const char* name, const std::vector<std::string>& nodes);

}  // namespace picos::examples

#endif  // PICOS_EXAMPLES_DISPYCOS_CLIENT_LIB_H_
