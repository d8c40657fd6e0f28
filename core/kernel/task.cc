#include "core/kernel/task.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "absl/base/attributes.h"
#include "absl/strings/str_cat.h"
#include "core/kernel/capacity_internal.h"
#include "core/kernel/log.h"
#include "core/kernel/proxy.h"
#include "core/kernel/scheduler_internal.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"

namespace picos {

using internal::TaskCore;

namespace internal {

thread_local TaskCore* t_current_task = nullptr;
thread_local bool t_task_parked = false;
thread_local const char* t_stack_floor = nullptr;

void StackGrowsAcrossAwaits(const void* frame) {
  std::fprintf(stderr,
               "picos: the stack grew past %zu KiB across co_awaits of sub-tasks (frame %p): "
               "the code was compiled without -foptimize-sibling-calls, so symmetric transfer "
               "between coroutines is not a tail call. Compile every file that includes picos "
               "headers with -std=c++20 -foptimize-sibling-calls (under AddressSanitizer also "
               "-fno-sanitize-address-use-after-scope); see README.md, Depending on picos.\n",
               kStackBudget / 1024, frame);
  std::abort();
}

namespace {
std::atomic<uint64_t> g_next_task_id{1};
}

Scheduler* TaskCore::scheduler() const { return internal::SchedulerHooks::FromIndex(sched_index); }

void Ref(TaskCore* core) noexcept { core->refs.fetch_add(1, std::memory_order_relaxed); }

void Unref(TaskCore* core) noexcept {
  if (core->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    if (IsProxy(core)) {
      delete core->extra;
      delete static_cast<ProxyCore*>(core);
      return;
    }
    PICOS_ASSERT(core->mbox_tail == nullptr);
    PICOS_ASSERT(!core->root);
    delete core->extra;
    delete core;
  }
}

TaskCore* CurrentTaskOrDie(const char* what) {
  TaskCore* c = t_current_task;
  if (c == nullptr) {
    std::fprintf(stderr, "picos: %s called outside a task\n", what);
    PICOS_ASSERT(c != nullptr);
  }
  return c;
}

absl::Status TakeInterrupt(TaskCore* c) {
  if (c->flags & kFlagTerminateRequested) {
    c->flags &= ~kFlagTerminateRequested;
    c->flags |= kFlagTerminateDelivered;
    return absl::CancelledError("task terminated");
  }
  if (c->flags & kFlagThrowPending) {
    c->flags &= ~kFlagThrowPending;
    absl::Status s = std::move(c->extra->thrown);
    c->extra->thrown = absl::OkStatus();
    return s;
  }
  return absl::OkStatus();
}

namespace {

// Block(), inlined into both of its callers (a message round trip parks
// twice). False when the task is to be destroyed instead.
inline bool BlockTask(TaskCore* c, std::coroutine_handle<> h, TaskState state,
                      absl::Duration timeout) {
  t_task_parked = true;
  c->leaf = h;
  c->wake = kWakeNone;
  ++c->wait_seq;
  if (c->flags & kFlagTerminateDelivered) {
    // Told to terminate, and waiting again instead of returning: pycos would
    // raise "generator ignored GeneratorExit"; we destroy it once control is
    // back in the scheduler.
    c->set_state(TaskState::kWaiting);
    internal::SchedulerHooks::ScheduleKill(*c->scheduler(), c);
    return false;
  }
  c->set_state(state);
  if (timeout != absl::InfiniteDuration()) internal::SchedulerHooks::AddTimer(*c->scheduler(), c, timeout);
  return true;
}

}  // namespace

void Block(TaskCore* c, std::coroutine_handle<> h, TaskState state, absl::Duration timeout) {
  (void)BlockTask(c, h, state, timeout);
}

namespace {

// The cold half of ParkInReceive, out of line: its closure (a TaskRef that
// may need unwinding) made the hot path set up a frame on every receive.
ABSL_ATTRIBUTE_NOINLINE void SwapAtThisReceive(TaskCore* c) {
  // A swap waits for this point (hot_swap.h). It replaces the frames that
  // are suspending right now, so it runs once control is back in the loop.
  internal::SchedulerHooks::Defer(*c->scheduler(), [task = TaskRef::Adopt((Ref(c), c))] {
    TaskCore* core = task.core();
    TaskState s = core->load_state();
    if ((core->flags & kSwapAtReceive) == kSwapAtReceive &&
        (core->flags & kFlagParkedInReceive) &&
        (s == TaskState::kReceiving || s == TaskState::kReady) && core->extra != nullptr &&
        core->extra->hot_swap != nullptr) {
      core->extra->hot_swap->AtSwapPoint(core);
    }
  });
}

}  // namespace

void ParkInReceive(TaskCore* c, std::coroutine_handle<> h, absl::Duration timeout) {
  if (!BlockTask(c, h, TaskState::kReceiving, timeout)) return;
  // A swap point for HotSwap; RunReady clears it when the task resumes.
  c->flags |= kFlagParkedInReceive;
  if ((c->flags & kSwapAtReceive) == kSwapAtReceive) [[unlikely]] SwapAtThisReceive(c);
}

bool Wake(TaskCore* c, WakeReason reason) {
  TaskState s = c->load_state();
  if (s != TaskState::kSuspended && s != TaskState::kReceiving && s != TaskState::kWaiting) {
    return false;
  }
  if (c->flags & kFlagFinished) return false;
  internal::SchedulerHooks::MakeReady(*c->scheduler(), c, reason);
  return true;
}

bool WakeToken(const WaitToken& token, WakeReason reason) {
  TaskCore* c = token.task.core();
  if (c == nullptr || c->wait_seq != token.seq) return false;
  return Wake(c, reason);
}

void FinishCurrentTask(absl::Status status, Value value, std::coroutine_handle<> root) {
  TaskCore* c = CurrentTaskOrDie("task end");
  PICOS_ASSERT(c->root == root);
  t_task_parked = true;
  c->root = {};
  c->leaf = {};
  root.destroy();
  internal::SchedulerHooks::Finish(*c->scheduler(), c, std::move(status), std::move(value));
}

absl::Status StatusFromException(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return absl::InternalError(absl::StrCat("task raised an exception: ", ex.what()));
  } catch (...) {
    return absl::InternalError("task raised an exception of unknown type");
  }
}

}  // namespace internal

