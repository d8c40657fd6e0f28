#include "core/remote/loopback_peer.h"

#include <atomic>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "core/kernel/channel.h"
#include "core/kernel/channel_proxy.h"
#include "core/kernel/log.h"
#include "core/kernel/monitor.h"
#include "core/kernel/proxy.h"
#include "core/kernel/task.h"
#include "core/remote/ops_internal.h"
#include "core/wire/value_codec.h"

namespace picos::remote {

namespace {

constexpr int kEndA = 0;  // the "other process": what Remote() is given lives here
constexpr int kEndB = 1;  // "this process": holds the proxies

// Frames are read, statuses encoded and operations applied by the very code
// the real peer runs (ops_internal.h): the double proves what Node does.
using ops::MonitorReg;
using ops::Subscription;

}  // namespace

class LoopbackLink : public std::enable_shared_from_this<LoopbackLink> {
 public:
  LoopbackLink(Scheduler& scheduler, std::string uri);

  // Encodes `frame` with end `from`'s codec and has the other end decode and
  // apply it: now on the link's thread, else posted there.
  absl::Status Transmit(int from, Value frame);
  // Sends a frame that expects a reply; `done` gets it (or the error).
  void Request(int from, Value::MapType fields, Completer done);
  void Reply(int from, uint64_t req, absl::StatusOr<Value> result);
  absl::StatusOr<uint64_t> AddMonitor(int holder, MonitorReg reg);
  void DropMonitor(int holder, uint64_t reg);
  absl::Status Subscribe(int holder, Subscription sub);
  absl::Status Unsubscribe(int holder, const std::string& channel, const TaskRef& task,
                           const ChannelRef& relay);

  // Direct reads of end `home`'s tables, for a proxy's state() and closed():
  // what a real layer would have cached.
  TaskRef ExportedTask(int home, uint64_t id) const;
  ChannelRef ExportedChannel(int home, const std::string& name) const;

  absl::StatusOr<TaskRef> Cross(const TaskRef& task);
  absl::StatusOr<ChannelRef> Cross(const ChannelRef& channel);

  void Vanish();
  bool lost() const {
    absl::MutexLock lock(&mu_);
    return lost_;
  }
  absl::Status Lost() const { return absl::UnavailableError(absl::StrCat("peer ", uri_, " lost")); }
  const std::string& uri() const { return uri_; }
  Scheduler& scheduler() { return *scheduler_; }
  uint64_t frames() const { return frames_.load(std::memory_order_relaxed); }

 private:
  class EndCodec final : public HandleCodec {
   public:
    EndCodec(LoopbackLink* link, int end) : link_(link), end_(end) {}
    absl::StatusOr<TaskIdentity> ExportTask(const TaskRef& task) override;
    absl::StatusOr<TaskRef> ImportTask(const TaskIdentity& identity) override;
    absl::StatusOr<ChannelIdentity> ExportChannel(const ChannelRef& channel) override;
    absl::StatusOr<ChannelRef> ImportChannel(const ChannelIdentity& identity) override;

   private:
    LoopbackLink* const link_;
    const int end_;
  };

  // What one end holds. Guarded by mu_.
  struct End {
    absl::flat_hash_map<uint64_t, TaskRef> exported_tasks;
    absl::flat_hash_map<std::string, ChannelRef> exported_channels;
    absl::flat_hash_map<uint64_t, TaskRef> task_proxies;  // one per id: handles compare equal
    absl::flat_hash_map<std::string, ChannelRef> channel_proxies;
    absl::flat_hash_map<uint64_t, Completer> pending;  // requests sent, by id
    absl::flat_hash_map<uint64_t, MonitorReg> monitors;
    ops::SubscriptionTable subs;
    absl::flat_hash_map<uint64_t, std::pair<ChannelRef, SinkId>> sinks;  // served subscriptions
  };

  absl::Status Receive(int to, const std::string& bytes);
  absl::Status Dispatch(int to, const Value& frame);
  Completer TakePending(int end, uint64_t req);
  absl::StatusOr<TaskRef> FindTask(int end, const Value& frame);
  absl::StatusOr<ChannelRef> FindChannel(int end, const Value& frame);

