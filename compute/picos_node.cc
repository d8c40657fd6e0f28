// picos-node: the compute node daemon (dispycosnode), one per machine, and
// in worker mode (--worker_library) one of its worker processes.
//
//   picos-node --cpus=2 --listen=tcp://10.0.0.2:9706 --secret_file=secret
//       --dest_path=/var/lib/picos-node
//
// The daemon's flags, signals, console and lifecycle: compute/node_daemon.h.
// The node is a picos peer (core/remote/node_flags.h: --listen, --peer,
// --secret_file or $PICOS_REMOTE_SECRET, --node_name) that accepts files into
// --dest_path (core/remote/files.h: the client ships its computation library
// there with SendFile, into a folder named after the computation) and serves
// the remote service kNodeService (core/remote/service.h):
//
//   {"op": "info"}
//     answers {"facts": <HostFacts map, compute/host_stats.h>, "cpus": <the
//     workers a computation gets here at most>}.
//   {"op": "start", "computation": <id>, "library": <file name>,
//    "sha256": <64 hex digits>, "cpus": <0..256, optional>,
//    "client": <task, optional>, "node": <string, optional>,
//    "pulse_interval_ms": <int, optional>}
//     checks the shipped file (a regular file under dest_path/<id>, ELF, its
//     SHA-256 the one given, signed by a --trusted_signer when the node has
//     any: <library>.sig beside it), refuses beyond --serve, outside the
//     service hours and while the node closes, starts --cpus worker
//     processes (at most "cpus" of them if given and not 0; this binary,
//     with --worker_library), each a peer listening on a port of the node's
//     host (tcp) or an abstract unix socket, and answers
//     {"workers": [<uri>, ...], "pulse_interval_ms": <int>} once each has
//     said it listens. A refused start removes dest_path/<id>.
//     "client" is the computation's client task, one handle for two uses:
//     the node sends it, every pulse interval while the computation runs,
//     {"picos.compute": "pulse", "computation": <id>, "node": <"node" as
//      given, else the node's URI>, "facts": <HostFacts map>},
//     and joins it: its end (or its peer lost) starts the zombie period
//     (--zombie_period). The pulse interval is "pulse_interval_ms" kept
//     within --min/--max_pulse_interval, else --pulse_interval (the reply
//     says which was used).
//   {"op": "close", "computation": <id>}
//     ends its workers (SIGTERM) and removes dest_path/<id>; for an id not
//     running (kNotFound) it removes what was shipped for it all the same.
//   {"op": "close_worker" | "restart_worker", "computation": <id>,
//    "index": <int>}
//     ends worker <index> (SIGTERM) and, for restart_worker, starts a fresh
//     one in its place: {"worker": <its uri>}.
//   {"op": "add_worker", "computation": <id>}
//     one more worker (the slot of a closed one again, else a new index),
//     never more than --cpus running: {"worker": <uri>, "index": <int>}.
//     What a client of a shared picos-scheduler does when its share grows
//     (compute/scheduler.h).
//
// A worker runs in its computation's folder (dest_path/<id>, its working
// directory: data files open by relative name), dlopens the library
// (compute/export.h) and serves kWorkerService:
// {"fn": <name>, "arg": <bytes>, "async": <bool, optional>} runs that
// function and gives its result bytes (a CPU job on the worker's one job
// thread; an async one on its I/O threads, any number at once); a name the
// library does not register is refused (kNotFound, with the names it does
// register); {"setup": true, "node": <bytes>, "worker": <bytes>} runs the
// library's setup hooks (RunSetup below, compute/export.h), and until every
// hook it registers ran, jobs are refused (kFailedPrecondition);
// {"loop": true} starts the worker's job loop (compute/protocol.h),
// a task that takes CPU jobs as messages and answers each, one round trip a
// job: the client's path for CPU jobs. The function runs on a thread of the
// worker other than its network's, so a long job neither stops heartbeats nor
// messages. The node prints one line on stdout per
// worker event, for operators and tests:
//   listening <uri>
//   worker started <id> <index> <pid> <uri>
//   worker lost <id> <index> <pid> <how it ended>     (it died: seen at once,
//                                                       it is the node's child)
//   worker closed <id> <index> <pid>
// A worker ends with its node (PR_SET_PDEATHSIG), so a killed node leaves
// no orphan worker.
//
// Everything in a request is network input, checked: the id (1..64 of
// [A-Za-z0-9_-]), the file name (no '/', not "." or ".."), the digest (64
// hex digits); refusals are errors to the client and a log line here.
#include <dlfcn.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <future>
#include <mutex>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "compute/export.h"
#include "compute/job_names_internal.h"
#include "compute/node_daemon.h"
#include "compute/protocol.h"
#include "core/io/process.h"
#include "core/io/thread_pool.h"
#include "core/kernel/log.h"
#include "core/kernel/monitor.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/sync.h"
#include "core/kernel/task.h"
#include "core/remote/files.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "core/remote/service.h"
#include "openssl/sha.h"
#include "transports/default_transports.h"

ABSL_FLAG(std::string, worker_library, "", "(internal) worker mode: the computation library to serve");
ABSL_FLAG(int, worker_parent, 0, "(internal) worker mode: the node's pid");
ABSL_FLAG(int, worker_io_threads, 16, "(internal) worker mode: threads for RunAsync jobs");

