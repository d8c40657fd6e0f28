// What compute's daemons (picos-node, picos-scheduler) share in reading
// their flags: `name=value` config files (--config, --save_config), seconds
// flags and --log_level; and how they take signals. Each daemon keeps its
// own list of keys.
//
//   constexpr const char* kKeys[] = {"listen", "node", "log_level"};
//   absl::Status s = ApplyConfigFile("sched.conf", kKeys, &origins);
//   // "sched.conf:3: unknown key 'nodes'" on a bad line
//
// Everything here reads input (files, flags): errors are one line, naming
// the file and line or the flag and its value; nothing aborts. Main thread,
// before the daemon starts.
#ifndef PICOS_COMPUTE_DAEMON_CONFIG_H_
#define PICOS_COMPUTE_DAEMON_CONFIG_H_

#include <csignal>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "core/kernel/handles.h"

namespace picos::compute {

// Largest config file read.
inline constexpr size_t kMaxConfigFileBytes = 64 << 10;

// Sets the flags named by FILE's `name=value` lines (blank lines and `#`
// comments skipped) through absl's flag registry; only names in `keys`.
// Records in `origins` "FILE:LINE" for each flag set. kInvalidArgument:
// "--config=FILE: cannot read it", "FILE:LINE: unknown key 'x'", "FILE:LINE:
// bad value for x: ...", "FILE:LINE: not a name=value line".
absl::Status ApplyConfigFile(const std::string& path, absl::Span<const char* const> keys,
                             absl::flat_hash_map<std::string, std::string>* origins);

// A daemon's command line made ready for absl's parser: the flag
// `repeated` given several times (--name=V or --name V) becomes one
// --name=V1,V2 (absl keeps only a flag's last occurrence), and the --config
// file, if one is named, is applied first (ApplyConfigFile with `keys` and
// `origins`), forgetting the origins of flags the command line gives too
// (those win, and their errors are their own). A config file that does not
// apply is "<program>: <why>" on stderr and exit status 2.
std::vector<std::string> PrepareDaemonCommandLine(int argc, char** argv, const char* program, const char* repeated,
                                                  absl::Span<const char* const> keys,
                                                  absl::flat_hash_map<std::string, std::string>* origins);

// Writes every flag of `keys` with its current value as FILE's lines
// (atomically: FILE.tmp, then renamed), under a comment naming `program`.
absl::Status SaveConfigFile(const std::string& path, const std::string& program,
                            absl::Span<const char* const> keys);

// `status` ("--flag=...: why") prefixed with the config line that set the
// flag, if `origins` has one.
absl::Status WithConfigOrigin(const absl::Status& status,
                              const absl::flat_hash_map<std::string, std::string>& origins);

// Seconds (a decimal number, or a duration such as 200ms or 1m) in [lo, hi],
// or exactly 0 when zero_ok; else "--flag=v: seconds, lo .. hi".
absl::StatusOr<absl::Duration> ParseSecondsFlag(const std::string& flag, const std::string& v, double lo,
                                                double hi, bool zero_ok);

// Sets the log level from --log_level's value ("" leaves it): "--log_level=v:
// one of trace, debug, info, warn, error, off" if unknown.
absl::Status ApplyLogLevelFlag(const std::string& level);

// The signals a daemon handles: SIGTERM, SIGINT, SIGHUP, SIGQUIT. Block
// them (pthread_sigmask) before any thread starts, so that every thread
// inherits the mask and only ForwardDaemonSignals's sigwait takes them.
sigset_t DaemonSignals();

// "SIGTERM" and so on for DaemonSignals; "signal" for another.
const char* DaemonSignalName(int sig);

// Takes DaemonSignals (blocked in every thread) and sends each to `main` as
// {key: <signal number>}. Run it on a thread of its own; it lives as long
// as the process.
void ForwardDaemonSignals(TaskRef main, const char* key);

}  // namespace picos::compute

#endif  // PICOS_COMPUTE_DAEMON_CONFIG_H_
