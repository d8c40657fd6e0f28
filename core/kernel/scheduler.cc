#include "core/kernel/scheduler.h"

#include <sched.h>
#include <uv.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <memory>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "core/kernel/capacity_internal.h"
#include "core/kernel/log.h"
#include "core/kernel/scheduler_internal.h"
#include "core/kernel/status.h"

namespace picos {

std::atomic<Scheduler*> internal::g_schedulers[256];

using internal::MessageNode;
using internal::TaskCore;

namespace {

thread_local Scheduler* t_scheduler = nullptr;

constexpr int kMaxSchedulers = 255;
using internal::g_schedulers;

// Takes a free slot for `s` and opens it to posts from other threads; sets
// the claim's generation.
uint8_t ClaimIndex(Scheduler* s, uint32_t* generation) {
  for (int i = 1; i <= kMaxSchedulers; ++i) {
    Scheduler* expected = nullptr;
    if (g_schedulers[i].compare_exchange_strong(expected, s)) {
      internal::SchedulerSlot& slot = internal::Slot(static_cast<uint8_t>(i));
      absl::MutexLock lock(&slot.mu);
      slot.open = s;
      *generation = ++slot.generation;
      return static_cast<uint8_t>(i);
    }
  }
  PICOS_ASSERT(false && "more than 255 schedulers in one process");
  return 0;
}

// Resumes run in batches; between batches the loop polls I/O once, so a busy
// set of tasks cannot starve sockets and timers.
constexpr int kReadyBatch = 4096;

void IgnoreSigpipe() {
  // libuv does not ignore SIGPIPE: a write to a vanished peer would kill the
  // process instead of failing with EPIPE.
  static const bool done = [] {
    std::signal(SIGPIPE, SIG_IGN);
#ifdef NDEBUG
    // Debian's Abseil is built with its lock-order graph on: every
    // Mutex::Lock records the locks held, which cost a remote message about
    // a tenth of its time. Optimized builds leave it off, as Abseil's own
    // optimized builds do; debug builds (tests) keep it.
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
    return true;
  }();
  (void)done;
}

// Owns a spawned frame until the scheduler thread registers it, so that a
// dropped inbox (the scheduler stopped first) destroys it rather than leaks.
// Holds a reference of its own: the task may be destroyed before it is
// registered (TaskGroup::Clear on the owner's thread), and its core must
// stay readable until the posted closure has seen that.
struct PendingSpawn {
  TaskCore* core;
  explicit PendingSpawn(TaskCore* c) : core(c) { internal::Ref(c); }
  PendingSpawn(PendingSpawn&& o) noexcept : core(std::exchange(o.core, nullptr)) {}
  ~PendingSpawn() {
    if (!core) return;
    TaskCore* c = std::exchange(core, nullptr);
    if (!(c->flags & internal::kFlagFinished)) End(c);
    internal::Unref(c);  // our own reference
  }

 private:
  static void End(TaskCore* c) {
    c->root.destroy();
    c->root = {};
    c->leaf = {};
    Scheduler* s = c->scheduler();
    if (s != nullptr && s->InLoopThread()) {
      // Dropped while the scheduler stops: end it as any task ends, so that
      // monitors, names and joiners hear of it.
      internal::SchedulerHooks::Finish(
          *s, c, absl::CancelledError("scheduler stopped before the task started"), Value());
      return;
    }
    // Dropped on another thread (Post failed): nobody else has seen it.
    c->flags |= internal::kFlagFinished;
    c->Extra().result_status = absl::CancelledError("scheduler stopped before the task started");
    c->set_state(TaskState::kDone);
    internal::Unref(c);  // the scheduler's reference
  }
};

}  // namespace

internal::SchedulerSlot& internal::Slot(uint8_t index) {
  static SchedulerSlot* const slots = new SchedulerSlot[256];
  return slots[index];
}

absl::Status internal::SchedulerHooks::PostToSlot(uint8_t index, uint32_t generation,
                                                  absl::AnyInvocable<void()>& fn) {
  SchedulerSlot& slot = Slot(index);
  // Shared: posts from many threads go on at once; the destructor's close
  // waits for them.
  absl::ReaderMutexLock lock(&slot.mu);
  if (slot.open == nullptr || slot.generation != generation) {
    return absl::FailedPreconditionError("the scheduler has been destroyed");
  }
  return slot.open->PostOrKeep(fn);
}

Scheduler* Scheduler::Current() { return t_scheduler; }

int internal::ExitCode(const char* program, const absl::Status& status) {
  if (status.ok()) return 0;
  std::fprintf(stderr, "%s: %s\n", program, status.ToString().c_str());
  return 1;
}

Scheduler& ThisScheduler() {
  Scheduler* s = t_scheduler;
  PICOS_ASSERT(s != nullptr && "ThisScheduler() outside a scheduler's thread");
  return *s;
}

Scheduler::Scheduler() : Scheduler(Options()) {}

namespace internal {

absl::StatusOr<absl::Duration> ParsePollBeforeSleep(const std::string& text) {
  absl::Duration d;
  if (!absl::ParseDuration(text, &d)) {
    return absl::InvalidArgumentError(
        absl::StrCat("PICOS_POLL_BEFORE_SLEEP=", text, " is not a duration (e.g. 0, 20us, 1ms)"));
  }
  if (d < absl::ZeroDuration() || d > absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("PICOS_POLL_BEFORE_SLEEP=", text, " is outside 0 to 1s"));
  }
  return d;
}

absl::Duration DefaultPollBeforeSleep() {
  static const absl::Duration d = [] {
    const absl::Duration kDefault = absl::Microseconds(50);
    const char* env = std::getenv("PICOS_POLL_BEFORE_SLEEP");
    if (env == nullptr) return kDefault;
    absl::StatusOr<absl::Duration> parsed = ParsePollBeforeSleep(env);
    if (parsed.ok()) return *parsed;
    PICOS_LOG(warn, "{}; polling {} before sleep instead", std::string(parsed.status().message()),
              absl::FormatDuration(kDefault));
    return kDefault;
  }();
  return d;
}

}  // namespace internal

