// Pipes to child processes (pycos's AsyncPipe): spawn a program, write its
// standard input, read its standard output and error, close its input, wait
// for its exit status, kill it; chain programs into a pipeline.
//
//   PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::Process> p,
//                             picos::Process::Spawn({.program = "sort"}));
//   PICOS_CO_RETURN_IF_ERROR(co_await p->in().Write("b\na\n"));
//   PICOS_CO_RETURN_IF_ERROR(p->CloseStdin());                 // EOF for sort
//   PICOS_CO_ASSIGN_OR_RETURN(std::string out, co_await p->out().ReadAll(1 << 20));
//   PICOS_CO_ASSIGN_OR_RETURN(picos::ExitStatus st, co_await p->Wait());
//
//   // printf 'b\na\nb\n' | sort | uniq -c
//   auto chain = picos::Pipeline::Spawn({{.program = "sort"}, {.program = "uniq", .args = {"-c"}}});
//
// Threads: a Process belongs to the scheduler whose task spawned it; every
// call is made on that scheduler's thread (from its tasks), and the object
// must be destroyed there, before the scheduler. Calls returning Task<...>
// suspend the task (co_await them); the others do not.
//
// Output is read in the background as soon as the child starts, into a
// buffer of `read_buffer_limit` bytes per stream; when it is full the pipe is
// no longer read, so a child that writes faster than the task reads is held
// back (backpressure) instead of filling memory. Reading stdout and stderr
// from one task therefore cannot deadlock while each stays under that limit.
//
// Destroying a Process whose child still runs kills it (SIGKILL) and reaps
// it: no child outlives its Process, and no zombie is left. A child that
// exits while it is written to makes the write fail with kUnavailable (the
// scheduler ignores SIGPIPE).
#ifndef PICOS_CORE_IO_PROCESS_H_
#define PICOS_CORE_IO_PROCESS_H_

#include <csignal>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/io/io.h"
#include "core/kernel/task.h"
#include "core/kernel/value.h"

namespace picos {

namespace internal {
struct ProcState;
class UvStream;  // core/io/uv_stream_internal.h
}  // namespace internal

// What a child's standard stream is connected to.
enum class StdioMode {
  kPipe,     // a pipe to this process: in(), out(), err()
  kInherit,  // the same stream as this process's
  kNull,     // /dev/null
};

// Bounds on what Spawn accepts from its caller.
inline constexpr size_t kMaxProcessArgs = 4096;
inline constexpr size_t kMaxProcessArgBytes = size_t{1} << 20;  // args + env, total
inline constexpr size_t kMaxPipelineStages = 16;

struct ProcessOptions {
  // The program: a path, or a name looked up in PATH (the PATH of `env`
  // when it is given, else of this process).
  std::string program;
  // Its arguments, after argv[0] (which is `program`).
  std::vector<std::string> args;
  // Its whole environment as "NAME=value" entries; unset: this process's.
  std::optional<std::vector<std::string>> env;
  // Its working directory; empty: this process's.
  std::string cwd;
  StdioMode stdin_mode = StdioMode::kPipe;
  StdioMode stdout_mode = StdioMode::kPipe;
  StdioMode stderr_mode = StdioMode::kPipe;
  // Most bytes of stdout (and of stderr) buffered before the child is held
  // back. At least 1 KiB, at most 1 GiB.
  size_t read_buffer_limit = size_t{1} << 20;
};

// How a child ended.
struct ExitStatus {
  int64_t code = 0;  // its exit code; meaningful when signal == 0
  int signal = 0;    // the signal that ended it, or 0
  bool success() const { return signal == 0 && code == 0; }
  std::string ToString() const;  // "exit code 3", "killed by signal 15"
  bool operator==(const ExitStatus&) const = default;
};

}  // namespace picos

// An exit status travels in messages as {"code": int, "signal": int}.
template <>
struct picos::ValueTraits<picos::ExitStatus> {
  static Value ToValue(const ExitStatus& s) {
    return Value::Map({{"code", s.code}, {"signal", s.signal}});
  }
  static absl::StatusOr<ExitStatus> FromValue(const Value& v) {
    ExitStatus s;
    absl::Status read = MessageReader(v).Get("code", &s.code).Get("signal", &s.signal).status();
    if (!read.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("an exit status is a map of code and signal: ", read.message()));
    }
    return s;
  }
};

namespace picos {

// Everything a child wrote, and how it ended (Process::Communicate).
struct ProcessOutput {
  std::string out;
  std::string err;
  ExitStatus status;
};

// The write end of a child's stdin (a Writer); see Process::in(). A pipe is
// a Stream (core/net/transport.h) like a socket's, with the same backpressure:
// at most 1 MiB of it waits in this process at any time.
class PipeWriter : public Writer {
 public:
  ~PipeWriter() override;
  // Completes as the child's side of the pipe takes the bytes.
  // kFailedPrecondition if stdin is not a pipe or was closed (also when
  // CloseStdin() is called while the write waits); kUnavailable if the child
  // is gone.
  Task<absl::Status> Write(std::string data,
                           absl::Duration timeout = absl::InfiniteDuration()) override;