namespace picos::compute {
namespace {

// A function of the worker's library: exactly one of the two is set
// (compute/export.h).
struct Function {
  PicosComputeFn fn = nullptr;
  PicosComputeJobFn job_fn = nullptr;
};

// The worker's functions, from its library.
absl::flat_hash_map<std::string, Function>* g_functions = nullptr;
// Jobs run on a thread of their own, never on the scheduler's: a job that
// computes for minutes does not stop its worker answering heartbeats (it
// would look dead to its client) nor receiving messages.
ThreadPool* g_job_thread = nullptr;
// RunAsync jobs ({"async": true}: I/O-bound, any number at once) run on
// threads of their own, so they neither wait for nor delay the CPU job.
ThreadPool* g_io_threads = nullptr;
std::string* g_function_names = nullptr;
// The worker's scheduler: what a job's thread posts its sends to.
Scheduler* g_scheduler = nullptr;
// The computation's folder (its library's, absolute): the worker's working
// directory, a job's Job::dir().
std::string* g_dir = nullptr;
// The URI this worker listens at (its client's name for it).
std::string* g_worker_uri = nullptr;

// The library's setup hooks (compute/export.h) and how far they ran.
// Scheduler thread only (a hook itself runs on the job thread, and its
// outcome is recorded here once it returned).
struct SetupState {
  PicosComputeSetupFn hook[2] = {nullptr, nullptr};  // by stage
  bool done[2] = {false, false};
  bool running = false;
  std::string failed;  // the first failure, if any
  // Every hook the library registers ran and returned 0.
  bool Complete() const {
    return (hook[0] == nullptr || done[0]) && (hook[1] == nullptr || done[1]);
  }
};
SetupState g_setup;
constexpr char kSetupKey[] = "setup";
const char* const kStageName[2] = {"node", "worker"};

void AppendTo(void* ctx, const char* data, size_t n) { static_cast<std::string*>(ctx)->append(data, n); }

// The mailbox of a running job with a context (compute/export.h): its inbox
// task fills it on the scheduler's thread, the job's thread takes from it.
struct JobMailbox {
  struct Message {
    std::string from;  // the sending job's name; "" from the client
    std::string bytes;
    // From another job (SendTo): not counted in the client's credit.
    bool peer = false;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Message> queue;
  bool cancelled = false;
  uint64_t consumed = 0;

  void Cancel() {
    std::lock_guard<std::mutex> l(mu);
    cancelled = true;
    queue.clear();
    cv.notify_all();
  }
};

// Every mailbox of a running job, so that a worker that ends cancels them
// (a job blocked in Receive would otherwise keep its thread, and the pool's
// destructor, waiting forever). Scheduler thread only.
absl::flat_hash_map<JobMailbox*, std::shared_ptr<JobMailbox>>* g_mailboxes = nullptr;

// A job's inbox (compute/protocol.h): messages for its Receive, a cancel,
// or the end of its client-side task (a monitor message), which cancels it.
// Ends when the job does (terminated). Everything here is network input: a
// malformed message is logged and dropped; a client that forwards beyond
// the credit it was given (2 * kJobMailboxLimit queued) loses the excess.
Task<> JobInbox(std::shared_ptr<JobMailbox> box, TaskRef owner) {
  if (owner.valid() && !Monitor(Self(), owner).ok()) box->Cancel();
  for (;;) {
    absl::StatusOr<Value> msg = co_await Receive();
    if (!msg.ok()) co_return;
    if (MonitorStatus::Is(*msg)) {
      box->Cancel();  // its client-side task ended: no one will read its result
      continue;
    }
    const Value* data = msg->is_map() ? msg->Find(kJobDataKey) : nullptr;
    const Value* from = msg->is_map() ? msg->Find("from") : nullptr;
    const bool from_ok = from == nullptr || (from->is_string() && from->as_string().size() <= kJobNameMaxBytes);
    if (data != nullptr && (data->is_bytes() || data->is_string()) && data->as_string().size() <= kJobMessageMaxBytes &&
        from_ok) {
      std::lock_guard<std::mutex> l(box->mu);
      if (box->cancelled) continue;
      if (box->queue.size() >= 2 * kJobMailboxLimit) {
        PICOS_LOG_LIMITED(warn, "worker: a job's mailbox is full ({} messages): message dropped", box->queue.size());
        continue;
      }
      box->queue.push_back({from != nullptr ? from->as_string() : std::string(), data->as_string(), from != nullptr});
      box->cv.notify_one();
      continue;
    }
    if (msg->is_map() && msg->GetOr<bool>(kJobCancelKey, false)) {
      box->Cancel();
      continue;
    }
    PICOS_LOG_LIMITED(warn, "worker: malformed message for a job: {}", msg->DebugString().substr(0, 120));
  }
}

// The computation's job name registry (compute/protocol.h), from the job
// loop's start; null from a client without one. Scheduler thread only.
TaskRef* g_names = nullptr;

// A job's names (compute/export.h): the one it registered and the targets
// it located (their inboxes), kept on the scheduler's thread only.
struct JobNames {
  uint64_t job = 0;
  TaskRef inbox;     // the job's own inbox, what the registry hands out
  std::string name;  // registered, or ""
  absl::flat_hash_map<std::string, TaskRef> located;
};

// What a job with a context calls back (PicosComputeJobOps::ctx).
struct JobCall {
  std::shared_ptr<JobMailbox> box;
  std::shared_ptr<JobNames> names = std::make_shared<JobNames>();
  TaskRef to;   // RunOptions::reply_to, or null
  TaskRef ctl;  // the client's job control task, or null
  uint64_t job = 0;
  int64_t attempt = 0;
  std::string out;
  // Where the job's SendFile goes (compute/protocol.h): the client's URI
  // ("" for none) and the task told of each file.
  std::string files_to;
  TaskRef files_task;
};

// A status from the worker's scheduler to a job's thread, answered exactly
// once: the first Answer counts; destroyed unanswered (the scheduler stopped
// and destroyed the closure or the task that held it), it answers
// kUnavailable, where a promise merely dropped would make get() throw.
// Answered and destroyed on the scheduler's thread.
class SchedulerReply {
 public:
  void Answer(absl::Status s) {
    if (answered_) return;
    answered_ = true;
    promise_.set_value(std::move(s));
  }
  ~SchedulerReply() { Answer(absl::UnavailableError("the worker is stopping")); }
  std::future<absl::Status> Future() { return promise_.get_future(); }

