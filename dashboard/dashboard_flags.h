// Command-line flags of a program that serves a dashboard (the dispycos
// examples), read into DashboardOptions:
//
//   --dashboard_listen=tcp://127.0.0.1:8181   where (tcp://, unix://, tls://)
//   --dashboard_token_file=PATH               where a generated token goes
//   PICOS_DASHBOARD_TOKEN (environment)       a token to use instead (not a
//                                             flag: flags show in ps)
//
//   absl::StatusOr<picos::dashboard::DashboardOptions> o = picos::dashboard::DashboardOptionsFromFlags();
#ifndef PICOS_DASHBOARD_DASHBOARD_FLAGS_H_
#define PICOS_DASHBOARD_DASHBOARD_FLAGS_H_

#include <string>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "dashboard/dashboard.h"

ABSL_DECLARE_FLAG(std::string, dashboard_listen);
ABSL_DECLARE_FLAG(std::string, dashboard_token_file);

namespace picos::dashboard {

// The options the flags and the environment give; kInvalidArgument for a
// token that DashboardOptions would refuse.
absl::StatusOr<DashboardOptions> DashboardOptionsFromFlags();

}  // namespace picos::dashboard

#endif  // PICOS_DASHBOARD_DASHBOARD_FLAGS_H_