  Scheduler* const scheduler_;
  const std::string uri_;
  std::string pid_[2];
  EndCodec codecs_[2];
  std::atomic<uint64_t> frames_{0};
  mutable absl::Mutex mu_;
  bool lost_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  End ends_[2] ABSL_GUARDED_BY(mu_);
};

namespace {

class LoopbackTaskProxy final : public TaskProxy {
 public:
  LoopbackTaskProxy(std::weak_ptr<LoopbackLink> link, const LoopbackLink* key, int home,
                    uint64_t id, std::string name)
      : link_(std::move(link)), key_(key), home_(home), id_(id), name_(std::move(name)) {}

  absl::Status Send(Value message) override { return Op("send", "msg", std::move(message)); }
  absl::Status Resume(Value value) override { return Op("resume", "value", std::move(value)); }
  absl::Status Terminate() override { return Op("terminate", "", Value()); }
  absl::Status Throw(absl::Status error) override { return Op("throw", "error", ops::StatusFields(error)); }

  void Join(Completer done) override {
    std::shared_ptr<LoopbackLink> l = link_.lock();
    if (l == nullptr) {
      done.Complete(absl::UnavailableError("peer gone"));
      return;
    }
    l->Request(1 - home_, Value::MapType{{"op", "join"}, {"task", id_}}, std::move(done));
  }

  absl::Status Monitor(const TaskRef& monitor) override {
    std::shared_ptr<LoopbackLink> l = link_.lock();
    if (l == nullptr) return absl::UnavailableError("peer gone");
    absl::StatusOr<uint64_t> reg = l->AddMonitor(1 - home_, MonitorReg{monitor, id_, name_});
    if (!reg.ok()) return reg.status();
    absl::Status s =
        l->Transmit(1 - home_, Value::Map({{"op", "monitor"}, {"task", id_}, {"reg", *reg}}));
    if (!s.ok()) l->DropMonitor(1 - home_, *reg);
    return s;
  }

  TaskState state() const override {
    std::shared_ptr<LoopbackLink> l = link_.lock();
    if (l == nullptr || l->lost()) return TaskState::kDone;
    TaskRef t = l->ExportedTask(home_, id_);
    return t.valid() ? t.state() : TaskState::kDone;
  }
  std::string name() const override { return name_; }
  uint64_t id() const override { return id_; }
  std::string DebugString() const override {
    std::shared_ptr<LoopbackLink> l = link_.lock();
    return absl::StrCat(name_.empty() ? "task" : name_, "#", id_, "@",
                        l ? l->uri() : std::string("gone"));
  }

  const LoopbackLink* key() const { return key_; }
  int home() const { return home_; }

 private:
  absl::Status Op(const char* op, const char* key, Value arg) {
    std::shared_ptr<LoopbackLink> l = link_.lock();
    if (l == nullptr) return absl::UnavailableError("peer gone");
    Value::MapType f{{"op", op}, {"task", id_}};
    if (*key != '\0') f.emplace(key, std::move(arg));
    return l->Transmit(1 - home_, Value(std::move(f)));
  }

  const std::weak_ptr<LoopbackLink> link_;
  const LoopbackLink* const key_;  // tells our proxies from other layers'
  const int home_;                 // the end where the task lives
  const uint64_t id_;
  const std::string name_;
};

class LoopbackChannelProxy final : public ChannelProxy {
 public:
  LoopbackChannelProxy(std::weak_ptr<LoopbackLink> link, const LoopbackLink* key, int home,
                       std::string name)
      : link_(std::move(link)), key_(key), home_(home), name_(std::move(name)) {}

