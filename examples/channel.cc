// pycos's channel.py in picos: a channel broadcasts numbers to two
// subscriber tasks, one summing, one multiplying; a null message ends them.
//
//   bazel run //examples:channel -- --count=5
//
// Prints what is sent, how many subscribers the last message reached, and
// the sum and product each subscriber computed.
#include <cstdint>
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "core/cli/flags.h"
#include "core/kernel/channel.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"

ABSL_FLAG(int, count, 5, "numbers to broadcast, 1..20");

namespace {

using picos::Channel;
using picos::Task;
using picos::TaskRef;
using picos::Value;

// Receives numbers until a null message, then prints what it made of them.
// Anything that is not a small number is skipped.
Task<> Accumulate(const char* what, bool multiply) {
  int64_t result = multiply ? 1 : 0;
  for (;;) {
    absl::StatusOr<Value> msg = co_await picos::Receive();
    if (!msg.ok() || msg->is_null()) break;
    absl::StatusOr<int32_t> n = msg->As<int32_t>();
    if (!n.ok()) {
      std::printf("%s: skipping %s: %s\n", what, msg->DebugString().c_str(),
                  n.status().ToString().c_str());
      continue;
    }
    result = multiply ? result * *n : result + *n;
  }
  std::printf("%s: %lld\n", what, static_cast<long long>(result));
}

Task<absl::Status> Client(int count) {
  Channel channel = Channel::Create("sum_prod");
  picos::Scheduler& s = picos::ThisScheduler();
  TaskRef sum = s.Spawn(Accumulate, "sum", false);
  TaskRef product = s.Spawn(Accumulate, "product", true);
  if (absl::Status st = channel.Subscribe(sum); !st.ok()) co_return st;
  if (absl::Status st = channel.Subscribe(product); !st.ok()) co_return st;
  for (int i = 1; i <= count; ++i) {
    if (absl::Status st = channel.Send(i); !st.ok()) co_return st;
    std::printf("sent %d\n", i);
  }
  // The end marker, acknowledged: how many subscribers got it.
  absl::StatusOr<size_t> reached = co_await channel.Deliver(Value(), 2, absl::Seconds(5));
  if (!reached.ok()) co_return reached.status();
  std::printf("end delivered to %zu subscribers\n", *reached);
  (void)co_await sum.Join();
  (void)co_await product.Join();
  (void)channel.Unsubscribe(sum);
  (void)channel.Unsubscribe(product);
  co_return channel.Close();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  int count = absl::GetFlag(FLAGS_count);
  if (!picos::FlagInRange(FLAGS_count, 1, 20)) return 2;
  return picos::RunMain("channel", Client, count);
}
