// The seam where a higher layer plugs in tasks that live elsewhere (Cap'n
// Proto's ClientHook idea): one TaskRef type names a task of this process or
// a proxy, and every operation on the handle dispatches to one or the other.
// The remote layer (peers) implements TaskProxy; core/remote/loopback_peer.h
// is an in-process double that routes every call through the Value codec.
//
//   class MyProxy final : public picos::TaskProxy { ... };
//   picos::TaskRef t = picos::MakeTaskProxy(std::make_unique<MyProxy>(...));
//   (void)t.Send(42);                          // MyProxy::Send(42)
//   absl::StatusOr<Value> r = co_await t.Join();  // MyProxy::Join(completer)
//
// A local task pays nothing for this: a proxy's control block carries
// scheduler index 0, which no scheduler has, so the local fast path (a send
// to a task of the running scheduler) tests nothing new; only the slow paths
// (another thread, an ended scheduler) look for a proxy.
//
// Completer is also how a task waits for something that happens on another
// thread: Join of a task on another scheduler of this process uses it (the
// completion is posted to the joiner's scheduler inbox), and so do Locate at a
// peer and Deliver on a remote channel.
#ifndef PICOS_CORE_KERNEL_PROXY_H_
#define PICOS_CORE_KERNEL_PROXY_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/kernel/handles.h"
#include "core/kernel/value.h"

namespace picos {

namespace internal {
struct CompletionState;
}  // namespace internal

// Completes one asynchronous operation, once, from any thread: a task's Join,
// Locate or Deliver waiting on something elsewhere, or a callback. Move-only.
//
// If a Completer is destroyed without Complete() having been called, it
// completes with kUnavailable ("dropped before it completed"): a waiter is
// never left hanging by a lost completer (a peer that went away, a scheduler
// inbox dropped at stop).
class Completer {
 public:
  // A completer that calls `fn` with the result, on the thread that calls
  // Complete() (or destroys it uncompleted).
  explicit Completer(absl::AnyInvocable<void(absl::StatusOr<Value>)> fn);
  Completer() = default;
  Completer(Completer&& other) noexcept;
  Completer& operator=(Completer&& other) noexcept;
  Completer(const Completer&) = delete;
  Completer& operator=(const Completer&) = delete;
  ~Completer();

  // Hands `result` to the waiter. A waiting task is woken through its
  // scheduler's thread-safe inbox (or at once, on that scheduler's thread).
  // Any thread; at most once (later calls, and calls after the waiter gave
  // up, are ignored).
  void Complete(absl::StatusOr<Value> result);

  // True once the waiter no longer waits (its wait timed out, it was
  // interrupted or ended): the work may be dropped. Any thread.
  bool abandoned() const;

  // False for a default-constructed or moved-from completer.
  explicit operator bool() const { return state_ != nullptr; }

  // For picos internals: adopts one reference to `state`.
  explicit Completer(internal::CompletionState* state) noexcept : state_(state) {}

 private:
  internal::CompletionState* state_ = nullptr;
};

// A task that does not live on a scheduler of this process, as the layer
// that reaches it sees it. TaskRef calls these for a handle made by
// MakeTaskProxy; their contracts are those of the TaskRef methods of the same
// names (core/kernel/handles.h, core/kernel/task.h), which the caller gets unchanged.
//
// Threads: every method may be called from any thread, at the same time from
// several: an implementation is thread-safe. None may block for long (they
// run on scheduler threads) or call back into the caller synchronously with
// a lock held. The proxy is destroyed when the last TaskRef to it goes, on
// the thread that drops it.
//
// Errors: return what is known at once: kUnavailable when the peer is lost,
// kFailedPrecondition when the task is known to have ended, kResourceExhausted
// when a bound is reached. OK from Send, Resume, Terminate and Throw means
// "accepted" (as for a local task called from another thread): the outcome,
// if it fails later, is not reported to the caller.
class TaskProxy {
 public:
  virtual ~TaskProxy() = default;

  // Queues `message` for the task; messages from one sender thread must
  // arrive in the order sent (batching is the implementation's choice).
  virtual absl::Status Send(Value message) = 0;
  virtual absl::Status Resume(Value value) = 0;
  virtual absl::Status Terminate() = 0;
  // `error` is not OK (TaskRef::Throw checks).
  virtual absl::Status Throw(absl::Status error) = 0;

  // Completes `done` with the task's result once it has ended (its value, or
  // the error it ended with), or with kUnavailable if its peer is lost first.
  // `done` may be completed from any thread, before Join returns or later; a
  // destroyed `done` gives the joiner kUnavailable. A joiner that times out
  // abandons it (done.abandoned()): the proxy may drop the request.
  virtual void Join(Completer done) = 0;

  // TaskRef::Deliver: completes `done` (with a null Value) once the task's
  // mailbox has accepted `message`, or with the error Deliver documents
  // (kDeadlineExceeded after `timeout`, kUnavailable when the peer is lost).
  // The default sends and completes with Send's status: for a layer whose
  // Send already means "in the mailbox".
  virtual void Deliver(Value message, absl::Duration timeout, Completer done) {
    (void)timeout;
    absl::Status s = Send(std::move(message));
    done.Complete(s.ok() ? absl::StatusOr<Value>(Value()) : absl::StatusOr<Value>(s));
  }

  // SendWhenRoom (core/kernel/task.h) after Send gave kResourceExhausted:
  // completes `room` (with a null Value) once a Send may find room (the
  // layer's queue for the task gave some back; a wake means "try again",
  // not "room is yours"), or with kUnavailable once the peer is lost. The
  // waiter may give up (its timeout: room.abandoned()). The default
  // completes at once with kUnimplemented: this layer cannot tell, and
  // SendWhenRoom tries again every millisecond instead.
  virtual void WaitForRoom(Completer room) {
    room.Complete(absl::UnimplementedError("this layer does not tell when there is room"));
  }
  // Makes `monitor` (a task anywhere) receive the monitor message of
  // core/kernel/monitor.h when the task ends, or MonitorStatus::PeerLost when its
  // peer is lost first. Once per call, as Monitor() promises.
  virtual absl::Status Monitor(const TaskRef& monitor) = 0;

  // What the layer last knew: kDone once the task is known to have ended or
  // its peer is lost. Must not wait for the network.
  virtual TaskState state() const = 0;
  // The task's name and id in its own process, as they were when the handle
  // was made.
  virtual std::string name() const = 0;
  virtual uint64_t id() const = 0;
  // "name#id@where" for logs.
  virtual std::string DebugString() const = 0;
};

// A handle whose every operation goes to `proxy`, which it owns (shared by
// its copies; destroyed with the last). A null TaskRef for a null proxy.
TaskRef MakeTaskProxy(std::unique_ptr<TaskProxy> proxy);

// The proxy behind `task`, or null for a task of this process (and a null
// handle). Lets a layer recognise its own proxies, e.g. to put the original
// identity of a task on the wire. Any thread.
TaskProxy* GetTaskProxy(const TaskRef& task);

// Completes `done` with the result of `task` once it has ended: at once if it
// has, else from the task's scheduler thread when it ends (or from wherever
// its proxy completes it). Works for a task of any scheduler of this process
// and for proxies; this is what Join of a task that is not on the joiner's
// scheduler waits on, and what a layer that serves remote joins calls. A task
// whose scheduler stops before it ends completes with kCancelled ("scheduler
// stopped"), as its Join would. Any thread. Never suspends.
void NotifyWhenDone(const TaskRef& task, Completer done);

}  // namespace picos

#endif  // PICOS_CORE_KERNEL_PROXY_H_
