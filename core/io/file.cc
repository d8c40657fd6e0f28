#include "core/io/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <uv.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/io/io_internal.h"
#include "core/io/stream.h"
#include "core/io/uv_request_internal.h"
#include "core/io/uv_stream_internal.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"

namespace picos {
namespace internal {

// What a File and its request in flight share. A request keeps it alive
// until its callback, so the callback never touches a freed File.
struct FileState {
  uv_loop_t* loop = nullptr;
  uv_file fd = -1;       // -1 once closed, and for a FIFO or socket (`stream` owns it)
  bool seekable = true;  // regular files and block devices: pread/pwrite
  bool append = false;   // O_APPEND: writes go to the end whatever pos says
  bool closed = false;   // Close() began, or the File is gone
  int64_t pos = 0;       // file offset after the last byte read or written
  std::string readahead;    // bytes read whose task stopped waiting
  absl::Status late_error;  // error of a write whose task stopped waiting
  bool busy = false;        // a request is in flight: at most one at a time
  WaitSlot idle;            // notified when it ends
  // A FIFO or a socket is read and written through the loop (epoll), not
  // the thread pool, where a read with no writer would hold one of its few
  // threads for as long as the writer stays away.
  std::unique_ptr<UvStream> stream;
};

}  // namespace internal

namespace {

using internal::FileState;

constexpr size_t kWriteChunk = size_t{4} << 20;
constexpr size_t kReadFileChunk = size_t{1} << 20;

enum class OpKind { kOpen, kRead, kWrite, kFsync, kClose };

std::string Quoted(const std::string& path) { return absl::StrCat("'", path.substr(0, 256), "'"); }

void CloseNow(uv_loop_t* loop, uv_file fd) {
  // Closing a descriptor does not wait for the disk: done inline rather
  // than through the pool, so that nothing outlives the File's destruction.
  uv_fs_t r;
  uv_fs_close(loop, &r, fd, nullptr);
  uv_fs_req_cleanup(&r);
}

// What a file request carries while it runs on the pool, and what its
// completion does to the file, whether or not a task still waits for it.
struct FsPayload {
  FsPayload(OpKind k, std::shared_ptr<FileState> f) : kind(k), file(std::move(f)) {}

  void OnComplete(uv_fs_t& req, ssize_t result, bool orphaned) {
    FileState* f = file.get();
    switch (kind) {
      case OpKind::kOpen:
        // Nobody will take the descriptor: close it.
        if (orphaned && result >= 0) CloseNow(req.loop, static_cast<uv_file>(result));
        return;  // no File yet
      case OpKind::kRead:
        if (result > 0) {
          f->readahead.append(buf.data(), static_cast<size_t>(result));
          f->pos += result;
        }
        break;
      case OpKind::kWrite:
        if (result > 0 && f->seekable && !f->append) f->pos += result;
        // The next call reports the error of a write whose task stopped
        // waiting; one cancelled because its caller gave up is no error.
        if (orphaned && result < 0 && result != UV_ECANCELED) {
          f->late_error = UvStatus(static_cast<int>(result), "write");
        }
        break;
      case OpKind::kFsync:
      case OpKind::kClose:
        break;
    }
    f->busy = false;
    if (f->closed && f->fd >= 0) {
      CloseNow(f->loop, f->fd);  // the File went away while this ran
      f->fd = -1;
    }
    f->idle.Notify();
  }

