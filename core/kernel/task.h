// Tasks: C++20 coroutines run by a picos Scheduler.
//
// A task is a coroutine function returning picos::Task<T>. Spawned on a
// scheduler it becomes an independent task with a mailbox and a handle
// (TaskRef); co_awaited from another task it runs as a plain sub-call in the
// caller's task (symmetric transfer: the stack stays flat however deep or
// long the chain of calls).
//
//   picos::Task<int> Add(int a, int b) { co_return a + b; }
//
//   picos::Task<> Echo() {
//     for (;;) {
//       absl::StatusOr<picos::Value> msg = co_await picos::Receive();
//       if (!msg.ok()) co_return;              // terminated or thrown into
//       // A message is input: read it with the checked accessors (value.h).
//       absl::StatusOr<picos::TaskRef> from = msg->Get<picos::TaskRef>("from");
//       if (from.ok()) (void)from->Send((*msg)["n"]);
//       int sum = co_await Add(1, 2);          // a sub-call, same task
//     }
//   }
//
//   picos::Scheduler s;
//   picos::TaskRef echo = s.Spawn(Echo);
//
// Inside a task these suspend it until something happens, each returning a
// status: Sleep, Yield, Suspend, Receive, and TaskRef::Join. A wait returns
// kCancelled when the task is terminated and the error passed to Throw()
// when one is thrown into it. Tasks switch only at co_await: tasks of one
// scheduler never run at the same time and need no locks between them.
//
// Parameters of coroutine functions should be taken by value: a reference
// parameter refers to the caller's object, which may be gone when the task
// runs.
#ifndef PICOS_CORE_KERNEL_TASK_H_
#define PICOS_CORE_KERNEL_TASK_H_

// picos is C++20: without it the coroutine and kj headers fail with pages of
// unrelated errors, so say it first (Bazel's default is -std=c++0x).
#if __cplusplus < 202002L
#error "picos needs C++20: compile with -std=c++20 (README.md, Depending on picos)"
#endif

#include <coroutine>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/kernel/handles.h"
#include "core/kernel/task_internal.h"
#include "core/kernel/value.h"

namespace picos {

template <typename T = void>
class Task;

namespace internal {

template <typename T>
struct IsStatusOr : std::false_type {};
template <typename U>
struct IsStatusOr<absl::StatusOr<U>> : std::true_type {};

// How a task's co_return value becomes its result: a Status is the error it
// ended with, a StatusOr its error or value, a ValueConvertible type its
// value; anything else ends the task with a null result.
template <typename T>
void Outcome(T&& v, absl::Status* status, Value* value) {
  using D = std::decay_t<T>;
  if constexpr (std::is_same_v<D, absl::Status>) {
    *status = std::forward<T>(v);
  } else if constexpr (IsStatusOr<D>::value) {
    if (!v.ok()) {
      *status = v.status();
    } else if constexpr (ValueConvertible<typename D::value_type>) {
      *value = ToValue(*v);
    }
  } else if constexpr (ValueConvertible<D>) {
    *value = ToValue(v);
  }
}

class PromiseBase {
 public:
  std::suspend_always initial_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { exception_ = std::current_exception(); }

  std::coroutine_handle<> continuation_;  // the awaiting frame; null at the root
  std::exception_ptr exception_;
};

template <typename P>
struct FinalAwaiter {
  bool await_ready() noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
    P& p = h.promise();
    if (p.continuation_) return p.continuation_;  // back to the caller, as a tail call
    absl::Status status;
    Value value;
    if (p.exception_) {
      status = StatusFromException(p.exception_);
    } else {
      p.TakeOutcome(&status, &value);
    }
    FinishCurrentTask(std::move(status), std::move(value), h);  // destroys h
    return std::noop_coroutine();
  }
  void await_resume() noexcept {}
};

template <typename T>
class Promise : public PromiseBase {
 public:
  Task<T> get_return_object() noexcept;
  FinalAwaiter<Promise> final_suspend() noexcept { return {}; }
  template <typename U>
  void return_value(U&& v) {
    result_.emplace(std::forward<U>(v));
  }
  void TakeOutcome(absl::Status* status, Value* value) {
    if (result_) Outcome(std::move(*result_), status, value);
  }
  T TakeResult() {
    if (exception_) std::rethrow_exception(exception_);
    return std::move(*result_);
  }

 private:
  std::optional<T> result_;
};

template <>
class Promise<void> : public PromiseBase {
 public:
  Task<void> get_return_object() noexcept;
  FinalAwaiter<Promise> final_suspend() noexcept { return {}; }
  void return_void() noexcept {}
  void TakeOutcome(absl::Status*, Value*) {}
  void TakeResult() {
    if (exception_) std::rethrow_exception(exception_);
  }
};

// Thrown into the awaiting coroutine when it awaits an empty Task (moved
// from, or already awaited): the awaiting task ends with this as its error.
class EmptyTaskError : public std::logic_error {
 public:
  EmptyTaskError() : std::logic_error("awaited an empty or already awaited Task") {}
};

template <typename T>
class CallAwaiter;

}  // namespace internal

