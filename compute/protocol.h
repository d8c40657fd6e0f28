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

}  // namespace picos::compute

#endif  // PICOS_COMPUTE_PROTOCOL_H_
