// A computation library as one built against picos compute ABI 2 looks to
// a worker (compute/export.h before Job::dir and Job::SendFile): its job
// context is the ABI 2 prefix of today's PicosComputeJobOps.
// compute_files_test checks that an ABI 3 worker still runs it. It
// deliberately does not include compute/export.h, whose symbols would say
// the current version.
#include <cstddef>
#include <cstdint>
#include <string>

namespace {

typedef void (*Append)(void* ctx, const char* data, size_t n);

// PicosComputeJobOps as ABI 2 laid it out.
struct OpsV2 {
  void* ctx;
  const char* arg;
  size_t arg_len;
  uint64_t job_id;
  int (*send)(void* ctx, const char* data, size_t n);
  int (*receive)(void* ctx, int64_t timeout_ns, void* out, Append append);
  int (*cancelled)(void* ctx);
  void (*append_result)(void* ctx, const char* data, size_t n);
};

struct Entry {
  const char* name;
  int (*fn)(const char*, size_t, void*, Append);
  int (*job_fn)(const OpsV2*);
};

// "abi2 <arg> job <id>": what it read of its context.
int OldJob(const OpsV2* ops) {
  const std::string out =
      "abi2 " + std::string(ops->arg, ops->arg_len) + " job " + std::to_string(ops->job_id);
  ops->append_result(ops->ctx, out.data(), out.size());
  return 0;
}

const Entry kTable[] = {{"old_job", nullptr, &OldJob}};

}  // namespace

extern "C" __attribute__((visibility("default"))) const Entry* picos_compute_table(size_t* n) {
  *n = 1;
  return kTable;
}

extern "C" __attribute__((visibility("default"))) int picos_compute_abi(void) { return 2; }
