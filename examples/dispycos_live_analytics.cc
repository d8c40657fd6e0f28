// pycos dispycos_live_analytics.py in C++: a stream of ticks to two remote
// jobs, signals back. The client makes --ticks prices (a random walk with
// trends) and sends each, as it is made, to two jobs on the workers: `trend`
// (a moving-average crossover detector, windows --short and --long) sends a
// buy or sell signal back to this task each time the averages cross;
// `save` keeps every tick and answers how many it kept. The client computes
// the same signals itself and checks that the job's match, in order.
//
//   PICOS_REMOTE_SECRET=... dispycos_live_analytics --nodes=tcp://127.0.0.1:9706 --ticks=1000
//
// Output, for people and for its smoke test (examples/dispycos_live_analytics_smoke_test.sh):
//   dispycos_live_analytics: signal at tick <i>: <buy|sell> at <price>
//   dispycos_live_analytics: <n> ticks streamed to 2 jobs; <k> signals, <e> expected: ok|WRONG
//   dispycos_live_analytics: save kept <n> ticks, sum <s> in pid <pid>: ok|WRONG
// Exit status 1 when a signal or the saved ticks are wrong, 2 for a bad flag.
#include <cstdio>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "compute/computation.h"
#include "core/cli/flags.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "examples/dispycos_client_lib.h"

ABSL_FLAG(std::vector<std::string>, nodes, {}, "the picos-node URIs to run the jobs on (required)");
ABSL_FLAG(int, ticks, 1000, "ticks to stream");
ABSL_FLAG(int, short_window, 5, "ticks in the short moving average");
ABSL_FLAG(int, long_window, 20, "ticks in the long moving average");
ABSL_FLAG(std::string, library, "examples/libdispycos_live_analytics_compute.so",
          "the computation library (picos_computation dispycos_live_analytics_compute)");

namespace {

using picos::Task;
using picos::TaskRef;
using picos::Value;

constexpr absl::Duration kLong = absl::Minutes(2);  // only a hang reaches it

// The signals `trend` should send for `prices` (the same integer
// arithmetic as dispycos_live_analytics_compute.cc).
std::vector<std::string> ExpectedSignals(const std::vector<long long>& prices, int s, int l) {
  std::vector<std::string> out;
  std::deque<long long> window;
  long long short_sum = 0, long_sum = 0;
  int side = 0;
  for (size_t i = 0; i < prices.size(); ++i) {
    window.push_back(prices[i]);
    long_sum += prices[i];
    short_sum += prices[i];
    if (static_cast<int>(window.size()) > s) short_sum -= window[window.size() - 1 - s];
    if (static_cast<int>(window.size()) > l) {
      long_sum -= window.front();
      window.pop_front();
    }
    if (static_cast<int>(window.size()) < l) continue;
    const long long d = short_sum * l - long_sum * s;
    const int now = d > 0 ? 1 : d < 0 ? -1 : side;
    if (side != 0 && now != side) out.push_back(absl::StrCat("signal ", i, " ", now > 0 ? "buy" : "sell", " ", prices[i]));
    side = now;
  }
  return out;
}

Task<absl::Status> Client() {
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::examples::StartClientNode("dispycos_live_analytics"));
  picos::compute::ComputationOptions o;
  o.library = absl::GetFlag(FLAGS_library);
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::compute::Computation> computation,
                            co_await picos::examples::ScheduleComputation(o, absl::GetFlag(FLAGS_nodes)));

  const int s = absl::GetFlag(FLAGS_short_window), l = absl::GetFlag(FLAGS_long_window);
  picos::compute::RunOptions ro;
  ro.reply_to = picos::Self();  // the signals come here
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef trend, co_await computation->Run("trend", absl::StrCat(s, " ", l), ro));
  // I/O jobs, so the saver runs beside the detector even on one worker.
  picos::compute::RunOptions io;
  io.async = true;
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef save, co_await computation->Run("save", "", io));

  // The stream: a random walk whose drift changes every 50 ticks, so the
  // averages cross now and then.
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> step(-40, 40), drift(-15, 15);
  std::vector<long long> prices;
  long long price = 100'000;
  int trend_now = 0;
  const int ticks = absl::GetFlag(FLAGS_ticks);
  for (int i = 0; i < ticks; ++i) {
    if (i % 50 == 0) trend_now = drift(random);
    price = std::max<long long>(1, price + trend_now + step(random));
    prices.push_back(price);
    const Value tick(absl::StrCat(i, " ", price));
    // Each job's mailbox is bounded: wait for room rather than lose a tick.
    PICOS_CO_RETURN_IF_ERROR(co_await trend.Deliver(tick, kLong));
    PICOS_CO_RETURN_IF_ERROR(co_await save.Deliver(tick, kLong));
  }
  PICOS_CO_RETURN_IF_ERROR(trend.Send(Value("end")));
  PICOS_CO_RETURN_IF_ERROR(save.Send(Value("end")));

  const std::vector<std::string> want = ExpectedSignals(prices, s, l);
  absl::StatusOr<Value> trend_end = co_await trend.Join(kLong);
  // Its signals were sent before it ended: all are in this task's mailbox.
  std::vector<std::string> got;
  for (int n = 0; n < ticks; ++n) {
    absl::StatusOr<Value> m = co_await picos::Receive(absl::ZeroDuration());
    if (!m.ok()) break;
    got.push_back(m->GetOr<std::string>("data", ""));
    long long i = 0, p = 0;
    char side[8] = {0};
    if (std::sscanf(got.back().c_str(), "signal %lld %7s %lld", &i, side, &p) == 3) {
      std::printf("dispycos_live_analytics: signal at tick %lld: %s at %lld\n", i, side, p);
    }
  }
  const bool signals_ok = trend_end.ok() && got == want &&
                          *trend_end == Value::Bytes(absl::StrCat("signals ", want.size()));
  std::printf("dispycos_live_analytics: %d ticks streamed to 2 jobs; %zu signals, %zu expected: %s\n", ticks,
              got.size(), want.size(), signals_ok ? "ok" : "WRONG");
  long long sum = 0;
  for (long long p : prices) sum += p;
  absl::StatusOr<Value> saved = co_await save.Join(kLong);
  long long n = 0, saved_sum = 0;
  int pid = 0;
  const std::string sv = saved.ok() ? saved->As<std::string>().value_or("") : saved.status().ToString();
  const bool parsed = std::sscanf(sv.c_str(), "saved %lld %lld %d", &n, &saved_sum, &pid) == 3;
  const bool saved_ok = parsed && n == ticks && saved_sum == sum;
  std::printf("dispycos_live_analytics: save kept %lld ticks, sum %lld in pid %d: %s\n", n, saved_sum, pid,
              saved_ok ? "ok" : "WRONG");
  std::fflush(stdout);
  PICOS_CO_RETURN_IF_ERROR(co_await computation->Close());
  if (!signals_ok || !saved_ok) co_return absl::AbortedError("a signal or the saved ticks are wrong");
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_ticks, 1, 1'000'000) || !picos::FlagInRange(FLAGS_short_window, 1, 999) ||
      !picos::FlagInRange(FLAGS_long_window, 2, 1000)) {
    return 2;
  }
  if (absl::GetFlag(FLAGS_short_window) >= absl::GetFlag(FLAGS_long_window)) {
    std::fprintf(stderr, "dispycos_live_analytics: --short_window must be less than --long_window\n");
    return 2;
  }
  if (!picos::examples::NodesGiven("dispycos_live_analytics", absl::GetFlag(FLAGS_nodes))) return 2;
  return picos::RunMain("dispycos_live_analytics", Client);
}
