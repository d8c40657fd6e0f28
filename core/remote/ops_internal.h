// What both peers of the remote layer do with a frame once its handles are
// resolved: the real one (node.cc, over a connection) and the in-process
// double (loopback_peer.cc, across a codec). The double exists to prove the
// kernel's proxy seams the way the real peer uses them, so the two must read
// frames, encode statuses and apply each operation (send, throw, monitor,
// channel subscribe and deliver, locate, ...) to the local task or channel in
// one and the same way: this is that one way. How a frame travels, how a
// request finds its reply and which tables hold what stay with each peer.
// node.cc's opening comment lists the frames; nothing here changes them.
//
//   const Value& op = ops::Field(frame, "op");
//   absl::StatusOr<TaskRef> t = /* the peer's own lookup of frame's "task" */;
//   return ops::ApplyTaskOp(op.as_string(), frame, *t);
//
// Internal to core/remote. Threads: any, as the task and channel calls they
// make; the PushFrame callbacks are called on whatever thread ends the task
// or broadcasts on the channel.
#ifndef PICOS_CORE_REMOTE_OPS_INTERNAL_H_
#define PICOS_CORE_REMOTE_OPS_INTERNAL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/kernel/channel.h"
#include "core/kernel/handles.h"
#include "core/kernel/proxy.h"
#include "core/kernel/task.h"
#include "core/kernel/value.h"

namespace picos::remote::ops {

// --- reading frames: they came through a codec, so every field is checked
// like anything from the network ---

// `frame`'s field `key`, or a null Value if it has none.
const Value& Field(const Value& frame, const char* key);
// Field `key` as a uint; kInvalidArgument if it is not one.
absl::StatusOr<uint64_t> U64(const Value& frame, const char* key);
// Field `key` as a string; kInvalidArgument if it is not one.
absl::StatusOr<std::string> Str(const Value& frame, const char* key);

// A status as it travels: {code, message}.
Value StatusFields(const absl::Status& s);
// The status StatusFields made; kUnknown "malformed status in a frame" for
// anything else (an OK code included: an error never arrives as OK).
absl::Status StatusOf(const Value& v);

// --- what a peer holds ---

// One broadcast subscription this side holds to a channel of the other side.
struct Subscription {
  std::string channel;  // its name on the other side
  TaskRef task;         // the subscriber: a task ...
  ChannelRef relay;     // ... or a channel
  std::shared_ptr<const ChannelTransform> transform;
};

// One monitor this side placed on a task of the other side: `monitor` hears
// when it ends (or when the other side is lost).
struct MonitorReg {
  TaskRef monitor;
  uint64_t watched_id;
  std::string watched_name;
};

// The subscriptions one side holds, by the id its frames name them by. Each
// peer guards its own; the functions below are called under that lock.
using SubscriptionTable = absl::flat_hash_map<uint64_t, Subscription>;
// kAlreadyExists if `subs` holds a subscription of sub's subscriber to its
// channel already: a subscriber subscribes once, as to a local channel.
absl::Status CheckNotSubscribed(const SubscriptionTable& subs, const Subscription& sub);
// Removes the subscription of `task` (or `relay`) to `channel` from `subs`
// into `*gone` (for the caller to destroy after its lock is released: a
// transform may hold anything) and returns its id; kNotFound if there is
// none.
absl::StatusOr<uint64_t> TakeSubscription(SubscriptionTable& subs, const std::string& channel,
                                          const TaskRef& task, const ChannelRef& relay,
                                          std::optional<Subscription>* gone);

// --- frames a peer sends ---

// The fields of a "reply" to request `req` (without them it sends nothing).
Value::MapType ReplyFields(uint64_t req, absl::StatusOr<Value> result);
// The fields of a "ch_deliver" and of a "locate" request; the peer adds "req".
Value::MapType DeliverRequest(const std::string& channel, Value message, uint32_t n,
                              absl::Duration timeout);
Value::MapType LocateRequest(bool want_channel, const std::string& name, absl::Duration timeout);
// A request's "timeout_ns" as a duration: the largest int64 (how
// absl::InfiniteDuration() travels) is infinite, zero or less is zero.
absl::Duration TimeoutOf(int64_t timeout_ns);

// Sends a frame to the peer that asked; kUnavailable once it is gone. The
// callbacks below hold it, so each peer makes it hold its link weakly.
using PushFrame = std::function<absl::Status(Value frame)>;

// --- applying a frame to this process's own tasks and channels ---

// "send", "resume", "terminate" or "throw" (`op`) of `frame` on `task`.
absl::Status ApplyTaskOp(const std::string& op, const Value& frame, const TaskRef& task);
// Completes `done` with the value or error of a "reply" frame.
void CompleteReply(const Value& frame, Completer done);
// "monitor": when `watched` ends, pushes the "monitor_msg" of registration
// `reg` (dropped if the peer is gone by then).
void MonitorForPeer(const TaskRef& watched, uint64_t reg, PushFrame push);
// A "monitor" of task `id` that cannot be honoured (it ended and is no
// longer kept, or its proof is wrong): pushes the "monitor_msg" of
// registration `reg` at once, with outcome "error" and `why`, so that the
// monitor hears an answer instead of nothing. The status has no handle.
void RefuseMonitor(uint64_t id, uint64_t reg, const absl::Status& why, const PushFrame& push);
// "ch_sub": a sink on `channel` that pushes each broadcast as the "ch_msg" of
// subscription `sub`.
absl::StatusOr<SinkId> SubscribeForPeer(const ChannelRef& channel, uint64_t sub, PushFrame push);
// "ch_msg": hands `msg` of subscription `s` to its subscriber, as a local
// channel would; `closing` when it is the message that says the channel
// closed (the peer then forgets the subscription).
absl::Status DeliverToSubscriber(const Subscription& s, const Value& msg, bool closing);

// The work behind "locate" and "ch_deliver" requests, done here as for a
// local caller; each peer's helper task awaits it and replies with it.
Task<absl::StatusOr<Value>> LocateHere(bool want_channel, std::string name, absl::Duration timeout);
Task<absl::StatusOr<Value>> DeliverHere(ChannelRef channel, Value message, uint32_t n,
                                        absl::Duration timeout);

}  // namespace picos::remote::ops

#endif  // PICOS_CORE_REMOTE_OPS_INTERNAL_H_
