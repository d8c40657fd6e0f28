#include "core/io/process.h"

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/io/io_internal.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/io/stream.h"
#include "core/io/uv_stream_internal.h"

namespace picos {
namespace internal {

// The child's process handle and how it ended. Owned by its Process; freed
// in the handle's close callback.
struct ProcState {
  uv_process_t handle;
  ExitStatus status;  // set when `exit` is done
  Completion exit;
};

}  // namespace internal

namespace {

using internal::ProcState;

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

// Why `dir` cannot be a child's working directory, or OK if it can. Runs
// only after a spawn failed, to name the cause; blocking is then harmless.
absl::Status CheckWorkingDirectory(const std::string& dir) {
  std::string shown = absl::StrCat("working directory '", dir.substr(0, 256), "'");
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      return absl::NotFoundError(absl::StrCat(shown, " does not exist"));
    }
    return absl::ErrnoToStatus(err, shown);
  }
  if (!S_ISDIR(st.st_mode)) return absl::InvalidArgumentError(absl::StrCat(shown, " is not a directory"));
  if (access(dir.c_str(), X_OK) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(shown, " may not be entered"));
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
//
// Thin doors onto the engine's Streams: they add only "not a pipe" and
// "stdin closed". They return the engine's task as it is (no coroutine of
// their own), so nothing here runs after the wait, and a Process destroyed
// while a task waits in one of them harms no one (core/io/uv_stream_internal.h).

namespace {

Task<absl::Status> Fail(absl::Status st) { co_return st; }
Task<absl::StatusOr<std::string>> FailRead(absl::Status st) { co_return st; }

}  // namespace

PipeWriter::PipeWriter() = default;
PipeWriter::~PipeWriter() = default;

Task<absl::Status> PipeWriter::Write(std::string data, absl::Duration timeout) {
  if (closed_) return Fail(absl::FailedPreconditionError("the child's stdin is closed"));
  if (stream_ == nullptr) {
    return Fail(absl::FailedPreconditionError("the child's stdin is not a pipe"));
  }
  return stream_->Write(std::move(data), timeout);
}

PipeReader::PipeReader() = default;
PipeReader::~PipeReader() = default;

Task<absl::StatusOr<std::string>> PipeReader::Read(size_t max_bytes, absl::Duration timeout) {
  if (stream_ == nullptr) {
    return FailRead(absl::FailedPreconditionError("the child's stream is not a pipe"));
  }
  return stream_->Read(max_bytes, timeout);
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
  // Each pipe is a fresh handle of the stream engine; uv_spawn connects it
  // to the child, and it then becomes the Stream behind in(), out(), err().
  internal::UvStreamState* pipes[3] = {nullptr, nullptr, nullptr};
  StreamOptions pipe_options;
  pipe_options.max_read_buffer = options.read_buffer_limit;
  const StdioMode modes[3] = {options.stdin_mode, options.stdout_mode, options.stderr_mode};
  const int given_fds[3] = {stdin_fd, stdout_fd, -1};
  uv_stdio_container_t stdio[3];
  for (int i = 0; i < 3; ++i) {
    if (given_fds[i] >= 0) {
      stdio[i].flags = UV_INHERIT_FD;
      stdio[i].data.fd = given_fds[i];
    } else if (modes[i] == StdioMode::kPipe) {
      pipes[i] = internal::NewUvStreamState(loop, internal::UvKind::kPipe, pipe_options);
      stdio[i].flags = static_cast<uv_stdio_flags>(
          UV_CREATE_PIPE | (i == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE));
      stdio[i].data.stream = internal::UvHandle(pipes[i]);
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
    ps->status.code = exit_status;
    ps->status.signal = term_signal;
    ps->exit.Complete();
  };
  int rc = uv_spawn(loop, &proc->handle, &o);
  if (rc < 0) {
    // The handle was initialised even though spawning failed: close it too.
    uv_close(reinterpret_cast<uv_handle_t*>(&proc->handle),
             [](uv_handle_t* h) { delete static_cast<ProcState*>(h->data); });
    for (internal::UvStreamState* s : pipes) {
      if (s != nullptr) internal::CloseUvStreamState(s);
    }
    // libuv reports a failed chdir in the child with the same codes as a
    // missing program (ENOENT, EACCES, ENOTDIR): tell them apart.
    if (!options.cwd.empty() && (rc == UV_ENOENT || rc == UV_EACCES || rc == UV_ENOTDIR)) {
      absl::Status cwd = CheckWorkingDirectory(options.cwd);
      if (!cwd.ok()) return cwd;
    }
    return UvStatus(rc, absl::StrCat("spawn ", options.program.substr(0, 256)).c_str());
  }
  p->pid_ = proc->handle.pid;
  p->proc_ = proc;
  if (pipes[0]) p->in_.stream_ = internal::MakeUvStream(pipes[0], "pipe");
  if (pipes[1]) p->out_reader_.stream_ = internal::MakeUvStream(pipes[1], "pipe");
  if (pipes[2]) p->err_reader_.stream_ = internal::MakeUvStream(pipes[2], "pipe");
  // Read output from the start, so that a child writing both streams never
  // blocks on the one the task is not reading yet.
  for (PipeReader* r : {&p->out_reader_, &p->err_reader_}) {
    if (r->stream_ != nullptr) r->stream_->StartReadAhead();
  }
  return p;
}

Process::~Process() {
  // Closing first makes a child blocked on a write see EPIPE; each pipe's
  // state is freed by the engine once libuv is done with it.
  in_.stream_.reset();
  out_reader_.stream_.reset();
  err_reader_.stream_.reset();
  if (proc_ == nullptr) return;
  bool running = !proc_->exit.done();
  if (running) uv_process_kill(&proc_->handle, SIGKILL);
  // Closing the handle stops libuv from reaping the child, so a child still
  // running is reaped here; SIGKILL makes that wait short.
  uv_close(reinterpret_cast<uv_handle_t*>(&proc_->handle),
           [](uv_handle_t* h) { delete static_cast<ProcState*>(h->data); });
  if (running) ReapKilled(pid_);
}

absl::Status Process::CloseStdin() {
  if (in_.closed_) return absl::OkStatus();
  if (in_.stream_ == nullptr) {
    return absl::FailedPreconditionError("the child's stdin is not a pipe");
  }
  in_.closed_ = true;
  in_.stream_.reset();  // closes the pipe: the child reads end-of-file
  return absl::OkStatus();
}

bool Process::exited() const { return proc_ != nullptr && proc_->exit.done(); }

absl::Status Process::Kill(int signum) {
  if (signum < 1 || signum > 64) {
    return absl::InvalidArgumentError(absl::StrCat("no signal ", signum));
  }
  if (exited()) return absl::FailedPreconditionError("the child has already exited");
  return UvStatus(uv_process_kill(&proc_->handle, signum), "kill child process");
}

Task<absl::StatusOr<ExitStatus>> Process::Wait(absl::Duration timeout) {
  ProcState* ps = proc_;
  const internal::Deadline deadline(timeout);
  PICOS_CO_RETURN_IF_ERROR(co_await ps->exit.Wait(deadline));
  co_return ps->status;
}

Task<absl::StatusOr<ProcessOutput>> Process::Communicate(std::string input, size_t limit,
                                                         absl::Duration timeout) {
  if ((in_.stream_ == nullptr && !in_.closed_) || out_reader_.stream_ == nullptr ||
      err_reader_.stream_ == nullptr) {
    co_return absl::FailedPreconditionError("Communicate needs stdin, stdout and stderr as pipes");
  }
  if (limit == 0 || limit > (size_t{1} << 30)) {
    co_return absl::InvalidArgumentError("Communicate limit outside [1, 1 GiB]");
  }
  const internal::Deadline deadline(timeout);
  // Let both outputs be read in the background up to the limit while the
  // input is written: the child may need its output drained to go on reading.
  for (internal::UvStream* s : {out_reader_.stream_.get(), err_reader_.stream_.get()}) {
    s->set_max_read_buffer(std::max(s->max_read_buffer(), limit + 1));
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
  const internal::Deadline deadline(timeout);
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
