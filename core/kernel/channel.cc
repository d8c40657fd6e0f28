#include "core/kernel/channel.h"

#include <algorithm>
#include <exception>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/kernel/channel_proxy.h"
#include "core/kernel/log.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/scheduler_internal.h"
#include "core/kernel/status.h"
#include "core/kernel/system_message.h"
#include "core/kernel/task_internal.h"

namespace picos {

namespace internal {
ProxyChannel::ProxyChannel(std::string n, std::unique_ptr<ChannelProxy> p)
    : ChannelCore(std::move(n)), proxy(std::move(p)) {}
ProxyChannel::~ProxyChannel() = default;
std::string ProxyChannel::DebugString() const { return proxy->DebugString(); }
}  // namespace internal

ChannelRef MakeChannelProxy(std::string name, std::unique_ptr<ChannelProxy> proxy) {
  if (proxy == nullptr) return ChannelRef();
  return ChannelRef::Adopt(new internal::ProxyChannel(std::move(name), std::move(proxy)));
}

ChannelProxy* GetChannelProxy(const ChannelRef& channel) {
  return channel.valid() ? channel.core()->AsProxy() : nullptr;
}

using internal::ChannelSubscriber;
using internal::LocalChannel;
using internal::TaskCore;

namespace {


// The local channel behind `ref`, checked for the calling thread.
absl::StatusOr<LocalChannel*> OnThread(const ChannelRef& ref) {
  if (!ref.valid()) return absl::InvalidArgumentError("null ChannelRef");
  LocalChannel* ch = ref.core()->AsLocal();
  if (ch == nullptr) {
    return absl::UnimplementedError(absl::StrCat(
        "channel ", ref.name(), " is not of this process: this call works on local channels only"));
  }
  if (!ch->scheduler->InLoopThread()) {
    return absl::FailedPreconditionError(
        absl::StrCat("channel ", ref.name(), " used outside its scheduler's thread"));
  }
  return ch;
}

absl::StatusOr<LocalChannel*> OpenOnThread(const ChannelRef& ref) {
  PICOS_ASSIGN_OR_RETURN(LocalChannel * ch, OnThread(ref));
  if (ch->closed) return absl::FailedPreconditionError(absl::StrCat("channel ", ref.name(), " is closed"));
  return ch;
}

bool TaskEnded(const TaskRef& t) {
  if (internal::IsProxy(t.core())) return t.state() == TaskState::kDone;
  return (t.core()->flags & internal::kFlagFinished) != 0;
}

// A subscribed channel is open: a local one not closed, a proxy whose layer
// has not said it closed.
bool ChannelOpen(const ChannelRef& c) {
  if (LocalChannel* l = c.core()->AsLocal(); l != nullptr) return !l->closed;
  ChannelProxy* p = c.core()->AsProxy();
  return p != nullptr && !p->closed();
}

bool Live(const ChannelSubscriber& s) {
  switch (s.kind) {
    case ChannelSubscriber::kNone:
      return false;
    case ChannelSubscriber::kTask:
      return !TaskEnded(s.task);
    case ChannelSubscriber::kChannel:
      return ChannelOpen(s.channel);
    case ChannelSubscriber::kSink:
      return true;
  }
  return false;
}

// Drops unsubscribed entries, unless a broadcast is iterating over them.
void Compact(LocalChannel* ch) {
  if (ch->sending > 0 || !ch->has_dead) return;
  auto& v = ch->subscribers;
  v.erase(std::remove_if(v.begin(), v.end(),
                         [](const ChannelSubscriber& s) { return s.kind == ChannelSubscriber::kNone; }),
          v.end());
  ch->has_dead = false;
}

void Drop(LocalChannel* ch, ChannelSubscriber& s) {
  s.kind = ChannelSubscriber::kNone;
  s.task = TaskRef();
  s.channel = ChannelRef();
  s.transform.reset();
  s.sink.reset();
  ch->has_dead = true;
}

size_t LiveCount(LocalChannel* ch) {
  size_t n = 0;
  for (ChannelSubscriber& s : ch->subscribers) {
    if (Live(s)) {
      n += s.kind == ChannelSubscriber::kSink ? s.weight : 1;
    } else if (s.kind != ChannelSubscriber::kNone) {
      Drop(ch, s);
    }
  }
  Compact(ch);
  return n;
}

enum class Reached { kYes, kEnded, kFull };

// Puts `msg` in the mailbox of a task: directly on its own scheduler, posted
// to another's. kEnded if the task has ended (it is dropped); kFull if its
// bounded mailbox is full, or its scheduler's inbox (it misses this one).
Reached ToTask(LocalChannel* ch, const TaskRef& t, Value msg) {
  TaskCore* c = t.core();
  if (c->flags & internal::kFlagFinished) return Reached::kEnded;
  absl::Status st = c->scheduler() == ch->scheduler
                        ? internal::SchedulerHooks::DeliverLocal(*ch->scheduler, c, std::move(msg))
                        : t.Send(std::move(msg));
  if (st.ok()) return Reached::kYes;
  return st.code() == absl::StatusCode::kResourceExhausted ? Reached::kFull : Reached::kEnded;
}

// What an exception escaping user code (a transform or a sink) says.
std::string ExceptionText(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "an exception of unknown type";
  }
}

// Runs the transform of subscriber `i` on `msg`. A transform that throws
// costs only its own subscription this message: the sender, the other
// subscribers and the process go on. Said once per subscription in the log.
std::optional<Value> Transform(LocalChannel* ch, size_t i, const Value& msg) {
  auto transform = ch->subscribers[i].transform;  // keeps it alive if the vector moves
  try {
    return (*transform)(msg);
  } catch (...) {
    ChannelSubscriber& s = ch->subscribers[i];
    if (!s.failure_logged) {
      s.failure_logged = true;
      PICOS_LOG(warn,
                "channel {}: a subscriber's transform threw ({}); the message is dropped for "
                "that subscriber only (said once per subscription)",
                ch->name, ExceptionText(std::current_exception()));
    }
    return std::nullopt;
  }
}

// `msg` to the task subscriber `s`: 1 if its mailbox took it, else 0 (an
// ended task is dropped from the channel; a full mailbox skips this message).
inline size_t ToTaskSubscriber(LocalChannel* ch, ChannelSubscriber& s, const Value& msg) {
  switch (ToTask(ch, s.task, msg)) {
    case Reached::kYes:
      return 1;
    case Reached::kEnded:
      Drop(ch, s);
      return 0;
    case Reached::kFull:
      return 0;
  }
  return 0;
}

// Sends `msg` to every subscriber of `ch`; gives the end points reached.
size_t Broadcast(LocalChannel* ch, const Value& msg) {
  size_t reached = 0;
  ++ch->sending;
  // Subscribers added by a transform or sink during this send get the next
  // message, not this one.
  const size_t n = ch->subscribers.size();
  for (size_t i = 0; i < n; ++i) {
    ChannelSubscriber* s = &ch->subscribers[i];
    if (s->kind == ChannelSubscriber::kNone) continue;
    if (s->kind == ChannelSubscriber::kTask && !s->transform) {
      // The hot path: one mailbox append, one wake at most.
      reached += ToTaskSubscriber(ch, *s, msg);
      continue;
    }
    std::optional<Value> transformed;
    if (s->transform) {
      transformed = Transform(ch, i, msg);
      s = &ch->subscribers[i];
      if (!transformed) continue;
      if (s->kind == ChannelSubscriber::kNone) continue;  // unsubscribed by the transform
    }
    const Value& out = transformed ? *transformed : msg;
    switch (s->kind) {
      case ChannelSubscriber::kTask:
        reached += ToTaskSubscriber(ch, *s, out);
        break;
      case ChannelSubscriber::kChannel: {
        ChannelRef keep = s->channel;
        LocalChannel* sub = keep.core()->AsLocal();
        if (!ChannelOpen(keep)) {
          Drop(ch, *s);
        } else if (sub != nullptr) {
          reached += Broadcast(sub, out);
        } else if (keep.core()->AsProxy()->Send(out).ok()) {
          ++reached;  // a channel elsewhere counts as one end point here
        } else {
          s = &ch->subscribers[i];
          if (s->kind == ChannelSubscriber::kChannel) Drop(ch, *s);
        }
        break;
      }
      case ChannelSubscriber::kSink: {
        auto sink = s->sink;
        absl::Status st;
        try {
          st = (*sink)(out);
        } catch (...) {
          st = absl::InternalError(
              absl::StrCat("sink threw: ", ExceptionText(std::current_exception())));
        }
        s = &ch->subscribers[i];
        if (st.ok()) {
          reached += s->kind == ChannelSubscriber::kSink ? s->weight : 1;
        } else if (absl::IsResourceExhausted(st)) {
          // Full for now (a peer that reads slower than this channel
          // sends): this message does not reach it and is not counted, as
          // a full mailbox refuses one; the subscription stays.
          PICOS_LOG_LIMITED(info, "channel {}: a message did not reach sink {}: {}", ch->name, s->sink_id,
                            st.ToString());
        } else if (s->kind == ChannelSubscriber::kSink) {
          PICOS_LOG(debug, "channel {}: sink {} failed and is unsubscribed: {}", ch->name,
                    s->sink_id, st.ToString());
          Drop(ch, *s);
        }
        break;
      }
      case ChannelSubscriber::kNone:
        break;
    }
  }
  --ch->sending;
  Compact(ch);
  return reached;
}

// Wakes the Deliver() calls that now have enough subscribers (or all of
// them, when the channel closes), and forgets stale ones.
void WakeDeliverers(LocalChannel* ch, bool all) {
  if (ch->deliver_waiters.empty()) return;
  size_t live = all ? 0 : LiveCount(ch);
  auto& w = ch->deliver_waiters;
  w.erase(std::remove_if(w.begin(), w.end(),
                         [&](const internal::DeliverWaiter& d) {
                           const TaskCore* c = d.token.task.core();
                           if (c->wait_seq != d.token.seq ||
                               c->load_state() != TaskState::kWaiting) {
                             return true;  // timed out, interrupted or ended
                           }
                           if (!all && d.min_subscribers > live) return false;
                           internal::WakeToken(d.token, internal::kWakeEvent);
                           return true;
                         }),
          w.end());
}

bool Reaches(LocalChannel* from, LocalChannel* target) {
  if (from == target) return true;
  for (const ChannelSubscriber& s : from->subscribers) {
    // A channel elsewhere is not followed: its layer sees its own cycles.
    LocalChannel* sub = s.kind == ChannelSubscriber::kChannel ? s.channel.core()->AsLocal() : nullptr;
    if (sub != nullptr && Reaches(sub, target)) {
      return true;
    }
  }
  return false;
}

absl::Status Add(LocalChannel* ch, ChannelSubscriber s, ChannelTransform transform) {
  if (transform) {
    s.transform = std::make_shared<const ChannelTransform>(std::move(transform));
  }
  ch->subscribers.push_back(std::move(s));
  WakeDeliverers(ch, false);
  return absl::OkStatus();
}

}  // namespace

