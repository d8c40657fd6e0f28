// pycos dispycos_kbd_int.py in C++: an optimiser runs on every worker until
// the user interrupts the client (Ctrl-C, SIGINT; or SIGTERM, or --run_for
// passing); the client then closes the computation with terminate, and
// each optimiser, cancelled, still sends its best value.
//
// As in pycos, where KeyboardInterrupt is thrown into each running job,
// which catches it and sends its best value: each worker runs one job
// (RunAt) registered with PICOS_COMPUTE_JOB, whose reply_to is a local task
// of the client (its optimiser's collector). The job reports progress every
// --report_ms; Close({.terminate = true}) cancels it, its wait
// (Job::Receive) gives kCancelled, and it sends its best point as a last
// message, which the collector gets before the job's end (its Monitor
// message, then Join: kCancelled).
//
//   picos-node --cpus=2 --listen=tcp://127.0.0.1:9706 --dest_path=/tmp/node &
//   PICOS_REMOTE_SECRET=... dispycos_kbd_int --nodes=tcp://127.0.0.1:9706   # then Ctrl-C
//
// Output, for people and for its smoke test (examples/dispycos_kbd_int_smoke_test.sh):
//   dispycos_kbd_int: <w> workers optimising; interrupt (Ctrl-C) to stop
//   dispycos_kbd_int: <worker> progress: <f> at (<x>, <y>) in pid <pid>
//   dispycos_kbd_int: interrupted by <SIGINT|SIGTERM|--run_for>: closing with terminate
//   dispycos_kbd_int: <worker> last value: <f> at (<x>, <y>) in pid <pid>
//   dispycos_kbd_int: <worker> job ended: <status>     (kCancelled: terminated)
//   dispycos_kbd_int: <n> last values received, <m> terminated (<k> job_terminated events)
//   dispycos_kbd_int: best <f> at (<x>, <y>) from <worker>
// Exit status 1 when something failed, 2 for a bad flag.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "compute/computation.h"
#include "core/cli/flags.h"
#include "core/kernel/monitor.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "examples/dispycos_client_lib.h"

ABSL_FLAG(std::vector<std::string>, nodes, {}, "the picos-node URIs to run the optimisers on (required)");
ABSL_FLAG(int, report_ms, 1000, "how often each optimiser reports its progress");
ABSL_FLAG(int, run_for, 0, "seconds after which the client interrupts itself; 0: only on SIGINT or SIGTERM");
ABSL_FLAG(std::string, library, "examples/libdispycos_kbd_int_compute.so",
          "the computation library (picos_computation dispycos_kbd_int_compute)");

namespace {

using picos::Task;
using picos::TaskRef;
using picos::Value;

constexpr char kSignal[] = "signal";
// Only a hang reaches it (an optimiser reports at most every 60 s).
constexpr absl::Duration kLong = absl::Minutes(2);
// Messages one optimiser's collector takes at most (bounds its loop).
constexpr int kMaxMessages = 10'000'000;

// What the optimisers found, shared by their tasks (one scheduler: no lock).
struct Results {
  double best = std::numeric_limits<double>::infinity();
  std::string best_at, best_worker;
  int last_values = 0, terminated = 0;
  bool failed = false;  // a job failed otherwise than by the close
};

// One worker's optimiser: its job on `worker`, and this task as the job's
// reply_to, showing its progress and keeping its last value, until the job
// ends (its monitor message). `c` outlives it: Client joins every optimiser
// before the Computation goes.
Task<void> Optimiser(picos::compute::Computation* c, std::string worker, uint32_t seed,
                     std::shared_ptr<Results> results) {
  picos::compute::RunOptions ro;
  ro.where = worker;
  ro.reply_to = picos::Self();
  absl::StatusOr<TaskRef> job =
      co_await c->Run("optimize", absl::StrCat(seed, " ", absl::GetFlag(FLAGS_report_ms)), ro);
  absl::Status watched = job.ok() ? picos::Monitor(picos::Self(), *job) : job.status();
  for (int n = 0; watched.ok() && n < kMaxMessages; ++n) {
    absl::StatusOr<Value> msg = co_await picos::Receive(kLong);
    if (!msg.ok()) {
      watched = msg.status();
      break;
    }
    if (picos::MonitorStatus::Is(*msg)) break;  // the job ended: after its last message
    const std::string data = msg->GetOr<std::string>("data", "");
    char kind[16] = {0};
    double f = 0, x = 0, y = 0;
    int pid = 0;
    char tail = 0;
    if (data.size() > 160 ||
        std::sscanf(data.c_str(), "%15s %lf %lf %lf %d%c", kind, &f, &x, &y, &pid, &tail) != 5) {
      std::printf("dispycos_kbd_int: %s sent a malformed message\n", worker.c_str());
      results->failed = true;
      continue;
    }
    const bool last = std::string(kind) == "last";
    std::printf("dispycos_kbd_int: %s %s: %.6f at (%.4f, %.4f) in pid %d\n", worker.c_str(),
                last ? "last value" : "progress", f, x, y, pid);
    if (!last) continue;
    ++results->last_values;
    if (f < results->best) {
      results->best = f;
      char at[96];
      std::snprintf(at, sizeof at, "(%.4f, %.4f)", x, y);
      results->best_at = at;
      results->best_worker = worker;
    }
  }
  absl::StatusOr<Value> ended = absl::UnknownError("not joined");
  if (watched.ok()) {
    ended = co_await job->Join(kLong);
  } else {
    ended = watched;
  }
  const absl::Status why = ended.ok() ? absl::OkStatus() : ended.status();
  // kCancelled: the close terminated the job, as it should.
  if (why.code() == absl::StatusCode::kCancelled) {
    ++results->terminated;
  } else {
    results->failed = true;
  }
  std::printf("dispycos_kbd_int: %s job ended: %s\n", worker.c_str(), why.ToString().c_str());
}

// Takes SIGINT and SIGTERM (blocked in every thread by main) and hands
// each to the client's task as a message. Lives as long as the process.
void SignalThread(TaskRef client) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) return;
    (void)client.Send(Value::Map({{kSignal, sig}}));
  }
}

