// Core figures of picos against bare C++20 coroutines, measured in one run.
//
//   bazel run -c opt //testing/bench:core_bench
//   bazel run -c opt //testing/bench:core_bench -- --tasks=100000 --noconcurrency
//
// Prints `name: value unit` lines; each figure with a floor prints
// `floor_<name>` right after it.
#include <cstdint>
#include <cstdio>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "core/cli/flags.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"
#include "testing/bench/concurrency_figures.h"
#include "testing/bench/figures.h"
#include "testing/bench/floor.h"

ABSL_FLAG(int64_t, tasks, 1'000'000, "tasks in the memory and spawn figures (1000..10000000)");
ABSL_FLAG(int64_t, round_trips, 5'000'000, "ping-pong round trips (1000..1000000000)");
ABSL_FLAG(int64_t, fanout_messages, 1'000'000, "fan-out messages in all (1000..1000000000)");
ABSL_FLAG(int64_t, yields, 10'000'000, "yield switches (1000..1000000000)");
ABSL_FLAG(bool, concurrency, true, "also print the channel, lock and timeout figures");

namespace picos::testing {
namespace {


// --- picos ---

Task<> WaitForMessage() { (void)co_await Receive(); }

Task<> SpawnMany(int64_t n, std::vector<TaskRef>* keep) {
  Scheduler& s = ThisScheduler();
  for (int64_t i = 0; i < n; ++i) {
    TaskRef t = s.Spawn(WaitForMessage);
    if (keep) keep->push_back(std::move(t));
  }
  // Each spawned task runs to its first suspension before this resumes.
  co_await Yield();
}

// Memory: n tasks each blocked in Receive, RSS growth / n.
double BytesPerSuspendedTask(int64_t n) {
  int64_t before = CurrentRssBytes();
  Scheduler s;
  TaskRef driver = s.Spawn(SpawnMany, n, nullptr);
  (void)s.RunUntil(driver);
  int64_t after = PeakRssBytes();
  if (static_cast<int64_t>(s.task_count()) != n) std::fprintf(stderr, "unexpected task count\n");
  return static_cast<double>(after - before) / static_cast<double>(n);
}

double SpawnSeconds(int64_t n) {
  Scheduler s;
  double secs = 0;
  secs = Seconds([&] {
    TaskRef driver = s.Spawn(SpawnMany, n, nullptr);
    (void)s.RunUntil(driver);
  });
  return secs;
}

Task<> Pinger(int64_t n, TaskRef peer) {
  TaskRef self = Self();
  for (int64_t i = 0; i < n; ++i) {
    (void)peer.Send(Value(i));
    (void)co_await Receive();
  }
  (void)peer.Send(Value());
}

Task<> Ponger(TaskRef* pinger) {
  for (;;) {
    absl::StatusOr<Value> m = co_await Receive();
    if (!m.ok() || m->is_null()) co_return;
    (void)pinger->Send(std::move(*m));
  }
}

double PingPongPerSecond(int64_t n) {
  Scheduler s;
  TaskRef pinger;
  TaskRef ponger = s.Spawn(Ponger, &pinger);
  pinger = s.Spawn(Pinger, n, ponger);
  double secs = Seconds([&] { (void)s.Run(); });
  return static_cast<double>(n) / secs;
}

Task<> Drain(int64_t n) {
  for (int64_t i = 0; i < n; ++i) (void)co_await Receive();
}

Task<> FanOut(std::vector<TaskRef> receivers, int64_t per_receiver) {
  for (int64_t i = 0; i < per_receiver; ++i) {
    for (const TaskRef& r : receivers) (void)r.Send(Value(i));
    co_await Yield();
  }
}

double FanOutPerSecond(int64_t total) {
  constexpr int kReceivers = 1000;
  int64_t per = total / kReceivers;
  Scheduler s;
  std::vector<TaskRef> receivers;
  for (int i = 0; i < kReceivers; ++i) receivers.push_back(s.Spawn(Drain, per));
  s.Spawn(FanOut, receivers, per);
  double secs = Seconds([&] { (void)s.Run(); });
  return static_cast<double>(per * kReceivers) / secs;
}

Task<> Yielder(int64_t n) {
  for (int64_t i = 0; i < n; ++i) (void)co_await Yield();
}

double YieldsPerSecond(int64_t n) {
  Scheduler s;
  s.Spawn(Yielder, n / 2);
  s.Spawn(Yielder, n / 2);
  double secs = Seconds([&] { (void)s.Run(); });
  return static_cast<double>(n) / secs;
}

// --- floor ---

FloorCoro FloorWait(FloorMailbox* box) { (void)co_await FloorReceiveAwaiter{box}; }

double FloorBytesPerSuspendedTask(int64_t n) {
  int64_t before = CurrentRssBytes();
  FloorReady ready;
  std::vector<FloorMailbox> boxes(n);
  std::vector<std::coroutine_handle<>> frames;
  frames.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    FloorCoro c = FloorWait(&boxes[i]);
    frames.push_back(c.h);
    ready.Push(c.h);
  }
  ready.RunAll();
  int64_t after = PeakRssBytes();
  for (auto& b : boxes) b.waiter.destroy();
  return static_cast<double>(after - before) / static_cast<double>(n);
}

double FloorSpawnSeconds(int64_t n) {
  FloorReady ready;
  std::vector<FloorMailbox> boxes(n);
  double secs = Seconds([&] {
    for (int64_t i = 0; i < n; ++i) ready.Push(FloorWait(&boxes[i]).h);
    ready.RunAll();
  });
  for (auto& b : boxes) b.waiter.destroy();
  return secs;
}

FloorCoro FloorPinger(FloorReady* r, FloorMailbox* mine, FloorMailbox* peer, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    FloorSend(*r, *peer, i);
    (void)co_await FloorReceiveAwaiter{mine};
  }
  FloorSend(*r, *peer, -1);
}

