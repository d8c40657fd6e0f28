#include "core/remote/kj_on_uv_internal.h"

#include <uv.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/kernel/status.h"

namespace picos::internal {

absl::Status StatusFromKj(const kj::Exception& e) {
  std::string what(e.getDescription().cStr());
  switch (e.getType()) {
    case kj::Exception::Type::DISCONNECTED:
      return absl::UnavailableError(what);
    case kj::Exception::Type::OVERLOADED:
      return absl::ResourceExhaustedError(what);
    case kj::Exception::Type::UNIMPLEMENTED:
      return absl::UnimplementedError(what);
    default:
      return absl::UnknownError(what);
  }
}

struct KjOnUv::Handles {
  uv_idle_t idle;
  uv_timer_t timer;
  int open = 2;
  KjOnUv* owner;
};

namespace {

kj::TimePoint Now() { return kj::systemPreciseMonotonicClock().now(); }

void OnClosed(uv_handle_t* h) {
  auto* handles = static_cast<KjOnUv::Handles*>(h->data);
  if (--handles->open == 0) delete handles;
}

}  // namespace

KjOnUv::KjOnUv(Scheduler& scheduler)
    : handles_(new Handles), timer_(Now()), loop_(*this), wait_scope_(loop_) {
  handles_->owner = this;
  uv_loop_t* uv = scheduler.uv_loop();
  PICOS_ASSERT(uv_idle_init(uv, &handles_->idle) == 0);
  PICOS_ASSERT(uv_timer_init(uv, &handles_->timer) == 0);
  handles_->idle.data = handles_;
  handles_->timer.data = handles_;
}

KjOnUv::~KjOnUv() noexcept(false) {
  handles_->owner = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&handles_->idle), OnClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&handles_->timer), OnClosed);
}

void KjOnUv::OnIdle(void* self) { static_cast<KjOnUv*>(self)->Run(); }

void KjOnUv::OnTimer(void* self) { static_cast<KjOnUv*>(self)->Run(); }

void KjOnUv::Advance() { timer_.advanceTo(Now()); }

void KjOnUv::Run() {
  if (running_) return;
  running_ = true;
  Advance();  // fires the kj timers that are due: their promises become ready
  // A bounded batch, so that libuv's I/O and picos's tasks get their turn;
  // the idle handle brings us back at once if kj has more.
  for (unsigned i = 0; i < kMaxTurnsPerCallback && loop_.isRunnable(); ++i) {
    loop_.run(1);
    ++turns_;
  }
  running_ = false;
  ArmTimer();
}

void KjOnUv::ArmTimer() {
  if (handles_ == nullptr || handles_->owner == nullptr) return;
  uv_timer_t* t = &handles_->timer;
  KJ_IF_MAYBE(next, timer_.nextEvent()) {
    const kj::Duration left = *next - Now();
    uint64_t ms = left <= 0 * kj::NANOSECONDS ? 0 : (left + 999999 * kj::NANOSECONDS) / kj::MILLISECONDS;
    uv_timer_start(
        t, [](uv_timer_t* h) { KjOnUv::OnTimer(static_cast<Handles*>(h->data)->owner); }, ms, 0);
  } else {
    uv_timer_stop(t);
  }
}

kj::Promise<void> KjOnUv::AfterDelay(absl::Duration d) {
  Advance();
  kj::Promise<void> p = timer_.atTime(Now() + absl::ToInt64Nanoseconds(d) * kj::NANOSECONDS);
  ArmTimer();  // now: uv_run must see the timer before it decides the loop is idle
  return p;
}

bool KjOnUv::wait() {
  // Aborts rather than throwing: kj's waitImpl is not left in a usable state
  // by an exception from here (its thread's loop is no longer current).
  std::fprintf(stderr,
               "picos: promise.wait() on a picos scheduler's thread would re-enter uv_run, which "
               "is not reentrant: co_await AwaitKj(promise) from a task instead\n");
  std::abort();
}

bool KjOnUv::poll() { return false; }

void KjOnUv::setRunnable(bool runnable) {
  if (handles_->owner == nullptr) return;
  uv_idle_t* idle = &handles_->idle;
  if (runnable) {
    uv_idle_start(idle, [](uv_idle_t* h) { KjOnUv::OnIdle(static_cast<Handles*>(h->data)->owner); });
  } else {
    uv_idle_stop(idle);  // else uv_run never blocks (docs/pitfalls.md)
  }
}

