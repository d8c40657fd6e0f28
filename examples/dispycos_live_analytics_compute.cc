// The computation of dispycos_live_analytics (pycos
// dispycos_live_analytics.py's trend and save tasks), a shared library built
// with picos_computation: two jobs fed the same stream of ticks as
// messages. It links only compute/export.h.
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <string>
#include <string_view>

#include "compute/export.h"

namespace {

using picos::compute::Job;

constexpr auto kTickWait = std::chrono::minutes(2);  // only a hang reaches it

// A tick "<i> <price>" (price in cents, 1..10^9).
bool ParseTick(const std::string& m, long long* i, long long* price) {
  char tail = 0;
  return m.size() < 64 && std::sscanf(m.c_str(), "%lld %lld%c", i, price, &tail) == 2 && *i >= 0 && *price > 0 &&
         *price <= 1'000'000'000;
}

// "<short> <long>" (windows, 1 <= short < long <= 1000) -> a moving-average
// crossover detector: once `long` ticks came, each time the short average
// crosses the long one it sends "signal <i> buy|sell <price>" (integers
// only, so the client can check every signal exactly). Until "end";
// answers "signals <n>".
int Trend(Job& job, std::string* out) {
  int s = 0, l = 0;
  char tail = 0;
  const std::string a(job.arg().substr(0, 32));
  if (job.arg().size() > 32 || std::sscanf(a.c_str(), "%d %d%c", &s, &l, &tail) != 2 || s < 1 || l <= s || l > 1000) {
    *out = "trend wants \"<short> <long>\", 1 <= short < long <= 1000";
    return 1;
  }
  std::deque<long long> window;
  long long short_sum = 0, long_sum = 0, signals = 0;
  int side = 0;  // +1 short above long, -1 below, 0 not known yet
  std::string m;
  for (;;) {
    if (job.Receive(&m, kTickWait) != Job::kOk) {
      *out = "no tick";
      return 1;
    }
    if (m == "end") break;
    long long i = 0, price = 0;
    if (!ParseTick(m, &i, &price)) {
      *out = "malformed tick: " + m.substr(0, 32);
      return 1;
    }
    window.push_back(price);
    long_sum += price;
    short_sum += price;
    if (static_cast<int>(window.size()) > s) short_sum -= window[window.size() - 1 - s];
    if (static_cast<int>(window.size()) > l) {
      long_sum -= window.front();
      window.pop_front();
    }
    if (static_cast<int>(window.size()) < l) continue;
    const long long d = short_sum * l - long_sum * s;  // short average minus long, times s*l
    const int now = d > 0 ? 1 : d < 0 ? -1 : side;
    if (side != 0 && now != side) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "signal %lld %s %lld", i, now > 0 ? "buy" : "sell", price);
      if (job.Send(buf) != Job::kOk) {
        *out = "a signal could not be sent";
        return 1;
      }
      ++signals;
    }
    side = now;
  }
  *out = "signals " + std::to_string(signals);
  return 0;
}

// Keeps every tick (pycos saves them to a file; here the worker's memory)
// until "end"; answers "saved <n> <sum of prices> <pid>".
int Save(Job& job, std::string* out) {
  long long n = 0, sum = 0;
  std::string m;
  for (;;) {
    if (job.Receive(&m, kTickWait) != Job::kOk) {
      *out = "no tick";
      return 1;
    }
    if (m == "end") break;
    long long i = 0, price = 0;
    if (!ParseTick(m, &i, &price) || i != n) {
      *out = "tick out of order or malformed: " + m.substr(0, 32);
      return 1;
    }
    ++n;
    sum += price;
  }
  *out = "saved " + std::to_string(n) + " " + std::to_string(sum) + " " + std::to_string(getpid());
  return 0;
}

}  // namespace

PICOS_COMPUTE_JOB(trend, Trend);
PICOS_COMPUTE_JOB(save, Save);
