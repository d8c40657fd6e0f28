// picos-scheduler: a compute scheduler shared by several clients at once
// (pycos's shared dispycos scheduler serves one client at a time and queues
// the others). The scheduler is a broker of CPU shares, not a relay of jobs:
// it knows the nodes and how many workers each gives a computation, admits
// clients, and gives each client a fair share of worker slots on every
// node; the client starts its workers and runs its jobs on the nodes
// directly, within its share, so a job still travels one hop
// (compute/computation.h). Without a scheduler a client takes every worker
// its allocation rules allow, as before.
//
//   picos-scheduler --listen=tcp://10.0.0.1:9705 --secret_file=secret
//       --node=tcp://10.0.0.2:9706 --node=tcp://10.0.0.3:9706
//
//   // In the client (compute/computation.h):
//   picos::compute::ComputationOptions o;
//   o.scheduler = "tcp://10.0.0.1:9705";
//   ... co_await c->Schedule({});   // every node the scheduler knows
//
// Sharing. Each client says, per node, how many workers it wants there (its
// demand: what its allocation rules and function give, computed in the
// client with the node's facts that the scheduler passes on). Each node's
// CPUs (the workers its --cpus gives one computation) are divided max-min
// fairly among the clients that want some (FairShares below): equal parts,
// and what a client does not want goes to the others. Shares are computed
// again when a client joins or leaves, or a node comes or is lost; a node
// that comes after a client joined is offered to it, and the client says
// what it wants there.
// A share that shrinks is the client's at once (it closes that many
// workers, each after its running jobs: CloseWorker without restart); one
// that grows is granted only out of what the other clients no longer hold
// (they report what they hold after each change), so the node's CPUs are
// never promised twice: a client joining a busy node gets its share as the
// others' running jobs end. A client with no share anywhere yet waits in
// Schedule (up to ComputationOptions::timeout).
//
// Jobs stay apart because nothing is shared but the count: each client's
// computation has its own id, its own worker processes and its own folder
// on each node (compute/node_daemon.h), and its jobs go only to its own
// workers.
//
// A client that goes away frees its share at once: the scheduler monitors
// the client's share task (core/kernel/monitor.h), which ends with Close or
// with the Computation, and whose peer, when the client process dies, is
// found lost by heartbeats within the liveness time. (Its workers on the
// nodes are idle from then on and end after the nodes' --zombie_period.)
//
// Requests (the remote service kSchedulerService, compute/protocol.h; every
// field is network input and checked; a refusal is an error to the caller
// and a log line here):
//   {"op": "info"}
//     {"kind": "scheduler", "name", "uri", "pid": int, "uptime_s": double,
//      "max_clients": int,
//      "nodes": [{"uri", "cpus": int, "up": bool, "facts": HostFacts map}],
//      "clients": [{"computation", "demand": {uri: int}, "shares": {uri: int},
//                   "held": {uri: int}}]}
//     what `picos-scheduler --status` shows (compute/daemon_status.h's
//     SchedulerStatus) and how a client learns the nodes.
//   {"op": "join", "computation": <id>, "client": <task>,
//    "demand": {<node uri>: <0..256>}}
//     admits the client (at most --max_clients at once): {"shares": {uri:
//     int}}; later changes go to the "client" task as
//     {kSharesKey: <epoch>, "shares": {uri: int}, "nodes": [<as info's, the
//     up nodes the client has not said it wants or not: those that came
//     after it joined>]} (every node, latest wins); the client answers a
//     node it is told of with its demand there (held's "demand").
//   {"op": "held", "computation": <id>, "held": {<node uri>: <0..256>},
//    "epoch": <the last update it acted on, 0 for the join's reply>,
//    "demand": {<node uri>: <0..256>} (optional: what it wants now, 0 for a
//    node it lost)}
//     the workers the client holds on each node after a change. A grant
//     that shrank counts at its old size until the client reports having
//     acted on the latest update: only then are the freed CPUs granted to
//     others, so a CPU is never promised to two clients.
// A peer with the wrong secret never gets as far as a request: the
// connection is refused during its handshake (core/remote/node.h).
//
// Flags (a bad value is a one-line error on stderr and exit status 2):
//   --listen, --advertise, --peer, --secret_file, --node_name
//                       the node flags (core/remote/node_flags.h); listens
//                       at tcp://127.0.0.1:9705 by default
//   --node=URI          a picos-node to share (repeatable, or commas); the
//                       scheduler keeps trying a node that is not up yet or
//                       was lost (every --node_retry seconds)
//   --node_dns=HOST:PORT every address HOST resolves to is a node at PORT,
//                       looked up again every --node_retry (new addresses
//                       added): a Kubernetes headless Service's name
//                       (tools/deploy/k8s)
//   --node_retry=S      seconds between tries of a node that is down (default
//                       2; 0.1 .. 3600)
//   --max_clients=N     clients served at once (default 64; 1 .. 1024)
//   --log_level=LEVEL   trace, debug, info, warn, error or off
//   --config=FILE, --save_config=FILE
//                       as picos-node's (compute/node_daemon.h)
//
// Status command: `picos-scheduler --status [--connect=URI] [--json]
// [--status_timeout=10s]` (the secret as the daemon takes it: --secret_file
// or $PICOS_REMOTE_SECRET) asks the running scheduler at --connect (default
// tcp://127.0.0.1:9705) for its info and prints it: its pid and uptime, a
// row per node (state, CPUs, idle CPU, free memory, host), a row per client
// and node (demand, share, held), or with --json one line of JSON (info's
// map). Exit status 0; 1 and one line on stderr when the scheduler cannot
// be reached, the secret is wrong or what answers is not a scheduler; 2
// and one line for a bad --connect or --status_timeout (1s..1h).
//   $ picos-scheduler --status --connect=tcp://sched:9705 --secret_file=secret
//   scheduler picos-scheduler at tcp://sched:9705, pid 4242, up 3m05s
//   serving: 1 client (at most 64), 1 of 1 node up, 2 CPUs
//   NODE                   STATE  CPUS  CPU IDLE  MEM FREE  HOST
//   tcp://node1:9706       up     2     73%       20.3 GiB  node1
//   CLIENT             NODE                   DEMAND  SHARE  HELD
//   c0ab04ee3adc15b6b  tcp://node1:9706       2       2      2
//
// Lifecycle, one line on stdout per event (for operators and tests):
//   listening <uri>
//   node up <uri> <cpus>
//   node lost <uri> <why>
//   client joined <computation>
//   client left <computation> <why>
//   shares <computation> <node uri> <workers>    (each grant that changed)
//   signal <NAME>: closing                        SIGTERM, SIGINT, SIGHUP,
//                                                 SIGQUIT: goodbye to every
//                                                 peer, "scheduler closed",
//                                                 exit status 0
//
// Threads: one scheduler thread runs the daemon; signals are taken by a
// thread of their own with sigwait and sent to the daemon's task.
#ifndef PICOS_COMPUTE_SCHEDULER_H_
#define PICOS_COMPUTE_SCHEDULER_H_

#include <string>
#include <utility>
#include <vector>

namespace picos::compute {

// Max-min fair division of `cpus` among clients that want `demands[i]`
// each (0: none): equal parts, a client never gets more than it wants, and
// what it leaves goes to the others; a remainder that does not divide goes to
// the clients earliest in `demands`. Gives each client's part, in order.
// Pure.
std::vector<int> FairShares(int cpus, const std::vector<int>& demands);

// The command line with --config FILE applied to the flags (the command
// line wins) and repeated --node flags joined. On a bad config file prints
// the one-line error and exits with status 2. Main thread, first.
std::vector<std::string> PrepareSchedulerCommandLine(int argc, char** argv);

// Runs picos-scheduler with the flags parsed, until a signal ends it; gives
// the exit status (2 for a bad flag, with a one-line error on stderr). Main
// thread, no scheduler running.
int SchedulerDaemonMain();

}  // namespace picos::compute

#endif  // PICOS_COMPUTE_SCHEDULER_H_
