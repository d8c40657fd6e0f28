// What a running compute daemon (picos-node, picos-scheduler) says about
// itself when asked over its authenticated port, the printing of it for
// `picos-node --status` and `picos-scheduler --status` (a table for people,
// JSON for machines), and the command both run (RunStatusCommand).
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
// A picos-scheduler's answer to {"op": "info"} (compute/scheduler.h) is
// SchedulerStatus's map: "kind": "scheduler", "name", "uri", "pid",
// "uptime_s", "max_clients": int, "nodes": [{"uri", "cpus": int, "up":
// bool, "facts": HostFacts map}], "clients": [{"computation", "demand",
// "shares", "held": {node uri: int}}]; its FromValue checks it likewise
// (at most kMaxStatusNodes nodes and kMaxStatusComputations clients).
//
// Threads: QueryDaemonStatus and AskDaemon suspend and runs on the scheduler of the
// calling task, whose remote::Node must be started. The formatting
// functions are pure.
#ifndef PICOS_COMPUTE_DAEMON_STATUS_H_
#define PICOS_COMPUTE_DAEMON_STATUS_H_

#include <cstdint>
#include <functional>
#include <map>
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
inline constexpr size_t kMaxStatusNodes = 1024;    // of a scheduler

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

struct SchedulerNodeStatus {
  std::string uri;
  int cpus = 0;  // workers it gives one computation (0 until it is first up)
  bool up = false;
  HostFacts facts;
};

struct SchedulerClientStatus {
  std::string computation;
  // Per node URI: workers wanted, granted (its share), and held now.
  std::map<std::string, int> demand, shares, held;
};

struct SchedulerStatus {
  std::string kind = "scheduler";
  std::string name;
  std::string uri;
  int pid = 0;
  double uptime_s = 0;
  int max_clients = 0;
  std::vector<SchedulerNodeStatus> nodes;
  std::vector<SchedulerClientStatus> clients;

  Value ToValue() const;
  // kDataLoss naming the field for a malformed answer.
  static absl::StatusOr<SchedulerStatus> FromValue(const Value& v);
};

// Sends {"op": op} to the service `service` of the daemon at `uri`
// (connecting `node` first; it must outlive the call) and gives the raw
// answer; each step within `timeout`. Errors as QueryDaemonStatus's, each
// message starting with the URI. Suspends.
Task<absl::StatusOr<Value>> AskDaemon(remote::Node& node, std::string uri, std::string service, std::string op,
                                      absl::Duration timeout);

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

// For people: a line of facts, one row per node, one per client and node
// it wants or holds workers on:
//   scheduler picos-scheduler at tcp://127.0.0.1:9705, pid 4242, up 3m05s
//   serving: 1 client (at most 64), 1 of 1 node up, 2 CPUs
//   NODE                   STATE  CPUS  CPU IDLE  MEM FREE  HOST
//   tcp://127.0.0.1:9706   up     2     73%       1.2 GiB   host-a
//   CLIENT      NODE                  DEMAND  SHARE  HELD
//   c1a2...     tcp://127.0.0.1:9706  2       2      2
std::string FormatSchedulerTable(const SchedulerStatus& status);
std::string FormatSchedulerJson(const SchedulerStatus& status);

// `picos-node --status` and `picos-scheduler --status`: a client-only node
// with the cluster's secret (the node flags on the command line:
// --secret_file or $PICOS_REMOTE_SECRET) asks the daemon and prints the
// answer on stdout. Gives the exit status: 0; 1 with one line on stderr
// ("<program> --status: <error>") when the daemon cannot be reached, the
// secret is wrong or the answer is malformed; 2 with one line for a bad
// `uri` or `timeout` (1s..1h). The remote layer's own log lines only with
// a `log_level`. Main thread, no scheduler running.
struct StatusCommand {
  std::string program;  // "picos-node"
  std::string service;  // kNodeService
  std::string op;       // the request's op: "status"
  std::string uri;      // --connect
  bool json = false;    // --json
  absl::Duration timeout = absl::Seconds(10);  // --status_timeout
  std::string log_level;                       // --log_level; empty: off
  // Checks the answer and gives the text to print (table or JSON).
  std::function<absl::StatusOr<std::string>(const Value& answer, bool json)> format;
};
int RunStatusCommand(StatusCommand command);
// Any Value as JSON (maps as objects, lists as arrays, bytes as base64
// strings, handles as their debug text); strings escaped as JsonQuote
// (core/kernel/log.h) does.
std::string ValueToJson(const Value& v);

}  // namespace picos::compute

#endif  // PICOS_COMPUTE_DAEMON_STATUS_H_