const char* TaskStateName(TaskState state) {
  switch (state) {
    case TaskState::kReady:
      return "ready";
    case TaskState::kRunning:
      return "running";
    case TaskState::kSuspended:
      return "suspended";
    case TaskState::kReceiving:
      return "receiving";
    case TaskState::kWaiting:
      return "waiting";
    case TaskState::kDone:
      return "done";
  }
  return "unknown";
}

TaskRef Self() {
  TaskCore* c = internal::CurrentTaskOrDie("picos::Self()");
  internal::Ref(c);
  return TaskRef::Adopt(c);
}

// --- TaskRef ---

namespace {

absl::Status NullRef() { return absl::InvalidArgumentError("null TaskRef"); }

absl::Status Ended(const TaskRef& t) {
  return absl::FailedPreconditionError(absl::StrCat("task ", t.DebugString(), " has ended"));
}

// Runs `op` on the task's scheduler thread: now if we are on it, else posted.
template <typename Op>
absl::Status OnTaskThread(const TaskRef& t, Op op) {
  TaskCore* c = t.core();
  if (c == nullptr) return NullRef();
  if (c->load_state() == TaskState::kDone) return Ended(t);
  Scheduler* s = c->scheduler();
  if (s == nullptr) return Ended(t);
  if (s->InLoopThread()) return op(c, s);
  // Another thread: `s` may be under destruction there, so it is reached
  // only through its slot (scheduler_internal.h), never dereferenced here.
  absl::AnyInvocable<void()> fn = [t, op = std::move(op)]() mutable {
    TaskCore* core = t.core();
    absl::Status st = op(core, core->scheduler());
    if (!st.ok()) PICOS_LOG(debug, "operation posted to {} failed: {}", t.DebugString(), st.ToString());
  };
  absl::Status posted = internal::SchedulerHooks::PostToTask(c, fn);
  if (posted.ok()) return posted;
  // Refused: the scheduler is gone or stopping, and the task with it.
  if (c->load_state() == TaskState::kDone || posted.code() == absl::StatusCode::kFailedPrecondition) {
    return Ended(t);
  }
  return posted;
}

// Resume() on the task's own thread.
absl::Status ResumeHere(TaskCore* c, Value v) {
  if (c->flags & internal::kFlagFinished) return absl::FailedPreconditionError("task has ended");
  if (c->load_state() != TaskState::kSuspended) {
    return absl::FailedPreconditionError(absl::StrCat(
        "resume of a task that is not suspended (it is ", TaskStateName(c->load_state()), ")"));
  }
  c->Extra().resume_value = std::move(v);
  internal::Wake(c, internal::kWakeEvent);
  return absl::OkStatus();
}

bool IsBlocked(TaskState s) {
  return s == TaskState::kSuspended || s == TaskState::kReceiving || s == TaskState::kWaiting;
}

}  // namespace

