// A computation library as one built against picos compute ABI 2 looked to
// a worker (compute/export.h before names: the job context ended at
// append_result). compute_names_test checks that a worker of ABI 3 still
// runs it. It deliberately does not include compute/export.h, whose symbols
// would say the current version.
#include <cstddef>
#include <cstdint>

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

struct EntryV2 {
  const char* name;
  int (*fn)(const char*, size_t, void*, Append);
  int (*job_fn)(const OpsV2*);
};

// A job with a context: its argument back as its result.
int Echo(const OpsV2* ops) {
  ops->append_result(ops->ctx, ops->arg, ops->arg_len);
  return 0;
}

const EntryV2 kTable[] = {{"echo_v2", nullptr, &Echo}};

}  // namespace

extern "C" __attribute__((visibility("default"))) const EntryV2* picos_compute_table(size_t* n) {
  *n = 1;
  return kTable;
}

extern "C" __attribute__((visibility("default"))) int picos_compute_abi(void) { return 2; }