  absl::Status Subscribe(const TaskRef& task, ChannelTransform transform) override {
    return Sub(task, ChannelRef(), std::move(transform));
  }
  absl::Status Subscribe(const ChannelRef& channel, ChannelTransform transform) override {
    return Sub(TaskRef(), channel, std::move(transform));
  }
  absl::Status Unsubscribe(const TaskRef& task) override {
    std::shared_ptr<LoopbackLink> l = link_.lock();
    if (l == nullptr) return absl::UnavailableError("peer gone");
    return l->Unsubscribe(1 - home_, name_, task, ChannelRef());
  }
  absl::Status Unsubscribe(const ChannelRef& channel) override {
    std::shared_ptr<LoopbackLink> l = link_.lock();
    if (l == nullptr) return absl::UnavailableError("peer gone");
    return l->Unsubscribe(1 - home_, name_, TaskRef(), channel);
  }
  absl::Status Send(Value message) override {
    std::shared_ptr<LoopbackLink> l = link_.lock();
    if (l == nullptr) return absl::UnavailableError("peer gone");
    return l->Transmit(1 - home_,
                       Value::Map({{"op", "ch_send"}, {"channel", name_}, {"msg", std::move(message)}}));
  }
  void Deliver(Value message, uint32_t n, absl::Duration timeout, Completer done) override {
    std::shared_ptr<LoopbackLink> l = link_.lock();
    if (l == nullptr) {
      done.Complete(absl::UnavailableError("peer gone"));
      return;
    }
    l->Request(1 - home_, ops::DeliverRequest(name_, std::move(message), n, timeout), std::move(done));
  }
  absl::Status Close() override {
    std::shared_ptr<LoopbackLink> l = link_.lock();
    if (l == nullptr) return absl::UnavailableError("peer gone");
    return l->Transmit(1 - home_, Value::Map({{"op", "ch_close"}, {"channel", name_}}));
  }
  bool closed() const override {
    std::shared_ptr<LoopbackLink> l = link_.lock();
    if (l == nullptr || l->lost()) return true;
    ChannelRef c = l->ExportedChannel(home_, name_);
    return !c.valid() || picos::Channel(c).closed();
  }
  std::string DebugString() const override {
    std::shared_ptr<LoopbackLink> l = link_.lock();
    return absl::StrCat("channel:", name_, "@", l ? l->uri() : std::string("gone"));
  }

  const LoopbackLink* key() const { return key_; }
  int home() const { return home_; }

 private:
  absl::Status Sub(const TaskRef& task, const ChannelRef& relay, ChannelTransform transform) {
    std::shared_ptr<LoopbackLink> l = link_.lock();
    if (l == nullptr) return absl::UnavailableError("peer gone");
    Subscription s{name_, task, relay, nullptr};
    if (transform) s.transform = std::make_shared<const ChannelTransform>(std::move(transform));
    return l->Subscribe(1 - home_, std::move(s));
  }

  const std::weak_ptr<LoopbackLink> link_;
  const LoopbackLink* const key_;
  const int home_;
  const std::string name_;
};

// Helper tasks that serve a request on end A and reply. They hold the link
// weakly: a reply after the peer went is dropped.
picos::Task<> LocateAndReply(std::weak_ptr<LoopbackLink> link, int end, bool want_task,
                             std::string name, int64_t timeout_ns, uint64_t req) {
  absl::StatusOr<Value> result =
      co_await ops::LocateHere(!want_task, std::move(name), ops::TimeoutOf(timeout_ns));
  if (std::shared_ptr<LoopbackLink> l = link.lock()) l->Reply(end, req, std::move(result));
}

picos::Task<> DeliverAndReply(std::weak_ptr<LoopbackLink> link, int end, ChannelRef channel,
                              Value message, uint32_t n, int64_t timeout_ns, uint64_t req) {
  absl::StatusOr<Value> result =
      co_await ops::DeliverHere(std::move(channel), std::move(message), n, ops::TimeoutOf(timeout_ns));
  if (std::shared_ptr<LoopbackLink> l = link.lock()) l->Reply(end, req, std::move(result));
}

class Resolver final : public NameResolver {
 public:
  explicit Resolver(LoopbackLink* link) : link_(link) {}
  void Locate(Kind kind, const std::string& name, const Location& location, absl::Duration timeout,
              Completer done) override {
    if (location.kind() == Location::Kind::kPeer && location.peer() != link_->uri()) {
      done.Complete(absl::UnavailableError(absl::StrCat("no peer at ", location.peer())));
      return;
    }
    link_->Request(kEndB, ops::LocateRequest(kind == Kind::kChannel, name, timeout), std::move(done));
  }

