#include "core/process.h"

#include <sys/types.h>
#include <sys/wait.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/io_internal.h"
#include "core/log.h"
#include "core/scheduler.h"
#include "core/status.h"

namespace picos {
namespace internal {

// One pipe to a child, read or written. Owned by its Process; freed in the
// pipe's close callback, after libuv has called back every pending write.
struct PipeState {
  uv_pipe_t pipe;
  bool closing = false;
  // Read side: bytes read in the background and not yet taken.
  std::string buf;
  size_t head = 0;
  size_t limit = 0;
  bool reading = false;
  bool eof = false;
  absl::Status error;
  WaitSlot reader;
  std::unique_ptr<char[]> scratch;  // libuv reads into this, then we append

  size_t buffered() const { return buf.size() - head; }
};

// The child's process handle and how it ended. Owned by its Process; freed
// in the handle's close callback.
struct ProcState {
  uv_process_t handle;
  bool exited = false;
  ExitStatus status;
  WaitSlot waiter;
};

}  // namespace internal

namespace {

using internal::PipeState;
using internal::ProcState;

constexpr size_t kScratchSize = 64 * 1024;

// Closes the pipe and forgets it: the state is freed in the close callback.
void ClosePipe(PipeState*& state) {
  PipeState* s = std::exchange(state, nullptr);
  if (s == nullptr || s->closing) return;
  s->closing = true;
  s->reader.Notify();
  uv_close(reinterpret_cast<uv_handle_t*>(&s->pipe),
           [](uv_handle_t* h) { delete static_cast<PipeState*>(h->data); });
}

void StartReading(PipeState* s);

void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* s = static_cast<PipeState*>(stream->data);
  if (nread > 0) {
    s->buf.append(buf->base, static_cast<size_t>(nread));
    if (s->buffered() >= s->limit) {
      // Full: stop reading so that the child blocks on its writes.
      uv_read_stop(stream);
      s->reading = false;
    }
  } else if (nread == UV_EOF) {
    s->eof = true;
    uv_read_stop(stream);
    s->reading = false;
  } else if (nread < 0) {
    s->error = UvStatus(static_cast<int>(nread), "read from child process");
    uv_read_stop(stream);
    s->reading = false;
  } else {
    return;  // EAGAIN: nothing happened
  }
  s->reader.Notify();
}

void StartReading(PipeState* s) {
  if (s->reading || s->closing || s->eof || !s->error.ok() || s->buffered() >= s->limit) return;
  if (!s->scratch) s->scratch = std::make_unique<char[]>(kScratchSize);
  int rc = uv_read_start(
      reinterpret_cast<uv_stream_t*>(&s->pipe),
      [](uv_handle_t* h, size_t, uv_buf_t* b) {
        auto* st = static_cast<PipeState*>(h->data);
        *b = uv_buf_init(st->scratch.get(), kScratchSize);
      },
      OnRead);
  if (rc < 0) {
    s->error = UvStatus(rc, "read from child process");
  } else {
    s->reading = true;
  }
}

// A write in flight: its data and where its result goes. Freed in the write
// callback; the result is shared with the writing task, which may be gone.
struct WriteResult {
  bool done = false;
  int status = 0;
  internal::WaitSlot slot;
};
struct WriteOp {
  uv_write_t req;
  std::string data;
  std::shared_ptr<WriteResult> result;
};

absl::Status ValidateString(const std::string& s, const char* what) {
  if (s.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(what, " contains a NUL byte"));
  }
  return absl::OkStatus();
}

absl::Status ValidateOptions(const ProcessOptions& o) {
  if (o.program.empty()) return absl::InvalidArgumentError("empty program name");
  PICOS_RETURN_IF_ERROR(ValidateString(o.program, "program name"));
  PICOS_RETURN_IF_ERROR(ValidateString(o.cwd, "working directory"));
  size_t count = o.args.size() + (o.env ? o.env->size() : 0);
  if (count > kMaxProcessArgs) {
    return absl::InvalidArgumentError(
        absl::StrCat(count, " arguments and environment entries; at most ", kMaxProcessArgs));
  }
  size_t bytes = o.program.size();
  for (const std::string& a : o.args) {
    PICOS_RETURN_IF_ERROR(ValidateString(a, "argument"));
    bytes += a.size() + 1;
  }
  if (o.env) {
    for (const std::string& e : *o.env) {
      PICOS_RETURN_IF_ERROR(ValidateString(e, "environment entry"));
      if (e.find('=') == std::string::npos || e[0] == '=') {
        return absl::InvalidArgumentError(
            absl::StrCat("environment entry is not NAME=value: ", e.substr(0, 64)));
      }
      bytes += e.size() + 1;
    }
  }
  if (bytes > kMaxProcessArgBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("arguments and environment take ", bytes, " bytes; at most ",
                     kMaxProcessArgBytes));
  }
  if (o.read_buffer_limit < 1024 || o.read_buffer_limit > (size_t{1} << 30)) {
    return absl::InvalidArgumentError("read_buffer_limit outside [1 KiB, 1 GiB]");
  }
  return absl::OkStatus();
}

