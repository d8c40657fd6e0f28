// Calls on handles from threads that are not the handle's scheduler's:
// against a scheduler that is being destroyed at the same time (issue 9 #2),
// and what OK means from there (issue 8 #3).
#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "core/kernel/channel.h"
#include "core/kernel/monitor.h"
#include "core/kernel/proxy.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos {
namespace {

using ::picos::testing::IsOk;
using ::picos::testing::StatusIs;

Task<> ReceiveForever() {
  for (;;) {
    absl::StatusOr<Value> m = co_await Receive();
    if (!m.ok()) co_return;
  }
}

Task<> SuspendForever() {
  for (;;) {
    absl::StatusOr<Value> v = co_await Suspend();
    if (!v.ok() && v.status().code() == absl::StatusCode::kCancelled) co_return;
  }
}

// The handles of the round in progress, swapped by the main thread and read
// by the hammering threads. Old handles are kept on purpose: they name tasks
// (and a channel) of schedulers that have been destroyed.
// A std::mutex, not an absl::Mutex: ThreadSanitizer sees its handoffs (the
// system's Abseil is not instrumented).
struct Shared {
  std::mutex mu;
  std::vector<TaskRef> tasks;
  std::vector<Channel> channels;
};

// Threads hammer every "any thread" call on handles while the schedulers
// the handles name are created, run and destroyed. Under AddressSanitizer a
// call that reaches a destroyed scheduler is a heap-use-after-free; here each
// call either reaches a live scheduler or says that it is gone.
TEST(CrossThread, HandlesSurviveTheirSchedulersDestruction) {
  constexpr int kRounds = 200;
  constexpr int kThreads = 3;
  Shared shared;
  std::atomic<bool> done{false};
  std::atomic<uint64_t> calls{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      std::vector<TaskRef> tasks;
      std::vector<Channel> channels;
      uint64_t n = 0;
      while (!done.load(std::memory_order_acquire)) {
        {
          std::lock_guard<std::mutex> lock(shared.mu);
          tasks = shared.tasks;
          channels = shared.channels;
        }
        for (int rep = 0; rep < 16; ++rep) {
          for (const TaskRef& t : tasks) {
            (void)t.Send(Value(static_cast<int64_t>(n)));
            (void)t.Resume(Value(1));
            (void)t.state();
            (void)t.DebugString();
            if ((n + i) % 7 == 0) (void)t.Throw(absl::AbortedError("hammer"));
            if ((n + i) % 11 == 0) (void)t.Terminate();
            if ((n + i) % 5 == 0 && !tasks.empty()) (void)Monitor(tasks.front(), t);
            // A Join from elsewhere, as a callback.
            if ((n + i) % 3 == 0) NotifyWhenDone(t, Completer([](absl::StatusOr<Value>) {}));
            ++n;
          }
          for (const Channel& c : channels) (void)c.Send(Value(1));
        }
      }
      calls.fetch_add(n);
    });
  }
  for (int round = 0; round < kRounds; ++round) {
    auto s = std::make_unique<Scheduler>(Scheduler::Options{.name = "doomed"});
    ASSERT_OK(s->StartThread());
    Channel ch = Channel::Create(*s, "news");
    std::vector<TaskRef> tasks = {s->Spawn(ReceiveForever), s->Spawn(SuspendForever),
                                  s->Spawn(ReceiveForever)};
    {
      std::lock_guard<std::mutex> lock(shared.mu);
      // Keep some handles of the previous round: their scheduler is gone.
      if (shared.tasks.size() > 6) shared.tasks.erase(shared.tasks.begin(), shared.tasks.begin() + 3);
      for (const TaskRef& t : tasks) shared.tasks.push_back(t);
      if (shared.channels.size() > 2) shared.channels.erase(shared.channels.begin());
      shared.channels.push_back(ch);
    }
    // Let the hammering reach this scheduler while it runs, then destroy it
    // under their calls.
    std::this_thread::yield();
    s.reset();
  }
  done.store(true, std::memory_order_release);
  for (std::thread& t : threads) t.join();
  {
    std::lock_guard<std::mutex> lock(shared.mu);
    for (const TaskRef& t : shared.tasks) {
      EXPECT_TRUE(t.done());
      EXPECT_THAT(t.Send(Value(1)), StatusIs(absl::StatusCode::kFailedPrecondition));
    }
    shared.tasks.clear();
    shared.channels.clear();
  }
  EXPECT_GT(calls.load(), 0u);
}


