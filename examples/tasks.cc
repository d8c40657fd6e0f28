// pycos tasks.py in picos: create N tasks that each sleep briefly, and report
// how long it took and how much memory they used.
//
//   bazel run -c opt //examples:tasks -- --tasks=1000000 --sleep_ms=10
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/clock.h"
#include "core/cli/flags.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"
#include "testing/bench/figures.h"

ABSL_FLAG(int64_t, tasks, 10000, "number of tasks, 1 to 1000000");
ABSL_FLAG(int64_t, sleep_ms, 10, "how long each task sleeps, 0 to 60000 ms");

namespace {

picos::Task<> Sleeper(int64_t ms, int64_t* woke) {
  // Each task sleeps once and counts itself; the scheduler keeps one heap
  // of deadlines, so a million sleepers cost one timer in libuv.
  absl::Status slept = co_await picos::Sleep(absl::Milliseconds(ms));
  if (slept.ok()) ++*woke;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Spawns N tasks that each sleep briefly (pycos tasks.py).");
  absl::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_tasks, 1, 1'000'000) ||
      !picos::FlagInRange(FLAGS_sleep_ms, 0, 60'000)) {
    return 2;
  }
  const int64_t n = absl::GetFlag(FLAGS_tasks);
  const int64_t ms = absl::GetFlag(FLAGS_sleep_ms);
  const int64_t rss_before = picos::testing::CurrentRssBytes();
  picos::Scheduler scheduler;
  int64_t woke = 0;
  absl::Time start = absl::Now();
  for (int64_t i = 0; i < n; ++i) scheduler.Spawn(Sleeper, ms, &woke);
  const double spawn_s = absl::ToDoubleSeconds(absl::Now() - start);
  absl::Status run = scheduler.Run();
  const double total_s = absl::ToDoubleSeconds(absl::Now() - start);
  if (!run.ok()) {
    std::fprintf(stderr, "tasks: %s\n", run.ToString().c_str());
    return 1;
  }
  const int64_t peak = picos::testing::PeakRssBytes();
  std::printf("%lld tasks created in %.3f s, all %lld woke after %lld ms sleep; total %.3f s\n",
              static_cast<long long>(n), spawn_s, static_cast<long long>(woke),
              static_cast<long long>(ms), total_s);
  std::printf("peak memory growth: %.1f MB, %.0f bytes per task\n",
              (peak - rss_before) / 1e6, static_cast<double>(peak - rss_before) / n);
  return woke == n ? 0 : 1;
}
