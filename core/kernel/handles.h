// Handles: TaskRef names a task, ChannelRef names a channel. Both are cheap to
// copy (a pointer and a reference count), may be held and used from any
// thread, and stay safe to use after what they name has ended: operations on
// an ended task report kFailedPrecondition, never crash. That holds while the
// task's scheduler is being destroyed on another thread, and after: a call
// either reaches the live scheduler or reports that it is gone.
//
// What OK means depends on the thread. On the task's own scheduler thread
// an operation happens before the call returns, and its status is its
// outcome. From any other thread (another scheduler's tasks included) it is
// queued to the task's scheduler: the call refuses at once what it can tell
// from there (the task has ended, a bounded mailbox is full, Resume of a
// task not in Suspend(), the scheduler's inbox is full), and OK means
// "queued, and possible when queued". If the task's state changes before
// the operation runs (it ends, or its Suspend() times out) the operation is
// dropped (logged at debug level). A caller that needs the outcome itself
// awaits ResumeConfirmed(), asks the task (a message and its reply), or
// waits for it (Join).
//
// Handles travel inside messages (Value), which is how a task tells another
// where to reply:
//
//   server.Send(Value::Map({{"reply_to", picos::Self()}, {"n", 42}}));
//
// A handle names a task of any scheduler of this process, or a task that lives
// elsewhere (a proxy made by a higher layer, core/kernel/proxy.h): the same calls
// work on both, and a proxy reports what is known at once (kUnavailable when
// its peer is lost).
//
// The operations that wait (Join) are in task.h; channels are in channel.h.
#ifndef PICOS_CORE_KERNEL_HANDLES_H_
#define PICOS_CORE_KERNEL_HANDLES_H_

