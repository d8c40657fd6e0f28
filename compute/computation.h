// The client side of a compute cluster (dispycos's Computation and its
// in-client scheduler): a computation library shipped to picos-node
// daemons (compute/picos_node.cc), one worker process per CPU there, and
// jobs run on free workers.
//
//   // In a task of a scheduler whose Node is started (core/remote/node.h):
//   picos::compute::ComputationOptions o;
//   o.library = "bazel-bin/app/libsquares.so";   // picos_computation(name = "squares")
//   o.max_retries = 1;
//   PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::compute::Computation> c,
//                             picos::compute::Computation::Create(o));
//   std::vector<std::string> nodes = {"tcp://10.0.0.2:9706"};
//   PICOS_CO_RETURN_IF_ERROR(co_await c->Schedule(nodes));
//   absl::StatusOr<picos::TaskRef> job = co_await c->Run("square", "7");
//   absl::StatusOr<picos::Value> r = co_await job->Join();  // Value::Bytes("49")
//   PICOS_CO_RETURN_IF_ERROR(co_await c->Close());
//
// Functions take and give bytes (compute/export.h says why).
//
// Guarantees, each tested (testing/compute_test.cc, with a real picos-node
// and its worker processes):
//  * Schedule ships the library with SendFile into a folder of its own on
//    each node, which checks its SHA-256 (computed here) before starting
//    workers; it gives the node's refusal otherwise.
//  * Run gives at once the handle of a local task that waits for a free
//    worker (one job per worker at a time, first come first served), runs
//    the job there and ends with its result: Join gives the function's
//    bytes, kAborted with its message when it fails, kNotFound ("no
//    function 'x' ...") for a function the library does not register.
//  * A worker that dies is seen at once (its connection breaks); its job
//    ends with kUnavailable "worker_lost: ..." unless max_retries allows it
//    to run again on another worker, which it then does. A lost worker is
//    not used again.
//  * Close ends the workers and removes the shipped files on every node;
//    later Runs give kFailedPrecondition.
//
// Not yet (issue 12): node allocation rules, status events, RunAt and
// RunAsync, restart of lost workers, data files, a shared
// scheduler, discovery of nodes.
//
// Threads: use a Computation from tasks of the scheduler that runs the
// client's Node, and destroy it there.
#ifndef PICOS_COMPUTE_COMPUTATION_H_
#define PICOS_COMPUTE_COMPUTATION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/kernel/handles.h"
#include "core/kernel/task.h"

namespace picos::compute {

struct ComputationOptions {
  // The computation library (lib<name>.so of picos_computation).
  std::string library;
  // How many times a job whose worker was lost runs again elsewhere.
  int max_retries = 0;
  // The library's signature file, <library's name>.sig (picos-sign sign),
  // shipped beside it: what a node started with --trusted_signer requires
  // (compute/node_daemon.h). Empty: none.
  std::string signature;
  // Bounds each step of Schedule and Close (shipping, starting workers,
  // locating them), not the jobs.
  absl::Duration timeout = absl::Seconds(60);
};

class Computation {
 public:
  // Reads the library and computes its SHA-256. kNotFound if it cannot be
  // read, kInvalidArgument for a bad option. Does not suspend.
  static absl::StatusOr<std::unique_ptr<Computation>> Create(ComputationOptions options);
  ~Computation();
  Computation(const Computation&) = delete;
  Computation& operator=(const Computation&) = delete;

  // Ships the library to every node of `nodes` (URIs), starts the
  // computation's workers there and makes them available to Run. Stops at
  // the first node that fails, with its error prefixed by its URI; workers
  // of the nodes before it stay in use. Suspends.
  Task<absl::Status> Schedule(std::vector<std::string> nodes);

  // Spawns the job: `fn` of the library with `arg` on the next free worker
  // (see the top of this file). kFailedPrecondition before a Schedule gave
  // a worker, or after Close. Suspends only to spawn.
  Task<absl::StatusOr<TaskRef>> Run(std::string fn, std::string arg);

  // Closes the computation on every node (its workers end, its files are
  // removed). Destroying a Computation without Close leaves its workers
  // running on the nodes until their zombie period passes (the start names
  // a task of this process that ends then; compute/node_daemon.h). Jobs
  // still running see their worker lost. The first error
  // met, after trying every node. Suspends.
  Task<absl::Status> Close();

  // Workers in use (started and not lost), and jobs run again because
  // their worker was lost.
  size_t workers_alive() const;
  uint64_t jobs_rerun() const;
  // The id the computation's files are kept under on each node.
  const std::string& id() const;

  struct State;

 private:
  explicit Computation(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

}  // namespace picos::compute

#endif  // PICOS_COMPUTE_COMPUTATION_H_
