// When a scheduler's loop, with nothing left to run, polls for I/O and posts
// before it blocks in the kernel (Scheduler::Options::poll_before_sleep).
// Part of the scheduler; not picos API.
//
// Why poll at all: a thread that blocks in epoll_wait and is woken by a
// packet pays for the wake-up, and on a virtual machine (an idle vCPU halts
// and waits for an interrupt) that costs tens of microseconds, more than all
// the work of a remote round trip. A loop whose traffic comes back within
// the window answers without it. Erlang's schedulers (+sbwt) and Go's
// spinning threads do the same; a loop that never blocks (Seastar) is the
// extreme.
//
// Why only sometimes: polling burns a core. The policy learns from the
// loop's recent waits. It polls only after a blocking wait that traffic (I/O
// or a post from another thread that made a task ready) ended within the
// window: a ping-pong, a request and its answer. A wait ended by a timer
// does not count: polling is for traffic, and a timer's deadline is known.
// It stops after a poll that found nothing, until traffic wakes the loop
// that quickly again. So an idle loop (a heartbeat a second, a timer) never
// polls, a busy one polls at most one window per wait, and polling in vain
// never happens twice in a row.
#ifndef PICOS_CORE_KERNEL_POLL_BEFORE_SLEEP_INTERNAL_H_
#define PICOS_CORE_KERNEL_POLL_BEFORE_SLEEP_INTERNAL_H_

#include <cstdint>

namespace picos::internal {

class PollBeforeSleep {
 public:
  // `window_ns` <= 0: never polls.
  explicit PollBeforeSleep(int64_t window_ns) : window_ns_(window_ns > 0 ? window_ns : 0) {}

  // How long to poll before the next blocking wait, in nanoseconds; 0:
  // block at once.
  int64_t Budget() const { return armed_ ? window_ns_ : 0; }

  // A poll (of Budget()) ended after `ns`, having found work or not.
  void Polled(bool found, int64_t ns) {
    ++polls_;
    if (found) ++found_;
    polled_ns_ += ns > 0 ? ns : 0;
    armed_ = found;
  }

  // Traffic ended a blocking wait after `ns` (the loop blocks only while
  // not armed: a wait that ends otherwise leaves it so).
  void Woken(int64_t ns) { armed_ = window_ns_ > 0 && ns <= window_ns_; }

  int64_t window_ns() const { return window_ns_; }
  uint64_t polls() const { return polls_; }
  uint64_t found() const { return found_; }
  int64_t polled_ns() const { return polled_ns_; }

 private:
  int64_t window_ns_;
  bool armed_ = false;  // traffic came back quickly, and the last poll (if any) found work
  uint64_t polls_ = 0;
  uint64_t found_ = 0;
  int64_t polled_ns_ = 0;
};

}  // namespace picos::internal

#endif  // PICOS_CORE_KERNEL_POLL_BEFORE_SLEEP_INTERNAL_H_
