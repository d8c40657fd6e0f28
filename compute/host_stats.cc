#include "compute/host_stats.h"

#include <sys/statvfs.h>
#include <uv.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/kernel/log.h"

namespace picos::compute {
namespace {

// The kB figure of `key` in /proc/meminfo ("MemAvailable:  123 kB"), in
// bytes; 0 if absent.
uint64_t MeminfoBytes(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string name;
  uint64_t kb = 0;
  std::string unit;
  while (in >> name >> kb) {
    std::getline(in, unit);
    if (name == key + ":") return kb * 1024;
  }
  return 0;
}

std::string ReadSmallFile(const char* path) {
  std::ifstream in(path);
  std::string text;
  char buf[4096];
  while (in && text.size() < (1 << 16)) {
    in.read(buf, sizeof buf);
    text.append(buf, static_cast<size_t>(in.gcount()));
  }
  return text;
}

absl::Status Bad(absl::string_view field) {
  return absl::InvalidArgumentError(absl::StrCat("malformed host facts: field ", field));
}

}  // namespace

Value HostFacts::ToValue() const {
  return Value::Map({{"host", host},
                     {"platform", platform},
                     {"cpus", cpus},
                     {"cpu_available_percent", cpu_available_percent},
                     {"memory_total", memory_total},
                     {"memory_available", memory_available},
                     {"swap_total", swap_total},
                     {"swap_free", swap_free},
                     {"disk_total", disk_total},
                     {"disk_free", disk_free},
                     {"load", Value::List({load[0], load[1], load[2]})}});
}

absl::StatusOr<HostFacts> HostFacts::FromValue(const Value& v) {
  HostFacts f;
  int64_t cpus = 0;
  absl::Status read = MessageReader(v)
                          .Get("host", &f.host)
                          .Get("platform", &f.platform)
                          .Get("cpus", &cpus)
                          .Get("cpu_available_percent", &f.cpu_available_percent)
                          .Get("memory_total", &f.memory_total)
                          .Get("memory_available", &f.memory_available)
                          .Get("swap_total", &f.swap_total)
                          .Get("swap_free", &f.swap_free)
                          .Get("disk_total", &f.disk_total)
                          .Get("disk_free", &f.disk_free)
                          .status();
  if (!read.ok()) return absl::InvalidArgumentError(absl::StrCat("malformed host facts: ", read.message()));
  if (f.host.size() > 255) return Bad("host");
  if (f.platform.size() > 255) return Bad("platform");
  if (cpus < 1 || cpus > 65536) return Bad("cpus");
  f.cpus = static_cast<int>(cpus);
  if (!(f.cpu_available_percent >= 0 && f.cpu_available_percent <= 100)) return Bad("cpu_available_percent");
  const Value& load = v["load"];
  if (!load.is_list() || load.as_list().size() != 3) return Bad("load");
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<double> l = load[i].As<double>();
    if (!l.ok() || !std::isfinite(*l) || *l < 0) return Bad("load");
    f.load[i] = *l;
  }
  return f;
}

HostStatsReader::HostStatsReader(std::string disk_path) : disk_path_(std::move(disk_path)) {}

HostFacts HostStatsReader::Read() {
  HostFacts f;
  char name[256];
  size_t size = sizeof name;
  if (uv_os_gethostname(name, &size) == 0) f.host.assign(name, size);
  uv_utsname_t u;
  if (uv_os_uname(&u) == 0) {
    f.platform = absl::AsciiStrToLower(absl::StrCat(u.sysname, "-", u.release, "-", u.machine));
  }
  f.cpus = static_cast<int>(uv_available_parallelism());
  if (f.cpus < 1) f.cpus = 1;
  // The first line of /proc/stat: "cpu user nice system idle iowait irq
  // softirq steal ...", in ticks since boot; idle is idle + iowait.
  {
    std::istringstream in(ReadSmallFile("/proc/stat"));
    std::string label;
    in >> label;
    uint64_t total = 0, idle = 0;
    for (int i = 0; i < 8; ++i) {
      uint64_t t = 0;
      if (!(in >> t)) break;
      total += t;
      if (i == 3 || i == 4) idle += t;
    }
    if (label != "cpu" || total == 0) {
      PICOS_LOG_LIMITED(warn, "host stats: cannot read /proc/stat");
    } else {
      const uint64_t d_total = total - last_total_;
      const uint64_t d_idle = idle >= last_idle_ ? idle - last_idle_ : 0;
      if (total > last_total_) {
        f.cpu_available_percent = std::min(100.0, 100.0 * static_cast<double>(d_idle) / static_cast<double>(d_total));
      } else {
        f.cpu_available_percent = 100.0 * static_cast<double>(idle) / static_cast<double>(total);
      }
      last_total_ = total;
      last_idle_ = idle;
    }
  }
  const std::string meminfo = ReadSmallFile("/proc/meminfo");
  f.memory_total = uv_get_total_memory();
  f.memory_available = MeminfoBytes(meminfo, "MemAvailable");
  if (f.memory_available == 0) f.memory_available = uv_get_free_memory();
  f.swap_total = MeminfoBytes(meminfo, "SwapTotal");
  f.swap_free = MeminfoBytes(meminfo, "SwapFree");
  struct statvfs sv;
  if (statvfs(disk_path_.c_str(), &sv) == 0) {
    f.disk_total = static_cast<uint64_t>(sv.f_blocks) * sv.f_frsize;
    f.disk_free = static_cast<uint64_t>(sv.f_bavail) * sv.f_frsize;
  } else {
    PICOS_LOG_LIMITED(warn, "host stats: statvfs {} failed", disk_path_);
  }
  double avg[3];
  uv_loadavg(avg);
  for (int i = 0; i < 3; ++i) f.load[i] = avg[i];
  return f;
}

}  // namespace picos::compute
