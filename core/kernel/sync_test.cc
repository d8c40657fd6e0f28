#include "core/kernel/sync.h"

#include <string>
#include <vector>

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
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Takes the lock, notes its id, holds it across a sleep, releases.
template <typename L>
Task<absl::Status> HoldFor(L* lock, int id, std::vector<int>* order, absl::Duration hold,
                           absl::Duration timeout) {
  absl::Status s = co_await lock->Acquire(timeout);
  if (!s.ok()) co_return s;
  LockGuard<L> guard(*lock);
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

PICOS_SIM_TEST(Lock, TimeoutAndReleaseErrors) {
  Lock lock;
  EXPECT_THAT(lock.Release(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not hold")));
  absl::Status s = co_await lock.Acquire();
  CO_ASSERT_OK(s);
  EXPECT_TRUE(lock.HeldByCurrentTask());
  std::vector<int> order;
  TaskRef late = ThisScheduler().Spawn(HoldFor<Lock>, &lock, 2, &order, absl::ZeroDuration(),
                                       absl::Milliseconds(5));
  absl::StatusOr<Value> r = co_await late.Join();
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kDeadlineExceeded));
  // Zero timeout: a try, no wait.
  absl::Status now = co_await lock.Acquire(absl::ZeroDuration());
  EXPECT_THAT(now, StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_FALSE(lock.TryAcquire());
  CO_ASSERT_OK(lock.Release());
  EXPECT_FALSE(lock.locked());  // the timed-out waiter was skipped
  EXPECT_TRUE(order.empty());
  EXPECT_TRUE(lock.TryAcquire());
  CO_ASSERT_OK(lock.Release());
}

PICOS_SIM_TEST(Lock, TerminatedWaitersHoldNothing) {
  Lock lock;
  std::vector<int> order;
  CO_ASSERT_OK(co_await lock.Acquire());
  auto spawn = [&](int id) {
    return ThisScheduler().Spawn(HoldFor<Lock>, &lock, id, &order, absl::ZeroDuration(),
                                 absl::InfiniteDuration());
  };
  TaskRef b = spawn(2), c = spawn(3), d = spawn(4);
  co_await Yield();
  // b is terminated while it waits; c is handed the lock and terminated
  // before it runs: it must pass the lock on to d.
  CO_ASSERT_OK(b.Terminate());
  CO_ASSERT_OK(lock.Release());
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
  absl::Status s = co_await lock->Acquire();
  if (!s.ok()) co_return;
  LockGuard<Lock> guard(*lock);
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
  CO_ASSERT_OK(co_await lock.Acquire());
  CO_ASSERT_OK(co_await lock.Acquire());
  EXPECT_EQ(lock.depth(), 2u);
  std::vector<int> order;
  TaskRef other = ThisScheduler().Spawn(HoldFor<RLock>, &lock, 7, &order, absl::ZeroDuration(),
                                        absl::InfiniteDuration());
  co_await Yield();
  CO_ASSERT_OK(lock.Release());
  co_await Yield();
  EXPECT_TRUE(order.empty());  // still held once
  CO_ASSERT_OK(lock.Release());
  EXPECT_THAT(lock.Release(), StatusIs(absl::StatusCode::kFailedPrecondition));
  absl::StatusOr<Value> r = co_await other.Join();
  EXPECT_OK(r);
  EXPECT_THAT(order, ElementsAre(7, -7));
  EXPECT_FALSE(lock.locked());
}

Task<absl::Status> Consume(Condition* cond, std::vector<int>* queue, std::vector<int>* got,
                           int id) {
  absl::Status s = co_await cond->Acquire();
  if (!s.ok()) co_return s;
  LockGuard<Condition> guard(*cond);
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
  CO_ASSERT_OK(co_await cond.Acquire());
  queue.push_back(5);
  cond.Notify();
  // The woken one waits for the lock, which we hold across a yield.
  co_await Yield();
  EXPECT_TRUE(got.empty());
  CO_ASSERT_OK(cond.Release());
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
  CO_ASSERT_OK(co_await cond.Acquire());
  CO_ASSERT_OK(co_await cond.Acquire());  // depth 2, restored after the wait
  absl::Status s = co_await cond.Wait(absl::Milliseconds(5));
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_TRUE(cond.HeldByCurrentTask());
  CO_ASSERT_OK(cond.Release());
  CO_ASSERT_OK(cond.Release());
  EXPECT_FALSE(cond.HeldByCurrentTask());
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

Task<absl::Status> TakeUnit(Semaphore* s, std::vector<int>* order, int id) {
  absl::Status st = co_await s->Acquire();
  if (st.ok()) order->push_back(id);
  co_return st;
}

PICOS_SIM_TEST(Semaphore, CountsHandsOffAndGivesBack) {
  Semaphore sem(2);
  std::vector<int> order;
  std::vector<TaskRef> ts;
  for (int i = 1; i <= 4; ++i) ts.push_back(ThisScheduler().Spawn(TakeUnit, &sem, &order, i));
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
  absl::Status t = co_await sem.Acquire(absl::Milliseconds(1));
  EXPECT_OK(t);
  for (TaskRef& x : ts) (void)co_await x.Join();
}

PICOS_SIM_TEST(BoundedSemaphore, ReleasedTooOftenIsAnError) {
  BoundedSemaphore sem(1);
  EXPECT_THAT(sem.Release(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("limit 1")));
  CO_ASSERT_OK(co_await sem.Acquire());
  absl::Status busy = co_await sem.Acquire(absl::Milliseconds(2));
  EXPECT_THAT(busy, StatusIs(absl::StatusCode::kDeadlineExceeded));
  CO_ASSERT_OK(sem.Release());
  EXPECT_THAT(sem.Release(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(sem.value(), 1u);
}

// Many waiters that time out do not pile up in the queue.
PICOS_SIM_TEST(Lock, StaleWaitersAreSwept) {
  Lock lock;
  CO_ASSERT_OK(co_await lock.Acquire());
  std::vector<int> order;
  for (int round = 0; round < 20; ++round) {
    std::vector<TaskRef> ts;
    for (int i = 0; i < 50; ++i) {
      ts.push_back(ThisScheduler().Spawn(HoldFor<Lock>, &lock, i, &order, absl::ZeroDuration(),
                                         absl::ZeroDuration() + absl::Microseconds(10)));
    }
    for (TaskRef& t : ts) (void)co_await t.Join();
  }
  CO_ASSERT_OK(lock.Release());
  EXPECT_TRUE(order.empty());
  EXPECT_FALSE(lock.locked());
}

}  // namespace
}  // namespace picos