Value ChannelClosedMessage(const ChannelRef& channel) {
  return SystemMessage(kChannelClosedMessage, Value(channel));
}

bool IsChannelClosedMessage(const Value& msg, ChannelRef* channel) {
  const Value* payload = SystemMessagePayload(msg, kChannelClosedMessage);
  if (payload == nullptr || !payload->is_channel()) return false;
  if (channel) *channel = payload->as_channel();
  return true;
}

Channel Channel::Create(std::string name) { return Create(ThisScheduler(), std::move(name)); }

Channel Channel::Create(Scheduler& scheduler, std::string name) {
  if (name.size() > kMaxNameLength) name.resize(kMaxNameLength);
  return Channel(ChannelRef::Adopt(new LocalChannel(std::move(name), &scheduler,
                                                    internal::SchedulerHooks::Index(scheduler),
                                                    internal::SchedulerHooks::Generation(scheduler))));
}

absl::Status Channel::Subscribe(const TaskRef& task, ChannelTransform transform) const {
  if (ChannelProxy* p = GetChannelProxy(ref_); p != nullptr) {
    if (!task.valid()) return absl::InvalidArgumentError("subscribe of a null TaskRef");
    return p->Subscribe(task, std::move(transform));
  }
  PICOS_ASSIGN_OR_RETURN(LocalChannel * ch, OpenOnThread(ref_));
  if (!task.valid()) return absl::InvalidArgumentError("subscribe of a null TaskRef");
  if (TaskEnded(task)) {
    return absl::FailedPreconditionError(absl::StrCat("task ", task.DebugString(), " has ended"));
  }
  for (const ChannelSubscriber& s : ch->subscribers) {
    if (s.kind == ChannelSubscriber::kTask && s.task == task) {
      return absl::AlreadyExistsError(
          absl::StrCat(task.DebugString(), " already subscribes to channel ", name()));
    }
  }
  ChannelSubscriber s;
  s.kind = ChannelSubscriber::kTask;
  s.task = task;
  return Add(ch, std::move(s), std::move(transform));
}