namespace {
// Options::poll_before_sleep in nanoseconds, within [0, 1 s]: a longer
// window would only burn a core (and an infinite one overflow).
int64_t PollWindowNs(absl::Duration d) {
  return absl::ToInt64Nanoseconds(std::clamp(d, absl::ZeroDuration(), absl::Seconds(1)));
}
}  // namespace

Scheduler::Scheduler(Options options)
    : options_(std::move(options)),
      loop_(std::make_unique<uv_loop_t>()),
      async_(std::make_unique<uv_async_t>()),
      timer_(std::make_unique<uv_timer_t>()),
      poll_(options_.clock ? 0 : PollWindowNs(options_.poll_before_sleep)) {
  IgnoreSigpipe();
  index_ = ClaimIndex(this, &generation_);
  PICOS_ASSERT(uv_loop_init(loop_.get()) == 0);
  loop_->data = this;
  PICOS_ASSERT(uv_async_init(loop_.get(), async_.get(), [](uv_async_t* a) {
                 static_cast<Scheduler*>(a->data)->DrainInbox();
               }) == 0);
  async_->data = this;
  PICOS_ASSERT(uv_timer_init(loop_.get(), timer_.get()) == 0);
  timer_->data = this;
  ready_.resize(64);
  if (options_.clock) options_.clock->Attach(this);
}

Scheduler::~Scheduler() {
  Stop();
  if (!stopped()) {
    // Never run, or run in the foreground and not stopped: the tasks still
    // here are destroyed on this thread.
    PICOS_ASSERT(!running_);
    Scheduler* prev = t_scheduler;
    t_scheduler = this;
    DestroyAll();
    t_scheduler = prev;
    stopped_.store(true, std::memory_order_release);
  }
  {
    // Closed to other threads before anything a post touches goes (the
    // inbox, the async handle): a post in progress finishes first, and
    // later ones learn that the scheduler is gone. The slot itself stays
    // taken until the end, for this thread's own lookups.
    internal::SchedulerSlot& slot = internal::Slot(index_);
    absl::MutexLock lock(&slot.mu);
    slot.open = nullptr;
  }
  // After the tasks, before the loop closes: an extension may close handles
  // of its own (the thread pool's return path).
  extensions_.clear();
  // Before the async handle goes: the clock wakes members through it.
  if (options_.clock) options_.clock->Detach(this);
  uv_close(reinterpret_cast<uv_handle_t*>(async_.get()), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(timer_.get()), nullptr);
  // Let close callbacks of these and of any I/O handles closed by destroyed
  // tasks run. Handles nobody closed are reported, then closed here.
  for (int i = 0; i < 16 && uv_loop_close(loop_.get()) == UV_EBUSY; ++i) {
    if (i == 8) {
      uv_walk(
          loop_.get(),
          [](uv_handle_t* h, void*) {
            if (!uv_is_closing(h)) {
              PICOS_LOG(error, "scheduler destroyed with an open {} handle",
                        uv_handle_type_name(h->type));
              uv_close(h, nullptr);
            }
          },
          nullptr);
    }
    uv_run(loop_.get(), UV_RUN_NOWAIT);
  }
  while (free_nodes_) {
    MessageNode* n = free_nodes_;
    free_nodes_ = n->next;
    delete n;
  }
  g_schedulers[index_].store(nullptr, std::memory_order_release);
}

bool Scheduler::InLoopThread() const { return t_scheduler == this; }

size_t internal::NewExtensionKey() {
  static std::atomic<size_t> next{0};
  return next.fetch_add(1, std::memory_order_relaxed);
}

std::unique_ptr<Scheduler::Extension>& Scheduler::ExtensionSlot(size_t key) {
  if (key >= extensions_.size()) extensions_.resize(key + 1);
  return extensions_[key];
}

int64_t Scheduler::NowNs() const {
  if (options_.clock) return options_.clock->NowNs();
  return static_cast<int64_t>(uv_hrtime());
}

