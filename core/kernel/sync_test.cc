#include "core/kernel/sync.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"
#include "core/kernel/task_internal.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos {
namespace {

using ::picos::testing::IsOk;
using ::picos::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Takes the lock, notes its id, holds it across a sleep, releases.
template <typename L>
Task<absl::Status> HoldFor(L* lock, int id, std::vector<int>* order, absl::Duration hold,
                           absl::Duration timeout) {
  absl::StatusOr<LockGuard> held = co_await lock->Acquire(timeout);
  if (!held.ok()) co_return held.status();
  order->push_back(id);
  (void)co_await Sleep(hold);
  order->push_back(-id);
  co_return absl::OkStatus();
}

PICOS_SIM_TEST(Lock, ExclusiveAndFirstComeFirstServed) {
  Lock lock;
  std::vector<int> order;
  std::vector<TaskRef> ts;
  for (int i = 1; i <= 4; ++i) {
    ts.push_back(ThisScheduler().Spawn(HoldFor<Lock>, &lock, i, &order, absl::Milliseconds(1),
                                       absl::InfiniteDuration()));
  }
  for (TaskRef& t : ts) {
    absl::StatusOr<Value> r = co_await t.Join();
    EXPECT_OK(r);
  }
  EXPECT_THAT(order, ElementsAre(1, -1, 2, -2, 3, -3, 4, -4));
  EXPECT_FALSE(lock.locked());
}

PICOS_SIM_TEST(Lock, TimeoutAndTry) {
  Lock lock;
  absl::StatusOr<LockGuard> s = co_await lock.Acquire();
  CO_ASSERT_OK(s);
  EXPECT_TRUE(lock.HeldByCurrentTask());
  std::vector<int> order;
  TaskRef late = ThisScheduler().Spawn(HoldFor<Lock>, &lock, 2, &order, absl::ZeroDuration(),
                                       absl::Milliseconds(5));
  absl::StatusOr<Value> r = co_await late.Join();
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kDeadlineExceeded));
  // Zero timeout: a try, no wait.
  absl::StatusOr<LockGuard> now = co_await lock.Acquire(absl::ZeroDuration());
  EXPECT_THAT(now, StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_FALSE(lock.TryAcquire());
  s->Release();
  EXPECT_FALSE(lock.locked());  // the timed-out waiter was skipped
  EXPECT_TRUE(order.empty());
  LockGuard again = lock.TryAcquire();
  EXPECT_TRUE(again.holds());
}

// Acquiring gives a guard that releases it: at the end of its scope, at
// Release(), once, and not when moved from.
PICOS_CORO_TEST(Lock, GuardReleasesOnceAtScopeEnd) {
  Lock lock;
  {
    absl::StatusOr<LockGuard> held = co_await lock.Acquire();
    CO_ASSERT_OK(held);
    EXPECT_TRUE(held->holds());
    EXPECT_TRUE(lock.locked());
  }
  EXPECT_FALSE(lock.locked());
  absl::StatusOr<LockGuard> held = co_await lock.Acquire();
  CO_ASSERT_OK(held);
  LockGuard moved = std::move(*held);
  EXPECT_FALSE(held->holds());
  EXPECT_TRUE(moved.holds());
  held->Release();  // holds nothing: changes nothing
  EXPECT_TRUE(lock.locked());
  moved.Release();
  EXPECT_FALSE(lock.locked());
  EXPECT_FALSE(moved.holds());
  // A stale guard never releases a later hold, even of the same task.
  LockGuard first = lock.TryAcquire();
  CO_ASSERT_TRUE(first.holds());
  LockGuard copy_of_hold = std::move(first);
  copy_of_hold.Release();
  LockGuard second = lock.TryAcquire();
  CO_ASSERT_TRUE(second.holds());
  copy_of_hold.Release();
  first.Release();
  EXPECT_TRUE(lock.locked());
  LockGuard none;
  EXPECT_FALSE(none);
}

PICOS_SIM_TEST(Lock, TerminatedWaitersHoldNothing) {
  Lock lock;
  std::vector<int> order;
  absl::StatusOr<LockGuard> mine = co_await lock.Acquire();
  CO_ASSERT_OK(mine);
  auto spawn = [&](int id) {
    return ThisScheduler().Spawn(HoldFor<Lock>, &lock, id, &order, absl::ZeroDuration(),
                                 absl::InfiniteDuration());
  };
  TaskRef b = spawn(2), c = spawn(3), d = spawn(4);
  co_await Yield();
  // b is terminated while it waits; c is handed the lock and terminated
  // before it runs: it must pass the lock on to d.
  CO_ASSERT_OK(b.Terminate());
  mine->Release();
  CO_ASSERT_OK(c.Terminate());
  absl::StatusOr<Value> rb = co_await b.Join();
  absl::StatusOr<Value> rc = co_await c.Join();
  absl::StatusOr<Value> rd = co_await d.Join();
  EXPECT_THAT(rb, StatusIs(absl::StatusCode::kCancelled));
  EXPECT_THAT(rc, StatusIs(absl::StatusCode::kCancelled));
  EXPECT_OK(rd);
  EXPECT_THAT(order, ElementsAre(4, -4));
  EXPECT_FALSE(lock.locked());
}

