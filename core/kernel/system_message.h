// System messages: what picos itself puts in a task's mailbox, beside the
// task's own messages.
//
// Every one has the same shape, a map with exactly one key "picos.<kind>"
// whose value is the payload:
//
//   {"picos.monitor":        {"task": ..., "outcome": "error", ...}}   monitor.h
//   {"picos.channel_closed": <channel handle>}                         channel.h
//   {"picos.supervisor":     {"outcome": "gave_up", "restarts": 3, ...}} supervisor.h
//
// so a receiver tells them from its own messages with one check, and a user
// message is never taken for one unless its keys start with "picos.", which
// is reserved. Read them through the checked helpers below (or the typed
// readers of each header: MonitorStatus::FromValue, IsChannelClosedMessage),
// never by indexing: a message may come from another process.
//
//   absl::StatusOr<picos::Value> m = co_await picos::Receive();
//   if (const picos::Value* p = picos::SystemMessagePayload(*m, picos::kMonitorMessage)) ...
//
// Pure functions on Values: any thread, nothing suspends.
#ifndef PICOS_CORE_KERNEL_SYSTEM_MESSAGE_H_
#define PICOS_CORE_KERNEL_SYSTEM_MESSAGE_H_

#include "absl/strings/string_view.h"
#include "core/kernel/value.h"

namespace picos {

// The prefix every system message key starts with; reserved for picos.
inline constexpr absl::string_view kSystemMessagePrefix = "picos.";

// The kinds picos sends today.
inline constexpr absl::string_view kMonitorMessage = "picos.monitor";
inline constexpr absl::string_view kChannelClosedMessage = "picos.channel_closed";
inline constexpr absl::string_view kSupervisorMessage = "picos.supervisor";

// {key: payload}. `key` must start with kSystemMessagePrefix (asserted).
Value SystemMessage(absl::string_view key, Value payload);

// The key of a system message ("picos.monitor"), or "" if `msg` is not one
// (not a map of exactly one key with the prefix).
absl::string_view SystemMessageKind(const Value& msg);

// The payload of `msg` if it is the system message `key`, else null. The
// pointer lives as long as `msg` is not changed.
const Value* SystemMessagePayload(const Value& msg, absl::string_view key);

}  // namespace picos

#endif  // PICOS_CORE_KERNEL_SYSTEM_MESSAGE_H_
