#include "core/io/uv_request_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/io/io_internal.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"
#include "gtest/gtest.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos::internal {
namespace {

using ::picos::testing::StatusIs;

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir ? dir : "/tmp", "/", name);
}

// libuv's pool size, as libuv itself reads it.
int PoolThreads() {
  int n = 4;
  const char* env = std::getenv("UV_THREADPOOL_SIZE");
  if (env != nullptr && absl::SimpleAtoi(env, &n) && n >= 1) return n;
  return 4;
}

// Threads of this process inside the openat system call (what open()
// makes), as /proc shows them; -1 if /proc cannot tell. How a test knows
// that the pool's threads block in their opens, rather than hoping that a
// few milliseconds were enough on a busy machine.
int ThreadsInOpen() {
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(absl::StrCat("/proc/self/task/", e->d_name, "/syscall"));
    long nr = -1;
    if (f >> nr && nr == SYS_openat) ++n;
  }
  closedir(dir);
  return n;
}

// What a request's hook saw, shared with the test.
struct Seen {
  bool called = false;
  ssize_t result = 0;
  bool orphaned = false;
};

struct RecordingPayload {
  explicit RecordingPayload(std::shared_ptr<Seen> s) : seen(std::move(s)) {}
  void OnComplete(uv_fs_t&, ssize_t result, bool orphaned) {
    seen->called = true;
    seen->result = result;
    seen->orphaned = orphaned;
    // An open that nobody takes any more must not leak its descriptor.
    if (orphaned && result >= 0 && close_result) ::close(static_cast<int>(result));
  }
  std::shared_ptr<Seen> seen;
  bool close_result = false;
};

using RecordingRequest = UvRequest<uv_fs_t, RecordingPayload>;

// Holds every thread of libuv's pool in open() of a FIFO that has no writer
// (a blocking open, as File::Open did before it used O_NONBLOCK), until
// Release() opens the writers.
class PoolBlocker {
 public:
  explicit PoolBlocker(int n) {
    for (int i = 0; i < n; ++i) {
      paths_.push_back(TempPath(absl::StrCat("blocker-", getpid(), "-", i)));
      ::unlink(paths_.back().c_str());
      EXPECT_EQ(mkfifo(paths_.back().c_str(), 0600), 0);
      seen_.push_back(std::make_shared<Seen>());
      auto op = std::make_unique<RecordingRequest>(seen_.back());
      op->payload().close_result = true;
      EXPECT_OK(op->Started(uv_fs_open(ThisScheduler().uv_loop(), op->req(), paths_.back().c_str(),
                                       O_RDONLY | O_CLOEXEC, 0, op->callback()),
                            "open"));
      ops_.push_back(std::move(op));
    }
  }
  // Opens a writer on each FIFO, which lets each blocked open() return, and
  // waits for their callbacks.
  Task<> Release() {
    // A writer's non-blocking open of a FIFO fails (ENXIO) while no reader
    // has it open: a pool thread that has not reached its open() yet (a
    // busy machine) gets its writer on a later try.
    std::vector<int> writers(paths_.size(), -1);
    auto open_writers = [&] {
      for (size_t k = 0; k < paths_.size(); ++k) {
        if (writers[k] < 0) writers[k] = ::open(paths_[k].c_str(), O_WRONLY | O_NONBLOCK);
      }
    };
    open_writers();
    ops_.clear();  // orphaned: their hooks close the descriptors
    for (int i = 0; i < 5000 && !AllCalled(); ++i) {
      (void)co_await Sleep(absl::Milliseconds(2));
      open_writers();
    }
    EXPECT_TRUE(AllCalled()) << "a blocked open never completed";
    for (int w : writers) {
      if (w >= 0) ::close(w);
    }
    for (const std::string& p : paths_) ::unlink(p.c_str());
  }

  const std::vector<std::shared_ptr<Seen>>& seen() const { return seen_; }

 private:
  bool AllCalled() const {
    for (const auto& s : seen_) {
      if (!s->called) return false;
    }
    return true;
  }
  std::vector<std::string> paths_;
  std::vector<std::shared_ptr<Seen>> seen_;
  std::vector<std::unique_ptr<RecordingRequest>> ops_;
};

PICOS_CORO_TEST(UvRequest, AwaitsACompletion) {
  auto seen = std::make_shared<Seen>();
  RecordingRequest op(seen);
  const std::string dir = TempPath("");
  CO_ASSERT_OK(op.Started(uv_fs_stat(ThisScheduler().uv_loop(), op.req(), dir.c_str(), op.callback()),
                          "stat"));
  const Deadline deadline(absl::Seconds(30));
  CO_ASSERT_OK(co_await op.Wait(deadline));
  EXPECT_TRUE(op.done());
  EXPECT_EQ(op.result(), 0);
  EXPECT_TRUE(S_ISDIR(op.req()->statbuf.st_mode));
  EXPECT_TRUE(seen->called) << "the hook runs before the waiter wakes";
  EXPECT_FALSE(seen->orphaned);
}