Task<> HoldUntilKilled(Lock* lock) {
  absl::StatusOr<LockGuard> held = co_await lock->Acquire();
  if (!held.ok()) co_return;
  (void)co_await Suspend();   // kCancelled on Terminate...
  (void)co_await Suspend();   // ...and waiting again: destroyed here
}

PICOS_SIM_TEST(Lock, GuardReleasesWhenTheHolderIsDestroyed) {
  Lock lock;
  TaskRef t = ThisScheduler().Spawn(HoldUntilKilled, &lock);
  co_await Yield();
  EXPECT_TRUE(lock.locked());
  CO_ASSERT_OK(t.Terminate());
  (void)co_await t.Join();
  EXPECT_FALSE(lock.locked());
}

PICOS_SIM_TEST(RLock, ReentrantAndExclusive) {
  RLock lock;
  absl::StatusOr<LockGuard> outer = co_await lock.Acquire();
  CO_ASSERT_OK(outer);
  absl::StatusOr<LockGuard> inner = co_await lock.Acquire();
  CO_ASSERT_OK(inner);
  EXPECT_EQ(lock.depth(), 2u);
  std::vector<int> order;
  TaskRef other = ThisScheduler().Spawn(HoldFor<RLock>, &lock, 7, &order, absl::ZeroDuration(),
                                        absl::InfiniteDuration());
  co_await Yield();
  inner->Release();
  co_await Yield();
  EXPECT_TRUE(order.empty());  // still held once
  EXPECT_FALSE(inner->holds());
  EXPECT_TRUE(outer->holds());
  outer->Release();
  outer->Release();  // once only
  absl::StatusOr<Value> r = co_await other.Join();
  EXPECT_OK(r);
  EXPECT_THAT(order, ElementsAre(7, -7));
  EXPECT_FALSE(lock.locked());
}

Task<absl::Status> Consume(Condition* cond, std::vector<int>* queue, std::vector<int>* got,
                           int id) {
  absl::StatusOr<LockGuard> held = co_await cond->Acquire();
  if (!held.ok()) co_return held.status();
  while (queue->empty()) {
    absl::Status w = co_await cond->Wait();
    if (!w.ok()) co_return w;
  }
  got->push_back(id * 100 + queue->front());
  queue->erase(queue->begin());
  co_return absl::OkStatus();
}

PICOS_SIM_TEST(Condition, NotifyWakesWaitersInOrder) {
  Condition cond;
  std::vector<int> queue, got;
  TaskRef a = ThisScheduler().Spawn(Consume, &cond, &queue, &got, 1);
  TaskRef b = ThisScheduler().Spawn(Consume, &cond, &queue, &got, 2);
  TaskRef c = ThisScheduler().Spawn(Consume, &cond, &queue, &got, 3);
  co_await Yield();
  absl::StatusOr<LockGuard> held = co_await cond.Acquire();
  CO_ASSERT_OK(held);
  queue.push_back(5);
  cond.Notify();
  // The woken one waits for the lock, which we hold across a yield.
  co_await Yield();
  EXPECT_TRUE(got.empty());
  held->Release();
  absl::StatusOr<Value> ra = co_await a.Join();
  EXPECT_OK(ra);
  EXPECT_THAT(got, ElementsAre(105));
  // c is terminated while waiting: it returns without the lock.
  CO_ASSERT_OK(c.Terminate());
  absl::StatusOr<Value> rc = co_await c.Join();
  EXPECT_THAT(rc, StatusIs(absl::StatusCode::kCancelled));
  queue.push_back(6);
  cond.NotifyAll();
  absl::StatusOr<Value> rb = co_await b.Join();
  EXPECT_OK(rb);
  EXPECT_THAT(got, ElementsAre(105, 206));
}

