// The computation of dispycos_kbd_int (pycos dispycos_kbd_int.py's
// optimiser), a shared library built with picos_computation: `optimize`
// searches at random for the minimum of a fixed function for a given time.
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

// What is minimised: its minimum, 1.5, is at (3, -2).
double F(double x, double y) { return (x - 3) * (x - 3) + (y + 2) * (y + 2) + 1.5; }

// "<seed> <ms>" (seed 0..2^32-1, ms 1..60000) -> samples points in
// [-10, 10]^2 for ms milliseconds and answers "<f> <x> <y> <pid>" for the
// best one. Sleeps a little between batches: a stand-in for real work that
// leaves the machine's CPUs to others (the example is about ending it).
int Optimize(std::string_view arg, std::string* out) {
  unsigned long long seed = 0;
  int ms = 0;
  char tail = 0;
  const std::string a(arg.substr(0, 64));
  if (arg.size() > 64 || std::sscanf(a.c_str(), "%llu %d%c", &seed, &ms, &tail) != 2 || seed > 0xffffffffULL ||
      ms < 1 || ms > 60'000) {
    *out = "optimize wants \"<seed> <ms>\": seed 0..4294967295, ms 1..60000";
    return 1;
  }
  std::mt19937 random(static_cast<uint32_t>(seed));
  std::uniform_real_distribution<double> coord(-10, 10);
  double bx = 0, by = 0, bf = F(0, 0);
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < end) {
    for (int i = 0; i < 1000; ++i) {
      const double x = coord(random), y = coord(random), f = F(x, y);
      if (f < bf) bf = f, bx = x, by = y;
    }
    usleep(2000);
  }
  char buf[128];
  std::snprintf(buf, sizeof buf, "%.6f %.4f %.4f %d", bf, bx, by, static_cast<int>(getpid()));
  *out = buf;
  return 0;
}

}  // namespace

PICOS_COMPUTE_FUNCTION(optimize, Optimize);