template <typename T>
class [[nodiscard]] Task {
 public:
  using promise_type = internal::Promise<T>;
  using value_type = T;
  using Handle = std::coroutine_handle<promise_type>;

  Task() noexcept = default;
  Task(Task&& other) noexcept : h_(std::exchange(other.h_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      if (h_) h_.destroy();
      h_ = std::exchange(other.h_, {});
    }
    return *this;
  }
  ~Task() {
    if (h_) h_.destroy();
  }

  bool valid() const { return static_cast<bool>(h_); }

  // Runs the coroutine as a sub-call of the awaiting task and gives its
  // co_return value; an exception it lets escape is rethrown here.
  internal::CallAwaiter<T> operator co_await() && noexcept;

  // Gives up ownership of the frame (the scheduler takes it at Spawn).
  Handle release() noexcept { return std::exchange(h_, {}); }

 private:
  friend class internal::Promise<T>;
  explicit Task(Handle h) noexcept : h_(h) {}
  Handle h_;
};

namespace internal {

template <typename T>
Task<T> Promise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<Promise<T>>::from_promise(*this));
}
inline Task<void> Promise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<Promise<void>>::from_promise(*this));
}

// Awaits a Task as a sub-call. Owns the callee's frame from construction:
// if the caller is destroyed while the callee is suspended (the task was
// killed), this awaiter, living in the caller's frame, destroys the callee.
template <typename T>
class CallAwaiter {
 public:
  explicit CallAwaiter(typename Task<T>::Handle h) noexcept : h_(h) {}
  CallAwaiter(const CallAwaiter&) = delete;
  CallAwaiter& operator=(const CallAwaiter&) = delete;
  ~CallAwaiter() {
    if (h_) h_.destroy();
  }
  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> caller) {
    if (!h_) throw EmptyTaskError();
    // Compiled without -foptimize-sibling-calls, the jump into the callee
    // below and back from it are real calls, and a loop of sub-calls that
    // complete at once overflows the stack with no hint of why. Turn that
    // into a message while there is stack left (one compare per sub-call).
    const char* frame = static_cast<const char*>(__builtin_frame_address(0));
    if (frame < t_stack_floor) [[unlikely]] StackGrowsAcrossAwaits(frame);
    h_.promise().continuation_ = caller;
    return h_;  // symmetric transfer into the callee
  }
  T await_resume() {
    struct Destroy {
      typename Task<T>::Handle h;
      ~Destroy() { h.destroy(); }
    } guard{std::exchange(h_, {})};
    return guard.h.promise().TakeResult();
  }

 private:
  typename Task<T>::Handle h_;
};

}  // namespace internal

template <typename T>
internal::CallAwaiter<T> Task<T>::operator co_await() && noexcept {
  return internal::CallAwaiter<T>(release());
}

// The handle of the task that is running. Asserts that the caller is a task.
// A task's result is kept while handles to it live: a task that returns its
// own handle (or a Value holding it) keeps itself alive forever.
TaskRef Self();

// --- Awaitables. Each is co_awaited by the running task. ---

// Suspends the task for `d` (zero or less: one turn of the scheduler). A
// Resume() ends the sleep early (as in pycos, sleep is a suspend). OK, or the
// interrupt status.
class SleepAwaiter;
SleepAwaiter Sleep(absl::Duration d);

// Lets every other runnable task run once, then continues.
class YieldAwaiter;
YieldAwaiter Yield();

// Suspends until Resume(value) (gives value) or `timeout` (kDeadlineExceeded).
class SuspendAwaiter;
SuspendAwaiter Suspend(absl::Duration timeout = absl::InfiniteDuration());

// The next message from the mailbox, waiting for one up to `timeout`
// (kDeadlineExceeded when it passes). FIFO per sender.
class ReceiveAwaiter;
class TimedReceiveAwaiter;
ReceiveAwaiter Receive();
TimedReceiveAwaiter Receive(absl::Duration timeout);

// Selective receive (Erlang's receive with patterns, pycos's
// CategorizeMessages): the first message in the mailbox that `match`
// accepts, waiting up to `timeout` for one to arrive. The messages it passes
// over stay queued, in their order, for later Receive() calls: a task
// awaiting a reply need not sort requests and monitor messages by hand.
//
//   PICOS_CO_RETURN_IF_ERROR(server.Send(Value::Map({{"id", 7}, {"from", Self()}})));
//   absl::StatusOr<Value> reply =
//       co_await picos::ReceiveMatching(picos::FieldEquals("id", 7), absl::Seconds(5));
//
// kDeadlineExceeded when the timeout passes first (nothing is taken), the
// interrupt's status when the task is terminated or thrown into. `match`
// runs on this task, never suspends, and sees each message at most once per
// call: first those already queued, then each as it arrives. Plain Receive()
// costs nothing more for this: the scan happens only here, one test per
// message. Not a hot-swap point (hot_swap.h): a task waiting for a reply is
// in the middle of something.
using MessagePredicate = absl::AnyInvocable<bool(const Value&)>;
Task<absl::StatusOr<Value>> ReceiveMatching(MessagePredicate match,
                                            absl::Duration timeout = absl::InfiniteDuration());