void Scheduler::WakeLoop() { uv_async_send(async_.get()); }

bool Scheduler::HasPosts() {
  absl::MutexLock lock(&inbox_mu_);
  return !inbox_.empty();
}

std::vector<std::string> Scheduler::OpenHandles() {
  struct Walk {
    Scheduler* self;
    std::vector<std::string> names;
  } walk{this, {}};
  uv_walk(
      loop_.get(),
      [](uv_handle_t* h, void* arg) {
        auto* w = static_cast<Walk*>(arg);
        if (h == reinterpret_cast<uv_handle_t*>(w->self->async_.get()) ||
            h == reinterpret_cast<uv_handle_t*>(w->self->timer_.get()) ||
            absl::c_linear_search(w->self->own_handles_, h)) {
          return;
        }
        w->names.push_back(uv_handle_type_name(h->type));
      },
      &walk);
  return walk.names;
}

TaskRef Scheduler::SpawnHandle(std::coroutine_handle<> h, SpawnOptions options) {
  std::string& name = options.name;
  if (!h) {
    PICOS_LOG(error, "Spawn of an empty Task (moved from, or already awaited)");
    return TaskRef();
  }
  if (stopped() || destroying_ || stop_requested_.load(std::memory_order_relaxed)) {
    PICOS_LOG(warn, "Spawn on stopped scheduler {}: task {} not started", options_.name, name);
    h.destroy();
    return TaskRef();
  }
  auto* c = new TaskCore;
  c->root = h;
  c->leaf = h;
  c->sched_index = index_;
  c->sched_gen = generation_;
  if (!name.empty()) c->Extra().name = std::move(name);
  if (options.mailbox_limit > 0) c->Extra().mailbox_room.reset(new internal::Capacity(options.mailbox_limit));
  // Counted when registered, so that a task posted from another thread is
  // a daemon from its first turn.
  if (options.daemon) c->Extra().daemon = true;
  TaskRef ref = TaskRef::Adopt((internal::Ref(c), c));
  if (InLoopThread()) {
    Register(c);
    return ref;
  }
  absl::Status posted = Post([this, p = PendingSpawn(c)]() mutable {
    if (destroying_ || (p.core->flags & internal::kFlagFinished)) {
      return;  // its destructor ends it, unless it was destroyed already
    }
    Register(p.core);
    internal::Unref(std::exchange(p.core, nullptr));  // ours; the scheduler holds its own
  });
  if (!posted.ok()) {
    // The closure, and the task with it, were destroyed: say so with a
    // null handle, as for a stopped scheduler.
    PICOS_LOG(warn, "Spawn from another thread failed: {}", posted.ToString());
    return TaskRef();
  }
  return ref;
}

void Scheduler::Register(TaskCore* c) {
  c->all_index = static_cast<uint32_t>(tasks_.size());
  tasks_.push_back(c);
  if (c->extra != nullptr && c->extra->daemon) ++daemon_count_;
  c->set_state(TaskState::kReady);
  PushReady(c);
}

void Scheduler::GrowReady() {
  // Unroll the ring into one twice as big, with the head at 0.
  std::vector<TaskCore*> bigger(ready_.size() * 2);
  for (size_t i = 0; i < ready_count_; ++i) {
    bigger[i] = ready_[(ready_head_ + i) & (ready_.size() - 1)];
  }
  ready_.swap(bigger);
  ready_head_ = 0;
}

void Scheduler::RunReady() {
  // Every task is resumed from this frame: deeper than kStackBudget below it
  // at a sub-call means the stack grows with each await (task.h).
  internal::t_stack_floor =
      static_cast<const char*>(__builtin_frame_address(0)) - internal::kStackBudget;
  for (int n = 0; n < kReadyBatch && ready_count_ > 0; ++n) {
    TaskCore* c = ready_[ready_head_];
    ready_head_ = (ready_head_ + 1) & (ready_.size() - 1);
    --ready_count_;
    if (c->load_state() != TaskState::kReady) {
      if (c->flags & internal::kFlagDestroyedWhileQueued) {
        c->flags &= ~internal::kFlagDestroyedWhileQueued;
        internal::Unref(c);  // the entry's reference (DestroyTask)
      }
      continue;
    }
    c->set_state(TaskState::kRunning);
    c->flags &= ~internal::kFlagParkedInReceive;
    internal::t_current_task = c;
    internal::t_task_parked = false;
    ++resume_count_;
    c->leaf.resume();
    internal::t_current_task = nullptr;
    if (!internal::t_task_parked) {
      // Not parked, so not finished either: `c` is alive. See t_task_parked.
      PICOS_LOG(error,
                "task {} suspended outside any picos awaiter; ending it. With g++ 12, "
                "`if ((co_await x).ok())` does this: assign the result first.",
                TaskRef::Adopt((internal::Ref(c), c)).DebugString());
      Kill(c, absl::InternalError("task suspended outside any picos awaiter (see the log)"));
    }
    while (!kills_.empty()) {
      TaskCore* k = kills_.back();
      kills_.pop_back();
      Kill(k, absl::CancelledError("task terminated"));
    }
    if (!deferred_.empty()) RunDeferred();
  }
}

