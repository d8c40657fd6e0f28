#include "core/io/process.h"

#include <signal.h>
#include <sys/types.h>

#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
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
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// True while a process with this pid exists (running or zombie).
bool ProcessExists(int pid) { return kill(pid, 0) == 0 || errno != ESRCH; }

ProcessOptions Sh(std::string script) {
  return ProcessOptions{.program = "/bin/sh", .args = {"-c", std::move(script)}};
}

PICOS_CORO_TEST(Process, EchoesThroughCat) {
  auto p = Process::Spawn({.program = "cat"});
  CO_ASSERT_OK(p);
  CO_ASSERT_OK(co_await (*p)->in().Write("hello\nworld\n"));
  CO_ASSERT_OK((*p)->CloseStdin());
  absl::StatusOr<std::string> line = co_await (*p)->out().ReadLine(100);
  EXPECT_THAT(line, IsOk());
  EXPECT_EQ(line.value_or(""), "hello\n");
  absl::StatusOr<std::string> rest = co_await (*p)->out().ReadAll(1000);
  EXPECT_EQ(rest.value_or("?"), "world\n");
  absl::StatusOr<ExitStatus> st = co_await (*p)->Wait(absl::Seconds(10));
  CO_ASSERT_OK(st);
  EXPECT_TRUE(st->success()) << st->ToString();
  // At the end of the stream reads give "".
  EXPECT_EQ((co_await (*p)->out().Read(10)).value_or("?"), "");
}

PICOS_CORO_TEST(Process, ReadsStdoutAndStderrConcurrently) {
  // 300 kB on each stream: far more than a pipe holds, written stdout first.
  // Reading stderr to its end first works only because both are drained in
  // the background.
  auto p = Process::Spawn(
      Sh("head -c 300000 /dev/zero | tr '\\0' o; head -c 300000 /dev/zero | tr '\\0' e >&2; "
         "echo done >&2"));
  CO_ASSERT_OK(p);
  absl::StatusOr<std::string> err = co_await (*p)->err().ReadAll(1 << 20, absl::Seconds(20));
  CO_ASSERT_OK(err);
  EXPECT_EQ(err->size(), 300005u);
  EXPECT_EQ(err->substr(err->size() - 5), "done\n");
  absl::StatusOr<std::string> out = co_await (*p)->out().ReadAll(1 << 20, absl::Seconds(20));
  CO_ASSERT_OK(out);
  EXPECT_EQ(*out, std::string(300000, 'o'));
  EXPECT_THAT(co_await (*p)->Wait(absl::Seconds(10)), IsOk());
}

PICOS_CORO_TEST(Process, CommunicateCollectsBothStreams) {
  auto p = Process::Spawn(Sh("tr a-z A-Z; echo oops >&2; exit 4"));
  CO_ASSERT_OK(p);
  absl::StatusOr<ProcessOutput> r = co_await (*p)->Communicate("abc\n", 1 << 20, absl::Seconds(20));
  CO_ASSERT_OK(r);
  EXPECT_EQ(r->out, "ABC\n");
  EXPECT_EQ(r->err, "oops\n");
  EXPECT_EQ(r->status, (ExitStatus{4, 0}));
}

