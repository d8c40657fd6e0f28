// The client side of a compute cluster (dispycos's Client and its
// in-client scheduler): a computation library shipped to picos-node
// daemons (compute/picos_node.cc), one worker process per CPU there, and
// jobs run on their workers.
//
//   // In a task of a scheduler whose Node is started (core/remote/node.h):
//   picos::compute::ComputationOptions o;
//   o.library = "bazel-bin/app/libsquares.so";   // picos_computation(name = "squares")
//   o.max_retries = 1;
//   o.status_task = picos::Self();                // events, below
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
// A job is a remote task (pycos: a job's rtask). The TaskRef Run gives is
// the job's handle on the client: Join gives its result, Monitor reports
// its end, Terminate cancels it, and Send messages it. A function
// registered with PICOS_COMPUTE_JOB (compute/export.h) gets a Job: its
// Receive gives the messages sent to the handle, and its Send reaches the
// task given as RunOptions::reply_to:
//
//   picos::compute::RunOptions ro;
//   ro.reply_to = picos::Self();
//   absl::StatusOr<picos::TaskRef> job = co_await c->Run("sum", "", ro);
//   (void)job->Send(picos::Value("5"));
//   absl::StatusOr<picos::Value> m = co_await picos::Receive();
//   // {"job": <the job's id>, "data": Value::Bytes("5")}
//
// Messaging guarantees, each tested with real picos-node workers
// (testing/compute_messages_test.cc):
//  * Messages sent to the handle (bytes or strings; other Values are dropped
//    with a log line) reach the job's Receive in the order sent, each once,
//    for Run, RunAt and RunAsync jobs alike. Sent before the job started on
//    a worker, they are held on the client and given once it starts; sent
//    while the job computes without receiving, they wait in its mailbox
//    (kJobMailboxLimit on the worker and as many more in the handle's
//    mailbox, then Send gives kResourceExhausted; Deliver waits for room).
//  * The job's Send reaches reply_to as {"job": <id>, "data": <bytes>}, in
//    the order sent, each once.
//  * Close({.terminate = true}), CloseWorker(terminate) and Terminate on
//    the handle cancel the job: its Receive gives kCancelled
//    (compute/export.h) and it may still send a last message. With Close
//    and CloseWorker the client waits, up to ComputationOptions::timeout,
//    for the job to return, so that last message reaches reply_to before
//    the handle ends (its Join gives kCancelled, its monitors hear of it)
//    and before Close returns (pycos dispycos_kbd_int). Terminate ends the
//    handle at once (as it ends any task); the job is cancelled all the
//    same and its last message comes later. A bytes-only function cannot
//    be cancelled (see Close below).
//  * A message sent to a job that has ended gets kFailedPrecondition (the
//    handle has ended); messages still held when it ends, or not yet taken
//    by the job when it returns, are dropped. A message for a bytes-only
//    function is held until it ends, then dropped. Messages forwarded to a
//    worker that is lost are lost with it; a job run again elsewhere gets
//    those sent from then on.
//  * What crosses the network is checked: a malformed job, control or inbox
//    message is logged and dropped, never a crash (compute/protocol.h).
//
// Jobs. Run (a CPU job) gives at once the handle of a local task that waits
// for a worker with no CPU job (one CPU job per worker at a time, the
// least loaded first, waiting jobs served first come first served; with
// ComputationOptions::cpu_jobs_ahead, by default when its jobs are short, a
// busy worker's job loop may also hold the next ones, still run one at a
// time), runs
// the job there and ends with its result: Join gives the function's bytes,
// kAborted with its message when it fails, kNotFound ("no function 'x'
// ...") for a function the library does not register. RunAt does the same
// on one node (any of its workers) or one worker, named by URI. RunAsync /
// RunAsyncAt run an I/O job: any number run at once on a worker, beside its
// CPU job, on threads of the worker's own (not counted against the one CPU
// job; pycos io_rtask).
//
// How a job travels. At Schedule each worker starts one long-lived job loop
// (compute/protocol.h); a CPU job is one message to it and its result one
// message back (a service call and a remote task per job cost two round
// trips). A worker runs one CPU job at a time. An I/O job is a remote
// service call of its own, a remote task on the worker.
//
// Guarantees, each tested with a real picos-node and its worker processes
// (testing/compute_test.cc, compute_events_test.cc, compute_control_test.cc):
//  * Schedule asks each node for its facts ({"op": "info"}), applies the
//    allocation rules (below), ships the library with SendFile into a
//    folder of its own there (the node checks its SHA-256 before starting
//    workers) and starts the computation's workers. A node the rules skip
//    is not used (a node_ignored event says why).
//  * A worker that dies is seen at once, also while it runs no job (the
//    client monitors each worker's job loop; the worker's connection breaks
//    and the redial finds nothing listening, so its peer is lost without the
//    grace period), and every job there is told at once:
//    worker_lost is sent, its jobs end with kUnavailable "worker_lost: ..."
//    unless max_retries lets them run again on another worker (job_rerun),
//    and with restart_workers its node starts a fresh worker in its place
//    (worker_restarted). A lost worker is otherwise not used again. A node
//    whose peer is lost (heartbeats, within the liveness time) gives
//    node_lost and its workers worker_lost.
//  * While the node serves the computation it sends its host's facts every
//    pulse interval (ComputationOptions::pulse_interval, else the node's
//    --pulse_interval, kept within its --min/--max_pulse_interval): each
//    becomes a node_health event and nodes() shows the latest.
//  * SuspendWorker / SuspendNode: no new job starts there (running ones go
//    on) until ResumeWorker / ResumeNode. CloseWorker ends one worker (after
//    its running jobs, or terminating them), restarting it if asked.
//  * Close(await_io, terminate) fails jobs still waiting for a worker
//    (kFailedPrecondition), then: with terminate, every running job's task
//    ends at once with kCancelled (job_terminated). The worker cannot stop a
//    C-ABI function mid-run: it runs to its end and its result is dropped
//    (a CPU job sent there next waits for it in the worker's job loop),
//    and the worker process is ended with the computation (SIGTERM from its
//    node), so nothing of it outlives Close. Without terminate Close waits
//    for the running CPU jobs to end, and for the I/O jobs too with
//    await_io (without it they are terminated as above). Then it ends the
//    workers and removes the shipped files on every node; later Runs give
//    kFailedPrecondition.
//
// Status events (pycos DispycosStatus): with ComputationOptions::status_task
// set, that task (local or remote) receives each event as a Value map with
// "type" and "computation" (this computation's id) and, by type:
//   computation_scheduled  "nodes": int, "workers": int (in use after a Schedule)
//   computation_closed
//   node_discovered        "node": uri, "facts": HostFacts map, "cpus": int (its
//                          info answer, before the allocation; a node given to
//                          Schedule or found by discovery alike; with
//                          disable_nodes it then waits for EnableNode)
//   node_initialized       "node": uri, "facts": HostFacts map, "cpus": int
//   node_ignored           "node": uri, "reason": string (allocation rules)
//   node_suspended         "node"
//   node_resumed           "node"
//   node_closed            "node"
//   node_lost              "node", "message": string
//   node_health            "node", "facts": HostFacts map (every pulse)
//   worker_discovered      "worker": uri, "node": uri (its node started it; before
//                          it is reached; disabled: waits for EnableNode or
//                          EnableWorker)
//   worker_initialized     "worker": uri, "node": uri (set up: takes jobs)
//   worker_setup_failed    "worker", "node", "stage": "node" | "worker",
//                          "message": the hook's (the worker is then closed)
//   worker_suspended       "worker", "node"
//   worker_resumed         "worker", "node"
//   worker_closed          "worker", "node"
//   worker_lost            "worker", "node", "message"
//   worker_restarted       "worker": the new uri, "node", "old": the lost uri
//   job_started            "job": uint id, "task": the job's TaskRef, "fn",
//                          "worker", "async": bool, "arg": bytes (the
//                          argument's first 256 bytes)
//   job_finished           "job", "task", "fn", "worker", "code": int
//                          (absl::StatusCode, 0 for success), "message"
//   job_lost               "job", "task", "fn", "worker", "message" (its worker
//                          was lost and it is not run again)
//   job_rerun              "job", "task", "fn", "worker" (the lost one), "retry": int
//   job_terminated         "job", "task", "fn", "worker"
// Events are sent with TaskRef::Send (never awaited), in the order they
// happen here; a status task that is gone is logged once, and the
// computation goes on.
//
// Node allocation (pycos DispycosNodeAllocate): for each node, first
// `allocate` (if set) is asked with the node's URI and facts: N > 0 uses at
// most N workers there, 0 skips the node, a negative number leaves it to the
// rules. Then the rules in order: the first whose host pattern (a glob, on
// the host's name or the URI's address) and platform pattern (a glob on
// HostFacts::platform) match decides: the node is skipped if its free
// memory or disk is below the rule's minimum, else it gets `cpus` workers (0:
// every CPU the node gives, N: at most N, -N: all but N, skipped if that
// leaves none). No rule matching: every CPU the node gives.
//
// The client task. Each start names one task of this process, the
// computation's client task (the start's "client", compute/node_daemon.h):
// the node sends it the pulses, and joins it; when it ends (Close, or the
// Computation destroyed) or this process's peer is lost, the node closes
// the computation after its --zombie_period. So a Computation destroyed
// without Close leaves its workers and files on the nodes for that period.
//
// A shared scheduler (compute/scheduler.h). With ComputationOptions::scheduler
// set, Schedule(nodes) asks that picos-scheduler for the nodes it shares
// (only those in `nodes`, if not empty) and their facts, applies the
// allocation rules and function to each (what this client wants there),
// joins, and starts workers on the nodes directly, as many as its share; it
// waits, up to `timeout`, until the first worker is in use (a busy node's
// CPUs come free as other clients' running jobs end). Later the share
// follows the other clients: when it shrinks, workers close after their
// running jobs (worker_closed; idle ones first); when it grows, workers are
// added (worker_initialized), and nodes not used yet are started
// (node_initialized), also nodes the scheduler learns of after the join
// (the allocation applies to them as it did at Schedule). A node lost is not
// used again, as without a scheduler: its share goes to the others. Jobs wait meanwhile rather than fail, also while the
// share is none. Jobs still travel one hop, client to worker; the
// scheduler sees none of them. Close (or destroying the Computation) leaves
// the scheduler, which gives the share to the others; so does this
// process's death, once its peer is found lost.
//
// Setup hooks, enabling, closing and restarting nodes (pycos node_setup,
// server_setup, disable_nodes/servers, enable_node/server, close_node,
// restart_node), each tested with real picos-node processes
// (testing/compute_setup_test.cc):
//  * Each worker runs the library's setup hooks (compute/export.h: node
//    setup with its node's argument, then worker setup with its own) before
//    it is given any job; Schedule waits for them. A hook that fails gives
//    worker_setup_failed, and that worker is closed (worker_closed) and
//    never given a job; the others serve and Schedule still succeeds (the
//    events say which failed). A library with no hooks costs one round trip
//    per worker more at Schedule.
//  * disable_nodes: Schedule starts the node's workers but gives node_discovered
//    (and worker_discovered for each) instead of node_initialized, runs no
//    hook there and uses none of them until EnableNode(uri, arg) runs the
//    node setup with `arg` in each of its workers (node_initialized, then
//    worker_initialized for each worker set up). disable_workers: each
//    worker waits likewise (worker_discovered) for EnableWorker(uri, arg),
//    which runs its node setup if due and its worker setup with `arg`
//    (worker_initialized); a worker of a node still disabled is refused
//    (kFailedPrecondition: enable the node first). Jobs meanwhile wait for a
//    worker, as for a busy one. Enabling what is not disabled, or twice, is
//    kFailedPrecondition; an unknown URI kNotFound.
//  * CloseNode(uri, terminate): no new job goes to the node's workers; each
//    is closed after its running jobs, or with terminate at once (kCancelled,
//    as CloseWorker); then the node removes the computation (its workers
//    end, its files go), node_closed is sent, and later jobs go to other
//    nodes (a job for that node only fails with kUnavailable, no worker left).
//  * RestartNode(uri, arg, terminate): each worker of the node closed as
//    CloseWorker(restart) does (worker_closed, worker_restarted), its fresh
//    process set up again with the node's new argument `arg` and its own
//    worker argument: state the old processes held is gone.
//
// Discovered nodes (pycos NodeDiscovered). With ComputationOptions::discover
// set, Schedule (its node list may then be empty) also starts following
// that Node's peers (Node::peer_events): each peer connected then, and each
// that joins later until Close, is asked once whether it serves picos-node's
// service; one that does is used as a listed node is (node_discovered, the
// allocation, node_initialized, its workers), one that does not (a worker,
// another client) is passed over, and asked again if it leaves and comes
// back. A discovered node that is lost is not used again, as a listed one
// (its URI is known). Meanwhile jobs wait for a worker rather than fail
// for want of one. Schedule returns without waiting for discovered nodes;
// watch the status events (node_initialized, worker_initialized).
// Tested with picos-node --discover and multicast on loopback
// (testing/compute_discovery_test.cc).
//
// Job names (compute/export.h): a job registers a name in this
// computation's scope and other jobs of it locate it and message it
// directly, worker to worker. The names live in a registry task of this
// Computation (compute/job_names_internal.h) that each worker gets with its
// job loop, so jobs of another computation never see them; the client
// answers only Register and Locate, never relays (testing/compute_names_test.cc,
// examples/dispycos_mas.cc).
//
// Files (pycos dispycos's depends, send_file, a job's pycos.send_file back
// to the client), each tested with real picos-node processes
// (testing/compute_files_test.cc):
//  * Everything shipped to a node lands in the computation's folder there
//    (<its --dest_path>/<id()>), the working directory of the computation's
//    workers (compute/export.h: Job::dir()), so a job opens a data file by
//    its name: ComputationOptions::files at Schedule, Computation::SendFile
//    during the run (into a subdirectory if asked), RunOptions::files into
//    jobs/<job id>/ before the job starts (Job::job_dir()). Each travels
//    with core/remote/files.h's SendFile: written atomically, with its mode
//    and mtime; the node refuses a path that leads out (an absolute or ".."
//    subdirectory, a symlink on the way), a file beyond its
//    --max_file_size, or beyond --max_computation_bytes for the folder; a
//    refusal is the caller's error, naming the file and the node's reason
//    (Schedule's, SendFile's, the job's), and the node keeps serving. The
//    folder and all in it go when the computation closes (Close, or its
//    client gone for the node's zombie period).
//  * A job sends a file back with Job::SendFile when client_uri is set:
//    Schedule enables a FileReceiver in this process on dest_path (default
//    ./<id()>, created then) bounded by max_file_size, and the job's file
//    lands there (in a subdirectory if the job asks), whole, with its mode
//    and mtime; the same checks refuse a path that leads out, and the
//    refusal is the job's SendFile code and message. Each file received is
//    a status event:
//      file_received  "job": uint id, "path": the file's path on this
//                     client, "size": int, "worker"
//    A process has at most one FileReceiver (core/remote/files.h), so one
//    Computation with client_uri at a time: Schedule of a second gives
//    kAlreadyExists. Close (or destroying the Computation) disables it; the
//    files stay.
//
// Not yet (issue 12): discovery through a shared picos-scheduler.
//
// Threads: use a Computation from tasks of the scheduler that runs the
// client's Node, and destroy it there.
#ifndef PICOS_COMPUTE_COMPUTATION_H_
#define PICOS_COMPUTE_COMPUTATION_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "compute/host_stats.h"
#include "core/kernel/handles.h"
#include "core/kernel/task.h"

