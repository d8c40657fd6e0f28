// The computation library of compute_bench and of the compute tests that
// count jobs (testing/compute_jobs_test.cc), built with picos_computation:
// it links only compute/export.h. Also the library of
// testing/compute_netns_test.sh (slow_tag).
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "compute/export.h"

namespace {

// Jobs this worker process ran through Tag.
std::atomic<int64_t> g_tagged{0};

// Nothing in, nothing out: the job path's own cost.
int Noop(std::string_view, std::string* out) { return 0; }

// "arg" -> "<pid>:<n>:arg", n counting the Tag jobs this worker ran (1, 2,
// ...): a client that sees every n from 1 to the last once per pid knows
// each job ran exactly once, and each arg once that each result arrived
// once.
int Tag(std::string_view arg, std::string* out) {
  const int64_t n = ++g_tagged;
  *out = std::to_string(getpid()) + ":" + std::to_string(n) + ":" + std::string(arg);
  return 0;
}

// "ms:arg" -> sleeps `ms` (at most 60 s), then as Tag with `arg`: jobs long
// enough that a test can cut a node off while they run.
int SlowTag(std::string_view arg, std::string* out);

// "ms:path" -> writes this worker's pid into the file `path` (so the
// client knows which worker runs it, and that it runs), sleeps `ms` (at
// most 60 s) blocking its worker, then gives "slept ms".
int SleepMs(std::string_view arg, std::string* out) {
  const size_t colon = arg.find(':');
  int64_t ms = 0;
  bool ok = colon != std::string_view::npos && colon > 0 && colon <= 6;
  for (size_t i = 0; ok && i < colon; ++i) {
    ok = arg[i] >= '0' && arg[i] <= '9';
    ms = ms * 10 + (arg[i] - '0');
  }
  if (!ok || ms > 60'000) {
    *out = "want ms:path, ms at most 60000";
    return 1;
  }
  const std::string path(arg.substr(colon + 1));
  const std::string tmp = path + ".tmp";
  if (FILE* f = std::fopen(tmp.c_str(), "w")) {
    std::fprintf(f, "%d\n", static_cast<int>(getpid()));
    std::fclose(f);
    std::rename(tmp.c_str(), path.c_str());  // whole, or not there
  }
  usleep(static_cast<useconds_t>(ms * 1000));
  *out = "slept " + std::to_string(ms);
  return 0;
}

int SlowTag(std::string_view arg, std::string* out) {
  const size_t colon = arg.find(':');
  int64_t ms = 0;
  bool ok = colon != std::string_view::npos && colon > 0 && colon <= 5;
  for (size_t i = 0; ok && i < colon; ++i) {
    ok = arg[i] >= '0' && arg[i] <= '9';
    ms = ms * 10 + (arg[i] - '0');
  }
  if (!ok || ms > 60'000) {
    *out = "want ms:arg, ms at most 60000";
    return 1;
  }
  usleep(static_cast<useconds_t>(ms * 1000));
  return Tag(arg.substr(colon + 1), out);
}

}  // namespace

PICOS_COMPUTE_FUNCTION(noop, Noop);
PICOS_COMPUTE_FUNCTION(tag, Tag);
PICOS_COMPUTE_FUNCTION(sleep_ms, SleepMs);
PICOS_COMPUTE_FUNCTION(slow_tag, SlowTag);
