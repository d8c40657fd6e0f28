// The computation of dispycos_client2 (pycos dispycos_client2.py's
// `compute`), a shared library built with picos_computation: workers of
// picos-node dlopen it and run `compute` as jobs. It links only
// compute/export.h (compute/export.h says why).
#include <unistd.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "compute/export.h"

namespace {

// "ms" (0..60000) -> sleeps that long on its worker (a stand-in for CPU
// work: the worker runs one such job at a time), then answers
// "<host> <pid> slept <ms> ms" so the client sees where it ran.
int Compute(std::string_view arg, std::string* out) {
  int64_t ms = 0;
  bool ok = !arg.empty() && arg.size() <= 5;
  for (char c : arg) {
    ok = ok && c >= '0' && c <= '9';
    ms = ms * 10 + (c - '0');
  }
  if (!ok || ms > 60'000) {
    *out = "compute wants milliseconds, 0..60000";
    return 1;
  }
  usleep(static_cast<useconds_t>(ms * 1000));
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  *out = std::string(host) + " " + std::to_string(getpid()) + " slept " + std::to_string(ms) + " ms";
  return 0;
}

}  // namespace

PICOS_COMPUTE_FUNCTION(compute, Compute);
