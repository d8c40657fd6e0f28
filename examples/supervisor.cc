// A worker that fails at random is restarted by a supervisor's policy; the
// monitor messages of each run are printed as they arrive.
//
//   bazel run //examples:supervisor -- 7     # the random seed (default 1)
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#include "absl/time/time.h"
#include "core/kernel/monitor.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/supervisor.h"
#include "core/kernel/system_message.h"
#include "core/kernel/task.h"

namespace {

using picos::Task;
using picos::TaskRef;
using picos::Value;

// Handles 5 jobs; each fails with probability 1/3.
Task<absl::StatusOr<int>> Worker(std::shared_ptr<std::mt19937> rng) {
  for (int job = 1; job <= 5; ++job) {
    (void)co_await picos::Sleep(absl::Milliseconds(1));
    if ((*rng)() % 3 == 0) {
      co_return absl::InternalError("job " + std::to_string(job) + " crashed");
    }
  }
  co_return 5;
}

Task<absl::Status> Main(unsigned seed) {
  auto rng = std::make_shared<std::mt19937>(seed);
  picos::Supervisor sup = picos::Supervisor::Start(
      picos::ThisScheduler(),
      picos::RestartPolicy{.max_restarts = 3, .window = absl::Seconds(10)},
      picos::SupervisorOptions{.name = "sup", .observer = picos::Self()}, Worker, rng);
  for (;;) {
    absl::StatusOr<Value> m = co_await picos::Receive(absl::Seconds(10));
    if (!m.ok()) co_return m.status();
    if (picos::MonitorStatus::Is(*m)) {
      absl::StatusOr<picos::MonitorStatus> st = picos::MonitorStatus::FromValue(*m);
      if (st.ok()) std::printf("monitor: %s\n", st->DebugString().c_str());
      continue;
    }
    // The verdict: {"picos.supervisor": {"outcome": ..., "restarts": n}}.
    const Value* verdict = picos::SystemMessagePayload(*m, picos::kSupervisorMessage);
    if (verdict == nullptr) {
      std::printf("ignoring %s\n", m->DebugString().c_str());
      continue;
    }
    std::string outcome;
    int64_t restarts = 0;
    absl::Status read =
        picos::MessageReader(*verdict).Get("outcome", &outcome).Get("restarts", &restarts).status();
    if (!read.ok()) {
      std::printf("unexpected message %s: %s\n", m->DebugString().c_str(),
                  read.ToString().c_str());
      continue;
    }
    std::printf("supervisor %s after %lld restarts\n", outcome.c_str(),
                static_cast<long long>(restarts));
    break;
  }
  absl::StatusOr<Value> end = co_await sup.task().Join();
  std::printf("supervisor result: %s\n",
              end.ok() ? end->DebugString().c_str() : end.status().ToString().c_str());
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  unsigned seed = argc > 1 ? static_cast<unsigned>(std::atoi(argv[1])) : 1;
  picos::Scheduler s;
  TaskRef main_task = s.Spawn(Main, seed);
  absl::StatusOr<Value> r = s.RunUntil(main_task);
  if (!r.ok()) {
    std::fprintf(stderr, "supervisor: %s\n", r.status().ToString().c_str());
    return 1;
  }
  return 0;
}
