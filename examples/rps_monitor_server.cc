// pycos's rps_monitor_server.py in C++: the remote service "rps_server"
// (core/remote/service.h), whose tasks each receive one message, sleep the
// delay they were started with, and return that message, or fail when the
// message asks them to ({"raise": why}). Clients watch them with
// Service::SetMonitor (rps_monitor_client). Ends after --tasks tasks have
// ended and its clients have left.
//
//   PICOS_REMOTE_SECRET=... rps_monitor_server --listen=tcp://0.0.0.0:9705
//
// The node flags (--listen, --secret_file or $PICOS_REMOTE_SECRET, ...) are
// core/remote/node_flags.h's.
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/cli/flags.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "core/remote/service.h"
#include "transports/default_transports.h"

ABSL_FLAG(int, tasks, 5, "tasks to run before ending");

namespace {

constexpr int64_t kMaxDelayMs = 5000;

absl::Status Validate(const picos::Value& req) {
  int64_t delay_ms = 0;
  PICOS_RETURN_IF_ERROR(picos::MessageReader(req).Get("delay_ms", &delay_ms).status());
  if (delay_ms < 0 || delay_ms > kMaxDelayMs) {
    return absl::InvalidArgumentError(absl::StrCat("delay_ms must be 0 to ", kMaxDelayMs));
  }
  return absl::OkStatus();
}

// Receives one message, sleeps, returns it; or fails as the message asks.
picos::Task<absl::StatusOr<picos::Value>> Serve(int64_t delay_ms) {
  PICOS_CO_ASSIGN_OR_RETURN(picos::Value msg, co_await picos::Receive(absl::Seconds(30)));
  std::printf("server: %s received %s\n", picos::Self().DebugString().c_str(), msg.DebugString().c_str());
  std::fflush(stdout);
  PICOS_CO_RETURN_IF_ERROR(co_await picos::Sleep(absl::Milliseconds(delay_ms)));
  if (const picos::Value* why = msg.is_map() ? msg.Find("raise") : nullptr; why != nullptr) {
    co_return absl::AbortedError(why->is_string() ? why->as_string() : "asked to fail");
  }
  co_return msg;
}

// One task of the service (`req` passed Validate): Serve, then tells Main.
picos::Task<absl::StatusOr<picos::Value>> RpsServer(picos::TaskRef main, picos::Value req) {
  absl::StatusOr<picos::Value> r = co_await Serve(req["delay_ms"].as_int());
  (void)main.Send(picos::Value("done"));
  co_return r;
}

picos::Task<absl::Status> Main(int tasks) {
  const picos::TransportRegistry& transports = picos::transports::DefaultTransports();
  picos::remote::NodeFlagDefaults defaults;
  defaults.name = "rps_monitor_server";
  defaults.listen.push_back("tcp://127.0.0.1:9705");
  PICOS_CO_ASSIGN_OR_RETURN(picos::remote::NodeConfig config,
                            picos::remote::NodeConfigFromFlags(transports, defaults));
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::remote::Node::Start(transports, std::move(config.options)));
  PICOS_CO_RETURN_IF_ERROR(co_await picos::remote::ConnectPeers(*node, config.peers));
  picos::remote::ServiceOptions options;
  options.admit = Validate;
  picos::TaskRef main = picos::Self();
  PICOS_CO_ASSIGN_OR_RETURN(
      picos::remote::RegisteredService service,
      picos::remote::RegisterService(
          "rps_server", [main](picos::Value req) { return RpsServer(main, std::move(req)); }, std::move(options)));
  std::printf("server: listening on %s\n", node->uris()[0].c_str());
  std::fflush(stdout);
  for (int done = 0; done < tasks;) {
    PICOS_CO_ASSIGN_OR_RETURN(picos::Value m, co_await picos::Receive());
    if (m == picos::Value("done")) ++done;
  }
  // The monitor statuses are on their way; the clients leave once they have them.
  for (int i = 0; i < 2000 && !node->peers().empty(); ++i) {
    PICOS_CO_RETURN_IF_ERROR(co_await picos::Sleep(absl::Milliseconds(5)));
  }
  service.Unregister();
  std::printf("server: %d tasks ended\n", tasks);
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("A remote service whose tasks clients monitor (pycos rps_monitor_server.py).");
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_tasks, 1, 100000)) return 2;
  return picos::RunMain("rps_monitor_server", Main, absl::GetFlag(FLAGS_tasks));
}
