#include "core/kernel/naming.h"

#include <string>

#include "core/kernel/channel.h"
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
using ::testing::HasSubstr;

Task<> Idle() { (void)co_await Receive(); }

PICOS_SIM_TEST(Naming, RegisterAndLocateATask) {
  TaskRef t = ThisScheduler().Spawn(Idle);
  CO_ASSERT_OK(RegisterTask("worker", t));
  EXPECT_THAT(RegisterTask("worker", t), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(RegisterTask("worker", Self()), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(RegisterTask("", t), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(RegisterTask(std::string(300, 'x'), t), StatusIs(absl::StatusCode::kInvalidArgument));
  CO_ASSERT_OK(RegisterTask("worker2", t));  // a task may have several names
  absl::StatusOr<TaskRef> found = co_await LocateTask("worker");
  CO_ASSERT_OK(found);
  EXPECT_EQ(*found, t);
  // Channel names are another name space.
  absl::StatusOr<ChannelRef> none = co_await LocateChannel("worker");
  EXPECT_THAT(none, StatusIs(absl::StatusCode::kNotFound, HasSubstr("worker")));
  CO_ASSERT_OK(UnregisterTask("worker2"));
  EXPECT_THAT(UnregisterTask("worker2"), StatusIs(absl::StatusCode::kNotFound));
  // The name goes with the task.
  CO_ASSERT_OK(t.Send(1));
  (void)co_await t.Join();
  absl::StatusOr<TaskRef> gone = co_await LocateTask("worker");
  EXPECT_THAT(gone, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(RegisterTask("worker", t), StatusIs(absl::StatusCode::kFailedPrecondition));
  CO_ASSERT_OK(RegisterTask("worker", Self()));  // free again
  CO_ASSERT_OK(UnregisterTask("worker"));
}

Task<> RegisterLater(std::string name, absl::Duration after) {
  (void)co_await Sleep(after);
  (void)RegisterTask(name, Self());
  (void)co_await Receive();
}

PICOS_SIM_TEST(Naming, LocateWaitsUpToItsTimeout) {
  absl::StatusOr<TaskRef> missing = co_await LocateTask("late", Location::Local(), absl::Milliseconds(5));
  EXPECT_THAT(missing, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(ThisScheduler().NowNs(), 5'000'000) << "gave up at its timeout";
  TaskRef late = ThisScheduler().Spawn(RegisterLater, std::string("late"), absl::Milliseconds(5));
  absl::StatusOr<TaskRef> found = co_await LocateTask("late", Location::Local(), absl::Seconds(10));
  CO_ASSERT_OK(found);
  EXPECT_EQ(*found, late);
  EXPECT_EQ(ThisScheduler().NowNs(), 10'000'000) << "found as soon as it was registered";
  CO_ASSERT_OK(late.Send(0));
  (void)co_await late.Join();
}

Task<absl::Status> LocateForever(std::string name) {
  absl::StatusOr<TaskRef> r = co_await LocateTask(name, Location::Local(), absl::InfiniteDuration());
  co_return r.status();
}

Task<> LocateThenWaitAgain() {
  (void)co_await LocateTask("never", Location::Local(), absl::InfiniteDuration());
  (void)co_await Receive();  // waits again after kCancelled: destroyed here
}

PICOS_SIM_TEST(Naming, TerminatedLocatorsLeaveNoWaiter) {
  TaskRef a = ThisScheduler().Spawn(LocateForever, std::string("never"));
  TaskRef b = ThisScheduler().Spawn(LocateThenWaitAgain);
  co_await Yield();
  CO_ASSERT_OK(a.Terminate());
  CO_ASSERT_OK(b.Terminate());
  absl::StatusOr<Value> ra = co_await a.Join();
  EXPECT_THAT(ra, StatusIs(absl::StatusCode::kCancelled));
  absl::StatusOr<Value> rb = co_await b.Join();
  EXPECT_THAT(rb, StatusIs(absl::StatusCode::kCancelled));
  // Registering the name now wakes nobody (and touches no freed waiter).
  CO_ASSERT_OK(RegisterTask("never", Self()));
  CO_ASSERT_OK(UnregisterTask("never"));
}

PICOS_SIM_TEST(Naming, ChannelsAreReleasedWhenClosed) {
  Channel ch = Channel::Create("news");
  CO_ASSERT_OK(RegisterChannel(ch));
  EXPECT_THAT(RegisterChannel(Channel::Create("news")), StatusIs(absl::StatusCode::kAlreadyExists));
  absl::StatusOr<ChannelRef> found = co_await LocateChannel("news");
  CO_ASSERT_OK(found);
  EXPECT_EQ(*found, ch.ref());
  CO_ASSERT_OK(ch.Close());
  absl::StatusOr<ChannelRef> gone = co_await LocateChannel("news");
  EXPECT_THAT(gone, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(RegisterChannel(ch), StatusIs(absl::StatusCode::kFailedPrecondition));
  Channel other = Channel::Create("news");
  CO_ASSERT_OK(RegisterChannel(other));
  CO_ASSERT_OK(UnregisterChannel("news"));
  CO_ASSERT_OK(other.Close());  // its hook was taken back: nothing to release
  EXPECT_THAT(UnregisterChannel("news"), StatusIs(absl::StatusCode::kNotFound));
}

PICOS_SIM_TEST(Naming, OtherLocationsAreNotImplementedYet) {
  CO_ASSERT_OK(RegisterTask("here", Self()));
  absl::StatusOr<TaskRef> peer =
      co_await LocateTask("here", Location::Peer("tcp://127.0.0.1:9705"), absl::Seconds(1));
  EXPECT_THAT(peer, StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("tcp://127.0.0.1:9705")));
  absl::StatusOr<ChannelRef> any = co_await LocateChannel("x", Location::Anywhere());
  EXPECT_THAT(any, StatusIs(absl::StatusCode::kUnimplemented));
  EXPECT_EQ(Location::Peer("tcp://h:1").peer(), "tcp://h:1");
  CO_ASSERT_OK(UnregisterTask("here"));
}

TEST(Naming, RegisteredChannelMayOutliveItsScheduler) {
  Channel ch;
  {
    Scheduler s;
    ch = Channel::Create(s, "kept");
    TaskRef t = s.Spawn([ch]() -> Task<absl::Status> { co_return RegisterChannel(ch); });
    EXPECT_OK(s.RunUntil(t));
  }
  EXPECT_EQ(ch.name(), "kept");  // the registry let go of it and its hook
  EXPECT_TRUE(ch.ref().core()->AsLocal()->close_hooks.empty());
}

}  // namespace
}  // namespace picos
