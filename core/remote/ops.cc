#include "core/remote/ops_internal.h"

#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/kernel/monitor.h"
#include "core/kernel/naming.h"

namespace picos::remote::ops {

const Value& Field(const Value& frame, const char* key) {
  static const Value* const kNull = new Value();
  const Value* v = frame.Find(key);
  return v == nullptr ? *kNull : *v;
}

absl::StatusOr<uint64_t> U64(const Value& frame, const char* key) {
  absl::StatusOr<uint64_t> n = FromValue<uint64_t>(Field(frame, key));
  if (!n.ok()) return absl::InvalidArgumentError(absl::StrCat("frame field '", key, "' is not a uint"));
  return n;
}

absl::StatusOr<std::string> Str(const Value& frame, const char* key) {
  const Value& v = Field(frame, key);
  if (!v.is_string()) {
    return absl::InvalidArgumentError(absl::StrCat("frame field '", key, "' is not a string"));
  }
  return v.as_string();
}

Value StatusFields(const absl::Status& s) {
  return Value::Map({{"code", static_cast<int>(s.code())}, {"message", std::string(s.message())}});
}

absl::Status StatusOf(const Value& v) {
  absl::StatusOr<int> code = FromValue<int>(Field(v, "code"));
  const Value& message = Field(v, "message");
  if (!code.ok() || !message.is_string() || *code <= 0 ||
      *code > static_cast<int>(absl::StatusCode::kUnauthenticated)) {
    return absl::UnknownError("malformed status in a frame");
  }
  return absl::Status(static_cast<absl::StatusCode>(*code), message.as_string());
}

namespace {

bool IsSubscriber(const Subscription& s, const std::string& channel, const TaskRef& task,
                  const ChannelRef& relay) {
  return s.channel == channel && s.task == task && s.relay == relay;
}

}  // namespace

absl::Status CheckNotSubscribed(const SubscriptionTable& subs, const Subscription& sub) {
  for (const auto& [sid, s] : subs) {
    if (IsSubscriber(s, sub.channel, sub.task, sub.relay)) {
      return absl::AlreadyExistsError(absl::StrCat(
          sub.task.valid() ? sub.task.DebugString() : sub.relay.DebugString(),
          " already subscribes to channel ", sub.channel));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> TakeSubscription(SubscriptionTable& subs, const std::string& channel,
                                          const TaskRef& task, const ChannelRef& relay,
                                          std::optional<Subscription>* gone) {
  for (auto it = subs.begin(); it != subs.end(); ++it) {
    if (IsSubscriber(it->second, channel, task, relay)) {
      const uint64_t id = it->first;
      *gone = std::move(it->second);
      subs.erase(it);
      return id;
    }
  }
  return absl::NotFoundError(absl::StrCat(task.valid() ? task.DebugString() : relay.DebugString(),
                                          " does not subscribe to channel ", channel));
}

Value::MapType ReplyFields(uint64_t req, absl::StatusOr<Value> result) {
  Value::MapType f{{"op", "reply"}, {"req", req}, {"ok", result.ok()}};
  if (result.ok()) {
    f.emplace("value", *std::move(result));
  } else {
    f.emplace("error", StatusFields(result.status()));
  }
  return f;
}

Value::MapType DeliverRequest(const std::string& channel, Value message, uint32_t n,
                              absl::Duration timeout) {
  return Value::MapType{{"op", "ch_deliver"},
                        {"channel", channel},
                        {"msg", std::move(message)},
                        {"n", n},
                        {"timeout_ns", absl::ToInt64Nanoseconds(timeout)}};
}

Value::MapType LocateRequest(bool want_channel, const std::string& name, absl::Duration timeout) {
  return Value::MapType{{"op", "locate"},
                        {"kind", want_channel ? "channel" : "task"},
                        {"name", name},
                        {"timeout_ns", absl::ToInt64Nanoseconds(timeout)}};
}

absl::Duration TimeoutOf(int64_t timeout_ns) {
  if (timeout_ns == std::numeric_limits<int64_t>::max()) return absl::InfiniteDuration();
  return timeout_ns <= 0 ? absl::ZeroDuration() : absl::Nanoseconds(timeout_ns);
}

absl::Status ApplyTaskOp(const std::string& op, const Value& frame, const TaskRef& task) {
  if (op == "send") return task.Send(Field(frame, "msg"));
  if (op == "resume") return task.Resume(Field(frame, "value"));
  if (op == "terminate") return task.Terminate();
  // "throw": an error that arrives malformed (or as OK) is still thrown.
  absl::Status error = StatusOf(Field(frame, "error"));
  return task.Throw(error.ok() ? absl::UnknownError("thrown") : error);
}

void CompleteReply(const Value& frame, Completer done) {
  const Value& ok = Field(frame, "ok");
  if (ok.is_bool() && ok.as_bool()) {
    done.Complete(Field(frame, "value"));
  } else {
    absl::Status error = StatusOf(Field(frame, "error"));
    done.Complete(error.ok() ? absl::UnknownError("malformed reply") : error);
  }
}

void MonitorForPeer(const TaskRef& watched, uint64_t reg, PushFrame push) {
  NotifyWhenDone(watched, Completer([push = std::move(push), reg, watched](absl::StatusOr<Value> r) {
                   MonitorStatus st = MonitorStatus::FromResult(watched, r.ok() ? absl::OkStatus() : r.status(),
                                                                r.ok() ? *r : Value());
                   (void)push(Value::Map({{"op", "monitor_msg"}, {"reg", reg}, {"msg", st.ToValue()}}));
                 }));
}

void RefuseMonitor(uint64_t id, uint64_t reg, const absl::Status& why, const PushFrame& push) {
  MonitorStatus st;
  st.id = id;
  st.outcome = MonitorOutcome::kError;
  st.error = why;
  (void)push(Value::Map({{"op", "monitor_msg"}, {"reg", reg}, {"msg", st.ToValue()}}));
}

absl::StatusOr<SinkId> SubscribeForPeer(const ChannelRef& channel, uint64_t sub, PushFrame push) {
  return picos::Channel(channel).SubscribeSink([push = std::move(push), sub](const Value& m) -> absl::Status {
    return push(Value::Map({{"op", "ch_msg"}, {"sub", sub}, {"msg", m}}));
  });
}

absl::Status DeliverToSubscriber(const Subscription& s, const Value& msg, bool closing) {
  std::optional<Value> out = msg;
  // As for a local subscriber: the transform runs here, where it was given,
  // and not on the message that says the channel closed.
  if (s.transform && !closing) out = (*s.transform)(msg);
  if (!out) return absl::OkStatus();
  if (s.task.valid()) return s.task.Send(std::move(*out));
  if (closing) return absl::OkStatus();  // a relay channel's own subscribers did not subscribe
  return picos::Channel(s.relay).Send(std::move(*out));
}

Task<absl::StatusOr<Value>> LocateHere(bool want_channel, std::string name, absl::Duration timeout) {
  if (want_channel) {
    absl::StatusOr<ChannelRef> ch = co_await LocateChannel(name, Location::Local(), timeout);
    if (!ch.ok()) co_return ch.status();
    co_return Value(*ch);
  }
  absl::StatusOr<TaskRef> t = co_await LocateTask(name, Location::Local(), timeout);
  if (!t.ok()) co_return t.status();
  co_return Value(*t);
}

Task<absl::StatusOr<Value>> DeliverHere(ChannelRef channel, Value message, uint32_t n,
                                        absl::Duration timeout) {
  absl::StatusOr<size_t> reached = co_await picos::Channel(channel).Deliver(std::move(message), n, timeout);
  if (!reached.ok()) co_return reached.status();
  co_return Value(static_cast<uint64_t>(*reached));
}

}  // namespace picos::remote::ops