 private:
  std::promise<absl::Status> promise_;
  bool answered_ = false;
};

// From a job's thread: runs `start` on the scheduler's thread with a reply
// that it, or a task it spawns holding the reply, answers; waits for the
// answer up to `limit`, then gives `late`. kUnavailable once the worker
// stops.
absl::Status AwaitOnScheduler(absl::AnyInvocable<void(std::shared_ptr<SchedulerReply>)> start,
                              std::chrono::seconds limit, absl::Status late) {
  auto reply = std::make_shared<SchedulerReply>();
  std::future<absl::Status> result = reply->Future();
  // Only the closure holds the reply, so destroying it unrun answers.
  absl::Status posted = g_scheduler->Post(
      [start = std::move(start), reply = std::move(reply)]() mutable { start(std::move(reply)); });
  if (!posted.ok()) return absl::UnavailableError("the worker is stopping");
  if (result.wait_for(limit) != std::future_status::ready) return late;
  return result.get();
}

// Runs `fn` on the scheduler's thread and waits for its status, from a
// job's thread. kUnavailable once the worker stops.
absl::Status OnScheduler(absl::AnyInvocable<absl::Status()> fn) {
  return AwaitOnScheduler(
      [fn = std::move(fn)](std::shared_ptr<SchedulerReply> reply) mutable { reply->Answer(fn()); },
      std::chrono::seconds(120), absl::UnavailableError("the worker's scheduler does not answer"));
}

int JobSend(void* ctx, const char* data, size_t n) {
  auto* c = static_cast<JobCall*>(ctx);
  if (n > kJobMessageMaxBytes) return static_cast<int>(absl::StatusCode::kInvalidArgument);
  if (!c->to.valid()) return static_cast<int>(absl::StatusCode::kFailedPrecondition);
  const std::string bytes(data, n);
  // Sent from the scheduler's thread so its outcome is known here; while
  // the client's peer queue is full, tried again every millisecond for up
  // to a minute (SendWhenRoom's policy, from a thread that may block).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    absl::Status sent = OnScheduler([to = c->to, job = c->job, bytes]() {
      return to.Send(Value::Map({{"job", job}, {"data", Value::Bytes(bytes)}}));
    });
    if (sent.code() != absl::StatusCode::kResourceExhausted || std::chrono::steady_clock::now() > deadline) {
      if (!sent.ok()) PICOS_LOG_LIMITED(warn, "worker: job {} Send: {}", c->job, sent.ToString());
      return sent.ok() ? 0 : static_cast<int>(sent.code());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

int JobReceiveFrom(void* ctx, int64_t timeout_ns, void* from, void* out, PicosComputeAppend append) {
  auto* c = static_cast<JobCall*>(ctx);
  JobMailbox& box = *c->box;
  JobMailbox::Message msg;
  uint64_t consumed = 0;
  {
    std::unique_lock<std::mutex> l(box.mu);
    auto ready = [&box] { return box.cancelled || !box.queue.empty(); };
    if (timeout_ns < 0) {
      box.cv.wait(l, ready);
    } else if (!box.cv.wait_for(l, std::chrono::nanoseconds(timeout_ns), ready)) {
      return static_cast<int>(absl::StatusCode::kDeadlineExceeded);
    }
    if (box.cancelled) return static_cast<int>(absl::StatusCode::kCancelled);
    msg = std::move(box.queue.front());
    box.queue.pop_front();
    if (!msg.peer) consumed = ++box.consumed;
  }
  if (from != nullptr) append(from, msg.from.data(), msg.from.size());
  append(out, msg.bytes.data(), msg.bytes.size());
  if (consumed != 0 && consumed % kJobAckEvery == 0 && c->ctl.valid()) {
    // Credit back to the client (compute/protocol.h); not waited for.
    TaskRef ctl = c->ctl;
    Value ack = Value::Map({{std::string(kJobCtlKey), c->job},
                            {"attempt", c->attempt},
                            {"consumed", static_cast<int64_t>(consumed)}});
    (void)g_scheduler->Post([ctl = std::move(ctl), ack = std::move(ack)]() mutable {
      absl::Status sent = ctl.Send(std::move(ack));
      if (!sent.ok()) PICOS_LOG_LIMITED(warn, "worker: a job's credit not sent: {}", sent.ToString());
    });
  }
  return 0;
}

int JobReceive(void* ctx, int64_t timeout_ns, void* out, PicosComputeAppend append) {
  return JobReceiveFrom(ctx, timeout_ns, nullptr, out, append);
}

int JobCancelled(void* ctx) {
  JobMailbox& box = *static_cast<JobCall*>(ctx)->box;
  std::lock_guard<std::mutex> l(box.mu);
  return box.cancelled ? 1 : 0;
}

void JobAppendResult(void* ctx, const char* data, size_t n) { static_cast<JobCall*>(ctx)->out.append(data, n); }

// Names (compute/export.h): a job's thread hands each call to a task of the
// scheduler, which asks the computation's registry on the client and sends
// to other jobs' inboxes directly (worker to worker).

// Bounds each registry question and each SendTo's wait for the target's
// worker: only a client or worker that stopped answering reaches it.
constexpr absl::Duration kNamesTimeout = absl::Seconds(60);

// Asks the registry; its answer, or the error it gave (or why it gave none).
Task<absl::StatusOr<Value>> AskNames(Value request) {
  if (g_names == nullptr || !g_names->valid()) {
    co_return absl::FailedPreconditionError("this worker has no job name registry (its client gave none)");
  }
  request.as_map()["reply_to"] = Value(Self());
  absl::Status sent = g_names->Send(std::move(request));
  if (!sent.ok()) co_return absl::UnavailableError(absl::StrCat("the computation's client: ", sent.message()));
  absl::StatusOr<Value> r = co_await Receive(kNamesTimeout);
  if (!r.ok()) {
    if (r.status().code() != absl::StatusCode::kDeadlineExceeded) co_return r.status();
    co_return absl::UnavailableError(absl::StrCat("the computation's name registry did not answer within ",
                                                  absl::FormatDuration(kNamesTimeout)));
  }
  int64_t code = -1;
  std::string message;
  absl::Status read = MessageReader(*r).Get("code", &code).Optional("message", &message).status();
  if (!read.ok() || code < 0 || code > static_cast<int64_t>(absl::StatusCode::kUnauthenticated)) {
    PICOS_LOG_LIMITED(warn, "worker: malformed answer from the name registry: {}", r->DebugString().substr(0, 120));
    co_return absl::DataLossError("malformed answer from the computation's name registry");
  }
  if (code != 0) co_return absl::Status(static_cast<absl::StatusCode>(code), message.substr(0, 1024));
  co_return *std::move(r);
}

Task<absl::Status> RegisterName(std::shared_ptr<JobNames> n, std::string name) {
  if (!n->name.empty()) {
    co_return absl::FailedPreconditionError(absl::StrCat("this job is named \"", n->name, "\" already (one name per job)"));
  }
  // Built before the co_await: g++ 12 refuses string literals in an
  // initializer list within a co_await expression.
  Value request = Value::Map({{std::string(kNamesKey), std::string("register")},
                              {std::string("name"), name},
                              {std::string("job"), n->job},
                              {std::string("inbox"), n->inbox}});
  absl::StatusOr<Value> r = co_await AskNames(std::move(request));
  if (!r.ok()) co_return r.status();
  n->name = std::move(name);
  co_return absl::OkStatus();
}

Task<absl::Status> LocateName(std::shared_ptr<JobNames> n, std::string name) {
  Value request = Value::Map({{std::string(kNamesKey), std::string("locate")}, {std::string("name"), name}});
  absl::StatusOr<Value> r = co_await AskNames(std::move(request));
  if (!r.ok()) co_return r.status();
  TaskRef inbox;
  if (!MessageReader(*r).Get("inbox", &inbox).status().ok() || !inbox.valid()) {
    co_return absl::DataLossError("the name registry's answer names no task");
  }
  if (n->located.size() >= 4096) n->located.clear();  // bounded: located again when needed
  n->located[name] = std::move(inbox);
  co_return absl::OkStatus();
}

// Delivers to the named job's inbox, locating it first unless known. A
// target that ended (kFailedPrecondition) is located once more: its name
// may belong to another job since.
Task<absl::Status> SendToName(std::shared_ptr<JobNames> n, std::string name, std::string data) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!n->located.contains(name)) {
      absl::Status found = co_await LocateName(n, name);
      if (!found.ok()) co_return found;
    }
    TaskRef target = n->located[name];
    Value message = Value::Map({{std::string(kJobDataKey), Value::Bytes(data)}, {std::string("from"), n->name}});
    absl::Status st = co_await target.Deliver(std::move(message), kNamesTimeout);
    if (st.ok()) co_return st;
    n->located.erase(name);
    if (st.code() != absl::StatusCode::kFailedPrecondition) {
      co_return absl::UnavailableError(absl::StrCat("the job named \"", name, "\": ", st.message()));
    }
  }
  co_return absl::NotFoundError(absl::StrCat("the job named \"", name, "\" has ended"));
}