absl::Status Channel::Subscribe(const Channel& channel, ChannelTransform transform) const {
  if (ChannelProxy* p = GetChannelProxy(ref_); p != nullptr) {
    if (!channel.valid()) return absl::InvalidArgumentError("subscribe of a null ChannelRef");
    return p->Subscribe(channel.ref_, std::move(transform));
  }
  PICOS_ASSIGN_OR_RETURN(LocalChannel * ch, OpenOnThread(ref_));
  auto add = [&]() -> absl::Status {
    for (const ChannelSubscriber& s : ch->subscribers) {
      if (s.kind == ChannelSubscriber::kChannel && s.channel == channel.ref_) {
        return absl::AlreadyExistsError(
            absl::StrCat("channel ", channel.name(), " already subscribes to ", name()));
      }
    }
    ChannelSubscriber s;
    s.kind = ChannelSubscriber::kChannel;
    s.channel = channel.ref_;
    return Add(ch, std::move(s), std::move(transform));
  };
  if (ChannelProxy* sub = GetChannelProxy(channel.ref_); sub != nullptr) {
    // A channel elsewhere as subscriber: what this one sends goes to it.
    return add();
  }
  PICOS_ASSIGN_OR_RETURN(LocalChannel * sub, OpenOnThread(channel.ref_));
  if (sub->scheduler != ch->scheduler) {
    return absl::InvalidArgumentError("a channel can subscribe only to one of its own scheduler");
  }
  if (Reaches(sub, ch)) {
    return absl::InvalidArgumentError(absl::StrCat("subscribing channel ", channel.name(), " to ",
                                                   name(), " would make a cycle"));
  }
  return add();
}