namespace {
// Send's slow paths, kept out of line so that the hot path stays as it was:
// a proxy, or a task of another thread's scheduler.
[[gnu::noinline]] absl::Status SendElsewhere(const TaskRef& t, Value message) {
  TaskCore* c = t.core();
  if (internal::IsProxy(c)) return internal::ProxyOf(c)->Send(std::move(message));
  internal::Capacity* room = internal::MailboxRoom(c);
  if (room == nullptr) {
    return OnTaskThread(t, [m = std::move(message)](TaskCore* core, Scheduler* sched) mutable {
      return internal::SchedulerHooks::DeliverLocal(*sched, core, std::move(m));
    });
  }
  // A bounded mailbox: the unit is taken here, so that messages on their
  // way count and a full mailbox is refused to this sender, truthfully.
  if (c->load_state() == TaskState::kDone) return Ended(t);
  if (!room->TryTake()) {
    return absl::ResourceExhaustedError(absl::StrCat("mailbox of task ", t.DebugString(),
                                                     " is full (", room->limit(), " messages)"));
  }
  absl::Status st =
      OnTaskThread(t, [m = std::move(message)](TaskCore* core, Scheduler* sched) mutable {
        return internal::SchedulerHooks::DeliverLocal(*sched, core, std::move(m), true);
      });
  // Not posted (a posted one that finds the task ended gives the unit back
  // itself): give it back. A closure dropped unrun at a stop keeps its
  // unit, which no longer matters: the task ends with the stop.
  if (!st.ok()) room->Give();
  return st;
}
}  // namespace

absl::Status TaskRef::Send(Value message) const {
  if (core_ == nullptr) return NullRef();
  Scheduler* s = core_->scheduler();
  // The hot path: a task sending to a task of its own scheduler. A proxy has
  // no scheduler, so it never takes this branch.
  if (s != nullptr && s->InLoopThread()) {
    if (core_->flags & internal::kFlagFinished) return Ended(*this);
    return internal::SchedulerHooks::DeliverLocal(*s, core_, std::move(message));
  }
  return SendElsewhere(*this, std::move(message));
}

absl::Status TaskRef::Resume(Value value) const {
  if (core_ != nullptr && internal::IsProxy(core_)) {
    return internal::ProxyOf(core_)->Resume(std::move(value));
  }
  if (core_ != nullptr) {
    // From another thread: refused at once unless the task is seen in
    // Suspend() now (its state is atomic), so that a resume that cannot
    // happen is never reported OK. One that can is queued, and checked
    // again on the task's thread (handles.h says what OK means).
    Scheduler* s = core_->scheduler();
    const TaskState seen = core_->load_state();
    if ((s == nullptr || !s->InLoopThread()) && seen != TaskState::kSuspended &&
        seen != TaskState::kDone) {
      return absl::FailedPreconditionError(absl::StrCat(
          "resume of a task that is not suspended (it is ", TaskStateName(seen), ")"));
    }
  }
  return OnTaskThread(*this, [v = std::move(value)](TaskCore* c, Scheduler*) mutable {
    return ResumeHere(c, std::move(v));
  });
}

absl::Status TaskRef::Resume() const { return Resume(Value()); }

