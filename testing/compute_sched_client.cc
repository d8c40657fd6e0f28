// A client of a shared picos-scheduler in a process of its own, for tests
// that kill it (testing/compute_sched_test.cc): joins the scheduler with the
// library, prints "scheduled <computation id> <workers>" and then a line
// "workers <n>" each time its count of workers in use changes, until killed.
//
//   PICOS_REMOTE_SECRET=... compute_sched_client SCHEDULER_URI LIBRARY [TIMEOUT_S]
//
// Exits 1 with the error on stderr when Schedule fails (TIMEOUT_S bounds
// each of its steps; default 60).
#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/time/time.h"
#include "compute/computation.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "transports/default_transports.h"

namespace {

picos::Task<absl::Status> Main(std::string scheduler, std::string library, int timeout_s) {
  picos::remote::NodeOptions o;
  PICOS_CO_ASSIGN_OR_RETURN(o.secret, picos::remote::LoadSecret(""));
  o.name = "compute-sched-client";
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::remote::Node::Start(picos::transports::DefaultTransports(), std::move(o)));
  picos::compute::ComputationOptions co;
  co.library = library;
  co.scheduler = scheduler;
  co.timeout = absl::Seconds(timeout_s);
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::compute::Computation> c, picos::compute::Computation::Create(co));
  std::vector<std::string> all;
  PICOS_CO_RETURN_IF_ERROR(co_await c->Schedule(all));
  size_t shown = c->workers_alive();
  std::printf("scheduled %s %zu\n", c->id().c_str(), shown);
  std::fflush(stdout);
  for (;;) {  // until killed
    absl::Status slept = co_await picos::Sleep(absl::Milliseconds(20));
    if (!slept.ok()) break;
    if (c->workers_alive() != shown) {
      shown = c->workers_alive();
      std::printf("workers %zu\n", shown);
      std::fflush(stdout);
    }
  }
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  int timeout_s = 60;
  if ((argc != 3 && argc != 4) || (argc == 4 && (!absl::SimpleAtoi(argv[3], &timeout_s) || timeout_s < 1 ||
                                                  timeout_s > 3600))) {
    std::fprintf(stderr, "usage: compute_sched_client SCHEDULER_URI LIBRARY [TIMEOUT_S 1..3600]\n");
    return 2;
  }
  return picos::RunMain("compute_sched_client", Main, std::string(argv[1]), std::string(argv[2]), timeout_s);
}
