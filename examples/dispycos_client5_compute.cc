// The computation of dispycos_client5 (pycos dispycos_client5.py's
// rtask with dispycos_client5_proc.py), a shared library built with
// picos_computation: a job that drives an external program through pipes,
// streaming the client's messages to its stdin and its stdout lines back as
// messages. It links only compute/export.h; the program is started with
// posix_spawn and read with poll, on the job's own thread.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "compute/export.h"

extern char** environ;

namespace {

using picos::compute::Job;

constexpr size_t kMaxLine = 64 << 10;  // a longer line is cut there

// The programs a client may ask for (a fixed list: a job does not run
// whatever its argument names).
std::vector<std::string> Program(std::string_view name) {
  if (name == "upper") return {"sed", "-u", "s/.*/\\U&/"};  // line by line, unbuffered
  if (name == "sort") return {"env", "LC_ALL=C", "sort"};   // all at the end, in byte order
  return {};
}

// Sends every complete line of `buf` (without its newline), keeps the rest.
bool SendLines(Job& job, std::string* buf, bool flush) {
  size_t start = 0;
  for (size_t nl; (nl = buf->find('\n', start)) != std::string::npos; start = nl + 1) {
    if (job.Send(std::string_view(*buf).substr(start, nl - start)) != Job::kOk) return false;
  }
  buf->erase(0, start);
  if (buf->size() >= kMaxLine || (flush && !buf->empty())) {
    if (job.Send(*buf) != Job::kOk) return false;
    buf->clear();
  }
  return true;
}

// "<program>" ("upper" or "sort") -> starts it with pipes to its stdin and
// from its stdout; each message the job receives is written to its stdin
// as a line, until "end" (pycos: None), which closes its stdin; each line
// it prints is sent to the client. Answers "exit <status>" once it ended.
// Cancelled, it kills the program (its pid only) and fails.
int Pipe(Job& job, std::string* out) {
  const std::vector<std::string> argv_s = Program(job.arg());
  if (argv_s.empty()) {
    *out = "pipe wants a program: upper or sort";
    return 1;
  }
  int in[2], outp[2];
  if (pipe2(in, O_CLOEXEC) != 0) {
    *out = std::string("pipe: ") + std::strerror(errno);
    return 1;
  }
  if (pipe2(outp, O_CLOEXEC) != 0) {
    *out = std::string("pipe: ") + std::strerror(errno);
    close(in[0]);
    close(in[1]);
    return 1;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
  std::vector<char*> argv;
  for (const std::string& a : argv_s) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int spawned = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(outp[1]);
  if (spawned != 0) {
    close(in[1]);
    close(outp[0]);
    *out = "cannot start " + argv_s[0] + ": " + std::strerror(spawned);
    return 1;
  }
  int to_program = in[1];
  std::string buf, message;
  bool cancelled = false, failed = false;
  char chunk[4096];
  for (;;) {
    // Its output first (waiting up to 5 ms), then the client's next line.
    pollfd p{outp[0], POLLIN, 0};
    const int ready = poll(&p, 1, 5);
    if (ready > 0) {
      const ssize_t n = read(outp[0], chunk, sizeof chunk);
      if (n <= 0) break;  // it closed its stdout: it is ending
      buf.append(chunk, static_cast<size_t>(n));
      if (!SendLines(job, &buf, false)) {
        failed = true;
        break;
      }
      continue;
    }
    if (to_program < 0) {  // only its output is left
      if (job.cancelled()) {
        cancelled = true;
        break;
      }
      continue;
    }
    const Job::Code rc = job.Receive(&message, std::chrono::milliseconds(5));
    if (rc == Job::kDeadlineExceeded) continue;
    if (rc != Job::kOk) {
      cancelled = true;
      break;
    }
    if (message == "end") {
      close(to_program);
      to_program = -1;
      continue;
    }
    message.push_back('\n');
    if (write(to_program, message.data(), message.size()) != static_cast<ssize_t>(message.size())) {
      failed = true;
      break;
    }
  }
  if (!cancelled && !failed) failed = !SendLines(job, &buf, true);
  if (to_program >= 0) close(to_program);
  close(outp[0]);
  if (cancelled || failed) kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  if (cancelled || failed) {
    *out = cancelled ? "cancelled" : "the program's output could not be sent";
    return 1;
  }
  *out = "exit " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  return 0;
}

}  // namespace

PICOS_COMPUTE_JOB(pipe, Pipe);