namespace {

// Waits for a Completer that `start` hands to work elsewhere, and gives what
// it was completed with (kUnavailable if it was dropped uncompleted).
class CompletionAwaiter {
 public:
  explicit CompletionAwaiter(absl::AnyInvocable<void(Completer)> start) : start_(std::move(start)) {}
  CompletionAwaiter(const CompletionAwaiter&) = delete;
  CompletionAwaiter& operator=(const CompletionAwaiter&) = delete;
  bool await_ready() const noexcept {
    return internal::InterruptPending(internal::CurrentTaskOrDie("ResumeConfirmed"));
  }
  void await_suspend(std::coroutine_handle<> h) {
    TaskCore* c = internal::t_current_task;
    internal::Block(c, h, TaskState::kWaiting, absl::InfiniteDuration());
    start_(wait_.Start(c));
  }
  absl::StatusOr<Value> await_resume() {
    TaskCore* c = internal::t_current_task;
    std::optional<absl::StatusOr<Value>> r = wait_.Take();
    if (internal::InterruptPending(c)) return internal::TakeInterrupt(c);
    if (r) return *std::move(r);
    return absl::UnavailableError("no outcome");
  }

 private:
  absl::AnyInvocable<void(Completer)> start_;
  internal::CompletionWait wait_;
};

Task<absl::Status> ResumeConfirmedOn(TaskRef t, Value value) {
  TaskCore* c = t.core();
  Scheduler* s = c != nullptr ? c->scheduler() : nullptr;
  // A null ref, a proxy (what its layer knows), an ended task, or the
  // task's own thread: Resume() already gives the outcome.
  if (c == nullptr || internal::IsProxy(c) || s == nullptr || s->InLoopThread() ||
      c->load_state() != TaskState::kSuspended) {
    co_return t.Resume(std::move(value));
  }
  absl::StatusOr<Value> r = co_await CompletionAwaiter([&t, &value](Completer done) {
    absl::AnyInvocable<void()> op = [t, v = std::move(value), done = std::move(done)]() mutable {
      absl::Status st = ResumeHere(t.core(), std::move(v));
      done.Complete(st.ok() ? absl::StatusOr<Value>(Value()) : absl::StatusOr<Value>(st));
    };
    // Refused: `op` is destroyed here, and its completer with it.
    (void)internal::SchedulerHooks::PostToTask(t.core(), op);
  });
  if (r.ok()) co_return absl::OkStatus();
  if (r.status().code() == absl::StatusCode::kUnavailable) {
    // Dropped unrun: the scheduler stopped or was destroyed, ending the task.
    co_return Ended(t);
  }
  co_return r.status();
}

}  // namespace

Task<absl::Status> TaskRef::ResumeConfirmed(Value value) const {
  return ResumeConfirmedOn(*this, std::move(value));
}

absl::Status TaskRef::Terminate() const {
  if (core_ != nullptr && internal::IsProxy(core_)) return internal::ProxyOf(core_)->Terminate();
  return OnTaskThread(*this, [](TaskCore* c, Scheduler*) {
    if (c->flags & internal::kFlagFinished) return absl::FailedPreconditionError("task has ended");
    if (c->flags & internal::kFlagTerminateDelivered) return absl::OkStatus();  // already told
    c->flags |= internal::kFlagTerminateRequested;
    if (IsBlocked(c->load_state())) internal::Wake(c, internal::kWakeInterrupt);
    return absl::OkStatus();
  });
}

absl::Status TaskRef::Throw(absl::Status error) const {
  if (error.ok()) return absl::InvalidArgumentError("Throw needs an error, not OK");
  if (core_ != nullptr && internal::IsProxy(core_)) {
    return internal::ProxyOf(core_)->Throw(std::move(error));
  }
  return OnTaskThread(*this, [e = std::move(error)](TaskCore* c, Scheduler*) mutable {
    if (c->flags & internal::kFlagFinished) return absl::FailedPreconditionError("task has ended");
    c->Extra().thrown = std::move(e);
    c->flags |= internal::kFlagThrowPending;
    if (IsBlocked(c->load_state())) internal::Wake(c, internal::kWakeInterrupt);
    return absl::OkStatus();
  });
}

namespace {
// Deliver to a proxy: the layer completes once the task's mailbox took the
// message (or says why not); it bounds the wait itself.
class ProxyDeliverAwaiter {
 public:
  ProxyDeliverAwaiter(TaskProxy* proxy, Value message, absl::Duration timeout)
      : proxy_(proxy), message_(std::move(message)), timeout_(timeout) {}
  bool await_ready() const { return internal::InterruptPending(internal::CurrentTaskOrDie("Deliver")); }
  void await_suspend(std::coroutine_handle<> h) {
    TaskCore* c = internal::t_current_task;
    internal::Block(c, h, TaskState::kWaiting, absl::InfiniteDuration());
    proxy_->Deliver(std::move(message_), timeout_, wait_.Start(c));
  }
  absl::Status await_resume() {
    TaskCore* c = internal::t_current_task;
    std::optional<absl::StatusOr<Value>> r = wait_.Take();
    if (internal::InterruptPending(c)) return internal::TakeInterrupt(c);
    if (!r) return absl::UnavailableError("deliver: the layer dropped the request");
    return r->status();
  }

