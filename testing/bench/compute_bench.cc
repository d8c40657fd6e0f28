// Compute-cluster figures (compute/computation.h, compute/picos_node.cc) on
// loopback: one real picos-node process with 2 workers, a client in this
// process, and floors measured in the same run:
//
//   bazel run -c opt //testing/bench:compute_bench
//
//   trivial_jobs_per_s         --jobs no-op jobs spawned at once (Run), every
//                              result joined and checked; 2 workers, one job
//                              each at a time (target >= 20,000)
//                              (--cpu_jobs_ahead=N: N jobs wait in a busy
//                              worker's mailbox; default the Computation's,
//                              2 while its jobs are short)
//   trivial_jobs_client_cpu_us_per_job  CPU time (user + system) of this
//                              process over the throughput run, per job
//   trivial_jobs_worker_cpu_us_per_job  the same of both worker processes
//                              together (/proc/<pid>/stat), per job: with the
//                              rate, what an A/B on a busy 2-core machine
//                              compares
//   job_latency_ms             Run -> Join's result of one no-op job, one at
//                              a time, median (target <= 0.5)
//   job_latency_p99_ms         the same, 99th percentile
//   worker_start_ms            Schedule (library shipped, 2 worker processes
//                              started and located) -> workers usable
//                              (target <= 200)
//   worker_lost_detected_ms    SIGKILL of the worker running a job -> that
//                              job's Join ends with "worker_lost" (target
//                              <= 1,000)
//   node_idle_rss_mb           VmRSS of the picos-node daemon with no
//                              computation (target <= 10)
//   worker_idle_rss_mb         VmRSS of one idle worker process (for
//                              information)
//   floor_remote_round_trip_ms a message to a task of another picos process
//                              and its reply, one at a time, median: the
//                              least a job's request and result cost
//   floor_service_call_ms      a remote service call (core/remote/service.h:
//                              Run, then Join) of a no-op function in
//                              another process, median
//   floor_service_calls_per_s  such calls from 2 tasks at once (as 2
//                              workers), the whole path without the
//                              scheduler, the worker process and its thread
//   floor_message_jobs_per_s   a job as one message to a long-lived task of
//                              the other process, which runs a no-op on a
//                              thread of its own and answers; one in flight
//                              to each of 2 such tasks: one round trip and
//                              one thread hop per job, the least a worker
//                              that keeps jobs off its network thread costs
//   floor_message_jobs_pipelined_per_s  the same with 8 jobs in flight to
//                              each task (queued there, still run one at a
//                              time): what sending a worker its next job
//                              before its result is back would reach
//
// The floor's process is forked before this process starts any loop or
// thread and killed (its pid) at the end; the node is this process's child
// (core/io/process.h kills it with its Process) and its workers end with it.
// Every wait is bounded (60 s, which only a hang reaches). --figures=throughput
// measures only that (after starting the node), e.g. under perf.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "compute/computation.h"
#include "core/cli/flags.h"
#include "core/io/thread_pool.h"
#include "core/kernel/naming.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "core/remote/service.h"
#include "testing/bench/figures.h"
#include "testing/compute_cluster.h"
#include "transports/default_transports.h"

ABSL_FLAG(int, jobs, 20000, "no-op jobs of the throughput figure");
ABSL_FLAG(int, latency_jobs, 1000, "jobs (and floor round trips) of the latency figures, one at a time");
ABSL_FLAG(std::vector<std::string>, figures, {},
          "names of the figures to measure (floor, latency, throughput, lost, rss), for profiling one; "
          "empty: all");
ABSL_FLAG(std::string, node_binary, "compute/picos-node", "the picos-node program");
ABSL_FLAG(std::string, library, "testing/bench/libcompute_benchlib.so", "the computation library");
ABSL_FLAG(int, cpu_jobs_ahead, picos::compute::kCpuJobsAheadAuto,
          "ComputationOptions::cpu_jobs_ahead of the computation measured (0..8, or -1: the default, chosen per "
          "worker): CPU jobs sent to a busy worker ahead of time");

