// The computation library of testing/compute_messages_test.cc: jobs with a
// context (compute/export.h, PICOS_COMPUTE_JOB) that message their client.
// It links only compute/export.h.
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "compute/export.h"

namespace {

using picos::compute::Job;

constexpr std::chrono::seconds kLong(60);  // only a hang reaches it

bool ParseInt(std::string_view s, int64_t* n) {
  if (s.empty() || s.size() > 18) return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *n = v;
  return true;
}

// Sends back every message it receives, in order, until "end": the result
// is how many it echoed. Cancelled, it sends "cancelled after <n>" and
// fails.
int Echo(Job& job, std::string* out) {
  int64_t n = 0;
  std::string m;
  for (;;) {
    const Job::Code rc = job.Receive(&m, kLong);
    if (rc == Job::kCancelled) {
      job.Send("cancelled after " + std::to_string(n));
      *out = "cancelled";
      return 1;
    }
    if (rc != Job::kOk) {
      *out = "receive: " + std::to_string(rc);
      return 1;
    }
    if (m == "end") break;
    if (job.Send(m) != Job::kOk) {
      *out = "send failed";
      return 1;
    }
    ++n;
  }
  *out = std::to_string(n);
  return 0;
}
PICOS_COMPUTE_JOB(echo, Echo);

// "n": sends "0" .. "n-1" (at most 100,000), then gives "sent n".
int Burst(Job& job, std::string* out) {
  int64_t n = 0;
  if (!ParseInt(job.arg(), &n) || n > 100'000) {
    *out = "want a count up to 100000";
    return 1;
  }
  for (int64_t i = 0; i < n; ++i) {
    if (job.Send(std::to_string(i)) != Job::kOk) {
      *out = "send failed at " + std::to_string(i);
      return 1;
    }
  }
  *out = "sent " + std::to_string(n);
  return 0;
}
PICOS_COMPUTE_JOB(burst, Burst);

// The first message it receives is its result.
int First(Job& job, std::string* out) {
  const Job::Code rc = job.Receive(out, kLong);
  if (rc != Job::kOk) {
    *out = "receive: " + std::to_string(rc);
    return 1;
  }
  return 0;
}
PICOS_COMPUTE_JOB(first, First);

// "ms:n": says "computing", computes for `ms` (at most 10 s) without
// receiving (pycos dispycos_client8's long computation), then reads `n`
// messages, which waited in its mailbox meanwhile: its result is them
// joined with ','.
int ComputeThenRead(Job& job, std::string* out) {
  const std::string_view arg = job.arg();
  const size_t colon = arg.find(':');
  int64_t ms = 0, n = 0;
  if (colon == std::string_view::npos || !ParseInt(arg.substr(0, colon), &ms) || ms > 10'000 ||
      !ParseInt(arg.substr(colon + 1), &n) || n > 10'000) {
    *out = "want ms:n";
    return 1;
  }
  job.Send("computing");
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  volatile uint64_t x = 1;
  while (std::chrono::steady_clock::now() < end) {
    for (int i = 0; i < 10000; ++i) x = x * 6364136223846793005ULL + 1;
  }
  std::string m;
  for (int64_t i = 0; i < n; ++i) {
    const Job::Code rc = job.Receive(&m, kLong);
    if (rc != Job::kOk) {
      *out = "receive " + std::to_string(i) + ": " + std::to_string(rc);
      return 1;
    }
    if (i > 0) out->push_back(',');
    out->append(m);
  }
  return 0;
}
PICOS_COMPUTE_JOB(compute_then_read, ComputeThenRead);

// Says "ready", then takes no message until it is cancelled (its mailbox
// fills), then sends "last" and fails with "cancelled". At most 60 s.
int Hold(Job& job, std::string* out) {
  job.Send("ready");
  for (int i = 0; i < 12'000 && !job.cancelled(); ++i) usleep(5'000);
  std::string m;
  const Job::Code rc = job.Receive(&m, std::chrono::seconds(0));
  job.Send(job.cancelled() && rc == Job::kCancelled ? "last" : "not cancelled");
  *out = "cancelled";
  return 1;
}
PICOS_COMPUTE_JOB(hold, Hold);

// Receive with a short timeout gives kDeadlineExceeded; Send without a
// reply_to gives kFailedPrecondition: "deadline,precondition".
int Codes(Job& job, std::string* out) {
  std::string m;
  const Job::Code r = job.Receive(&m, std::chrono::milliseconds(20));
  const Job::Code s = job.Send("x");
  *out = std::string(r == Job::kDeadlineExceeded ? "deadline" : "receive " + std::to_string(r)) + "," +
         (s == Job::kFailedPrecondition ? "precondition" : "send " + std::to_string(s));
  return 0;
}
PICOS_COMPUTE_JOB(codes, Codes);

// A bytes-only function beside them: "n" -> "n".
int Same(std::string_view arg, std::string* out) {
  *out = std::string(arg);
  return 0;
}
PICOS_COMPUTE_FUNCTION(same, Same);

}  // namespace
