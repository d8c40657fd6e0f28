// kj's event loop on a picos scheduler's libuv loop, and a picos Stream as a
// kj::AsyncIoStream: what Cap'n Proto RPC (capnp::TwoPartyVatNetwork) needs
// to run over any picos stream. Internal to the remote layer: kj types never
// appear in a public header (docs/style.md).
//
//   picos::internal::KjOnUv kj(picos::ThisScheduler());      // on the scheduler's thread
//   kj::Promise<int> p = kj.AfterDelay(absl::Milliseconds(50)).then([] { return 7; });
//   absl::StatusOr<int> seven = co_await picos::internal::AwaitKj(std::move(p));
//
//   auto io = kj::heap<picos::internal::KjStream>(std::move(stream));  // a picos Stream
//   capnp::TwoPartyVatNetwork network(*io, capnp::rpc::twoparty::Side::CLIENT);
//
// How the two loops share the thread, and why (docs/pitfalls.md, "kj's event
// loop driven by libuv", each point handled here):
//  * kj's queue runs from a uv_idle handle, active only while kj says it is
//    runnable (setRunnable), a bounded number of turns per callback so that
//    neither loop starves the other. An idle handle left active would keep
//    uv_run from ever blocking.
//  * kj's timer is a TimerImpl advanced to the real monotonic time before
//    every batch of turns and from a uv_timer armed at once for its next
//    event: a kj timer never waits on a stale advanceTo(), and a timer made
//    from outside a turn (AfterDelay) is armed before uv_run can see an idle
//    loop and return.
//  * promise.wait() aborts the process with a message instead of
//    re-entering uv_run, which is not reentrant (an exception would leave
//    kj's loop unusable): await the promise from a task with AwaitKj.
//  * A coroutine awaiting a kj promise is never resumed inside the kj
//    continuation (a use-after-free in kj's promise node when the coroutine
//    finishes there): the continuation completes a Completer, which puts the
//    task on its scheduler's ready queue.
//
// Threads: one KjOnUv per scheduler thread at most (kj allows one event loop
// per thread), created and destroyed on it, outliving every kj promise and
// object made while it lives. kj's cross-thread executor is not served.
#ifndef PICOS_CORE_REMOTE_KJ_ON_UV_INTERNAL_H_
#define PICOS_CORE_REMOTE_KJ_ON_UV_INTERNAL_H_

#include <kj/async-io.h>
#include <kj/async.h>
#include <kj/debug.h>
#include <kj/timer.h>

#include <coroutine>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/io/stream.h"
#include "core/kernel/proxy.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"
#include "core/kernel/task_group.h"
#include "core/kernel/task_internal.h"

namespace picos::internal {

// A kj::Exception as a status: DISCONNECTED is kUnavailable, OVERLOADED
// kResourceExhausted, UNIMPLEMENTED kUnimplemented, anything else kUnknown;
// the message is kj's description.
absl::Status StatusFromKj(const kj::Exception& e);

class KjOnUv final : public kj::EventPort {
 public:
  // Most kj turns per libuv callback.
  static constexpr unsigned kMaxTurnsPerCallback = 64;

  explicit KjOnUv(Scheduler& scheduler);
  // Closes its libuv handles (freed in their close callbacks).
  ~KjOnUv() noexcept(false);
  KjOnUv(const KjOnUv&) = delete;
  KjOnUv& operator=(const KjOnUv&) = delete;

  kj::EventLoop& loop() { return loop_; }
  kj::WaitScope& wait_scope() { return wait_scope_; }
  kj::Timer& timer() { return timer_; }

  // A promise fulfilled `d` from now (kj's afterDelay counts from the last
  // advanceTo, which may be a whole poll in the past).
  kj::Promise<void> AfterDelay(absl::Duration d);

  // kj::EventPort.
  bool wait() override;  // aborts: see the top of this file
  bool poll() override;
  void setRunnable(bool runnable) override;
  void wake() const override;

