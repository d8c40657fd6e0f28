// The computation of dispycos_client3 (pycos dispycos_client3.py's
// `compute` and its class C), a shared library built with
// picos_computation. It links only compute/export.h (compute/export.h says
// why): objects cross as text. The job sends the changed object to the
// client's results task itself (Job::Send, pycos client_task.send(obj)).
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>

#include "compute/export.h"

namespace {

// pycos's class C: an index and a number the job changes.
struct C {
  long i = 0;
  double n = 0;
};

// "C <i> <n>" (i >= 0, n in 0..60000, the milliseconds to work) -> works
// that long, replaces n with its square root (the object changed on the
// worker) and sends "C <i> <n> <pid>" to the client's task.
int Compute(picos::compute::Job& job, std::string* out) {
  const std::string_view arg = job.arg();
  C c;
  char tail = 0;
  const std::string a(arg.substr(0, 128));
  if (arg.size() > 128 || std::sscanf(a.c_str(), "C %ld %lf%c", &c.i, &c.n, &tail) != 2 || c.i < 0 ||
      !(c.n >= 0 && c.n <= 60'000)) {
    *out = "compute wants \"C <i> <n>\": i >= 0, n 0..60000";
    return 1;
  }
  usleep(static_cast<useconds_t>(c.n * 1000));
  c.n = std::sqrt(c.n);
  char buf[128];
  std::snprintf(buf, sizeof buf, "C %ld %.6f %d", c.i, c.n, static_cast<int>(getpid()));
  if (job.Send(buf) != picos::compute::Job::kOk) {
    *out = "the object could not be sent";
    return 1;
  }
  *out = "sent";
  return 0;
}

}  // namespace

PICOS_COMPUTE_JOB(compute, Compute);
