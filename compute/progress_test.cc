// The progress bar (compute/progress.h) on a fake terminal of a given width
// and a simulated clock: what it draws, how often, and that it stays off
// when the output is not a terminal.
#include "compute/progress.h"

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"
#include "testing/coro_test.h"

namespace picos::compute {
namespace {

// What a terminal shows: each redraw, without its "\r" and "clear to the
// end of the line".
struct FakeTerminal {
  std::vector<std::string> draws;
  std::string raw;
  ProgressOptions Options(int width) {
    ProgressOptions o;
    o.force = true;
    o.width = width;
    o.label = "squares";
    o.write = [this](std::string_view s) {
      raw.append(s);
      std::string d(s);
      if (absl::StartsWith(d, "\r")) d.erase(0, 1);
      if (absl::EndsWith(d, "\x1b[K")) d.resize(d.size() - 3);
      if (d != "\n") draws.push_back(d);
    };
    return o;
  }
};

PICOS_SIM_TEST(Progress, DrawsDoneRateEtaAndFailuresAtMostFourTimesASecond) {
  FakeTerminal term;
  Progress p(10, term.Options(80));
  EXPECT_TRUE(p.enabled());
  EXPECT_TRUE(term.draws.empty()) << "nothing drawn before the first job ends";
  // One job a second: every end is drawn.
  for (int i = 0; i < 4; ++i) {
    (void)co_await Sleep(absl::Seconds(1));
    p.JobEnded(true);
  }
  CO_ASSERT_TRUE(term.draws.size() == 4u);
  // 80 columns: the label, the bar, the figures, one column free.
  EXPECT_EQ(term.draws.back(), "squares [###############-----------------------]  4/10  40%  1.0 jobs/s  ETA 6s");
  EXPECT_EQ(term.draws.back().size(), 79u);
  // Ten ends within 100 ms: the bar is redrawn once at most in 250 ms.
  (void)co_await Sleep(absl::Seconds(1));
  p.JobEnded(false);  // drawn: a second since the last
  const size_t before = term.draws.size();
  for (int i = 0; i < 3; ++i) {
    (void)co_await Sleep(absl::Milliseconds(30));
    p.JobEnded(true);
  }
  EXPECT_EQ(term.draws.size(), before) << "no redraw within 250 ms";
  (void)co_await Sleep(absl::Milliseconds(200));
  p.JobEnded(true);  // 290 ms since the last draw
  EXPECT_EQ(term.draws.size(), before + 1);
  EXPECT_TRUE(absl::StrContains(term.draws.back(), "  9/10  90%  ")) << term.draws.back();
  EXPECT_TRUE(absl::EndsWith(term.draws.back(), "  1 failed")) << term.draws.back();
  // The last end is always drawn; Finish ends the line, once.
  p.JobEnded(true);
  EXPECT_TRUE(absl::StrContains(term.draws.back(), "  10/10  100%  ")) << term.draws.back();
  EXPECT_TRUE(absl::StrContains(term.draws.back(), "  in 5s  1 failed")) << term.draws.back();
  const size_t drawings = term.draws.size();
  p.Finish();
  p.Finish();
  EXPECT_EQ(term.draws.size(), drawings) << "the last end was drawn: Finish only ends the line";
  EXPECT_TRUE(absl::EndsWith(term.raw, "\x1b[K\n"));
  EXPECT_EQ(term.raw.find('\n'), term.raw.size() - 1) << "one line, redrawn in place";
  EXPECT_EQ(p.done(), 10);
  EXPECT_EQ(p.failed(), 1);
  co_return;
}

PICOS_SIM_TEST(Progress, FitsANarrowTerminal) {
  for (int width : {20, 40, 100}) {
    FakeTerminal term;
    Progress p(1000, term.Options(width));
    for (int i = 0; i < 3; ++i) {
      (void)co_await Sleep(absl::Seconds(1));
      p.JobEnded(i != 1);
    }
    p.Finish();
    CO_ASSERT_TRUE(!term.draws.empty());
    for (const std::string& d : term.draws) {
      EXPECT_LE(static_cast<int>(d.size()), width - 1) << width << ": " << d;
      EXPECT_EQ(d.find('\n'), std::string::npos);
    }
  }
  co_return;
}

PICOS_SIM_TEST(Progress, FollowsStatusEvents) {
  FakeTerminal term;
  Progress p(0, term.Options(80));
  p.AddTotal(4);
  p.Observe(Value::Map({{"type", "job_started"}, {"job", uint64_t{1}}}));  // not an end
  p.Observe(Value::Map({{"type", "job_finished"}, {"code", int64_t{0}}}));
  p.Observe(Value::Map({{"type", "job_finished"}, {"code", int64_t{10}}}));  // kAborted
  p.Observe(Value::Map({{"type", "job_lost"}}));
  p.Observe(Value::Map({{"type", "job_terminated"}}));
  p.Observe(Value("not an event"));
  EXPECT_EQ(p.total(), 4);
  EXPECT_EQ(p.done(), 4);
  EXPECT_EQ(p.failed(), 3);
  co_return;
}

TEST(Progress, OffWhenTheOutputIsNotATerminal) {
  std::FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  ProgressOptions o;
  o.out = file;
  o.width = 80;
  Progress p(3, o);
  EXPECT_FALSE(p.enabled());
  p.JobEnded(true);
  p.JobEnded(false);
  p.JobEnded(true);
  p.Finish();
  EXPECT_EQ(std::ftell(file), 0) << "nothing written to a file";
  std::fclose(file);
  // Forced, it draws there.
  std::FILE* forced_file = std::tmpfile();
  ProgressOptions f;
  f.out = forced_file;
  f.force = true;
  Progress forced(1, f);
  EXPECT_TRUE(forced.enabled());
  forced.JobEnded(true);
  forced.Finish();
  EXPECT_GT(std::ftell(forced_file), 0);
  std::fclose(forced_file);
}

}  // namespace
}  // namespace picos::compute