Task<absl::Status> Client() {
  std::thread(SignalThread, picos::Self()).detach();
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::examples::StartClientNode("dispycos_kbd_int"));
  picos::compute::ComputationOptions o;
  o.library = absl::GetFlag(FLAGS_library);
  o.status_task = picos::Self();  // events and signals both come here
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::compute::Computation> computation,
                            co_await picos::examples::ScheduleComputation(o, absl::GetFlag(FLAGS_nodes)));

  auto results = std::make_shared<Results>();
  std::vector<TaskRef> optimisers;
  std::mt19937 random(std::random_device{}());
  for (const picos::compute::WorkerInfo& w : computation->workers()) {
    optimisers.push_back(picos::ThisScheduler().Spawn(Optimiser, computation.get(), w.uri,
                                                      static_cast<uint32_t>(random()), results));
  }
  std::printf("dispycos_kbd_int: %zu workers optimising; interrupt (Ctrl-C) to stop\n", optimisers.size());
  std::fflush(stdout);

  // Wait for the interrupt (the status events that arrive meanwhile are
  // only counted below).
  int job_terminated = 0;
  const int run_for = absl::GetFlag(FLAGS_run_for);
  const absl::Time until = run_for > 0 ? absl::Now() + absl::Seconds(run_for) : absl::InfiniteFuture();
  std::string why = "--run_for";
  for (;;) {
    const absl::Duration left = until == absl::InfiniteFuture() ? absl::InfiniteDuration() : until - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    absl::StatusOr<Value> msg = absl::CancelledError();
    if (left == absl::InfiniteDuration()) {
      msg = co_await picos::Receive();
    } else {
      msg = co_await picos::Receive(left);
    }
    if (!msg.ok()) break;  // --run_for passed
    if ((*msg)[kSignal].is_int()) {
      why = (*msg)[kSignal].as_int() == SIGINT ? "SIGINT" : "SIGTERM";
      break;
    }
    if (msg->GetOr<std::string>("type", "") == "job_terminated") ++job_terminated;
  }
  std::printf("dispycos_kbd_int: interrupted by %s: closing with terminate\n", why.c_str());
  std::fflush(stdout);
  picos::compute::CloseOptions close;
  close.terminate = true;
  absl::Status closed = co_await computation->Close(close);
  for (const TaskRef& opt : optimisers) (void)co_await opt.Join(kLong);

  // The close's events are in the mailbox already (sent as they happened):
  // count the terminations up to computation_closed. Bounded by count.
  for (int n = 0; n < 100'000; ++n) {
    absl::StatusOr<Value> msg = co_await picos::Receive(kLong);
    if (!msg.ok()) break;
    const std::string type = msg->GetOr<std::string>("type", "");
    if (type == "job_terminated") ++job_terminated;
    if (type == "computation_closed") break;
  }
  std::printf("dispycos_kbd_int: %d last values received, %d terminated (%d job_terminated events)\n",
              results->last_values, results->terminated, job_terminated);
  if (results->last_values > 0) {
    std::printf("dispycos_kbd_int: best %.6f at %s from %s\n", results->best, results->best_at.c_str(),
                results->best_worker.c_str());
  } else {
    std::printf("dispycos_kbd_int: no last value came\n");
  }
  PICOS_CO_RETURN_IF_ERROR(closed);
  if (results->failed) co_return absl::AbortedError("an optimiser failed");
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_report_ms, 1, 60'000) || !picos::FlagInRange(FLAGS_run_for, 0, 86'400)) return 2;
  if (!picos::examples::NodesGiven("dispycos_kbd_int", absl::GetFlag(FLAGS_nodes))) return 2;
  // SIGINT and SIGTERM go to SignalThread only: blocked here, before any
  // thread starts, so every thread inherits the mask. A shell starts a
  // background job with SIGINT ignored, and an ignored signal is dropped
  // even for sigwait: restore the default first.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each line as it comes, also into a file
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return picos::RunMain("dispycos_kbd_int", Client);
}