// A predicate for ReceiveMatching: a map whose field `key` equals `value`.
MessagePredicate FieldEquals(std::string key, Value value);

// Send, waiting while `to` has no room for the message: a bounded mailbox
// that is full, or a remote task whose peer's queue is full
// (remote::NodeOptions::max_queued_bytes), both kResourceExhausted. Tries
// again when there may be room (a bounded mailbox wakes it as its task
// takes a message; a peer's queue as the peer acknowledges what it
// received; with a layer that cannot tell, TaskProxy::WaitForRoom, every
// millisecond) until `timeout` (then that kResourceExhausted); any other
// outcome of Send at once, and the interrupt's status if the task is
// terminated or thrown into while it waits. What a task that floods
// another and must lose nothing does; Send alone never waits.
//
//   PICOS_CO_RETURN_IF_ERROR(co_await picos::SendWhenRoom(sink, msg, absl::Seconds(30)));
Task<absl::Status> SendWhenRoom(TaskRef to, Value message, absl::Duration timeout);

// --- Awaiter types (public so that they can be named; use the functions). ---

class SleepAwaiter {
 public:
  explicit SleepAwaiter(absl::Duration d) : d_ns_(absl::ToInt64Nanoseconds(d)) {}
  bool await_ready() const noexcept;
  void await_suspend(std::coroutine_handle<> h);
  absl::Status await_resume();

 private:
  int64_t d_ns_;  // one word, not absl::Duration's two: it sits in the frame
};

class YieldAwaiter {
 public:
  bool await_ready() const noexcept;
  void await_suspend(std::coroutine_handle<> h);
  absl::Status await_resume();
};

class SuspendAwaiter {
 public:
  explicit SuspendAwaiter(absl::Duration timeout)
      : timeout_ns_(absl::ToInt64Nanoseconds(timeout)) {}
  bool await_ready() const noexcept;
  void await_suspend(std::coroutine_handle<> h);
  absl::StatusOr<Value> await_resume();

 private:
  int64_t timeout_ns_;
};

// Receive() without a timeout. Empty on purpose: the awaiter and the
// StatusOr its await_resume returns live in the frame of every task that
// waits for a message, and a million such tasks pay for every byte.
class ReceiveAwaiter {
 public:
  bool await_ready() const noexcept {
    const internal::TaskCore* c = internal::t_current_task;
    // With messages waiting it goes on at once, unless a hot swap waits for
    // this swap point (hot_swap.h): then it parks, and the swap is decided.
    if (!c->mailbox_empty()) {
      return (c->flags & internal::kSwapAtReceive) != internal::kSwapAtReceive;
    }
    return internal::InterruptPending(c);
  }
  void await_suspend(std::coroutine_handle<> h) {
    internal::ParkInReceive(internal::t_current_task, h, absl::InfiniteDuration());
  }
  absl::StatusOr<Value> await_resume();
};

// Receive(timeout): one word more, the timeout in nanoseconds.
class TimedReceiveAwaiter : public ReceiveAwaiter {
 public:
  explicit TimedReceiveAwaiter(absl::Duration timeout)
      : timeout_ns_(absl::ToInt64Nanoseconds(timeout)) {}
  void await_suspend(std::coroutine_handle<> h) {
    internal::ParkInReceive(internal::t_current_task, h, absl::Nanoseconds(timeout_ns_));
  }

 private:
  int64_t timeout_ns_;  // INT64_MAX: no timeout
};

// A task of the joiner's own scheduler is joined through its joiner list;
// one of another scheduler (or a proxy, proxy.h) through a Completer whose
// completion is posted to the joiner's scheduler inbox (NotifyWhenDone).
class JoinAwaiter {
 public:
  JoinAwaiter(TaskRef target, absl::Duration timeout)
      : target_(std::move(target)), timeout_ns_(absl::ToInt64Nanoseconds(timeout)) {}
  JoinAwaiter(const JoinAwaiter&) = delete;
  JoinAwaiter& operator=(const JoinAwaiter&) = delete;
  bool await_ready() const noexcept;
  void await_suspend(std::coroutine_handle<> h);
  absl::StatusOr<Value> await_resume();

 private:
  TaskRef target_;
  int64_t timeout_ns_;  // one word, not absl::Duration's two: it sits in the frame
  internal::CompletionWait remote_;
};

}  // namespace picos

#endif  // PICOS_CORE_KERNEL_TASK_H_
