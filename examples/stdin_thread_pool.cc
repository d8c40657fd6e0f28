// pycos chat_client.py's AsyncThreadPool idea in picos: standard input is
// read by blocking calls on a pool thread while other tasks keep running.
//
//   printf 'hello world\nbye\n' | bazel run //examples:stdin_thread_pool
#include <atomic>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/io/thread_pool.h"

namespace {

using picos::Task;
using picos::TaskRef;
using picos::Value;

// Counts words of the lines it is sent; "" ends it.
Task<int> Counter() {
  int words = 0;
  for (;;) {
    absl::StatusOr<Value> m = co_await picos::Receive();
    if (!m.ok() || m->is_null()) co_return words;
    absl::StatusOr<std::string> line = m->As<std::string>();
    if (!line.ok()) continue;  // not text: nothing to count
    for (absl::string_view w : absl::StrSplit(*line, ' ', absl::SkipEmpty())) {
      (void)w;
      ++words;
    }
  }
}

// Runs while the reader waits: proof that the scheduler is not blocked.
Task<int> Ticker(std::shared_ptr<std::atomic<bool>> done) {
  int ticks = 0;
  while (!*done) {
    ++ticks;
    (void)co_await picos::Sleep(absl::Milliseconds(1));
  }
  co_return ticks;
}

Task<absl::Status> Main(picos::ThreadPool* pool) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  TaskRef counter = picos::ThisScheduler().Spawn(Counter);
  TaskRef ticker = picos::ThisScheduler().Spawn(Ticker, done);
  int lines = 0;
  // A named callable (see thread_pool.h on g++ 12 and temporaries).
  auto read_line = []() -> absl::StatusOr<std::string> {
    std::string line;
    if (!std::getline(std::cin, line)) return absl::OutOfRangeError("end of input");
    return line;
  };
  for (;;) {
    absl::StatusOr<std::string> line = co_await pool->Run(read_line);
    if (!line.ok()) break;
    ++lines;
    std::printf("line %d: %s\n", lines, line->c_str());
    (void)counter.Send(*line);
  }
  *done = true;
  (void)counter.Send(Value());
  absl::StatusOr<Value> counted = co_await counter.Join();
  absl::StatusOr<Value> ticks = co_await ticker.Join();
  if (!counted.ok()) co_return counted.status();
  PICOS_CO_ASSIGN_OR_RETURN(int64_t words, counted->As<int64_t>());
  std::printf("EOF after %d lines, %lld words; the ticker ran %s times meanwhile\n", lines,
              static_cast<long long>(words), ticks.ok() ? ticks->DebugString().c_str() : "?");
  co_return absl::OkStatus();
}

}  // namespace

int main() {
  picos::ThreadPool pool({.threads = 1, .queue_limit = 4});  // outlives the scheduler
  picos::Scheduler s;
  TaskRef main_task = s.Spawn(Main, &pool);
  absl::StatusOr<Value> r = s.RunUntil(main_task);
  if (!r.ok()) {
    std::fprintf(stderr, "stdin_thread_pool: %s\n", r.status().ToString().c_str());
    return 1;
  }
  return 0;
}