enum class NameOp { kRegister, kLocate, kSendTo };

Task<> RunNameOp(std::shared_ptr<JobNames> n, NameOp op, std::string name, std::string data,
                 std::shared_ptr<SchedulerReply> reply) {
  absl::Status st;
  switch (op) {
    case NameOp::kRegister:
      st = co_await RegisterName(n, std::move(name));
      break;
    case NameOp::kLocate:
      st = co_await LocateName(n, std::move(name));
      break;
    case NameOp::kSendTo:
      st = co_await SendToName(n, std::move(name), std::move(data));
      break;
  }
  reply->Answer(std::move(st));
}

// From a job's thread: runs the op on the scheduler, gives its code and, if
// not 0, appends why to `err`.
int CallNameOp(void* ctx, NameOp op, std::string name, std::string data, void* err, PicosComputeAppend append) {
  auto* c = static_cast<JobCall*>(ctx);
  absl::Status st = internal::ValidJobName(name);
  if (st.ok() && data.size() > kJobMessageMaxBytes) {
    st = absl::InvalidArgumentError(
        absl::StrCat("a message of ", data.size(), " bytes, more than kJobMessageMaxBytes (", kJobMessageMaxBytes, ")"));
  }
  if (st.ok()) {
    st = AwaitOnScheduler(
        [n = c->names, op, name = std::move(name), data = std::move(data)](
            std::shared_ptr<SchedulerReply> reply) mutable {
          ThisScheduler().Spawn(SpawnOptions{.name = "picos.compute.name", .daemon = true}, RunNameOp, std::move(n),
                                op, std::move(name), std::move(data), std::move(reply));
        },
        std::chrono::seconds(180), absl::UnavailableError("the worker's scheduler does not answer"));
  }
  if (st.ok()) return 0;
  const std::string why(st.message());
  append(err, why.data(), why.size());
  return static_cast<int>(st.code());
}

int JobRegister(void* ctx, const char* name, size_t n, void* err, PicosComputeAppend append) {
  return CallNameOp(ctx, NameOp::kRegister, std::string(name, n), "", err, append);
}

int JobLocate(void* ctx, const char* name, size_t n, void* err, PicosComputeAppend append) {
  return CallNameOp(ctx, NameOp::kLocate, std::string(name, n), "", err, append);
}

int JobSendTo(void* ctx, const char* name, size_t n, const char* data, size_t len, void* err,
              PicosComputeAppend append) {
  if (len > kJobMessageMaxBytes) {
    const std::string why = absl::StrCat("a message of ", len, " bytes, more than kJobMessageMaxBytes");
    append(err, why.data(), why.size());
    return static_cast<int>(absl::StatusCode::kInvalidArgument);
  }
  return CallNameOp(ctx, NameOp::kSendTo, std::string(name, n), std::string(data, len), err, append);
}

