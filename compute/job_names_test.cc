// The job name registry (compute/job_names_internal.h) on its own, with
// local tasks standing for the workers' jobs: each answer, and the refusal
// of every malformed request (network input) with kInvalidArgument.
#include "compute/job_names_internal.h"

#include <string>

#include "compute/export.h"
#include "compute/protocol.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos::compute::internal {
namespace {

constexpr absl::Duration kLong = absl::Seconds(60);  // only a hang reaches it

// A job's inbox: waits until terminated.
Task<> Inbox() {
  for (;;) {
    absl::StatusOr<Value> m = co_await Receive();
    if (!m.ok()) co_return;
  }
}

// Sends `request` (with this task as reply_to) and gives the answer's
// status, and its "inbox" in *inbox when given.
Task<absl::Status> Ask(TaskRef registry, Value request, TaskRef* inbox = nullptr) {
  request.as_map()["reply_to"] = Value(Self());
  absl::Status sent = registry.Send(std::move(request));
  if (!sent.ok()) co_return sent;
  absl::StatusOr<Value> r = co_await Receive(kLong);
  if (!r.ok()) co_return r.status();
  int64_t code = -1;
  std::string message;
  absl::Status read = MessageReader(*r).Get("code", &code).Optional("message", &message).status();
  if (!read.ok()) co_return absl::InternalError(read.ToString());
  if (inbox != nullptr) (void)MessageReader(*r).Optional("inbox", inbox).status();
  co_return absl::Status(static_cast<absl::StatusCode>(code), message);
}

Value Register(const std::string& name, uint64_t job, TaskRef inbox) {
  return Value::Map({{std::string(kNamesKey), std::string("register")},
                     {std::string("name"), name},
                     {std::string("job"), job},
                     {std::string("inbox"), inbox}});
}

Value Locate(const std::string& name) {
  return Value::Map({{std::string(kNamesKey), std::string("locate")}, {std::string("name"), name}});
}

TEST(JobNames, ValidNames) {
  EXPECT_OK(ValidJobName("agent0"));
  EXPECT_OK(ValidJobName(std::string(kJobNameMaxBytes, 'x')));
  EXPECT_EQ(ValidJobName("").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidJobName(std::string(kJobNameMaxBytes + 1, 'x')).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ValidJobName("a\nb").message(), ::testing::HasSubstr("no control characters"));
}

PICOS_CORO_TEST(JobNames, RegisterLocateAndFree) {
  TaskRef registry = ThisScheduler().Spawn(JobNameRegistry, std::string("ctest"));
  TaskRef a = ThisScheduler().Spawn(Inbox);
  TaskRef b = ThisScheduler().Spawn(Inbox);

  EXPECT_OK(co_await Ask(registry, Register("alice", 1, a)));
  absl::Status taken = co_await Ask(registry, Register("alice", 2, b));
  EXPECT_EQ(taken.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(taken.message(), ::testing::HasSubstr("\"alice\" is taken by job 1"));
  absl::Status second = co_await Ask(registry, Register("alias", 1, a));
  EXPECT_EQ(second.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_OK(co_await Ask(registry, Register("bob", 2, b)));

  TaskRef found;
  EXPECT_OK(co_await Ask(registry, Locate("alice"), &found));
  EXPECT_TRUE(found == a);
  absl::Status unknown = co_await Ask(registry, Locate("carol"));
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(unknown.message(), "no job named \"carol\" in this computation");

  // An unregister by another job is ignored; by its own frees the name.
  CO_ASSERT_OK(registry.Send(Value::Map(
      {{std::string(kNamesKey), std::string("unregister")}, {std::string("name"), std::string("alice")},
       {std::string("job"), uint64_t{2}}})));
  EXPECT_OK(co_await Ask(registry, Locate("alice")));
  CO_ASSERT_OK(registry.Send(Value::Map(
      {{std::string(kNamesKey), std::string("unregister")}, {std::string("name"), std::string("alice")},
       {std::string("job"), uint64_t{1}}})));
  absl::Status freed = co_await Ask(registry, Locate("alice"));
  EXPECT_EQ(freed.code(), absl::StatusCode::kNotFound);

  // An inbox that ends (its job returned, its worker lost) frees its name.
  CO_ASSERT_OK(b.Terminate());
  absl::Status gone = absl::OkStatus();
  for (int i = 0; i < 1000 && gone.ok(); ++i) {
    gone = co_await Ask(registry, Locate("bob"));
    if (gone.ok()) (void)co_await Sleep(absl::Milliseconds(5));
  }
  EXPECT_EQ(gone.code(), absl::StatusCode::kNotFound);
  EXPECT_OK(co_await Ask(registry, Register("bob", 3, a)));  // job 1's a stands for job 3 now

  CO_ASSERT_OK(a.Terminate());
  CO_ASSERT_OK(registry.Terminate());
}

PICOS_CORO_TEST(JobNames, MalformedRequestsAreRefused) {
  TaskRef registry = ThisScheduler().Spawn(JobNameRegistry, std::string("ctest"));
  TaskRef a = ThisScheduler().Spawn(Inbox);
  const Value bad[] = {
      Value::Map({{std::string(kNamesKey), std::string("register")}}),                      // no name
      Value::Map({{std::string(kNamesKey), std::string("locate")}, {std::string("name"), int64_t{5}}}),  // not text
      Value::Map({{std::string(kNamesKey), std::string("fly")}, {std::string("name"), std::string("x")}}),
      Locate(std::string(300, 'x')),
      Locate("a\tb"),
      Value::Map({{std::string(kNamesKey), std::string("register")}, {std::string("name"), std::string("x")}}),  // no inbox
  };
  for (const Value& b : bad) {
    absl::Status st = co_await Ask(registry, b);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << b.DebugString() << ": " << st;
  }
  // Not a map, or no reply_to: dropped, and the registry still answers.
  CO_ASSERT_OK(registry.Send(Value("garbage")));
  EXPECT_OK(co_await Ask(registry, Register("x", 1, a)));
  CO_ASSERT_OK(a.Terminate());
  CO_ASSERT_OK(registry.Terminate());
}

}  // namespace
}  // namespace picos::compute::internal
