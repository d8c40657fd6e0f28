// The computation of dispycos_client10 (pycos dispycos_client10.py's
// `compute`), a shared library built with picos_computation. It links only
// compute/export.h (compute/export.h says why).
//
// `process` keeps state in its worker process, as a real job's leftovers
// (caches, globals of a library it calls) would: the number of jobs this
// process has run. dispycos_client10 restarts each worker after its job,
// so every job starts in a fresh process and sees 1.
#include <unistd.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "compute/export.h"
#include "examples/fnv1a.h"

namespace {

int jobs_in_this_process = 0;  // this worker process's state

// A data item (at most 1 MiB, its bytes) -> "<fnv1a-64 hex> <jobs this
// process ran, this one included> <pid>".
int Process(std::string_view arg, std::string* out) {
  if (arg.size() > (1u << 20)) {
    *out = "process takes at most 1 MiB";
    return 1;
  }
  uint64_t h = picos::examples::Fnv1a(arg);
  ++jobs_in_this_process;
  static const char kHex[] = "0123456789abcdef";
  std::string hex(16, '0');
  for (int i = 15; i >= 0; --i, h >>= 4) hex[static_cast<size_t>(i)] = kHex[h & 15];
  *out = hex + " " + std::to_string(jobs_in_this_process) + " " + std::to_string(getpid());
  return 0;
}

}  // namespace

PICOS_COMPUTE_FUNCTION(process, Process);
