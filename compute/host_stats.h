// What a compute node says about its host (dispycos DispycosNodeInfo and
// DispycosNodeAvailInfo): CPUs, how much of them is idle, memory, swap,
// disk free where computations' files land, load, name and platform. Read
// from libuv and /proc, no other dependency.
//
//   picos::compute::HostStatsReader reader("/var/lib/picos-node");
//   picos::compute::HostFacts f = reader.Read();   // cpu_available_percent since the last Read
//   picos::Value v = f.ToValue();                   // what crosses the network
//   absl::StatusOr<picos::compute::HostFacts> back = picos::compute::HostFacts::FromValue(v);
//
// HostFacts travel as a Value map with these fields (all present):
//   "host": string (uv_os_gethostname), "platform": string (lower case,
//   "linux-<release>-<machine>", like pycos's platform.platform()),
//   "cpus": int (uv_available_parallelism), "cpu_available_percent":
//   double 0..100, "memory_total", "memory_available", "swap_total",
//   "swap_free", "disk_total", "disk_free": uint bytes, "load": list of 3
//   doubles (1, 5, 15 minutes).
// FromValue checks every field and its range (the map came from the
// network), so a malformed one is kInvalidArgument, never a crash.
//
// Threads: a HostStatsReader is used from one thread at a time; Read does
// file I/O on /proc (a few small reads) and does not suspend.
#ifndef PICOS_COMPUTE_HOST_STATS_H_
#define PICOS_COMPUTE_HOST_STATS_H_

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "core/kernel/value.h"

namespace picos::compute {

struct HostFacts {
  std::string host;
  std::string platform;
  int cpus = 0;
  // Idle share of all CPUs since the reader's previous Read (its first
  // Read: since boot), 0..100.
  double cpu_available_percent = 0;
  uint64_t memory_total = 0;
  uint64_t memory_available = 0;  // /proc/meminfo MemAvailable
  uint64_t swap_total = 0;
  uint64_t swap_free = 0;
  uint64_t disk_total = 0;  // of the file system holding the reader's path
  uint64_t disk_free = 0;   // bytes an unprivileged user may still write
  std::array<double, 3> load = {0, 0, 0};

  Value ToValue() const;
  static absl::StatusOr<HostFacts> FromValue(const Value& v);
};

class HostStatsReader {
 public:
  // `disk_path`: the folder whose file system's free space is reported.
  explicit HostStatsReader(std::string disk_path);

  // The host's facts now. A figure that cannot be read is 0 (and logged,
  // rate-limited): a node keeps reporting what it can.
  HostFacts Read();

 private:
  std::string disk_path_;
  uint64_t last_idle_ = 0;
  uint64_t last_total_ = 0;
};

}  // namespace picos::compute

#endif  // PICOS_COMPUTE_HOST_STATS_H_
