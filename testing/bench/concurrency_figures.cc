#include "testing/bench/concurrency_figures.h"

#include <cstdint>
#include <cstdio>
#include <vector>

#include "core/kernel/channel.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/sync.h"
#include "core/kernel/task.h"
#include "testing/bench/figures.h"

namespace picos::testing {
namespace {

constexpr int kSubscribers = 100;
constexpr int64_t kChannelMessages = 20'000;  // x 100 subscribers = 2,000,000 deliveries
constexpr int64_t kLockHandoffs = 2'000'000;
constexpr int64_t kTimeoutTasks = 1'000'000;

// --- channel broadcast ---

Task<> Subscriber(int64_t* received) {
  for (;;) {
    absl::StatusOr<Value> m = co_await Receive();
    if (!m.ok() || !m->is_int()) co_return;  // the closed message is a map
    ++*received;
  }
}

// Subscribes 100 tasks, then sends; channel calls belong on the
// scheduler's thread, so the setup is a task too.
Task<> Publisher(int64_t messages, int64_t* received) {
  Channel ch = Channel::Create("bench");
  Scheduler& s = ThisScheduler();
  for (int i = 0; i < kSubscribers; ++i) {
    absl::Status st = ch.Subscribe(s.Spawn(Subscriber, received));
    if (!st.ok()) std::fprintf(stderr, "subscribe: %s\n", st.ToString().c_str());
  }
  co_await Yield();  // every subscriber now waits in Receive
  for (int64_t i = 0; i < messages; ++i) {
    (void)ch.Send(i);
    // Let the subscribers drain their mailboxes now and then, as a real
    // producer that awaits anything would.
    if (i % 64 == 63) co_await Yield();
  }
  (void)ch.Close();
}

void ChannelDeliveries() {
  Scheduler s;
  int64_t received = 0;
  s.Spawn(Publisher, kChannelMessages, &received);
  double secs = Seconds([&] { (void)s.Run(); });
  const int64_t expected = kChannelMessages * kSubscribers;
  if (received != expected) {
    std::fprintf(stderr, "channel bench: %lld deliveries, expected %lld\n",
                 static_cast<long long>(received), static_cast<long long>(expected));
  }
  PrintFigure("channel_deliveries_per_s", static_cast<double>(received) / secs, "deliveries/s");
}

// --- lock hand-off ---

Task<> Passer(Lock* lock, int64_t rounds, int64_t* handoffs) {
  for (int64_t i = 0; i < rounds; ++i) {
    absl::StatusOr<LockGuard> held = co_await lock->Acquire();
    if (!held.ok()) co_return;
    ++*handoffs;
    co_await Yield();  // the other task queues for the lock meanwhile
    held->Release();
  }
}

void LockHandoffs() {
  Scheduler s;
  Lock lock;
  int64_t handoffs = 0;
  s.Spawn(Passer, &lock, kLockHandoffs / 2, &handoffs);
  s.Spawn(Passer, &lock, kLockHandoffs / 2, &handoffs);
  double secs = Seconds([&] { (void)s.Run(); });
  PrintFigure("lock_handoffs_per_s", static_cast<double>(handoffs) / secs, "handoffs/s");
}

// --- memory of a pending timeout ---

Task<> WaitTimed() { (void)co_await Receive(absl::Hours(1)); }
Task<> WaitPlain() { (void)co_await Receive(); }

template <Task<> (*Fn)()>
Task<> SpawnWaiters(int64_t n) {
  Scheduler& s = ThisScheduler();
  for (int64_t i = 0; i < n; ++i) s.Spawn(Fn);
  co_await Yield();  // each has run to its Receive
}

template <Task<> (*Fn)()>
double BytesPerWaiter(int64_t n) {
  int64_t before = CurrentRssBytes();
  Scheduler s;
  TaskRef driver = s.Spawn(SpawnWaiters<Fn>, n);
  (void)s.RunUntil(driver);
  int64_t after = PeakRssBytes();
  if (static_cast<int64_t>(s.task_count()) != n) std::fprintf(stderr, "unexpected task count\n");
  return static_cast<double>(after - before) / static_cast<double>(n);
}

}  // namespace

void RunConcurrencyFigures() {
  ChannelDeliveries();
  LockHandoffs();
  PrintFigure("timeouts_1m_bytes_per_task", InChild(&BytesPerWaiter<WaitTimed>, kTimeoutTasks),
              "bytes");
  PrintFigure("receive_1m_bytes_per_task", InChild(&BytesPerWaiter<WaitPlain>, kTimeoutTasks),
              "bytes");
}

}  // namespace picos::testing
