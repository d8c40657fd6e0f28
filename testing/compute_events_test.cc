// The client's view of a compute cluster (compute/computation.h), end to
// end with a real picos-node and its worker processes on loopback: status
// events, node facts and health pulses, nodes()/workers()/jobs(), RunAt and
// RunAsync (I/O jobs that run at once beside a CPU job), suspend and resume
// of workers and nodes, and Close with terminate.
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "compute/computation.h"
#include "testing/compute_testutil.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos::testing {
namespace {

using ::testing::HasSubstr;
using namespace compute_test;  // NOLINT: the helpers of this test family

std::string Str(const Value& e, const char* field) { return e.GetOr<std::string>(field, ""); }

// The worker a job started on, from its job_started event.
std::string StartedOn(const Events& ev, const TaskRef& job) {
  for (const Value& e : ev.Of("job_started")) {
    const Value* t = e.Find("task");
    if (t != nullptr && t->is_task() && t->as_task() == job) return Str(e, "worker");
  }
  return "";
}

// The same, waiting for the event (it is a message: it may still be on its
// way when the job's Join returns).
Task<std::string> WorkerOf(std::shared_ptr<Events> ev, TaskRef job) {
  std::function<bool()> seen = [&] { return !StartedOn(*ev, job).empty(); };
  (void)co_await WaitUntil(seen);
  co_return StartedOn(*ev, job);
}

Task<absl::Status> Body(NodeProcess& node, std::shared_ptr<Events> ev, std::string marks) {
  compute::ComputationOptions o;
  o.library = kLibrary;
  o.status_task = ev->task;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<compute::Computation> c, compute::Computation::Create(o));
  std::vector<std::string> nodes = {node.uri};
  PICOS_CO_RETURN_IF_ERROR(co_await c->Schedule(nodes));

  // Scheduling: the node with its facts, its two workers (events arrive
  // as messages: wait for them).
  {
    const bool seen = co_await WaitForEvents(ev, "computation_scheduled");
    EXPECT_TRUE(seen) << "waiting for computation_scheduled";
  }
  EXPECT_EQ(ev->Of("computation_scheduled").size(), 1u);
  EXPECT_EQ(ev->Of("node_initialized").size(), 1u);
  EXPECT_EQ(ev->Of("worker_initialized").size(), 2u);
  if (!ev->Of("computation_scheduled").empty()) {
    EXPECT_EQ(ev->Of("computation_scheduled")[0].GetOr<int64_t>("workers", 0), 2);
    EXPECT_EQ(Str(ev->Of("computation_scheduled")[0], "computation"), c->id());
  }
  std::vector<compute::NodeInfo> ns = c->nodes();
  if (ns.size() != 1) co_return absl::InternalError("want one node");
  EXPECT_EQ(ns[0].uri, node.uri);
  EXPECT_EQ(ns[0].state, compute::NodeState::kInitialized);
  EXPECT_EQ(ns[0].workers, 2);
  EXPECT_GE(ns[0].facts.cpus, 1);
  EXPECT_GT(ns[0].facts.memory_total, 0u);
  EXPECT_GT(ns[0].facts.disk_total, 0u);
  std::vector<compute::WorkerInfo> ws = c->workers();
  if (ws.size() != 2) co_return absl::InternalError("want two workers");
  for (const compute::WorkerInfo& w : ws) {
    EXPECT_EQ(w.node, node.uri);
    EXPECT_EQ(w.state, compute::WorkerState::kIdle);
  }
  const std::string w0 = ws[0].uri, w1 = ws[1].uri;

  // Health: pulses every 200 ms become node_health events and nodes()'s
  // facts.
  const absl::Time before = ns[0].facts_time;
  {
    const bool seen = co_await WaitForEvents(ev, "node_health", 2);
    EXPECT_TRUE(seen) << "waiting for node_health";
  }
  if (!ev->Of("node_health").empty()) {
    const Value h = ev->Of("node_health")[0];
    EXPECT_EQ(Str(h, "node"), node.uri);
    absl::StatusOr<compute::HostFacts> f = compute::HostFacts::FromValue(h["facts"]);
    EXPECT_OK(f.status());
  }
  EXPECT_GT(c->nodes()[0].facts_time, before);