void Scheduler::RunDeferred() {
  std::vector<absl::AnyInvocable<void()>> work;
  work.swap(deferred_);
  for (auto& fn : work) fn();
}

void Scheduler::ScheduleKill(TaskCore* c) { kills_.push_back(c); }

void Scheduler::DestroyTask(TaskCore* c, absl::Status why) {
  PICOS_ASSERT(c->load_state() != TaskState::kRunning);
  PICOS_ASSERT(t_scheduler == this || t_scheduler == nullptr);
  // Outside the loop (the owner's thread), the destructors that run still
  // see this scheduler as the current one, as in ~Scheduler.
  Scheduler* prev = t_scheduler;
  t_scheduler = this;
  if (!destroying_ && c->load_state() == TaskState::kReady &&
      c->all_index != internal::kNotRegistered) {
    // Queued in the ready ring, which holds a bare pointer: the entry keeps
    // the core alive until RunReady passes it. (An unregistered task waits
    // in the inbox instead, which holds its own reference; while
    // destroying, the ring is dropped unread.)
    internal::Ref(c);
    c->flags |= internal::kFlagDestroyedWhileQueued;
  }
  Kill(c, std::move(why));
  t_scheduler = prev;
}

void Scheduler::Kill(TaskCore* c, absl::Status why) {
  if (c->flags & internal::kFlagFinished) return;
  RemoveTimer(c);
  std::coroutine_handle<> root = std::exchange(c->root, {});
  c->leaf = {};
  c->set_state(TaskState::kRunning);
  if (root) {
    // Destructors of the task's locals may use picos (send a last message):
    // they run as the task.
    TaskCore* prev = internal::t_current_task;
    internal::t_current_task = c;
    root.destroy();
    internal::t_current_task = prev;
  }
  Finish(c, std::move(why), Value());
}

void Scheduler::Finish(TaskCore* c, absl::Status status, Value value) {
  PICOS_ASSERT(!(c->flags & internal::kFlagFinished));
  c->flags |= internal::kFlagFinished;
  RemoveTimer(c);
  // Undelivered messages go with the task.
  uint32_t dropped = 0;
  if (c->mbox_tail) {
    MessageNode* head = c->mbox_tail->next;
    c->mbox_tail->next = nullptr;
    c->mbox_tail = nullptr;
    while (head) {
      MessageNode* next = head->next;
      FreeNode(head);
      head = next;
      ++dropped;
    }
  }
  if (internal::Capacity* room = internal::MailboxRoom(c); room != nullptr) {
    // Senders waiting for room retry, and learn that the task has ended.
    if (dropped > 0) room->Give(dropped);
    room->WakeAll();
  }
  if (!status.ok() && status.code() != absl::StatusCode::kCancelled &&
      !(c->extra != nullptr && c->extra->error_reported)) {
    PICOS_LOG(info, "task {} ended with error: {}", TaskRef::Adopt((internal::Ref(c), c)).DebugString(),
              status.ToString());
  }
  std::vector<internal::WaitToken> joiners;
  std::vector<absl::AnyInvocable<void(TaskCore*)>> hooks;
  if (!status.ok() || !value.is_null() || c->extra) {
    internal::TaskExtra& x = c->Extra();
    x.result_status = std::move(status);
    x.result_value = std::move(value);
    joiners.swap(x.joiners);
    hooks.swap(x.finish_hooks);
    x.resume_value = Value();
    if (x.hot_swap) {
      // A swap still pending fails; the swap state (and what it captured)
      // goes with the task.
      std::unique_ptr<internal::HotSwapHooks> hot_swap = std::move(x.hot_swap);
      hot_swap->TaskEnded(c);
    }
  }
  c->set_state(TaskState::kDone);
  if (c->all_index != internal::kNotRegistered) {
    if (c->extra != nullptr && c->extra->daemon) --daemon_count_;
    TaskCore* last = tasks_.back();
    tasks_[c->all_index] = last;
    last->all_index = c->all_index;
    tasks_.pop_back();
    c->all_index = internal::kNotRegistered;
  }
  for (const internal::WaitToken& j : joiners) internal::WakeToken(j, internal::kWakeEvent);
  for (auto& hook : hooks) hook(c);
  internal::Unref(c);  // the scheduler's reference
}

void Scheduler::DestroyAll() {
  // Entries of tasks destroyed while queued hold a reference; every entry
  // still points to a live core here.
  for (size_t i = 0; i < ready_count_; ++i) {
    TaskCore* c = ready_[(ready_head_ + i) & (ready_.size() - 1)];
    if (c->flags & internal::kFlagDestroyedWhileQueued) {
      c->flags &= ~internal::kFlagDestroyedWhileQueued;
      internal::Unref(c);
    }
  }
  ready_count_ = 0;
  ready_head_ = 0;
  destroying_ = true;
  DrainInbox();
  kills_.clear();
  deferred_.clear();
  while (!tasks_.empty()) {
    Kill(tasks_.back(), absl::CancelledError("scheduler stopped"));
  }
  // Closures queued while destroying (a destructor's Post) are dropped now.
  DrainInbox();
  ready_count_ = 0;
  ready_head_ = 0;
  timers_.clear();
  destroying_ = false;
}