 private:
  TaskProxy* proxy_;
  Value message_;
  absl::Duration timeout_;
  internal::CompletionWait wait_;
};

// TaskRef::Deliver, taking the handle by value: a coroutine member would
// keep only `this`, which may be gone by the time the task resumes.
Task<absl::Status> DeliverOn(TaskRef to, Value message, absl::Duration timeout) {
  if (TaskProxy* p = GetTaskProxy(to); p != nullptr) {
    // `to` keeps the proxy alive across the wait.
    co_return co_await ProxyDeliverAwaiter(p, std::move(message), timeout);
  }
  TaskCore* c = to.core();
  internal::Capacity* room = c != nullptr ? internal::MailboxRoom(c) : nullptr;
  if (room == nullptr) co_return to.Send(std::move(message));
  TaskCore* self = internal::CurrentTaskOrDie("Deliver");
  Scheduler& s = *self->scheduler();
  const bool forever = timeout == absl::InfiniteDuration();
  const int64_t deadline_ns =
      forever ? 0 : internal::SchedulerHooks::NowNs(s) + absl::ToInt64Nanoseconds(timeout);
  for (;;) {
    if (c->load_state() == TaskState::kDone) co_return Ended(to);
    if (room->TryTake()) {
      // The unit is ours: deliver as a send from here would, without
      // taking another.
      Scheduler* target = c->scheduler();
      if (target != nullptr && target->InLoopThread()) {
        co_return internal::SchedulerHooks::DeliverLocal(*target, c, std::move(message), true);
      }
      absl::Status st =
          OnTaskThread(to, [m = std::move(message)](TaskCore* core, Scheduler* sched) mutable {
            return internal::SchedulerHooks::DeliverLocal(*sched, core, std::move(m), true);
          });
      if (!st.ok()) room->Give();
      co_return st;
    }
    absl::Duration left = absl::InfiniteDuration();
    if (!forever) {
      left = absl::Nanoseconds(deadline_ns - internal::SchedulerHooks::NowNs(s));
      if (left <= absl::ZeroDuration()) {
        co_return absl::DeadlineExceededError(
            absl::StrCat("no room in the mailbox of ", to.DebugString(), " before the timeout"));
      }
    }
    absl::Status waited = co_await room->WaitForRoom(left);
    if (waited.code() == absl::StatusCode::kDeadlineExceeded) {
      co_return absl::DeadlineExceededError(
          absl::StrCat("no room in the mailbox of ", to.DebugString(), " before the timeout"));
    }
    if (!waited.ok()) co_return waited;
  }
}
}  // namespace

Task<absl::Status> TaskRef::Deliver(Value message, absl::Duration timeout) const {
  return DeliverOn(*this, std::move(message), timeout);
}

JoinAwaiter TaskRef::Join() const { return JoinAwaiter(*this, absl::InfiniteDuration()); }
JoinAwaiter TaskRef::Join(absl::Duration timeout) const { return JoinAwaiter(*this, timeout); }

TaskState TaskRef::state() const {
  if (core_ == nullptr) return TaskState::kDone;
  if (internal::IsProxy(core_)) return internal::ProxyOf(core_)->state();
  return core_->load_state();
}

std::string TaskRef::name() const {
  if (core_ != nullptr && internal::IsProxy(core_)) return internal::ProxyOf(core_)->name();
  if (core_ == nullptr) return std::string();
  // Any thread: another may be publishing `extra` (Extra()) right now.
  internal::TaskExtra* x = std::atomic_ref<internal::TaskExtra*>(core_->extra).load(std::memory_order_acquire);
  return x != nullptr ? x->name : std::string();
}

void TaskRef::set_name(std::string name) const {
  if (core_ && !internal::IsProxy(core_)) core_->Extra().name = std::move(name);
}

