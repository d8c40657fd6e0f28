#include "core/io/file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/io/io.h"
#include "core/io/process.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos {
namespace {

using ::picos::testing::IsOk;
using ::picos::testing::StatusIs;
using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir ? dir : "/tmp", "/", name);
}

int OpenFdCount() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d) != nullptr) ++n;
    closedir(d);
  }
  return n;
}

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 2654435761u) >> 11);
  return s;
}

PICOS_CORO_TEST(File, LargeRoundTrip) {
  const std::string path = TempPath("large.bin");
  const std::string data = Pattern((16 << 20) + 12345);
  CO_ASSERT_OK(co_await File::WriteFile(path, data));
  absl::StatusOr<std::string> back = co_await File::ReadFile(path, 32 << 20);
  CO_ASSERT_OK(back);
  EXPECT_EQ(back->size(), data.size());
  EXPECT_TRUE(*back == data) << "the bytes read back differ";
  EXPECT_THAT(co_await File::ReadFile(path, 1 << 20),
              StatusIs(absl::StatusCode::kResourceExhausted));
}

// Issue 9: a limit of SIZE_MAX ("no limit") failed with "read size 0"
// (limit + 1 wrapped around). Limits at the file's exact size hold too.
PICOS_CORO_TEST(File, ReadFileLimitsAtTheEdges) {
  const std::string path = TempPath("limits.txt");
  const std::string data = Pattern(3 * (1 << 20) + 7);
  CO_ASSERT_OK(co_await File::WriteFile(path, data));
  absl::StatusOr<std::string> all = co_await File::ReadFile(path, SIZE_MAX);
  CO_ASSERT_OK(all);
  EXPECT_TRUE(*all == data);
  all = co_await File::ReadFile(path, SIZE_MAX - 1);
  CO_ASSERT_OK(all);
  EXPECT_EQ(all->size(), data.size());
  all = co_await File::ReadFile(path, data.size());
  CO_ASSERT_OK(all);
  EXPECT_EQ(all->size(), data.size());
  EXPECT_THAT(co_await File::ReadFile(path, data.size() - 1),
              StatusIs(absl::StatusCode::kResourceExhausted));
  CO_ASSERT_OK(co_await File::WriteFile(path, ""));
  all = co_await File::ReadFile(path, 0);
  CO_ASSERT_OK(all);
  EXPECT_EQ(*all, "");
}

