#include "core/io/file.h"

#include <dirent.h>
#include <fcntl.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/io/io.h"
#include "core/kernel/scheduler.h"
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
  for (int i = 0; i < 500 && *reads < 2; ++i) CO_ASSERT_OK(co_await Sleep(absl::Milliseconds(2)));
  CO_ASSERT_OK(t.Terminate());
  (void)co_await t.Join(absl::Seconds(10));
  EXPECT_EQ(t.state(), TaskState::kDone);
  // Let the read still on the pool finish and close the file.
  for (int i = 0; i < 500 && OpenFdCount() != fds_before; ++i) {
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
  if (!first.ok()) EXPECT_THAT(first, StatusIs(absl::StatusCode::kDeadlineExceeded));
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

}  // namespace
}  // namespace picos
