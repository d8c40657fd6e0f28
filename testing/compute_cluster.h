// Real picos-node processes for tests and benchmarks of the compute cluster
// (compute/picos_node.cc): start one on loopback, read the lines it prints
// for operators ("listening <uri>", "worker started <id> <index> <pid>
// <uri>", ...), kill it, and read a process's resident memory.
//
//   absl::StatusOr<NodeProcess> node = co_await StartNodeProcess({.cpus = 2, .dest = dir,
//                                                                .secret = kSecret});
//   ... compute::Computation::Schedule({node->uri}) ...
//   absl::StatusOr<std::vector<int>> pids = co_await WorkerPids(*node, 2);
//   co_await KillNodeProcess(*node);
//
// Every wait is bounded by the timeout given (a hang fails, never blocks).
// A NodeProcess owns its child: destroying it kills the node (SIGKILL, core/io/process.h),
// and the node's workers end with it (PR_SET_PDEATHSIG). Threads: as core/io/process.h, the
// scheduler thread of the task that started it.
#ifndef PICOS_TESTING_COMPUTE_CLUSTER_H_
#define PICOS_TESTING_COMPUTE_CLUSTER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/io/process.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"

namespace picos::testing {

struct NodeProcessOptions {
  // The picos-node binary (a runfiles path in tests and under bazel run).
  std::string binary = "compute/picos-node";
  int cpus = 2;
  // --dest_path: must exist.
  std::string dest;
  // Given to the node as PICOS_REMOTE_SECRET.
  std::string secret;
  std::string listen = "tcp://127.0.0.1:0";
  std::vector<std::string> extra_args;
  // Bounds reading its "listening" line.
  absl::Duration timeout = absl::Seconds(60);
};

struct NodeProcess {
  std::unique_ptr<Process> process;
  std::string uri;  // what it listens at
};

// Starts picos-node and reads the URI it listens at. The node's stderr is
// this process's; its stdout is a pipe read by NodeLine. Suspends.
Task<absl::StatusOr<NodeProcess>> StartNodeProcess(NodeProcessOptions options);

// Kills the node (its pid only, SIGKILL) unless it has exited, and waits
// for it. Suspends.
Task<absl::Status> KillNodeProcess(NodeProcess& node, absl::Duration timeout = absl::Seconds(60));

// The node's next stdout line that starts with `prefix`, without its
// newline; other lines are skipped (at most 1,000). Suspends.
Task<absl::StatusOr<std::string>> NodeLine(NodeProcess& node, std::string prefix,
                                           absl::Duration timeout = absl::Seconds(60));

// Reads `count` "worker started" lines: the workers' pids by index.
// Suspends.
Task<absl::StatusOr<std::vector<int>>> WorkerPids(NodeProcess& node, int count,
                                                  absl::Duration timeout = absl::Seconds(60));

// A client node (connects only) with `secret`. Suspends.
Task<absl::StatusOr<std::unique_ptr<remote::Node>>> StartClientNode(std::string secret,
                                                                    absl::Duration timeout = absl::Seconds(60));

// A new empty folder under $TEST_TMPDIR (or /tmp) named after `name` and
// this process.
std::string FreshDir(const std::string& name);

// VmRSS of process `pid` in kB (/proc/<pid>/status), or -1.
int64_t VmRssKb(int pid);

}  // namespace picos::testing

#endif  // PICOS_TESTING_COMPUTE_CLUSTER_H_
