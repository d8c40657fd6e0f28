// The names compute's processes agree on (compute/picos_node.cc serves
// them, compute/computation.cc uses them). The messages themselves are
// described at the top of compute/picos_node.cc.
#ifndef PICOS_COMPUTE_PROTOCOL_H_
#define PICOS_COMPUTE_PROTOCOL_H_

#include <cstddef>

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
//   {kJobReplyKey: <id>, "code": <absl::StatusCode>, "message": <text>},
// with kJobRunTimeKey: <int> (how long the function ran there, in
// microseconds) when it ran: what the client's kCpuJobsAheadAuto decides by.
// One message each way per job where a service call costs two round trips
// and a remote task: the client's path for CPU jobs (compute/computation.cc).
// The loop ends only with its worker (or terminated), so the client
// monitors it to see the worker lost.
inline constexpr char kWorkerService[] = "picos.compute.job";
inline constexpr char kJobLoopKey[] = "loop";
inline constexpr char kJobReplyKey[] = "picos.compute.job";
inline constexpr char kJobRunTimeKey[] = "us";

// The remote service of a shared picos-scheduler (compute/scheduler.h has
// its requests), and the key of the share updates it sends each client's
// share task: {kSharesKey: <epoch>, "shares": {<node uri>: <workers>}}.
inline constexpr char kSchedulerService[] = "picos.compute.scheduler";
inline constexpr char kSharesKey[] = "picos.compute.shares";

// Job messaging (compute/export.h's job context, computation.h's RunOptions).
// A job message (CPU or async) may also carry
//   "job": <the client's job id>, "attempt": <int>, "to": <the reply_to task>,
//   "ctl": <the client's job control task; default "owner">, "owner": <the
//   job's client-side task; default reply_to>.
// (A CPU job names neither: one handle fewer to send per job, and its
// driver, the loop's reply_to, takes its control messages.)
// For a function with a context the worker then spawns the job's inbox, a
// task that monitors "owner" (its end cancels the job) and takes
//   {kJobDataKey: <bytes>}   a message for the job's Receive, and
//   {kJobCancelKey: true}    cancel the job,
// and tells "ctl"
//   {kJobCtlKey: <job>, "attempt": <int>, "inbox": <the inbox task>} once
//   the job starts, then
//   {kJobCtlKey: <job>, "attempt": <int>, "consumed": <int>} every
//   kJobAckEvery messages the job took (the client forwards at most
//   kJobMailboxLimit not yet taken).
// The job's Send reaches "to" as {"job": <job>, "data": <bytes>}.
inline constexpr char kJobCtlKey[] = "picos.compute.jobctl";
inline constexpr char kJobDataKey[] = "picos.compute.msg";
inline constexpr char kJobCancelKey[] = "picos.compute.cancel";
inline constexpr int kJobAckEvery = 64;

// Job names (compute/export.h's Register, Locate, SendTo). Each
// computation has one name registry, a task on its client
// (compute/job_names_internal.h), handed to each worker in its job loop's
// start, {kJobLoopKey: true, kNamesKey: <the registry>}: only that
// computation's workers can reach it. A worker asks it
//   {kNamesKey: "register", "name": <text>, "job": <job>, "inbox": <the
//    job's inbox task>, "reply_to": <task>}
//   {kNamesKey: "locate", "name": <text>, "reply_to": <task>}
// and is answered {kNamesKey: "reply", "code": <absl::StatusCode>,
// "message": <text>, "inbox": <task, a locate that found it>}; it says
//   {kNamesKey: "unregister", "name": <text>, "job": <job>}
// when the job ends (no answer). A job's SendTo then goes straight to the
// target's inbox as {kJobDataKey: <bytes>, "from": <the sender's name>}.
inline constexpr char kNamesKey[] = "picos.compute.names";
// Most names one computation's registry holds.
inline constexpr size_t kMaxJobNames = 65536;

// Files a job sends to its client (compute/export.h's Job::SendFile). A job
// message (CPU or async) may also carry
//   "files_to": <the client's URI, where its FileReceiver is>,
//   "files_task": <the client's task told of each file>;
// without "files_to" the job's SendFile gives kFailedPrecondition. Once a
// file is on the client the worker tells "files_task"
//   {kJobFileKey: <job>, "name": <file name>, "dir": <subdirectory>,
//    "size": <bytes>, "worker": <the worker's URI>}.
inline constexpr char kJobFileKey[] = "picos.compute.file";

}  // namespace picos::compute

#endif  // PICOS_COMPUTE_PROTOCOL_H_
