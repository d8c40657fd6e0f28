// A program compiled the way a user might by mistake, without
// -foptimize-sibling-calls (see its BUILD target): a long loop of co_awaits
// of sub-tasks that complete at once. picos must stop it with a message that
// names the flag, not let it overflow the stack with a bare segfault.
// Run by //core/kernel:no_sibling_calls_test.
#include <cstdint>
#include <cstdio>

#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"

namespace {

picos::Task<int> One() { co_return 1; }

picos::Task<int64_t> Loop() {
  int64_t sum = 0;
  for (int i = 0; i < 5'000'000; ++i) sum += co_await One();
  co_return sum;
}

}  // namespace

int main() {
  picos::Scheduler s;
  picos::TaskRef t = s.Spawn(Loop);
  absl::StatusOr<picos::Value> r = s.RunUntil(t);
  // Reached only if the stack stayed flat after all (a compiler that makes
  // the tail call anyway): the test then fails on the exit status.
  std::printf("loop ended: %s\n", r.ok() ? r->DebugString().c_str() : r.status().ToString().c_str());
  return 0;
}