uint64_t TaskRef::id() const {
  if (!core_) return 0;
  if (internal::IsProxy(core_)) return internal::ProxyOf(core_)->id();
  internal::TaskExtra& x = core_->Extra();
  // Any thread: the first to ask assigns, once.
  std::atomic_ref<uint64_t> id(x.id);
  uint64_t v = id.load(std::memory_order_acquire);
  if (v == 0) {
    uint64_t fresh = internal::g_next_task_id.fetch_add(1, std::memory_order_relaxed);
    v = id.compare_exchange_strong(v, fresh, std::memory_order_acq_rel) ? fresh : v;
  }
  return v;
}

std::string TaskRef::DebugString() const {
  if (!core_) return "<null task>";
  if (internal::IsProxy(core_)) return internal::ProxyOf(core_)->DebugString();
  std::string n = name();
  return absl::StrCat(n.empty() ? "task" : n, "#", id());
}

// --- awaiters ---

bool SleepAwaiter::await_ready() const noexcept {
  return internal::InterruptPending(internal::CurrentTaskOrDie("Sleep"));
}
void SleepAwaiter::await_suspend(std::coroutine_handle<> h) {
  internal::Block(internal::t_current_task, h, TaskState::kSuspended, absl::Nanoseconds(d_ns_));
}
absl::Status SleepAwaiter::await_resume() {
  return internal::TakeInterrupt(internal::t_current_task);
}
SleepAwaiter Sleep(absl::Duration d) { return SleepAwaiter(d); }

bool YieldAwaiter::await_ready() const noexcept {
  return internal::InterruptPending(internal::CurrentTaskOrDie("Yield"));
}
void YieldAwaiter::await_suspend(std::coroutine_handle<> h) {
  TaskCore* c = internal::t_current_task;
  internal::t_task_parked = true;
  c->leaf = h;
  if (c->flags & internal::kFlagTerminateDelivered) {
    c->set_state(TaskState::kWaiting);
    internal::SchedulerHooks::ScheduleKill(*c->scheduler(), c);
    return;
  }
  c->set_state(TaskState::kReady);
  internal::SchedulerHooks::PushReady(*c->scheduler(), c);
}
absl::Status YieldAwaiter::await_resume() {
  return internal::TakeInterrupt(internal::t_current_task);
}
YieldAwaiter Yield() { return YieldAwaiter(); }

bool SuspendAwaiter::await_ready() const noexcept {
  return internal::InterruptPending(internal::CurrentTaskOrDie("Suspend"));
}
void SuspendAwaiter::await_suspend(std::coroutine_handle<> h) {
  internal::Block(internal::t_current_task, h, TaskState::kSuspended,
                  absl::Nanoseconds(timeout_ns_));
}
absl::StatusOr<Value> SuspendAwaiter::await_resume() {
  TaskCore* c = internal::t_current_task;
  if (internal::InterruptPending(c)) return internal::TakeInterrupt(c);
  if (c->wake == internal::kWakeEvent) {
    Value v = std::move(c->extra->resume_value);
    c->extra->resume_value = Value();
    return v;
  }
  return absl::DeadlineExceededError("suspend timed out");
}
SuspendAwaiter Suspend(absl::Duration timeout) { return SuspendAwaiter(timeout); }

absl::StatusOr<Value> ReceiveAwaiter::await_resume() {
  TaskCore* c = internal::t_current_task;
  if (internal::InterruptPending(c)) return internal::TakeInterrupt(c);
  internal::MessageNode* tail = c->mbox_tail;
  if (tail == nullptr) return absl::DeadlineExceededError("receive timed out");
  internal::MessageNode* head = tail->next;
  if (head == tail) {
    c->mbox_tail = nullptr;
  } else {
    tail->next = head->next;
  }
  Value v = std::move(head->value);
  internal::SchedulerHooks::FreeNode(*c->scheduler(), head);
  if (internal::Capacity* room = internal::MailboxRoom(c); room != nullptr) [[unlikely]] {
    room->Give();
  }
  return v;
}
ReceiveAwaiter Receive() { return ReceiveAwaiter(); }
TimedReceiveAwaiter Receive(absl::Duration timeout) { return TimedReceiveAwaiter(timeout); }

// --- selective receive ---