namespace picos::remote {
class Node;  // core/remote/node.h
}  // namespace picos::remote

namespace picos::compute {

class ComputationMetrics;  // compute/computation_metrics.h

// One node allocation rule (see the top of this file).
struct AllocationRule {
  std::string host = "*";      // fnmatch glob on the host name or address
  std::string platform = "*";  // fnmatch glob on HostFacts::platform
  int cpus = 0;                // 0 all, N at most N, -N all but N
  uint64_t min_memory = 0;     // bytes of HostFacts::memory_available
  uint64_t min_disk = 0;       // bytes of HostFacts::disk_free
};

// A custom allocation: workers to use on the node (see the top of this
// file). Called from the computation's scheduler thread; must not block.
using AllocationFunction = std::function<int(const std::string& node_uri, const HostFacts& facts)>;

// ComputationOptions::cpu_jobs_ahead: chosen per worker by its jobs' length.
inline constexpr int kCpuJobsAheadAuto = -1;

struct ComputationOptions {
  // The computation library (lib<name>.so of picos_computation).
  std::string library;
  // How many times a job whose worker was lost runs again elsewhere.
  int max_retries = 0;
  // The library's signature file, <library's name>.sig (picos-sign sign),
  // shipped beside it: what a node started with --trusted_signer requires
  // (compute/node_daemon.h). Empty: none.
  std::string signature;
  // How often each node sends its host's facts (node_health events); the
  // node keeps it within its --min/--max_pulse_interval. Zero: the node's
  // --pulse_interval. At most 24h (Create refuses more).
  absl::Duration pulse_interval = absl::ZeroDuration();
  // Bounds each step of Schedule and Close (asking, shipping, starting
  // workers, locating them), not the jobs.
  absl::Duration timeout = absl::Seconds(60);
  // Receives the status events (see the top of this file); null for none.
  TaskRef status_task;
  // Counts the jobs, workers and nodes as Prometheus metrics: given every
  // status event (status_task or not) and each job spawned. Null for none;
  // else it must outlive the Computation, and may serve several.
  ComputationMetrics* metrics = nullptr;
  // CPU jobs sent to a busy worker ahead of time, 0..8: a worker still runs
  // one CPU job at a time, and up to this many more may already wait in its
  // mailbox, so it starts the next without waiting for a round trip to the
  // client (throughput of short jobs, testing/bench/compute_bench.cc). Such
  // a job counts as running (job_started, JobState::kRunning, on its
  // worker's jobs) and, if the worker is lost, is re-run or reported
  // (job_rerun, job_lost) exactly like the one running there. 0: a CPU job
  // waits on the client until a worker is free. kCpuJobsAheadAuto (the
  // default): jobs of the function whose job a worker answered last, if
  // that one ran under 2 ms there (as the worker measured it,
  // compute/protocol.h), as many as make about 2 ms of them, at most 8 (a
  // trivial job: 8; one of 0.5 ms: 4); else none, nor of any other
  // function. So short jobs do not wait for a round trip each, and a job of
  // a function not yet seen short never waits on a busy worker while
  // another may come free first. Only the first CPU job waiting goes ahead,
  // so jobs still start first come first served.
  int cpu_jobs_ahead = kCpuJobsAheadAuto;
  // A lost worker is started again by its node (dispycos restart_servers).
  bool restart_workers = false;
  // A shared picos-scheduler's URI ("tcp://10.0.0.1:9705"): Schedule asks it
  // for the nodes and a fair share of their CPUs instead of taking every
  // worker the allocation allows (see "A shared scheduler" above). Empty: the
  // scheduler is this client (the default).
  std::string scheduler;
  // Node allocation, tried in order (see the top of this file).
  std::vector<AllocationRule> allocation;
  AllocationFunction allocate;
  // The setup hooks' arguments (compute/export.h) for nodes and workers not
  // disabled, at most kJobMessageMaxBytes each (Create refuses more).
  std::string node_setup_arg;
  std::string worker_setup_arg;
  // Nodes / workers started but not used until EnableNode / EnableWorker
  // (pycos disable_nodes / disable_servers; see the top of this file).
  bool disable_nodes = false;
  bool disable_workers = false;
  // Nodes found by discovery (see "Discovered nodes" above): the client's
  // Node, on which the caller started a discovery::Discovery (or gave
  // static peers). Null: only the nodes Schedule is given. Not with
  // `scheduler`. It must outlive the Computation.
  remote::Node* discover = nullptr;
  // Data files, components of the computation (pycos `depends` files):
  // paths of regular files on this client, shipped at Schedule beside the
  // library into the computation's folder on each node, the workers'
  // working directory (see "Files" above). Their names (last components)
  // must differ from each other and from the library's and signature's
  // (Create refuses). At most kMaxDataFiles.
  std::vector<std::string> files;
  // Files back from jobs (Job::SendFile): a URI of this process's
  // listening remote::Node (one of its uris()) that the workers can dial.
  // Empty: the computation takes no files (a job's SendFile gives
  // kFailedPrecondition). See "Files" above.
  std::string client_uri;
  // Where the files jobs send land, created by Schedule when missing.
  // Empty: ./<id()> (under the current directory). Only with client_uri.
  std::string dest_path;
  // Largest file a job may send to this client, in bytes.
  uint64_t max_file_size = uint64_t{256} << 20;
};

// Most data files a computation ships (ComputationOptions::files) and
// files one job is given (RunOptions::files).
inline constexpr size_t kMaxDataFiles = 1024;

// kDisabled: started, waiting for EnableNode / EnableWorker or for its
// setup hooks to finish.
enum class NodeState { kInitialized, kSuspended, kClosed, kLost, kDisabled };
enum class WorkerState { kIdle, kBusy, kSuspended, kRestarting, kClosed, kLost, kDisabled };
enum class JobState { kWaiting, kRunning };
const char* NodeStateName(NodeState s);
const char* WorkerStateName(WorkerState s);
const char* JobStateName(JobState s);

struct NodeInfo {
  std::string uri;
  NodeState state = NodeState::kInitialized;
  HostFacts facts;          // the latest: from info, then each pulse
  absl::Time facts_time;    // when they arrived
  int workers = 0;          // workers started there
};

struct WorkerInfo {
  std::string uri;
  std::string node;
  // kBusy while it runs a CPU job; kIdle with none (I/O jobs may run).
  WorkerState state = WorkerState::kIdle;
  std::vector<uint64_t> jobs;  // ids of the jobs running there
};

struct JobInfo {
  uint64_t id = 0;
  std::string fn;
  TaskRef task;
  bool async = false;
  JobState state = JobState::kWaiting;
  std::string worker;      // "" while waiting
  absl::Time started;      // when it started on its worker (InfinitePast while waiting)
};

// How Run starts a job (see the top of this file).
struct RunOptions {
  // A node or worker URI (as RunAt), or empty for the least loaded worker.
  std::string where;
  // An I/O job (as RunAsync).
  bool async = false;
  // The task (local or remote) that the job's Send reaches; null: the job's
  // Send gives kFailedPrecondition.
  TaskRef reply_to;
  // The job's own files: paths on this client, shipped to its worker's node
  // into the job's folder (Job::job_dir(): <the computation's folder>/jobs/
  // <job id>) once a worker is chosen and before the job starts there
  // (again before a re-run elsewhere). A file that cannot be shipped (not
  // found, refused by the node) is the job's error (its Join). At most
  // kMaxDataFiles. The job's folder stays until the computation closes.
  std::vector<std::string> files;
};

// How Computation::SendFile puts a file on a node.
struct FileOptions {
  // A subdirectory of the computation's folder ("" for the folder itself),
  // relative, '/'-separated, created when missing. An absolute one, one
  // with a ".." component, or one through a symlink there is refused.
  std::string dir;
  // Replace a file of the same name there (else kAlreadyExists).
  bool overwrite = false;
};

struct CloseOptions {
  bool await_io = false;
  bool terminate = false;
};

class Computation {
 public:
  // Reads the library and computes its SHA-256. kNotFound if it cannot be
  // read, kInvalidArgument for a bad option. Does not suspend.
  static absl::StatusOr<std::unique_ptr<Computation>> Create(ComputationOptions options);
  // Ends the computation's helper tasks. Destroying a Computation without
  // Close leaves its workers running on the nodes.
  ~Computation();
  Computation(const Computation&) = delete;
  Computation& operator=(const Computation&) = delete;