PICOS_CORO_TEST(UvRequest, FailedStartIsAStatusAndNoCallback) {
  uv_tcp_t* tcp = new uv_tcp_t;
  CO_ASSERT_TRUE(uv_tcp_init(ThisScheduler().uv_loop(), tcp) == 0);
  {
    UvRequest<uv_shutdown_t> op;
    // libuv refuses to shut down a stream that is not connected, at once.
    absl::Status st = op.Started(
        uv_shutdown(op.req(), reinterpret_cast<uv_stream_t*>(tcp), op.callback()), "shutdown");
    EXPECT_THAT(st, StatusIs(absl::StatusCode::kUnavailable));
  }  // freed here: no callback will come (ASan checks the leak)
  uv_close(reinterpret_cast<uv_handle_t*>(tcp),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
  co_await Yield();
}

// A request the pool has not started: its wait times out, and destroying
// the waiter cancels it; the callback still comes, and frees it.
PICOS_CORO_TEST(UvRequest, DestroyedWaiterCancelsAQueuedRequest) {
  PoolBlocker blocker(PoolThreads());
  auto seen = std::make_shared<Seen>();
  {
    RecordingRequest op(seen);
    const std::string dir = TempPath("");
    CO_ASSERT_OK(op.Started(
        uv_fs_stat(ThisScheduler().uv_loop(), op.req(), dir.c_str(), op.callback()), "stat"));
    const Deadline soon(absl::Milliseconds(20));
    EXPECT_THAT(co_await op.Wait(soon), StatusIs(absl::StatusCode::kDeadlineExceeded));
    EXPECT_FALSE(op.done()) << "the pool is full: the request cannot have run";
  }
  for (int i = 0; i < 5000 && !seen->called; ++i) (void)co_await Sleep(absl::Milliseconds(2));
  EXPECT_TRUE(seen->called);
  EXPECT_TRUE(seen->orphaned);
  EXPECT_EQ(seen->result, UV_ECANCELED);
  co_await blocker.Release();
}

// The task waiting for a request is terminated: its frame goes, the
// request is cancelled, and nothing calls back into the frame.
PICOS_CORO_TEST(UvRequest, TerminatedWaiterCancelsItsRequest) {
  PoolBlocker blocker(PoolThreads());
  auto seen = std::make_shared<Seen>();
  auto waiter = [seen]() -> Task<absl::Status> {
    RecordingRequest op(seen);
    PICOS_CO_RETURN_IF_ERROR(op.Started(
        uv_fs_stat(ThisScheduler().uv_loop(), op.req(), "/", op.callback()), "stat"));
    const Deadline forever(absl::InfiniteDuration());
    co_return co_await op.Wait(forever);
  };
  TaskRef t = ThisScheduler().Spawn(waiter);
  (void)co_await Sleep(absl::Milliseconds(5));
  CO_ASSERT_OK(t.Terminate());
  absl::StatusOr<Value> ended = co_await t.Join(absl::Seconds(30));
  EXPECT_THAT(ended, StatusIs(absl::StatusCode::kCancelled));
  for (int i = 0; i < 5000 && !seen->called; ++i) (void)co_await Sleep(absl::Milliseconds(2));
  EXPECT_TRUE(seen->orphaned);
  EXPECT_EQ(seen->result, UV_ECANCELED);
  co_await blocker.Release();
}

int OpenFdCount() {
  int n = 0;
  for (int fd = 0; fd < 4096; ++fd) {
    if (fcntl(fd, F_GETFD) >= 0) ++n;
  }
  return n;
}

// Requests already running cannot be cancelled: they are orphaned, and their
// hook deals with what nobody will take (here, the opened descriptors).
PICOS_CORO_TEST(UvRequest, RunningRequestIsOrphaned) {
  const int fds_before = OpenFdCount();
  PoolBlocker blocker(PoolThreads());
  // Until the pool's threads are inside the opens (they cannot be
  // cancelled then), with a deadline only a hang reaches.
  const absl::Time give_up = absl::Now() + absl::Minutes(2);
  while (ThreadsInOpen() >= 0 && ThreadsInOpen() < PoolThreads() && absl::Now() < give_up) {
    (void)co_await Sleep(absl::Milliseconds(1));
  }
  if (ThreadsInOpen() < 0) {
    co_await blocker.Release();
    CO_SKIP("/proc/self/task/*/syscall cannot tell when the pool's threads are in open()");
  }
  EXPECT_GE(ThreadsInOpen(), PoolThreads()) << "the pool's threads never reached their opens";
  co_await blocker.Release();  // orphans them, then lets them finish
  for (const auto& seen : blocker.seen()) {
    EXPECT_TRUE(seen->orphaned);
    EXPECT_GE(seen->result, 0) << "the open succeeded once a writer came";
  }
  EXPECT_EQ(OpenFdCount(), fds_before) << "an orphaned open leaked its descriptor";
}

// A detached request runs to its end (it is not cancelled, though the pool
// has not started it yet), runs its hook and frees itself.
PICOS_CORO_TEST(UvRequest, DetachedRequestRunsItsHookAndFreesItself) {
  PoolBlocker blocker(PoolThreads());
  auto seen = std::make_shared<Seen>();
  {
    RecordingRequest op(seen);
    CO_ASSERT_OK(op.Started(uv_fs_stat(ThisScheduler().uv_loop(), op.req(), "/", op.callback()),
                            "stat"));
    op.Detach();
  }
  co_await blocker.Release();  // the pool's threads come free and run it
  for (int i = 0; i < 5000 && !seen->called; ++i) (void)co_await Sleep(absl::Milliseconds(2));
  EXPECT_TRUE(seen->called);
  EXPECT_TRUE(seen->orphaned);
  EXPECT_EQ(seen->result, 0) << "a detached request is not cancelled";
}

}  // namespace
}  // namespace picos::internal
