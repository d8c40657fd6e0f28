#include "core/kernel/proxy.h"

#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/kernel/log.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/scheduler_internal.h"
#include "core/kernel/status.h"
#include "core/kernel/task_internal.h"

namespace picos {
namespace internal {

// Shared by one Completer and whoever waits on it.
struct CompletionState {
  virtual ~CompletionState() = default;
  // Called once, by the first Complete() (or the destructor of a completer
  // that was never completed), on the completing thread.
  virtual void Deliver(absl::StatusOr<Value> result) = 0;

  std::atomic<uint32_t> refs{1};
  std::atomic<bool> claimed{false};    // Complete() has run
  std::atomic<bool> abandoned{false};  // the waiter gave up
};

namespace {

void RefState(CompletionState* s) { s->refs.fetch_add(1, std::memory_order_relaxed); }
void UnrefState(CompletionState* s) {
  if (s->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete s;
}

struct CallbackState final : CompletionState {
  explicit CallbackState(absl::AnyInvocable<void(absl::StatusOr<Value>)> f) : fn(std::move(f)) {}
  void Deliver(absl::StatusOr<Value> result) override {
    if (fn) fn(std::move(result));
  }
  absl::AnyInvocable<void(absl::StatusOr<Value>)> fn;
};

// Holds one reference, for closures posted to another scheduler's inbox: a
// dropped inbox (the scheduler stopped) releases it too.
struct StateRef {
  CompletionState* s;
  explicit StateRef(CompletionState* st) : s(st) { RefState(s); }
  StateRef(StateRef&& o) noexcept : s(std::exchange(o.s, nullptr)) {}
  StateRef(const StateRef&) = delete;
  ~StateRef() {
    if (s) UnrefState(s);
  }
};

}  // namespace

// A task blocked until the completion arrives.
struct CompletionWait::State final : CompletionState {
  explicit State(WaitToken w) : waiter(std::move(w)) {}

  // The waiter's scheduler thread: counts the wait while it lasts.
  void Counted(bool on) {
    Scheduler* s = waiter.task.core()->scheduler();
    if (s == nullptr) return;
    if (on) {
      SchedulerHooks::AddExternalWait(*s);
    } else {
      SchedulerHooks::RemoveExternalWait(*s);
    }
  }

  void Deliver(absl::StatusOr<Value> r) override {
    if (abandoned.load(std::memory_order_acquire)) return;
    result = std::move(r);
    ready.store(true, std::memory_order_release);
    Scheduler* s = waiter.task.core()->scheduler();
    if (s == nullptr) return;  // its scheduler is gone, and the task with it
    if (s->InLoopThread()) {
      WakeToken(waiter, kWakeEvent);
      return;
    }
    // Through the joiner's inbox: only its own thread may wake it, and only
    // through its slot may another thread reach it (it may be under
    // destruction). If the inbox refuses (stopped, destroyed), the task is
    // being destroyed: nobody to wake.
    absl::AnyInvocable<void()> wake = [ref = StateRef(this)] {
      WakeToken(static_cast<State*>(ref.s)->waiter, kWakeEvent);
    };
    absl::Status posted = SchedulerHooks::PostToTask(waiter.task.core(), wake);
    if (!posted.ok()) PICOS_LOG(debug, "completion not posted: {}", posted.ToString());
  }