// Reaps a killed child that libuv no longer watches. The child was sent
// SIGKILL, so this waits only for the kernel to finish it off.
void ReapKilled(int pid) {
  for (int i = 0; i < 1000; ++i) {
    int st;
    pid_t r = waitpid(pid, &st, 0);
    if (r == pid || (r < 0 && errno != EINTR)) return;
  }
}

}  // namespace

std::string ExitStatus::ToString() const {
  if (signal != 0) return absl::StrCat("killed by signal ", signal, " (", strsignal(signal), ")");
  return absl::StrCat("exit code ", code);
}

// --- PipeWriter / PipeReader ---

Task<absl::Status> PipeWriter::Write(std::string data, absl::Duration timeout) {
  PipeState* s = state_;
  if (closed_) co_return absl::FailedPreconditionError("the child's stdin is closed");
  if (s == nullptr) co_return absl::FailedPreconditionError("the child's stdin is not a pipe");
  if (data.empty()) co_return absl::OkStatus();
  auto result = std::make_shared<WriteResult>();
  auto* op = new WriteOp{{}, std::move(data), result};
  op->req.data = op;
  uv_buf_t b = uv_buf_init(op->data.data(), static_cast<unsigned>(op->data.size()));
  int rc = uv_write(&op->req, reinterpret_cast<uv_stream_t*>(&s->pipe), &b, 1,
                    [](uv_write_t* req, int status) {
                      auto* w = static_cast<WriteOp*>(req->data);
                      w->result->done = true;
                      w->result->status = status;
                      w->result->slot.Notify();
                      delete w;
                    });
  if (rc < 0) {
    delete op;
    co_return UvStatus(rc, "write to child process");
  }
  // A wake comes only from the write callback, so two rounds suffice.
  for (int round = 0; round < 4 && !result->done; ++round) {
    absl::Status st = co_await internal::SlotAwaiter(&result->slot, result->done, timeout);
    if (!st.ok()) co_return st;
  }
  if (!result->done) co_return absl::InternalError("write woke without finishing");
  co_return UvStatus(result->status, "write to child process");
}

Task<absl::StatusOr<std::string>> PipeReader::Read(size_t max_bytes, absl::Duration timeout) {
  PICOS_CO_RETURN_IF_ERROR(ValidateReadSize(max_bytes));
  PipeState* s = state_;
  if (s == nullptr) co_return absl::FailedPreconditionError("the child's stream is not a pipe");
  internal::Deadline deadline(timeout);
  // Every wake follows a change of the buffer's state; the deadline bounds
  // the rounds in time, the count in number.
  for (int round = 0; round < 1'000'000; ++round) {
    if (s->buffered() > 0) {
      size_t n = std::min(max_bytes, s->buffered());
      std::string out = s->buf.substr(s->head, n);
      s->head += n;
      if (s->head == s->buf.size()) {
        s->buf.clear();
        s->head = 0;
      } else if (s->head > s->buf.size() / 2) {
        s->buf.erase(0, s->head);
        s->head = 0;
      }
      StartReading(s);  // room again: let the child go on
      co_return out;
    }
    if (s->eof || s->closing) co_return std::string();
    if (!s->error.ok()) co_return s->error;
    StartReading(s);
    if (!s->error.ok()) co_return s->error;
    absl::Status st = co_await internal::SlotAwaiter(&s->reader, false, deadline.Remaining());
    if (!st.ok()) co_return st;
  }
  co_return absl::InternalError("pipe read made no progress");
}

// --- Process ---

absl::StatusOr<std::unique_ptr<Process>> Process::Spawn(ProcessOptions options) {
  return SpawnWithFds(options, -1, -1);
}

