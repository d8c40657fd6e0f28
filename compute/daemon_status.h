// What a running compute daemon (picos-node; later picos-scheduler) says
// about itself when asked over its authenticated port, and the printing of
// it for `picos-node --status`: a table for people, JSON for machines.
//
//   // In a task of a scheduler whose Node (with the cluster's secret) is started:
//   absl::StatusOr<picos::compute::DaemonStatus> st = co_await picos::compute::QueryDaemonStatus(
//       *node, "tcp://10.0.0.2:9706", picos::compute::kNodeService, absl::Seconds(10));
//   std::fputs(picos::compute::FormatStatusTable(*st).c_str(), stdout);
//
// The request is {"op": "status"} to the daemon's service
// (compute/protocol.h); the answer is DaemonStatus::ToValue's map:
//   "kind": "node", "name", "uri", "pid": int, "uptime_s": double,
//   "facts": HostFacts map (compute/host_stats.h), "cpus": workers per
//   computation, "peers": int, "started": computations started so far,
//   "serve": int (0 forever), "closing": bool, "in_service": bool,
//   "computations": [{"id", "client_lost": bool, "workers": [{"index": int,
//   "pid": int, "uri", "state": "running" | "ended"}]}]
// FromValue checks every field, its range, and the list sizes (at most
// kMaxStatusComputations and kMaxStatusWorkers): the answer comes from the
// network, so a malformed one is kDataLoss, never a crash.
//
// Threads: QueryDaemonStatus suspends and runs on the scheduler of the
// calling task, whose remote::Node must be started. The formatting
// functions are pure.
#ifndef PICOS_COMPUTE_DAEMON_STATUS_H_
#define PICOS_COMPUTE_DAEMON_STATUS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "compute/host_stats.h"
#include "core/kernel/task.h"
#include "core/kernel/value.h"

namespace picos::remote {
class Node;
}

namespace picos::compute {

inline constexpr size_t kMaxStatusComputations = 1024;
inline constexpr size_t kMaxStatusWorkers = 1024;  // per computation

struct WorkerStatus {
  int index = 0;
  int pid = 0;
  std::string uri;
  std::string state;  // "running" or "ended"
};

struct ComputationStatus {
  std::string id;
  bool client_lost = false;
  std::vector<WorkerStatus> workers;
};

struct DaemonStatus {
  std::string kind = "node";
  std::string name;
  std::string uri;
  int pid = 0;
  double uptime_s = 0;
  HostFacts facts;
  int cpus = 0;
  int peers = 0;
  int started = 0;
  int serve = 0;
  bool closing = false;
  bool in_service = true;
  std::vector<ComputationStatus> computations;

  Value ToValue() const;
  // kDataLoss naming the field for a malformed answer.
  static absl::StatusOr<DaemonStatus> FromValue(const Value& v);
};

// Asks the daemon at `uri` (connecting `node`, this scheduler's, first;
// it must outlive the call) for its status through its service `service` (kNodeService for a picos-node). Each step within
// `timeout`. kUnauthenticated for a wrong secret ("secret mismatch"),
// kUnavailable / kDeadlineExceeded when it cannot be reached, kNotFound
// when nothing there serves `service`, kDataLoss for a malformed answer;
// each message starts with the URI. Suspends.
Task<absl::StatusOr<DaemonStatus>> QueryDaemonStatus(remote::Node& node, std::string uri,
                                                     std::string service, absl::Duration timeout);

// For people: a few lines of facts, then one row per worker:
//   node n1 at tcp://127.0.0.1:9706, pid 4242, up 1h02m
//   health: cpu 73% idle of 2, mem 1.2 GiB of 3.8 GiB free, disk 40 GiB of ...,
//           swap ..., load 0.31 0.25 0.20
//   serving: 1 computation (2 started, forever), 2 workers each, 1 peer, in service
//   COMPUTATION        WORKER  PID    STATE    URI
//   c1a2...            0       4243   running  tcp://127.0.0.1:40001
std::string FormatStatusTable(const DaemonStatus& status);
// For machines: ToValue's map as one JSON object and a newline.
std::string FormatStatusJson(const DaemonStatus& status);
// Any Value as JSON (maps as objects, lists as arrays, bytes as base64
// strings, handles as their debug text); strings escaped as JsonQuote
// (core/kernel/log.h) does.
std::string ValueToJson(const Value& v);

}  // namespace picos::compute

#endif  // PICOS_COMPUTE_DAEMON_STATUS_H_
