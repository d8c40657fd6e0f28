#include "testing/bench/figures.h"

#include <unistd.h>

#include <fstream>

namespace picos::bench {

int64_t CurrentRssBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace picos::bench
