// UvRequest: the one way a task awaits a single libuv request (uv_fs_t,
// uv_connect_t, uv_write_t, uv_shutdown_t, uv_udp_send_t, uv_getaddrinfo_t),
// modelled on kj's newAdaptedPromise: the waiter owns the operation, and
// destroying the waiter cancels it. Not part of the public API.
//
//   UvRequest<uv_fs_t> op;
//   PICOS_CO_RETURN_IF_ERROR(
//       op.Started(uv_fs_fsync(loop, op.req(), fd, op.callback()), "fsync"));
//   PICOS_CO_RETURN_IF_ERROR(co_await op.Wait(deadline));
//   co_return UvStatus(op.result(), "fsync");
//
// Ownership. The libuv request lives in a heap block, never in a coroutine
// frame, shared by the UvRequest (in the waiting task's frame) and libuv.
// When the UvRequest goes (the call returned after its deadline, the task
// was terminated, its frame destroyed with its scheduler) before the
// completion, the request is cancelled where libuv can (uv_cancel: a
// thread-pool request that has not started) and otherwise orphaned: its
// completion callback then runs the payload's hook and frees the block,
// touching nothing else. libuv calls every request back exactly once (at
// the latest with UV_ECANCELED when its handle closes), so nothing leaks.
//
// The payload carries what the operation needs while in flight (buffers, a
// reference on the object it belongs to); its optional hook
//
//   void OnComplete(Req& req, ssize_t result, bool orphaned);
//
// runs in the completion callback, waiter or not, before the waiter is
// woken: the place to update the owning object (a file's position, a
// stream's write queue) or to undo what no waiter will take (close the
// descriptor of an open nobody waits for).
//
// Scheduler thread only: construct, start and await a UvRequest on the
// thread of the loop the request is submitted to.
#ifndef PICOS_CORE_IO_UV_REQUEST_INTERNAL_H_
#define PICOS_CORE_IO_UV_REQUEST_INTERNAL_H_

#include <sys/types.h>
#include <uv.h>

#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "core/io/io_internal.h"
#include "core/kernel/status.h"

namespace picos::internal {

// A payload for requests that need nothing kept alive.
struct NoPayload {};

template <typename Req, typename Payload = NoPayload>
class UvRequest {
 public:
  // The payload is constructed from `args`.
  template <typename... Args>
  explicit UvRequest(Args&&... args) : b_(new Block(std::forward<Args>(args)...)) {}
  // Frees the request, or hands it to its callback if it is in flight
  // (cancelling it where libuv can).
  ~UvRequest() { Release(/*cancel=*/true); }
  UvRequest(const UvRequest&) = delete;
  UvRequest& operator=(const UvRequest&) = delete;

  // What to pass to the libuv call that submits it.
  Req* req() { return &b_->req; }
  static constexpr auto callback() {
    if constexpr (std::is_same_v<Req, uv_fs_t>) {
      return +[](uv_fs_t* r) { Finish(r, r->result); };
    } else if constexpr (std::is_same_v<Req, uv_getaddrinfo_t>) {
      // The list stays in r->addrinfo until the block goes.
      return +[](uv_getaddrinfo_t* r, int status, struct addrinfo*) { Finish(r, status); };
    } else {
      return +[](Req* r, int status) { Finish(r, status); };
    }
  }
  Payload& payload() { return b_->payload; }

  // Call with the libuv call's return code, at once. An error means libuv
  // will not call back (its rule): gives it as a status naming `what`.
  absl::Status Started(int rc, const char* what) {
    if (rc < 0) return UvStatus(rc, what);
    b_->started = true;
    return absl::OkStatus();
  }

  // Waits for the completion: OK once it came (result() holds it), else
  // kDeadlineExceeded with the request still in flight, kCancelled or the
  // thrown error. Suspends the task.
  SlotAwaiter Wait(const Deadline& deadline) {
    PICOS_ASSERT(b_->started);
    return b_->completion.Wait(deadline);
  }

  bool done() const { return b_->completion.done(); }
  // libuv's result: the callback's status, or a uv_fs_t's result (bytes,
  // a descriptor, or a negative error). Valid once done().
  ssize_t result() const {
    PICOS_ASSERT(b_->completion.done());
    return b_->result;
  }

  // Lets a started request run on with no waiter, as if orphaned: the hook
  // sees it complete and the block is freed then (a stream's writes, which
  // the writer does not await one by one).
  void Detach() {
    PICOS_ASSERT(b_->started);
    Release(/*cancel=*/false);
  }

 private:
  struct Block {
    template <typename... Args>
    explicit Block(Args&&... args) : payload(std::forward<Args>(args)...) { req.data = this; }
    ~Block() {
      // What libuv allocated for the request is the requester's to free.
      if constexpr (std::is_same_v<Req, uv_fs_t>) uv_fs_req_cleanup(&req);
      if constexpr (std::is_same_v<Req, uv_getaddrinfo_t>) uv_freeaddrinfo(req.addrinfo);
    }
    Req req{};
    Payload payload;
    ssize_t result = 0;
    bool started = false;
    bool orphaned = false;
    Completion completion;
  };

  // Thread-pool requests that have not started yet can be cancelled; the
  // others (socket requests) complete when their handle closes at the latest.
  static constexpr bool kCancellable =
      std::is_same_v<Req, uv_fs_t> || std::is_same_v<Req, uv_getaddrinfo_t> ||
      std::is_same_v<Req, uv_work_t>;

  static void Finish(Req* req, ssize_t result) {
    Block* b = static_cast<Block*>(req->data);
    b->result = result;
    if constexpr (requires { b->payload.OnComplete(*req, result, b->orphaned); }) {
      b->payload.OnComplete(*req, result, b->orphaned);
    }
    if (b->orphaned) {
      delete b;
    } else {
      b->completion.Complete();
    }
  }

  // Frees the block, or leaves it to the callback (and cancels the request
  // if asked and libuv can).
  void Release(bool cancel) {
    Block* b = std::exchange(b_, nullptr);
    if (b == nullptr) return;
    if (!b->started || b->completion.done()) {
      delete b;
      return;
    }
    b->orphaned = true;
    if constexpr (kCancellable) {
      if (!cancel) return;
      // Fails harmlessly (UV_EBUSY) once the request runs; either way the
      // callback comes, on a later turn of the loop, and frees the block.
      (void)uv_cancel(reinterpret_cast<uv_req_t*>(&b->req));
    }
  }

  Block* b_;
};

}  // namespace picos::internal

#endif  // PICOS_CORE_IO_UV_REQUEST_INTERNAL_H_