  const WaitToken waiter;  // immutable: read by the completing thread
  absl::StatusOr<Value> result;
  std::atomic<bool> ready{false};
};

CompletionWait::~CompletionWait() {
  if (state_ == nullptr) return;
  state_->Counted(false);
  state_->abandoned.store(true, std::memory_order_release);
  UnrefState(state_);
}

Completer CompletionWait::Start(TaskCore* c) {
  PICOS_ASSERT(state_ == nullptr);
  state_ = new State(TokenFor(c));  // one reference for us...
  state_->Counted(true);
  RefState(state_);
  return Completer(state_);  // ...and one for the completer
}

std::optional<absl::StatusOr<Value>> CompletionWait::Take() {
  if (state_ == nullptr) return std::nullopt;
  State* s = std::exchange(state_, nullptr);
  s->Counted(false);
  std::optional<absl::StatusOr<Value>> out;
  if (s->ready.load(std::memory_order_acquire)) {
    out = std::move(s->result);
  } else {
    s->abandoned.store(true, std::memory_order_release);
  }
  UnrefState(s);
  return out;
}

}  // namespace internal

// --- Completer ---

Completer::Completer(absl::AnyInvocable<void(absl::StatusOr<Value>)> fn)
    : state_(new internal::CallbackState(std::move(fn))) {}

Completer::Completer(Completer&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}

Completer& Completer::operator=(Completer&& other) noexcept {
  if (this != &other) {
    Completer old(std::move(*this));
    state_ = std::exchange(other.state_, nullptr);
  }
  return *this;
}

Completer::~Completer() {
  if (state_ == nullptr) return;
  if (!state_->claimed.load(std::memory_order_acquire)) {
    Complete(absl::UnavailableError("the operation was dropped before it completed"));
  }
  internal::UnrefState(state_);
}

void Completer::Complete(absl::StatusOr<Value> result) {
  if (state_ == nullptr || state_->claimed.exchange(true, std::memory_order_acq_rel)) return;
  state_->Deliver(std::move(result));
}

bool Completer::abandoned() const {
  return state_ != nullptr && state_->abandoned.load(std::memory_order_acquire);
}

// --- proxies ---

namespace internal {
ProxyCore::ProxyCore(std::unique_ptr<TaskProxy> p) : proxy(std::move(p)) { sched_index = 0; }
ProxyCore::~ProxyCore() = default;
}  // namespace internal

TaskRef MakeTaskProxy(std::unique_ptr<TaskProxy> proxy) {
  if (proxy == nullptr) return TaskRef();
  auto* core = new internal::ProxyCore(std::move(proxy));
  core->set_state(TaskState::kWaiting);  // never read: state() asks the proxy
  return TaskRef::Adopt(core);
}

TaskProxy* GetTaskProxy(const TaskRef& task) {
  internal::TaskCore* c = task.core();
  return (c != nullptr && internal::IsProxy(c)) ? internal::ProxyOf(c) : nullptr;
}

namespace {

absl::StatusOr<Value> ResultOf(const internal::TaskCore* c) {
  if (c->extra == nullptr) return Value();
  if (!c->extra->result_status.ok()) return c->extra->result_status;
  return c->extra->result_value;
}

// On the task's scheduler thread.
void AddDoneHook(internal::TaskCore* c, Completer done) {
  if (c->flags & internal::kFlagFinished) {
    done.Complete(ResultOf(c));
    return;
  }
  c->Extra().finish_hooks.push_back(
      [done = std::move(done)](internal::TaskCore* ended) mutable { done.Complete(ResultOf(ended)); });
}

// Posted to the task's scheduler. If the closure is dropped unrun (the
// scheduler stopped first), the task is being ended by that stop: the waiter
// gets what its Join would.
struct PostedHook {
  TaskRef task;
  Completer done;
  void operator()() { AddDoneHook(task.core(), std::move(done)); }
  PostedHook(TaskRef t, Completer d) : task(std::move(t)), done(std::move(d)) {}
  PostedHook(PostedHook&&) = default;
  ~PostedHook() {
    if (!done) return;
    // Unrun: the scheduler stopped (or was destroyed) first. Once the task
    // has ended its result no longer changes: that is what a Join gives.
    if (task.core()->load_state() == TaskState::kDone) {
      done.Complete(ResultOf(task.core()));
    } else {
      done.Complete(absl::CancelledError("scheduler stopped"));
    }
  }
};

}  // namespace

void NotifyWhenDone(const TaskRef& task, Completer done) {
  internal::TaskCore* c = task.core();
  if (c == nullptr) {
    done.Complete(absl::InvalidArgumentError("join of a null TaskRef"));
    return;
  }
  if (internal::IsProxy(c)) {
    internal::ProxyOf(c)->Join(std::move(done));
    return;
  }
  Scheduler* s = c->scheduler();
  if (s != nullptr && s->InLoopThread()) {
    AddDoneHook(c, std::move(done));
    return;
  }
  // Another thread, where `s` may be under destruction: only through its
  // slot. A refused post leaves the hook here, whose destructor completes
  // `done` as a stop would.
  absl::AnyInvocable<void()> hook = PostedHook(task, std::move(done));
  absl::Status posted = internal::SchedulerHooks::PostToTask(c, hook);
  if (!posted.ok()) PICOS_LOG(debug, "join of {} not posted: {}", task.DebugString(), posted.ToString());
}

}  // namespace picos