PICOS_CORO_TEST(File, NonexistentFileIsNotFound) {
  EXPECT_THAT(co_await File::Open(TempPath("no/such/file")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no/such/file")));
  EXPECT_THAT(co_await File::ReadFile(TempPath("nope.txt"), 100),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(co_await File::Open(""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(co_await File::Open(std::string("a\0b", 3)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(co_await File::Open(std::string(kMaxPathLength + 1, 'a')),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

PICOS_CORO_TEST(File, ReadsWritesAndSeeks) {
  const std::string path = TempPath("seek.txt");
  auto f = co_await File::Open(path, O_RDWR | O_CREAT | O_TRUNC);
  CO_ASSERT_OK(f);
  File& file = **f;
  CO_ASSERT_OK(co_await file.Write("0123456789"));
  EXPECT_EQ(file.position(), 10);
  EXPECT_EQ((co_await file.Size()).value_or(-1), 10);
  EXPECT_EQ((co_await file.Read(4)).value_or("?"), "");  // at the end
  EXPECT_EQ((co_await file.Seek(3)).value_or(-1), 3);
  EXPECT_EQ((co_await file.Read(4)).value_or("?"), "3456");
  EXPECT_EQ((co_await file.Seek(-2, SEEK_END)).value_or(-1), 8);
  EXPECT_EQ((co_await file.Read(100)).value_or("?"), "89");
  EXPECT_EQ((co_await file.Seek(-5, SEEK_CUR)).value_or(-1), 5);
  CO_ASSERT_OK(co_await file.Write("ab"));
  EXPECT_THAT(co_await file.Seek(-1, SEEK_SET), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(co_await file.Seek(0, 42), StatusIs(absl::StatusCode::kInvalidArgument));
  CO_ASSERT_OK(co_await file.Sync());
  CO_ASSERT_OK(co_await file.Close());
  CO_ASSERT_OK(co_await file.Close());  // twice is fine
  EXPECT_THAT(co_await file.Read(1), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(co_await file.Write("x"), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ((co_await File::ReadFile(path, 100)).value_or("?"), "01234ab789");
}

PICOS_CORO_TEST(File, AppendsAndReadsLines) {
  const std::string path = TempPath("lines.txt");
  CO_ASSERT_OK(co_await File::WriteFile(path, "first\n"));
  {
    auto f = co_await File::Open(path, O_WRONLY | O_APPEND);
    CO_ASSERT_OK(f);
    CO_ASSERT_OK(co_await (*f)->Write("second\nthird"));
  }  // destroyed without Close(): closed by the destructor
  auto f = co_await File::Open(path);
  CO_ASSERT_OK(f);
  BufferedReader lines(f->get(), 4);  // tiny chunks: lines span reads
  EXPECT_EQ((co_await lines.ReadLine(100)).value_or("?"), "first\n");
  EXPECT_EQ((co_await lines.ReadLine(100)).value_or("?"), "second\n");
  EXPECT_EQ((co_await lines.ReadLine(100)).value_or("?"), "third");
  EXPECT_EQ((co_await lines.ReadLine(100)).value_or("?"), "");
  EXPECT_TRUE(lines.at_end());
}

PICOS_CORO_TEST(File, ReadingADirectoryFails) {
  auto f = co_await File::Open(TempPath(""));
  CO_ASSERT_OK(f);
  EXPECT_THAT(co_await (*f)->Read(10), ::testing::Not(IsOk()));
}

// Opens a large file and reads it in big chunks until terminated.
Task<> ReadUntilKilled(std::string path, std::shared_ptr<int> reads) {
  auto f = co_await File::Open(path);
  if (!f.ok()) co_return;
  for (int i = 0; i < 1000; ++i) {
    // Ignores cancellation: the task is destroyed at its next wait, with
    // a read possibly still running on the thread pool.
    (void)co_await (*f)->Read(kMaxReadChunk);
    ++*reads;
    (void)co_await (*f)->Seek(0);
  }
}

PICOS_CORO_TEST(File, KilledTaskLeaksNothing) {
  const std::string path = TempPath("kill.bin");
  CO_ASSERT_OK(co_await File::WriteFile(path, Pattern(16 << 20)));
  const int fds_before = OpenFdCount();
  auto reads = std::make_shared<int>(0);
  TaskRef t = ThisScheduler().Spawn(ReadUntilKilled, path, reads);
  // Waits are bounded by a deadline only a hang reaches: a loaded machine's
  // thread pool may take seconds.
  const absl::Time give_up = absl::Now() + absl::Minutes(2);
  while (*reads < 2 && absl::Now() < give_up) CO_ASSERT_OK(co_await Sleep(absl::Milliseconds(2)));
  CO_ASSERT_OK(t.Terminate());
  (void)co_await t.Join(absl::Minutes(2));
  EXPECT_EQ(t.state(), TaskState::kDone);
  // Let the read still on the pool finish and close the file.
  while (OpenFdCount() != fds_before && absl::Now() < give_up) {
    CO_ASSERT_OK(co_await Sleep(absl::Milliseconds(2)));
  }
  EXPECT_EQ(OpenFdCount(), fds_before) << "the killed task's file is still open";
}

PICOS_CORO_TEST(File, ReadTimeoutKeepsTheBytes) {
  const std::string path = TempPath("timeout.bin");
  const std::string data = Pattern(8 << 20);
  CO_ASSERT_OK(co_await File::WriteFile(path, data));
  auto f = co_await File::Open(path);
  CO_ASSERT_OK(f);
  // A zero timeout expires before the pool can answer; whatever the pool
  // read meanwhile is handed out by the next reads, in order.
  absl::StatusOr<std::string> first = co_await (*f)->Read(kMaxReadChunk, absl::ZeroDuration());
  std::string got = first.ok() ? *first : "";
  if (!first.ok()) { EXPECT_THAT(first, StatusIs(absl::StatusCode::kDeadlineExceeded)); }
  for (int i = 0; i < 100; ++i) {
    absl::StatusOr<std::string> more = co_await (*f)->Read(1 << 20, absl::Seconds(10));
    CO_ASSERT_OK(more);
    if (more->empty()) break;
    got += *more;
  }
  EXPECT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data);
}

TEST(File, FileOutlivingNothingOnSchedulerStop) {
  // A task blocked with an open file when its scheduler is destroyed.
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string path = absl::StrCat(dir ? dir : "/tmp", "/stop.txt");
  {
    Scheduler s;
    TaskRef w = s.Spawn([](std::string p) -> Task<> {
      (void)co_await File::WriteFile(p, "x");
    }, path);
    ASSERT_OK(s.RunUntil(w));
    TaskRef t = s.Spawn([](std::string p) -> Task<> {
      auto f = co_await File::Open(p);
      if (!f.ok()) co_return;
      (void)co_await Suspend();  // never resumed
    }, path);
    TaskRef tick = s.Spawn([]() -> Task<> { co_await Sleep(absl::Milliseconds(50)); });
    ASSERT_OK(s.RunUntil(tick));
  }  // ~Scheduler destroys the suspended task and with it the File
  SUCCEED();
}

std::string NewFifo(const std::string& name) {
  std::string path = TempPath(absl::StrCat(name, "-", getpid()));
  ::unlink(path.c_str());
  EXPECT_EQ(mkfifo(path.c_str(), 0600), 0) << path;
  return path;
}

// Opening a FIFO that has no writer blocks in open(). On libuv's pool (4
// threads) a few such opens used to hold every thread: every other file
// operation and host name lookup of the process waited behind them. Now the
// opens return at once and a plain file is read meanwhile.
PICOS_CORO_TEST(File, FifoOpensDoNotTakeThePoolHostage) {
  constexpr int kFifos = 8;  // twice libuv's default pool
  std::vector<std::string> fifos;
  std::vector<TaskRef> openers;
  auto files = std::make_shared<std::vector<std::unique_ptr<File>>>();
  for (int i = 0; i < kFifos; ++i) {
    fifos.push_back(NewFifo(absl::StrCat("hostage-", i)));
    auto open = [files](std::string path) -> Task<absl::Status> {
      PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<File> f, co_await File::Open(path, O_RDONLY));
      files->push_back(std::move(f));
      co_return absl::OkStatus();
    };
    openers.push_back(ThisScheduler().Spawn(open, fifos.back()));
  }
  const std::string plain = TempPath("plain.txt");
  {
    int fd = ::open(plain.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CO_ASSERT_TRUE(fd >= 0 && ::write(fd, "plain", 5) == 5);
    ::close(fd);
  }
  (void)co_await Sleep(absl::Milliseconds(20));  // the opens are submitted first
  TaskRef reader = ThisScheduler().Spawn(
      [](std::string p) -> Task<absl::StatusOr<std::string>> { return File::ReadFile(p, 100); },
      plain);
  // One wide budget for every wait below, so that the old behaviour fails
  // in 30 s rather than 30 s per task.
  const int64_t budget_end = ThisScheduler().NowNs() + absl::ToInt64Nanoseconds(absl::Seconds(30));
  auto left = [budget_end] {
    return absl::Nanoseconds(std::max<int64_t>(0, budget_end - ThisScheduler().NowNs()));
  };
  absl::StatusOr<Value> read = co_await reader.Join(left());
  EXPECT_OK(read) << "a plain file could not be read while FIFO opens were pending";
  if (read.ok()) {
    EXPECT_EQ(read->as_string(), "plain");
  }
  for (TaskRef& t : openers) {
    absl::StatusOr<Value> opened = co_await t.Join(left());
    EXPECT_OK(opened) << "opening a FIFO with no writer did not return";
  }
  // Before the fix the opens are still blocked: writers let them (and the
  // pool) go, so that the test ends either way.
  std::vector<int> writers;
  for (const std::string& p : fifos) writers.push_back(::open(p.c_str(), O_WRONLY | O_NONBLOCK));
  (void)co_await reader.Join(absl::Seconds(60));
  for (TaskRef& t : openers) (void)co_await t.Join(absl::Seconds(60));
  files->clear();
  for (int w : writers) {
    if (w >= 0) ::close(w);
  }
  for (const std::string& p : fifos) ::unlink(p.c_str());
}

// A FIFO's reads and writes wait in the loop, with their timeouts, never on
// the pool.
PICOS_CORO_TEST(File, FifoReadsAndWritesWaitInTheLoop) {
  const std::string path = NewFifo("loop");
  absl::StatusOr<std::unique_ptr<File>> f = co_await File::Open(path, O_RDONLY);
  CO_ASSERT_OK(f);
  // No writer yet: the read waits for one (it does not see an end).
  EXPECT_THAT(co_await (*f)->Read(16, absl::Milliseconds(20)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  int w = ::open(path.c_str(), O_WRONLY | O_NONBLOCK);
  CO_ASSERT_TRUE(w >= 0);
  CO_ASSERT_TRUE(::write(w, "hello", 5) == 5);
  EXPECT_EQ((co_await (*f)->Read(16, absl::Seconds(20))).value_or("?"), "hello");
  ::close(w);
  EXPECT_EQ((co_await (*f)->Read(16, absl::Seconds(20))).value_or("?"), "") << "the writer left";
  EXPECT_THAT(co_await (*f)->Seek(0), StatusIs(absl::StatusCode::kFailedPrecondition));
  CO_ASSERT_OK(co_await (*f)->Close());

  // Writing: with no reader the open fails at once, with one it writes.
  EXPECT_THAT(co_await File::Open(path, O_WRONLY), StatusIs(absl::StatusCode::kUnavailable));
  int r = ::open(path.c_str(), O_RDONLY | O_NONBLOCK);
  CO_ASSERT_TRUE(r >= 0);
  absl::StatusOr<std::unique_ptr<File>> out = co_await File::Open(path, O_WRONLY);
  CO_ASSERT_OK(out);
  CO_ASSERT_OK(co_await (*out)->Write("to the reader", absl::Seconds(20)));
  CO_ASSERT_OK(co_await (*out)->Sync());
  char buf[64];
  EXPECT_EQ(::read(r, buf, sizeof buf), 13);
  out->reset();  // destroyed without Close(): closed by the destructor
  EXPECT_EQ(::read(r, buf, sizeof buf), 0) << "the FIFO's writer is closed";
  ::close(r);
  ::unlink(path.c_str());
}

// Run by the next test in a child process: a task opens a FIFO that has no
// writer and is terminated while it waits; then the process must exit.
TEST(File, ExitWithFifoOpenPendingHelper) {
  const char* fifo = std::getenv("PICOS_FIFO_EXIT_HELPER");
  if (fifo == nullptr) GTEST_SKIP() << "runs only as the child of ExitWithFifoOpenPending";
  ::picos::testing::RunCoroTest([fifo]() -> Task<> {
    auto open = [](std::string p) -> Task<> {
      absl::StatusOr<std::unique_ptr<File>> f = co_await File::Open(p, O_RDONLY);
      (void)co_await Suspend();  // opened or not, waits until terminated
    };
    TaskRef t = ThisScheduler().Spawn(open, std::string(fifo));
    (void)co_await Sleep(absl::Milliseconds(50));
    (void)t.Terminate();
    (void)co_await t.Join(absl::Seconds(5));
  });
}

// A blocking open() left on libuv's pool kept the process from exiting:
// libuv joins its pool threads at exit, and that thread never returns.
PICOS_CORO_TEST(File, ExitWithFifoOpenPending) {
  const std::string fifo = NewFifo("exit");
  ProcessOptions o;
  o.program = "/proc/self/exe";
  o.args = {"--gtest_filter=File.ExitWithFifoOpenPendingHelper"};
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    // The child is no test of Bazel's: it must not write this test's
    // result files or take a shard of it.
    absl::string_view v(*e);
    if (absl::StartsWith(v, "XML_OUTPUT_FILE=") || absl::StartsWith(v, "TEST_PREMATURE_EXIT_FILE=") ||
        absl::StartsWith(v, "TEST_SHARD") || absl::StartsWith(v, "TEST_TOTAL_SHARDS=") ||
        absl::StartsWith(v, "GTEST_")) {
      continue;
    }
    env.emplace_back(v);
  }
  env.push_back(absl::StrCat("PICOS_FIFO_EXIT_HELPER=", fifo));
  o.env = env;
  o.stdin_mode = StdioMode::kNull;
  o.stdout_mode = StdioMode::kNull;
  o.stderr_mode = StdioMode::kInherit;
  absl::StatusOr<std::unique_ptr<Process>> child = Process::Spawn(o);
  CO_ASSERT_OK(child);
  absl::StatusOr<ExitStatus> ended = co_await (*child)->Wait(absl::Seconds(30));
  EXPECT_OK(ended) << "the child did not exit with a FIFO open pending";
  if (ended.ok()) {
    EXPECT_TRUE(ended->success()) << ended->ToString();
  }
  child->reset();  // kills a child that hangs
  ::unlink(fifo.c_str());
}

}  // namespace
}  // namespace picos
