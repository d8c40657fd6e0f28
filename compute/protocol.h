// The names compute's processes agree on (compute/picos_node.cc serves
// them, compute/computation.cc uses them). The messages themselves are
// described at the top of compute/picos_node.cc.
#ifndef PICOS_COMPUTE_PROTOCOL_H_
#define PICOS_COMPUTE_PROTOCOL_H_

namespace picos::compute {

// The remote service (core/remote/service.h) of a node: start and close
// computations.
inline constexpr char kNodeService[] = "picos.compute.node";
// The remote service of a worker: run one job.
inline constexpr char kWorkerService[] = "picos.compute.job";

}  // namespace picos::compute

#endif  // PICOS_COMPUTE_PROTOCOL_H_