  // Asks every node of `nodes` (URIs) for its facts, applies the
  // allocation, ships the library and the data files (options.files) to the
  // nodes kept, starts the
  // computation's workers there and makes them available to jobs. Stops at
  // the first node that fails, with its error prefixed by its URI; workers
  // of the nodes before it stay in use. kFailedPrecondition after Close.
  // Suspends.
  Task<absl::Status> Schedule(std::vector<std::string> nodes);

  // Spawns a CPU job: `fn` of the library with `arg` (see the top of this
  // file). kFailedPrecondition before a Schedule gave a worker, or after
  // Close. Suspends only to spawn.
  Task<absl::StatusOr<TaskRef>> Run(std::string fn, std::string arg);
  // Run with options: where, async, reply_to (see RunOptions).
  Task<absl::StatusOr<TaskRef>> Run(std::string fn, std::string arg, RunOptions options);
  // Run on the node or worker `where` (a URI Schedule used, or one a worker
  // event named). kNotFound if no worker of the computation is there.
  Task<absl::StatusOr<TaskRef>> RunAt(std::string where, std::string fn, std::string arg);
  // An I/O job on the least loaded worker, or at `where`.
  Task<absl::StatusOr<TaskRef>> RunAsync(std::string fn, std::string arg);
  Task<absl::StatusOr<TaskRef>> RunAsyncAt(std::string where, std::string fn, std::string arg);

