// Channels: named publish–subscribe broadcast (pycos Channel).
//
// A channel lives on the scheduler that created it. Tasks (and other
// channels, and sinks) subscribe to it; Send() puts a copy of a message in
// the mailbox of every subscriber, which takes it with Receive() like any
// other message. Deliver() waits until enough subscribers exist, then sends
// and says how many end points got the message.
//
//   picos::Channel news = picos::Channel::Create("news");
//   (void)news.Subscribe(reader);                    // reader: a TaskRef
//   (void)news.Subscribe(shouter, [](const Value& m) -> std::optional<Value> {
//     if (!m.is_string()) return std::nullopt;       // filter ...
//     return Value(m.as_string() + "!");             // ... and transform
//   });
//   (void)news.Send("hello");
//   absl::StatusOr<size_t> got = co_await news.Deliver("hi", 2, absl::Seconds(1));
//   news.Close();   // every subscriber receives ChannelClosedMessage(news.ref())
//
// Semantics, and where they differ from pycos:
//  * "Received" (Deliver's count) means put in the mailbox of a live
//    subscriber task, or accepted by a sink — what pycos counts too; it does
//    not wait for the task to take the message out with Receive().
//  * Deliver(msg, n, timeout) waits up to `timeout` until the channel has at
//    least n direct subscribers (pycos), then sends; the count it gives is of
//    end points reached, through subscribed channels too, after transforms
//    that dropped the message. If the n subscribers do not appear in time it
//    sends nothing and gives kDeadlineExceeded.
//  * A subscriber task that ends is dropped lazily, when a send or a count
//    next meets it: no per-task hook, no cost on the task's side. Until then
//    the channel keeps a reference to its (ended, 56-byte) control block.
//  * A channel may subscribe to another of the same scheduler; a
//    subscription that would make a cycle is refused (pycos would loop).
//  * Close() tells every task and sink subscriber with ChannelClosedMessage
//    (transforms are skipped for it) and drops all subscribers; subscribed
//    channels are just dropped (their own subscribers did not subscribe to
//    this one). Later calls give kFailedPrecondition.
//  * Messages from one sender reach each subscriber in the order sent.
//
// Threads: Send() may be called from any thread (from elsewhere it is posted
// to the channel's scheduler, through a check that the scheduler still
// exists: safe while it is being destroyed). Every other call belongs on the
// channel's scheduler thread and gives kFailedPrecondition elsewhere. Nothing
// here suspends except co_await Deliver().
//
// Bounded mailboxes (SpawnOptions::mailbox_limit): a subscriber whose
// mailbox is full misses that message (it is not counted as reached by
// Deliver) and stays subscribed.
#ifndef PICOS_CORE_KERNEL_CHANNEL_H_
#define PICOS_CORE_KERNEL_CHANNEL_H_

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/kernel/channel_internal.h"
#include "core/kernel/handles.h"
#include "core/kernel/value.h"

namespace picos {

class Scheduler;
class DeliverAwaiter;

// Applied to each message for one subscriber: the message it gets, or
// nullopt to skip it. Runs on the channel's scheduler thread, inside Send().
// One that throws drops that message for its own subscriber only (logged
// once per subscription): the sender and the other subscribers go on.
using ChannelTransform = std::function<std::optional<Value>(const Value&)>;

// A subscriber that is a callback (the hook for subscribers in other
// processes). An error return, or an exception, unsubscribes it. Runs
// inside Send().
using ChannelSink = std::function<absl::Status(const Value&)>;

// Identifies a sink subscription, for Unsubscribe.
struct SinkId {
  uint64_t id = 0;
};

// The message a subscriber receives when `channel` closes, a system message
// (core/kernel/system_message.h): {"picos.channel_closed": channel}.
Value ChannelClosedMessage(const ChannelRef& channel);

// True if `msg` is a ChannelClosedMessage; sets *channel to the channel.
bool IsChannelClosedMessage(const Value& msg, ChannelRef* channel = nullptr);

// A view of a channel through its handle. Cheap to copy (one ChannelRef);
// the channel lives while any handle to it does.
class Channel {
 public:
  // Most characters in a channel name.
  static constexpr size_t kMaxNameLength = 256;

  // A new channel on the scheduler of the running task (asserts there is
  // one) or on `scheduler`. A name longer than kMaxNameLength is cut.
  static Channel Create(std::string name);
  static Channel Create(Scheduler& scheduler, std::string name);

