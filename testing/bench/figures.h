// Figures printed by the benchmark programs, one per line as
//   name: value unit
// so that scripts and closing notes can quote them. Each figure that has a
// floor (the same work done by bare C++20 coroutines, or bare libuv) prints
// it beside, as floor_<name>.
#ifndef PICOS_TESTING_BENCH_FIGURES_H_
#define PICOS_TESTING_BENCH_FIGURES_H_

#include <cstdint>
#include <cstdio>
#include <string_view>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace picos::testing {

inline void PrintFigure(std::string_view name, double value, std::string_view unit) {
  if (value >= 1000) {
    std::printf("%.*s: %.0f %.*s\n", static_cast<int>(name.size()), name.data(), value,
                static_cast<int>(unit.size()), unit.data());
  } else {
    std::printf("%.*s: %.3g %.*s\n", static_cast<int>(name.size()), name.data(), value,
                static_cast<int>(unit.size()), unit.data());
  }
  std::fflush(stdout);
}

// Resident set size of this process now, in bytes (from /proc/self/statm).
int64_t CurrentRssBytes();

// Peak resident set size of this process so far, in bytes (VmHWM).
int64_t PeakRssBytes();

// Runs fn() in a forked child and gives what it returned, so that a memory
// figure starts from a clean heap and one figure's freed memory cannot
// flatter the next. -1 if the child failed.
double InChild(double (*fn)(int64_t), int64_t arg);

// Seconds taken by fn().
template <typename F>
double Seconds(F&& fn) {
  absl::Time start = absl::Now();
  fn();
  return absl::ToDoubleSeconds(absl::Now() - start);
}

}  // namespace picos::testing

#endif  // PICOS_TESTING_BENCH_FIGURES_H_
