// Byte streams for tasks: the small reader/writer interface shared by every
// picos object that moves bytes (child-process pipes, files, sockets), and a
// buffered reader with the bounded reads built on it (a line, exactly n
// bytes, everything up to a limit).
//
//   picos::Task<absl::Status> Copy(picos::Reader& in, picos::Writer& out) {
//     for (int i = 0; i < 1'000'000; ++i) {           // bounded, like every loop
//       PICOS_CO_ASSIGN_OR_RETURN(std::string chunk, co_await in.Read(64 * 1024));
//       if (chunk.empty()) co_return absl::OkStatus();  // end of stream
//       PICOS_CO_RETURN_IF_ERROR(co_await out.Write(std::move(chunk)));
//     }
//     co_return absl::ResourceExhaustedError("too many chunks");
//   }
//
//   picos::BufferedReader lines(&process->stdout_reader());
//   absl::StatusOr<std::string> line = co_await lines.ReadLine(4096);
//
// Every call here is made from a task on the scheduler that owns the object
// and may suspend that task (it is co_awaited). One task at a time reads an
// object, and one at a time writes it. Every wait takes a timeout
// (kDeadlineExceeded) and returns kCancelled if the task is terminated, or
// the thrown error if one is thrown into it.
#ifndef PICOS_CORE_IO_IO_H_
#define PICOS_CORE_IO_IO_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/kernel/task.h"

namespace picos {

// Most bytes one Read() may ask for: a bound on what a single call allocates.
inline constexpr size_t kMaxReadChunk = size_t{16} << 20;  // 16 MiB

// A source of bytes.
class Reader {
 public:
  virtual ~Reader() = default;

  // Gives between 1 and `max_bytes` bytes as soon as any are available, or
  // an empty string at the end of the stream. `max_bytes` must be in
  // [1, kMaxReadChunk] (else kInvalidArgument). Suspends the task.
  // kDeadlineExceeded when `timeout` passes with nothing read (nothing is
  // lost); kUnavailable if the stream broke.
  virtual Task<absl::StatusOr<std::string>> Read(
      size_t max_bytes, absl::Duration timeout = absl::InfiniteDuration()) = 0;
};

// A sink of bytes.
class Writer {
 public:
  virtual ~Writer() = default;

  // Writes all of `data`, waiting while the other side is slow
  // (backpressure). Suspends the task. kUnavailable if the reader went away
  // (a child that exited, a closed peer); kDeadlineExceeded when `timeout`
  // passes first, in which case part of `data` may have been written.
  virtual Task<absl::Status> Write(std::string data,
                                   absl::Duration timeout = absl::InfiniteDuration()) = 0;
};

// Adds a buffer and bounded reads to any Reader. Does not own `source`,
// which must outlive it. Same thread and task rules as the Reader.
class BufferedReader : public Reader {
 public:
  // `chunk` is how much each read of `source` asks for.
  explicit BufferedReader(Reader* source, size_t chunk = 64 * 1024);

  // Buffered bytes first, else one read of the source.
  Task<absl::StatusOr<std::string>> Read(
      size_t max_bytes, absl::Duration timeout = absl::InfiniteDuration()) override;

  // The next line, with its '\n'; at the end of the stream the last bytes
  // without one, then "". kResourceExhausted if no '\n' comes within
  // `max_length` bytes (the bytes stay buffered, so the caller may Read()
  // them). `timeout` bounds the whole call; on kDeadlineExceeded what was
  // read stays buffered.
  Task<absl::StatusOr<std::string>> ReadLine(
      size_t max_length, absl::Duration timeout = absl::InfiniteDuration());

  // Exactly `n` bytes (n <= kMaxReadChunk). kOutOfRange if the stream ends
  // first (the short tail stays buffered).
  Task<absl::StatusOr<std::string>> ReadExactly(
      size_t n, absl::Duration timeout = absl::InfiniteDuration());

  // Everything up to the end of the stream. kResourceExhausted once more
  // than `limit` bytes arrive (what arrived stays buffered).
  Task<absl::StatusOr<std::string>> ReadAll(
      size_t limit, absl::Duration timeout = absl::InfiniteDuration());

  // Reads from the source until at least `n` bytes are buffered or the
  // stream ends, and hands out nothing: OK in both cases (compare buffered()
  // with `n`), so a call that times out can simply be repeated. What a
  // length-prefixed frame needs: look at a header, then wait for the whole
  // frame before consuming any of it (core/io/framing.h). The caller bounds
  // `n`: the buffer grows to hold it. Suspends.
  Task<absl::Status> Prefetch(size_t n, absl::Duration timeout = absl::InfiniteDuration());

  // The buffered bytes, not handed out; valid until the next call on this
  // reader. Does not suspend.
  std::string_view Peek() const { return std::string_view(buffer_).substr(head_); }

  // Hands out the first `n` buffered bytes (fewer if fewer are buffered).
  // Does not suspend.
  std::string Take(size_t n);

  // Bytes read from the source and not yet handed out.
  size_t buffered() const { return buffer_.size() - head_; }
  // True once the source reported the end of the stream.
  bool at_end() const { return eof_ && buffered() == 0; }

 private:
  // Reads one more chunk from the source into the buffer; OK with eof_ set
  // at the end of the stream.
  Task<absl::Status> Fill(absl::Duration timeout);

  Reader* source_;
  size_t chunk_;
  std::string buffer_;
  size_t head_ = 0;  // bytes before head_ were handed out already
  bool eof_ = false;
};

// Checks a Read() size argument; shared by every Reader.
absl::Status ValidateReadSize(size_t max_bytes);

}  // namespace picos

#endif  // PICOS_CORE_IO_IO_H_