  // No new job starts on the worker / the node's workers until resumed;
  // the event is sent. kNotFound for a URI the computation does not use,
  // kFailedPrecondition for a worker or node lost or closed. Do not suspend.
  absl::Status SuspendWorker(const std::string& uri);
  absl::Status ResumeWorker(const std::string& uri);
  absl::Status SuspendNode(const std::string& uri);
  absl::Status ResumeNode(const std::string& uri);

  // Ends the worker `uri`: no new job goes there; its running jobs are
  // waited for, or with `terminate` ended at once (kCancelled); then its
  // node ends it (worker_closed) and, with `restart`, starts a fresh one in
  // its place (worker_restarted, a new URI). Suspends.
  Task<absl::Status> CloseWorker(std::string uri, bool restart, bool terminate = false);

  // With disable_nodes / disable_workers: runs the node's (each of its
  // workers') or the worker's setup with `setup_arg`, then uses them (see
  // "Setup hooks" above). kNotFound for a URI the computation does not use,
  // kFailedPrecondition when lost, closed, not disabled or enabled already,
  // or (EnableWorker) its node still disabled; kAborted with the hook's
  // message when every worker concerned failed its setup. Suspends.
  Task<absl::Status> EnableNode(std::string uri, std::string setup_arg);
  Task<absl::Status> EnableWorker(std::string uri, std::string setup_arg);