namespace picos::testing {
namespace {

constexpr absl::Duration kDeadline = absl::Seconds(60);  // only a hang reaches it
constexpr char kSecret[] = "compute_bench shared secret, not for production";
constexpr char kNoopService[] = "compute_bench.noop";

// `s` with its message prefixed by `where`.
absl::Status Annotate(const absl::Status& s, absl::string_view where) {
  return absl::Status(s.code(), absl::StrCat(where, ": ", s.message()));
}

double Median(std::vector<double> v) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

// --- the floor: a bare picos peer in another process ---

Task<int64_t> Echo() {
  int64_t n = 0;
  for (;;) {
    absl::StatusOr<Value> msg = co_await Receive();
    if (!msg.ok() || !msg->is_map()) co_return n;
    const Value* to = msg->Find("r");
    if (to == nullptr || !to->is_task()) continue;
    (void)to->as_task().Send(Value(n++));
  }
}

Task<absl::StatusOr<Value>> Noop(Value) { co_return Value(); }

// A worker as one long-lived task could be: takes {"r": reply_to, "i": n}
// job messages, runs a no-op on a thread of its own (as a worker does, so
// that a long job never blocks networking) and answers n. One per worker.
Task<int64_t> JobTask() {
  ThreadPool::Options po;
  po.threads = 1;
  ThreadPool pool(po);
  int64_t n = 0;
  for (;;) {
    absl::StatusOr<Value> msg = co_await Receive();
    if (!msg.ok() || !msg->is_map()) break;
    const Value* to = msg->Find("r");
    if (to == nullptr || !to->is_task()) continue;
    auto noop = [] { return 0; };
    absl::StatusOr<int> done = co_await pool.Run(noop);
    if (!done.ok()) break;
    (void)to->as_task().Send(Value(msg->GetOr<int64_t>("i", 0) + *done));
    ++n;
  }
  pool.Shutdown();
  co_return n;
}

Task<absl::Status> FloorServe(int out_fd) {
  remote::NodeOptions o;
  o.secret = kSecret;
  o.listen = {"tcp://127.0.0.1:0"};
  o.name = "compute-bench-floor";
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<remote::Node> node,
                            co_await remote::Node::Start(transports::DefaultTransports(), std::move(o)));
  TaskRef echo = ThisScheduler().SpawnNamed("echo", Echo);
  PICOS_CO_RETURN_IF_ERROR(RegisterTask("echo", echo));
  PICOS_CO_ASSIGN_OR_RETURN(remote::RegisteredService svc, remote::RegisterService(kNoopService, Noop));
  for (int i = 0; i < 2; ++i) {
    const std::string name = absl::StrCat("jobs", i);
    PICOS_CO_RETURN_IF_ERROR(RegisterTask(name, ThisScheduler().SpawnNamed(name, JobTask)));
  }
  std::string uri = node->uris()[0] + "\n";
  (void)!write(out_fd, uri.data(), uri.size());
  close(out_fd);
  (void)co_await echo.Join();
  co_return absl::OkStatus();
}

// Forks the floor's process; its pid, and its URI in *uri.
pid_t ForkFloor(std::string* uri) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    _exit(RunMain("compute_bench-floor", FloorServe, fds[1]));
  }
  close(fds[1]);
  char buf[512];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) {
    uri->append(buf, n);
    if (uri->find('\n') != std::string::npos) break;
  }
  close(fds[0]);
  if (auto nl = uri->find('\n'); nl != std::string::npos) {
    uri->resize(nl);
  } else {
    uri->clear();
  }
  return pid;
}

struct Figures {
  double trivial_jobs_per_s = -1;
  double client_cpu_us_per_job = -1;
  double worker_cpu_us_per_job = -1;
  double job_latency_ms = -1;
  double job_latency_p99_ms = -1;
  double worker_start_ms = -1;
  double worker_lost_detected_ms = -1;
  double node_idle_rss_mb = -1;
  double worker_idle_rss_mb = -1;
  double floor_round_trip_ms = -1;
  double floor_service_call_ms = -1;
  double floor_service_calls_per_s = -1;
  double floor_message_jobs_per_s = -1;
  double floor_message_jobs_pipelined_per_s = -1;
};

Task<absl::Status> FloorRoundTrips(std::string uri, int count, Figures* f) {
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef echo, co_await LocateTask("echo", Location::Peer(uri), kDeadline));
  std::vector<double> ms;
  for (int i = 0; i < count + count / 10; ++i) {
    const absl::Time t0 = absl::Now();
    PICOS_CO_RETURN_IF_ERROR(echo.Send(Value::Map({{"r", Self()}})));
    absl::StatusOr<Value> r = co_await Receive(kDeadline);
    if (!r.ok()) co_return r.status();
    if (i >= count / 10) ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
  }
  f->floor_round_trip_ms = Median(ms);
  co_return absl::OkStatus();
}

