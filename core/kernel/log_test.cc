// The rate limit of repeated log lines: a window of `burst` lines, then a
// count of what was left out, said by the next line let through.
#include "core/kernel/log.h"

#include <spdlog/sinks/ostream_sink.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace picos {
namespace {

TEST(LogRateLimit, LetsABurstThroughPerPeriodAndCountsTheRest) {
  LogRateLimit limit(/*burst=*/3, /*period_ns=*/1000);
  uint64_t suppressed = 99;
  int allowed = 0;
  for (int64_t t = 0; t < 10; ++t) {
    if (limit.AllowAt(t, &suppressed)) {
      ++allowed;
      EXPECT_EQ(suppressed, 0u);
    }
  }
  EXPECT_EQ(allowed, 3);
  // The next window: let through, and told that 7 were left out.
  ASSERT_TRUE(limit.AllowAt(1000, &suppressed));
  EXPECT_EQ(suppressed, 7u);
  ASSERT_TRUE(limit.AllowAt(1001, &suppressed));
  EXPECT_EQ(suppressed, 0u);
  ASSERT_TRUE(limit.AllowAt(1002, &suppressed));
  EXPECT_FALSE(limit.AllowAt(1003, &suppressed));
  // A clock that goes back (it should not: it is monotonic) opens a window
  // rather than silencing the site for good.
  ASSERT_TRUE(limit.AllowAt(5, &suppressed));
  EXPECT_EQ(suppressed, 1u);
}

// Captures what the picos logger writes while it lives.
class CaptureLog {
 public:
  CaptureLog() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(out_)) {
    sink_->set_pattern("%l %v");
    Log().sinks().push_back(sink_);
  }
  ~CaptureLog() {
    auto& sinks = Log().sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }
  std::string text() const { return out_.str(); }
  int lines() const {
    std::string t = text();
    return static_cast<int>(std::count(t.begin(), t.end(), '\n'));
  }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};

void FailOneConnection(int i) { PICOS_LOG_LIMITED(warn, "connection {} failed", i); }

TEST(LogLimited, ThousandRepeatsWriteAFewLines) {
  CaptureLog capture;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; ++i) FailOneConnection(i);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // 10 lines per 10 s window; a very slow machine may span more windows.
  const int bound = LogRateLimit::kDefaultBurst * (2 + static_cast<int>(secs / 10));
  EXPECT_GE(capture.lines(), LogRateLimit::kDefaultBurst);
  EXPECT_LE(capture.lines(), bound) << capture.text();
  EXPECT_NE(capture.text().find("connection 0 failed"), std::string::npos);
  EXPECT_EQ(capture.text().find("connection 999 failed"), std::string::npos);
}

TEST(LogLimited, EachCallSiteHasItsOwnLimit) {
  CaptureLog capture;
  for (int i = 0; i < 100; ++i) PICOS_LOG_LIMITED(warn, "site a {}", i);
  for (int i = 0; i < 100; ++i) PICOS_LOG_LIMITED(warn, "site b {}", i);
  std::string t = capture.text();
  EXPECT_NE(t.find("site a 0"), std::string::npos);
  EXPECT_NE(t.find("site b 0"), std::string::npos);
  EXPECT_LE(capture.lines(), 4 * LogRateLimit::kDefaultBurst);
}

}  // namespace
}  // namespace picos