 private:
  friend class Process;
  PipeWriter();
  std::unique_ptr<internal::UvStream> stream_;  // null when not a pipe or closed
  bool closed_ = false;                         // CloseStdin() was called
};

// The read end of a child's stdout or stderr (a Reader), read in the
// background into a bounded buffer; see Process::out().
class PipeReader : public Reader {
 public:
  ~PipeReader() override;
  // kFailedPrecondition if the stream is not a pipe.
  Task<absl::StatusOr<std::string>> Read(
      size_t max_bytes, absl::Duration timeout = absl::InfiniteDuration()) override;

 private:
  friend class Process;
  PipeReader();
  std::unique_ptr<internal::UvStream> stream_;  // null when not a pipe
};

// One running (or ended) child process. Not copyable or movable: hold it in
// the unique_ptr Spawn gives.
class Process {
 public:
  // Starts `options.program`. Scheduler thread, from a task or not; does not
  // suspend. kNotFound if the program does not exist, kPermissionDenied if
  // it may not be run, kInvalidArgument for malformed options (empty program,
  // NUL bytes, over the bounds above), kFailedPrecondition off a scheduler's
  // thread. A working directory that cannot be used is named as such:
  // kNotFound when it does not exist, kInvalidArgument when it is not a
  // directory, kPermissionDenied when it may not be entered.
  static absl::StatusOr<std::unique_ptr<Process>> Spawn(ProcessOptions options);

  // Kills the child if it still runs (SIGKILL), reaps it, closes the pipes.
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  int pid() const { return pid_; }

  // The child's stdin. Writes fail with kFailedPrecondition unless stdin is
  // kPipe.
  PipeWriter& in() { return in_; }
  // The child's stdout and stderr, buffered: Read, ReadLine, ReadExactly,
  // ReadAll. Reads fail with kFailedPrecondition unless the stream is kPipe.
  BufferedReader& out() { return out_; }
  BufferedReader& err() { return err_; }

  // Closes the child's stdin, so that it reads end-of-file. A write still in
  // progress (one that timed out) is cancelled. Does not suspend.
  // kFailedPrecondition if stdin is not a pipe; closing twice is OK.
  absl::Status CloseStdin();

  // Waits for the child to exit. Suspends the task. kDeadlineExceeded when
  // `timeout` passes first.
  Task<absl::StatusOr<ExitStatus>> Wait(absl::Duration timeout = absl::InfiniteDuration());

  // Sends `signum` (1..64) to the child. Does not suspend.
  // kFailedPrecondition if it has already exited.
  absl::Status Kill(int signum = SIGTERM);

  // True once the child has exited (as seen by the scheduler's loop).
  bool exited() const;

  // pycos's communicate(): writes `input` to stdin and closes it, while
  // stdout and stderr are collected, then waits for the exit. Stdin, stdout
  // and stderr must be pipes. kResourceExhausted if the child writes more
  // than `limit` bytes to either stream (it is not killed). `timeout` bounds
  // the whole call. Suspends the task.
  Task<absl::StatusOr<ProcessOutput>> Communicate(
      std::string input, size_t limit = size_t{64} << 20,
      absl::Duration timeout = absl::InfiniteDuration());

 private:
  friend class Pipeline;
  Process() : out_(&out_reader_), err_(&err_reader_) {}
  // Spawns with stdin/stdout taken from fds when they are >= 0 (pipelines).
  static absl::StatusOr<std::unique_ptr<Process>> SpawnWithFds(const ProcessOptions& options,
                                                               int stdin_fd, int stdout_fd);

  int pid_ = 0;
  internal::ProcState* proc_ = nullptr;  // freed in its close callback
  PipeWriter in_;
  PipeReader out_reader_;
  PipeReader err_reader_;
  BufferedReader out_;
  BufferedReader err_;
};

// Programs chained stdout to stdin, like a shell's `a | b | c` (pycos's
// AsyncPipe(first, last)). The first stage's stdin and the last stage's
// stdout follow their options; between stages the streams are joined by
// pipes (the options' stdin_mode of later stages and stdout_mode of earlier
// ones are ignored). Each stage's stderr follows its own options.
class Pipeline {
 public:
  // Starts every stage (1 to kMaxPipelineStages). If one cannot start, the
  // ones already started are killed and reaped, and its error is returned.
  // Scheduler thread; does not suspend.
  static absl::StatusOr<std::unique_ptr<Pipeline>> Spawn(std::vector<ProcessOptions> stages);

  size_t size() const { return stages_.size(); }
  Process& stage(size_t i) { return *stages_[i]; }
  // Write to first().in(), read last().out() and last().err().
  Process& first() { return *stages_.front(); }
  Process& last() { return *stages_.back(); }

  // Waits for every stage to exit; their statuses in stage order. `timeout`
  // bounds the whole call. Suspends the task.
  Task<absl::StatusOr<std::vector<ExitStatus>>> Wait(
      absl::Duration timeout = absl::InfiniteDuration());

  // Sends `signum` to every stage still running. Does not suspend.
  void KillAll(int signum = SIGTERM);

 private:
  Pipeline() = default;
  std::vector<std::unique_ptr<Process>> stages_;
};

}  // namespace picos

#endif  // PICOS_CORE_IO_PROCESS_H_
