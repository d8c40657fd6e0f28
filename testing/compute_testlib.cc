// The computation library of testing/compute_test.cc, built with
// picos_computation: it links only compute/export.h.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "compute/export.h"

namespace {

bool ParseInt(std::string_view s, int64_t* n) {
  if (s.empty() || s.size() > 18) return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *n = v;
  return true;
}

// "n" -> "n*n".
int Square(std::string_view arg, std::string* out) {
  int64_t n = 0;
  if (!ParseInt(arg, &n)) {
    *out = "not a number";
    return 1;
  }
  *out = std::to_string(n * n);
  return 0;
}

// "ms:path" -> creates the file `path` (so a test knows the job runs),
// sleeps `ms` (at most 10 s, blocking its worker), then gives "slept ms".
int SleepMs(std::string_view arg, std::string* out) {
  const size_t colon = arg.find(':');
  int64_t ms = 0;
  if (colon == std::string_view::npos || !ParseInt(arg.substr(0, colon), &ms) || ms > 10'000) {
    *out = "want ms:path, ms at most 10000";
    return 1;
  }
  const std::string path(arg.substr(colon + 1));
  if (FILE* f = std::fopen(path.c_str(), "w")) std::fclose(f);
  usleep(static_cast<useconds_t>(ms * 1000));
  *out = "slept " + std::to_string(ms);
  return 0;
}

// "mine:theirs:ms" -> creates the file `mine`, then waits up to `ms` (at
// most 60 s) for the file `theirs`: "met" if it came, an error if not. Two
// such jobs meet only if they run at the same time.
int Meet(std::string_view arg, std::string* out) {
  const size_t a = arg.find(':');
  const size_t b = a == std::string_view::npos ? a : arg.find(':', a + 1);
  int64_t ms = 0;
  if (b == std::string_view::npos || !ParseInt(arg.substr(b + 1), &ms) || ms > 60'000) {
    *out = "want mine:theirs:ms, ms at most 60000";
    return 1;
  }
  const std::string mine(arg.substr(0, a));
  const std::string theirs(arg.substr(a + 1, b - a - 1));
  if (FILE* f = std::fopen(mine.c_str(), "w")) std::fclose(f);
  for (int64_t waited = 0; waited <= ms; waited += 5) {
    if (access(theirs.c_str(), F_OK) == 0) {
      *out = "met";
      return 0;
    }
    usleep(5000);
  }
  *out = "alone";
  return 1;
}

}  // namespace

PICOS_COMPUTE_FUNCTION(meet, Meet);
PICOS_COMPUTE_FUNCTION(square, Square);
PICOS_COMPUTE_FUNCTION(sleep_ms, SleepMs);