// Copies `path` to the client's FileReceiver (core/remote/files.h does the
// transfer and the client's checks), then tells the client's files task.
Task<> SendJobFile(std::string uri, std::string path, remote::SendFileOptions options, TaskRef notify, uint64_t job,
                   std::shared_ptr<SchedulerReply> reply) {
  const std::string subdir = options.dir;
  Location at = Location::Peer(uri);
  absl::Status sent = co_await remote::SendFile(std::move(at), path, std::move(options));
  if (sent.ok() && notify.valid()) {
    std::error_code ec;
    const uint64_t size = std::filesystem::file_size(path, ec);
    absl::Status told = notify.Send(Value::Map({{std::string(kJobFileKey), job},
                                                {"name", std::filesystem::path(path).filename().string()},
                                                {"dir", subdir},
                                                {"worker", g_worker_uri != nullptr ? *g_worker_uri : ""},
                                                {"size", static_cast<int64_t>(ec ? 0 : size)}}));
    if (!told.ok()) PICOS_LOG_LIMITED(warn, "worker: job {}: file_received not told: {}", job, told.ToString());
  }
  reply->Answer(std::move(sent));
}

int JobSendFile(void* ctx, const char* path, size_t path_len, const char* subdir, size_t subdir_len, int overwrite,
                void* err, PicosComputeAppend append) {
  auto* c = static_cast<JobCall*>(ctx);
  auto fail = [&](const absl::Status& st) {
    PICOS_LOG_LIMITED(warn, "worker: job {} SendFile: {}", c->job, st.ToString());
    const std::string m(st.message());
    append(err, m.data(), m.size());
    return static_cast<int>(st.code());
  };
  if (c->files_to.empty()) {
    return fail(absl::FailedPreconditionError("the client takes no files (ComputationOptions::client_uri is not set)"));
  }
  if (path == nullptr || path_len == 0 || path_len > 4096 || subdir_len > 4096) {
    return fail(absl::InvalidArgumentError("SendFile: a path of 1..4096 bytes and a subdir of at most 4096"));
  }
  std::string file(path, path_len);
  if (file.front() != '/') file = absl::StrCat(*g_dir, "/", file);
  remote::SendFileOptions o;
  o.dir = std::string(subdir == nullptr ? "" : std::string(subdir, subdir_len));
  o.overwrite = overwrite != 0;
  o.timeout = absl::Seconds(60);
  // SendFile bounds each of its steps; the hour only guards against a
  // worker that stops answering altogether.
  absl::Status sent = AwaitOnScheduler(
      [uri = c->files_to, file, o, notify = c->files_task, job = c->job](
          std::shared_ptr<SchedulerReply> reply) mutable {
        ThisScheduler().Spawn(SendJobFile, uri, file, o, notify, job, std::move(reply));
      },
      std::chrono::hours(1), absl::DeadlineExceededError("SendFile: no answer from the worker's scheduler"));
  return sent.ok() ? 0 : fail(sent);
}

absl::Status AdmitJob(const Value& arg) {
  if (arg.is_map() && arg.GetOr<bool>(kJobLoopKey, false)) return absl::OkStatus();
  if (arg.is_map() && arg.Find(kSetupKey) != nullptr) return absl::OkStatus();  // RunSetup checks it
  if (!g_setup.Complete()) {
    PICOS_LOG_LIMITED(warn, "worker: a job before the setup completed is refused");
    return absl::FailedPreconditionError(
        g_setup.failed.empty() ? std::string("this worker's setup has not run yet")
                               : absl::StrCat("this worker's setup failed: ", g_setup.failed));
  }
  std::string fn, bytes;
  bool async = false;
  absl::Status read = MessageReader(arg).Get("fn", &fn).Get("arg", &bytes).Optional("async", &async).status();
  if (!read.ok()) return absl::InvalidArgumentError(absl::StrCat("malformed job: ", read.message()));
  if (!g_functions->contains(fn)) {
    PICOS_LOG_LIMITED(warn, "worker: job for unknown function {}", fn.substr(0, 64));
    return absl::NotFoundError(absl::StrCat("no function '", fn.substr(0, 64),
                                            "' in the computation library (it registers: ", *g_function_names, ")"));
  }
  return absl::OkStatus();
}

// A job that ended frees its name (compute/protocol.h), before its result
// goes out (the same connection: the registry hears of it first).
void ForgetName(JobNames& n) {
  n.located.clear();
  if (n.name.empty() || g_names == nullptr || !g_names->valid()) return;
  absl::Status sent =
      g_names->Send(Value::Map({{std::string(kNamesKey), "unregister"}, {"name", n.name}, {"job", n.job}}));
  if (!sent.ok()) PICOS_LOG_LIMITED(warn, "worker: job {} name not freed: {}", n.job, sent.ToString());
  n.name.clear();
}

// How long a job ran on its thread, in microseconds; -1 until it ends.
// Shared with the job's closure, which may outlive a terminated task.
using RunTime = std::shared_ptr<std::atomic<int64_t>>;

// Microseconds since `t0`.
int64_t MicrosSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
}

