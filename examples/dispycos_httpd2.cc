// pycos dispycos_httpd2.py in C++: dispycos_httpd1 (jobs typed on stdin,
// the dashboard live) with the user's own status task chained behind the
// dashboard's: the dashboard sees every event first and passes it on
// (DashboardOptions::forward_to), so both the page and this program follow
// the computation.
//
// Output, besides dispycos_httpd1's (examples/dispycos_httpd.h):
//   dispycos_httpd2: status: worker <uri> initialized
//   dispycos_httpd2: status: job <id> started on <worker uri>
//   dispycos_httpd2: status: job <id> finished: <code>
//   dispycos_httpd2: status: computation closed after <n> events
#include <cstdint>
#include <cstdio>
#include <string>

#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"
#include "examples/dispycos_httpd.h"

namespace {

using picos::Task;
using picos::Value;

std::string Field(const Value& e, const char* name) { return e.GetOr<std::string>(name, ""); }

// The user's status task (pycos's status_task chained behind httpd's): says
// what happens, until the computation closes. Bounded by count.
Task<absl::Status> UserStatus() {
  for (int n = 1; n <= 1'000'000; ++n) {
    absl::StatusOr<Value> event = co_await picos::Receive();
    if (!event.ok()) co_return event.status();
    const std::string type = Field(*event, "type");
    if (type == "worker_initialized") {
      std::printf("dispycos_httpd2: status: worker %s initialized\n", Field(*event, "worker").c_str());
    } else if (type == "job_started") {
      std::printf("dispycos_httpd2: status: job %llu started on %s\n",
                  static_cast<unsigned long long>(event->GetOr<uint64_t>("job", 0)),
                  Field(*event, "worker").c_str());
    } else if (type == "job_finished") {
      std::printf("dispycos_httpd2: status: job %llu finished: %lld\n",
                  static_cast<unsigned long long>(event->GetOr<uint64_t>("job", 0)),
                  static_cast<long long>(event->GetOr<int64_t>("code", -1)));
    } else if (type == "computation_closed") {
      std::printf("dispycos_httpd2: status: computation closed after %d events\n", n);
      std::fflush(stdout);
      co_return absl::OkStatus();
    }
    std::fflush(stdout);
  }
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  return picos::examples::DispycosHttpdMain("dispycos_httpd2", argc, argv,
                                            [] { return picos::ThisScheduler().Spawn(UserStatus); });
}