  // kj turns run so far: what tests check.
  uint64_t turns() const { return turns_; }

  struct Handles;  // the libuv handles; defined in kj_on_uv.cc

 private:
  static void OnIdle(void* self);
  static void OnTimer(void* self);
  void Run();
  void Advance();
  void ArmTimer();

  Handles* handles_;  // freed in the last close callback
  kj::TimerImpl timer_;
  kj::EventLoop loop_;
  kj::WaitScope wait_scope_;
  uint64_t turns_ = 0;
  bool running_ = false;
};

// The result of a kj promise, for a task of the scheduler that has a KjOnUv.
template <typename T>
class KjAwaiter {
 public:
  explicit KjAwaiter(kj::Promise<T> promise) : promise_(std::move(promise)) {}

  bool await_ready() { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    TaskCore* c = t_current_task;
    Block(c, h, TaskState::kWaiting, absl::InfiniteDuration());
    auto slot = std::make_shared<Slot>();
    slot->done = wait_.Start(c);
    slot_ = slot;
    // Completing queues the task on its scheduler; it never resumes here.
    running_ = promise_
                   .then(
                       [slot](T v) {
                         slot->value.emplace(std::move(v));
                         slot->done.Complete(Value());
                       },
                       [slot](kj::Exception&& e) {
                         slot->error = StatusFromKj(e);
                         slot->done.Complete(Value());
                       })
                   .eagerlyEvaluate(nullptr);
  }
  absl::StatusOr<T> await_resume() {
    std::optional<absl::StatusOr<Value>> woke = wait_.Take();
    TaskCore* c = t_current_task;
    if (InterruptPending(c)) return TakeInterrupt(c);
    if (slot_ && slot_->value) return std::move(*slot_->value);
    if (slot_ && !slot_->error.ok()) return slot_->error;
    if (woke && !woke->ok()) return woke->status();
    return absl::UnknownError("the kj promise was dropped before it settled");
  }

 private:
  struct Slot {
    std::optional<T> value;
    absl::Status error;
    Completer done;
  };
  kj::Promise<T> promise_;
  kj::Promise<void> running_ = nullptr;
  std::shared_ptr<Slot> slot_;
  CompletionWait wait_;
};

// Awaitable from a task: the promise's value, or its kj::Exception as a
// status (StatusFromKj); kCancelled (or the thrown error) on an interrupt,
// which drops the promise.
template <typename T>
KjAwaiter<T> AwaitKj(kj::Promise<T> promise) {
  return KjAwaiter<T>(std::move(promise));
}
// For kj::Promise<void>: OK or the error.
Task<absl::Status> AwaitKjVoid(kj::Promise<void> promise);

// A picos Stream as a kj::AsyncIoStream. Each read and write runs as a picos
// task of the stream's scheduler (in a TaskGroup this object owns, so that
// destroying it ends them) and settles its kj promise from there. Reads land
// in a buffer of the task and are copied into kj's buffer only while kj
// still waits for them, so a cancelled read never writes freed memory.
// Writes copy their bytes first. One read and one write at a time, as kj's
// streams expect. The scheduler must have a KjOnUv.
class KjStream final : public kj::AsyncIoStream {
 public:
  explicit KjStream(std::unique_ptr<Stream> stream);
  ~KjStream() noexcept(false);

  kj::Promise<size_t> tryRead(void* buffer, size_t min_bytes, size_t max_bytes) override;
  kj::Promise<void> write(const void* buffer, size_t size) override;
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override;
  kj::Promise<void> whenWriteDisconnected() override;
  void shutdownWrite() override;
  void abortRead() override;

  Stream& stream() { return *stream_; }

 private:
  kj::Promise<void> WriteBytes(std::string bytes);

  std::unique_ptr<Stream> stream_;
  TaskGroup tasks_;  // last: destroyed first, while the stream exists
};

}  // namespace picos::internal

#endif  // PICOS_CORE_REMOTE_KJ_ON_UV_INTERNAL_H_