// Runs a job ({"fn", "arg", ...}); with `run_us`, sets how long the function ran.
Task<absl::StatusOr<Value>> RunJob(Value arg, RunTime run_us = nullptr) {
  std::string fn, bytes;
  bool async = false;
  uint64_t job_id = 0;
  int64_t attempt = 0;
  TaskRef to, ctl, owner;
  PICOS_CO_RETURN_IF_ERROR(MessageReader(arg)
                               .Get("fn", &fn)
                               .Get("arg", &bytes)
                               .Optional("async", &async)
                               .Optional("job", &job_id)
                               .Optional("attempt", &attempt)
                               .Optional("to", &to)
                               .Optional("ctl", &ctl)
                               .Optional("owner", &owner)
                               .status());
  std::string files_to;
  TaskRef files_task;
  PICOS_CO_RETURN_IF_ERROR(
      MessageReader(arg).Optional("files_to", &files_to).Optional("files_task", &files_task).status());
  if (files_to.size() > 1024) co_return absl::InvalidArgumentError("malformed job: files_to beyond 1024 bytes");
  if (!owner.valid() && arg.is_map()) (void)MessageReader(arg).Optional("reply_to", &owner).status();
  if (!ctl.valid()) ctl = owner;  // a CPU job's driver takes its control messages
  auto it = g_functions->find(fn);
  if (it == g_functions->end()) co_return absl::NotFoundError(absl::StrCat("no function ", fn));
  ThreadPool* pool = async ? g_io_threads : g_job_thread;
  if (it->second.fn != nullptr) {
    PicosComputeFn call = it->second.fn;
    auto job = [call, fn, run_us, bytes = std::move(bytes)]() -> absl::StatusOr<std::string> {
      std::string out;
      const auto t0 = std::chrono::steady_clock::now();
      const int rc = call(bytes.data(), bytes.size(), &out, &AppendTo);
      if (run_us != nullptr) run_us->store(MicrosSince(t0));
      if (rc != 0) return absl::AbortedError(absl::StrCat(fn, ": ", out));
      return out;
    };
    absl::StatusOr<std::string> out = co_await pool->Run(job);
    if (!out.ok()) co_return out.status();
    co_return Value::Bytes(*std::move(out));
  }
  // A job with a context (compute/export.h): its mailbox, its inbox task,
  // and the client told where to forward its messages.
  auto call = std::make_shared<JobCall>();
  call->box = std::make_shared<JobMailbox>();
  call->to = to;
  call->ctl = ctl;
  call->job = job_id;
  call->attempt = attempt;
  call->files_to = std::move(files_to);
  call->files_task = files_task;
  (*g_mailboxes)[call->box.get()] = call->box;
  TaskRef inbox = ThisScheduler().Spawn(SpawnOptions{.name = "picos.compute.inbox", .daemon = true}, JobInbox,
                                        call->box, owner);
  call->names->job = job_id;
  call->names->inbox = inbox;
  if (ctl.valid()) {
    absl::Status told = ctl.Send(Value::Map({{std::string(kJobCtlKey), job_id}, {"attempt", attempt}, {"inbox", inbox}}));
    if (!told.ok()) PICOS_LOG_LIMITED(warn, "worker: job {} cannot tell its client it started: {}", job_id, told.ToString());
  }
  PicosComputeJobFn job_fn = it->second.job_fn;
  auto job = [job_fn, fn, call, run_us, bytes = std::move(bytes)]() -> absl::StatusOr<std::string> {
    PicosComputeJobOps ops{call.get(),      bytes.data(),  bytes.size(),     call->job,   &JobSend,
                           &JobReceive,     &JobCancelled, &JobAppendResult, &JobRegister, &JobLocate,
                           &JobSendTo,      &JobReceiveFrom, g_dir->data(),  g_dir->size(), &JobSendFile};
    const auto t0 = std::chrono::steady_clock::now();
    const int rc = job_fn(&ops);
    if (run_us != nullptr) run_us->store(MicrosSince(t0));
    if (rc != 0) return absl::AbortedError(absl::StrCat(fn, ": ", call->out));
    return std::move(call->out);
  };
  absl::StatusOr<std::string> out = co_await pool->Run(job);
  // The job has returned (or this task was terminated: the mailbox is
  // cancelled so the job, still running, sees it).
  call->box->Cancel();
  (void)inbox.Terminate();
  g_mailboxes->erase(call->box.get());
  ForgetName(*call->names);
  if (!out.ok()) co_return out.status();
  co_return Value::Bytes(*std::move(out));
}

// The answer of the job loop to job `id`: its result, or its error, and
// how long it ran (`run_us`, if it did).
void Answer(int64_t id, const TaskRef& reply_to, absl::StatusOr<Value> r, int64_t run_us = -1) {
  Value reply = r.ok() ? Value::Map({{std::string(kJobReplyKey), id}, {"value", *std::move(r)}})
                       : Value::Map({{std::string(kJobReplyKey), id},
                                     {"code", static_cast<int64_t>(r.status().code())},
                                     {"message", std::string(r.status().message())}});
  if (run_us >= 0) reply.as_map()[kJobRunTimeKey] = Value(run_us);
  absl::Status sent = reply_to.Send(std::move(reply));
  if (!sent.ok()) PICOS_LOG_LIMITED(warn, "worker: the result of job {} not sent: {}", id, sent.ToString());
}

// Jobs of the job loop handed to the job thread and not yet answered.
struct LoopJobs {
  int in_flight = 0;
  // Set (and replaced) whenever one is answered.
  std::shared_ptr<Event> change = std::make_shared<Event>();
};

// At most this many of a loop's jobs are handed to the job thread ahead of
// their answers (a client sends 1 + cpu_jobs_ahead at most; a peer that
// sends more waits in the loop's mailbox).
constexpr int kLoopJobsAhead = 16;

// Runs one bytes-only job of the loop (on the job thread, after those
// handed over before it) and answers it.
Task<> RunLoopJob(std::shared_ptr<LoopJobs> jobs, int64_t id, TaskRef reply_to, Value msg) {
  RunTime run_us = std::make_shared<std::atomic<int64_t>>(-1);
  absl::StatusOr<Value> r = co_await RunJob(std::move(msg), run_us);
  Answer(id, reply_to, std::move(r), run_us->load());
  --jobs->in_flight;
  std::exchange(jobs->change, std::make_shared<Event>())->Set();
}

