#include "testing/bench/figures.h"

#include <unistd.h>

#include <malloc.h>
#include <sys/wait.h>

#include <cstdio>

#include <cstring>
#include <fstream>
#include <string>

namespace picos::testing {

int64_t CurrentRssBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

int64_t PeakRssBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return -1;
}

double InChild(double (*fn)(int64_t), int64_t arg) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    close(fds[0]);
    // Start from a clean slate: hand the parent's free heap back to the
    // kernel, so that reusing it shows as growth, and reset the peak RSS the
    // child inherited from the parent (Linux: clear_refs "5").
    malloc_trim(0);
    if (FILE* f = std::fopen("/proc/self/clear_refs", "w")) {
      std::fputs("5", f);
      std::fclose(f);
    }
    double v = fn(arg);
    ssize_t n = write(fds[1], &v, sizeof(v));
    _exit(n == sizeof(v) ? 0 : 1);
  }
  close(fds[1]);
  double v = -1;
  ssize_t n = read(fds[0], &v, sizeof(v));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (n != sizeof(v) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
  return v;
}

}  // namespace picos::testing
