// The computation of dispycos_mem_servers (pycos dispycos_mem_servers.py's
// init_mem and compute), a shared library built with picos_computation:
// data loaded once into a worker process's memory, then a long-lived job
// there answering requests about it. It links only compute/export.h.
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "compute/export.h"
#include "examples/fnv1a.h"

namespace {

using picos::compute::Job;

// The worker process's in-memory data (pycos: the server's globals). Jobs
// of one worker run one at a time on its job thread: no lock.
std::string* g_data = nullptr;

// init_mem: the argument becomes the process's data; answers "<bytes> <pid>".
int Load(std::string_view arg, std::string* out) {
  if (g_data == nullptr) g_data = new std::string;  // lives as long as the process
  g_data->assign(arg);
  *out = std::to_string(g_data->size()) + " " + std::to_string(getpid());
  return 0;
}

// The server: answers each request "<offset> <length>" with
// "<offset> <length> <fnv1a hex of that slice> <pid>", or "none <pid>" when
// this process holds no data (a fresh one), until "end" (or cancelled);
// returns how many it answered.
int Serve(Job& job, std::string* out) {
  long long answered = 0;
  std::string request;
  for (;;) {
    const Job::Code rc = job.Receive(&request, std::chrono::minutes(2));
    if (rc != Job::kOk || request == "end") break;
    char reply[128];
    long long offset = 0, length = 0;
    char tail = 0;
    if (g_data == nullptr) {
      std::snprintf(reply, sizeof reply, "none %d", static_cast<int>(getpid()));
    } else if (request.size() > 48 ||
               std::sscanf(request.c_str(), "%lld %lld%c", &offset, &length, &tail) != 2 || offset < 0 ||
               length < 0 || static_cast<unsigned long long>(offset + length) > g_data->size()) {
      std::snprintf(reply, sizeof reply, "bad request %d", static_cast<int>(getpid()));
    } else {
      const uint64_t h = picos::examples::Fnv1a(std::string_view(*g_data).substr(offset, length));
      std::snprintf(reply, sizeof reply, "%lld %lld %016llx %d", offset, length, static_cast<unsigned long long>(h),
                    static_cast<int>(getpid()));
    }
    if (job.Send(reply) != Job::kOk) break;
    ++answered;
  }
  *out = std::to_string(answered);
  return 0;
}

}  // namespace

PICOS_COMPUTE_FUNCTION(load, Load);
PICOS_COMPUTE_JOB(serve, Serve);