Task<absl::Status> CallNoop(remote::Service svc) {
  absl::StatusOr<TaskRef> t = co_await svc.Run(Value(), kDeadline);
  if (!t.ok()) co_return t.status();
  absl::StatusOr<Value> r = co_await t->Join(kDeadline);
  co_return r.status();
}

Task<absl::Status> CallNoops(remote::Service svc, int count) {
  for (int i = 0; i < count; ++i) PICOS_CO_RETURN_IF_ERROR(co_await CallNoop(svc));
  co_return absl::OkStatus();
}

Task<absl::Status> FloorServiceCalls(std::string uri, int count, int throughput_count, Figures* f) {
  PICOS_CO_ASSIGN_OR_RETURN(remote::Service svc,
                            co_await remote::Service::Locate(kNoopService, Location::Peer(uri), kDeadline));
  std::vector<double> ms;
  for (int i = 0; i < count + count / 10; ++i) {
    const absl::Time t0 = absl::Now();
    PICOS_CO_RETURN_IF_ERROR(co_await CallNoop(svc));
    if (i >= count / 10) ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
  }
  f->floor_service_call_ms = Median(ms);
  const absl::Time t0 = absl::Now();
  TaskRef a = ThisScheduler().Spawn(CallNoops, svc, throughput_count / 2);
  TaskRef b = ThisScheduler().Spawn(CallNoops, svc, throughput_count - throughput_count / 2);
  absl::StatusOr<Value> ra = co_await a.Join(kDeadline);
  absl::StatusOr<Value> rb = co_await b.Join(kDeadline);
  PICOS_CO_RETURN_IF_ERROR(ra.status());
  PICOS_CO_RETURN_IF_ERROR(rb.status());
  f->floor_service_calls_per_s = throughput_count / absl::ToDoubleSeconds(absl::Now() - t0);
  svc.Close().IgnoreError();
  co_return absl::OkStatus();
}

// `count` job messages to `jobs`, `window` of them in flight (the next
// sent as each answer arrives, in order).
Task<absl::Status> MessageJobs(TaskRef jobs, int count, int window) {
  int sent = 0;
  for (int i = 0; i < count; ++i) {
    for (; sent < count && sent < i + window; ++sent) {
      PICOS_CO_RETURN_IF_ERROR(jobs.Send(Value::Map({{"r", Self()}, {"i", int64_t{sent}}})));
    }
    absl::StatusOr<Value> r = co_await Receive(kDeadline);
    if (!r.ok()) co_return r.status();
    if (*r != Value(int64_t{i})) co_return absl::DataLossError(absl::StrCat("job task answered ", r->DebugString()));
  }
  co_return absl::OkStatus();
}

// Jobs/s through the 2 job tasks, `window` in flight to each.
Task<absl::StatusOr<double>> MessageJobsPerS(std::vector<TaskRef> jobs, int count, int window) {
  const absl::Time t0 = absl::Now();
  TaskRef a = ThisScheduler().Spawn(MessageJobs, jobs[0], count / 2, window);
  TaskRef b = ThisScheduler().Spawn(MessageJobs, jobs[1], count - count / 2, window);
  absl::StatusOr<Value> ra = co_await a.Join(kDeadline);
  absl::StatusOr<Value> rb = co_await b.Join(kDeadline);
  PICOS_CO_RETURN_IF_ERROR(ra.status());
  PICOS_CO_RETURN_IF_ERROR(rb.status());
  co_return count / absl::ToDoubleSeconds(absl::Now() - t0);
}

Task<absl::Status> FloorMessageJobs(std::string uri, int count, Figures* f) {
  std::vector<TaskRef> jobs;
  for (int i = 0; i < 2; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef t, co_await LocateTask(absl::StrCat("jobs", i), Location::Peer(uri), kDeadline));
    jobs.push_back(t);
  }
  PICOS_CO_ASSIGN_OR_RETURN(f->floor_message_jobs_per_s, co_await MessageJobsPerS(jobs, count, 1));
  PICOS_CO_ASSIGN_OR_RETURN(f->floor_message_jobs_pipelined_per_s, co_await MessageJobsPerS(jobs, count, 8));
  co_return absl::OkStatus();
}

