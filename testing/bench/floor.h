// The floor: the same work as picos's core figures, done by bare C++20
// coroutines with the least machinery that can do it (a frame, a one-word
// mailbox, a ring of ready handles). picos's figures are read against these,
// measured in the same run on the same machine.
#ifndef PICOS_TESTING_BENCH_FLOOR_H_
#define PICOS_TESTING_BENCH_FLOOR_H_

#include <coroutine>
#include <cstdint>
#include <exception>
#include <vector>

namespace picos::testing {

// A coroutine that starts suspended and destroys itself at the end.
struct FloorCoro {
  struct promise_type {
    FloorCoro get_return_object() { return {std::coroutine_handle<promise_type>::from_promise(*this)}; }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() {}
    void unhandled_exception() { std::terminate(); }
  };
  std::coroutine_handle<promise_type> h;
};

// The ready queue: a ring of handles.
class FloorReady {
 public:
  FloorReady() : ring_(1 << 10) {}
  void Push(std::coroutine_handle<> h) {
    if (count_ == ring_.size()) Grow();
    ring_[(head_ + count_++) & (ring_.size() - 1)] = h;
  }
  void RunAll() {
    while (count_) {
      std::coroutine_handle<> h = ring_[head_];
      head_ = (head_ + 1) & (ring_.size() - 1);
      --count_;
      h.resume();
    }
  }

 private:
  void Grow() {
    std::vector<std::coroutine_handle<>> bigger(ring_.size() * 2);
    for (size_t i = 0; i < count_; ++i) bigger[i] = ring_[(head_ + i) & (ring_.size() - 1)];
    ring_.swap(bigger);
    head_ = 0;
  }
  std::vector<std::coroutine_handle<>> ring_;
  size_t head_ = 0, count_ = 0;
};

// A mailbox of one-word messages: a waiting handle and a small queue.
struct FloorMailbox {
  std::coroutine_handle<> waiter;
  std::vector<int64_t>* queue = nullptr;  // allocated on first overflow
  int64_t slot = 0;
  bool full = false;
};

struct FloorReceiveAwaiter {
  FloorMailbox* box;
  bool await_ready() const noexcept { return box->full; }
  void await_suspend(std::coroutine_handle<> h) noexcept { box->waiter = h; }
  int64_t await_resume() noexcept {
    int64_t v = box->slot;
    box->full = false;
    return v;
  }
};

inline void FloorSend(FloorReady& ready, FloorMailbox& box, int64_t v) {
  box.slot = v;
  box.full = true;
  if (box.waiter) {
    std::coroutine_handle<> h = box.waiter;
    box.waiter = nullptr;
    ready.Push(h);
  }
}

struct FloorYieldAwaiter {
  FloorReady* ready;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) noexcept { ready->Push(h); }
  void await_resume() noexcept {}
};

}  // namespace picos::testing

#endif  // PICOS_TESTING_BENCH_FLOOR_H_
