#include "core/remote/service.h"

#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/kernel/log.h"
#include "core/kernel/monitor.h"
#include "core/kernel/proxy.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/system_message.h"
#include "core/remote/ops_internal.h"

namespace picos::remote {

namespace {

// --- the serving side ---

struct ServerState {
  std::string name;
  ServiceFunction fn;
  ServiceOptions options;
  size_t running = 0;  // only the scheduler's thread touches it
};

// Counts a started task as running until its frame goes (also when it is
// terminated while waiting: its locals' destructors run).
class RunningGuard {
 public:
  explicit RunningGuard(std::shared_ptr<ServerState> s) : s_(std::move(s)) { ++s_->running; }
  RunningGuard(const RunningGuard&) = delete;
  RunningGuard& operator=(const RunningGuard&) = delete;
  ~RunningGuard() { --s_->running; }

 private:
  std::shared_ptr<ServerState> s_;
};

bool IsStart(const Value& msg, uint64_t req) {
  const Value* p = SystemMessagePayload(msg, kServiceStartMessage);
  return p != nullptr && p->is_uint() && p->as_uint() == req;
}

// A started task: waits for its client's start message (sent once the
// client has asked for its result), then is the service's function.
Task<absl::StatusOr<Value>> RunOne(std::shared_ptr<ServerState> s, uint64_t req, Value arg) {
  RunningGuard guard(s);
  absl::StatusOr<Value> start =
      co_await ReceiveMatching([req](const Value& m) { return IsStart(m, req); }, s->options.start_timeout);
  if (!start.ok()) {
    if (absl::IsDeadlineExceeded(start.status())) {
      co_return absl::DeadlineExceededError(
          absl::StrCat("service ", s->name, ": the client never started the task"));
    }
    co_return start.status();
  }
  absl::StatusOr<Value> r = co_await s->fn(std::move(arg));
  co_return r;
}

// Starts the task of a well-formed run request (monitored by `monitor`
// when it is valid), or says why not: Serve sends either to the client.
absl::StatusOr<TaskRef> Admit(const std::shared_ptr<ServerState>& s, const Value& msg, uint64_t req,
                              const TaskRef& monitor) {
  const Value* arg = msg.Find("arg");
  if (arg == nullptr) return absl::InvalidArgumentError("run request without \"arg\"");
  if (s->running >= s->options.max_running) {
    return absl::ResourceExhaustedError(
        absl::StrCat("service ", s->name, ": ", s->running, " tasks running, the most it runs"));
  }
  if (s->options.admit) {
    absl::Status ok = s->options.admit(*arg);
    if (!ok.ok()) return ok;
  }
  TaskRef t = ThisScheduler().Spawn(SpawnOptions{.name = s->name}, RunOne, s, req, *arg);
  if (!t.valid()) return absl::ResourceExhaustedError("could not spawn the task (scheduler stopping)");
  if (monitor.valid()) {
    absl::Status m = Monitor(monitor, t);
    if (!m.ok()) {
      (void)t.Terminate();
      return absl::Status(m.code(), absl::StrCat("monitor of the started task: ", m.message()));
    }
  }
  return t;
}

Task<absl::Status> Serve(std::shared_ptr<ServerState> s) {
  for (;;) {
    absl::StatusOr<Value> msg = co_await Receive();
    if (!msg.ok()) co_return absl::OkStatus();  // unregistered (terminated)
    std::string op;
    uint64_t req = 0;
    TaskRef reply_to;
    TaskRef monitor;
    // reply_to first: a request that names one hears what else is wrong.
    absl::Status read = MessageReader(*msg)
                            .Get("reply_to", &reply_to)
                            .Get("op", &op)
                            .Get("req", &req)
                            .Optional("monitor", &monitor)
                            .status();
    if (read.ok() && !reply_to.valid()) read = absl::InvalidArgumentError("null reply_to");
    // Whatever the reader's code (a number out of range...), the request is malformed.
    if (!read.ok()) read = absl::InvalidArgumentError(absl::StrCat("malformed run request: ", read.message()));
    if (!read.ok() && !reply_to.valid()) {
      PICOS_LOG_LIMITED(warn, "service {}: malformed request dropped: {}", s->name, read.ToString());
      continue;
    }
    absl::StatusOr<TaskRef> started =
        !read.ok()     ? absl::StatusOr<TaskRef>(read)
        : op != "run"  ? absl::StatusOr<TaskRef>(absl::InvalidArgumentError(absl::StrCat("unknown op \"", op, "\"")))
                       : Admit(s, *msg, req, monitor);
    Value::MapType reply{{"req", req}};
    if (started.ok()) {
      reply.emplace("task", *started);
    } else {
      PICOS_LOG_LIMITED(info, "service {}: request {} refused: {}", s->name, req, started.status().ToString());
      reply.emplace("error", ops::StatusFields(started.status()));
    }
    absl::Status sent = reply_to.Send(Value(std::move(reply)));
    if (!sent.ok()) {
      PICOS_LOG_LIMITED(info, "service {}: reply to {} lost: {}", s->name, reply_to.DebugString(),
                        sent.ToString());
      // Nobody will start it: end it now rather than after start_timeout.
      if (started.ok()) (void)started->Terminate();
    }
  }
}

}  // namespace

// --- the client side ---

// Named (not anonymous): Service::State, of external linkage, holds them.
namespace service_internal {

// The outcome of a started task, asked for before the task may run, and the
// joiners and monitors of the client's handle waiting for it.
class Outcome {
 public:
  explicit Outcome(TaskRef remote) : remote_(std::move(remote)) {}