absl::Status Scheduler::Post(absl::AnyInvocable<void()> fn) { return PostOrKeep(fn); }

absl::Status Scheduler::PostOrKeep(absl::AnyInvocable<void()>& fn) {
  if (stopped()) return absl::FailedPreconditionError("scheduler has stopped");
  bool full = false;
  auto push = [this, &fn, &full] {
    absl::MutexLock lock(&inbox_mu_);
    full = inbox_.size() >= options_.inbox_limit;
    if (!full) inbox_.push_back(std::move(fn));
    return !full;
  };
  if (options_.clock && options_.clock->mode() == VirtualClock::kSimulated) {
    // A simulated clock must not jump past work that waits here.
    options_.clock->PostTo(this, push);
  } else {
    push();
  }
  if (full) {
    return absl::ResourceExhaustedError(
        absl::StrCat("scheduler inbox full (", options_.inbox_limit, " closures)"));
  }
  uv_async_send(async_.get());
  return absl::OkStatus();
}

void Scheduler::DrainInbox() {
  std::vector<absl::AnyInvocable<void()>> work;
  {
    absl::MutexLock lock(&inbox_mu_);
    work.swap(inbox_);
  }
  for (auto& fn : work) {
    if (!destroying_) fn();
  }
}

// --- timers: a binary heap of (deadline, task), each task knowing its slot,
// so that a wait that ends before its timeout removes it in O(log n). ---


void Scheduler::AddTimer(TaskCore* c, absl::Duration timeout) {
  int64_t now = NowNs();
  int64_t deadline;
  if (timeout <= absl::ZeroDuration()) {
    deadline = now;
  } else if (timeout >= absl::Hours(24 * 365 * 100)) {
    return;  // effectively forever
  } else {
    deadline = now + absl::ToInt64Nanoseconds(timeout);
  }
  if (c->timer_index != internal::kNoTimer) TimerRemoveAt(c->timer_index);
  c->timer_index = static_cast<uint32_t>(timers_.size());
  timers_.push_back({deadline, c});
  TimerSiftUp(c->timer_index);
}

void Scheduler::RemoveTimer(TaskCore* c) {
  if (c->timer_index != internal::kNoTimer) TimerRemoveAt(c->timer_index);
}

void Scheduler::TimerSwap(uint32_t a, uint32_t b) {
  std::swap(timers_[a], timers_[b]);
  timers_[a].core->timer_index = a;
  timers_[b].core->timer_index = b;
}

void Scheduler::TimerSiftUp(uint32_t i) {
  while (i > 0) {
    uint32_t parent = (i - 1) / 2;
    if (timers_[parent].deadline_ns <= timers_[i].deadline_ns) break;
    TimerSwap(i, parent);
    i = parent;
  }
}

void Scheduler::TimerSiftDown(uint32_t i) {
  const uint32_t n = static_cast<uint32_t>(timers_.size());
  for (;;) {
    uint32_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && timers_[l].deadline_ns < timers_[m].deadline_ns) m = l;
    if (r < n && timers_[r].deadline_ns < timers_[m].deadline_ns) m = r;
    if (m == i) break;
    TimerSwap(i, m);
    i = m;
  }
}

void Scheduler::TimerRemoveAt(uint32_t i) {
  TaskCore* c = timers_[i].core;
  uint32_t last = static_cast<uint32_t>(timers_.size()) - 1;
  if (i != last) {
    TimerSwap(i, last);
    timers_.pop_back();
    TimerSiftDown(i);
    TimerSiftUp(i);
  } else {
    timers_.pop_back();
  }
  c->timer_index = internal::kNoTimer;
}

void Scheduler::ExpireTimers(int64_t now_ns) {
  while (!timers_.empty() && timers_[0].deadline_ns <= now_ns) {
    TaskCore* c = timers_[0].core;
    TimerRemoveAt(0);
    internal::Wake(c, internal::kWakeTimeout);
  }
}

void Scheduler::ArmTimer() {
  if (timers_.empty()) {
    if (armed_deadline_ns_ >= 0) {
      uv_timer_stop(timer_.get());
      armed_deadline_ns_ = -1;
    }
    return;
  }
  int64_t deadline = timers_[0].deadline_ns;
  if (deadline == armed_deadline_ns_) return;
  armed_deadline_ns_ = deadline;
  uv_update_time(loop_.get());
  int64_t now = static_cast<int64_t>(uv_hrtime());
  int64_t delay_ms = deadline > now ? (deadline - now + 999999) / 1000000 : 0;
  uv_timer_start(
      timer_.get(),
      [](uv_timer_t* t) {
        auto* s = static_cast<Scheduler*>(t->data);
        s->armed_deadline_ns_ = -1;
        s->timer_fired_ = true;
        s->ExpireTimers(static_cast<int64_t>(uv_hrtime()));
        // libuv counts in whole milliseconds and may fire a little before
        // our nanosecond deadline: re-arm for what is left, so that the loop
        // never sees a pending deadline without an active timer.
        s->ArmTimer();
      },
      static_cast<uint64_t>(delay_ms), 0);
}