  // Views an existing handle (from a message, or Locate). On a channel that
  // lives elsewhere (a proxy, channel_proxy.h) Subscribe, Unsubscribe, Send,
  // Deliver, Close and closed() go to its layer, with the errors documented
  // here plus kUnavailable when its peer is lost; SubscribeSink gives
  // kUnimplemented and subscriber_count() 0. A bare handle that no layer
  // reaches gives kUnimplemented.
  explicit Channel(ChannelRef ref) : ref_(std::move(ref)) {}
  Channel() = default;

  const ChannelRef& ref() const { return ref_; }
  const std::string& name() const { return ref_.name(); }
  bool valid() const { return ref_.valid(); }

  // Adds `task` (of any scheduler) as a subscriber, with an optional
  // transform/filter. kAlreadyExists if it is already subscribed.
  absl::Status Subscribe(const TaskRef& task, ChannelTransform transform = nullptr) const;

  // Makes `channel` (of the same scheduler, or a channel elsewhere) a
  // subscriber: what this one sends, it sends on. kInvalidArgument if that
  // would make a cycle (followed through channels of this process only).
  absl::Status Subscribe(const Channel& channel, ChannelTransform transform = nullptr) const;

  // Adds a callback subscriber; its id unsubscribes it. A sink that
  // returns an error is unsubscribed, except kResourceExhausted (full for
  // now, as a remote peer's queue is): that message misses it and is not
  // counted as reaching it, and it stays.
  absl::StatusOr<SinkId> SubscribeSink(ChannelSink sink,
                                       ChannelTransform transform = nullptr) const;

  // How many end points sink `sink` stands for (1 when subscribed): what
  // Deliver counts for it, in its wait for `n` subscribers and in the
  // number reached. The remote layer subscribes one sink per peer
  // connection and channel, however many of the peer's tasks subscribe
  // behind it, and keeps its weight equal to their number. 0 counts it as
  // none (it still gets every message). kNotFound if it is not subscribed.
  absl::Status SetSinkWeight(SinkId sink, uint32_t weight) const;

  // Removes a subscriber. kNotFound if it was not subscribed.
  absl::Status Unsubscribe(const TaskRef& task) const;
  absl::Status Unsubscribe(const Channel& channel) const;
  absl::Status Unsubscribe(SinkId sink) const;

  // Broadcasts `message` to every subscriber (not waiting for anything).
  // Any thread. kFailedPrecondition once closed, or once the channel's
  // scheduler has stopped. From another thread OK means queued while the
  // channel was open: the broadcast runs on the channel's thread, and is
  // dropped (logged at debug level) if the channel closed in between;
  // kResourceExhausted if that scheduler's inbox is full. For the outcome,
  // co_await Deliver() from a task of the channel's scheduler.
  absl::Status Send(Value message) const;

  // Awaitable from a task of the channel's scheduler: waits up to `timeout`
  // for at least `n` subscribers, then sends; gives the number of end
  // points the message reached. kDeadlineExceeded if they did not appear
  // (nothing sent); kFailedPrecondition if the channel is or becomes closed;
  // kCancelled (or the thrown error) if the task is interrupted.
  DeliverAwaiter Deliver(Value message, size_t n = 0,
                         absl::Duration timeout = absl::InfiniteDuration()) const;

  // Closes the channel (see the header comment). Idempotent.
  absl::Status Close() const;
  bool closed() const;

  // Live direct subscribers (drops ended tasks on the way).
  size_t subscriber_count() const;

 private:
  ChannelRef ref_;
};

// --- Awaiter type (public so that it can be named; use Channel::Deliver). ---

class DeliverAwaiter {
 public:
  DeliverAwaiter(const DeliverAwaiter&) = delete;
  DeliverAwaiter& operator=(const DeliverAwaiter&) = delete;
  DeliverAwaiter(ChannelRef channel, Value message, uint32_t n, absl::Duration timeout)
      : channel_(std::move(channel)),
        message_(std::move(message)),
        n_(n),
        timeout_ns_(absl::ToInt64Nanoseconds(timeout)) {}
  bool await_ready();
  void await_suspend(std::coroutine_handle<> h);
  absl::StatusOr<size_t> await_resume();

 private:
  ChannelRef channel_;
  Value message_;
  uint32_t n_;
  int64_t timeout_ns_;
  internal::CompletionWait remote_;  // a channel elsewhere
};

}  // namespace picos

#endif  // PICOS_CORE_KERNEL_CHANNEL_H_