PICOS_SIM_TEST(Condition, WaitTimesOutWithTheLockHeldAgain) {
  Condition cond;
  Task<absl::Status> early = cond.Wait(absl::Milliseconds(1));
  absl::Status no_lock = co_await std::move(early);
  EXPECT_THAT(no_lock, StatusIs(absl::StatusCode::kFailedPrecondition));
  absl::StatusOr<LockGuard> outer = co_await cond.Acquire();
  CO_ASSERT_OK(outer);
  absl::StatusOr<LockGuard> inner = co_await cond.Acquire();  // depth 2, restored after the wait
  CO_ASSERT_OK(inner);
  absl::Status s = co_await cond.Wait(absl::Milliseconds(5));
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_TRUE(cond.HeldByCurrentTask());
  // The guards taken before the wait hold the lock again.
  EXPECT_TRUE(inner->holds());
  inner->Release();
  EXPECT_TRUE(cond.HeldByCurrentTask());
  outer->Release();
  EXPECT_FALSE(cond.HeldByCurrentTask());
}

// An interrupted Condition::Wait returns without the lock: the caller's
// guard then releases nothing, even once another task holds the lock.
PICOS_CORO_TEST(Condition, InterruptedWaitLeavesGuardsEmpty) {
  Condition cond;
  auto waiter = [](Condition* c, bool* guard_held_after) -> Task<absl::Status> {
    absl::StatusOr<LockGuard> held = co_await c->Acquire();
    if (!held.ok()) co_return held.status();
    absl::Status s = co_await c->Wait();
    *guard_held_after = held->holds();
    co_return s;  // `held` releases nothing here
  };
  bool after = true;
  TaskRef t = ThisScheduler().Spawn(waiter, &cond, &after);
  co_await Yield();
  absl::StatusOr<LockGuard> mine = co_await cond.Acquire();  // free while t waits
  CO_ASSERT_OK(mine);
  CO_ASSERT_OK(t.Throw(absl::AbortedError("stop waiting")));
  absl::StatusOr<Value> r = co_await t.Join();
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kAborted));
  EXPECT_FALSE(after);
  EXPECT_TRUE(cond.HeldByCurrentTask());  // t's guard did not release ours
}

Task<absl::Status> WaitEvent(Event* e, absl::Duration timeout, int* woke) {
  absl::Status s = co_await e->Wait(timeout);
  if (s.ok()) ++*woke;
  co_return s;
}

