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
//     ends its workers (SIGTERM) and removes dest_path/<id>.
//   {"op": "close_worker" | "restart_worker", "computation": <id>,
//    "index": <int>}
//     ends worker <index> (SIGTERM) and, for restart_worker, starts a fresh
//     one in its place: {"worker": <its uri>}.
//
// A worker dlopens the library (compute/export.h) and serves kWorkerService:
// {"fn": <name>, "arg": <bytes>, "async": <bool, optional>} runs that
// function and gives its result bytes (a CPU job on the worker's one job
// thread; an async one on its I/O threads, any number at once); a name the
// library does not register is refused (kNotFound, with the names it does
// register); {"loop": true} starts the worker's job loop (compute/protocol.h),
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
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
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
#include "compute/node_daemon.h"
#include "compute/protocol.h"
#include "core/io/process.h"
#include "core/io/thread_pool.h"
#include "core/kernel/log.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
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

// The worker's functions, from its library.
absl::flat_hash_map<std::string, PicosComputeFn>* g_functions = nullptr;
// Jobs run on a thread of their own, never on the scheduler's: a job that
// computes for minutes does not stop its worker answering heartbeats (it
// would look dead to its client) nor receiving messages.
ThreadPool* g_job_thread = nullptr;
// RunAsync jobs ({"async": true}: I/O-bound, any number at once) run on
// threads of their own, so they neither wait for nor delay the CPU job.
ThreadPool* g_io_threads = nullptr;
std::string* g_function_names = nullptr;

void AppendTo(void* ctx, const char* data, size_t n) { static_cast<std::string*>(ctx)->append(data, n); }

absl::Status AdmitJob(const Value& arg) {
  if (arg.is_map() && arg.GetOr<bool>(kJobLoopKey, false)) return absl::OkStatus();
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

Task<absl::StatusOr<Value>> RunJob(Value arg) {
  std::string fn, bytes;
  bool async = false;
  PICOS_CO_RETURN_IF_ERROR(MessageReader(arg).Get("fn", &fn).Get("arg", &bytes).Optional("async", &async).status());
  auto it = g_functions->find(fn);
  if (it == g_functions->end()) co_return absl::NotFoundError(absl::StrCat("no function ", fn));
  PicosComputeFn call = it->second;
  auto job = [call, fn, bytes = std::move(bytes)]() -> absl::StatusOr<std::string> {
    std::string out;
    const int rc = call(bytes.data(), bytes.size(), &out, &AppendTo);
    if (rc != 0) return absl::AbortedError(absl::StrCat(fn, ": ", out));
    return out;
  };
  ThreadPool* pool = async ? g_io_threads : g_job_thread;
  absl::StatusOr<std::string> out = co_await pool->Run(job);
  if (!out.ok()) co_return out.status();
  co_return Value::Bytes(*std::move(out));
}

// The job loop (compute/protocol.h): CPU jobs as messages, one at a time in
// the order they arrive (later ones wait in its mailbox), each answered to
// its reply_to. A message without a usable id and reply_to is logged and
// dropped (there is no one to answer); any other refusal (malformed, unknown
// function) is its answer, as for a service call.
Task<absl::StatusOr<Value>> JobLoop() {
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
    absl::StatusOr<Value> r = absl::UnknownError("not run");
    const absl::Status admitted = AdmitJob(*msg);
    if (admitted.ok()) {
      msg->as_map().erase("async");  // the loop runs CPU jobs only
      r = co_await RunJob(*std::move(msg));
    } else {
      r = admitted;
    }
    Value reply = r.ok() ? Value::Map({{std::string(kJobReplyKey), id}, {"value", *std::move(r)}})
                         : Value::Map({{std::string(kJobReplyKey), id},
                                       {"code", static_cast<int64_t>(r.status().code())},
                                       {"message", std::string(r.status().message())}});
    absl::Status sent = reply_to.Send(std::move(reply));
    if (!sent.ok()) PICOS_LOG_LIMITED(warn, "worker: the result of job {} not sent: {}", id, sent.ToString());
  }
}

Task<absl::StatusOr<Value>> ServeJob(Value arg) {
  if (arg.is_map() && arg.GetOr<bool>(kJobLoopKey, false)) co_return co_await JobLoop();
  co_return co_await RunJob(std::move(arg));
}

Task<absl::Status> WorkerMain() {
  // Ends with its node, whatever kills the node.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != absl::GetFlag(FLAGS_worker_parent)) co_return absl::AbortedError("the node is gone");
  const std::string library = absl::GetFlag(FLAGS_worker_library);
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) co_return absl::InvalidArgumentError(absl::StrCat("dlopen ", library, ": ", dlerror()));
  auto table_fn = reinterpret_cast<PicosComputeTableFn>(dlsym(handle, kComputeTableSymbol));
  if (table_fn == nullptr) {
    co_return absl::InvalidArgumentError(absl::StrCat(library, " has no ", kComputeTableSymbol,
                                                      ": not built with picos_computation?"));
  }
  size_t count = 0;
  const PicosComputeEntry* table = table_fn(&count);
  absl::flat_hash_map<std::string, PicosComputeFn> functions;
  std::vector<std::string> names;
  for (size_t i = 0; i < count && i < kMaxComputeFunctions; ++i) {
    if (table[i].name == nullptr || table[i].fn == nullptr) continue;
    functions.emplace(table[i].name, table[i].fn);
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
  const TransportRegistry& t = transports::DefaultTransports();
  remote::NodeFlagDefaults defaults;
  defaults.name = "picos-worker";
  PICOS_CO_ASSIGN_OR_RETURN(remote::NodeConfig config, remote::NodeConfigFromFlags(t, defaults));
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<remote::Node> node,
                            co_await remote::Node::Start(t, std::move(config.options)));
  remote::ServiceOptions so;
  so.admit = AdmitJob;
  PICOS_CO_ASSIGN_OR_RETURN(remote::RegisteredService svc, remote::RegisterService(kWorkerService, ServeJob, so));
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