absl::StatusOr<std::unique_ptr<Process>> Process::SpawnWithFds(const ProcessOptions& options,
                                                               int stdin_fd, int stdout_fd) {
  Scheduler* sched = Scheduler::Current();
  if (sched == nullptr) {
    return absl::FailedPreconditionError("Process::Spawn outside a scheduler's thread");
  }
  PICOS_RETURN_IF_ERROR(ValidateOptions(options));
  uv_loop_t* loop = sched->uv_loop();

  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(options.program.c_str()));
  for (const std::string& a : options.args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  if (options.env) {
    for (const std::string& e : *options.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
  }

  std::unique_ptr<Process> p(new Process());
  PipeState* pipes[3] = {nullptr, nullptr, nullptr};
  const StdioMode modes[3] = {options.stdin_mode, options.stdout_mode, options.stderr_mode};
  const int given_fds[3] = {stdin_fd, stdout_fd, -1};
  uv_stdio_container_t stdio[3];
  for (int i = 0; i < 3; ++i) {
    if (given_fds[i] >= 0) {
      stdio[i].flags = UV_INHERIT_FD;
      stdio[i].data.fd = given_fds[i];
    } else if (modes[i] == StdioMode::kPipe) {
      pipes[i] = new PipeState;
      pipes[i]->limit = options.read_buffer_limit;
      PICOS_ASSERT(uv_pipe_init(loop, &pipes[i]->pipe, 0) == 0);
      pipes[i]->pipe.data = pipes[i];
      stdio[i].flags = static_cast<uv_stdio_flags>(
          UV_CREATE_PIPE | (i == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE));
      stdio[i].data.stream = reinterpret_cast<uv_stream_t*>(&pipes[i]->pipe);
    } else if (modes[i] == StdioMode::kInherit) {
      stdio[i].flags = UV_INHERIT_FD;
      stdio[i].data.fd = i;
    } else {
      stdio[i].flags = UV_IGNORE;  // libuv opens /dev/null for fds 0-2
    }
  }

  auto* proc = new ProcState;
  proc->handle.data = proc;
  uv_process_options_t o;
  std::memset(&o, 0, sizeof(o));
  o.file = options.program.c_str();
  o.args = argv.data();
  o.env = options.env ? envp.data() : nullptr;
  o.cwd = options.cwd.empty() ? nullptr : options.cwd.c_str();
  o.stdio = stdio;
  o.stdio_count = 3;
  o.exit_cb = [](uv_process_t* h, int64_t exit_status, int term_signal) {
    auto* ps = static_cast<ProcState*>(h->data);
    ps->exited = true;
    ps->status.code = exit_status;
    ps->status.signal = term_signal;
    ps->waiter.Notify();
  };
  int rc = uv_spawn(loop, &proc->handle, &o);
  if (rc < 0) {
    // The handle was initialised even though spawning failed: close it too.
    uv_close(reinterpret_cast<uv_handle_t*>(&proc->handle),
             [](uv_handle_t* h) { delete static_cast<ProcState*>(h->data); });
    for (PipeState* s : pipes) ClosePipe(s);
    return UvStatus(rc, absl::StrCat("spawn ", options.program.substr(0, 256)).c_str());
  }
  p->pid_ = proc->handle.pid;
  p->proc_ = proc;
  p->in_.state_ = pipes[0];
  p->out_reader_.state_ = pipes[1];
  p->err_reader_.state_ = pipes[2];
  // Read output from the start, so that a child writing both streams never
  // blocks on the one the task is not reading yet.
  if (pipes[1]) StartReading(pipes[1]);
  if (pipes[2]) StartReading(pipes[2]);
  return p;
}

Process::~Process() {
  ClosePipe(in_.state_);
  ClosePipe(out_reader_.state_);
  ClosePipe(err_reader_.state_);
  if (proc_ == nullptr) return;
  bool running = !proc_->exited;
  if (running) uv_process_kill(&proc_->handle, SIGKILL);
  // Closing the handle stops libuv from reaping the child, so a child still
  // running is reaped here; SIGKILL makes that wait short.
  uv_close(reinterpret_cast<uv_handle_t*>(&proc_->handle),
           [](uv_handle_t* h) { delete static_cast<ProcState*>(h->data); });
  if (running) ReapKilled(pid_);
}

absl::Status Process::CloseStdin() {
  if (in_.closed_) return absl::OkStatus();
  if (in_.state_ == nullptr) return absl::FailedPreconditionError("the child's stdin is not a pipe");
  in_.closed_ = true;
  ClosePipe(in_.state_);
  return absl::OkStatus();
}

bool Process::exited() const { return proc_ != nullptr && proc_->exited; }

absl::Status Process::Kill(int signum) {
  if (signum < 1 || signum > 64) {
    return absl::InvalidArgumentError(absl::StrCat("no signal ", signum));
  }
  if (exited()) return absl::FailedPreconditionError("the child has already exited");
  return UvStatus(uv_process_kill(&proc_->handle, signum), "kill child process");
}

Task<absl::StatusOr<ExitStatus>> Process::Wait(absl::Duration timeout) {
  ProcState* ps = proc_;
  // The only wake is the exit callback; a few rounds allow for nothing else.
  for (int round = 0; round < 4 && !ps->exited; ++round) {
    absl::Status st = co_await internal::SlotAwaiter(&ps->waiter, ps->exited, timeout);
    if (!st.ok()) co_return st;
  }
  if (!ps->exited) co_return absl::InternalError("wait woke before the child exited");
  co_return ps->status;
}

Task<absl::StatusOr<ProcessOutput>> Process::Communicate(std::string input, size_t limit,
                                                         absl::Duration timeout) {
  if ((in_.state_ == nullptr && !in_.closed_) || out_reader_.state_ == nullptr || err_reader_.state_ == nullptr) {
    co_return absl::FailedPreconditionError("Communicate needs stdin, stdout and stderr as pipes");
  }
  if (limit == 0 || limit > (size_t{1} << 30)) {
    co_return absl::InvalidArgumentError("Communicate limit outside [1, 1 GiB]");
  }
  internal::Deadline deadline(timeout);
  // Let both outputs be read in the background up to the limit while the
  // input is written: the child may need its output drained to go on reading.
  for (PipeState* s : {out_reader_.state_, err_reader_.state_}) {
    s->limit = std::max(s->limit, limit + 1);
    StartReading(s);
  }
  if (!in_.closed_) {
    absl::Status st = co_await in_.Write(std::move(input), deadline.Remaining());
    // A child that exits without reading all its input is not an error
    // of Communicate: its output and status say what happened.
    if (!st.ok() && st.code() != absl::StatusCode::kUnavailable) co_return st;
    PICOS_CO_RETURN_IF_ERROR(CloseStdin());
  }
  ProcessOutput result;
  PICOS_CO_ASSIGN_OR_RETURN(result.out, co_await out_.ReadAll(limit, deadline.Remaining()));
  PICOS_CO_ASSIGN_OR_RETURN(result.err, co_await err_.ReadAll(limit, deadline.Remaining()));
  PICOS_CO_ASSIGN_OR_RETURN(result.status, co_await Wait(deadline.Remaining()));
  co_return result;
}

// --- Pipeline ---

absl::StatusOr<std::unique_ptr<Pipeline>> Pipeline::Spawn(std::vector<ProcessOptions> stages) {
  if (stages.empty() || stages.size() > kMaxPipelineStages) {
    return absl::InvalidArgumentError(
        absl::StrCat("a pipeline has 1 to ", kMaxPipelineStages, " stages, not ", stages.size()));
  }
  std::unique_ptr<Pipeline> pl(new Pipeline());
  int prev_read_fd = -1;  // read end of the pipe from the previous stage
  for (size_t i = 0; i < stages.size(); ++i) {
    int fds[2] = {-1, -1};
    bool last = i + 1 == stages.size();
    if (!last) {
      // Close-on-exec on both ends: only the stage given an end (through
      // dup2 onto its stdin or stdout) holds it, so end-of-file arrives as
      // soon as the writer exits.
      int rc = uv_pipe(fds, 0, 0);
      if (rc < 0) {
        if (prev_read_fd >= 0) uv_fs_close(nullptr, nullptr, prev_read_fd, nullptr);
        return UvStatus(rc, "pipe between stages");
      }
    }
    absl::StatusOr<std::unique_ptr<Process>> p =
        Process::SpawnWithFds(stages[i], prev_read_fd, last ? -1 : fds[1]);
    // The children have their copies now; this process keeps none.
    if (prev_read_fd >= 0) close(prev_read_fd);
    if (fds[1] >= 0) close(fds[1]);
    prev_read_fd = fds[0];
    if (!p.ok()) {
      if (prev_read_fd >= 0) close(prev_read_fd);
      return p.status();  // the stages started are killed with `pl`
    }
    pl->stages_.push_back(*std::move(p));
  }
  return pl;
}

Task<absl::StatusOr<std::vector<ExitStatus>>> Pipeline::Wait(absl::Duration timeout) {
  internal::Deadline deadline(timeout);
  std::vector<ExitStatus> out;
  for (auto& p : stages_) {
    PICOS_CO_ASSIGN_OR_RETURN(ExitStatus st, co_await p->Wait(deadline.Remaining()));
    out.push_back(st);
  }
  co_return out;
}

void Pipeline::KillAll(int signum) {
  for (auto& p : stages_) {
    if (!p->exited()) (void)p->Kill(signum);
  }
}

}  // namespace picos