  void Finish(absl::StatusOr<Value> r) {
    std::vector<Completer> joiners;
    std::vector<TaskRef> monitors;
    {
      absl::MutexLock lock(&mu_);
      if (result_) return;
      result_ = r;
      joiners.swap(joiners_);
      monitors.swap(monitors_);
    }
    for (Completer& j : joiners) j.Complete(r);
    for (const TaskRef& m : monitors) Tell(m, r);
  }

  void Join(Completer done) {
    std::optional<absl::StatusOr<Value>> r;
    {
      absl::MutexLock lock(&mu_);
      if (!result_) {
        joiners_.push_back(std::move(done));
        return;
      }
      r = result_;
    }
    done.Complete(*std::move(r));
  }

  absl::Status Monitor(const TaskRef& monitor) {
    if (!monitor.valid()) return absl::InvalidArgumentError("null monitor");
    std::optional<absl::StatusOr<Value>> r;
    {
      absl::MutexLock lock(&mu_);
      if (!result_) {
        monitors_.push_back(monitor);
        return absl::OkStatus();
      }
      r = result_;
    }
    Tell(monitor, *r);
    return absl::OkStatus();
  }

  bool done() const {
    absl::MutexLock lock(&mu_);
    return result_.has_value();
  }
  const TaskRef& remote() const { return remote_; }

 private:
  // A join that fails with kUnavailable is the peer lost (a task's own
  // kUnavailable error reads the same: the join cannot tell them apart).
  void Tell(const TaskRef& monitor, const absl::StatusOr<Value>& r) const {
    MonitorStatus st = absl::IsUnavailable(r.status())
                           ? MonitorStatus::PeerLost(remote_, remote_.name(), remote_.id(), r.status())
                           : MonitorStatus::FromResult(remote_, r.status(), r.ok() ? *r : Value());
    absl::Status sent = monitor.Send(st.ToValue());
    if (!sent.ok()) PICOS_LOG(debug, "service: monitor message dropped: {}", sent.ToString());
  }