// picos is C++20: without it the coroutine and kj headers fail with pages of
// unrelated errors, so say it first (Bazel's default is -std=c++0x).
#if __cplusplus < 202002L
#error "picos needs C++20: compile with -std=c++20 (README.md, Depending on picos)"
#endif

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace picos {

class Value;
class Scheduler;
class JoinAwaiter;
template <typename T>
class Task;  // task.h

namespace internal {
struct TaskCore;
struct ChannelCore;
void Ref(TaskCore* core) noexcept;
void Unref(TaskCore* core) noexcept;
void Ref(ChannelCore* core) noexcept;
void Unref(ChannelCore* core) noexcept;
}  // namespace internal

// Where a task is in its life. Waiting states say what it waits for.
enum class TaskState : uint8_t {
  kReady,      // runnable, queued on its scheduler
  kRunning,    // executing now
  kSuspended,  // in Suspend() or Sleep(): wakes on Resume() or its timeout
  kReceiving,  // in Receive(): wakes on a message or its timeout
  kWaiting,    // in any other wait (a join, a lock, I/O)
  kDone,       // ended; its result is kept while handles to it remain
};

const char* TaskStateName(TaskState state);

class TaskRef {
 public:
  TaskRef() noexcept = default;
  TaskRef(const TaskRef& other) noexcept : core_(other.core_) {
    if (core_) internal::Ref(core_);
  }
  TaskRef(TaskRef&& other) noexcept : core_(other.core_) { other.core_ = nullptr; }
  TaskRef& operator=(TaskRef other) noexcept {
    std::swap(core_, other.core_);
    return *this;
  }
  ~TaskRef() {
    if (core_) internal::Unref(core_);
  }

  bool valid() const { return core_ != nullptr; }
  explicit operator bool() const { return valid(); }

  // Appends `message` to the task's mailbox and wakes it if it waits in
  // Receive(). Messages from one sender arrive in the order sent. Any thread
  // (OK from another thread: queued, see above). kFailedPrecondition if the
  // task has ended (or its scheduler has stopped), kResourceExhausted if its
  // mailbox is bounded (SpawnOptions::mailbox_limit) and full, or, from
  // another thread, if its scheduler's inbox is full
  // (Scheduler::Options::inbox_limit); kInvalidArgument on a null ref.
  absl::Status Send(Value message) const;

  // Awaitable from a task (pycos deliver): Send(), returning only once the
  // task's mailbox has accepted the message. A full bounded mailbox is
  // waited on, up to `timeout`, until the task receives and makes room
  // (then OK); kDeadlineExceeded if none came in time (nothing sent), the
  // interrupt's status if the sender is terminated or thrown into.
  // Otherwise as Send(). For a task elsewhere (a proxy), the layer that
  // reaches it says when its mailbox accepted (TaskProxy::Deliver; for a
  // peer: the reply after the remote mailbox took it, so a slow receiver
  // slows its senders down), with kUnavailable if its peer is lost first.
  // Defined in task.cc.
  //
  //   absl::Status s = co_await worker.Deliver(job, absl::Seconds(5));
  Task<absl::Status> Deliver(Value message,
                             absl::Duration timeout = absl::InfiniteDuration()) const;

  // Wakes a task waiting in Suspend() (or Sleep()); `value` becomes the
  // result of its Suspend(). kFailedPrecondition if it is not in Suspend()
  // or Sleep(): from another thread, as its state is seen at the call (OK:
  // queued while it was suspended; if its timeout wakes it first, the
  // resume is dropped). Any thread.
  absl::Status Resume(Value value) const;
  absl::Status Resume() const;

  // Awaitable from a task of any scheduler: Resume(), with its outcome as
  // the task's own thread saw it (kFailedPrecondition if by then the task
  // was no longer suspended), for a caller on another thread that must
  // know. On the task's own thread, or for a proxy, it is Resume(). Defined
  // in task.cc.
  Task<absl::Status> ResumeConfirmed(Value value) const;

  // Asks the task to end: the wait it is in (or its next one) returns
  // kCancelled, so it can clean up and co_return. If it waits again instead,
  // it is destroyed at that wait (its locals' destructors run). Any thread
  // (OK from another thread: queued). kFailedPrecondition once it has ended.
  absl::Status Terminate() const;

  // Makes the wait the task is in (or its next one) return `error`, which
  // must not be OK. Any thread (OK from another thread: queued).
  // kFailedPrecondition once it has ended.
  absl::Status Throw(absl::Status error) const;

  // Awaitable from a task: the task's result once it ends, as a Value (its
  // co_return value converted by ValueTraits, or null), or the error it ended
  // with (kCancelled if terminated, or if its scheduler stopped before it
  // ended). The task may be on any scheduler of this process, or a proxy:
  // the result then reaches the joiner through its scheduler's inbox, and a
  // proxy whose peer is lost gives kUnavailable. kDeadlineExceeded when
  // `timeout` passes first; kFailedPrecondition for the joiner itself,
  // kInvalidArgument for a null ref. Defined in task.h.
  JoinAwaiter Join() const;
  JoinAwaiter Join(absl::Duration timeout) const;

  // Reads of a racing state from another thread see a recent state; a
  // proxy's is the last its layer knew.
  TaskState state() const;
  bool done() const { return state() == TaskState::kDone; }
  // The name given at spawn or by set_name(); empty if none.
  std::string name() const;
  // Renames the task. Call from the task's scheduler thread. No effect on a
  // proxy (the name belongs to the task's own process).
  void set_name(std::string name) const;
  // A number unique among the tasks of this process, assigned when first
  // asked for (for a proxy: the task's id in its own process). Any thread.
  uint64_t id() const;
  // "name#id" for logs.
  std::string DebugString() const;

  friend bool operator==(const TaskRef& a, const TaskRef& b) { return a.core_ == b.core_; }
  friend bool operator!=(const TaskRef& a, const TaskRef& b) { return a.core_ != b.core_; }
  template <typename H>
  friend H AbslHashValue(H h, const TaskRef& t) {
    return H::combine(std::move(h), t.core_);
  }

  // For picos internals: adopts one reference.
  static TaskRef Adopt(internal::TaskCore* core) noexcept {
    TaskRef t;
    t.core_ = core;
    return t;
  }
  internal::TaskCore* core() const { return core_; }

 private:
  internal::TaskCore* core_ = nullptr;
};

class ChannelRef {
 public:
  ChannelRef() noexcept = default;
  ChannelRef(const ChannelRef& other) noexcept : core_(other.core_) {
    if (core_) internal::Ref(core_);
  }
  ChannelRef(ChannelRef&& other) noexcept : core_(other.core_) { other.core_ = nullptr; }
  ChannelRef& operator=(ChannelRef other) noexcept {
    std::swap(core_, other.core_);
    return *this;
  }
  ~ChannelRef() {
    if (core_) internal::Unref(core_);
  }

  bool valid() const { return core_ != nullptr; }
  explicit operator bool() const { return valid(); }
  const std::string& name() const;
  std::string DebugString() const;

  friend bool operator==(const ChannelRef& a, const ChannelRef& b) { return a.core_ == b.core_; }
  friend bool operator!=(const ChannelRef& a, const ChannelRef& b) { return a.core_ != b.core_; }
  template <typename H>
  friend H AbslHashValue(H h, const ChannelRef& c) {
    return H::combine(std::move(h), c.core_);
  }

  static ChannelRef Adopt(internal::ChannelCore* core) noexcept {
    ChannelRef c;
    c.core_ = core;
    return c;
  }
  internal::ChannelCore* core() const { return core_; }

 private:
  internal::ChannelCore* core_ = nullptr;
};

}  // namespace picos

#endif  // PICOS_CORE_KERNEL_HANDLES_H_
