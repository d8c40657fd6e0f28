#include "core/kernel/supervisor.h"

#include <deque>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/kernel/log.h"
#include "core/kernel/monitor.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/system_message.h"
#include "core/kernel/task.h"

namespace picos {

struct Supervisor::State {
  RestartPolicy policy;
  SupervisorOptions options;
  Spawner spawner;
  TaskRef worker;
  int restarts = 0;
  // Restarts within the window, on the scheduler's monotonic clock
  // (Scheduler::NowNs): a step of the wall clock must not forgive or
  // double-count a crash loop.
  std::deque<int64_t> recent_ns;
};

namespace {

void Report(Supervisor::State& st, const char* outcome, const absl::Status& error) {
  if (!st.options.observer.valid()) return;
  Value::MapType m;
  m.emplace("outcome", outcome);
  m.emplace("restarts", st.restarts);
  if (!error.ok()) {
    m.emplace("error", Value::Map({{"code", static_cast<int>(error.code())},
                                   {"message", std::string(error.message())}}));
  }
  (void)st.options.observer.Send(SystemMessage(kSupervisorMessage, Value(std::move(m))));
}

absl::Status SpawnWorker(Supervisor::State& st) {
  st.worker = st.spawner(ThisScheduler(), absl::StrCat(st.options.name, ".worker"));
  if (!st.worker.valid()) return absl::UnavailableError("could not spawn the worker");
  return Monitor(Self(), st.worker);
}

Task<absl::StatusOr<Value>> Supervise(std::shared_ptr<Supervisor::State> state) {
  Supervisor::State& st = *state;
  absl::Status spawned = SpawnWorker(st);
  if (!spawned.ok()) co_return spawned;
  for (;;) {
    absl::StatusOr<Value> m = co_await Receive();
    if (!m.ok()) {
      // Stopped (terminated) or thrown into: the worker goes too.
      (void)st.worker.Terminate();
      Report(st, "stopped", m.status());
      co_return m.status();
    }
    if (!MonitorStatus::Is(*m)) {
      (void)st.worker.Send(*std::move(m));
      continue;
    }
    absl::StatusOr<MonitorStatus> ended = MonitorStatus::FromValue(*m);
    if (!ended.ok() || ended->task != st.worker) continue;  // not about our worker
    if (st.options.observer.valid()) (void)st.options.observer.Send(*m);
    switch (ended->outcome) {
      case MonitorOutcome::kValue:
        if (!st.policy.restart_on_success) {
          Report(st, "completed", absl::OkStatus());
          co_return ended->value;
        }
        break;
      case MonitorOutcome::kTerminated:
        if (!st.policy.restart_on_terminate) {
          Report(st, "stopped", ended->error);
          co_return ended->error;
        }
        break;
      case MonitorOutcome::kError:
      case MonitorOutcome::kPeerLost:
        break;
    }
    const int64_t now = ThisScheduler().NowNs();
    // Saturates: an infinite window keeps every restart.
    const int64_t window = absl::ToInt64Nanoseconds(st.policy.window);
    while (!st.recent_ns.empty() && now - st.recent_ns.front() >= window) st.recent_ns.pop_front();
    if (static_cast<int>(st.recent_ns.size()) >= st.policy.max_restarts) {
      absl::Status why = absl::AbortedError(absl::StrCat(
          "worker failed after ", st.policy.max_restarts, " restarts within ",
          absl::FormatDuration(st.policy.window), "; giving up. Last: ", ended->DebugString()));
      PICOS_LOG(error, "supervisor {}: {}", st.options.name, std::string(why.message()));
      Report(st, "gave_up", why);
      co_return why;
    }
    st.recent_ns.push_back(now);
    ++st.restarts;
    PICOS_LOG(info, "supervisor {}: restarting worker ({}), restart {}", st.options.name,
              ended->DebugString(), st.restarts);
    if (st.policy.delay > absl::ZeroDuration()) {
      absl::Status slept = co_await Sleep(st.policy.delay);
      if (!slept.ok()) {
        Report(st, "stopped", slept);
        co_return slept;
      }
    }
    spawned = SpawnWorker(st);
    if (!spawned.ok()) co_return spawned;
  }
}

}  // namespace

Supervisor Supervisor::StartSpawner(Scheduler& scheduler, RestartPolicy policy,
                                    SupervisorOptions options, Spawner spawner) {
  Supervisor sup;
  sup.state_ = std::make_shared<State>();
  sup.state_->policy = policy;
  sup.state_->options = std::move(options);
  sup.state_->spawner = std::move(spawner);
  std::string name = sup.state_->options.name;
  sup.task_ = scheduler.SpawnNamed(std::move(name), Supervise(sup.state_));
  return sup;
}

TaskRef Supervisor::worker() const { return state_ ? state_->worker : TaskRef(); }
int Supervisor::restarts() const { return state_ ? state_->restarts : 0; }

}  // namespace picos