absl::StatusOr<SinkId> Channel::SubscribeSink(ChannelSink sink, ChannelTransform transform) const {
  if (GetChannelProxy(ref_) != nullptr) {
    return absl::UnimplementedError(absl::StrCat(
        "sinks subscribe to channels of this process only; ", ref_.DebugString(), " is elsewhere"));
  }
  PICOS_ASSIGN_OR_RETURN(LocalChannel * ch, OpenOnThread(ref_));
  if (!sink) return absl::InvalidArgumentError("subscribe of an empty sink");
  ChannelSubscriber s;
  s.kind = ChannelSubscriber::kSink;
  s.sink_id = ch->next_sink_id++;
  s.sink = std::make_shared<const ChannelSink>(std::move(sink));
  SinkId id{s.sink_id};
  PICOS_RETURN_IF_ERROR(Add(ch, std::move(s), std::move(transform)));
  return id;
}

namespace {
template <typename Match>
absl::Status Remove(const ChannelRef& ref, Match match, const std::string& what) {
  PICOS_ASSIGN_OR_RETURN(LocalChannel * ch, OpenOnThread(ref));
  for (ChannelSubscriber& s : ch->subscribers) {
    if (match(s)) {
      Drop(ch, s);
      Compact(ch);
      return absl::OkStatus();
    }
  }
  return absl::NotFoundError(absl::StrCat(what, " does not subscribe to channel ", ref.name()));
}
}  // namespace