  const TaskRef remote_;
  mutable absl::Mutex mu_;
  std::optional<absl::StatusOr<Value>> result_ ABSL_GUARDED_BY(mu_);
  std::vector<Completer> joiners_ ABSL_GUARDED_BY(mu_);
  std::vector<TaskRef> monitors_ ABSL_GUARDED_BY(mu_);
};

// The handle Run gives: the node's handle for what goes to the task, the
// Outcome for Join and Monitor.
class ServiceTaskProxy final : public TaskProxy {
 public:
  explicit ServiceTaskProxy(std::shared_ptr<Outcome> o) : o_(std::move(o)), remote_(o_->remote()) {}
  absl::Status Send(Value message) override { return remote_.Send(std::move(message)); }
  absl::Status Resume(Value value) override { return remote_.Resume(std::move(value)); }
  absl::Status Terminate() override { return remote_.Terminate(); }
  absl::Status Throw(absl::Status error) override { return remote_.Throw(std::move(error)); }
  void Join(Completer done) override { o_->Join(std::move(done)); }
  absl::Status Monitor(const TaskRef& monitor) override { return o_->Monitor(monitor); }
  TaskState state() const override { return o_->done() ? TaskState::kDone : remote_.state(); }
  std::string name() const override { return remote_.name(); }
  uint64_t id() const override { return remote_.id(); }
  std::string DebugString() const override { return remote_.DebugString(); }
  const TaskRef& remote() const { return remote_; }

 private:
  std::shared_ptr<Outcome> o_;
  const TaskRef remote_;
};

}  // namespace service_internal

using service_internal::Outcome;
using service_internal::ServiceTaskProxy;

struct Service::State {
  std::string name;
  TaskRef server;
  // Only the scheduler's thread touches the rest, except `pending` and
  // `lost`, which the server's monitor (a callback) touches too.
  TaskRef monitor;
  bool closed = false;
  uint64_t next_req = 0;
  std::vector<std::shared_ptr<Outcome>> started;  // pruned of ended ones at each Run
  absl::Mutex mu;
  absl::Status lost ABSL_GUARDED_BY(mu);
  std::vector<TaskRef> pending ABSL_GUARDED_BY(mu);  // helpers awaiting a reply
};

namespace {

// A handle whose Send calls a function: what the server task's monitor
// sends to, so that a lost peer (or an ended server) wakes pending Runs at
// once, with no task of its own.
class CallbackTaskProxy final : public TaskProxy {
 public:
  explicit CallbackTaskProxy(absl::AnyInvocable<void(Value)> fn) : fn_(std::move(fn)) {}
  absl::Status Send(Value message) override {
    absl::MutexLock lock(&mu_);
    fn_(std::move(message));
    return absl::OkStatus();
  }
  absl::Status Resume(Value) override { return absl::FailedPreconditionError("not suspended"); }
  absl::Status Terminate() override { return absl::OkStatus(); }
  absl::Status Throw(absl::Status) override { return absl::OkStatus(); }
  void Join(Completer done) override { done.Complete(absl::UnimplementedError("a callback is not joined")); }
  absl::Status Monitor(const TaskRef&) override { return absl::UnimplementedError("a callback is not monitored"); }
  TaskState state() const override { return TaskState::kWaiting; }
  std::string name() const override { return "service-watch"; }
  uint64_t id() const override { return 0; }
  std::string DebugString() const override { return "service-watch"; }

