#include "compute/daemon_config.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/flags/reflection.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/kernel/log.h"
#include "core/kernel/value.h"

namespace picos::compute {

std::vector<std::string> PrepareDaemonCommandLine(int argc, char** argv, const char* program, const char* repeated,
                                                  absl::Span<const char* const> keys,
                                                  absl::flat_hash_map<std::string, std::string>* origins) {
  const std::string long_eq = absl::StrCat("--", repeated, "=");
  const std::string short_eq = absl::StrCat("-", repeated, "=");
  const std::string long_bare = absl::StrCat("--", repeated);
  const std::string short_bare = absl::StrCat("-", repeated);
  std::vector<std::string> args;
  std::vector<std::string> values;
  std::string config;
  absl::flat_hash_set<std::string> given;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    absl::string_view v = a;
    if (i > 0 && (absl::ConsumePrefix(&v, "--") || absl::ConsumePrefix(&v, "-"))) {
      given.insert(std::string(v.substr(0, v.find('='))));
      if (absl::ConsumePrefix(&v, "config")) {
        if (absl::ConsumePrefix(&v, "=")) {
          config = std::string(v);
        } else if (v.empty() && i + 1 < argc) {
          config = argv[i + 1];
        }
      }
      absl::string_view r = a;
      if (absl::ConsumePrefix(&r, long_eq) || absl::ConsumePrefix(&r, short_eq)) {
        values.emplace_back(r);
        continue;
      }
      if ((a == long_bare || a == short_bare) && i + 1 < argc) {
        values.emplace_back(argv[++i]);
        continue;
      }
    }
    args.push_back(std::move(a));
  }
  if (!values.empty()) args.push_back(absl::StrCat(long_eq, absl::StrJoin(values, ",")));
  if (!config.empty()) {
    absl::Status s = ApplyConfigFile(config, keys, origins);
    if (!s.ok()) {
      std::fprintf(stderr, "%s: %s\n", program, std::string(s.message()).c_str());
      std::exit(2);
    }
    // A flag given on the command line wins: its errors are its own.
    for (const std::string& g : given) origins->erase(g);
  }
  return args;
}

absl::Status ApplyConfigFile(const std::string& path, absl::Span<const char* const> keys,
                             absl::flat_hash_map<std::string, std::string>* origins) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--config=", path, ": cannot read it"));
  std::string text(kMaxConfigFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxConfigFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat("--config=", path, ": longer than ", kMaxConfigFileBytes, " bytes"));
  }
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    const std::string where = absl::StrCat(path, ":", number);
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos) return absl::InvalidArgumentError(absl::StrCat(where, ": not a name=value line"));
    const std::string key(absl::StripAsciiWhitespace(line.substr(0, eq)));
    const std::string value(absl::StripAsciiWhitespace(line.substr(eq + 1)));
    bool known = false;
    for (const char* k : keys) known = known || key == k;
    absl::CommandLineFlag* flag = known ? absl::FindCommandLineFlag(key) : nullptr;
    if (flag == nullptr) return absl::InvalidArgumentError(absl::StrCat(where, ": unknown key '", key.substr(0, 64), "'"));
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": bad value for ", key, ": ", error));
    }
    (*origins)[key] = where;
  }
  return absl::OkStatus();
}

absl::Status SaveConfigFile(const std::string& path, const std::string& program,
                            absl::Span<const char* const> keys) {
  std::string text = absl::StrCat("# ", program, " flags (read with --config=FILE; the command line wins)\n");
  for (const char* key : keys) {
    absl::CommandLineFlag* f = absl::FindCommandLineFlag(key);
    if (f == nullptr) continue;
    absl::StrAppend(&text, key, "=", f->CurrentValue(), "\n");
  }
  const std::string tmp = absl::StrCat(path, ".tmp");
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out.good()) return absl::InvalidArgumentError(absl::StrCat("--save_config=", path, ": cannot write ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--save_config=", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status WithConfigOrigin(const absl::Status& status,
                              const absl::flat_hash_map<std::string, std::string>& origins) {
  absl::string_view m = status.message();
  if (!absl::ConsumePrefix(&m, "--")) return status;
  const std::string flag(m.substr(0, m.find_first_of("=:")));
  auto it = origins.find(flag);
  if (it == origins.end()) return status;
  return absl::Status(status.code(), absl::StrCat(it->second, ": ", status.message()));
}

absl::StatusOr<absl::Duration> ParseSecondsFlag(const std::string& flag, const std::string& v, double lo,
                                                double hi, bool zero_ok) {
  double s = 0;
  absl::Duration d;
  bool parsed = absl::SimpleAtod(v, &s);
  if (!parsed && absl::ParseDuration(v, &d) && d != absl::InfiniteDuration()) {
    s = absl::ToDoubleSeconds(d);
    parsed = true;
  }
  if (!parsed || !(s == 0 ? zero_ok : (s >= lo && s <= hi))) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, "=", v, ": seconds, ", zero_ok ? "0 (never) or " : "", lo, " .. ", hi));
  }
  return absl::Seconds(s);
}

absl::Status ApplyLogLevelFlag(const std::string& level) {
  if (level.empty()) return absl::OkStatus();
  if (level != "trace" && level != "debug" && level != "info" && level != "warn" && level != "error" &&
      level != "off") {
    return absl::InvalidArgumentError(absl::StrCat("--log_level=", level, ": one of trace, debug, info, warn, error, off"));
  }
  Log().set_level(spdlog::level::from_str(level));
  return absl::OkStatus();
}

sigset_t DaemonSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGQUIT}) sigaddset(&set, s);
  return set;
}

const char* DaemonSignalName(int sig) {
  switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGHUP: return "SIGHUP";
    case SIGQUIT: return "SIGQUIT";
  }
  return "signal";
}

void ForwardDaemonSignals(TaskRef main, const char* key) {
  const sigset_t set = DaemonSignals();
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) return;
    (void)main.Send(Value::Map({{key, sig}}));
  }
}

}  // namespace picos::compute
