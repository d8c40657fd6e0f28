// Byte streams and listeners: the interface every connected, ordered byte
// stream in picos implements (TCP, Unix sockets, TLS over either, a child
// process's pipes), whatever made it. core/net/transport.h names them by URI
// and makes them through plugins; this header is only what a task reads and
// writes through.
//
//   PICOS_CO_RETURN_IF_ERROR(co_await stream->Write("hello\n"));
//   char buf[64];
//   PICOS_CO_ASSIGN_OR_RETURN(size_t n, co_await stream->ReadSome(buf, 1, sizeof buf));
//
// Threads: a Stream or Listener belongs to the scheduler of the task that
// made it. Use it from that scheduler's tasks only and destroy it on that
// thread before the scheduler is destroyed. One task at a time reads a stream
// and one at a time writes it (a reader and a writer may be different
// tasks). Every call returning Task<...> suspends the task and takes a
// timeout; each wait returns kCancelled if the task is terminated, or the
// error thrown into it.
//
// Status codes (see core/kernel/status.h): kUnavailable for a reset or
// vanished peer (retry may help); kDeadlineExceeded for a timeout;
// kFailedPrecondition for a call on a closed object; kResourceExhausted for a
// bound reached.
//
// Why this shape: ReadSome(buf, min, max) and an owning, backpressured
// Write are exactly what kj::AsyncIoStream needs (tryRead(buf, min, max),
// write), so the remote layer adapts any Stream to Cap'n Proto RPC; and a
// Stream can wrap another Stream (TLS over TCP or over a Unix socket)
// because nothing here is specific to sockets.
#ifndef PICOS_CORE_IO_STREAM_H_
#define PICOS_CORE_IO_STREAM_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/io/io.h"
#include "core/kernel/task.h"

namespace picos {

// --- Streams ---

// A connected, reliable, ordered byte stream (a TCP connection, a Unix
// socket, TLS over either). Also a Reader and a Writer (core/io/io.h), so it
// is usable wherever a file or a pipe is.
class Stream : public Reader, public Writer {
 public:
  ~Stream() override = default;

  // Copies into `buf` at least `min_bytes` and at most `max_bytes` bytes
  // (1 <= min_bytes <= max_bytes), waiting as long as fewer than
  // `min_bytes` are available. Gives how many were copied: fewer than
  // `min_bytes` only at the end of the stream (0: nothing more will come).
  // `buf` is written only while this task runs, never by a callback, so it
  // may live in the coroutine frame. kDeadlineExceeded when `timeout`
  // passes before `min_bytes` arrived (what did arrive stays buffered and
  // nothing is lost); kUnavailable if the connection broke.
  virtual Task<absl::StatusOr<size_t>> ReadSome(
      char* buf, size_t min_bytes, size_t max_bytes,
      absl::Duration timeout = absl::InfiniteDuration()) = 0;

  // Reader: between 1 and `max_bytes` bytes, "" at the end of the stream.
  // The default reads through ReadSome.
  Task<absl::StatusOr<std::string>> Read(
      size_t max_bytes, absl::Duration timeout = absl::InfiniteDuration()) override;

  // Writer: writes all of `data`, completing only as the peer's side (the
  // kernel) accepts the bytes, so a slow reader slows the writer instead of
  // growing a queue: at most max_write_queue() bytes of this stream wait in
  // user space at any time. kUnavailable if the peer went away;
  // kDeadlineExceeded if `timeout` passed first (part of `data` may have
  // been sent; the stream stays usable, later writes follow what was sent).
  // Writing after Shutdown() or Close() is kFailedPrecondition.
  Task<absl::Status> Write(std::string data,
                           absl::Duration timeout = absl::InfiniteDuration()) override = 0;

  // Write of `*buffer`, for a caller that writes often: when it completes,
  // *buffer is empty and, where the kernel took every byte at once, keeps
  // its capacity for the caller's next write (a connection's writer then
  // allocates nothing per write; freeing a write's large buffer each time
  // made malloc consolidate its free lists, a tenth of a flooding sender's
  // CPU). Otherwise as Write. The default moves *buffer into Write.
  virtual Task<absl::Status> WriteFrom(std::string* buffer,
                                       absl::Duration timeout = absl::InfiniteDuration());

  // Half-close: sends the end of the stream once queued writes are out; the
  // peer reads "" and this side can still read. Suspends until done.
  virtual Task<absl::Status> Shutdown(absl::Duration timeout = absl::InfiniteDuration()) = 0;

  // Closes both directions now; waiting tasks are woken with
  // kFailedPrecondition (reads give end of stream). Does not suspend;
  // idempotent; the destructor closes too.
  virtual void Close() = 0;

  // Closes so that the peer sees a reset rather than an orderly end where
  // the transport can express one (TCP RST); otherwise as Close().
  virtual void Abort() { Close(); }

  // Bytes this stream holds in user space waiting to be written, and the
  // most it ever held: the backpressure figures tests assert on.
  virtual size_t write_queue_bytes() const = 0;
  virtual size_t peak_write_queue_bytes() const = 0;
  // The bound on write_queue_bytes().
  virtual size_t max_write_queue() const = 0;

  // Addresses as URIs ("tcp://127.0.0.1:40312"); "" where unknown (an
  // unnamed Unix socket).
  virtual std::string local_address() const = 0;
  virtual std::string peer_address() const = 0;
};

// A bound, listening endpoint that accepts streams.
class Listener {
 public:
  virtual ~Listener() = default;

  // The next incoming connection. Connections that arrive while no task
  // accepts wait in a bounded backlog. Suspends. kDeadlineExceeded after
  // `timeout`; kFailedPrecondition once closed.
  virtual Task<absl::StatusOr<std::unique_ptr<Stream>>> Accept(
      absl::Duration timeout = absl::InfiniteDuration()) = 0;

  // Stops listening; a waiting Accept returns kFailedPrecondition. Does not
  // suspend; idempotent; the destructor closes too.
  virtual void Close() = 0;

  // The address bound, as a URI a client can connect to (the actual port
  // when 0 was asked for).
  virtual std::string address() const = 0;
};

// Tuning for Connect and Listen; every plugin honours what applies to it.
struct StreamOptions {
  // Bound on bytes queued in user space per stream (see Stream::Write).
  size_t max_write_queue = 1 << 20;
  // Bound on bytes read ahead from the kernel per stream before reading
  // pauses (the peer then feels backpressure).
  size_t max_read_buffer = 1 << 20;
  // Listen: the kernel's backlog of unaccepted connections.
  int backlog = 1024;
  // TCP_NODELAY: small writes go out at once (latency over batching).
  bool no_delay = true;
};

}  // namespace picos

#endif  // PICOS_CORE_IO_STREAM_H_