 private:
  absl::Mutex mu_;
  absl::AnyInvocable<void(Value)> fn_ ABSL_GUARDED_BY(mu_);
};

void ServerEnded(const std::weak_ptr<Service::State>& weak, const Value& msg) {
  std::shared_ptr<Service::State> st = weak.lock();
  if (st == nullptr) return;
  absl::StatusOr<MonitorStatus> ms = MonitorStatus::FromValue(msg);
  absl::Status why =
      ms.ok() && ms->outcome == MonitorOutcome::kPeerLost
          ? absl::UnavailableError(absl::StrCat("service ", st->name, ": peer lost: ", ms->error.message()))
          : absl::UnavailableError(absl::StrCat("service ", st->name, ": its server ended (unregistered)"));
  std::vector<TaskRef> pending;
  {
    absl::MutexLock lock(&st->mu);
    st->lost = why;
    pending.swap(st->pending);
  }
  for (const TaskRef& h : pending) (void)h.Throw(why);
}

// Sends the request and waits for its reply, in a task of its own so that
// the caller's mailbox is never read. Gives the started task's node handle,
// or the error as {"error": status} (a value: a refusal is no failure of
// this helper, and the kernel logs tasks that end with an error).
Task<Value> AskServer(std::shared_ptr<Service::State> st, uint64_t req, Value arg,
                                      TaskRef monitor, absl::Duration timeout) {
  {
    absl::MutexLock lock(&st->mu);
    if (!st->lost.ok()) co_return Value::Map({{"error", ops::StatusFields(st->lost)}});
    st->pending.push_back(Self());
  }
  Value::MapType request{{"op", "run"}, {"req", req}, {"reply_to", Self()}, {"arg", std::move(arg)}};
  if (monitor.valid()) request.emplace("monitor", monitor);
  absl::Status sent = st->server.Send(Value(std::move(request)));
  absl::StatusOr<Value> result =
      sent.ok() ? absl::StatusOr<Value>(absl::InternalError("no well-formed reply")) : absl::StatusOr<Value>(sent);
  const int64_t deadline = ThisScheduler().NowNs() + absl::ToInt64Nanoseconds(timeout);
  // Replies only come here (this task's handle went to the server alone);
  // anything else is skipped, a bounded number of times.
  for (int i = 0; sent.ok() && i < 16; ++i) {
    absl::Duration left = absl::Nanoseconds(deadline - ThisScheduler().NowNs());
    absl::StatusOr<Value> m = co_await Receive(left);
    if (!m.ok()) {
      result = absl::IsDeadlineExceeded(m.status())
                   ? absl::DeadlineExceededError(
                         absl::StrCat("service ", st->name, ": no reply within ", absl::FormatDuration(timeout)))
                   : m.status();
      break;
    }
    uint64_t got = 0;
    absl::Status read = MessageReader(*m).Get("req", &got).status();
    if (!read.ok() || got != req) {
      PICOS_LOG_LIMITED(info, "service {}: stray message skipped: {}", st->name, m->DebugString());
      result = absl::InternalError("no well-formed reply");
      continue;
    }
    if (const Value* task = m->Find("task"); task != nullptr && task->is_task() && task->as_task().valid()) {
      result = *task;
    } else {
      result = ops::StatusOf((*m)["error"]);
    }
    break;
  }
  {
    absl::MutexLock lock(&st->mu);
    std::erase(st->pending, Self());
  }
  if (!result.ok()) co_return Value::Map({{"error", ops::StatusFields(result.status())}});
  co_return *std::move(result);
}

}  // namespace

// --- RegisteredService ---

absl::StatusOr<RegisteredService> RegisterService(std::string name, ServiceFunction fn, ServiceOptions options) {
  if (name.empty() || name.size() > kMaxServiceNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("a service name has 1 to ", kMaxServiceNameLength, " bytes"));
  }
  if (!fn) return absl::InvalidArgumentError("a service needs a function");
  auto s = std::make_shared<ServerState>();
  s->name = name;
  s->fn = std::move(fn);
  s->options = std::move(options);
  TaskRef server =
      ThisScheduler().Spawn(SpawnOptions{.name = kServiceTaskPrefix + name, .daemon = true}, Serve, s);
  absl::Status reg = RegisterTask(kServiceTaskPrefix + name, server);
  if (!reg.ok()) {
    (void)server.Terminate();
    return reg;
  }
  return RegisteredService(std::move(name), std::move(server));
}

RegisteredService::RegisteredService(RegisteredService&& other) noexcept
    : name_(std::move(other.name_)), server_(std::move(other.server_)) {
  other.server_ = TaskRef();
}

RegisteredService& RegisteredService::operator=(RegisteredService&& other) noexcept {
  if (this != &other) {
    Unregister();
    name_ = std::move(other.name_);
    server_ = std::move(other.server_);
    other.server_ = TaskRef();
  }
  return *this;
}

RegisteredService::~RegisteredService() { Unregister(); }

