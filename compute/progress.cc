#include "compute/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/kernel/scheduler.h"

namespace picos::compute {
namespace {

int64_t NowNs() {
  if (Scheduler* s = Scheduler::Current(); s != nullptr) return s->NowNs();
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string Duration(double s) {
  const int64_t t = static_cast<int64_t>(s + 0.5);
  if (t < 60) return absl::StrCat(t, "s");
  if (t < 3600) return absl::StrFormat("%dm%02ds", t / 60, t % 60);
  return absl::StrFormat("%dh%02dm", t / 3600, (t / 60) % 60);
}

}  // namespace

Progress::Progress(int64_t total, ProgressOptions options)
    : options_(std::move(options)), total_(std::max<int64_t>(total, 0)) {
  const int fd = options_.out != nullptr ? fileno(options_.out) : -1;
  enabled_ = options_.force || (fd >= 0 && isatty(fd) == 1);
  width_ = options_.width;
  if (width_ <= 0) {
    struct winsize ws {};
    width_ = fd >= 0 && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
  }
  width_ = std::clamp(width_, 20, 1000);
  start_ns_ = NowNs();
}

void Progress::JobEnded(bool ok) {
  ++done_;
  if (!ok) ++failed_;
  total_ = std::max(total_, done_);
  MaybeDraw(false);
}

void Progress::AddTotal(int64_t n) {
  if (n > 0) total_ += n;
  MaybeDraw(false);
}

void Progress::Observe(const Value& event) {
  if (!event.is_map()) return;
  const std::string type = event.GetOr<std::string>("type", "");
  if (type == "job_finished") {
    JobEnded(event.GetOr<int64_t>("code", -1) == 0);
  } else if (type == "job_lost" || type == "job_terminated") {
    JobEnded(false);
  }
}

void Progress::Finish() {
  if (finished_) return;
  // Drawn already as it stands (the last job's end): only the newline.
  if (!drawn_ || drawn_done_ != done_ || drawn_total_ != total_) MaybeDraw(true);
  finished_ = true;
  if (enabled_ && drawn_) Write("\n");
}

std::string Progress::Render(int64_t now_ns, int width) const {
  const double elapsed = std::max(0.0, static_cast<double>(now_ns - start_ns_) / 1e9);
  const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0;
  const int percent = total_ > 0 ? static_cast<int>(100 * done_ / total_) : 100;
  std::string tail = absl::StrFormat("  %d/%d  %d%%", done_, total_, percent);
  if (done_ > 0 && elapsed > 0) {
    absl::StrAppend(&tail, absl::StrFormat("  %.1f jobs/s", rate));
    if (done_ < total_) {
      absl::StrAppend(&tail, "  ETA ", Duration(static_cast<double>(total_ - done_) / rate));
    } else {
      absl::StrAppend(&tail, "  in ", Duration(elapsed));
    }
  }
  if (failed_ > 0) absl::StrAppend(&tail, "  ", failed_, " failed");
  std::string head = options_.label.empty() ? std::string() : options_.label + " ";
  // The bar takes what the text leaves, at least 10 columns; the text is
  // cut if the terminal is narrower still. One column stays free (a
  // terminal that wraps at the last column would scroll).
  const int room = width - 1 - static_cast<int>(head.size() + tail.size()) - 2;
  const int bar = std::clamp(room, 10, 60);
  const int filled = total_ > 0 ? static_cast<int>(static_cast<int64_t>(bar) * done_ / total_) : bar;
  std::string line = absl::StrCat(head, "[", std::string(filled, '#'), std::string(bar - filled, '-'), "]", tail);
  if (static_cast<int>(line.size()) > width - 1) line.resize(static_cast<size_t>(std::max(0, width - 1)));
  return line;
}

void Progress::MaybeDraw(bool force) {
  if (!enabled_ || finished_) return;
  const int64_t now = NowNs();
  const bool due = !drawn_ || now - last_draw_ns_ >= absl::ToInt64Nanoseconds(options_.min_interval);
  if (!force && !due && done_ < total_) return;
  last_draw_ns_ = now;
  drawn_ = true;
  drawn_done_ = done_;
  drawn_total_ = total_;
  // Back to the line's start, the line, and the rest of the old one cleared.
  Write(absl::StrCat("\r", Render(now, width_), "\x1b[K"));
}

void Progress::Write(std::string_view s) {
  if (options_.write) {
    options_.write(s);
    return;
  }
  std::fwrite(s.data(), 1, s.size(), options_.out);
  std::fflush(options_.out);
}

}  // namespace picos::compute
