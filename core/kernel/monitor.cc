#include "core/kernel/monitor.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/kernel/log.h"
#include "core/kernel/proxy.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/scheduler_internal.h"
#include "core/kernel/system_message.h"
#include "core/kernel/task_internal.h"

namespace picos {

using internal::TaskCore;

namespace {

absl::Status Malformed(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("malformed monitor message: ", why));
}

// Runs on the watched task's scheduler thread once it has ended.
void Report(const TaskRef& monitor, TaskCore* ended) {
  absl::Status status;
  Value value;
  if (ended->extra != nullptr) {
    status = ended->extra->result_status;
    value = ended->extra->result_value;
  }
  internal::Ref(ended);
  MonitorStatus st = MonitorStatus::FromResult(TaskRef::Adopt(ended), std::move(status),
                                               std::move(value));
  absl::Status sent = monitor.Send(st.ToValue());
  if (!sent.ok()) {
    // The monitor ended first: nobody is left to tell.
    PICOS_LOG(debug, "monitor message for {} dropped: {}", st.DebugString(), sent.ToString());
  }
}

// Scheduler thread of `watched`.
void AddHook(const TaskRef& monitor, TaskCore* watched) {
  if (watched->flags & internal::kFlagFinished) {
    Report(monitor, watched);
    return;
  }
  watched->Extra().finish_hooks.push_back(
      [monitor](TaskCore* ended) { Report(monitor, ended); });
}

}  // namespace

const char* MonitorOutcomeName(MonitorOutcome outcome) {
  switch (outcome) {
    case MonitorOutcome::kValue:
      return "value";
    case MonitorOutcome::kError:
      return "error";
    case MonitorOutcome::kTerminated:
      return "terminated";
    case MonitorOutcome::kPeerLost:
      return "peer_lost";
  }
  return "unknown";
}

MonitorStatus MonitorStatus::FromResult(const TaskRef& task, absl::Status status, Value value) {
  MonitorStatus st;
  st.task = task;
  st.name = task.name();
  st.id = task.id();
  if (status.ok()) {
    st.outcome = MonitorOutcome::kValue;
    st.value = std::move(value);
  } else {
    st.outcome = status.code() == absl::StatusCode::kCancelled ? MonitorOutcome::kTerminated
                                                               : MonitorOutcome::kError;
    st.error = std::move(status);
  }
  return st;
}

MonitorStatus MonitorStatus::PeerLost(const TaskRef& task, std::string name, uint64_t id,
                                      absl::Status why) {
  MonitorStatus st;
  st.task = task;
  st.name = std::move(name);
  st.id = id;
  st.outcome = MonitorOutcome::kPeerLost;
  st.error = why.ok() ? absl::UnavailableError("peer lost") : std::move(why);
  return st;
}

bool MonitorStatus::Is(const Value& v) {
  const Value* payload = SystemMessagePayload(v, kMonitorMessage);
  return payload != nullptr && payload->is_map();
}

absl::StatusOr<MonitorStatus> MonitorStatus::FromValue(const Value& msg) {
  if (!Is(msg)) return Malformed("not a {\"picos.monitor\": map} message");
  const Value& v = *SystemMessagePayload(msg, kMonitorMessage);
  MonitorStatus st;
  std::string outcome;
  absl::Status read = MessageReader(v)
                          .Optional("task", &st.task)  // null: a handle that could not travel
                          .Optional("name", &st.name)
                          .Optional("id", &st.id)
                          .Get("outcome", &outcome)
                          .status();
  if (!read.ok()) return Malformed(read.message());
  if (outcome == "value") {
    st.outcome = MonitorOutcome::kValue;
    st.value = v["value"];  // absent: null, as a task that returned nothing
    return st;
  }
  if (outcome == "error") {
    st.outcome = MonitorOutcome::kError;
  } else if (outcome == "terminated") {
    st.outcome = MonitorOutcome::kTerminated;
  } else if (outcome == "peer_lost") {
    st.outcome = MonitorOutcome::kPeerLost;
  } else {
    return Malformed(absl::StrCat("unknown outcome \"", absl::CHexEscape(outcome.substr(0, 32)), "\""));
  }
  Value error;
  int code = 0;
  std::string message;
  read = MessageReader(v).Get("error", &error).status();
  if (read.ok()) read = MessageReader(error).Get("code", &code).Get("message", &message).status();
  if (!read.ok()) return Malformed(absl::StrCat("\"error\": ", read.message()));
  // An unknown or OK code from a peer must still read as an error.
  absl::StatusCode c = static_cast<absl::StatusCode>(code);
  if (code <= 0 || code > static_cast<int>(absl::StatusCode::kUnauthenticated)) {
    c = absl::StatusCode::kUnknown;
  }
  st.error = absl::Status(c, message);
  return st;
}

Value MonitorStatus::ToValue() const {
  Value::MapType m;
  m.emplace("task", task.valid() ? Value(task) : Value());
  m.emplace("name", name);
  m.emplace("id", id);
  m.emplace("outcome", MonitorOutcomeName(outcome));
  if (outcome == MonitorOutcome::kValue) {
    m.emplace("value", value);
  } else {
    m.emplace("error", Value::Map({{"code", static_cast<int>(error.code())},
                                   {"message", std::string(error.message())}}));
  }
  return SystemMessage(kMonitorMessage, Value(std::move(m)));
}

std::string MonitorStatus::DebugString() const {
  std::string who = absl::StrCat(name.empty() ? "task" : name, "#", id);
  if (outcome == MonitorOutcome::kValue) {
    return absl::StrCat(who, " value: ", value.DebugString());
  }
  return absl::StrCat(who, " ", MonitorOutcomeName(outcome), ": ", error.ToString());
}

absl::StatusOr<Value> MonitorStatus::result() const {
  if (outcome == MonitorOutcome::kValue) return value;
  return error;
}

absl::Status Monitor(const TaskRef& monitor, const TaskRef& watched) {
  if (!monitor.valid()) return absl::InvalidArgumentError("Monitor with a null monitor TaskRef");
  if (!watched.valid()) return absl::InvalidArgumentError("Monitor of a null TaskRef");
  if (TaskProxy* proxy = GetTaskProxy(watched); proxy != nullptr) return proxy->Monitor(monitor);
  TaskCore* c = watched.core();
  Scheduler* s = c->scheduler();
  if (s != nullptr && s->InLoopThread()) {
    AddHook(monitor, c);
    return absl::OkStatus();
  }
  // Another thread, where `s` may be under destruction: only through its
  // slot (scheduler_internal.h).
  absl::AnyInvocable<void()> add = [monitor, watched] { AddHook(monitor, watched.core()); };
  absl::Status posted = internal::SchedulerHooks::PostToTask(c, add);
  add = nullptr;
  if (posted.ok()) return posted;
  // The scheduler has stopped, so the task's result no longer changes: once
  // it has ended, read it here.
  if (c->load_state() == TaskState::kDone) {
    Report(monitor, c);
    return absl::OkStatus();
  }
  return posted;
}

}  // namespace picos
