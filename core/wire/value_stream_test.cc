#include "core/wire/value_stream.h"

#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/io/framing.h"
#include "core/io/process.h"
#include "core/kernel/task.h"
#include "core/kernel/value.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos {
namespace {

using ::picos::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Optional;

constexpr absl::Duration kWait = absl::Seconds(30);

// `cat` echoes what is written to it: a real stream whose far end is this
// test, through two pipes.
Task<absl::StatusOr<std::unique_ptr<Process>>> Cat() {
  co_return Process::Spawn({.program = "cat", .stderr_mode = StdioMode::kInherit});
}

PICOS_CORO_TEST(ValueStream, RoundTripsEveryKindOfValue) {
  absl::StatusOr<std::unique_ptr<Process>> cat = co_await Cat();
  CO_ASSERT_OK(cat);
  Process& p = **cat;
  const Value values[] = {
      Value(),
      Value(true),
      Value(int64_t{-1} << 62),
      Value(2.5),
      Value(std::string("nul\0inside", 10)),
      Value::Bytes(std::string(70'000, '\xff')),
      Value::List({1, "two", Value::List({3.0}), Value::Map({{"k", Value()}})}),
      Value::Map({{"op", "add"}, {"args", Value::List({1, 2})}, {"from", Value(Self())}}),
  };
  for (const Value& v : values) CO_ASSERT_OK(co_await WriteValue(p.in(), v, kWait));
  for (const Value& v : values) {
    absl::StatusOr<std::optional<Value>> back = co_await ReadValue(p.out(), kWait);
    CO_ASSERT_OK(back);
    EXPECT_THAT(*back, Optional(v));
  }
  CO_ASSERT_OK(p.CloseStdin());
  absl::StatusOr<std::optional<Value>> end = co_await ReadValue(p.out(), kWait);
  CO_ASSERT_OK(end);
  EXPECT_EQ(*end, std::nullopt);
  CO_ASSERT_OK(co_await p.Wait(kWait));
}

PICOS_CORO_TEST(ValueStream, OversizeIsRefusedOnBothSides) {
  absl::StatusOr<std::unique_ptr<Process>> cat = co_await Cat();
  CO_ASSERT_OK(cat);
  Process& p = **cat;
  const Value big = Value(std::string(10'000, 'x'));
  EXPECT_THAT(co_await WriteValue(p.in(), big, kWait, {.max_encoded_size = 1000}),
              StatusIs(absl::StatusCode::kResourceExhausted));
  // Sent under a generous limit, refused by a reader with a small one,
  // before its bytes are read.
  CO_ASSERT_OK(co_await WriteValue(p.in(), big, kWait));
  EXPECT_THAT(co_await ReadValue(p.out(), kWait, {.max_encoded_size = 1000}),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("limit of 1000")));
  EXPECT_LE(p.out().buffered(), size_t{64 * 1024}) << "the payload is not buffered whole";
}

PICOS_CORO_TEST(ValueStream, GarbageIsInvalidAndTheNextMessageStillReads) {
  absl::StatusOr<std::unique_ptr<Process>> cat = co_await Cat();
  CO_ASSERT_OK(cat);
  Process& p = **cat;
  CO_ASSERT_OK(co_await WriteMessage(p.in(), "this is not a Cap'n Proto message", kWait));
  CO_ASSERT_OK(co_await WriteMessage(p.in(), std::string(8, '\0'), kWait));
  CO_ASSERT_OK(co_await WriteValue(p.in(), Value("after"), kWait));
  EXPECT_THAT(co_await ReadValue(p.out(), kWait), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(co_await ReadValue(p.out(), kWait), StatusIs(absl::StatusCode::kInvalidArgument));
  absl::StatusOr<std::optional<Value>> after = co_await ReadValue(p.out(), kWait);
  CO_ASSERT_OK(after);
  EXPECT_THAT(*after, Optional(Value("after")));
}

PICOS_CORO_TEST(ValueStream, TruncatedMessageIsDataLoss) {
  absl::StatusOr<std::unique_ptr<Process>> cat = co_await Cat();
  CO_ASSERT_OK(cat);
  Process& p = **cat;
  CO_ASSERT_OK(co_await p.in().Write(std::string("\0\0\0\x64", 4) + "only ten b", kWait));
  CO_ASSERT_OK(p.CloseStdin());
  EXPECT_THAT(co_await ReadValue(p.out(), kWait),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("10 of 100 bytes")));
}

}  // namespace
}  // namespace picos
