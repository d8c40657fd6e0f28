#include "dashboard/dashboard_flags.h"

#include <cstdlib>

#include "absl/flags/flag.h"
#include "metrics/http_server.h"

ABSL_FLAG(std::string, dashboard_listen, "tcp://127.0.0.1:8181",
          "where the dashboard listens (tcp://, unix://, tls://); loopback unless told otherwise");
ABSL_FLAG(std::string, dashboard_token_file, "",
          "where a generated dashboard token is written, mode 0600 (default: "
          "$TMPDIR/picos-dashboard-<pid>.token); PICOS_DASHBOARD_TOKEN gives one instead");

namespace picos::dashboard {

absl::StatusOr<DashboardOptions> DashboardOptionsFromFlags() {
  DashboardOptions o;
  o.listen = absl::GetFlag(FLAGS_dashboard_listen);
  o.token_file = absl::GetFlag(FLAGS_dashboard_token_file);
  if (const char* t = std::getenv("PICOS_DASHBOARD_TOKEN"); t != nullptr && *t != '\0') {
    o.token = t;
    absl::Status valid = metrics::ValidateBearerToken(o.token);
    if (!valid.ok()) return valid;
    if (o.token.size() < 16) {
      return absl::InvalidArgumentError("PICOS_DASHBOARD_TOKEN must have at least 16 bytes");
    }
  }
  return o;
}

}  // namespace picos::dashboard
