// pycos hotswap.py in picos: a server task's function is replaced while a
// client keeps sending it messages; none is lost, the task stays the same.
// As in pycos, the swap is delivered into the running server at its next
// swap point, and the server decides there whether to take it.
//
//   bazel run //examples:hotswap
#include <cstdio>
#include <string>

#include "absl/time/time.h"
#include "core/kernel/hot_swap.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"

namespace {

using picos::Task;
using picos::TaskRef;
using picos::Value;

Task<> ServerV1() {
  int handled = 0;
  // Swappable whenever it waits in Receive, but only once it has handled
  // three messages: the server decides, when a swap arrives.
  auto decide = [&handled](const picos::HotSwapOffer&) -> absl::Status {
    if (handled < 3) return absl::FailedPreconditionError("v1 handles 3 messages first");
    return absl::OkStatus();
  };
  picos::HotSwapGuard allow(decide);
  for (;;) {
    absl::StatusOr<Value> m = co_await picos::Receive();
    if (!m.ok()) co_return;
    ++handled;
    std::printf("server v1 (%s): got %s\n", picos::Self().DebugString().c_str(),
                m->DebugString().c_str());
  }
}

// The new function: same task, same mailbox; doubles what it gets. It does
// not declare itself swappable, so a later swap waits in vain.
Task<int> ServerV2(int factor) {
  int handled = 0;
  for (;;) {
    absl::StatusOr<Value> m = co_await picos::Receive();
    if (!m.ok()) co_return handled;
    if (*m == Value("quit")) break;
    absl::StatusOr<int32_t> n = m->As<int32_t>();
    if (!n.ok()) continue;  // not a number: nothing to double
    ++handled;
    std::printf("server v2 (%s): got %d, times %d is %lld\n",
                picos::Self().DebugString().c_str(), *n, factor,
                static_cast<long long>(*n) * factor);
  }
  std::printf("server v2: done after %d messages\n", handled);
  co_return handled;
}

Task<> Client(TaskRef server, int count) {
  for (int i = 1; i <= count; ++i) {
    (void)server.Send(i);
    (void)co_await picos::Sleep(absl::Milliseconds(5));
  }
  (void)server.Send("quit");
}

Task<absl::Status> Main() {
  TaskRef server = picos::ThisScheduler().SpawnNamed("server", ServerV1);
  TaskRef client = picos::ThisScheduler().Spawn(Client, server, 10);
  // Each request waits for the server's next swap point, where the server
  // takes it or refuses it; a refused one is asked again a little later.
  for (int attempt = 1;; ++attempt) {
    absl::Status s = co_await picos::HotSwap(server, ServerV2, 2);
    if (s.ok()) break;
    std::printf("swap refused: %s\n", s.ToString().c_str());
    if (attempt == 100) co_return s;
    (void)co_await picos::Sleep(absl::Milliseconds(5));
  }
  std::printf("swap accepted: %s now runs ServerV2\n", server.DebugString().c_str());
  absl::Status again = co_await picos::HotSwap(server, ServerV1(), absl::Milliseconds(20));
  std::printf("second swap not taken: %s\n", again.ToString().c_str());
  absl::StatusOr<Value> handled = co_await server.Join();
  (void)co_await client.Join();
  if (!handled.ok()) co_return handled.status();
  std::printf("server ended with %s\n", handled->DebugString().c_str());
  co_return absl::OkStatus();
}

}  // namespace

int main() {
  picos::Scheduler s;
  TaskRef main_task = s.Spawn(Main);
  absl::StatusOr<Value> r = s.RunUntil(main_task);
  if (!r.ok()) {
    std::fprintf(stderr, "hotswap: %s\n", r.status().ToString().c_str());
    return 1;
  }
  return 0;
}