// --- messages ---

MessageNode* Scheduler::NewNode(Value v) {
  MessageNode* n = free_nodes_;
  if (n) {
    free_nodes_ = n->next;
    --free_node_count_;
    n->value = std::move(v);
  } else {
    n = new MessageNode{nullptr, std::move(v)};
  }
  return n;
}

void Scheduler::FreeNode(MessageNode* n) {
  n->value = Value();
  if (free_node_count_ >= options_.message_cache) {
    delete n;
    return;
  }
  n->next = free_nodes_;
  free_nodes_ = n;
  ++free_node_count_;
}

absl::Status Scheduler::DeliverLocal(TaskCore* c, Value message, bool reserved) {
  if (c->flags & internal::kFlagFinished) {
    if (reserved) internal::MailboxRoom(c)->Give();
    return absl::FailedPreconditionError("send to a task that has ended");
  }
  if (internal::Capacity* room = internal::MailboxRoom(c); room != nullptr && !reserved) {
    if (!room->TryTake()) [[unlikely]] {
      return absl::ResourceExhaustedError(
          absl::StrCat("mailbox of task ", TaskRef::Adopt((internal::Ref(c), c)).DebugString(),
                       " is full (", room->limit(), " messages)"));
    }
  }
  MessageNode* n = NewNode(std::move(message));
  if (c->mbox_tail == nullptr) {
    n->next = n;
  } else {
    n->next = c->mbox_tail->next;
    c->mbox_tail->next = n;
  }
  c->mbox_tail = n;
  if (c->load_state() == TaskState::kReceiving) internal::SchedulerHooks::MakeReady(*this, c, internal::kWakeEvent);
  return absl::OkStatus();
}

// --- running ---

absl::Status Scheduler::Loop(const std::function<bool()>& done, bool wait_for_posts) {
  if (running_) return absl::FailedPreconditionError("the scheduler's loop is already running");
  if (stopped()) return absl::FailedPreconditionError("scheduler has stopped");
  if (t_scheduler != nullptr && t_scheduler != this) {
    return absl::FailedPreconditionError("another scheduler runs on this thread");
  }
  running_ = true;
  if (options_.clock) options_.clock->LoopStarts(this);
  Scheduler* prev = t_scheduler;
  t_scheduler = this;
  loop_thread_.store(std::this_thread::get_id());
  // In the foreground nothing but our own tasks can wake the loop, so a
  // loop with nothing alive is a deadlock; with a thread of its own, other
  // threads may post at any time and the inbox keeps it alive.
  if (wait_for_posts) {
    uv_ref(reinterpret_cast<uv_handle_t*>(async_.get()));
  } else {
    uv_unref(reinterpret_cast<uv_handle_t*>(async_.get()));
  }
  absl::Status result;
  DrainInbox();
  for (;;) {
    RunReady();
    if (stop_requested_.load(std::memory_order_relaxed) || done()) break;
    if (!timers_.empty()) ExpireTimers(NowNs());
    if (ready_count_ > 0) {
      uv_run(loop_.get(), UV_RUN_NOWAIT);
      continue;
    }
    if (options_.clock) {
      if (!WaitVirtual(wait_for_posts, &result)) break;
      continue;
    }
    if (const int64_t budget = poll_.Budget(); budget > 0 && PollBeforeSleeping(budget)) continue;
    ArmTimer();
    // Only the inbox can wake a task that waits for another thread, or for
    // work on another thread (a thread-pool job) that posts back.
    const bool hold = external_waits_ > 0 || external_work_.load(std::memory_order_acquire) > 0;
    if (!wait_for_posts) {
      if (hold) {
        uv_ref(reinterpret_cast<uv_handle_t*>(async_.get()));
      } else {
        uv_unref(reinterpret_cast<uv_handle_t*>(async_.get()));
      }
    }
    // How long the wait lasts matters only to a loop that may poll.
    const bool learn = poll_.window_ns() > 0;
    const uint64_t sleep_start = learn ? uv_hrtime() : 0;
    timer_fired_ = false;
    int alive = uv_run(loop_.get(), UV_RUN_ONCE);
    // Woken by traffic, not by a deadline: what polling before the next
    // wait could have caught.
    if (learn && ready_count_ > 0 && !timer_fired_) {
      poll_.Woken(static_cast<int64_t>(uv_hrtime() - sleep_start));
    }
    if (!alive && ready_count_ == 0 && timers_.empty() && !done() &&
        !stop_requested_.load(std::memory_order_relaxed)) {
      bool inbox_empty;
      {
        absl::MutexLock lock(&inbox_mu_);
        inbox_empty = inbox_.empty();
      }
      if (inbox_empty) {
        result = absl::FailedPreconditionError(absl::StrCat(
            "deadlock: ", tasks_.size(), " task(s) wait and nothing can wake them"));
        break;
      }
      DrainInbox();
    }
  }
  bool stopping = stop_requested_.load(std::memory_order_relaxed);
  if (stopping) DestroyAll();
  if (options_.clock) options_.clock->LoopEnds(this);
  loop_thread_.store(std::thread::id());
  t_scheduler = prev;
  running_ = false;
  if (stopping) stopped_.store(true, std::memory_order_release);
  return result;
}