// One job, run and joined; its result must be `want`.
Task<absl::Status> RunOne(compute::Computation& c, std::string fn, std::string arg, Value want) {
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef job, co_await c.Run(fn, arg));
  PICOS_CO_ASSIGN_OR_RETURN(Value r, co_await job.Join(kDeadline));
  if (r != want) co_return absl::DataLossError(absl::StrCat(fn, " gave ", r.DebugString()));
  co_return absl::OkStatus();
}

Task<absl::Status> JobLatency(compute::Computation& c, int count, Figures* f) {
  std::vector<double> ms;
  for (int i = 0; i < count + count / 10; ++i) {
    const absl::Time t0 = absl::Now();
    PICOS_CO_RETURN_IF_ERROR(co_await RunOne(c, "noop", "", Value::Bytes("")));
    if (i >= count / 10) ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
  }
  f->job_latency_ms = Median(ms);
  f->job_latency_p99_ms = Percentile(ms, 0.99);
  co_return absl::OkStatus();
}

// CPU time (user + system) this process used so far.
absl::Duration ClientCpu() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return absl::DurationFromTimeval(u.ru_utime) + absl::DurationFromTimeval(u.ru_stime);
}

// CPU time (user + system) process `pid` used so far, from
// /proc/<pid>/stat (fields 14 and 15, in clock ticks); zero if unreadable.
absl::Duration ProcessCpu(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command (field 2) is in parentheses and may hold spaces.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return absl::ZeroDuration();
  std::vector<std::string> fields = absl::StrSplit(stat.substr(close + 2), ' ');
  int64_t utime = 0, stime = 0;
  // Field 3 (state) is fields[0]: utime is field 14, stime 15.
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) || !absl::SimpleAtoi(fields[12], &stime)) {
    return absl::ZeroDuration();
  }
  return absl::Seconds(static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK));
}

absl::Duration ProcessesCpu(const std::vector<int>& pids) {
  absl::Duration d;
  for (int pid : pids) d += ProcessCpu(pid);
  return d;
}

Task<absl::Status> Throughput(compute::Computation& c, int count, std::vector<int> pids, Figures* f) {
  std::vector<TaskRef> jobs;
  jobs.reserve(count);
  const absl::Duration client0 = ClientCpu();
  const absl::Duration workers0 = ProcessesCpu(pids);
  const absl::Time t0 = absl::Now();
  for (int i = 0; i < count; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef job, co_await c.Run("noop", ""));
    jobs.push_back(std::move(job));
  }
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<Value> r = co_await jobs[i].Join(kDeadline);
    if (!r.ok()) co_return Annotate(r.status(), absl::StrCat("job ", i));
    if (*r != Value::Bytes("")) co_return absl::DataLossError(absl::StrCat("job ", i, " gave ", r->DebugString()));
  }
  f->trivial_jobs_per_s = count / absl::ToDoubleSeconds(absl::Now() - t0);
  f->client_cpu_us_per_job = absl::ToDoubleMicroseconds(ClientCpu() - client0) / count;
  f->worker_cpu_us_per_job = absl::ToDoubleMicroseconds(ProcessesCpu(pids) - workers0) / count;
  co_return absl::OkStatus();
}

// The pid a sleep_ms job wrote into `path` once it runs; waits for it.
Task<absl::StatusOr<int>> PidIn(std::string path) {
  for (int i = 0; i < 12000; ++i) {  // 60 s at most
    std::ifstream in(path);
    int pid = 0;
    if (in >> pid && pid > 0) co_return pid;
    absl::Status slept = co_await Sleep(absl::Milliseconds(5));
    PICOS_CO_RETURN_IF_ERROR(slept);
  }
  co_return absl::DeadlineExceededError(absl::StrCat("no job wrote ", path));
}