absl::Status Channel::Unsubscribe(const TaskRef& task) const {
  if (ChannelProxy* p = GetChannelProxy(ref_); p != nullptr) return p->Unsubscribe(task);
  return Remove(
      ref_, [&](const ChannelSubscriber& s) { return s.kind == ChannelSubscriber::kTask && s.task == task; },
      task.DebugString());
}

absl::Status Channel::Unsubscribe(const Channel& channel) const {
  if (ChannelProxy* p = GetChannelProxy(ref_); p != nullptr) return p->Unsubscribe(channel.ref_);
  return Remove(
      ref_,
      [&](const ChannelSubscriber& s) {
        return s.kind == ChannelSubscriber::kChannel && s.channel == channel.ref_;
      },
      channel.ref_.DebugString());
}

absl::Status Channel::Unsubscribe(SinkId sink) const {
  return Remove(
      ref_,
      [&](const ChannelSubscriber& s) { return s.kind == ChannelSubscriber::kSink && s.sink_id == sink.id; },
      absl::StrCat("sink ", sink.id));
}

absl::Status Channel::SetSinkWeight(SinkId sink, uint32_t weight) const {
  PICOS_ASSIGN_OR_RETURN(LocalChannel * ch, OpenOnThread(ref_));
  for (ChannelSubscriber& s : ch->subscribers) {
    if (s.kind == ChannelSubscriber::kSink && s.sink_id == sink.id) {
      s.weight = weight;
      // More end points may be what a Deliver waits for.
      WakeDeliverers(ch, false);
      return absl::OkStatus();
    }
  }
  return absl::NotFoundError(absl::StrCat("sink ", sink.id, " does not subscribe to channel ", ref_.name()));
}

absl::Status Channel::Send(Value message) const {
  if (!ref_.valid()) return absl::InvalidArgumentError("null ChannelRef");
  LocalChannel* ch = ref_.core()->AsLocal();
  if (ch == nullptr) {
    if (ChannelProxy* p = ref_.core()->AsProxy(); p != nullptr) return p->Send(std::move(message));
    return absl::UnimplementedError(absl::StrCat(
        "channel ", name(), " is not of this process and no layer reaches it"));
  }
  if (!ch->scheduler->InLoopThread()) {
    // Closed is final: refused here, truthfully. Open now, it may close
    // before the send runs on the channel's thread: OK means queued.
    if (ch->closed.load(std::memory_order_acquire)) {
      return absl::FailedPreconditionError(absl::StrCat("channel ", name(), " is closed"));
    }
    absl::AnyInvocable<void()> send = [ref = ref_, m = std::move(message)]() mutable {
      absl::Status st = Channel(std::move(ref)).Send(std::move(m));
      if (!st.ok()) PICOS_LOG(debug, "posted channel send failed: {}", st.ToString());
    };
    absl::Status posted =
        internal::SchedulerHooks::PostToSlot(ch->sched_index, ch->sched_gen, send);
    if (posted.code() == absl::StatusCode::kFailedPrecondition) {
      return absl::FailedPreconditionError(
          absl::StrCat("channel ", name(), ": its scheduler has stopped"));
    }
    return posted;
  }
  if (ch->closed) return absl::FailedPreconditionError(absl::StrCat("channel ", name(), " is closed"));
  Broadcast(ch, message);
  return absl::OkStatus();
}

DeliverAwaiter Channel::Deliver(Value message, size_t n, absl::Duration timeout) const {
  return DeliverAwaiter(ref_, std::move(message),
                        static_cast<uint32_t>(std::min<size_t>(n, UINT32_MAX)), timeout);
}