void RegisteredService::Unregister() {
  if (!server_.valid()) return;
  if (!server_.done()) {
    (void)UnregisterTask(kServiceTaskPrefix + name_);
    (void)server_.Terminate();
  }
  server_ = TaskRef();
}

// --- Service ---

Task<absl::StatusOr<Service>> Service::Locate(std::string name, Location location, absl::Duration timeout) {
  if (name.empty() || name.size() > kMaxServiceNameLength) {
    co_return absl::InvalidArgumentError(absl::StrCat("a service name has 1 to ", kMaxServiceNameLength, " bytes"));
  }
  absl::StatusOr<TaskRef> server = co_await LocateTask(kServiceTaskPrefix + name, std::move(location), timeout);
  if (!server.ok()) {
    co_return absl::Status(server.status().code(), absl::StrCat("service ", name, ": ", server.status().message()));
  }
  auto st = std::make_shared<State>();
  st->name = std::move(name);
  st->server = *server;
  std::weak_ptr<State> weak = st;
  TaskRef watch = MakeTaskProxy(
      std::make_unique<CallbackTaskProxy>([weak](Value msg) { ServerEnded(weak, msg); }));
  absl::Status m = Monitor(watch, st->server);
  if (!m.ok()) co_return m;
  co_return Service(std::move(st));
}

Task<absl::StatusOr<TaskRef>> Service::Run(Value arg, absl::Duration timeout) {
  std::shared_ptr<State> st = state_;
  if (st->closed) co_return absl::FailedPreconditionError(absl::StrCat("service ", st->name, " is closed"));
  const uint64_t req = ++st->next_req;
  TaskRef helper = ThisScheduler().Spawn(SpawnOptions{.name = "service-run"}, AskServer, st, req, std::move(arg),
                                         st->monitor, timeout);
  if (!helper.valid()) co_return absl::ResourceExhaustedError("could not spawn the request's helper");
  absl::StatusOr<Value> reply = co_await helper.Join();
  if (!reply.ok()) co_return reply.status();  // the caller was interrupted
  if (!reply->is_task()) co_return ops::StatusOf((*reply)["error"]);
  TaskRef remote = reply->as_task();
  if (st->closed) {  // closed while the request was on its way
    (void)remote.Terminate();
    co_return absl::FailedPreconditionError(absl::StrCat("service ", st->name, " is closed"));
  }
  // Ask for the result before letting the task run: the join frame goes out
  // before the start message on the same connection, so the join is there
  // before the task can end. A join arriving after the end would usually
  // still get the result (the node keeps the last kEndedTasksKept ended
  // tasks), but not on a server where more than that many end meanwhile;
  // the gate costs one message and makes it certain.
  auto outcome = std::make_shared<Outcome>(remote);
  NotifyWhenDone(remote, Completer([outcome](absl::StatusOr<Value> r) { outcome->Finish(std::move(r)); }));
  absl::Status started = remote.Send(SystemMessage(kServiceStartMessage, Value(req)));
  if (!started.ok()) co_return started;
  std::erase_if(st->started, [](const std::shared_ptr<Outcome>& o) { return o->done(); });
  st->started.push_back(outcome);
  co_return MakeTaskProxy(std::make_unique<ServiceTaskProxy>(std::move(outcome)));
}

void Service::SetMonitor(TaskRef monitor) { state_->monitor = std::move(monitor); }

absl::Status Service::Close() {
  state_->closed = true;
  absl::Status first;
  for (const std::shared_ptr<Outcome>& o : state_->started) {
    if (o->done()) continue;
    absl::Status s = o->remote().Terminate();
    if (!s.ok() && !absl::IsFailedPrecondition(s) && first.ok()) first = s;
  }
  state_->started.clear();
  return first;
}

const std::string& Service::name() const { return state_->name; }
const TaskRef& Service::server() const { return state_->server; }

TaskRef NetworkHandle(const TaskRef& task) {
  if (auto* p = dynamic_cast<ServiceTaskProxy*>(GetTaskProxy(task)); p != nullptr) return p->remote();
  return task;
}

}  // namespace picos::remote
