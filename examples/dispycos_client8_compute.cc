// The computation of dispycos_client8 (pycos dispycos_client8.py's
// `compute`), a shared library built with picos_computation: a job that
// computes for a long time without awaiting anything, while the client's
// inputs wait in its mailbox. It links only compute/export.h.
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "compute/export.h"

namespace {

using picos::compute::Job;

// "<work_ms>" (1..10000) -> for each input the client sends (an integer,
// as text) works work_ms (a busy loop: it takes no message meanwhile, the
// worker's networking keeps receiving them), until "end"; then sends
// "result <n> <sum> <pid>" and returns it.
int Compute(Job& job, std::string* out) {
  int ms = 0;
  char tail = 0;
  const std::string a(job.arg().substr(0, 32));
  if (job.arg().size() > 32 || std::sscanf(a.c_str(), "%d%c", &ms, &tail) != 1 || ms < 1 || ms > 10'000) {
    *out = "compute wants <work_ms>, 1..10000";
    return 1;
  }
  long long n = 0, sum = 0;
  std::string input;
  for (;;) {
    const Job::Code rc = job.Receive(&input, std::chrono::minutes(2));
    if (rc != Job::kOk) {
      *out = "no input: code " + std::to_string(rc);
      return 1;
    }
    if (input == "end") break;
    long long v = 0;
    if (input.size() > 20 || std::sscanf(input.c_str(), "%lld%c", &v, &tail) != 1) {
      *out = "not an integer: " + input.substr(0, 32);
      return 1;
    }
    // The long computation (pycos: time.sleep), blocking this thread only.
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    volatile uint64_t x = static_cast<uint64_t>(v);
    while (std::chrono::steady_clock::now() < end) {
      for (int i = 0; i < 10000; ++i) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    }
    ++n;
    sum += v;
  }
  char buf[96];
  std::snprintf(buf, sizeof buf, "result %lld %lld %d", n, sum, static_cast<int>(getpid()));
  if (job.Send(buf) != Job::kOk) {
    *out = "the result could not be sent";
    return 1;
  }
  *out = buf;
  return 0;
}

}  // namespace

PICOS_COMPUTE_JOB(compute, Compute);
