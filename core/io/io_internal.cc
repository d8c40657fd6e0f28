#include "core/io/io_internal.h"

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"

namespace picos {

namespace internal {

namespace {
// Few: one for each buffer a bulk transfer has in flight at a time (a
// socket's read-ahead, a TLS record batch), for a stream or two.
constexpr int kSpareBuffers = 4;

struct Spares {
  std::string buffers[kSpareBuffers];
};

Spares& ThreadSpares() {
  thread_local Spares spares;
  return spares;
}
}  // namespace

std::string TakeBuffer(size_t min_capacity, size_t max_capacity, bool biggest) {
  // A small need does not take a big spare: a stream that reads ahead and
  // is not read would sit on it.
  if (max_capacity == 0) max_capacity = 8 * min_capacity + 4096;
  Spares& sp = ThreadSpares();
  std::string* best = nullptr;
  for (std::string& b : sp.buffers) {
    if (b.capacity() >= min_capacity && b.capacity() <= max_capacity &&
        (best == nullptr ||
         (biggest ? b.capacity() > best->capacity() : b.capacity() < best->capacity()))) {
      best = &b;
    }
  }
  std::string out;
  if (best != nullptr) {
    out.swap(*best);
  } else {
    out.reserve(min_capacity);
  }
  return out;
}

void GiveBackBuffer(std::string buffer) {
  const size_t kNone = std::string().capacity();  // what an empty string holds: nothing
  const size_t cap = buffer.capacity();
  if (cap > kMaxSpareBuffer || cap <= kNone) return;  // freed here
  auto held = [kNone](const std::string& b) { return b.capacity() > kNone ? b.capacity() : 0; };
  Spares& sp = ThreadSpares();
  // Keep the bigger ones: a small spare serves few takers. Smaller spares
  // make room for this one (within kMaxSpareBytes), or it is freed.
  for (;;) {
    std::string* smallest = &sp.buffers[0];  // an empty slot if there is one
    size_t total = cap;
    for (std::string& b : sp.buffers) {
      total += held(b);
      if (held(b) < held(*smallest)) smallest = &b;
    }
    if (held(*smallest) >= cap) return;  // freed here
    if (total - held(*smallest) <= kMaxSpareBytes) {
      smallest->swap(buffer);  // the one it replaces is freed here
      return;
    }
    // Over the bound: free the smallest spare smaller than this one, and
    // look again.
    std::string* victim = nullptr;
    for (std::string& b : sp.buffers) {
      if (held(b) > 0 && held(b) < cap && (victim == nullptr || held(b) < held(*victim))) {
        victim = &b;
      }
    }
    if (victim == nullptr) return;  // freed here
    std::string().swap(*victim);
  }
}

Deadline::Deadline(absl::Duration timeout) {
  if (timeout == absl::InfiniteDuration()) return;
  clock_ = Scheduler::Current();
  PICOS_ASSERT(clock_ != nullptr);  // a finite deadline is measured on a scheduler's clock
  const int64_t now = clock_->NowNs();
  if (timeout <= absl::ZeroDuration()) {
    at_ns_ = now;
    return;
  }
  // Saturates: a timeout of centuries is a deadline that never passes.
  const int64_t ns = absl::ToInt64Nanoseconds(timeout);
  at_ns_ = ns >= kNever - now ? kNever : now + ns;
}

absl::Duration Deadline::Remaining() const {
  if (at_ns_ == kNever) return absl::InfiniteDuration();
  const int64_t left = at_ns_ - clock_->NowNs();
  return left <= 0 ? absl::ZeroDuration() : absl::Nanoseconds(left);
}

absl::Status SlotAwaiter::await_resume() {
  TaskCore* c = t_current_task;
  if (InterruptPending(c)) return TakeInterrupt(c);
  if (done_ != nullptr) {
    if (*done_) return absl::OkStatus();
    // Not done and not interrupted: only the timer can have woken it.
    PICOS_ASSERT(c->wake == kWakeTimeout);
  } else if (c->wake == kWakeEvent) {
    return absl::OkStatus();
  }
  return absl::DeadlineExceededError("I/O timed out");
}

}  // namespace internal

}  // namespace picos
