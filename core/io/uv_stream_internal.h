// The one engine for byte streams over libuv stream handles (uv_tcp_t,
// uv_pipe_t): read-ahead bounded by StreamOptions::max_read_buffer, writes
// bounded by max_write_queue, half-close, close, and listeners. The tcp and
// unix transport plugins build their Streams and Listeners on it, and
// core/process builds a child's stdin, stdout and stderr on it. Not a public
// API: users reach it through the TransportRegistry (core/net/transport.h) or
// Process (core/io/process.h).
//
//   // A child's stdout: a fresh pipe handle goes to uv_spawn
//   // (UV_CREATE_PIPE), which connects it; then it is wrapped as a Stream.
//   UvStreamState* s = NewUvStreamState(loop, UvKind::kPipe, options);
//   stdio[1].data.stream = UvHandle(s);
//   if (uv_spawn(loop, &proc, &o) < 0) {
//     CloseUvStreamState(s);
//   } else {
//     std::unique_ptr<UvStream> out = MakeUvStream(s, "pipe");
//     out->StartReadAhead();
//   }
//
// Safety rule (core/io/io_internal.h): libuv handles and requests never point
// into a coroutine frame; requests are UvRequests (core/io/uv_request_internal.h).
// Each stream's state is a reference-counted heap object: the open handle
// holds one reference (dropped in its close callback), every operation in
// progress another (a guard in the frame, dropped when the frame ends or is
// destroyed because its task was killed), every libuv request that touches
// it one more (its payload). A callback arriving after the task is gone
// finds live state and a stale wait token, and does no harm. For the same
// reason a UvStream may be destroyed while a task waits in one of its calls:
// the call wakes with end of stream or kFailedPrecondition and never touches
// the destroyed object again.
//
// Threads: the scheduler's thread only, from its tasks.
#ifndef PICOS_CORE_IO_UV_STREAM_INTERNAL_H_
#define PICOS_CORE_IO_UV_STREAM_INTERNAL_H_

#include <sys/socket.h>

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/io/io_internal.h"
#include "core/io/stream.h"
#include "core/kernel/task.h"

struct uv_loop_s;
struct uv_stream_s;

namespace picos::internal {

enum class UvKind { kTcp, kPipe };

struct UvStreamState;

// A fresh, unconnected handle of `kind` on `loop` (uv_tcp_init /
// uv_pipe_init with ipc off), wrapped in state with one reference (the
// handle's). The handle may then be connected by UvTcpConnect, opened on an
// fd (uv_pipe_open), bound for UvListen, or given to uv_spawn as a
// UV_CREATE_PIPE stdio stream. Scheduler thread.
UvStreamState* NewUvStreamState(uv_loop_s* loop, UvKind kind, const StreamOptions& options);
// The libuv handle inside.
uv_stream_s* UvHandle(UvStreamState* s);
// Closes the handle of a state that never became a Stream (a failed
// connect or spawn); frees it once nothing refers to it.
void CloseUvStreamState(UvStreamState* s);

// Connects the TCP handle of `s` to `addr`, waiting until `deadline`.
// Suspends. On error the caller still owns `s` (and closes it, which ends a
// connect still in flight).
Task<absl::Status> UvTcpConnect(UvStreamState* s, const struct sockaddr* addr,
                                Deadline deadline);

// A connected handle as a Stream; see core/io/stream.h for the contract of
// each call. Reading starts on the first ReadSome (or StartReadAhead) and
// then runs in the background until max_read_buffer bytes wait, so a peer
// that writes faster than the task reads is held back by the kernel.
class UvStream final : public Stream {
 public:
  // Owns `s` (its handle's reference). `scheme` names the addresses it
  // reports ("tcp", "unix").
  UvStream(UvStreamState* s, std::string scheme);
  ~UvStream() override;
  UvStream(const UvStream&) = delete;
  UvStream& operator=(const UvStream&) = delete;

  Task<absl::StatusOr<size_t>> ReadSome(char* buf, size_t min_bytes, size_t max_bytes,
                                        absl::Duration timeout) override;
  Task<absl::Status> Write(std::string data, absl::Duration timeout) override;
  Task<absl::Status> WriteFrom(std::string* buffer, absl::Duration timeout) override;
  Task<absl::Status> Shutdown(absl::Duration timeout) override;
  void Close() override;
  void Abort() override;

  size_t write_queue_bytes() const override;
  size_t peak_write_queue_bytes() const override;
  size_t max_write_queue() const override { return max_write_queue_; }
  std::string local_address() const override;
  std::string peer_address() const override;

  // Starts reading into the buffer now, before any ReadSome: a child
  // process's output is drained from the start, so a child writing both
  // stdout and stderr never blocks on the one not read yet. Does not
  // suspend; a no-op once closed, at the end or after an error (which the
  // next ReadSome reports).
  void StartReadAhead();

  // The read-ahead bound now.
  size_t max_read_buffer() const;

  // Changes the read-ahead bound (StreamOptions::max_read_buffer, at least
  // 1) and, if it grew, resumes reading. Does not suspend.
  void set_max_read_buffer(size_t bytes);

 private:
  // Write's and WriteFrom's first step: whether the stream takes a write,
  // then as much of `data` as the kernel takes now when nothing is queued
  // (no request, no wake). The bytes taken.
  absl::StatusOr<size_t> WriteNow(std::string_view data);
  // The bytes of `data` from `off` on, queued in chunks within
  // max_write_queue, completing as the kernel takes them.
  Task<absl::Status> WriteQueued(std::string data, size_t off, absl::Duration timeout);

  UvStreamState* s_;  // null once closed; the state may outlive this object
  std::string scheme_;
  size_t peak_after_close_ = 0;
  size_t max_write_queue_;
  size_t max_read_buffer_;
};

// Wraps a connected state as a Stream that owns it.
std::unique_ptr<UvStream> MakeUvStream(UvStreamState* s, std::string scheme);

// Starts listening on a bound handle `server` (a uv_tcp_t or uv_pipe_t
// that was just bound, owned by the result from now on and closed on
// error). `address` is what Listener::address() reports (empty: read from
// the socket); `unlink_path`, if not empty, is removed when the listener
// closes (a file-system Unix socket).
absl::StatusOr<std::unique_ptr<Listener>> UvListen(uv_loop_s* loop, UvKind kind,
                                                   UvStreamState* server, std::string scheme,
                                                   std::string address, std::string unlink_path,
                                                   const StreamOptions& options);

// "tcp://127.0.0.1:9705" / "tcp://[::1]:9705" from a socket address.
std::string SockaddrToUri(const std::string& scheme, const struct sockaddr* sa);

}  // namespace picos::internal

#endif  // PICOS_CORE_IO_UV_STREAM_INTERNAL_H_
