// pycos's rps_pico_service.py in C++: a remote service (core/remote/service.h)
// that peers in other processes run tasks with. Each request is validated
// before a task is started (a bad one is refused with a status the client
// sees); each task sleeps the delay it was asked for and returns the square
// of its number. Ends after --tasks tasks have run and its clients have left.
//
//   PICOS_REMOTE_SECRET=... rps_pico_service --listen=tcp://0.0.0.0:9705
//
// The node flags (--listen, --secret_file or $PICOS_REMOTE_SECRET, ...) are
// core/remote/node_flags.h's. Run rps_pico_client against the URI it prints.
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

// The request a client sends: {"n": int, "delay_ms": 0..kMaxDelayMs}. It
// came from the network: checked before anything runs.
absl::Status Validate(const picos::Value& req) {
  int64_t n = 0, delay_ms = 0;
  PICOS_RETURN_IF_ERROR(picos::MessageReader(req).Get("n", &n).Get("delay_ms", &delay_ms).status());
  if (n < -1'000'000 || n > 1'000'000) return absl::InvalidArgumentError("n must be within +-1000000");
  if (delay_ms < 0 || delay_ms > kMaxDelayMs) {
    return absl::InvalidArgumentError(absl::StrCat("delay_ms must be 0 to ", kMaxDelayMs));
  }
  return absl::OkStatus();
}

// One task of the service: `req` passed Validate.
picos::Task<absl::StatusOr<picos::Value>> PicoService(picos::TaskRef main, std::string host, picos::Value req) {
  const int64_t n = req["n"].as_int();
  PICOS_CO_RETURN_IF_ERROR(co_await picos::Sleep(absl::Milliseconds(req["delay_ms"].as_int())));
  std::printf("server: task for n=%lld done\n", static_cast<long long>(n));
  std::fflush(stdout);
  (void)main.Send(picos::Value("done"));
  co_return picos::Value::Map({{"n", n}, {"square", n * n}, {"server", host}});
}

picos::Task<absl::Status> Main(int tasks) {
  const picos::TransportRegistry& transports = picos::transports::DefaultTransports();
  picos::remote::NodeFlagDefaults defaults;
  defaults.name = "rps_pico_service";
  defaults.listen.push_back("tcp://127.0.0.1:9705");
  PICOS_CO_ASSIGN_OR_RETURN(picos::remote::NodeConfig config,
                            picos::remote::NodeConfigFromFlags(transports, defaults));
  const std::string host = config.options.name;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::remote::Node::Start(transports, std::move(config.options)));
  PICOS_CO_RETURN_IF_ERROR(co_await picos::remote::ConnectPeers(*node, config.peers));
  picos::remote::ServiceOptions options;
  options.admit = [](const picos::Value& req) {
    absl::Status ok = Validate(req);
    if (!ok.ok()) std::printf("server: refused %s: %s\n", req.DebugString().c_str(), ok.ToString().c_str());
    return ok;
  };
  picos::TaskRef main = picos::Self();
  PICOS_CO_ASSIGN_OR_RETURN(
      picos::remote::RegisteredService service,
      picos::remote::RegisterService(
          "pico_service", [main, host](picos::Value req) { return PicoService(main, host, std::move(req)); },
          std::move(options)));
  std::printf("server: listening on %s\n", node->uris()[0].c_str());
  std::fflush(stdout);
  for (int done = 0; done < tasks;) {
    PICOS_CO_ASSIGN_OR_RETURN(picos::Value m, co_await picos::Receive());
    if (m == picos::Value("done")) ++done;
  }
  // The clients join their tasks' results, then leave.
  for (int i = 0; i < 2000 && !node->peers().empty(); ++i) {
    PICOS_CO_RETURN_IF_ERROR(co_await picos::Sleep(absl::Milliseconds(5)));
  }
  service.Unregister();
  std::printf("server: ran %d tasks\n", tasks);
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("A remote service that peers run tasks with (pycos rps_pico_service.py).");
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_tasks, 1, 100000)) return 2;
  return picos::RunMain("rps_pico_service", Main, absl::GetFlag(FLAGS_tasks));
}