  OpKind kind;
  std::shared_ptr<FileState> file;          // null while opening
  std::string buf;                          // a read's buffer
  std::shared_ptr<const std::string> data;  // a write's bytes
};

using FsRequest = internal::UvRequest<uv_fs_t, FsPayload>;

// Call with the uv_fs_* return code right after submitting `op` on its file.
absl::Status Submitted(FsRequest& op, int rc, const char* what) {
  PICOS_RETURN_IF_ERROR(op.Started(rc, what));
  op.payload().file->busy = true;
  return absl::OkStatus();
}

// Waits for a request that a timed-out call left running.
Task<absl::Status> WaitIdle(std::shared_ptr<FileState> f, internal::Deadline deadline) {
  for (;;) {  // each wake is the end of that request, or the deadline
    if (!f->busy) co_return absl::OkStatus();
    PICOS_CO_RETURN_IF_ERROR(co_await f->idle.Wait(deadline));
  }
}

std::string TakeReadahead(FileState* f, size_t max) {
  size_t n = std::min(max, f->readahead.size());
  std::string out = f->readahead.substr(0, n);
  f->readahead.erase(0, n);
  return out;
}

absl::Status CheckOpen(const std::shared_ptr<FileState>& f) {
  if (!f || f->closed) return absl::FailedPreconditionError("the file is closed");
  return absl::OkStatus();
}

// Wraps the descriptor of a FIFO or socket in a libuv pipe handle.
absl::Status AdoptAsStream(FileState* f, uv_file fd) {
  internal::UvStreamState* s = internal::NewUvStreamState(f->loop, internal::UvKind::kPipe, {});
  int rc = uv_pipe_open(reinterpret_cast<uv_pipe_t*>(internal::UvHandle(s)), fd);
  if (rc < 0) {
    internal::CloseUvStreamState(s);  // the handle, not the descriptor
    CloseNow(f->loop, fd);
    return UvStatus(rc, "open");
  }
  f->seekable = false;
  f->stream = internal::MakeUvStream(s, "file");
  return absl::OkStatus();
}

}  // namespace

File::File(std::shared_ptr<FileState> state, std::string path)
    : state_(std::move(state)), path_(std::move(path)) {}

File::~File() {
  if (!state_) return;
  state_->closed = true;
  if (state_->stream) {
    // Closed now; a task still waiting in it wakes and lets it go.
    state_->stream->Close();
  } else if (!state_->busy && state_->fd >= 0) {
    CloseNow(state_->loop, state_->fd);
    state_->fd = -1;
  }
  // Else the request's callback closes it.
}

Task<absl::StatusOr<std::unique_ptr<File>>> File::Open(std::string path, int flags, int mode) {
  if (path.empty() || path.size() > kMaxPathLength || path.find('\0') != std::string::npos) {
    co_return absl::InvalidArgumentError(
        absl::StrCat("bad path (empty, over ", kMaxPathLength, " bytes, or with a NUL byte)"));
  }
  Scheduler* sched = Scheduler::Current();
  if (sched == nullptr) co_return absl::FailedPreconditionError("File::Open outside a scheduler");
  uv_loop_t* loop = sched->uv_loop();
  // Opened with O_NONBLOCK: a FIFO with nobody at the other end would
  // otherwise block a thread of libuv's pool (4 threads) until someone
  // comes, maybe forever, starving every file and name lookup and keeping
  // the process from exiting. With it, a reader opens at once (and waits
  // for a writer in the loop) and a writer with no reader fails at once.
  // Other files get blocking mode back below.
  FsRequest op(OpKind::kOpen, nullptr);
  PICOS_CO_RETURN_IF_ERROR(op.Started(
      uv_fs_open(loop, op.req(), path.c_str(), flags | O_CLOEXEC | O_NONBLOCK, mode, op.callback()),
      "open"));
  const internal::Deadline forever(absl::InfiniteDuration());
  PICOS_CO_RETURN_IF_ERROR(co_await op.Wait(forever));
  if (op.result() == UV_ENXIO && (flags & O_ACCMODE) == O_WRONLY) {
    co_return absl::UnavailableError(absl::StrCat(
        "open ", Quoted(path), " for writing: no process has the FIFO open for reading"));
  }
  if (op.result() < 0) {
    co_return UvStatus(static_cast<int>(op.result()), absl::StrCat("open ", Quoted(path)).c_str());
  }
  const auto fd = static_cast<uv_file>(op.result());
  auto state = std::make_shared<FileState>();
  state->loop = loop;
  state->append = (flags & O_APPEND) != 0;
  struct stat st;
  // fstat of an open descriptor reads cached metadata: no need for the pool.
  const bool have_stat = fstat(fd, &st) == 0;
  if (have_stat && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
    PICOS_CO_RETURN_IF_ERROR(AdoptAsStream(state.get(), fd));
  } else {
    state->fd = fd;
    if (have_stat) state->seekable = S_ISREG(st.st_mode) || S_ISBLK(st.st_mode);
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && (flags & O_NONBLOCK) == 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  }
  co_return std::unique_ptr<File>(new File(std::move(state), std::move(path)));
}

Task<absl::StatusOr<std::string>> File::Read(size_t max_bytes, absl::Duration timeout) {
  PICOS_CO_RETURN_IF_ERROR(ValidateReadSize(max_bytes));
  std::shared_ptr<FileState> f = state_;
  PICOS_CO_RETURN_IF_ERROR(CheckOpen(f));
  if (f->stream) co_return co_await f->stream->Read(max_bytes, timeout);
  if (!f->readahead.empty()) co_return TakeReadahead(f.get(), max_bytes);
  const internal::Deadline deadline(timeout);
  PICOS_CO_RETURN_IF_ERROR(co_await WaitIdle(f, deadline));
  if (!f->readahead.empty()) co_return TakeReadahead(f.get(), max_bytes);
  PICOS_CO_RETURN_IF_ERROR(CheckOpen(f));
  FsRequest op(OpKind::kRead, f);
  op.payload().buf.resize(max_bytes);
  uv_buf_t b = uv_buf_init(op.payload().buf.data(), static_cast<unsigned>(max_bytes));
  PICOS_CO_RETURN_IF_ERROR(Submitted(
      op, uv_fs_read(f->loop, op.req(), f->fd, &b, 1, f->seekable ? f->pos : -1, op.callback()),
      "read"));
  PICOS_CO_RETURN_IF_ERROR(co_await op.Wait(deadline));
  if (op.result() < 0) {
    co_return UvStatus(static_cast<int>(op.result()), absl::StrCat("read ", Quoted(path_)).c_str());
  }
  co_return TakeReadahead(f.get(), max_bytes);
}

Task<absl::Status> File::Write(std::string data, absl::Duration timeout) {
  std::shared_ptr<FileState> f = state_;
  PICOS_CO_RETURN_IF_ERROR(CheckOpen(f));
  if (f->stream) co_return co_await f->stream->Write(std::move(data), timeout);
  const internal::Deadline deadline(timeout);
  PICOS_CO_RETURN_IF_ERROR(co_await WaitIdle(f, deadline));
  if (!f->late_error.ok()) co_return std::exchange(f->late_error, absl::OkStatus());
  // A read-ahead left by a timed-out Read is discarded: the write goes where
  // the caller believes the position is.
  f->pos -= static_cast<int64_t>(f->readahead.size());
  f->readahead.clear();
  auto bytes = std::make_shared<const std::string>(std::move(data));
  size_t written = 0;
  while (written < bytes->size()) {  // each round writes a byte or returns
    PICOS_CO_RETURN_IF_ERROR(CheckOpen(f));
    size_t n = std::min(kWriteChunk, bytes->size() - written);
    FsRequest op(OpKind::kWrite, f);
    op.payload().data = bytes;
    uv_buf_t b = uv_buf_init(const_cast<char*>(bytes->data()) + written, static_cast<unsigned>(n));
    int64_t offset = (f->seekable && !f->append) ? f->pos : -1;
    PICOS_CO_RETURN_IF_ERROR(Submitted(
        op, uv_fs_write(f->loop, op.req(), f->fd, &b, 1, offset, op.callback()), "write"));
    absl::Status st = co_await op.Wait(deadline);
    if (!st.ok()) {
      if (st.code() == absl::StatusCode::kDeadlineExceeded) {
        co_return absl::DeadlineExceededError(absl::StrCat(
            "write ", Quoted(path_), " timed out after ", written, " of ", bytes->size(), " bytes"));
      }
      co_return st;
    }
    if (op.result() < 0) {
      co_return UvStatus(static_cast<int>(op.result()), absl::StrCat("write ", Quoted(path_)).c_str());
    }
    if (op.result() == 0) co_return absl::DataLossError(absl::StrCat("write ", Quoted(path_), " wrote nothing"));
    written += static_cast<size_t>(op.result());
  }
  co_return absl::OkStatus();
}

int64_t File::position() const {
  return state_->pos - static_cast<int64_t>(state_->readahead.size());
}

Task<absl::StatusOr<int64_t>> File::Seek(int64_t offset, int whence) {
  std::shared_ptr<FileState> f = state_;
  PICOS_CO_RETURN_IF_ERROR(CheckOpen(f));
  if (!f->seekable) co_return absl::FailedPreconditionError(absl::StrCat(Quoted(path_), " is not seekable"));
  const internal::Deadline forever(absl::InfiniteDuration());
  PICOS_CO_RETURN_IF_ERROR(co_await WaitIdle(f, forever));
  int64_t base;
  switch (whence) {
    case SEEK_SET:
      base = 0;
      break;
    case SEEK_CUR:
      base = position();
      break;
    case SEEK_END: {
      PICOS_CO_ASSIGN_OR_RETURN(base, co_await Size());
      break;
    }
    default:
      co_return absl::InvalidArgumentError(absl::StrCat("bad whence ", whence));
  }
  if ((offset > 0 && base > INT64_MAX - offset) || base + offset < 0) {
    co_return absl::InvalidArgumentError(absl::StrCat("seek to ", base, " + ", offset));
  }
  f->readahead.clear();
  f->pos = base + offset;
  co_return f->pos;
}

Task<absl::StatusOr<int64_t>> File::Size() {
  std::shared_ptr<FileState> f = state_;
  PICOS_CO_RETURN_IF_ERROR(CheckOpen(f));
  if (f->stream) co_return int64_t{0};  // what fstat says of a FIFO or socket
  struct stat st;
  if (fstat(f->fd, &st) != 0) co_return absl::ErrnoToStatus(errno, "fstat");
  co_return static_cast<int64_t>(st.st_size);
}

Task<absl::Status> File::Sync() {
  std::shared_ptr<FileState> f = state_;
  PICOS_CO_RETURN_IF_ERROR(CheckOpen(f));
  if (f->stream) co_return absl::OkStatus();  // a FIFO's bytes are with the reader already
  const internal::Deadline forever(absl::InfiniteDuration());
  PICOS_CO_RETURN_IF_ERROR(co_await WaitIdle(f, forever));
  FsRequest op(OpKind::kFsync, f);
  PICOS_CO_RETURN_IF_ERROR(
      Submitted(op, uv_fs_fsync(f->loop, op.req(), f->fd, op.callback()), "fsync"));
  PICOS_CO_RETURN_IF_ERROR(co_await op.Wait(forever));
  co_return UvStatus(static_cast<int>(op.result()), "fsync");
}

Task<absl::Status> File::Close() {
  std::shared_ptr<FileState> f = state_;
  if (f->closed) co_return absl::OkStatus();
  if (f->stream) {
    f->closed = true;
    f->stream->Close();
    co_return absl::OkStatus();
  }
  const internal::Deadline forever(absl::InfiniteDuration());
  PICOS_CO_RETURN_IF_ERROR(co_await WaitIdle(f, forever));
  if (f->closed) co_return absl::OkStatus();
  f->closed = true;
  absl::Status late = std::exchange(f->late_error, absl::OkStatus());
  FsRequest op(OpKind::kClose, f);
  uv_file fd = std::exchange(f->fd, -1);
  PICOS_CO_RETURN_IF_ERROR(Submitted(op, uv_fs_close(f->loop, op.req(), fd, op.callback()), "close"));
  PICOS_CO_RETURN_IF_ERROR(co_await op.Wait(forever));
  if (!late.ok()) co_return late;
  co_return UvStatus(static_cast<int>(op.result()), absl::StrCat("close ", Quoted(path_)).c_str());
}

Task<absl::StatusOr<std::string>> File::ReadFile(std::string path, size_t limit) {
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<File> f, co_await Open(path, O_RDONLY));
  std::string out;
  // Each round reads at least one byte or ends. No `limit + 1` anywhere:
  // limit may be SIZE_MAX ("no limit"), where it would wrap to 0.
  const size_t rounds = limit >= SIZE_MAX - 2 ? SIZE_MAX : limit + 2;
  for (size_t round = 0; round < rounds; ++round) {
    // One byte past the limit is asked for, to tell "exactly limit" from
    // "more"; room < kReadFileChunk here, so room + 1 cannot wrap.
    const size_t room = limit - out.size();
    const size_t ask = room >= kReadFileChunk ? kReadFileChunk : room + 1;
    PICOS_CO_ASSIGN_OR_RETURN(std::string chunk, co_await f->Read(ask));
    if (chunk.empty()) break;
    out += chunk;
    if (out.size() > limit) {
      co_return absl::ResourceExhaustedError(
          absl::StrCat(Quoted(path), " is larger than the limit of ", limit, " bytes"));
    }
  }
  PICOS_CO_RETURN_IF_ERROR(co_await f->Close());
  co_return out;
}

Task<absl::Status> File::WriteFile(std::string path, std::string data, int mode) {
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<File> f,
                            co_await Open(path, O_WRONLY | O_CREAT | O_TRUNC, mode));
  PICOS_CO_RETURN_IF_ERROR(co_await f->Write(std::move(data)));
  co_return co_await f->Close();
}

}  // namespace picos
