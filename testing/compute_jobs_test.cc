// 10,000 trivial jobs through the compute cluster (issue 12): a real
// picos-node with 2 worker processes on loopback, the client's Computation
// in this process. Each job runs `tag` of //testing/bench:compute_benchlib,
// which answers "<worker pid>:<n>:<arg>" with n counting the jobs that
// worker ran, so the test sees both ends:
//  * every result arrives exactly once: each job's Join gives its own arg,
//    and the 10,000 args are all there;
//  * every job ran exactly once: per worker the n seen are 1..count with no
//    gap and no repeat, and the counts add up to 10,000.
// Then the same with a worker killed (SIGKILL) in the middle of the run and
// max_retries = 1: still every result once, from the surviving worker after
// the kill, and at most the one job that was on the killed worker ran
// twice (once there, its result lost with it; once again, counted by
// jobs_rerun).
// Both again (3,000 jobs) with one CPU job sent ahead to each busy worker
// (ComputationOptions::cpu_jobs_ahead): the job waiting in a worker's
// mailbox is neither lost nor run twice, and after a kill the jobs that
// were in the killed worker's mailbox are re-run like the one it was
// running (at most those 2 run again). cpu_jobs_ahead outside 0..8 (and
// not kCpuJobsAheadAuto) is refused. And both with the default,
// kCpuJobsAheadAuto (10,000 jobs; at most 1 + 8 run again after the kill),
// which sends no 20 ms job to a busy worker but does send trivial ones ahead.
//
// Every wait is bounded (kLong per job, which only a hang reaches). The test
// kills only a worker whose parent it checked is the node it started, and
// the node whatever happens (NodeProcess owns it).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "compute/computation.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "testing/compute_cluster.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos::testing {
namespace {

constexpr char kSecret[] = "compute jobs test secret";
constexpr absl::Duration kLong = absl::Seconds(60);  // only a hang reaches it
constexpr char kLibrary[] = "testing/bench/libcompute_benchlib.so";

// A run: how many jobs, how many CPU jobs may wait ahead in a busy
// worker's mailbox, the prefix of its folders and the figure it prints.
struct Shape {
  const char* dir;
  int jobs;
  int ahead;
  const char* figure;
};
constexpr Shape kPlain{"compute-jobs", 10'000, 0, "compute_jobs_10k_s"};
constexpr Shape kAhead{"compute-ahead", 3'000, 1, "compute_jobs_ahead_3k_s"};
// The default: jobs ahead while a worker's jobs are short (kCpuJobsAheadAuto,
// at most 8 ahead).
constexpr Shape kAuto{"compute-auto", 10'000, compute::kCpuJobsAheadAuto, "compute_jobs_auto_10k_s"};
constexpr int kAutoMostAhead = 8;

// The parent pid of `pid` (/proc), or -1.
int ParentOf(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::vector<std::string> f = absl::StrSplit(stat.substr(close + 2), ' ');
  int ppid = -1;
  if (f.size() < 2 || !absl::SimpleAtoi(f[1], &ppid)) return -1;
  return ppid;
}

struct Tagged {
  int pid = -1;
  int64_t n = -1;
  int64_t arg = -1;
};

// "<pid>:<n>:<arg>", or an error.
absl::StatusOr<Tagged> ParseTag(const Value& v) {
  if (!v.is_bytes()) return absl::DataLossError(absl::StrCat("not bytes: ", v.DebugString()));
  std::vector<std::string> f = absl::StrSplit(v.as_string(), ':');
  Tagged t;
  if (f.size() != 3 || !absl::SimpleAtoi(f[0], &t.pid) || !absl::SimpleAtoi(f[1], &t.n) ||
      !absl::SimpleAtoi(f[2], &t.arg)) {
    return absl::DataLossError(absl::StrCat("malformed result: ", v.DebugString()));
  }
  return t;
}

// What a run saw: the n of each worker (by pid), and which args came back.
struct Seen {
  explicit Seen(int jobs) : args(jobs, 0) {}
  std::map<int, std::vector<int64_t>> n_by_pid;
  std::vector<int> args;  // one count per job
};

// Each worker's n are 1..count, each once (the worker ran each job once),
// unless it is `killed`, whose n need only be distinct: the one job it ran
// last may have lost its result with it.
void ExpectRanOnce(Seen& seen, int killed) {
  int64_t total = 0;
  for (auto& [pid, ns] : seen.n_by_pid) {
    std::sort(ns.begin(), ns.end());
    SCOPED_TRACE(absl::StrCat("worker ", pid));
    EXPECT_TRUE(std::adjacent_find(ns.begin(), ns.end()) == ns.end()) << "a job ran twice on one worker";
    if (pid != killed) {
      EXPECT_EQ(ns.front(), 1);
      EXPECT_EQ(ns.back(), static_cast<int64_t>(ns.size())) << "a job of this worker gave no result";
    }
    total += static_cast<int64_t>(ns.size());
  }
  EXPECT_EQ(total, static_cast<int64_t>(seen.args.size()));
  for (size_t i = 0; i < seen.args.size(); ++i) EXPECT_EQ(seen.args[i], 1) << "result of job " << i;
}

// Runs one `tag` job per entry of seen->args (all spawned at once, then
// joined in order); after `kill_after` results (if >= 0) kills the worker
// with pid `victim`.
Task<absl::Status> RunJobs(compute::Computation& c, Seen* seen, int kill_after, int victim) {
  const int n = static_cast<int>(seen->args.size());
  std::vector<TaskRef> jobs;
  jobs.reserve(n);
  for (int i = 0; i < n; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef job, co_await c.Run("tag", absl::StrCat(i)));
    jobs.push_back(std::move(job));
  }
  for (int i = 0; i < n; ++i) {
    if (i == kill_after && kill(victim, SIGKILL) != 0) co_return absl::InternalError("kill failed");
    absl::StatusOr<Value> r = co_await jobs[i].Join(kLong);
    if (!r.ok()) co_return absl::Status(r.status().code(), absl::StrCat("job ", i, ": ", r.status().message()));
    PICOS_CO_ASSIGN_OR_RETURN(Tagged t, ParseTag(*r));
    if (t.arg != i) co_return absl::DataLossError(absl::StrCat("job ", i, " got the result of job ", t.arg));
    ++seen->args[i];
    seen->n_by_pid[t.pid].push_back(t.n);
  }
  co_return absl::OkStatus();
}

Task<> EachRunAndAnsweredOnce(Shape shape) {
  NodeProcessOptions no;
  no.dest = FreshDir(absl::StrCat(shape.dir, "-a"));
  no.secret = kSecret;
  absl::StatusOr<NodeProcess> node = co_await StartNodeProcess(no);
  CO_ASSERT_OK(node);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await StartClientNode(kSecret);
  CO_ASSERT_OK(me);
  {
    compute::ComputationOptions o;
    o.library = kLibrary;
    o.cpu_jobs_ahead = shape.ahead;
    absl::StatusOr<std::unique_ptr<compute::Computation>> c = compute::Computation::Create(o);
    CO_ASSERT_OK(c);
    std::vector<std::string> nodes = {node->uri};
    absl::Status scheduled = co_await (*c)->Schedule(nodes);
    CO_ASSERT_OK(scheduled);
    absl::StatusOr<std::vector<int>> pids = co_await WorkerPids(*node, 2);
    CO_ASSERT_OK(pids);
    Seen seen(shape.jobs);
    const absl::Time t0 = absl::Now();
    absl::Status ran = co_await RunJobs(**c, &seen, -1, -1);
    EXPECT_OK(ran);
    std::printf("%s: %.2f s\n", shape.figure, absl::ToDoubleSeconds(absl::Now() - t0));
    if (ran.ok()) {
      ExpectRanOnce(seen, -1);
      for (const auto& [pid, ns] : seen.n_by_pid) EXPECT_TRUE(absl::c_linear_search(*pids, pid)) << pid;
      EXPECT_EQ(seen.n_by_pid.size(), 2u) << "both workers took jobs";
    }
    EXPECT_EQ((*c)->jobs_rerun(), 0u);
    EXPECT_EQ((*c)->workers_alive(), 2u);
    absl::Status closed = co_await (*c)->Close();
    EXPECT_OK(closed);
  }
  me->reset();
  absl::Status killed = co_await KillNodeProcess(*node);
  EXPECT_OK(killed);
}

Task<> WorkerKilledMidRunEachAnsweredOnce(Shape shape) {
  NodeProcessOptions no;
  no.dest = FreshDir(absl::StrCat(shape.dir, "-b"));
  no.secret = kSecret;
  absl::StatusOr<NodeProcess> node = co_await StartNodeProcess(no);
  CO_ASSERT_OK(node);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await StartClientNode(kSecret);
  CO_ASSERT_OK(me);
  {
    compute::ComputationOptions o;
    o.library = kLibrary;
    o.max_retries = 1;
    o.cpu_jobs_ahead = shape.ahead;
    absl::StatusOr<std::unique_ptr<compute::Computation>> c = compute::Computation::Create(o);
    CO_ASSERT_OK(c);
    std::vector<std::string> nodes = {node->uri};
    absl::Status scheduled = co_await (*c)->Schedule(nodes);
    CO_ASSERT_OK(scheduled);
    absl::StatusOr<std::vector<int>> pids = co_await WorkerPids(*node, 2);
    CO_ASSERT_OK(pids);
    const int victim = (*pids)[0];
    CO_ASSERT_TRUE(ParentOf(victim) == node->process->pid());
    Seen seen(shape.jobs);
    absl::Status ran = co_await RunJobs(**c, &seen, shape.jobs / 3, victim);
    EXPECT_OK(ran);
    if (ran.ok()) {
      ExpectRanOnce(seen, victim);
      // After the kill every result came from the other worker.
      EXPECT_EQ(seen.n_by_pid.size(), 2u);
    }
    EXPECT_LE((*c)->jobs_rerun(), static_cast<uint64_t>(1 + (shape.ahead < 0 ? kAutoMostAhead : shape.ahead)))
        << "only the jobs on the killed worker (running, or waiting in its mailbox) run again";
    EXPECT_EQ((*c)->workers_alive(), 1u);
    absl::StatusOr<std::string> lost = co_await NodeLine(*node, "worker lost ");
    EXPECT_OK(lost.status());
    absl::Status closed = co_await (*c)->Close();
    EXPECT_OK(closed);
  }
  me->reset();
  absl::Status killed = co_await KillNodeProcess(*node);
  EXPECT_OK(killed);
}

PICOS_CORO_TEST(ComputeJobs, TenThousandJobsEachRunAndAnsweredExactlyOnce) {
  co_await EachRunAndAnsweredOnce(kPlain);
}

PICOS_CORO_TEST(ComputeJobs, TenThousandJobsWithAWorkerKilledMidRunEachAnsweredOnce) {
  co_await WorkerKilledMidRunEachAnsweredOnce(kPlain);
}

PICOS_CORO_TEST(ComputeJobsAhead, EachRunAndAnsweredExactlyOnce) { co_await EachRunAndAnsweredOnce(kAhead); }

PICOS_CORO_TEST(ComputeJobsAhead, AWorkerKilledMidRunItsQueuedJobsRerunEachAnsweredOnce) {
  co_await WorkerKilledMidRunEachAnsweredOnce(kAhead);
}

PICOS_CORO_TEST(ComputeJobsAuto, TenThousandJobsEachRunAndAnsweredExactlyOnce) {
  co_await EachRunAndAnsweredOnce(kAuto);
}

PICOS_CORO_TEST(ComputeJobsAuto, AWorkerKilledMidRunItsQueuedJobsRerunEachAnsweredOnce) {
  co_await WorkerKilledMidRunEachAnsweredOnce(kAuto);
}

// The largest number of CPU jobs any worker of `c` held at once, sampled
// every turn of the scheduler until *stop.
Task<> MostJobsOnAWorker(compute::Computation* c, size_t* most, const bool* stop) {
  while (!*stop) {
    for (const compute::WorkerInfo& w : c->workers()) *most = std::max(*most, w.jobs.size());
    absl::Status slept = co_await Sleep(absl::ZeroDuration());
    if (!slept.ok()) co_return;
  }
}

// `count` jobs of `fn` with args "<prefix><i>", all spawned at once, then
// joined; each must succeed.
Task<absl::Status> RunAndJoin(compute::Computation& c, std::string fn, std::string prefix, int count) {
  std::vector<TaskRef> jobs;
  for (int i = 0; i < count; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef job, co_await c.Run(fn, absl::StrCat(prefix, i)));
    jobs.push_back(std::move(job));
  }
  for (TaskRef& job : jobs) {
    absl::StatusOr<Value> r = co_await job.Join(kLong);
    PICOS_CO_RETURN_IF_ERROR(r.status());
  }
  co_return absl::OkStatus();
}

// The default (kCpuJobsAheadAuto) decides by how long a worker's jobs of
// that function run: jobs of 20 ms are never sent to a busy worker (each
// worker holds one at a time, the next wait on the client for whichever
// comes free first), trivial ones, next, are (a worker holds more than
// one), and 20 ms ones after them are not.
PICOS_CORO_TEST(ComputeJobsAuto, NoJobAheadOfALongOneButAheadOfShortOnes) {
  NodeProcessOptions no;
  no.dest = FreshDir("compute-auto-long");
  no.secret = kSecret;
  absl::StatusOr<NodeProcess> node = co_await StartNodeProcess(no);
  CO_ASSERT_OK(node);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await StartClientNode(kSecret);
  CO_ASSERT_OK(me);
  {
    compute::ComputationOptions o;
    o.library = kLibrary;
    absl::StatusOr<std::unique_ptr<compute::Computation>> c = compute::Computation::Create(o);
    CO_ASSERT_OK(c);
    std::vector<std::string> nodes = {node->uri};
    absl::Status scheduled = co_await (*c)->Schedule(nodes);
    CO_ASSERT_OK(scheduled);
    size_t most = 0;
    bool stop = false;
    TaskRef sampler = ThisScheduler().Spawn(MostJobsOnAWorker, c->get(), &most, &stop);
    absl::Status slow = co_await RunAndJoin(**c, "slow_tag", "20:", 12);
    EXPECT_OK(slow);
    EXPECT_EQ(most, 1u) << "a 20 ms job was sent to a busy worker";
    most = 0;
    absl::Status fast = co_await RunAndJoin(**c, "tag", "", 2000);
    EXPECT_OK(fast);
    EXPECT_GT(most, 1u) << "no trivial job was sent ahead";
    EXPECT_LE(most, static_cast<size_t>(1 + kAutoMostAhead));
    // After those, jobs of another function are not sent ahead either.
    most = 0;
    absl::Status slow_again = co_await RunAndJoin(**c, "slow_tag", "20:", 6);
    EXPECT_OK(slow_again);
    EXPECT_EQ(most, 1u) << "a 20 ms job was sent to a busy worker after trivial jobs of another function";
    stop = true;
    absl::StatusOr<Value> sampled = co_await sampler.Join(kLong);
    EXPECT_OK(sampled.status());
    absl::Status closed = co_await (*c)->Close();
    EXPECT_OK(closed);
  }
  me->reset();
  absl::Status killed = co_await KillNodeProcess(*node);
  EXPECT_OK(killed);
}

TEST(ComputeJobsAhead, OutOfRangeRefused) {
  for (int ahead : {-2, 9}) {
    compute::ComputationOptions o;
    o.library = kLibrary;
    o.cpu_jobs_ahead = ahead;
    absl::StatusOr<std::unique_ptr<compute::Computation>> c = compute::Computation::Create(o);
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << ahead;
  }
}

}  // namespace
}  // namespace picos::testing
