// A progress bar for a batch of compute jobs on a terminal: done / total,
// rate, ETA and failures, redrawn in place at most a few times a second.
//
//   picos::compute::Progress progress(jobs.size());   // stderr, if a terminal
//   for (TaskRef& j : jobs) {
//     absl::StatusOr<picos::Value> r = co_await j.Join();
//     progress.JobEnded(r.ok());
//   }
//   progress.Finish();
//
//   [##########----------]  50/100  50%  12.5 jobs/s  ETA 4s  2 failed
//
// Feed it by hand (JobEnded, as job handles' Joins return) or with the
// status events of a Computation (Observe: job_finished counts done or
// failed, job_lost and job_terminated failed). Off, drawing nothing, when
// the output is not a terminal (isatty), unless ProgressOptions::force.
//
// Time is the calling scheduler's clock (a VirtualClock in simulations), or
// the machine's monotonic clock outside a scheduler: the rate is jobs
// ended per second since the Progress was made, the ETA what is left at
// that rate.
//
// Threads: one thread (the scheduler's that feeds it); nothing suspends.
#ifndef PICOS_COMPUTE_PROGRESS_H_
#define PICOS_COMPUTE_PROGRESS_H_

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "core/kernel/value.h"

namespace picos::compute {

struct ProgressOptions {
  // Where to draw; its file descriptor decides whether it is a terminal.
  std::FILE* out = stderr;
  // Draw even when `out` is not a terminal (a test, or `--progress` asked
  // for explicitly).
  bool force = false;
  // Columns of the terminal; 0: asked of `out` (TIOCGWINSZ), else 80.
  int width = 0;
  // Least time between two redraws (the last one, at Finish, always draws).
  absl::Duration min_interval = absl::Milliseconds(250);
  // Shown before the bar ("squares").
  std::string label;
  // Instead of writing to `out`: receives each redraw (tests).
  std::function<void(std::string_view)> write;
};

class Progress {
 public:
  explicit Progress(int64_t total, ProgressOptions options = {});
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Whether it draws at all.
  bool enabled() const { return enabled_; }

  // One job ended, well or not; redraws if min_interval passed.
  void JobEnded(bool ok);
  // More jobs in the batch.
  void AddTotal(int64_t n);
  // A Computation's status event (compute/computation.h); others ignored.
  void Observe(const Value& event);
  // Draws the final state and ends the line. Idempotent.
  void Finish();

  int64_t done() const { return done_; }
  int64_t failed() const { return failed_; }
  int64_t total() const { return total_; }

  // The line as drawn at `now_ns` (the clock above), fitted to `width`
  // columns, without the carriage return.
  std::string Render(int64_t now_ns, int width) const;

 private:
  void MaybeDraw(bool force);
  void Write(std::string_view s);

  ProgressOptions options_;
  bool enabled_ = false;
  bool finished_ = false;
  int width_ = 80;
  int64_t total_ = 0;
  int64_t done_ = 0;    // ended, failed ones included
  int64_t failed_ = 0;
  int64_t start_ns_ = 0;
  int64_t last_draw_ns_ = 0;
  bool drawn_ = false;
  int64_t drawn_done_ = -1, drawn_total_ = -1;  // what the last drawing showed
};

}  // namespace picos::compute

#endif  // PICOS_COMPUTE_PROGRESS_H_