FloorCoro FloorPonger(FloorReady* r, FloorMailbox* mine, FloorMailbox* peer) {
  for (;;) {
    int64_t v = co_await FloorReceiveAwaiter{mine};
    if (v < 0) co_return;
    FloorSend(*r, *peer, v);
  }
}

double FloorPingPongPerSecond(int64_t n) {
  FloorReady ready;
  FloorMailbox a, b;
  ready.Push(FloorPonger(&ready, &b, &a).h);
  ready.Push(FloorPinger(&ready, &a, &b, n).h);
  double secs = Seconds([&] { ready.RunAll(); });
  return static_cast<double>(n) / secs;
}

FloorCoro FloorDrain(FloorMailbox* box, int64_t n) {
  for (int64_t i = 0; i < n; ++i) (void)co_await FloorReceiveAwaiter{box};
}

FloorCoro FloorFanOut(FloorReady* r, std::vector<FloorMailbox>* boxes, int64_t per) {
  for (int64_t i = 0; i < per; ++i) {
    for (FloorMailbox& b : *boxes) FloorSend(*r, b, i);
    co_await FloorYieldAwaiter{r};
  }
}

double FloorFanOutPerSecond(int64_t total) {
  constexpr int kReceivers = 1000;
  int64_t per = total / kReceivers;
  FloorReady ready;
  std::vector<FloorMailbox> boxes(kReceivers);
  for (auto& b : boxes) ready.Push(FloorDrain(&b, per).h);
  ready.Push(FloorFanOut(&ready, &boxes, per).h);
  double secs = Seconds([&] { ready.RunAll(); });
  return static_cast<double>(per * kReceivers) / secs;
}

FloorCoro FloorYielder(FloorReady* r, int64_t n) {
  for (int64_t i = 0; i < n; ++i) co_await FloorYieldAwaiter{r};
}

double FloorYieldsPerSecond(int64_t n) {
  FloorReady ready;
  ready.Push(FloorYielder(&ready, n / 2).h);
  ready.Push(FloorYielder(&ready, n / 2).h);
  double secs = Seconds([&] { ready.RunAll(); });
  return static_cast<double>(n) / secs;
}

}  // namespace
}  // namespace picos::testing

int main(int argc, char** argv) {
  using namespace picos::testing;
  absl::SetProgramUsageMessage("Prints picos's core figures beside a bare-coroutine floor.");
  absl::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_tasks, 1000, 10'000'000) ||
      !picos::FlagInRange(FLAGS_round_trips, 1000, 1'000'000'000) ||
      !picos::FlagInRange(FLAGS_fanout_messages, 1000, 1'000'000'000) ||
      !picos::FlagInRange(FLAGS_yields, 1000, 1'000'000'000)) {
    return 2;
  }
  const int64_t tasks = absl::GetFlag(FLAGS_tasks);
  const int64_t round_trips = absl::GetFlag(FLAGS_round_trips);
  const int64_t fanout = absl::GetFlag(FLAGS_fanout_messages);
  const int64_t yields = absl::GetFlag(FLAGS_yields);

  // Peak RSS growth over n suspended tasks, each measured in a fresh child.
  PrintFigure("bytes_per_suspended_task", InChild(&BytesPerSuspendedTask, tasks), "B");
  PrintFigure("floor_bytes_per_suspended_task", InChild(&FloorBytesPerSuspendedTask, tasks), "B");
  // Each in a fresh child too: both pay for fresh pages, neither reuses the
  // other's freed heap.
  PrintFigure("spawn_1m_seconds", InChild(&SpawnSeconds, tasks) * 1e6 / tasks, "s");
  PrintFigure("floor_spawn_1m_seconds", InChild(&FloorSpawnSeconds, tasks) * 1e6 / tasks, "s");
  PrintFigure("pingpong_round_trips_per_s", PingPongPerSecond(round_trips), "1/s");
  PrintFigure("floor_pingpong_round_trips_per_s", FloorPingPongPerSecond(round_trips), "1/s");
  PrintFigure("fanout_messages_per_s", FanOutPerSecond(fanout), "1/s");
  PrintFigure("floor_fanout_messages_per_s", FloorFanOutPerSecond(fanout), "1/s");
  PrintFigure("yield_switches_per_s", YieldsPerSecond(yields), "1/s");
  PrintFigure("floor_yield_switches_per_s", FloorYieldsPerSecond(yields), "1/s");
  if (absl::GetFlag(FLAGS_concurrency)) RunConcurrencyFigures();
  return 0;
}