bool Scheduler::PollBeforeSleeping(int64_t budget_ns) {
  // The scheduler's deadlines are on uv_hrtime() here (no virtual clock).
  const int64_t start = static_cast<int64_t>(uv_hrtime());
  int64_t until = start + budget_ns;
  if (!timers_.empty()) until = std::min(until, timers_[0].deadline_ns);
  bool found = false;
  for (int64_t now = start; now < until; now = static_cast<int64_t>(uv_hrtime())) {
    uv_run(loop_.get(), UV_RUN_NOWAIT);
    if (ready_count_ > 0 || stop_requested_.load(std::memory_order_relaxed)) {
      found = true;
      break;
    }
    // Polite: a thread or process that has work for this core gets it
    // (the job thread of a compute worker, a peer on a busy machine); the
    // poll goes on only with a core nobody else wants.
    sched_yield();
  }
  const int64_t now = static_cast<int64_t>(uv_hrtime());
  // A deadline that came within the window is work found too: the loop
  // expires it now instead of arming a timer for it.
  if (!found && !timers_.empty() && timers_[0].deadline_ns <= now) found = true;
  poll_.Polled(found, now - start);
  return found;
}

// Under a virtual clock no libuv timer is armed: pending deadlines wait for
// the clock. One step: poll I/O; if nothing is to be done, let a simulated
// clock jump, or block until I/O, a post or the clock wakes the loop.
bool Scheduler::WaitVirtual(bool wait_for_posts, absl::Status* result) {
  VirtualClock& clock = *options_.clock;
  uv_run(loop_.get(), UV_RUN_NOWAIT);
  if (ready_count_ > 0) return true;
  if (HasPosts()) {
    DrainInbox();
    return true;
  }
  // Advanced meanwhile, from another thread.
  if (!timers_.empty() && timers_[0].deadline_ns <= clock.NowNs()) return true;
  const bool external = external_work_.load(std::memory_order_acquire) > 0;
  // Requests in flight (a write, a connect, a file operation) and work on
  // other threads complete on their own: time must not jump past them. (A
  // task waiting for another scheduler is no such work: if that scheduler
  // shares the clock, the clock waits for it to be idle; if not, its time
  // is not this clock's.)
  const bool in_flight = external || loop_->active_reqs.count > 0;
  VirtualClock::Step step = VirtualClock::Step::kWait;
  if (clock.mode() == VirtualClock::kSimulated && !in_flight) {
    step = clock.Idle(this, timers_.empty() ? -1 : timers_[0].deadline_ns, resume_count_);
    if (step == VirtualClock::Step::kJumped || step == VirtualClock::Step::kBusy) return true;
  }
  // Block. In the foreground the inbox's async handle does not keep the
  // loop alive (a loop with nothing alive is a deadlock), unless a post or
  // a wake from the clock may still come: pool work, or another scheduler
  // running on the clock (it may advance it, jump, or send).
  const bool hold = !wait_for_posts &&
                    (external || external_waits_ > 0 ||
                     (step != VirtualClock::Step::kNoTimers && clock.OthersRunning(this)));
  if (hold) uv_ref(reinterpret_cast<uv_handle_t*>(async_.get()));
  int alive = uv_run(loop_.get(), UV_RUN_ONCE);
  if (hold) uv_unref(reinterpret_cast<uv_handle_t*>(async_.get()));
  if (clock.mode() == VirtualClock::kSimulated) clock.Busy(this);
  if (alive || hold || wait_for_posts || ready_count_ > 0 ||
      stop_requested_.load(std::memory_order_relaxed)) {
    return true;
  }
  if (HasPosts()) {
    DrainInbox();
    return true;
  }
  if (!timers_.empty() && timers_[0].deadline_ns <= clock.NowNs()) return true;
  if (timers_.empty()) {
    *result = absl::FailedPreconditionError(absl::StrCat(
        "deadlock: ", tasks_.size(), " task(s) wait and nothing can wake them"));
  } else {
    *result = absl::FailedPreconditionError(absl::StrCat(
        "deadlock: ", tasks_.size(), " task(s) wait and nothing can wake them: ", timers_.size(),
        " timeout(s) wait for virtual time that nobody advances"));
  }
  return false;
}

absl::Status Scheduler::Run() {
  for (;;) {
    absl::Status s = Loop([this] { return tasks_.size() == daemon_count_; }, false);
    if (!s.ok() || stopped() || tasks_.empty()) return s;
    // Only daemons are left: they end with the program.
    EndDaemons();
    // A daemon's destructor may have started a task that is not one; it
    // runs to its end like any other.
    if (tasks_.empty()) return s;
  }
}