namespace {

// Waits until a message arrives after `tested` (the mailbox's tail when the
// scan ended; null for an empty mailbox), the timeout passes, or an
// interrupt. Not a swap point: Block, not ParkInReceive.
class NewMessageAwaiter {
 public:
  NewMessageAwaiter(const internal::MessageNode* tested, absl::Duration timeout)
      : tested_(tested), timeout_(timeout) {}
  bool await_ready() const noexcept {
    const TaskCore* c = internal::t_current_task;
    return c->mbox_tail != tested_ || internal::InterruptPending(c);
  }
  void await_suspend(std::coroutine_handle<> h) {
    internal::Block(internal::t_current_task, h, TaskState::kReceiving, timeout_);
  }
  // True when the timeout woke it.
  bool await_resume() const noexcept {
    return internal::t_current_task->wake == internal::kWakeTimeout;
  }

 private:
  const internal::MessageNode* tested_;
  absl::Duration timeout_;
};

}  // namespace

namespace {

// SendWhenRoom's wait on a proxy: TaskProxy::WaitForRoom, for at most
// `timeout` (then abandoned). What it completed with: OK, kUnavailable,
// kUnimplemented; kDeadlineExceeded at the timeout; an interrupt's status.
class ProxyRoomAwaiter {
 public:
  ProxyRoomAwaiter(TaskProxy* proxy, absl::Duration timeout) : proxy_(proxy), timeout_(timeout) {}
  bool await_ready() const { return internal::InterruptPending(internal::CurrentTaskOrDie("SendWhenRoom")); }
  void await_suspend(std::coroutine_handle<> h) {
    TaskCore* c = internal::t_current_task;
    internal::Block(c, h, TaskState::kWaiting, timeout_);
    proxy_->WaitForRoom(wait_.Start(c));
  }
  absl::Status await_resume() {
    TaskCore* c = internal::t_current_task;
    std::optional<absl::StatusOr<Value>> r = wait_.Take();
    if (internal::InterruptPending(c)) {
      interrupted_ = true;
      return internal::TakeInterrupt(c);
    }
    if (!r) return absl::DeadlineExceededError("no room before the timeout");
    return r->status();
  }
  // After the wait: its status is the interrupt's (whatever its code).
  bool interrupted() const { return interrupted_; }

 private:
  TaskProxy* proxy_;
  absl::Duration timeout_;
  internal::CompletionWait wait_;
  bool interrupted_ = false;
};

}  // namespace

Task<absl::Status> SendWhenRoom(TaskRef to, Value message, absl::Duration timeout) {
  const int64_t now = ThisScheduler().NowNs();
  const int64_t wait = absl::ToInt64Nanoseconds(timeout);  // saturates for an infinite one
  const int64_t give_up_ns = wait > INT64_MAX - now ? INT64_MAX : now + wait;
  TaskProxy* const proxy = GetTaskProxy(to);  // `to` keeps it alive
  TaskCore* const core = proxy == nullptr ? to.core() : nullptr;
  bool poll = false;  // the layer cannot tell when there is room
  for (;;) {
    // A copy each try: Send takes the message, and a refused one is gone.
    absl::Status s = to.Send(message);
    const int64_t at = ThisScheduler().NowNs();
    if (!absl::IsResourceExhausted(s) || at >= give_up_ns) co_return s;
    const absl::Duration left = absl::Nanoseconds(give_up_ns - at);
    // Only an interrupt ends a wait early; after a timeout, a lost peer or
    // a wake, Send tries again and its status is the answer.
    internal::Capacity* const room = core != nullptr ? internal::MailboxRoom(core) : nullptr;
    if (proxy != nullptr && !poll) {
      // Woken when the peer acknowledges what was queued (kUnavailable when
      // it is lost: the next Send says so).
      ProxyRoomAwaiter wait(proxy, left);
      absl::Status waited = co_await wait;
      if (wait.interrupted()) co_return waited;
      // The layer cannot tell (kUnimplemented), or not now: try every
      // millisecond instead.
      if (!waited.ok() && !absl::IsUnavailable(waited) && !absl::IsDeadlineExceeded(waited)) poll = true;
      continue;
    }
    if (room != nullptr) {
      // A bounded mailbox: woken when its task takes a message.
      internal::RoomAwaiter wait = room->WaitForRoom(left);
      absl::Status waited = co_await wait;
      if (wait.interrupted()) co_return waited;
      continue;
    }
    absl::Status slept = co_await Sleep(absl::Milliseconds(1));
    if (!slept.ok()) co_return slept;
  }
}