 private:
  LoopbackLink* const link_;
};

}  // namespace

// --- the link ---

LoopbackLink::LoopbackLink(Scheduler& scheduler, std::string uri)
    : scheduler_(&scheduler), uri_(std::move(uri)), codecs_{EndCodec(this, kEndA), EndCodec(this, kEndB)} {
  // Made-up process ids that differ from each other and from ProcessId():
  // each end's codec treats the other's handles as remote.
  for (int e = 0; e < 2; ++e) {
    pid_[e] = ProcessId();
    pid_[e][0] = static_cast<char>(pid_[e][0] ^ (e + 1));
  }
}

absl::Status LoopbackLink::Transmit(int from, Value frame) {
  if (lost()) return Lost();
  CodecOptions options;
  options.handle_codec = &codecs_[from];
  absl::StatusOr<std::string> bytes = EncodeValue(frame, options);
  if (!bytes.ok()) return bytes.status();
  frames_.fetch_add(1, std::memory_order_relaxed);
  const int to = 1 - from;
  if (scheduler_->InLoopThread()) return Receive(to, *bytes);
  return scheduler_->Post([self = shared_from_this(), to, b = std::move(*bytes)] {
    absl::Status s = self->Receive(to, b);
    if (!s.ok()) PICOS_LOG(debug, "loopback frame failed: {}", s.ToString());
  });
}

absl::Status LoopbackLink::Receive(int to, const std::string& bytes) {
  if (lost()) return Lost();
  CodecOptions options;
  options.handle_codec = &codecs_[to];
  absl::StatusOr<Value> frame = DecodeValue(bytes, options);
  if (!frame.ok()) return frame.status();
  return Dispatch(to, *frame);
}

void LoopbackLink::Request(int from, Value::MapType fields, Completer done) {
  uint64_t req;
  {
    absl::MutexLock lock(&mu_);
    if (lost_) {
      req = 0;
    } else {
      req = next_id_++;
      ends_[from].pending.emplace(req, std::move(done));
    }
  }
  if (req == 0) {
    done.Complete(Lost());
    return;
  }
  fields.emplace("req", req);
  absl::Status s = Transmit(from, Value(std::move(fields)));
  if (!s.ok()) {
    Completer c = TakePending(from, req);  // empty if the reply came already
    c.Complete(s);
  }
}

Completer LoopbackLink::TakePending(int end, uint64_t req) {
  absl::MutexLock lock(&mu_);
  auto it = ends_[end].pending.find(req);
  if (it == ends_[end].pending.end()) return Completer();
  Completer c = std::move(it->second);
  ends_[end].pending.erase(it);
  return c;
}

void LoopbackLink::Reply(int from, uint64_t req, absl::StatusOr<Value> result) {
  const bool ok = result.ok();
  absl::Status s = Transmit(from, Value(ops::ReplyFields(req, std::move(result))));
  if (!s.ok() && ok && !lost()) {
    // The value could not cross (a handle no codec can name): say why.
    (void)Transmit(from, Value::Map({{"op", "reply"}, {"req", req}, {"ok", false},
                                     {"error", ops::StatusFields(s)}}));
  }
}

absl::StatusOr<uint64_t> LoopbackLink::AddMonitor(int holder, MonitorReg reg) {
  absl::MutexLock lock(&mu_);
  if (lost_) return Lost();
  uint64_t id = next_id_++;
  ends_[holder].monitors.emplace(id, std::move(reg));
  return id;
}

void LoopbackLink::DropMonitor(int holder, uint64_t reg) {
  std::optional<MonitorReg> gone;
  absl::MutexLock lock(&mu_);
  auto it = ends_[holder].monitors.find(reg);
  if (it == ends_[holder].monitors.end()) return;
  gone = std::move(it->second);  // destroyed after the lock is released
  ends_[holder].monitors.erase(it);
}

absl::Status LoopbackLink::Subscribe(int holder, Subscription sub) {
  uint64_t id;
  {
    absl::MutexLock lock(&mu_);
    if (lost_) return Lost();
    if (absl::Status dup = ops::CheckNotSubscribed(ends_[holder].subs, sub); !dup.ok()) return dup;
    id = next_id_++;
    ends_[holder].subs.emplace(id, sub);
  }
  absl::Status s = Transmit(holder, Value::Map({{"op", "ch_sub"}, {"channel", sub.channel}, {"sub", id}}));
  if (!s.ok()) {
    absl::MutexLock lock(&mu_);
    ends_[holder].subs.erase(id);
  }
  return s;
}

absl::Status LoopbackLink::Unsubscribe(int holder, const std::string& channel, const TaskRef& task,
                                       const ChannelRef& relay) {
  std::optional<Subscription> gone;
  absl::StatusOr<uint64_t> id;
  {
    absl::MutexLock lock(&mu_);
    if (lost_) return Lost();
    id = ops::TakeSubscription(ends_[holder].subs, channel, task, relay, &gone);
  }
  if (!id.ok()) return id.status();
  return Transmit(holder, Value::Map({{"op", "ch_unsub"}, {"channel", channel}, {"sub", *id}}));
}

TaskRef LoopbackLink::ExportedTask(int home, uint64_t id) const {
  absl::MutexLock lock(&mu_);
  auto it = ends_[home].exported_tasks.find(id);
  return it == ends_[home].exported_tasks.end() ? TaskRef() : it->second;
}

ChannelRef LoopbackLink::ExportedChannel(int home, const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = ends_[home].exported_channels.find(name);
  return it == ends_[home].exported_channels.end() ? ChannelRef() : it->second;
}

absl::StatusOr<TaskRef> LoopbackLink::FindTask(int end, const Value& frame) {
  absl::StatusOr<uint64_t> id = ops::U64(frame, "task");
  if (!id.ok()) return id.status();
  TaskRef t = ExportedTask(end, *id);
  if (!t.valid()) return absl::NotFoundError(absl::StrCat("no task #", *id, " was exported here"));
  return t;
}

absl::StatusOr<ChannelRef> LoopbackLink::FindChannel(int end, const Value& frame) {
  absl::StatusOr<std::string> name = ops::Str(frame, "channel");
  if (!name.ok()) return name.status();
  ChannelRef c = ExportedChannel(end, *name);
  if (!c.valid()) return absl::NotFoundError(absl::StrCat("no channel '", *name, "' was exported here"));
  return c;
}

absl::Status LoopbackLink::Dispatch(int to, const Value& frame) {
  absl::StatusOr<std::string> op_or = ops::Str(frame, "op");
  if (!op_or.ok()) return op_or.status();
  const std::string& op = *op_or;
  std::weak_ptr<LoopbackLink> weak = weak_from_this();
  // What the shared appliers send back on: the link, held weakly (a task may
  // end or a channel broadcast after the link went), to end `to`'s peer.
  ops::PushFrame push = [weak, to](Value f) -> absl::Status {
    std::shared_ptr<LoopbackLink> l = weak.lock();
    if (l == nullptr) return absl::UnavailableError("peer gone");
    return l->Transmit(to, std::move(f));
  };

  if (op == "send" || op == "resume" || op == "terminate" || op == "throw") {
    absl::StatusOr<TaskRef> t = FindTask(to, frame);
    if (!t.ok()) return t.status();
    return ops::ApplyTaskOp(op, frame, *t);
  }
  if (op == "join") {
    absl::StatusOr<uint64_t> req = ops::U64(frame, "req");
    if (!req.ok()) return req.status();
    absl::StatusOr<TaskRef> t = FindTask(to, frame);
    if (!t.ok()) {
      Reply(to, *req, t.status());
      return t.status();
    }
    NotifyWhenDone(*t, Completer([weak, to, req = *req](absl::StatusOr<Value> r) {
                     if (std::shared_ptr<LoopbackLink> l = weak.lock()) l->Reply(to, req, std::move(r));
                   }));
    return absl::OkStatus();
  }
  if (op == "monitor") {
    absl::StatusOr<uint64_t> reg = ops::U64(frame, "reg");
    if (!reg.ok()) return reg.status();
    absl::StatusOr<TaskRef> t = FindTask(to, frame);
    if (!t.ok()) {
      absl::StatusOr<uint64_t> id = ops::U64(frame, "task");
      ops::RefuseMonitor(id.ok() ? *id : 0, *reg, t.status(), push);
      return t.status();
    }
    ops::MonitorForPeer(*t, *reg, push);
    return absl::OkStatus();
  }
  if (op == "monitor_msg") {
    absl::StatusOr<uint64_t> reg = ops::U64(frame, "reg");
    if (!reg.ok()) return reg.status();
    std::optional<MonitorReg> m;
    {
      absl::MutexLock lock(&mu_);
      auto it = ends_[to].monitors.find(*reg);
      if (it == ends_[to].monitors.end()) return absl::NotFoundError("unknown monitor registration");
      m = std::move(it->second);
      ends_[to].monitors.erase(it);
    }
    return m->monitor.Send(ops::Field(frame, "msg"));
  }
  if (op == "reply") {
    absl::StatusOr<uint64_t> req = ops::U64(frame, "req");
    if (!req.ok()) return req.status();
    Completer c = TakePending(to, *req);
    if (!c) return absl::NotFoundError("reply to no pending request");
    ops::CompleteReply(frame, std::move(c));
    return absl::OkStatus();
  }
  if (op == "locate") {
    absl::StatusOr<uint64_t> req = ops::U64(frame, "req");
    absl::StatusOr<std::string> kind = ops::Str(frame, "kind");
    absl::StatusOr<std::string> name = ops::Str(frame, "name");
    absl::StatusOr<int64_t> timeout_ns = FromValue<int64_t>(ops::Field(frame, "timeout_ns"));
    if (!req.ok() || !kind.ok() || !name.ok() || !timeout_ns.ok()) {
      return absl::InvalidArgumentError("malformed locate frame");
    }
    TaskRef helper = scheduler_->Spawn(LocateAndReply, weak, to, *kind == "task", *name, *timeout_ns, *req);
    if (!helper.valid()) Reply(to, *req, absl::UnavailableError("the peer's scheduler stopped"));
    return absl::OkStatus();
  }
  if (op == "ch_sub") {
    absl::StatusOr<ChannelRef> c = FindChannel(to, frame);
    absl::StatusOr<uint64_t> sub = ops::U64(frame, "sub");
    if (!c.ok()) return c.status();
    if (!sub.ok()) return sub.status();
    absl::StatusOr<SinkId> sink = ops::SubscribeForPeer(*c, *sub, push);
    if (!sink.ok()) return sink.status();
    absl::MutexLock lock(&mu_);
    ends_[to].sinks.emplace(*sub, std::make_pair(*c, *sink));
    return absl::OkStatus();
  }
  if (op == "ch_unsub") {
    absl::StatusOr<uint64_t> sub = ops::U64(frame, "sub");
    if (!sub.ok()) return sub.status();
    std::optional<std::pair<ChannelRef, SinkId>> s;
    {
      absl::MutexLock lock(&mu_);
      auto it = ends_[to].sinks.find(*sub);
      if (it == ends_[to].sinks.end()) return absl::NotFoundError("unknown subscription");
      s = std::move(it->second);
      ends_[to].sinks.erase(it);
    }
    return picos::Channel(s->first).Unsubscribe(s->second);
  }
  if (op == "ch_msg") {
    absl::StatusOr<uint64_t> sub = ops::U64(frame, "sub");
    if (!sub.ok()) return sub.status();
    const Value& msg = ops::Field(frame, "msg");
    const bool closing = IsChannelClosedMessage(msg);
    std::optional<Subscription> s;
    {
      absl::MutexLock lock(&mu_);
      auto it = ends_[to].subs.find(*sub);
      if (it == ends_[to].subs.end()) return absl::NotFoundError("message for no subscription");
      s = it->second;
      if (closing) ends_[to].subs.erase(it);
    }
    return ops::DeliverToSubscriber(*s, msg, closing);
  }
  if (op == "ch_send" || op == "ch_close") {
    absl::StatusOr<ChannelRef> c = FindChannel(to, frame);
    if (!c.ok()) return c.status();
    if (op == "ch_close") return picos::Channel(*c).Close();
    return picos::Channel(*c).Send(ops::Field(frame, "msg"));
  }
  if (op == "ch_deliver") {
    absl::StatusOr<uint64_t> req = ops::U64(frame, "req");
    if (!req.ok()) return req.status();
    absl::StatusOr<ChannelRef> c = FindChannel(to, frame);
    absl::StatusOr<uint32_t> n = FromValue<uint32_t>(ops::Field(frame, "n"));
    absl::StatusOr<int64_t> timeout_ns = FromValue<int64_t>(ops::Field(frame, "timeout_ns"));
    if (!c.ok() || !n.ok() || !timeout_ns.ok()) {
      absl::Status bad = c.ok() ? absl::InvalidArgumentError("malformed deliver frame") : c.status();
      Reply(to, *req, bad);
      return bad;
    }
    TaskRef helper = scheduler_->Spawn(DeliverAndReply, weak, to, *c, ops::Field(frame, "msg"), *n,
                                       *timeout_ns, *req);
    if (!helper.valid()) Reply(to, *req, absl::UnavailableError("the peer's scheduler stopped"));
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown frame op '", op.substr(0, 32), "'"));
}

absl::StatusOr<TaskRef> LoopbackLink::Cross(const TaskRef& task) {
  CodecOptions a, b;
  a.handle_codec = &codecs_[kEndA];
  b.handle_codec = &codecs_[kEndB];
  absl::StatusOr<std::string> bytes = EncodeValue(Value(task), a);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<Value> v = DecodeValue(*bytes, b);
  if (!v.ok()) return v.status();
  return v->as_task();
}

absl::StatusOr<ChannelRef> LoopbackLink::Cross(const ChannelRef& channel) {
  CodecOptions a, b;
  a.handle_codec = &codecs_[kEndA];
  b.handle_codec = &codecs_[kEndB];
  absl::StatusOr<std::string> bytes = EncodeValue(Value(channel), a);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<Value> v = DecodeValue(*bytes, b);
  if (!v.ok()) return v.status();
  return v->as_channel();
}

void LoopbackLink::Vanish() {
  End gone[2];
  {
    absl::MutexLock lock(&mu_);
    if (lost_) return;
    lost_ = true;
    for (int e = 0; e < 2; ++e) std::swap(gone[e], ends_[e]);
  }
  // Outside the lock: each of these may call back into the link (which now
  // refuses) or run a task's destructors.
  const absl::Status why = Lost();
  for (End& end : gone) {
    for (auto& [req, done] : end.pending) done.Complete(why);
    for (auto& [reg, m] : end.monitors) {
      auto it = end.task_proxies.find(m.watched_id);
      TaskRef watched = it == end.task_proxies.end() ? TaskRef() : it->second;
      absl::Status sent =
          m.monitor.Send(MonitorStatus::PeerLost(watched, m.watched_name, m.watched_id, why).ToValue());
      if (!sent.ok()) PICOS_LOG(debug, "peer_lost for a gone monitor dropped: {}", sent.ToString());
    }
    for (auto& [sub, s] : end.sinks) (void)picos::Channel(s.first).Unsubscribe(s.second);
  }
}

// --- the codecs of the two ends ---

absl::StatusOr<TaskIdentity> LoopbackLink::EndCodec::ExportTask(const TaskRef& task) {
  if (TaskProxy* p = GetTaskProxy(task); p != nullptr) {
    auto* mine = dynamic_cast<LoopbackTaskProxy*>(p);
    if (mine == nullptr || mine->key() != link_) {
      return absl::UnimplementedError(absl::StrCat("task ", task.DebugString(), " is of another layer"));
    }
    // A proxy names its task where it lives: sent back there it is the original.
    return TaskIdentity{link_->pid_[mine->home()], p->id(), p->name()};
  }
  TaskIdentity identity{link_->pid_[end_], task.id(), task.name()};
  absl::MutexLock lock(&link_->mu_);
  if (link_->lost_) return link_->Lost();
  link_->ends_[end_].exported_tasks.try_emplace(identity.task_id, task);
  return identity;
}

absl::StatusOr<TaskRef> LoopbackLink::EndCodec::ImportTask(const TaskIdentity& identity) {
  absl::MutexLock lock(&link_->mu_);
  if (link_->lost_) return link_->Lost();
  if (identity.process_id == link_->pid_[end_]) {
    auto& mine = link_->ends_[end_].exported_tasks;
    auto it = mine.find(identity.task_id);
    if (it == mine.end()) {
      return absl::NotFoundError(absl::StrCat("no task #", identity.task_id, " was exported here"));
    }
    return it->second;
  }
  if (identity.process_id != link_->pid_[1 - end_]) {
    return absl::UnimplementedError("a handle of a process this link does not reach");
  }
  auto& proxies = link_->ends_[end_].task_proxies;
  auto it = proxies.find(identity.task_id);
  if (it != proxies.end()) return it->second;
  TaskRef proxy = MakeTaskProxy(std::make_unique<LoopbackTaskProxy>(
      link_->weak_from_this(), link_, 1 - end_, identity.task_id, identity.name));
  proxies.emplace(identity.task_id, proxy);
  return proxy;
}

absl::StatusOr<ChannelIdentity> LoopbackLink::EndCodec::ExportChannel(const ChannelRef& channel) {
  if (ChannelProxy* p = GetChannelProxy(channel); p != nullptr) {
    auto* mine = dynamic_cast<LoopbackChannelProxy*>(p);
    if (mine == nullptr || mine->key() != link_) {
      return absl::UnimplementedError(absl::StrCat(channel.DebugString(), " is of another layer"));
    }
    return ChannelIdentity{link_->pid_[mine->home()], channel.name()};
  }
  absl::MutexLock lock(&link_->mu_);
  if (link_->lost_) return link_->Lost();
  auto [it, added] = link_->ends_[end_].exported_channels.try_emplace(channel.name(), channel);
  if (!added && it->second != channel) {
    return absl::FailedPreconditionError(
        absl::StrCat("two channels named '", channel.name(), "' crossed the link"));
  }
  return ChannelIdentity{link_->pid_[end_], channel.name()};
}

absl::StatusOr<ChannelRef> LoopbackLink::EndCodec::ImportChannel(const ChannelIdentity& identity) {
  absl::MutexLock lock(&link_->mu_);
  if (link_->lost_) return link_->Lost();
  if (identity.process_id == link_->pid_[end_]) {
    auto& mine = link_->ends_[end_].exported_channels;
    auto it = mine.find(identity.name);
    if (it == mine.end()) {
      return absl::NotFoundError(absl::StrCat("no channel '", identity.name, "' was exported here"));
    }
    return it->second;
  }
  if (identity.process_id != link_->pid_[1 - end_]) {
    return absl::UnimplementedError("a handle of a process this link does not reach");
  }
  auto& proxies = link_->ends_[end_].channel_proxies;
  auto it = proxies.find(identity.name);
  if (it != proxies.end()) return it->second;
  ChannelRef proxy = MakeChannelProxy(
      identity.name, std::make_unique<LoopbackChannelProxy>(link_->weak_from_this(), link_, 1 - end_,
                                                            identity.name));
  proxies.emplace(identity.name, proxy);
  return proxy;
}

// --- LoopbackPeer ---

LoopbackPeer::LoopbackPeer(Scheduler& scheduler, Options options)
    : link_(std::make_shared<LoopbackLink>(scheduler, std::move(options.uri))),
      resolver_(std::make_unique<Resolver>(link_.get())) {}

LoopbackPeer::~LoopbackPeer() { link_->Vanish(); }

absl::StatusOr<TaskRef> LoopbackPeer::Remote(const TaskRef& task) {
  if (!task.valid()) return absl::InvalidArgumentError("Remote of a null TaskRef");
  return link_->Cross(task);
}

absl::StatusOr<ChannelRef> LoopbackPeer::Remote(const ChannelRef& channel) {
  if (!channel.valid()) return absl::InvalidArgumentError("Remote of a null ChannelRef");
  return link_->Cross(channel);
}

NameResolver* LoopbackPeer::resolver() { return resolver_.get(); }
const std::string& LoopbackPeer::uri() const { return link_->uri(); }
void LoopbackPeer::Vanish() { link_->Vanish(); }
bool LoopbackPeer::vanished() const { return link_->lost(); }
uint64_t LoopbackPeer::frames() const { return link_->frames(); }

}  // namespace picos::remote
