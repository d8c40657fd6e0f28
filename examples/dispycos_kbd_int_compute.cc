// The computation of dispycos_kbd_int (pycos dispycos_kbd_int.py's
// optimiser), a shared library built with picos_computation: `optimize`
// searches at random for the minimum of a fixed function until it is
// cancelled, then sends its best point to the client as its last message.
// It links only compute/export.h (compute/export.h says why).
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <string_view>

#include "compute/export.h"

namespace {

using picos::compute::Job;

// What is minimised: its minimum, 1.5, is at (3, -2).
double F(double x, double y) { return (x - 3) * (x - 3) + (y + 2) * (y + 2) + 1.5; }

// Its longest run (then it ends by itself, like a round that finished).
constexpr auto kMaxRun = std::chrono::minutes(10);

std::string Point(const char* kind, double f, double x, double y) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s %.6f %.4f %.4f %d", kind, f, x, y, static_cast<int>(getpid()));
  return buf;
}

// "<seed> <report_ms>" (seed 0..2^32-1, report_ms 1..60000) -> samples
// points in [-10, 10]^2, sending "progress <f> <x> <y> <pid>" every
// report_ms, until it is cancelled (pycos throws KeyboardInterrupt into it;
// here Receive gives kCancelled at the job's wait between batches): then it
// sends "last <f> <x> <y> <pid>", its best, and returns. Its pause between
// batches is that wait (2 ms): a stand-in for real work that leaves the
// machine's CPUs to others (the example is about ending it).
int Optimize(Job& job, std::string* out) {
  unsigned long long seed = 0;
  int ms = 0;
  char tail = 0;
  const std::string a(job.arg().substr(0, 64));
  if (job.arg().size() > 64 || std::sscanf(a.c_str(), "%llu %d%c", &seed, &ms, &tail) != 2 ||
      seed > 0xffffffffULL || ms < 1 || ms > 60'000) {
    *out = "optimize wants \"<seed> <report_ms>\": seed 0..4294967295, report_ms 1..60000";
    return 1;
  }
  std::mt19937 random(static_cast<uint32_t>(seed));
  std::uniform_real_distribution<double> coord(-10, 10);
  double bx = 0, by = 0, bf = F(0, 0);
  const auto start = std::chrono::steady_clock::now();
  auto report = start + std::chrono::milliseconds(ms);
  std::string message;
  for (;;) {
    for (int i = 0; i < 1000; ++i) {
      const double x = coord(random), y = coord(random), f = F(x, y);
      if (f < bf) bf = f, bx = x, by = y;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= report) {
      job.Send(Point("progress", bf, bx, by));
      report = now + std::chrono::milliseconds(ms);
    }
    // Messages to the job are not used: the wait is where cancellation
    // is seen.
    const Job::Code rc = job.Receive(&message, std::chrono::milliseconds(2));
    if (rc == Job::kCancelled || now - start > kMaxRun) break;
  }
  const std::string last = Point("last", bf, bx, by);
  if (job.Send(last) != Job::kOk) {
    *out = "the last value could not be sent";
    return 1;
  }
  *out = last;
  return 0;
}

}  // namespace

PICOS_COMPUTE_JOB(optimize, Optimize);