void Scheduler::EndDaemons() {
  Scheduler* prev = t_scheduler;
  t_scheduler = this;  // their destructors run on this scheduler, as at Stop
  // Kill removes its task from tasks_ by moving the last one into its slot,
  // so walking down from the end meets every task once.
  for (size_t i = tasks_.size(); i-- > 0;) {
    if (i >= tasks_.size()) continue;
    TaskCore* c = tasks_[i];
    if (c->extra != nullptr && c->extra->daemon) {
      Kill(c, absl::CancelledError("daemon task ended with its program"));
    }
  }
  while (!kills_.empty()) {
    TaskCore* k = kills_.back();
    kills_.pop_back();
    Kill(k, absl::CancelledError("task terminated"));
  }
  t_scheduler = prev;
}

absl::Status SetDaemon(const TaskRef& task, bool daemon) {
  if (!task.valid()) return absl::InvalidArgumentError("SetDaemon of a null TaskRef");
  TaskCore* c = task.core();
  Scheduler* s = c->scheduler();
  if (s == nullptr || !s->InLoopThread()) {
    return absl::FailedPreconditionError(
        absl::StrCat("SetDaemon of ", task.DebugString(), " off its scheduler's thread"));
  }
  if (c->flags & internal::kFlagFinished) {
    return absl::FailedPreconditionError(absl::StrCat("task ", task.DebugString(), " has ended"));
  }
  bool was = c->extra != nullptr && c->extra->daemon;
  if (was == daemon) return absl::OkStatus();
  c->Extra().daemon = daemon;
  if (c->all_index != internal::kNotRegistered) {
    if (daemon) {
      ++s->daemon_count_;
    } else {
      --s->daemon_count_;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Value> Scheduler::RunUntil(const TaskRef& task) {
  if (!task.valid()) return absl::InvalidArgumentError("RunUntil of a null task");
  if (task.core()->scheduler() != this) {
    return absl::InvalidArgumentError("RunUntil of a task of another scheduler");
  }
  TaskCore* c = task.core();
  absl::Status s = Loop([c] { return c->load_state() == TaskState::kDone; }, false);
  if (!s.ok()) return s;
  if (c->load_state() != TaskState::kDone) {
    return absl::CancelledError("scheduler stopped before the task ended");
  }
  if (!c->extra) return Value();
  if (!c->extra->result_status.ok()) return c->extra->result_status;
  return c->extra->result_value;
}

absl::Status Scheduler::StartThread() {
  if (thread_.joinable() || running_) {
    return absl::FailedPreconditionError("the scheduler's loop is already running");
  }
  if (stopped()) return absl::FailedPreconditionError("scheduler has stopped");
  absl::Notification started;
  // Running on the clock from now: work posted before the thread gets going
  // must hold a simulated clock still.
  if (options_.clock) options_.clock->LoopStarts(this);
  thread_ = std::thread([this, &started] {
    // Loop() sets the loop thread before it runs anything; signal after the
    // thread exists so that Stop() always has something to join.
    started.Notify();
    absl::Status s = Loop([] { return false; }, true);
    if (!s.ok()) PICOS_LOG(error, "scheduler {} ended: {}", options_.name, s.ToString());
    if (options_.clock) options_.clock->LoopEnds(this);
  });
  started.WaitForNotification();
  return absl::OkStatus();
}

void Scheduler::Stop() {
  stop_requested_.store(true, std::memory_order_release);
  if (!stopped()) uv_async_send(async_.get());
  if (thread_.joinable() && std::this_thread::get_id() != thread_.get_id()) {
    thread_.join();
  }
}

namespace {
Task<> JoinAndNotify(TaskRef target, std::shared_ptr<absl::StatusOr<Value>> out,
                     std::shared_ptr<absl::Notification> done) {
  // Notifies however this ends: joined, or destroyed when the scheduler stops.
  struct NotifyOnExit {
    absl::Notification* n;
    ~NotifyOnExit() { n->Notify(); }
  } notify{done.get()};
  *out = co_await target.Join();
}
}  // namespace

absl::StatusOr<Value> Scheduler::WaitFor(const TaskRef& task, absl::Duration timeout) {
  if (!task.valid()) return absl::InvalidArgumentError("WaitFor of a null task");
  if (InLoopThread()) {
    return absl::FailedPreconditionError("WaitFor would block the scheduler's own thread");
  }
  auto out = std::make_shared<absl::StatusOr<Value>>(
      absl::CancelledError("scheduler stopped before the task ended"));
  auto done = std::make_shared<absl::Notification>();
  PICOS_RETURN_IF_ERROR(Post([this, task, out, done] { Spawn(JoinAndNotify(task, out, done)); }));
  if (!done->WaitForNotificationWithTimeout(timeout)) {
    return absl::DeadlineExceededError("WaitFor timed out");
  }
  return *out;
}

}  // namespace picos