absl::Status Channel::Close() const {
  if (ChannelProxy* p = GetChannelProxy(ref_); p != nullptr) return p->Close();
  PICOS_ASSIGN_OR_RETURN(LocalChannel * ch, OnThread(ref_));
  if (ch->closed) return absl::OkStatus();
  ch->closed = true;
  const Value closed = ChannelClosedMessage(ref_);
  ++ch->sending;
  for (size_t i = 0; i < ch->subscribers.size(); ++i) {
    ChannelSubscriber& s = ch->subscribers[i];
    if (s.kind == ChannelSubscriber::kTask) {
      (void)ToTask(ch, s.task, closed);
    } else if (s.kind == ChannelSubscriber::kSink) {
      auto sink = s.sink;
      (void)(*sink)(closed);
    }
  }
  --ch->sending;
  // Moved out first: destroying subscribers may run destructors that look
  // at the channel.
  std::vector<ChannelSubscriber> gone;
  gone.swap(ch->subscribers);
  ch->has_dead = false;
  WakeDeliverers(ch, true);
  auto hooks = std::move(ch->close_hooks);
  ch->close_hooks.clear();
  for (auto& [key, hook] : hooks) hook(ch);
  return absl::OkStatus();
}

bool Channel::closed() const {
  if (ChannelProxy* p = GetChannelProxy(ref_); p != nullptr) return p->closed();
  LocalChannel* ch = ref_.valid() ? ref_.core()->AsLocal() : nullptr;
  return ch == nullptr || ch->closed;
}

size_t Channel::subscriber_count() const {
  absl::StatusOr<LocalChannel*> ch = OnThread(ref_);
  return ch.ok() ? LiveCount(*ch) : 0;
}

// --- Deliver ---

bool DeliverAwaiter::await_ready() {
  TaskCore* c = internal::CurrentTaskOrDie("Channel::Deliver");
  if (internal::InterruptPending(c)) return true;
  if (GetChannelProxy(channel_) != nullptr) return false;  // always asks its layer
  absl::StatusOr<LocalChannel*> ch = OpenOnThread(channel_);
  if (!ch.ok()) return true;
  if (n_ == 0 || LiveCount(*ch) >= n_) return true;
  return timeout_ns_ <= 0;
}

void DeliverAwaiter::await_suspend(std::coroutine_handle<> h) {
  TaskCore* c = internal::t_current_task;
  if (ChannelProxy* p = GetChannelProxy(channel_); p != nullptr) {
    // The layer bounds the wait by `timeout` and completes (kUnavailable
    // when its peer is lost, or when it drops the completer): no timer here.
    internal::Block(c, h, TaskState::kWaiting, absl::InfiniteDuration());
    p->Deliver(std::move(message_), n_, absl::Nanoseconds(timeout_ns_), remote_.Start(c));
    return;
  }
  internal::Block(c, h, TaskState::kWaiting, absl::Nanoseconds(timeout_ns_));
  channel_.core()->AsLocal()->deliver_waiters.push_back({internal::TokenFor(c), n_});
}

absl::StatusOr<size_t> DeliverAwaiter::await_resume() {
  TaskCore* c = internal::t_current_task;
  std::optional<absl::StatusOr<Value>> remote = remote_.Take();
  if (internal::InterruptPending(c)) return internal::TakeInterrupt(c);
  if (remote) {
    if (!remote->ok()) return remote->status();
    absl::StatusOr<uint64_t> count = FromValue<uint64_t>(**remote);
    if (!count.ok()) return absl::InternalError("the channel's layer gave a count that is not a uint");
    return static_cast<size_t>(*count);
  }
  if (GetChannelProxy(channel_) != nullptr) {
    return absl::DeadlineExceededError(absl::StrCat("deliver on ", channel_.DebugString(), " timed out"));
  }
  PICOS_ASSIGN_OR_RETURN(LocalChannel * ch, OpenOnThread(channel_));
  // Woken by a subscribe or not, the rule is the same: enough subscribers
  // now, or the wait is over.
  if (n_ > 0 && LiveCount(ch) < n_) {
    return absl::DeadlineExceededError(absl::StrCat("deliver on channel ", ch->name, ": fewer than ",
                                                    n_, " subscribers before the timeout"));
  }
  return Broadcast(ch, message_);
}

}  // namespace picos