// Issue 8 #3: from another thread, a call that cannot succeed says so.
TEST(CrossThread, ResumeOfATaskNotSuspendedFailsFromAnotherThread) {
  Scheduler s;
  ASSERT_OK(s.StartThread());
  TaskRef t = s.Spawn(ReceiveForever);
  // Wait (bounded by count) until it is parked in Receive().
  for (int i = 0; i < 100000 && t.state() != TaskState::kReceiving; ++i) std::this_thread::yield();
  ASSERT_EQ(t.state(), TaskState::kReceiving);
  EXPECT_THAT(t.Resume(Value(1)), StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_OK(t.Terminate());
  EXPECT_THAT(s.WaitFor(t, absl::Seconds(60)), IsOk());
  s.Stop();
}

TEST(CrossThread, SendOnAClosedChannelFailsFromAnotherThread) {
  Scheduler s;
  Channel ch = Channel::Create(s, "closing");
  TaskRef closer = s.Spawn([ch]() -> Task<> {
    (void)ch.Close();
    co_return;
  });
  ASSERT_OK(s.RunUntil(closer).status());
  ASSERT_OK(s.StartThread());
  absl::Status sent;
  std::thread other([&] { sent = ch.Send(Value(1)); });
  other.join();
  EXPECT_THAT(sent, StatusIs(absl::StatusCode::kFailedPrecondition));
  s.Stop();
}

// A handle whose scheduler has been destroyed, and whose slot a later
// scheduler took, never reaches the later one.
TEST(CrossThread, HandleOfADestroyedSchedulerDoesNotReachItsSuccessor) {
  auto first = std::make_unique<Scheduler>();
  TaskRef old_task = first->Spawn(ReceiveForever);
  Channel old_channel = Channel::Create(*first, "old");
  first.reset();
  Scheduler second;
  ASSERT_OK(second.StartThread());
  EXPECT_THAT(old_task.Send(Value(1)), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(old_task.Terminate(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(old_channel.Send(Value(1)), StatusIs(absl::StatusCode::kFailedPrecondition));
  second.Stop();
}

Task<int> SuspendOnce() {
  absl::StatusOr<Value> v = co_await Suspend();
  if (!v.ok() || !v->is_int()) co_return -1;
  co_return static_cast<int>(v->as_int());
}

Task<absl::Status> ResumeConfirmedOf(TaskRef t, int v) { co_return co_await t.ResumeConfirmed(Value(v)); }

// The outcome as the task's own thread saw it, awaited from a task of
// another scheduler.
TEST(CrossThread, ResumeConfirmedGivesTheOutcome) {
  Scheduler home;
  TaskRef target = home.Spawn(SuspendOnce);
  TaskRef settle = home.Spawn([]() -> Task<> { (void)co_await Yield(); });
  ASSERT_OK(home.RunUntil(settle).status());
  ASSERT_EQ(target.state(), TaskState::kSuspended);
  ASSERT_OK(home.StartThread());
  Scheduler other;
  TaskRef prober = other.Spawn(ResumeConfirmedOf, target, 7);
  EXPECT_THAT(other.RunUntil(prober), IsOk());
  absl::StatusOr<Value> r = home.WaitFor(target, absl::Seconds(60));
  ASSERT_OK(r);
  EXPECT_EQ(r->as_int(), 7);
  home.Stop();
}

// Another resume gets there first: the second is refused, and the prober
// hears so, whichever way the threads interleave.
TEST(CrossThread, ResumeConfirmedReportsAResumeThatLostTheRace) {
  Scheduler home;
  TaskRef target = home.Spawn(SuspendOnce);
  TaskRef settle = home.Spawn([]() -> Task<> { (void)co_await Yield(); });
  ASSERT_OK(home.RunUntil(settle).status());
  ASSERT_EQ(target.state(), TaskState::kSuspended);
  ASSERT_OK(target.Resume(Value(1)));  // queued: the loop does not run
  Scheduler other;
  ASSERT_OK(other.StartThread());
  TaskRef prober = other.Spawn(ResumeConfirmedOf, target, 2);
  ASSERT_OK(home.StartThread());
  absl::StatusOr<Value> probed = other.WaitFor(prober, absl::Seconds(60));
  EXPECT_THAT(probed, StatusIs(absl::StatusCode::kFailedPrecondition));
  absl::StatusOr<Value> r = home.WaitFor(target, absl::Seconds(60));
  ASSERT_OK(r);
  EXPECT_EQ(r->as_int(), 1);
  other.Stop();
  home.Stop();
}

// Issue 9 #3: the inbox and mailboxes have the bounds they document.

// The scheduler's loop does not run, so this thread is "another thread" and
// what it queues stays in the inbox.
TEST(InboxLimit, CallsFromAnotherThreadPastTheLimitAreRefused) {
  Scheduler s(Scheduler::Options{.inbox_limit = 4});
  TaskRef t = s.Spawn(ReceiveForever);  // one closure
  ASSERT_TRUE(t.valid());
  ASSERT_OK(t.Send(Value(1)));
  ASSERT_OK(t.Send(Value(2)));
  ASSERT_OK(s.Post([] {}));  // four
  EXPECT_THAT(t.Send(Value(3)), StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(t.Terminate(), StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(s.Post([] {}), StatusIs(absl::StatusCode::kResourceExhausted));
  // A spawn that could not be queued says so, rather than handing out the
  // handle of a task that never starts.
  EXPECT_FALSE(s.Spawn(ReceiveForever).valid());
}

TEST(MailboxLimit, SendsFromAnotherThreadCountWhileOnTheirWay) {
  Scheduler s;
  TaskRef t = s.Spawn({.name = "bounded", .mailbox_limit = 3}, ReceiveForever);
  for (int i = 0; i < 3; ++i) ASSERT_OK(t.Send(Value(i)));
  EXPECT_THAT(t.Send(Value(4)), StatusIs(absl::StatusCode::kResourceExhausted));
}

Task<> Receives(int n) {
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<Value> m = co_await Receive();
    if (!m.ok()) co_return;
  }
}

PICOS_CORO_TEST(MailboxLimit, SendToAFullMailboxIsRefusedAndReceivingMakesRoom) {
  TaskRef t = ThisScheduler().Spawn({.mailbox_limit = 2}, Receives, 3);
  CO_ASSERT_OK(t.Send(Value(1)));
  CO_ASSERT_OK(t.Send(Value(2)));
  EXPECT_THAT(t.Send(Value(3)), StatusIs(absl::StatusCode::kResourceExhausted));
  CO_ASSERT_OK(co_await Yield());  // it receives both
  CO_ASSERT_OK(t.Send(Value(3)));
  EXPECT_THAT(co_await t.Join(), IsOk());
  // Unbounded by default.
  TaskRef u = ThisScheduler().Spawn(Receives, 1000);
  for (int i = 0; i < 1000; ++i) CO_ASSERT_OK(u.Send(Value(i)));
  EXPECT_THAT(co_await u.Join(), IsOk());
}

PICOS_SIM_TEST(MailboxLimit, DeliverTimesOutOnAMailboxThatStaysFull) {
  Scheduler& s = ThisScheduler();
  TaskRef t = s.Spawn({.mailbox_limit = 1}, SuspendForever);
  CO_ASSERT_OK(t.Send(Value(1)));
  const int64_t start = s.NowNs();
  absl::Status st = co_await t.Deliver(Value(2), absl::Seconds(5));
  EXPECT_THAT(st, StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(s.NowNs() - start, 5'000'000'000);
  CO_ASSERT_OK(t.Terminate());
  (void)co_await t.Join();
}

Task<> ReceivesAfter(absl::Duration delay, int n) {
  (void)co_await Sleep(delay);
  co_await Receives(n);
}

PICOS_SIM_TEST(MailboxLimit, DeliverGoesOnOnceTheTaskReceives) {
  Scheduler& s = ThisScheduler();
  TaskRef t = s.Spawn({.mailbox_limit = 1}, ReceivesAfter, absl::Seconds(2), 3);
  CO_ASSERT_OK(t.Send(Value(1)));
  const int64_t start = s.NowNs();
  CO_ASSERT_OK(co_await t.Deliver(Value(2), absl::Seconds(60)));
  EXPECT_EQ(s.NowNs() - start, 2'000'000'000);
  CO_ASSERT_OK(co_await t.Deliver(Value(3), absl::Seconds(60)));
  EXPECT_THAT(co_await t.Join(), IsOk());
}

// SendWhenRoom: waits while the mailbox is full, sends as soon as the task
// takes a message (woken by it, not at the next poll), and gives
// kResourceExhausted when its timeout passes first.
PICOS_SIM_TEST(MailboxLimit, SendWhenRoomWaitsForRoomOrTheTimeout) {
  Scheduler& s = ThisScheduler();
  // Receives 2.0005 s after it starts: between two milliseconds, where a
  // sender that polled each millisecond would come only at the next.
  TaskRef t = s.Spawn({.mailbox_limit = 1}, ReceivesAfter, absl::Microseconds(2'000'500), 2);
  CO_ASSERT_OK(t.Send(Value(1)));
  int64_t start = s.NowNs();
  EXPECT_THAT(co_await SendWhenRoom(t, Value(2), absl::Seconds(1)), StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(s.NowNs() - start, 1'000'000'000);
  CO_ASSERT_OK(co_await SendWhenRoom(t, Value(2), absl::Seconds(60)));
  EXPECT_EQ(s.NowNs() - start, 2'000'500'000) << "sent the moment the task received";
  EXPECT_THAT(co_await t.Join(), IsOk());
  // Another refusal is given at once.
  EXPECT_THAT(co_await SendWhenRoom(t, Value(3), absl::Seconds(60)), ::testing::Not(IsOk()));
}

// A task terminated or thrown into while SendWhenRoom waits gets the
// interrupt's status at once, whatever its code (a thrown kDeadlineExceeded
// is not taken for the wait's own timeout).
Task<absl::Status> SendsWhenRoom(TaskRef to) { co_return co_await SendWhenRoom(to, Value(2), absl::Seconds(60)); }

PICOS_SIM_TEST(MailboxLimit, SendWhenRoomEndsAtAnInterrupt) {
  Scheduler& s = ThisScheduler();
  TaskRef full = s.Spawn({.mailbox_limit = 1}, ReceivesAfter, absl::Seconds(3600), 1);
  CO_ASSERT_OK(full.Send(Value(1)));
  TaskRef sender = s.Spawn(SendsWhenRoom, full);
  (void)co_await Sleep(absl::Seconds(1));
  const int64_t thrown_at = s.NowNs();
  CO_ASSERT_OK(sender.Throw(absl::DeadlineExceededError("thrown in")));
  absl::StatusOr<Value> r = co_await sender.Join();
  EXPECT_EQ(s.NowNs(), thrown_at);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kDeadlineExceeded, ::testing::HasSubstr("thrown in")));
  CO_ASSERT_OK(full.Terminate());
  (void)co_await full.Join();
}

// A proxy whose layer cannot tell when there is room (TaskProxy's default
// WaitForRoom): SendWhenRoom tries again each millisecond instead.
class FullUntil final : public TaskProxy {
 public:
  explicit FullUntil(int64_t until_ns) : until_ns_(until_ns) {}
  absl::Status Send(Value) override {
    ++tries;
    if (ThisScheduler().NowNs() < until_ns_) return absl::ResourceExhaustedError("full");
    return absl::OkStatus();
  }
  absl::Status Resume(Value) override { return absl::OkStatus(); }
  absl::Status Terminate() override { return absl::OkStatus(); }
  absl::Status Throw(absl::Status) override { return absl::OkStatus(); }
  void Join(Completer done) override { done.Complete(Value()); }
  absl::Status Monitor(const TaskRef&) override { return absl::OkStatus(); }
  TaskState state() const override { return TaskState::kWaiting; }
  std::string name() const override { return "full_until"; }
  uint64_t id() const override { return 1; }
  std::string DebugString() const override { return "full_until"; }
  int tries = 0;

 private:
  const int64_t until_ns_;
};

PICOS_SIM_TEST(MailboxLimit, SendWhenRoomPollsALayerThatCannotTell) {
  Scheduler& s = ThisScheduler();
  const int64_t start = s.NowNs();
  auto proxy = std::make_unique<FullUntil>(start + 10'500'000);
  FullUntil* p = proxy.get();
  TaskRef t = MakeTaskProxy(std::move(proxy));
  CO_ASSERT_OK(co_await SendWhenRoom(t, Value(1), absl::Seconds(60)));
  EXPECT_EQ(s.NowNs() - start, 11'000'000) << "the first millisecond after it had room";
  EXPECT_GE(p->tries, 11);
  EXPECT_LE(p->tries, 13);
}

// A task of another scheduler waits for room in a bounded mailbox: the wake
// crosses threads.
TEST(MailboxLimit, DeliverFromAnotherScheduler) {
  Scheduler receiver_side;
  TaskRef t = receiver_side.Spawn({.mailbox_limit = 1}, ReceivesAfter, absl::Milliseconds(50), 5);
  ASSERT_OK(receiver_side.StartThread());
  Scheduler sender_side;
  TaskRef sender = sender_side.Spawn([t]() -> Task<absl::Status> {
    for (int i = 0; i < 5; ++i) {
      absl::Status st = co_await t.Deliver(Value(i), absl::Seconds(60));
      if (!st.ok()) co_return st;
    }
    co_return absl::OkStatus();
  });
  EXPECT_THAT(sender_side.RunUntil(sender), IsOk());
  EXPECT_THAT(receiver_side.WaitFor(t, absl::Seconds(60)), IsOk());
  receiver_side.Stop();
}

}  // namespace
}  // namespace picos
