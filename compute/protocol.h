// The names compute's processes agree on (compute/picos_node.cc serves
// them, compute/computation.cc uses them). The messages themselves are
// described at the top of compute/picos_node.cc.
#ifndef PICOS_COMPUTE_PROTOCOL_H_
#define PICOS_COMPUTE_PROTOCOL_H_

namespace picos::compute {

// The remote service (core/remote/service.h) of a node: start and close
// computations.
inline constexpr char kNodeService[] = "picos.compute.node";
// The remote service of a worker: run one job ({"fn", "arg", "async"}), or
// ({kJobLoopKey: true}) start the worker's job loop, a task that takes CPU
// jobs as messages
//   {"id": <int>, "fn": <name>, "arg": <bytes>, "reply_to": <task>},
// runs them one at a time in the order they arrive and answers each to
// reply_to with
//   {kJobReplyKey: <id>, "value": <bytes>} or
//   {kJobReplyKey: <id>, "code": <absl::StatusCode>, "message": <text>}.
// One message each way per job where a service call costs two round trips
// and a remote task: the client's path for CPU jobs (compute/computation.cc).
// The loop ends only with its worker (or terminated), so the client
// monitors it to see the worker lost.
inline constexpr char kWorkerService[] = "picos.compute.job";
inline constexpr char kJobLoopKey[] = "loop";
inline constexpr char kJobReplyKey[] = "picos.compute.job";

// The remote service of a shared picos-scheduler (compute/scheduler.h has
// its requests), and the key of the share updates it sends each client's
// share task: {kSharesKey: <epoch>, "shares": {<node uri>: <workers>}}.
inline constexpr char kSchedulerService[] = "picos.compute.scheduler";
inline constexpr char kSharesKey[] = "picos.compute.shares";

}  // namespace picos::compute

#endif  // PICOS_COMPUTE_PROTOCOL_H_