// Two slow jobs, one per worker; the worker of the first is killed; timed
// until that job's Join says it was lost.
Task<absl::Status> WorkerLost(compute::Computation& c, std::vector<int> pids, Figures* f) {
  const std::string marks = FreshDir("compute-bench-marks");
  std::vector<TaskRef> jobs;
  for (int i = 0; i < 2; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef job, co_await c.Run("sleep_ms", absl::StrCat("3000:", marks, "/", i)));
    jobs.push_back(job);
  }
  PICOS_CO_ASSIGN_OR_RETURN(int pid, co_await PidIn(marks + "/0"));
  PICOS_CO_ASSIGN_OR_RETURN(int other, co_await PidIn(marks + "/1"));
  // Only a worker of the node this process started.
  if (!absl::c_linear_search(pids, pid) || pid == other) {
    co_return absl::InternalError(absl::StrCat("job 0 runs in ", pid, ", not a worker of ours"));
  }
  const absl::Time killed_at = absl::Now();
  if (kill(pid, SIGKILL) != 0) co_return absl::InternalError("kill failed");
  absl::StatusOr<Value> lost = co_await jobs[0].Join(kDeadline);
  const absl::Time seen = absl::Now();
  if (lost.ok() || lost.status().code() != absl::StatusCode::kUnavailable ||
      !absl::StrContains(lost.status().message(), "worker_lost")) {
    co_return absl::InternalError(absl::StrCat("the killed job ended with ",
                                               lost.ok() ? lost->DebugString() : lost.status().ToString()));
  }
  f->worker_lost_detected_ms = absl::ToDoubleMilliseconds(seen - killed_at);
  absl::StatusOr<Value> survived = co_await jobs[1].Join(kDeadline);
  if (!survived.ok()) co_return Annotate(survived.status(), "the other job");
  std::filesystem::remove_all(marks);
  co_return absl::OkStatus();
}

// The figures that need the computation scheduled on the node.
Task<absl::Status> OnWorkers(compute::Computation& c, std::vector<int> pids, Figures* f) {
  const std::vector<std::string> only = absl::GetFlag(FLAGS_figures);
  auto wanted = [&](const char* name) { return only.empty() || absl::c_linear_search(only, name); };
  if (wanted("rss")) f->worker_idle_rss_mb = VmRssKb(pids[0]) / 1024.0;
  if (wanted("latency")) PICOS_CO_RETURN_IF_ERROR(co_await JobLatency(c, absl::GetFlag(FLAGS_latency_jobs), f));
  if (wanted("throughput")) PICOS_CO_RETURN_IF_ERROR(co_await Throughput(c, absl::GetFlag(FLAGS_jobs), pids, f));
  if (wanted("lost")) PICOS_CO_RETURN_IF_ERROR(co_await WorkerLost(c, pids, f));
  co_return absl::OkStatus();
}

// The figures of a running node: its idle memory, then a computation on it.
Task<absl::Status> OnNode(NodeProcess& node, Figures* f) {
  const std::vector<std::string> only = absl::GetFlag(FLAGS_figures);
  if (only.empty() || absl::c_linear_search(only, "rss")) {
    // Settled: started, listening, nothing asked of it yet.
    absl::Status slept = co_await Sleep(absl::Milliseconds(200));
    PICOS_CO_RETURN_IF_ERROR(slept);
    f->node_idle_rss_mb = VmRssKb(node.process->pid()) / 1024.0;
  }
  compute::ComputationOptions o;
  o.library = absl::GetFlag(FLAGS_library);
  o.timeout = kDeadline;
  o.cpu_jobs_ahead = absl::GetFlag(FLAGS_cpu_jobs_ahead);
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<compute::Computation> c, compute::Computation::Create(o));
  std::vector<std::string> nodes = {node.uri};
  const absl::Time t0 = absl::Now();
  absl::Status scheduled = co_await c->Schedule(nodes);
  PICOS_CO_RETURN_IF_ERROR(scheduled);
  f->worker_start_ms = absl::ToDoubleMilliseconds(absl::Now() - t0);
  absl::StatusOr<std::vector<int>> pids = co_await WorkerPids(node, 2, kDeadline);
  absl::Status run = pids.status();
  if (run.ok()) run = co_await OnWorkers(*c, *pids, f);
  absl::Status closed = co_await c->Close();
  PICOS_CO_RETURN_IF_ERROR(run);
  co_return closed;
}

