#include "core/io/file.h"

#include <sys/stat.h>
#include <uv.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/io/io_internal.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"

namespace picos {
namespace {
struct FsOp;
}  // namespace

namespace internal {

// What a File and its operations in flight share. An operation keeps it
// alive until its callback, so the callback never touches a freed File.
struct FileState {
  uv_loop_t* loop = nullptr;
  uv_file fd = -1;
  bool seekable = true;  // regular files and block devices: pread/pwrite
  bool append = false;   // O_APPEND: writes go to the end whatever pos says
  bool closed = false;   // Close() began, or the File is gone
  int64_t pos = 0;       // file offset after the last byte read or written
  std::string readahead;      // bytes read whose task stopped waiting
  absl::Status late_error;    // error of a write whose task stopped waiting
  std::shared_ptr<FsOp> inflight;  // at most one operation at a time
};

}  // namespace internal

namespace {

using internal::FileState;

constexpr size_t kWriteChunk = size_t{4} << 20;
constexpr size_t kReadFileChunk = size_t{1} << 20;

enum class OpKind { kOpen, kRead, kWrite, kFsync, kClose };

// One uv_fs request. Owned by the waiting task and by itself (`self`) until
// its callback runs on the loop, whatever happens to the task.
struct FsOp {
  uv_fs_t req;
  OpKind kind;
  std::shared_ptr<FileState> file;  // null while opening
  std::shared_ptr<FsOp> self;
  std::string buf;                          // a read's buffer
  std::shared_ptr<const std::string> data;  // a write's bytes
  bool done = false;
  ssize_t result = 0;
  internal::WaitSlot slot;
};

std::string Quoted(const std::string& path) { return absl::StrCat("'", path.substr(0, 256), "'"); }

void CloseNow(uv_loop_t* loop, uv_file fd) {
  // Closing a descriptor does not wait for the disk: done inline rather
  // than through the pool, so that nothing outlives the File's destruction.
  uv_fs_t r;
  uv_fs_close(loop, &r, fd, nullptr);
  uv_fs_req_cleanup(&r);
}

void OnFsDone(uv_fs_t* req) {
  auto* op = static_cast<FsOp*>(req->data);
  std::shared_ptr<FsOp> keep = std::move(op->self);
  op->result = req->result;
  uv_fs_req_cleanup(req);
  op->done = true;
  FileState* f = op->file.get();
  if (f != nullptr && f->inflight.get() == op) f->inflight.reset();
  // Only `keep` left: the task that started it stopped waiting (timeout) or
  // is gone (terminated), and the result must not be lost or leaked.
  bool abandoned = keep.use_count() == 1;
  switch (op->kind) {
    case OpKind::kOpen:
      if (abandoned && op->result >= 0) CloseNow(req->loop, static_cast<uv_file>(op->result));
      break;
    case OpKind::kRead:
      if (op->result > 0) {
        f->readahead.append(op->buf.data(), static_cast<size_t>(op->result));
        f->pos += op->result;
      }
      break;
    case OpKind::kWrite:
      if (op->result > 0 && f->seekable && !f->append) f->pos += op->result;
      if (abandoned && op->result < 0) f->late_error = UvStatus(static_cast<int>(op->result), "write");
      break;
    case OpKind::kFsync:
    case OpKind::kClose:
      break;
  }
  if (f != nullptr && f->closed && f->fd >= 0 && !f->inflight) {
    CloseNow(f->loop, f->fd);  // the File went away while this ran
    f->fd = -1;
  }
  op->slot.Notify();
}

std::shared_ptr<FsOp> NewOp(OpKind kind, std::shared_ptr<FileState> file) {
  auto op = std::make_shared<FsOp>();
  op->kind = kind;
  op->file = std::move(file);
  op->req.data = op.get();
  return op;
}

// Call with the uv_fs_* return code right after submitting `op`: on success
// the op owns itself until OnFsDone, on failure no callback will come.
absl::Status Submitted(const std::shared_ptr<FsOp>& op, int rc, const char* what) {
  if (rc < 0) {
    op->self.reset();
    uv_fs_req_cleanup(&op->req);
    if (op->file && op->file->inflight == op) op->file->inflight.reset();
    return UvStatus(rc, what);
  }
  return absl::OkStatus();
}

void Arm(const std::shared_ptr<FsOp>& op) {
  op->self = op;
  if (op->file) op->file->inflight = op;
}

Task<absl::Status> AwaitOp(std::shared_ptr<FsOp> op, absl::Duration timeout) {
  // The only wake is the op's callback.
  for (int round = 0; round < 4 && !op->done; ++round) {
    absl::Status st = co_await internal::SlotAwaiter(&op->slot, op->done, timeout);
    if (!st.ok()) co_return st;
  }
  if (!op->done) co_return absl::InternalError("file operation woke before finishing");
  co_return absl::OkStatus();
}

// Waits for an operation a timed-out call left running.
Task<absl::Status> WaitIdle(std::shared_ptr<FileState> f, absl::Duration timeout) {
  if (!f->inflight) co_return absl::OkStatus();
  co_return co_await AwaitOp(f->inflight, timeout);
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

}  // namespace

File::File(std::shared_ptr<FileState> state, std::string path)
    : state_(std::move(state)), path_(std::move(path)) {}

File::~File() {
  if (!state_) return;
  state_->closed = true;
  if (!state_->inflight && state_->fd >= 0) {
    CloseNow(state_->loop, state_->fd);
    state_->fd = -1;
  }
  // Else the operation's callback closes it.
}

Task<absl::StatusOr<std::unique_ptr<File>>> File::Open(std::string path, int flags, int mode) {
  if (path.empty() || path.size() > kMaxPathLength || path.find('\0') != std::string::npos) {
    co_return absl::InvalidArgumentError(
        absl::StrCat("bad path (empty, over ", kMaxPathLength, " bytes, or with a NUL byte)"));
  }
  Scheduler* sched = Scheduler::Current();
  if (sched == nullptr) co_return absl::FailedPreconditionError("File::Open outside a scheduler");
  auto op = NewOp(OpKind::kOpen, nullptr);
  Arm(op);
  PICOS_CO_RETURN_IF_ERROR(Submitted(
      op, uv_fs_open(sched->uv_loop(), &op->req, path.c_str(), flags | O_CLOEXEC, mode, OnFsDone),
      "open"));
  PICOS_CO_RETURN_IF_ERROR(co_await AwaitOp(op, absl::InfiniteDuration()));
  if (op->result < 0) {
    co_return UvStatus(static_cast<int>(op->result), absl::StrCat("open ", Quoted(path)).c_str());
  }
  auto state = std::make_shared<FileState>();
  state->loop = sched->uv_loop();
  state->fd = static_cast<uv_file>(op->result);
  state->append = (flags & O_APPEND) != 0;
  struct stat st;
  // fstat of an open descriptor reads cached metadata: no need for the pool.
  if (fstat(state->fd, &st) == 0) state->seekable = S_ISREG(st.st_mode) || S_ISBLK(st.st_mode);
  co_return std::unique_ptr<File>(new File(std::move(state), std::move(path)));
}

Task<absl::StatusOr<std::string>> File::Read(size_t max_bytes, absl::Duration timeout) {
  PICOS_CO_RETURN_IF_ERROR(ValidateReadSize(max_bytes));
  std::shared_ptr<FileState> f = state_;
  PICOS_CO_RETURN_IF_ERROR(CheckOpen(f));
  if (!f->readahead.empty()) co_return TakeReadahead(f.get(), max_bytes);
  internal::Deadline deadline(timeout);
  PICOS_CO_RETURN_IF_ERROR(co_await WaitIdle(f, deadline.Remaining()));
  if (!f->readahead.empty()) co_return TakeReadahead(f.get(), max_bytes);
  PICOS_CO_RETURN_IF_ERROR(CheckOpen(f));
  auto op = NewOp(OpKind::kRead, f);
  op->buf.resize(max_bytes);
  uv_buf_t b = uv_buf_init(op->buf.data(), static_cast<unsigned>(max_bytes));
  Arm(op);
  PICOS_CO_RETURN_IF_ERROR(Submitted(
      op, uv_fs_read(f->loop, &op->req, f->fd, &b, 1, f->seekable ? f->pos : -1, OnFsDone),
      "read"));
  PICOS_CO_RETURN_IF_ERROR(co_await AwaitOp(op, deadline.Remaining()));
  if (op->result < 0) {
    co_return UvStatus(static_cast<int>(op->result), absl::StrCat("read ", Quoted(path_)).c_str());
  }
  co_return TakeReadahead(f.get(), max_bytes);
}

Task<absl::Status> File::Write(std::string data, absl::Duration timeout) {
  std::shared_ptr<FileState> f = state_;
  PICOS_CO_RETURN_IF_ERROR(CheckOpen(f));
  internal::Deadline deadline(timeout);
  PICOS_CO_RETURN_IF_ERROR(co_await WaitIdle(f, deadline.Remaining()));
  if (!f->late_error.ok()) co_return std::exchange(f->late_error, absl::OkStatus());
  // A read-ahead left by a timed-out Read is discarded: the write goes where
  // the caller believes the position is.
  f->pos -= static_cast<int64_t>(f->readahead.size());
  f->readahead.clear();
  auto bytes = std::make_shared<const std::string>(std::move(data));
  size_t written = 0;
  // Each round writes at least one byte or returns.
  for (size_t round = 0; written < bytes->size() && round <= bytes->size(); ++round) {
    PICOS_CO_RETURN_IF_ERROR(CheckOpen(f));
    size_t n = std::min(kWriteChunk, bytes->size() - written);
    auto op = NewOp(OpKind::kWrite, f);
    op->data = bytes;
    uv_buf_t b = uv_buf_init(const_cast<char*>(bytes->data()) + written, static_cast<unsigned>(n));
    int64_t offset = (f->seekable && !f->append) ? f->pos : -1;
    Arm(op);
    PICOS_CO_RETURN_IF_ERROR(
        Submitted(op, uv_fs_write(f->loop, &op->req, f->fd, &b, 1, offset, OnFsDone), "write"));
    absl::Status st = co_await AwaitOp(op, deadline.Remaining());
    if (!st.ok()) {
      if (st.code() == absl::StatusCode::kDeadlineExceeded) {
        co_return absl::DeadlineExceededError(absl::StrCat(
            "write ", Quoted(path_), " timed out after ", written, " of ", bytes->size(), " bytes"));
      }
      co_return st;
    }
    if (op->result < 0) {
      co_return UvStatus(static_cast<int>(op->result), absl::StrCat("write ", Quoted(path_)).c_str());
    }
    if (op->result == 0) co_return absl::DataLossError(absl::StrCat("write ", Quoted(path_), " wrote nothing"));
    written += static_cast<size_t>(op->result);
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
  PICOS_CO_RETURN_IF_ERROR(co_await WaitIdle(f, absl::InfiniteDuration()));
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
  struct stat st;
  if (fstat(f->fd, &st) != 0) co_return absl::ErrnoToStatus(errno, "fstat");
  co_return static_cast<int64_t>(st.st_size);
}

Task<absl::Status> File::Sync() {
  std::shared_ptr<FileState> f = state_;
  PICOS_CO_RETURN_IF_ERROR(CheckOpen(f));
  PICOS_CO_RETURN_IF_ERROR(co_await WaitIdle(f, absl::InfiniteDuration()));
  auto op = NewOp(OpKind::kFsync, f);
  Arm(op);
  PICOS_CO_RETURN_IF_ERROR(Submitted(op, uv_fs_fsync(f->loop, &op->req, f->fd, OnFsDone), "fsync"));
  PICOS_CO_RETURN_IF_ERROR(co_await AwaitOp(op, absl::InfiniteDuration()));
  co_return UvStatus(static_cast<int>(op->result), "fsync");
}

Task<absl::Status> File::Close() {
  std::shared_ptr<FileState> f = state_;
  if (f->closed) co_return absl::OkStatus();
  PICOS_CO_RETURN_IF_ERROR(co_await WaitIdle(f, absl::InfiniteDuration()));
  if (f->closed) co_return absl::OkStatus();
  f->closed = true;
  absl::Status late = std::exchange(f->late_error, absl::OkStatus());
  auto op = NewOp(OpKind::kClose, f);
  uv_file fd = std::exchange(f->fd, -1);
  Arm(op);
  PICOS_CO_RETURN_IF_ERROR(Submitted(op, uv_fs_close(f->loop, &op->req, fd, OnFsDone), "close"));
  PICOS_CO_RETURN_IF_ERROR(co_await AwaitOp(op, absl::InfiniteDuration()));
  if (!late.ok()) co_return late;
  co_return UvStatus(static_cast<int>(op->result), absl::StrCat("close ", Quoted(path_)).c_str());
}

Task<absl::StatusOr<std::string>> File::ReadFile(std::string path, size_t limit) {
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<File> f, co_await Open(path, O_RDONLY));
  std::string out;
  // Each round reads at least one byte or ends.
  for (size_t round = 0; round <= limit + 1; ++round) {
    PICOS_CO_ASSIGN_OR_RETURN(std::string chunk,
                              co_await f->Read(std::min(kReadFileChunk, limit + 1 - out.size())));
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
