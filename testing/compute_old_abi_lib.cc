// A computation library as one built against picos compute ABI 1 looked to
// a worker (compute/export.h before job contexts): a table and no
// picos_compute_abi symbol. compute_messages_test checks that a worker
// refuses it with a clear error. It deliberately does not include
// compute/export.h, whose symbols would say the current version.
#include <cstddef>

namespace {

int Nothing(const char*, size_t, void*, void (*)(void*, const char*, size_t)) { return 0; }

struct OldEntry {
  const char* name;
  int (*fn)(const char*, size_t, void*, void (*)(void*, const char*, size_t));
};

const OldEntry kTable[] = {{"nothing", &Nothing}};

}  // namespace

extern "C" __attribute__((visibility("default"))) const OldEntry* picos_compute_table(size_t* n) {
  *n = 1;
  return kTable;
}