// The job loop (compute/protocol.h): CPU jobs as messages, one at a time in
// the order they arrive, each answered to its reply_to. A message without a
// usable id and reply_to is logged and dropped (there is no one to answer);
// any other refusal (malformed, unknown function) is its answer, as for a
// service call.
//
// A bytes-only function's job is handed to the job thread (one thread, so
// still one job at a time, in order) without waiting for the one before it
// to end: when the client sends jobs ahead (cpu_jobs_ahead) the thread runs
// them back to back without sleeping in between, and their answers leave
// together, one write for several (issue 12: trivial jobs/s). A job with a
// context first waits until every job before it has been answered, so its
// "started" message to the client is true when sent.
Task<absl::StatusOr<Value>> JobLoop() {
  auto jobs = std::make_shared<LoopJobs>();
  for (;;) {
    absl::StatusOr<Value> msg = co_await Receive();
    if (!msg.ok()) co_return msg.status();  // terminated: the computation closes
    int64_t id = 0;
    TaskRef reply_to;
    absl::Status read = MessageReader(*msg).Get("id", &id).Get("reply_to", &reply_to).status();
    if (!read.ok()) {
      PICOS_LOG_LIMITED(warn, "worker: malformed job message: {}", read.ToString());
      continue;
    }
    const absl::Status admitted = AdmitJob(*msg);
    if (!admitted.ok()) {
      Answer(id, reply_to, admitted);
      continue;
    }
    msg->as_map().erase("async");  // the loop runs CPU jobs only
    // AdmitJob found "fn" among the library's functions.
    const bool bytes_only = g_functions->find(msg->GetOr<std::string>("fn", ""))->second.fn != nullptr;
    while (jobs->in_flight >= (bytes_only ? kLoopJobsAhead : 1)) {
      std::shared_ptr<Event> e = jobs->change;
      absl::Status waited = co_await e->Wait();
      if (!waited.ok()) co_return waited;
    }
    if (bytes_only) {
      ++jobs->in_flight;
      ThisScheduler().Spawn(SpawnOptions{.name = "picos.compute.loopjob", .daemon = true}, RunLoopJob, jobs, id,
                            std::move(reply_to), *std::move(msg));
      continue;
    }
    RunTime run_us = std::make_shared<std::atomic<int64_t>>(-1);
    absl::StatusOr<Value> r = co_await RunJob(*std::move(msg), run_us);
    Answer(id, reply_to, std::move(r), run_us->load());
  }
}

// Runs the setup hooks a request names ({"setup": true, "node": <bytes>,
// "worker": <bytes>}, either or both; compute/export.h), node first, each
// at most once, on the job thread. Network input: a malformed request, a
// stage that ran already (kAlreadyExists), the worker stage before the
// node's, or a setup while another runs or after one failed
// (kFailedPrecondition) is refused. A hook that fails gives kAborted
// "<stage> setup failed: <its message>" and leaves the worker refusing
// jobs. Answers {"node": <bool ran a hook>, "worker": <bool>}.
Task<absl::StatusOr<Value>> RunSetup(Value arg) {
  bool flag = false;
  std::string args[2];
  bool given[2] = {false, false};
  absl::Status read = MessageReader(arg).Get(kSetupKey, &flag).status();
  for (int stage = 0; stage < 2 && read.ok(); ++stage) {
    const Value* v = arg.Find(kStageName[stage]);
    if (v == nullptr || v->is_null()) continue;
    if ((!v->is_bytes() && !v->is_string()) || v->as_string().size() > kJobMessageMaxBytes) {
      read = absl::InvalidArgumentError(absl::StrCat("\"", kStageName[stage], "\" must be bytes of at most ",
                                                     kJobMessageMaxBytes));
      break;
    }
    given[stage] = true;
    args[stage] = v->as_string();
  }
  if (!read.ok() || !flag) {
    PICOS_LOG_LIMITED(warn, "worker: malformed setup request: {}", read.ToString());
    co_return absl::InvalidArgumentError(absl::StrCat("malformed setup request: ", read.message()));
  }
  if (g_setup.running) co_return absl::FailedPreconditionError("a setup is running in this worker");
  if (!g_setup.failed.empty()) {
    co_return absl::FailedPreconditionError(absl::StrCat("this worker's setup failed: ", g_setup.failed));
  }
  for (int stage = 0; stage < 2; ++stage) {
    if (given[stage] && g_setup.done[stage]) {
      co_return absl::AlreadyExistsError(absl::StrCat("the ", kStageName[stage], " setup ran already in this worker"));
    }
  }
  if (given[1] && !given[0] && g_setup.hook[0] != nullptr && !g_setup.done[0]) {
    co_return absl::FailedPreconditionError("the worker setup needs the node setup first");
  }
  g_setup.running = true;
  // Cleared however this ends, also when the task is terminated mid-hook
  // (its frame is destroyed; the hook still finishes on the job thread).
  struct NotRunning {
    ~NotRunning() { g_setup.running = false; }
  } not_running;
  Value::MapType ran;
  for (int stage = 0; stage < 2; ++stage) {
    if (!given[stage]) continue;
    PicosComputeSetupFn hook = g_setup.hook[stage];
    ran[kStageName[stage]] = Value(hook != nullptr);
    if (hook == nullptr) {
      g_setup.done[stage] = true;
      continue;
    }
    auto call = [hook, a = args[stage]]() -> absl::StatusOr<std::string> {
      std::string out;
      const int rc = hook(a.data(), a.size(), &out, &AppendTo);
      if (rc != 0) return absl::AbortedError(out.substr(0, 4096));
      return out;
    };
    absl::StatusOr<std::string> out = co_await g_job_thread->Run(call);
    if (!out.ok()) {
      g_setup.failed = absl::StrCat(kStageName[stage], " setup failed: ", out.status().message());
      PICOS_LOG(warn, "worker: {}", g_setup.failed);
      co_return absl::AbortedError(g_setup.failed);
    }
    g_setup.done[stage] = true;
  }
  co_return Value(std::move(ran));
}

