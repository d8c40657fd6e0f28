// Async files (pycos's AsyncFile): open, read, write, seek and close files
// without blocking the scheduler. Each operation runs on libuv's thread pool
// and the task waits for it; other tasks run meanwhile.
//
//   PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::File> f,
//       co_await picos::File::Open("/tmp/out.txt", O_WRONLY | O_CREAT | O_TRUNC));
//   PICOS_CO_RETURN_IF_ERROR(co_await f->Write("hello\n"));
//   PICOS_CO_RETURN_IF_ERROR(co_await f->Close());
//
//   PICOS_CO_ASSIGN_OR_RETURN(std::string all,
//       co_await picos::File::ReadFile("/tmp/out.txt", /*limit=*/1 << 20));
//
// A File is a Reader and a Writer (core/io/io.h), the same shape as sockets and
// pipes: wrap it in a BufferedReader for lines.
//
// Threads: a File belongs to the scheduler of the task that opened it; use
// and destroy it on that scheduler's thread (from its tasks), before the
// scheduler ends. One task at a time uses a File. Calls returning Task<...>
// suspend the task (co_await them).
//
// Killing a task that holds an open File is safe: the File's destructor
// closes the descriptor, after any operation still running on the thread
// pool has finished; nothing calls back into the task's destroyed frame.
// An operation whose timeout passed is cancelled if the pool has not started
// it, and otherwise finishes: a read's bytes are kept for the next Read, a
// write's error is reported by the next Write or Close.
//
// FIFOs and sockets (named pipes, /proc/self/fd/N of a socket) never wait on
// the thread pool, whose few threads they could hold for as long as the
// other end stays away: opening one for reading succeeds at once, and its
// reads and writes wait in the scheduler's loop like a pipe's, with their
// timeouts; opening one for writing with no reader fails with kUnavailable.
// Such a File is not seekable, has Size() 0 and nothing for Sync() to flush.
#ifndef PICOS_CORE_IO_FILE_H_
#define PICOS_CORE_IO_FILE_H_

#include <fcntl.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/io/io.h"
#include "core/kernel/task.h"

namespace picos {

namespace internal {
struct FileState;
}  // namespace internal

// Longest path File accepts (PATH_MAX).
inline constexpr size_t kMaxPathLength = 4096;

class File : public Reader, public Writer {
 public:
  // Opens `path` with POSIX `flags` (O_RDONLY, O_WRONLY | O_CREAT | O_TRUNC,
  // O_APPEND, ...) and, when creating, `mode`. Suspends the task. kNotFound
  // if it does not exist, kPermissionDenied, kInvalidArgument for an empty
  // path, one with a NUL byte or one longer than kMaxPathLength.
  static Task<absl::StatusOr<std::unique_ptr<File>>> Open(std::string path, int flags = O_RDONLY,
                                                          int mode = 0644);

  // The whole content of `path`; kResourceExhausted if it holds more than
  // `limit` bytes (SIZE_MAX: no limit but memory). Suspends the task.
  static Task<absl::StatusOr<std::string>> ReadFile(std::string path, size_t limit);

  // Replaces the content of `path` (creating it with `mode`) by `data`.
  // Suspends the task.
  static Task<absl::Status> WriteFile(std::string path, std::string data, int mode = 0644);

  // Closes the file if Close() was not called (after an operation still in
  // progress ends). Does not suspend.
  ~File() override;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  // Reads up to `max_bytes` at the current position and advances it; "" at
  // the end of the file.
  Task<absl::StatusOr<std::string>> Read(
      size_t max_bytes, absl::Duration timeout = absl::InfiniteDuration()) override;

  // Writes all of `data` at the current position (at the end with O_APPEND)
  // and advances it.
  Task<absl::Status> Write(std::string data,
                           absl::Duration timeout = absl::InfiniteDuration()) override;

  // Moves the position (whence: SEEK_SET, SEEK_CUR, SEEK_END) and gives the
  // new one. kInvalidArgument for a negative result. Suspends the task.
  Task<absl::StatusOr<int64_t>> Seek(int64_t offset, int whence = SEEK_SET);

  // Where the next Read or Write goes.
  int64_t position() const;

  // The file's size in bytes. Suspends the task.
  Task<absl::StatusOr<int64_t>> Size();

  // Flushes written data to the device (fsync). Suspends the task.
  Task<absl::Status> Sync();

  // Closes the file; later calls fail with kFailedPrecondition. Reports a
  // write error that no call has reported yet. Suspends the task.
  Task<absl::Status> Close();

  const std::string& path() const { return path_; }

 private:
  File(std::shared_ptr<internal::FileState> state, std::string path);

  std::shared_ptr<internal::FileState> state_;
  std::string path_;
};

}  // namespace picos

#endif  // PICOS_CORE_IO_FILE_H_
