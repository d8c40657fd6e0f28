#include "examples/dispycos_httpd.h"

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "compute/computation.h"
#include "core/io/thread_pool.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "dashboard/dashboard.h"
#include "dashboard/dashboard_flags.h"
#include "examples/dispycos_client_lib.h"
#include "transports/default_transports.h"

ABSL_FLAG(std::vector<std::string>, nodes, {}, "the picos-node URIs to run jobs on (required)");
ABSL_FLAG(std::string, library, "examples/libdispycos_client2_compute.so",
          "the computation library (picos_computation dispycos_client2_compute)");

namespace picos::examples {
namespace {

// Joins job `i` and says how it ended; counts into *done / *failed.
Task<absl::Status> Collect(std::string name, TaskRef job, int i, std::shared_ptr<std::pair<int, int>> counts) {
  absl::StatusOr<Value> result = co_await job.Join(absl::Minutes(10));
  if (result.ok()) {
    ++counts->first;
    std::printf("%s: job %d done: %s\n", name.c_str(), i,
                result->is_bytes() ? result->as_string().c_str() : result->DebugString().c_str());
  } else {
    ++counts->second;
    std::printf("%s: job %d failed: %s\n", name.c_str(), i, result.status().ToString().c_str());
  }
  std::fflush(stdout);
  co_return absl::OkStatus();
}

}  // namespace

Task<absl::Status> DispycosHttpd(std::string name, StartStatusTask start_status) {
  const TransportRegistry& t = transports::DefaultTransports();
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<remote::Node> node,
                            co_await examples::StartClientNode(name));
  PICOS_CO_ASSIGN_OR_RETURN(dashboard::DashboardOptions d, dashboard::DashboardOptionsFromFlags());
  TaskRef user_status;
  if (start_status) {
    user_status = start_status();
    d.forward_to = user_status;  // each event: the dashboard's first, then the user's
  }
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<dashboard::Dashboard> dash,
                            co_await dashboard::Dashboard::Start(t, std::move(d)));
  std::printf("%s: dashboard at %s (token in %s)\n", name.c_str(), dash->url().c_str(),
              dash->token_file().empty() ? "PICOS_DASHBOARD_TOKEN" : dash->token_file().c_str());

  compute::ComputationOptions o;
  o.library = absl::GetFlag(FLAGS_library);
  o.status_task = dash->status_task();
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<compute::Computation> computation, compute::Computation::Create(o));
  dash->Attach(computation.get());
  const std::vector<std::string> nodes = absl::GetFlag(FLAGS_nodes);
  absl::Status scheduled = co_await examples::ScheduleOrClose(computation.get(), nodes);
  if (!scheduled.ok()) {
    dash->Detach();  // before the computation goes
    co_return scheduled;
  }
  std::printf("%s: scheduled on %zu nodes, %zu workers\n", name.c_str(), nodes.size(),
              computation->workers_alive());
  std::fflush(stdout);

  // Lines from stdin, read on a pool thread so the dashboard and the jobs
  // go on meanwhile.
  ThreadPool pool({.threads = 1, .queue_limit = 1});
  auto read_line = []() -> absl::StatusOr<std::string> {
    std::string line;
    if (!std::getline(std::cin, line)) return absl::OutOfRangeError("end of input");
    return line;
  };
  auto counts = std::make_shared<std::pair<int, int>>(0, 0);
  std::vector<TaskRef> collectors;
  for (int lines = 0; lines < 100'000; ++lines) {
    absl::StatusOr<std::string> line = co_await pool.Run(read_line);
    if (!line.ok()) break;
    absl::string_view text = absl::StripAsciiWhitespace(*line);
    if (text == "quit") break;
    if (text.empty()) continue;
    int ms = 0;
    if (!absl::SimpleAtoi(text, &ms) || ms < 0 || ms > 60'000) {
      std::printf("%s: '%s' is not a number of milliseconds (0..60000)\n", name.c_str(),
                  std::string(text.substr(0, 64)).c_str());
      std::fflush(stdout);
      continue;
    }
    const int i = static_cast<int>(collectors.size());
    absl::StatusOr<TaskRef> job = co_await computation->RunAsync("compute", absl::StrCat(ms));
    if (!job.ok()) {
      ++counts->second;
      std::printf("%s: job %d not submitted: %s\n", name.c_str(), i, job.status().ToString().c_str());
      continue;
    }
    std::printf("%s: job %d submitted (%d ms)\n", name.c_str(), i, ms);
    std::fflush(stdout);
    collectors.push_back(ThisScheduler().Spawn(Collect, name, *job, i, counts));
  }
  pool.Shutdown();
  for (TaskRef& c : collectors) (void)co_await c.Join();
  std::printf("%s: %d jobs done, %d failed\n", name.c_str(), counts->first, counts->second);
  std::fflush(stdout);
  compute::CloseOptions close;
  close.await_io = true;
  dash->Detach();
  absl::Status closed = co_await computation->Close(close);
  // The user's status task ends with computation_closed (forwarded).
  if (user_status) (void)co_await user_status.Join(absl::Minutes(1));
  PICOS_CO_RETURN_IF_ERROR(closed);
  if (counts->second > 0) co_return absl::AbortedError(absl::StrCat(counts->second, " jobs failed"));
  co_return absl::OkStatus();
}

int DispycosHttpdMain(const char* name, int argc, char** argv, StartStatusTask start_status) {
  remote::ParseCommandLine(argc, argv);
  if (!examples::NodesGiven(name, absl::GetFlag(FLAGS_nodes))) return 2;
  return RunMain(name, DispycosHttpd, std::string(name), std::move(start_status));
}

}  // namespace picos::examples