Task<absl::StatusOr<Value>> ServeJob(Value arg) {
  if (arg.is_map() && arg.GetOr<bool>(kJobLoopKey, false)) {
    // The computation's name registry comes with the loop (one computation
    // per worker: the latest start's is the one).
    TaskRef names;
    if (MessageReader(arg).Optional(kNamesKey, &names).status().ok() && names.valid()) *g_names = names;
    co_return co_await JobLoop();
  }
  if (arg.is_map() && arg.Find(kSetupKey) != nullptr) co_return co_await RunSetup(std::move(arg));
  co_return co_await RunJob(std::move(arg));
}

Task<absl::Status> WorkerMain() {
  // Ends with its node, whatever kills the node.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != absl::GetFlag(FLAGS_worker_parent)) co_return absl::AbortedError("the node is gone");
  const std::string library = absl::GetFlag(FLAGS_worker_library);
  // A library this worker cannot serve: the reason on stdout too, where its
  // node reads the "listening" line, so the client's Schedule error says it.
  auto refuse = [](absl::Status st) {
    std::printf("refused: %s\n", std::string(st.message()).c_str());
    std::fflush(stdout);
    return st;
  };
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) co_return refuse(absl::InvalidArgumentError(absl::StrCat("dlopen ", library, ": ", dlerror())));
  auto abi_fn = reinterpret_cast<PicosComputeAbiFn>(dlsym(handle, kComputeAbiSymbol));
  const int abi = abi_fn == nullptr ? 1 : abi_fn();
  if (abi < kComputeAbiMinVersion || abi > kComputeAbiVersion) {
    co_return refuse(absl::FailedPreconditionError(absl::StrCat(
        std::filesystem::path(library).filename().string(), " was built against picos compute ABI ", abi,
        "; this worker runs ABI ", kComputeAbiMinVersion, " to ", kComputeAbiVersion,
        ": rebuild it with this picos's compute/export.h")));
  }
  // Setup hooks (ABI 3): the symbol is there only in a library that
  // registers one.
  if (auto setup_fn = abi >= 3 ? reinterpret_cast<PicosComputeSetupTableFn>(dlsym(handle, kComputeSetupSymbol))
                               : nullptr;
      setup_fn != nullptr) {
    g_setup.hook[kComputeSetupNode] = setup_fn(kComputeSetupNode);
    g_setup.hook[kComputeSetupWorker] = setup_fn(kComputeSetupWorker);
  }
  std::error_code dir_ec;
  std::string dir = std::filesystem::absolute(std::filesystem::path(library).parent_path(), dir_ec).string();
  g_dir = &dir;
  auto table_fn = reinterpret_cast<PicosComputeTableFn>(dlsym(handle, kComputeTableSymbol));
  if (table_fn == nullptr) {
    co_return refuse(absl::InvalidArgumentError(
        absl::StrCat(library, " has no ", kComputeTableSymbol, ": not built with picos_computation?")));
  }
  size_t count = 0;
  const PicosComputeEntry* table = table_fn(&count);
  absl::flat_hash_map<std::string, Function> functions;
  std::vector<std::string> names;
  for (size_t i = 0; i < count && i < kMaxComputeFunctions; ++i) {
    if (table[i].name == nullptr || (table[i].fn == nullptr) == (table[i].job_fn == nullptr)) continue;
    functions.emplace(table[i].name, Function{table[i].fn, table[i].job_fn});
    names.emplace_back(table[i].name);
  }
  std::string joined = absl::StrJoin(names, ", ");
  g_functions = &functions;
  g_function_names = &joined;
  ThreadPool::Options po;
  po.threads = 1;
  ThreadPool job_thread(po);
  g_job_thread = &job_thread;
  ThreadPool::Options io;
  io.threads = std::clamp(absl::GetFlag(FLAGS_worker_io_threads), 1, 256);
  io.queue_limit = 4096;
  ThreadPool io_threads(io);
  g_io_threads = &io_threads;
  g_scheduler = &ThisScheduler();
  // Destroyed before the pools: a job still waiting in Receive is cancelled
  // so that their destructors, which wait for running jobs, can end.
  struct CancelAll {
    absl::flat_hash_map<JobMailbox*, std::shared_ptr<JobMailbox>> boxes;
    ~CancelAll() {
      for (auto& [p, box] : boxes) box->Cancel();
    }
  } mailboxes;
  g_mailboxes = &mailboxes.boxes;
  TaskRef registry;
  g_names = &registry;
  const TransportRegistry& t = transports::DefaultTransports();
  remote::NodeFlagDefaults defaults;
  defaults.name = "picos-worker";
  PICOS_CO_ASSIGN_OR_RETURN(remote::NodeConfig config, remote::NodeConfigFromFlags(t, defaults));
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<remote::Node> node,
                            co_await remote::Node::Start(t, std::move(config.options)));
  remote::ServiceOptions so;
  so.admit = AdmitJob;
  PICOS_CO_ASSIGN_OR_RETURN(remote::RegisteredService svc, remote::RegisterService(kWorkerService, ServeJob, so));
  std::string worker_uri = node->uris()[0];
  g_worker_uri = &worker_uri;
  std::printf("listening %s\n", node->uris()[0].c_str());
  std::fflush(stdout);
  for (;;) {
    absl::StatusOr<Value> msg = co_await Receive();
    if (!msg.ok()) break;
  }
  co_return absl::OkStatus();
}

}  // namespace
}  // namespace picos::compute

int main(int argc, char** argv) {
  // --config and repeated --trusted_signer (compute/node_daemon.h).
  std::vector<std::string> args = picos::compute::PrepareNodeCommandLine(argc, argv);
  std::vector<char*> argp;
  for (std::string& a : args) argp.push_back(a.data());
  argp.push_back(nullptr);
  picos::remote::ParseCommandLine(static_cast<int>(args.size()), argp.data());
  if (!picos::compute::ApplyLogFormatFlag()) return 2;
  if (!absl::GetFlag(FLAGS_worker_library).empty()) {
    return picos::RunMain("picos-node worker", picos::compute::WorkerMain);
  }
  return picos::compute::NodeDaemonMain();
}