  // Closes the node `uri` for this computation, or restarts its workers
  // with fresh processes set up with `setup_arg` as the node's argument
  // (see "Setup hooks" above). kNotFound for an unknown URI,
  // kFailedPrecondition for a node lost, closed or (RestartNode) disabled.
  // The first error met. Suspends.
  Task<absl::Status> CloseNode(std::string uri, bool terminate = false);
  Task<absl::Status> RestartNode(std::string uri, std::string setup_arg, bool terminate = false);

  // Copies the file `path` on this client to the computation's folder on
  // the node `where` (a node URI Schedule used, or a worker URI: the
  // workers of one node share their node's folder), into options.dir there
  // (pycos Computation.send_file, dispycos send_file to a server). Returns
  // once the node has the file whole, with its mode and mtime. kNotFound
  // for a node the computation does not use (or no such file),
  // kInvalidArgument for an absolute dir, kFailedPrecondition after Close;
  // the node's refusals (a dir that leads out, beyond its --max_file_size or
  // --max_computation_bytes, kAlreadyExists) prefixed by its URI. The node
  // keeps serving. Suspends.
  Task<absl::Status> SendFile(std::string where, std::string path, FileOptions options = FileOptions());

  // Closes the computation (see the top of this file). Destroying a
  // Computation without Close leaves its workers running on the nodes until
  // their zombie period passes (see "The client task" above). The first error
  // met, after trying every node. Suspends.
  Task<absl::Status> Close(CloseOptions options = {});

  // Snapshots: the nodes used (and those lost or closed), the workers, and
  // the jobs not yet ended.
  std::vector<NodeInfo> nodes() const;
  std::vector<WorkerInfo> workers() const;
  std::vector<JobInfo> jobs() const;

  // Workers in use (not lost or closed), and jobs run again because their
  // worker was lost.
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