PICOS_SIM_TEST(Event, SetWakesEveryWaiter) {
  Event e;
  int woke = 0;
  std::vector<TaskRef> ts;
  for (int i = 0; i < 3; ++i) {
    ts.push_back(ThisScheduler().Spawn(WaitEvent, &e, absl::InfiniteDuration(), &woke));
  }
  TaskRef timed = ThisScheduler().Spawn(WaitEvent, &e, absl::Milliseconds(2), &woke);
  absl::StatusOr<Value> rt = co_await timed.Join();
  EXPECT_THAT(rt, StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(woke, 0);
  e.Set();
  for (TaskRef& t : ts) {
    absl::StatusOr<Value> r = co_await t.Join();
    EXPECT_OK(r);
  }
  EXPECT_EQ(woke, 3);
  absl::Status again = co_await e.Wait(absl::ZeroDuration());
  EXPECT_OK(again);  // stays set
  e.Clear();
  EXPECT_FALSE(e.is_set());
  absl::Status cleared = co_await e.Wait(absl::ZeroDuration());
  EXPECT_THAT(cleared, StatusIs(absl::StatusCode::kDeadlineExceeded));
}

// Takes a unit and keeps it in `units` (past the task's end: a semaphore's
// units belong to no task).
Task<absl::Status> TakeUnit(Semaphore* s, std::vector<int>* order, int id,
                            std::vector<SemaphoreUnits>* units) {
  absl::StatusOr<SemaphoreUnits> st = co_await s->Acquire();
  if (!st.ok()) co_return st.status();
  order->push_back(id);
  units->push_back(std::move(*st));
  co_return absl::OkStatus();
}

PICOS_SIM_TEST(Semaphore, CountsHandsOffAndGivesBack) {
  Semaphore sem(2);
  std::vector<int> order;
  std::vector<TaskRef> ts;
  std::vector<SemaphoreUnits> units;
  for (int i = 1; i <= 4; ++i) {
    ts.push_back(ThisScheduler().Spawn(TakeUnit, &sem, &order, i, &units));
  }
  co_await Yield();
  EXPECT_THAT(order, ElementsAre(1, 2));
  EXPECT_EQ(sem.value(), 0u);
  // 3 is handed a unit and terminated before it runs: the unit goes to 4.
  CO_ASSERT_OK(sem.Release());
  CO_ASSERT_OK(ts[2].Terminate());
  absl::StatusOr<Value> r3 = co_await ts[2].Join();
  EXPECT_THAT(r3, StatusIs(absl::StatusCode::kCancelled));
  absl::StatusOr<Value> r4 = co_await ts[3].Join();
  EXPECT_OK(r4);
  EXPECT_THAT(order, ElementsAre(1, 2, 4));
  EXPECT_EQ(sem.value(), 0u);
  CO_ASSERT_OK(sem.Release());
  CO_ASSERT_OK(sem.Release());
  CO_ASSERT_OK(sem.Release());
  EXPECT_EQ(sem.value(), 3u);  // a plain semaphore may exceed its start value
  {
    absl::StatusOr<SemaphoreUnits> t = co_await sem.Acquire(absl::Milliseconds(1));
    EXPECT_OK(t);
    EXPECT_EQ(sem.value(), 2u);
  }
  EXPECT_EQ(sem.value(), 3u);  // the units went back at the end of the scope
  units.clear();               // and so do the tasks' units
  EXPECT_EQ(sem.value(), 6u);
  SemaphoreUnits u = sem.TryAcquire();
  EXPECT_TRUE(u.holds());
  EXPECT_EQ(sem.value(), 5u);
  for (TaskRef& x : ts) (void)co_await x.Join();
}

PICOS_SIM_TEST(BoundedSemaphore, ReleasedTooOftenIsAnError) {
  BoundedSemaphore sem(1);
  EXPECT_THAT(sem.Release(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("limit 1")));
  absl::StatusOr<SemaphoreUnits> unit = co_await sem.Acquire();
  CO_ASSERT_OK(unit);
  absl::StatusOr<SemaphoreUnits> busy = co_await sem.Acquire(absl::Milliseconds(2));
  EXPECT_THAT(busy, StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_FALSE(sem.TryAcquire());
  unit->Release();
  EXPECT_THAT(sem.Release(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(sem.value(), 1u);
}

// Many waiters that time out do not pile up in the queue.
PICOS_SIM_TEST(Lock, StaleWaitersAreSwept) {
  Lock lock;
  absl::StatusOr<LockGuard> mine = co_await lock.Acquire();
  CO_ASSERT_OK(mine);
  std::vector<int> order;
  for (int round = 0; round < 20; ++round) {
    std::vector<TaskRef> ts;
    for (int i = 0; i < 50; ++i) {
      ts.push_back(ThisScheduler().Spawn(HoldFor<Lock>, &lock, i, &order, absl::ZeroDuration(),
                                         absl::ZeroDuration() + absl::Microseconds(10)));
    }
    for (TaskRef& t : ts) (void)co_await t.Join();
  }
  mine->Release();
  EXPECT_TRUE(order.empty());
  EXPECT_FALSE(lock.locked());
}

// Issue 8, "a lock held by a terminated task": a guard moved out of its
// task's frame outlives the task. Later acquires must not wait forever on a
// holder that no longer exists.

// Acquires `lock` `levels` times, parks the guards in `escaped` (beyond its
// own frame), and ends when resumed.
template <typename L>
Task<> HoldThenEscape(L* lock, std::vector<LockGuard>* escaped, int levels) {
  for (int i = 0; i < levels; ++i) {
    absl::StatusOr<LockGuard> held = co_await lock->Acquire();
    if (!held.ok()) co_return;
    escaped->push_back(std::move(*held));
  }
  (void)co_await Suspend();
}

// Acquires `lock` (bounded: a bug shows as kDeadlineExceeded, not a hang),
// notes it, and holds it until resumed.
template <typename L>
Task<absl::Status> AcquireAndHold(L* lock, bool* got) {
  absl::StatusOr<LockGuard> held = co_await lock->Acquire(absl::Seconds(30));
  if (!held.ok()) co_return held.status();
  *got = true;
  (void)co_await Suspend();
  co_return absl::OkStatus();
}

// A waiter is waiting when the holder ends: the lock passes to it then.
template <typename L>
Task<> WaiterGetsTheLockOfAnEndedHolder(int levels) {
  L lock;
  std::vector<LockGuard> escaped;
  TaskRef holder = ThisScheduler().Spawn(HoldThenEscape<L>, &lock, &escaped, levels);
  co_await Yield();
  CO_ASSERT_TRUE(lock.locked());
  bool got = false;
  TaskRef waiter = ThisScheduler().Spawn(AcquireAndHold<L>, &lock, &got);
  co_await Yield();
  EXPECT_FALSE(got);  // a live holder is waited for
  CO_ASSERT_OK(holder.Resume());
  CO_ASSERT_OK(co_await holder.Join(absl::Seconds(5)));
  co_await Yield();
  co_await Yield();
  EXPECT_TRUE(got);
  EXPECT_TRUE(lock.locked());  // by the waiter now
  for (const LockGuard& g : escaped) EXPECT_FALSE(g.holds());
  escaped.clear();  // stale guards release nothing of the waiter's hold
  EXPECT_TRUE(lock.locked());
  CO_ASSERT_OK(waiter.Resume());
  CO_ASSERT_OK(co_await waiter.Join(absl::Seconds(5)));
  EXPECT_FALSE(lock.locked());
}

PICOS_CORO_TEST(Lock, WaiterGetsTheLockOfAnEndedHolder) {
  co_await WaiterGetsTheLockOfAnEndedHolder<Lock>(1);
}

PICOS_CORO_TEST(RLock, WaiterGetsTheLockOfAnEndedHolder) {
  co_await WaiterGetsTheLockOfAnEndedHolder<RLock>(3);
}

// Nobody waits when the holder ends: the lock reads as free, and the next
// acquire takes it.
template <typename L>
Task<> NextAcquireTakesTheLockOfAnEndedHolder() {
  L lock;
  std::vector<LockGuard> escaped;
  TaskRef holder = ThisScheduler().Spawn(HoldThenEscape<L>, &lock, &escaped, 1);
  co_await Yield();
  CO_ASSERT_TRUE(lock.locked());
  CO_ASSERT_OK(holder.Resume());
  CO_ASSERT_OK(co_await holder.Join(absl::Seconds(5)));
  EXPECT_FALSE(lock.locked());
  absl::StatusOr<LockGuard> mine = co_await lock.Acquire(absl::Seconds(5));
  CO_ASSERT_OK(mine);
  escaped.clear();
  EXPECT_TRUE(mine->holds());
  EXPECT_TRUE(lock.HeldByCurrentTask());
}

PICOS_CORO_TEST(Lock, NextAcquireTakesTheLockOfAnEndedHolder) {
  co_await NextAcquireTakesTheLockOfAnEndedHolder<Lock>();
}

PICOS_CORO_TEST(RLock, NextAcquireTakesTheLockOfAnEndedHolder) {
  co_await NextAcquireTakesTheLockOfAnEndedHolder<RLock>();
}

// The lock is destroyed before its ended holder's hook runs: nothing breaks.
PICOS_CORO_TEST(Lock, DestroyedWhileAWaiterWatchesTheHolder) {
  std::vector<LockGuard> escaped;
  TaskRef holder;
  {
    auto lock = std::make_unique<Lock>();
    holder = ThisScheduler().Spawn(HoldThenEscape<Lock>, lock.get(), &escaped, 1);
    co_await Yield();
    absl::StatusOr<LockGuard> late = co_await lock->Acquire(absl::Milliseconds(1));
    EXPECT_THAT(late, StatusIs(absl::StatusCode::kDeadlineExceeded));
    for (LockGuard& g : escaped) g.Release();  // guards go before their lock
    escaped.clear();
  }
  CO_ASSERT_OK(holder.Resume());
  CO_ASSERT_OK(co_await holder.Join(absl::Seconds(5)));
}

// Watching holders costs one finish hook per task and lock, not one per
// contended hold: two tasks passing a lock back and forth a thousand times
// carry one hook each.
Task<> PassBackAndForth(Lock* lock, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    absl::StatusOr<LockGuard> held = co_await lock->Acquire();
    if (!held.ok()) co_return;
    co_await Yield();  // the other queues meanwhile: every hold is contended
  }
  (void)co_await Suspend();  // stay alive to be counted
}

PICOS_CORO_TEST(Lock, OneWatchPerHolderNotPerHold) {
  Lock lock;
  TaskRef a = ThisScheduler().Spawn(PassBackAndForth, &lock, 1000);
  TaskRef b = ThisScheduler().Spawn(PassBackAndForth, &lock, 1000);
  while (a.state() != TaskState::kSuspended || b.state() != TaskState::kSuspended) {
    co_await Yield();
  }
  for (const TaskRef& t : {a, b}) {
    CO_ASSERT_TRUE(t.core()->extra != nullptr);
    EXPECT_EQ(t.core()->extra->finish_hooks.size(), 1u);
  }
  CO_ASSERT_OK(a.Resume());
  CO_ASSERT_OK(b.Resume());
  (void)co_await a.Join();
  (void)co_await b.Join();
  EXPECT_FALSE(lock.locked());
}

}  // namespace
}  // namespace picos