void KjOnUv::wake() const {
  // Only kj's cross-thread executor calls this; it is not served here.
}

Task<absl::Status> AwaitKjVoid(kj::Promise<void> promise) {
  absl::StatusOr<bool> r = co_await AwaitKj(promise.then([] { return true; }));
  co_return r.status();
}

// --- KjStream ---

KjStream::KjStream(std::unique_ptr<Stream> stream)
    : stream_(std::move(stream)), tasks_(ThisScheduler(), TaskGroup::Options{.name = "kj-stream"}) {}

KjStream::~KjStream() noexcept(false) {}

namespace {

Task<absl::Status> ReadInto(Stream* s, kj::Own<kj::PromiseFulfiller<size_t>> f, void* buffer,
                            size_t min_bytes, size_t max_bytes) {
  std::string buf(max_bytes, '\0');
  absl::StatusOr<size_t> n = co_await s->ReadSome(buf.data(), min_bytes, max_bytes);
  if (!f->isWaiting()) co_return absl::OkStatus();  // cancelled: kj's buffer may be gone
  if (!n.ok()) {
    // The end of a closed stream reads as the end, as kj expects of a socket.
    if (absl::IsFailedPrecondition(n.status())) {
      f->fulfill(0);
    } else {
      f->reject(KJ_EXCEPTION(DISCONNECTED, "picos stream read failed", n.status().ToString()));
    }
    co_return absl::OkStatus();
  }
  std::memcpy(buffer, buf.data(), *n);
  f->fulfill(size_t{*n});
  co_return absl::OkStatus();
}

Task<absl::Status> WriteFrom(Stream* s, kj::Own<kj::PromiseFulfiller<void>> f, std::string bytes) {
  absl::Status w = co_await s->Write(std::move(bytes));
  if (!f->isWaiting()) co_return absl::OkStatus();
  if (w.ok()) {
    f->fulfill();
  } else {
    f->reject(KJ_EXCEPTION(DISCONNECTED, "picos stream write failed", w.ToString()));
  }
  co_return absl::OkStatus();
}

Task<absl::Status> ShutdownWrite(Stream* s) {
  co_return co_await s->Shutdown();
}

}  // namespace

kj::Promise<size_t> KjStream::tryRead(void* buffer, size_t min_bytes, size_t max_bytes) {
  if (max_bytes == 0) return size_t{0};
  if (min_bytes == 0) min_bytes = 1;
  auto paf = kj::newPromiseAndFulfiller<size_t>();
  absl::StatusOr<TaskRef> t = tasks_.SpawnNamed("kj-read", ReadInto, stream_.get(),
                                                kj::mv(paf.fulfiller), buffer, min_bytes, max_bytes);
  if (!t.ok()) return KJ_EXCEPTION(DISCONNECTED, "picos stream closing", t.status().ToString());
  return kj::mv(paf.promise);
}

kj::Promise<void> KjStream::WriteBytes(std::string bytes) {
  auto paf = kj::newPromiseAndFulfiller<void>();
  absl::StatusOr<TaskRef> t =
      tasks_.SpawnNamed("kj-write", WriteFrom, stream_.get(), kj::mv(paf.fulfiller), std::move(bytes));
  if (!t.ok()) return KJ_EXCEPTION(DISCONNECTED, "picos stream closing", t.status().ToString());
  return kj::mv(paf.promise);
}

kj::Promise<void> KjStream::write(const void* buffer, size_t size) {
  if (size == 0) return kj::READY_NOW;
  return WriteBytes(std::string(static_cast<const char*>(buffer), size));
}

kj::Promise<void> KjStream::write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) {
  std::string bytes;
  for (auto piece : pieces) bytes.append(reinterpret_cast<const char*>(piece.begin()), piece.size());
  if (bytes.empty()) return kj::READY_NOW;
  return WriteBytes(std::move(bytes));
}

kj::Promise<void> KjStream::whenWriteDisconnected() { return kj::NEVER_DONE; }

void KjStream::shutdownWrite() { (void)tasks_.SpawnNamed("kj-shutdown", ShutdownWrite, stream_.get()); }

void KjStream::abortRead() { stream_->Close(); }

}  // namespace picos::internal