Task<absl::StatusOr<Value>> ReceiveMatching(MessagePredicate match, absl::Duration timeout) {
  TaskCore* c = internal::CurrentTaskOrDie("ReceiveMatching");
  Scheduler& s = *c->scheduler();
  const bool forever = timeout == absl::InfiniteDuration();
  const int64_t deadline_ns =
      forever ? 0 : internal::SchedulerHooks::NowNs(s) + absl::ToInt64Nanoseconds(timeout);
  // The last message `match` turned down: the scan goes on after it. Only
  // this task takes messages out of its mailbox, and it is here, so the node
  // stays in the list while we wait; new messages are appended after the tail.
  internal::MessageNode* tested = nullptr;
  bool timed_out = false;
  for (;;) {
    if (internal::InterruptPending(c)) co_return internal::TakeInterrupt(c);
    while (c->mbox_tail != nullptr && tested != c->mbox_tail) {
      internal::MessageNode* prev = tested != nullptr ? tested : c->mbox_tail;
      internal::MessageNode* n = prev->next;
      if (!match(n->value)) {
        tested = n;
        continue;
      }
      // `match` may have sent this task a message: re-read the list.
      if (n->next == n) {
        c->mbox_tail = nullptr;  // the only one
      } else {
        if (prev == n) prev = c->mbox_tail;  // it was alone; what came since follows it
        prev->next = n->next;
        if (n == c->mbox_tail) c->mbox_tail = prev;
      }
      Value v = std::move(n->value);
      internal::SchedulerHooks::FreeNode(s, n);
      if (internal::Capacity* room = internal::MailboxRoom(c); room != nullptr) room->Give();
      co_return v;
    }
    if (timed_out) co_return absl::DeadlineExceededError("selective receive timed out");
    absl::Duration left = absl::InfiniteDuration();
    if (!forever) {
      left = absl::Nanoseconds(deadline_ns - internal::SchedulerHooks::NowNs(s));
      if (left <= absl::ZeroDuration()) {
        co_return absl::DeadlineExceededError("selective receive timed out");
      }
    }
    timed_out = co_await NewMessageAwaiter(tested, left);
  }
}

MessagePredicate FieldEquals(std::string key, Value value) {
  return [key = std::move(key), value = std::move(value)](const Value& m) {
    const Value* field = m.Find(key);
    return field != nullptr && *field == value;
  };
}

bool JoinAwaiter::await_ready() const noexcept {
  TaskCore* c = internal::CurrentTaskOrDie("Join");
  TaskCore* t = target_.core();
  if (internal::InterruptPending(c) || t == nullptr || t == c) return true;
  // A task of another scheduler (or a proxy, index 0) is waited for through
  // a completion even when it has ended: its result belongs to its thread.
  return t->sched_index == c->sched_index && t->load_state() == TaskState::kDone;
}
void JoinAwaiter::await_suspend(std::coroutine_handle<> h) {
  TaskCore* c = internal::t_current_task;
  internal::Block(c, h, TaskState::kWaiting, absl::Nanoseconds(timeout_ns_));
  TaskCore* t = target_.core();
  if (t->sched_index == c->sched_index) {
    t->Extra().joiners.push_back(internal::TokenFor(c));
    return;
  }
  // May complete at once, and wake this task before it has suspended: it is
  // then simply queued to run.
  NotifyWhenDone(target_, remote_.Start(c));
}
absl::StatusOr<Value> JoinAwaiter::await_resume() {
  TaskCore* c = internal::t_current_task;
  std::optional<absl::StatusOr<Value>> remote = remote_.Take();
  if (internal::InterruptPending(c)) return internal::TakeInterrupt(c);
  TaskCore* t = target_.core();
  if (t == nullptr) return absl::InvalidArgumentError("join of a null TaskRef");
  if (t == c) return absl::FailedPreconditionError("a task cannot join itself");
  if (remote) return *std::move(remote);
  if (t->sched_index == c->sched_index && t->load_state() == TaskState::kDone) {
    if (t->extra == nullptr) return Value();
    if (!t->extra->result_status.ok()) return t->extra->result_status;
    return t->extra->result_value;
  }
  return absl::DeadlineExceededError(absl::StrCat("join of ", target_.DebugString(), " timed out"));
}

}  // namespace picos