Task<absl::Status> Bench(std::string floor_uri, Figures* f) {
  const std::vector<std::string> only = absl::GetFlag(FLAGS_figures);
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<remote::Node> me, co_await StartClientNode(kSecret, kDeadline));
  if (only.empty() || absl::c_linear_search(only, "floor")) {
    if (floor_uri.empty()) co_return absl::InternalError("the floor's process did not start");
    const int n = absl::GetFlag(FLAGS_latency_jobs);
    PICOS_CO_RETURN_IF_ERROR(co_await FloorRoundTrips(floor_uri, n, f));
    PICOS_CO_RETURN_IF_ERROR(co_await FloorServiceCalls(floor_uri, n, absl::GetFlag(FLAGS_jobs), f));
    PICOS_CO_RETURN_IF_ERROR(co_await FloorMessageJobs(floor_uri, absl::GetFlag(FLAGS_jobs), f));
  }
  const std::string dest = FreshDir("compute-bench-dest");
  NodeProcessOptions no;
  no.binary = absl::GetFlag(FLAGS_node_binary);
  no.cpus = 2;
  no.dest = dest;
  no.secret = kSecret;
  PICOS_CO_ASSIGN_OR_RETURN(NodeProcess node, co_await StartNodeProcess(no));
  absl::Status status = co_await OnNode(node, f);
  absl::Status killed = co_await KillNodeProcess(node, kDeadline);
  std::filesystem::remove_all(dest);
  PICOS_CO_RETURN_IF_ERROR(status);
  co_return killed;
}

int Main() {
  // The floor's process first, while this process has no loop or thread.
  std::string floor_uri;
  const std::vector<std::string> only = absl::GetFlag(FLAGS_figures);
  const bool floor = only.empty() || absl::c_linear_search(only, "floor");
  pid_t floor_pid = floor ? ForkFloor(&floor_uri) : -1;
  Figures f;
  int status = 0;
  {
    Scheduler s;
    TaskRef t = s.Spawn(Bench, floor_uri, &f);
    absl::StatusOr<Value> r = s.RunUntil(t);
    const absl::Status st = r.status();
    if (!st.ok()) {
      std::fprintf(stderr, "compute_bench: %s\n", st.ToString().c_str());
      status = 1;
    }
  }
  if (floor_pid > 0) {
    kill(floor_pid, SIGKILL);
    waitpid(floor_pid, nullptr, 0);
  }
  // A figure not measured (--figures, or a failure: then the exit status is
  // 1) prints -1.
  auto print = [&](const char* figure, const char* name, double value, const char* unit) {
    if (only.empty() || absl::c_linear_search(only, figure)) PrintFigure(name, value, unit);
  };
  print("throughput", "trivial_jobs_per_s", f.trivial_jobs_per_s, "jobs/s");
  print("throughput", "trivial_jobs_client_cpu_us_per_job", f.client_cpu_us_per_job, "us");
  print("throughput", "trivial_jobs_worker_cpu_us_per_job", f.worker_cpu_us_per_job, "us");
  print("floor", "floor_service_calls_per_s", f.floor_service_calls_per_s, "calls/s");
  print("floor", "floor_message_jobs_per_s", f.floor_message_jobs_per_s, "jobs/s");
  print("floor", "floor_message_jobs_pipelined_per_s", f.floor_message_jobs_pipelined_per_s, "jobs/s");
  print("latency", "job_latency_ms", f.job_latency_ms, "ms");
  print("latency", "job_latency_p99_ms", f.job_latency_p99_ms, "ms");
  print("floor", "floor_service_call_ms", f.floor_service_call_ms, "ms");
  print("floor", "floor_remote_round_trip_ms", f.floor_round_trip_ms, "ms");
  PrintFigure("worker_start_ms", f.worker_start_ms, "ms");
  print("lost", "worker_lost_detected_ms", f.worker_lost_detected_ms, "ms");
  print("rss", "node_idle_rss_mb", f.node_idle_rss_mb, "MB");
  print("rss", "worker_idle_rss_mb", f.worker_idle_rss_mb, "MB");
  if (f.job_latency_ms > 0 && f.floor_round_trip_ms > 0) {
    PrintFigure("job_latency_of_floor_round_trip", f.job_latency_ms / f.floor_round_trip_ms, "x");
  }
  return status;
}

}  // namespace
}  // namespace picos::testing

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Compute-cluster figures: one picos-node with 2 workers on loopback, beside floors.");
  absl::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_jobs, 10, 10'000'000) || !picos::FlagInRange(FLAGS_latency_jobs, 10, 1'000'000)) {
    return 2;
  }
  return picos::testing::Main();
}
