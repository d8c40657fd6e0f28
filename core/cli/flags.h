// Command-line flags are input: check them before using them.
//
//   ABSL_FLAG(int, clients, 3, "client tasks, 1 to 10000");
//   int main(int argc, char** argv) {
//     absl::ParseCommandLine(argc, argv);
//     if (!picos::FlagInRange(FLAGS_clients, 1, 10000)) return 2;
//     if (!picos::FlagOneOf(FLAGS_mode, {"server", "client", "both"})) return 2;
//
// A flag out of range is reported on standard error as
// "--clients=0 is outside 1..10000" and the program exits with status 2,
// the usual status for bad usage.
#ifndef PICOS_CORE_CLI_FLAGS_H_
#define PICOS_CORE_CLI_FLAGS_H_

#include <cstdio>
#include <initializer_list>
#include <string>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"

namespace picos {

// True if `flag`'s value lies in [lo, hi]; otherwise says so on standard
// error and gives false.
template <typename T, typename U>
bool FlagInRange(const absl::Flag<T>& flag, U lo, U hi) {
  const T value = absl::GetFlag(flag);
  if (value >= static_cast<T>(lo) && value <= static_cast<T>(hi)) return true;
  const absl::CommandLineFlag& f = absl::GetFlagReflectionHandle(flag);
  std::fprintf(stderr, "--%s=%s is outside %s..%s\n", std::string(f.Name()).c_str(),
               f.CurrentValue().c_str(), std::to_string(lo).c_str(), std::to_string(hi).c_str());
  return false;
}

// True if `flag`'s value is one of `choices`; otherwise says so on standard
// error ("--mode=bogus is not one of server, client, both") and gives false.
inline bool FlagOneOf(const absl::Flag<std::string>& flag,
                      std::initializer_list<const char*> choices) {
  const std::string value = absl::GetFlag(flag);
  std::string listed;
  for (const char* c : choices) {
    if (value == c) return true;
    if (!listed.empty()) listed += ", ";
    listed += c;
  }
  const absl::CommandLineFlag& f = absl::GetFlagReflectionHandle(flag);
  std::fprintf(stderr, "--%s=%s is not one of %s\n", std::string(f.Name()).c_str(), value.c_str(),
               listed.c_str());
  return false;
}

}  // namespace picos

#endif  // PICOS_CORE_CLI_FLAGS_H_