  // RunAt a worker, and at the node; an unknown place is refused.
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef at1, co_await c->RunAt(w1, "square", "5"));
  absl::StatusOr<Value> r = co_await at1.Join(kLong);
  EXPECT_OK(r.status());
  if (r.ok()) {
    EXPECT_EQ(*r, Value::Bytes("25"));
  }
  const std::string at1_on = co_await WorkerOf(ev, at1);
  EXPECT_EQ(at1_on, w1);
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef atn, co_await c->RunAt(node.uri, "square", "6"));
  r = co_await atn.Join(kLong);
  EXPECT_OK(r.status());
  absl::StatusOr<TaskRef> nowhere = co_await c->RunAt("tcp://127.0.0.1:1", "square", "1");
  EXPECT_THAT(nowhere.status(), StatusIs(absl::StatusCode::kNotFound));
  // job_finished says how each ended.
  {
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef bad, co_await c->Run("square", "seven"));
    absl::StatusOr<Value> failed = co_await bad.Join(kLong);
    EXPECT_THAT(failed.status(), StatusIs(absl::StatusCode::kAborted));
    bool saw_ok = false, saw_aborted = false;
    for (const Value& e : ev->Of("job_finished")) {
      const int64_t code = e.GetOr<int64_t>("code", -1);
      saw_ok = saw_ok || (code == 0 && Str(e, "fn") == "square");
      saw_aborted = saw_aborted || (code == static_cast<int64_t>(absl::StatusCode::kAborted) &&
                                    absl::StrContains(Str(e, "message"), "not a number"));
    }
    EXPECT_TRUE(saw_ok);
    EXPECT_TRUE(saw_aborted);
  }

  // I/O jobs: while a CPU job holds worker 0, two I/O jobs there run at the
  // same time (each waits for the other's file).
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef cpu, co_await c->RunAt(w0, "sleep_ms", absl::StrCat("3000:", marks, "/cpu")));
  std::function<bool()> cpu_runs = [&] { return std::filesystem::exists(marks + "/cpu"); };
  const bool cpu_ran = co_await WaitUntil(cpu_runs);
  EXPECT_TRUE(cpu_ran);
  {
    std::vector<compute::JobInfo> js = c->jobs();
    bool running = false;
    for (const compute::JobInfo& j : js) {
      if (j.task == cpu) {
        running = j.state == compute::JobState::kRunning && j.worker == w0 && j.fn == "sleep_ms" && !j.async;
      }
    }
    EXPECT_TRUE(running) << "jobs() shows the CPU job running on worker 0";
    std::vector<compute::WorkerInfo> now = c->workers();
    EXPECT_EQ(now[0].state, compute::WorkerState::kBusy);
    EXPECT_EQ(now[0].jobs.size(), 1u);
  }
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef io_a,
                            co_await c->RunAsyncAt(w0, "meet", absl::StrCat(marks, "/a:", marks, "/b:30000")));
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef io_b,
                            co_await c->RunAsyncAt(w0, "meet", absl::StrCat(marks, "/b:", marks, "/a:30000")));
  absl::StatusOr<Value> ra = co_await io_a.Join(kLong);
  absl::StatusOr<Value> rb = co_await io_b.Join(kLong);
  EXPECT_OK(ra.status());
  EXPECT_OK(rb.status());
  if (ra.ok()) {
    EXPECT_EQ(*ra, Value::Bytes("met"));
  }
  const std::string a_on = co_await WorkerOf(ev, io_a);
  const std::string b_on = co_await WorkerOf(ev, io_b);
  EXPECT_EQ(a_on, w0);
  EXPECT_EQ(b_on, w0);
  bool async_flag = false;
  for (const Value& e : ev->Of("job_started")) async_flag = async_flag || e.GetOr<bool>("async", false);
  EXPECT_TRUE(async_flag);
  r = co_await cpu.Join(kLong);
  EXPECT_OK(r.status());

  // A suspended worker takes no job; a suspended node neither.
  PICOS_CO_RETURN_IF_ERROR(c->SuspendWorker(w1));
  {
    const bool seen = co_await WaitForEvents(ev, "worker_suspended");
    EXPECT_TRUE(seen) << "waiting for worker_suspended";
  }
  EXPECT_EQ(c->workers()[1].state, compute::WorkerState::kSuspended);
  std::vector<TaskRef> jobs;
  for (int i = 0; i < 4; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef j, co_await c->Run("square", absl::StrCat(i)));
    jobs.push_back(j);
  }
  for (TaskRef& j : jobs) {
    r = co_await j.Join(kLong);
    EXPECT_OK(r.status());
    const std::string on = co_await WorkerOf(ev, j);
    EXPECT_EQ(on, w0) << "no job on the suspended worker";
  }
  PICOS_CO_RETURN_IF_ERROR(c->ResumeWorker(w1));
  {
    const bool seen = co_await WaitForEvents(ev, "worker_resumed");
    EXPECT_TRUE(seen) << "waiting for worker_resumed";
  }
  PICOS_CO_RETURN_IF_ERROR(c->SuspendNode(node.uri));
  {
    const bool seen = co_await WaitForEvents(ev, "node_suspended");
    EXPECT_TRUE(seen) << "waiting for node_suspended";
  }
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef held, co_await c->Run("square", "9"));
  PICOS_CO_RETURN_IF_ERROR(co_await Sleep(absl::Milliseconds(300)));
  EXPECT_EQ(StartedOn(*ev, held), "") << "no job starts on a suspended node";
  EXPECT_EQ(c->jobs().size(), 1u);
  if (!c->jobs().empty()) {
    EXPECT_EQ(c->jobs()[0].state, compute::JobState::kWaiting);
  }
  PICOS_CO_RETURN_IF_ERROR(c->ResumeNode(node.uri));
  {
    const bool seen = co_await WaitForEvents(ev, "node_resumed");
    EXPECT_TRUE(seen) << "waiting for node_resumed";
  }
  r = co_await held.Join(kLong);
  EXPECT_OK(r.status());
  if (r.ok()) {
    EXPECT_EQ(*r, Value::Bytes("81"));
  }

  // Close with terminate: two ten-second jobs running, an I/O job too, all
  // end at once with kCancelled.
  std::vector<TaskRef> slow;
  for (int i = 0; i < 2; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef j, co_await c->Run("sleep_ms", absl::StrCat("10000:", marks, "/slow", i)));
    slow.push_back(j);
  }
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef io, co_await c->RunAsync("meet", absl::StrCat(marks, "/c:", marks, "/never:50000")));
  slow.push_back(io);
  std::function<bool()> all_run = [&] {
    return std::filesystem::exists(marks + "/slow0") && std::filesystem::exists(marks + "/slow1") &&
           std::filesystem::exists(marks + "/c");
  };
  const bool all_ran = co_await WaitUntil(all_run);
  EXPECT_TRUE(all_ran);
  // One more waits for a worker: it fails at Close.
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef waiting, co_await c->Run("square", "2"));
  const absl::Time t0 = absl::Now();
  compute::CloseOptions co;
  co.terminate = true;
  absl::Status closed = co_await c->Close(co);
  EXPECT_OK(closed);
  std::printf("close_terminate_ms: %.1f ms\n", absl::ToDoubleMilliseconds(absl::Now() - t0));
  for (TaskRef& j : slow) {
    absl::StatusOr<Value> cancelled = co_await j.Join(kLong);
    EXPECT_THAT(cancelled.status(), StatusIs(absl::StatusCode::kCancelled));
  }
  absl::StatusOr<Value> refused = co_await waiting.Join(kLong);
  EXPECT_THAT(refused.status(), StatusIs(absl::StatusCode::kFailedPrecondition));
  {
    const bool seen = co_await WaitForEvents(ev, "computation_closed");
    EXPECT_TRUE(seen) << "waiting for computation_closed";
  }
  EXPECT_EQ(ev->Of("job_terminated").size(), 3u);
  EXPECT_EQ(ev->Of("worker_closed").size(), 2u);
  EXPECT_EQ(ev->Of("node_closed").size(), 1u);
  EXPECT_EQ(ev->Of("computation_closed").size(), 1u);
  EXPECT_EQ(c->nodes()[0].state, compute::NodeState::kClosed);
  for (const compute::WorkerInfo& w : c->workers()) EXPECT_EQ(w.state, compute::WorkerState::kClosed);
  EXPECT_TRUE(c->jobs().empty());
  // The workers, whose functions were still running, ended with it.
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<std::string> line = co_await NodeLine(node, "worker closed ");
    EXPECT_OK(line.status());
  }
  absl::StatusOr<TaskRef> late = co_await c->Run("square", "1");
  EXPECT_THAT(late.status(), StatusIs(absl::StatusCode::kFailedPrecondition));
  // Every event names this computation and a type from computation.h.
  for (const Value& e : ev->all) {
    EXPECT_EQ(Str(e, "computation"), c->id()) << e.DebugString();
    EXPECT_FALSE(Str(e, "type").empty()) << e.DebugString();
  }
  co_return absl::OkStatus();
}

PICOS_CORO_TEST(ComputeEvents, EventsHealthAccessorsRunAtAsyncSuspendAndTerminate) {
  const std::string dest = FreshDir("compute-events-dest");
  const std::string marks = FreshDir("compute-events-marks");
  std::vector<std::string> flags;
  flags.push_back("--min_pulse_interval=0.1");
  flags.push_back("--pulse_interval=200ms");
  absl::StatusOr<NodeProcess> node = co_await StartNode(2, dest, std::move(flags));
  CO_ASSERT_OK(node);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  if (me.ok()) {
    std::shared_ptr<Events> ev = StartCollector();
    absl::Status body = co_await Body(*node, ev, marks);
    EXPECT_OK(body);
    (void)ev->task.Terminate();
    me->reset();
  }
  EXPECT_OK(me.status());
  absl::Status stopped = co_await StopNode(*node);
  EXPECT_OK(stopped);
}

}  // namespace
}  // namespace picos::testing
