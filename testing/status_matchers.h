// GoogleTest matchers for absl::Status and absl::StatusOr (Abseil 20220623
// ships none).
//
//   EXPECT_THAT(DoIt(), IsOk());
//   EXPECT_THAT(Parse("x"), StatusIs(absl::StatusCode::kInvalidArgument));
//   EXPECT_THAT(Parse("x"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad")));
//   ASSERT_OK_AND_ASSIGN(int n, Parse("42"));
#ifndef PICOS_TESTING_STATUS_MATCHERS_H_
#define PICOS_TESTING_STATUS_MATCHERS_H_

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace picos::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& s = GetStatus(arg);
  if (!s.ok()) *result_listener << "status is " << s.ToString();
  return s.ok();
}

MATCHER_P(StatusIs, code,
          std::string("has code ") + absl::StatusCodeToString(code)) {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.code() == code;
}

MATCHER_P2(StatusIs, code, message_matcher,
           std::string("has code ") + absl::StatusCodeToString(code)) {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.code() == code &&
         ::testing::Matches(message_matcher)(std::string(s.message()));
}

}  // namespace picos::testing

#define PICOS_TESTING_CONCAT_INNER_(a, b) a##b
#define PICOS_TESTING_CONCAT_(a, b) PICOS_TESTING_CONCAT_INNER_(a, b)

#define ASSERT_OK(expr) ASSERT_THAT((expr), ::picos::testing::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT((expr), ::picos::testing::IsOk())

#define ASSERT_OK_AND_ASSIGN(lhs, rexpr)                                       \
  auto PICOS_TESTING_CONCAT_(picos_t_so_, __LINE__) = (rexpr);                 \
  ASSERT_THAT(PICOS_TESTING_CONCAT_(picos_t_so_, __LINE__),                    \
              ::picos::testing::IsOk());                                       \
  lhs = std::move(PICOS_TESTING_CONCAT_(picos_t_so_, __LINE__)).value()

#endif  // PICOS_TESTING_STATUS_MATCHERS_H_