PICOS_CORO_TEST(Process, ReportsExitCodesAndSignals) {
  auto code = Process::Spawn(Sh("exit 3"));
  CO_ASSERT_OK(code);
  absl::StatusOr<ExitStatus> st = co_await (*code)->Wait(absl::Seconds(10));
  CO_ASSERT_OK(st);
  EXPECT_EQ(st->code, 3);
  EXPECT_EQ(st->signal, 0);
  EXPECT_FALSE(st->success());

  auto self_kill = Process::Spawn(Sh("kill -9 $$"));
  CO_ASSERT_OK(self_kill);
  st = co_await (*self_kill)->Wait(absl::Seconds(10));
  CO_ASSERT_OK(st);
  EXPECT_EQ(st->signal, SIGKILL);
  EXPECT_THAT(st->ToString(), HasSubstr("signal 9"));

  auto sleeper = Process::Spawn({.program = "sleep", .args = {"30"}});
  CO_ASSERT_OK(sleeper);
  EXPECT_FALSE((*sleeper)->exited());
  EXPECT_THAT(co_await (*sleeper)->Wait(absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  CO_ASSERT_OK((*sleeper)->Kill(SIGTERM));
  st = co_await (*sleeper)->Wait(absl::Seconds(10));
  CO_ASSERT_OK(st);
  EXPECT_EQ(st->signal, SIGTERM);
  EXPECT_THAT((*sleeper)->Kill(SIGTERM), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT((*sleeper)->Kill(0), StatusIs(absl::StatusCode::kInvalidArgument));
}

PICOS_CORO_TEST(Process, PassesTheEnvironmentAndWorkingDirectory) {
  ProcessOptions o = Sh("echo \"$GREETING|${HOME:-nohome}|$(pwd)\"");
  o.env = std::vector<std::string>{"GREETING=hi there", "PATH=/usr/bin:/bin"};
  o.cwd = "/";
  auto p = Process::Spawn(std::move(o));
  CO_ASSERT_OK(p);
  absl::StatusOr<ProcessOutput> r = co_await (*p)->Communicate("", 4096, absl::Seconds(10));
  CO_ASSERT_OK(r);
  EXPECT_EQ(r->out, "hi there|nohome|/\n");
  EXPECT_TRUE(r->status.success());
}

PICOS_CORO_TEST(Process, MissingProgramIsNotFound) {
  EXPECT_THAT(Process::Spawn({.program = "/nonexistent/picos-no-such-program"}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("picos-no-such-program")));
  EXPECT_THAT(Process::Spawn({.program = "picos-no-such-program-in-path"}),
              StatusIs(absl::StatusCode::kNotFound));
  co_return;
}

// Issue 9: a working directory that does not exist was reported as a
// missing program ("spawn true: no such file or directory").
PICOS_CORO_TEST(Process, UnusableWorkingDirectoryIsNamed) {
  EXPECT_THAT(Process::Spawn({.program = "true", .cwd = "/nonexistent/picos-no-such-dir"}),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("working directory '/nonexistent/picos-no-such-dir' does not exist")));
  EXPECT_THAT(Process::Spawn({.program = "true", .cwd = "/etc/passwd"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is not a directory")));
  // With a good directory, a missing program is still the program.
  EXPECT_THAT(Process::Spawn({.program = "picos-no-such-program", .cwd = "/"}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("spawn picos-no-such-program")));
  co_return;
}

PICOS_CORO_TEST(Process, RejectsMalformedOptions) {
  EXPECT_THAT(Process::Spawn({.program = ""}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Process::Spawn({.program = "cat", .args = {std::string("a\0b", 3)}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NUL")));
  ProcessOptions bad_env{.program = "cat", .env = std::vector<std::string>{"NOEQUALS"}};
  EXPECT_THAT(Process::Spawn(bad_env), StatusIs(absl::StatusCode::kInvalidArgument));
  ProcessOptions many{.program = "cat"};
  many.args.assign(kMaxProcessArgs + 1, "x");
  EXPECT_THAT(Process::Spawn(many), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Pipeline::Spawn({}), StatusIs(absl::StatusCode::kInvalidArgument));
  co_return;
}

Task<absl::Status> WriteAll(Process* p, std::string data) {
  absl::Status st = co_await p->in().Write(std::move(data), absl::Seconds(60));
  if (!st.ok()) co_return st;
  co_return p->CloseStdin();
}

PICOS_CORO_TEST(Process, SixteenMegabytesThroughCatWithBackpressure) {
  std::string data(16 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 2654435761u) >> 13);
  // A small read buffer: cat is held back while this task is slow.
  auto p = Process::Spawn({.program = "cat", .read_buffer_limit = 64 * 1024});
  CO_ASSERT_OK(p);
  TaskRef writer = ThisScheduler().Spawn(WriteAll, p->get(), data);
  std::string got;
  got.reserve(data.size());
  for (int i = 0; i < 100000; ++i) {
    absl::StatusOr<std::string> chunk = co_await (*p)->out().Read(1 << 20, absl::Seconds(30));
    CO_ASSERT_OK(chunk);
    if (chunk->empty()) break;
    got += *chunk;
  }
  EXPECT_THAT(co_await writer.Join(), IsOk());
  EXPECT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data) << "the bytes that came back differ";
  EXPECT_THAT(co_await (*p)->Wait(absl::Seconds(10)), IsOk());
}

PICOS_CORO_TEST(Process, ChainsPrintfSortUniq) {
  auto chain = Pipeline::Spawn({{.program = "sort"}, {.program = "uniq", .args = {"-c"}}});
  CO_ASSERT_OK(chain);
  Pipeline& pl = **chain;
  EXPECT_EQ(pl.size(), 2u);
  CO_ASSERT_OK(co_await pl.first().in().Write("pear\napple\npear\nfig\npear\n"));
  CO_ASSERT_OK(pl.first().CloseStdin());
  absl::StatusOr<std::string> out = co_await pl.last().out().ReadAll(4096, absl::Seconds(10));
  CO_ASSERT_OK(out);
  std::vector<std::string> lines;
  for (absl::string_view l : absl::StrSplit(*out, '\n', absl::SkipEmpty())) {
    std::vector<std::string> words = absl::StrSplit(l, ' ', absl::SkipEmpty());
    lines.push_back(absl::StrJoin(words, " "));
  }
  EXPECT_THAT(lines, ElementsAre("1 apple", "1 fig", "3 pear"));
  absl::StatusOr<std::vector<ExitStatus>> st = co_await pl.Wait(absl::Seconds(10));
  CO_ASSERT_OK(st);
  EXPECT_THAT(*st, ElementsAre(ExitStatus{}, ExitStatus{}));
}

PICOS_CORO_TEST(Process, ChainOfThreeWithAMissingStageFails) {
  EXPECT_THAT(Pipeline::Spawn({{.program = "cat"}, {.program = "/nonexistent/x"}, {.program = "cat"}}),
              StatusIs(absl::StatusCode::kNotFound));
  auto chain = Pipeline::Spawn({Sh("printf 'a\\nb\\nc\\n'"), {.program = "tac"}, {.program = "head", .args = {"-n", "2"}}});
  CO_ASSERT_OK(chain);
  absl::StatusOr<std::string> out = co_await (*chain)->last().out().ReadAll(4096, absl::Seconds(10));
  EXPECT_EQ(out.value_or("?"), "c\nb\n");
  EXPECT_THAT(co_await (*chain)->Wait(absl::Seconds(10)), IsOk());
}

PICOS_CORO_TEST(Process, WriteToAChildThatExitedIsUnavailable) {
  auto p = Process::Spawn(Sh("exec head -c 10 >/dev/null"));
  CO_ASSERT_OK(p);
  absl::Status st;
  // More than any pipe holds, several times: the child reads 10 bytes and exits.
  for (int i = 0; i < 8 && st.ok(); ++i) {
    st = co_await (*p)->in().Write(std::string(4 << 20, 'x'), absl::Seconds(20));
  }
  EXPECT_THAT(st, StatusIs(absl::StatusCode::kUnavailable));
  absl::StatusOr<ExitStatus> exit = co_await (*p)->Wait(absl::Seconds(10));
  CO_ASSERT_OK(exit);
  EXPECT_TRUE(exit->success()) << exit->ToString();
}

Task<absl::Status> WriteMuch(Process* p) {
  co_return co_await p->in().Write(std::string(8 << 20, 'x'), absl::Seconds(20));
}

PICOS_CORO_TEST(Process, CloseStdinFailsAWriteInProgress) {
  // sleep never reads its stdin: the write waits on a full pipe (and at most
  // the engine's bounded queue waits here) until stdin is closed under it.
  auto p = Process::Spawn({.program = "sleep", .args = {"30"}});
  CO_ASSERT_OK(p);
  TaskRef writer = ThisScheduler().Spawn(WriteMuch, p->get());
  CO_ASSERT_OK(co_await Sleep(absl::Milliseconds(20)));
  EXPECT_EQ(writer.state(), TaskState::kWaiting);
  CO_ASSERT_OK((*p)->CloseStdin());
  EXPECT_THAT(co_await writer.Join(absl::Seconds(10)),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(co_await (*p)->in().Write("more"), StatusIs(absl::StatusCode::kFailedPrecondition));
}

PICOS_CORO_TEST(Process, BoundedReads) {
  auto p = Process::Spawn(Sh("printf 'short\\n0123456789abcdef\\ntail'"));
  CO_ASSERT_OK(p);
  BufferedReader& out = (*p)->out();
  EXPECT_EQ((co_await out.ReadLine(8, absl::Seconds(10))).value_or("?"), "short\n");
  EXPECT_THAT(co_await out.ReadLine(8, absl::Seconds(10)),
              StatusIs(absl::StatusCode::kResourceExhausted));
  // The long line stayed buffered.
  EXPECT_EQ((co_await out.ReadExactly(4, absl::Seconds(10))).value_or("?"), "0123");
  EXPECT_EQ((co_await out.ReadLine(100, absl::Seconds(10))).value_or("?"), "456789abcdef\n");
  EXPECT_THAT(co_await out.ReadAll(3, absl::Seconds(10)),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ((co_await out.ReadAll(4, absl::Seconds(10))).value_or("?"), "tail");
  EXPECT_THAT(co_await out.Read(0), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(co_await (*p)->Wait(absl::Seconds(10)), IsOk());
}

PICOS_CORO_TEST(Process, ReadTimesOutAndDestructionKillsAndReaps) {
  int pid = 0;
  {
    auto p = Process::Spawn({.program = "sleep", .args = {"30"}});
    CO_ASSERT_OK(p);
    pid = (*p)->pid();
    EXPECT_THAT(co_await (*p)->out().Read(100, absl::Milliseconds(30)),
                StatusIs(absl::StatusCode::kDeadlineExceeded));
    EXPECT_TRUE(ProcessExists(pid));
  }
  EXPECT_FALSE(ProcessExists(pid)) << "child " << pid << " outlived its Process";
}

Task<> SpawnAndReadForever(std::shared_ptr<int> pid) {
  auto p = Process::Spawn({.program = "sleep", .args = {"30"}});
  if (!p.ok()) co_return;
  *pid = (*p)->pid();
  for (int i = 0; i < 10; ++i) {
    // Ignores cancellation and waits again: the task is then destroyed in
    // the wait, with the read in progress.
    (void)co_await (*p)->out().Read(100);
  }
}

PICOS_CORO_TEST(Process, TerminatedTaskKillsItsChild) {
  auto pid = std::make_shared<int>(0);
  TaskRef t = ThisScheduler().Spawn(SpawnAndReadForever, pid);
  CO_ASSERT_OK(co_await Sleep(absl::Milliseconds(20)));
  CO_ASSERT_TRUE(*pid > 0);
  EXPECT_TRUE(ProcessExists(*pid));
  CO_ASSERT_OK(t.Terminate());
  (void)co_await t.Join(absl::Seconds(10));
  EXPECT_EQ(t.state(), TaskState::kDone);
  EXPECT_FALSE(ProcessExists(*pid)) << "child of a terminated task still exists";
}

TEST(Process, SpawnOffTheSchedulerThreadFails) {
  EXPECT_THAT(Process::Spawn({.program = "cat"}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(Process, ExitStatusTravelsAsAValue) {
  ExitStatus s{0, 15};
  Value v = ToValue(s);
  absl::StatusOr<ExitStatus> back = FromValue<ExitStatus>(v);
  ASSERT_OK(back);
  EXPECT_EQ(*back, s);
  // A signal number that does not fit an int is refused, not truncated.
  EXPECT_THAT(FromValue<ExitStatus>(Value::Map({{"code", 0}, {"signal", int64_t{1} << 40}})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"signal\"")));
  EXPECT_THAT(FromValue<ExitStatus>(Value(3)), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace picos
