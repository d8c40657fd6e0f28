// Monitors (pycos Task.monitor / MonitorStatus): a task asks to be told how
// another task ended, and receives that as an ordinary message.
//
//   picos::TaskRef worker = picos::ThisScheduler().Spawn(Work);
//   PICOS_CO_RETURN_IF_ERROR(picos::Monitor(picos::Self(), worker));
//   PICOS_CO_ASSIGN_OR_RETURN(picos::Value msg, co_await picos::Receive());
//   absl::StatusOr<picos::MonitorStatus> st = picos::MonitorStatus::FromValue(msg);
//   if (st.ok() && st->outcome == picos::MonitorOutcome::kError) Restart();
//
// The message is a system message (core/kernel/system_message.h), so that it can
// sit in a mailbox beside other messages, cross to another process
// unchanged, and be read by code that knows nothing of this header:
//
//   {"picos.monitor": {
//      "task":    <task handle of the task that ended>,
//      "name":    "<its name, possibly empty>",
//      "id":      <its id, a uint>,
//      "outcome": "value" | "error" | "terminated" | "peer_lost",
//      "value":   <its result; present for "value" only>,
//      "error":   {"code": <absl::StatusCode as int>, "message": "<text>"}
//                 (present for every outcome but "value")}}
//
// "terminated" is a task that ended with kCancelled: Terminate(), or its
// scheduler stopped (pycos cannot tell this from `return None`; picos can).
// "peer_lost" is for a watched task on another process whose peer went away;
// no local task produces it: the layer behind a proxy (core/kernel/proxy.h) sends it.
// Monitor() of a proxy goes to TaskProxy::Monitor. "name" and "id" let a receiver name a task whose
// handle it cannot use (a remote one, later).
//
// Threads: Monitor() may be called from any thread; the message is sent from
// the watched task's scheduler thread when it ends. Nothing here suspends.
#ifndef PICOS_CORE_KERNEL_MONITOR_H_
#define PICOS_CORE_KERNEL_MONITOR_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/kernel/handles.h"
#include "core/kernel/value.h"

namespace picos {

// How a watched task ended.
enum class MonitorOutcome : uint8_t {
  kValue,       // it returned (its co_return value, or null)
  kError,       // it ended with an error or an escaping exception
  kTerminated,  // it was terminated (kCancelled)
  kPeerLost,    // its process became unreachable (remote tasks only)
};

// "value", "error", "terminated" or "peer_lost".
const char* MonitorOutcomeName(MonitorOutcome outcome);

// The message a monitor receives, as a struct. Convert with ToValue() and
// FromValue().
struct MonitorStatus {
  TaskRef task;        // may be null when it came from a peer that is gone
  std::string name;    // the task's name when it ended
  uint64_t id = 0;     // the task's id
  MonitorOutcome outcome = MonitorOutcome::kValue;
  Value value;         // the result, for kValue
  absl::Status error;  // not OK for every outcome but kValue

  // What a task that ended with `status` and `value` reports: kCancelled is
  // kTerminated, any other error kError, OK kValue.
  static MonitorStatus FromResult(const TaskRef& task, absl::Status status, Value value);

  // The status of a task whose peer was lost.
  static MonitorStatus PeerLost(const TaskRef& task, std::string name, uint64_t id,
                                absl::Status why);

  // True if `v` looks like a monitor message (the system message
  // "picos.monitor" with a map inside); it may still fail FromValue if
  // malformed.
  static bool Is(const Value& v);

  // Parses a monitor message. kInvalidArgument if it is not one or is
  // malformed (a message may come from the network: never trusted).
  static absl::StatusOr<MonitorStatus> FromValue(const Value& v);

  // The message form documented at the top of this file.
  Value ToValue() const;

  // "worker#3 error: INTERNAL: boom" for logs.
  std::string DebugString() const;

  // The task's result the way Join() gives it: the value, or the error.
  absl::StatusOr<Value> result() const;
};

// Makes `monitor` receive a MonitorStatus message when `watched` ends. A
// task that has already ended is reported at once. Monitoring twice sends
// two messages. Any thread (from another thread the registration is posted
// to the watched task's scheduler, which reports even a task that ends in
// between: OK then means queued, and the message will come). A task whose
// scheduler has stopped or been destroyed is reported at once if it has
// ended; kFailedPrecondition if not (it is being ended by that stop);
// kResourceExhausted if its scheduler's inbox is full. kInvalidArgument for
// null handles. If the monitor has ended by then, the message is dropped.
absl::Status Monitor(const TaskRef& monitor, const TaskRef& watched);

}  // namespace picos

#endif  // PICOS_CORE_KERNEL_MONITOR_H_
