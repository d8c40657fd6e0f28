// Internals shared by picos's I/O objects (streams, files, processes, UDP,
// the thread pool): how a task waits, until a deadline on the scheduler's
// clock, for something that a libuv callback (or a closure posted from
// another thread) makes happen. Not part of the public API.
//
// Two shapes of wait, one awaiter under both:
//
//   // A condition that callbacks change (bytes buffered, a connection
//   // queued): the task re-checks it after every wake.
//   Deadline deadline(timeout);
//   for (;;) {  // ends by the condition, the deadline or an interrupt
//     if (s->buffered() > 0) break;
//     PICOS_CO_RETURN_IF_ERROR(co_await s->reader.Wait(deadline));
//   }
//
//   // One event that happens once (a child's exit, a job's result):
//   PICOS_CO_RETURN_IF_ERROR(co_await exit.Wait(deadline));  // OK: exit.done()
//
// A single libuv request is awaited through UvRequest
// (core/io/uv_request_internal.h), which is built on Completion.
//
// The rule that keeps this safe: libuv requests and handles never point
// into a coroutine frame (a terminated task's frame is destroyed while it
// waits). What a callback writes lives in heap state owned by the I/O object
// (freed in a close callback) or by the request; the task parks its
// WaitToken in a WaitSlot there, and the callback wakes it through the
// token, which is harmless when the task has gone or waits for something
// else.
//
// Scheduler thread only, from tasks; the awaiters suspend the task.
#ifndef PICOS_CORE_IO_IO_INTERNAL_H_
#define PICOS_CORE_IO_IO_INTERNAL_H_

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task_internal.h"

namespace picos::internal {

// A point on the scheduler's monotonic clock (Scheduler::NowNs) by which a
// wait must end: a step of the wall clock neither stretches nor cuts it.
class Deadline {
 public:
  // `timeout` from now; absl::InfiniteDuration() never passes, a zero or
  // negative timeout has passed already. A finite one needs a scheduler
  // running on this thread (asserted).
  explicit Deadline(absl::Duration timeout);

  // Zero once passed; absl::InfiniteDuration() for a deadline that never
  // passes.
  absl::Duration Remaining() const;
  bool Expired() const { return Remaining() == absl::ZeroDuration(); }

 private:
  static constexpr int64_t kNever = INT64_MAX;
  const Scheduler* clock_ = nullptr;  // null when at_ns_ == kNever
  int64_t at_ns_ = kNever;
};

class SlotAwaiter;

// Where one waiting task leaves its token.
struct WaitSlot {
  WaitToken waiter;

  // Wakes the parked task, if any (the callback side calls this after
  // changing the state the task waits on).
  void Notify() {
    if (waiter.task) {
      WaitToken t = std::move(waiter);
      waiter = WaitToken();
      WakeToken(t, kWakeEvent);
    }
  }

  // Suspends the running task until Notify(), the deadline, or an
  // interrupt. OK when notified (the caller re-checks what it waits for),
  // kDeadlineExceeded, kCancelled (terminated) or the thrown error.
  SlotAwaiter Wait(const Deadline& deadline);
};

// One event that happens once (a request completes, a child exits, a job's
// result arrives), awaited by at most one task at a time.
class Completion {
 public:
  bool done() const { return done_; }

  // The event happened: wakes the waiting task, if any.
  void Complete() {
    done_ = true;
    slot_.Notify();
  }

  // OK once done (at once if it is), else kDeadlineExceeded, kCancelled or
  // the thrown error. Only Complete() wakes it before its deadline: any
  // other wake is a bug, and asserted.
  SlotAwaiter Wait(const Deadline& deadline);

 private:
  bool done_ = false;
  WaitSlot slot_;
};

// The one awaiter under both: parks the task's token in `slot` for at most
// `timeout`. With `done` (a Completion's flag) a wake means the event
// happened; without, it means "look again".
class SlotAwaiter {
 public:
  SlotAwaiter(WaitSlot* slot, const bool* done, absl::Duration timeout)
      : slot_(slot), done_(done), timeout_(timeout) {}
  bool await_ready() const noexcept {
    return (done_ != nullptr && *done_) || InterruptPending(CurrentTaskOrDie("I/O wait"));
  }
  void await_suspend(std::coroutine_handle<> h) {
    TaskCore* c = t_current_task;
    Block(c, h, TaskState::kWaiting, timeout_);
    slot_->waiter = TokenFor(c);
  }
  absl::Status await_resume();

 private:
  WaitSlot* slot_;
  const bool* done_;
  absl::Duration timeout_;
};

inline SlotAwaiter WaitSlot::Wait(const Deadline& deadline) {
  return SlotAwaiter(this, nullptr, deadline.Remaining());
}

inline SlotAwaiter Completion::Wait(const Deadline& deadline) {
  return SlotAwaiter(&slot_, &done_, deadline.Remaining());
}

// Buffers that follow the data (as nginx's and kj's do): an I/O engine
// takes one when bytes arrive and gives it back once they are consumed, so
// an idle connection holds none. The thread keeps a few given-back buffers
// (each at most kMaxSpareBuffer bytes, all together at most kMaxSpareBytes)
// for the next taker, so that a bulk transfer, which drains and refills its
// buffers over and over, does not allocate (and fault in fresh pages) each
// time. Any thread; each has its own spares.
//
// Big enough for a stream's read buffer at the default read-ahead bound
// (StreamOptions::max_read_buffer, 1 MiB): up to twice the bound plus one
// 64 KiB read (core/io/uv_stream_internal.cc). A bulk transfer's buffer is
// that big, and must survive its drains.
inline constexpr size_t kMaxSpareBuffer = (2 << 20) + 64 * 1024;
// Room for that one and a few smaller ones (a TLS record batch).
inline constexpr size_t kMaxSpareBytes = kMaxSpareBuffer + 512 * 1024;

// A buffer with capacity() >= `min_capacity` and arbitrary contents: a
// spare if one is big enough and not bigger than `max_capacity` (by
// default a few times the need: a small need does not take a big spare),
// the smallest such or, with `biggest`, the biggest; else a new one of
// `min_capacity`. Does not suspend.
std::string TakeBuffer(size_t min_capacity, size_t max_capacity = 0, bool biggest = false);

// Gives `buffer`'s storage back: kept as a spare or freed.
void GiveBackBuffer(std::string buffer);

}  // namespace picos::internal

#endif  // PICOS_CORE_IO_IO_INTERNAL_H_
