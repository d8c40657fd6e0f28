// pycos's pico_service_task.py in C++: a tiny service, a task registered as
// "pico_service" that answers {"req": "time", "reply": task, "delay": s}
// after `delay` seconds (the time a sensor would take) by sending the
// reply task {"result": the time here, "from": itself}. Ends after
// --requests answers (0: runs until killed).
//
//   PICOS_REMOTE_SECRET=... pico_service_task --listen=tcp://127.0.0.1:9705
//
// The node's flags (--listen, default tcp://127.0.0.1:9705; --secret_file,
// else $PICOS_REMOTE_SECRET; --peer, --advertise, --node_name) are
// core/remote/node_flags.h's. Run pico_client_task against the URI it
// prints.
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/cli/flags.h"
#include "core/kernel/naming.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "transports/default_transports.h"

ABSL_FLAG(int, requests, 0, "answers to give before ending, 0 for no end");

namespace {

// Longest delay a request may ask for: requests are input.
constexpr double kMaxDelaySeconds = 60;

// Serves requests one after the other, as pycos's pico_service does. A
// request that is malformed or asks for too long a delay is reported and
// skipped.
picos::Task<int64_t> PicoService(int requests) {
  int64_t answered = 0;
  while (requests == 0 || answered < requests) {
    absl::StatusOr<picos::Value> req = co_await picos::Receive();
    if (!req.ok()) break;
    std::string what;
    picos::TaskRef reply;
    picos::Value delay;
    absl::Status read =
        picos::MessageReader(*req).Get("req", &what).Get("reply", &reply).Get("delay", &delay).status();
    double seconds = -1;
    if (read.ok() && delay.is_int()) seconds = static_cast<double>(delay.as_int());
    if (read.ok() && delay.is_double()) seconds = delay.as_double();
    if (!read.ok() || what != "time" || !(seconds >= 0 && seconds <= kMaxDelaySeconds)) {
      std::printf("pico_service: ignoring request %s\n", req->DebugString().c_str());
      std::fflush(stdout);
      continue;
    }
    absl::Status slept = co_await picos::Sleep(absl::Seconds(seconds));
    if (!slept.ok()) break;
    const std::string now = absl::FormatTime("%a %b %e %H:%M:%S %Y", absl::Now(), absl::LocalTimeZone());
    absl::Status sent = reply.Send(picos::Value::Map({{"result", now}, {"from", picos::Self()}}));
    std::printf("pico_service: answered %s after %gs: %s\n", reply.DebugString().c_str(), seconds,
                sent.ok() ? "sent" : sent.ToString().c_str());
    std::fflush(stdout);
    ++answered;
  }
  co_return answered;
}

picos::Task<absl::Status> Main(int requests) {
  const picos::TransportRegistry& transports = picos::transports::DefaultTransports();
  picos::remote::NodeFlagDefaults defaults;
  defaults.name = "pico_server";
  defaults.listen.push_back("tcp://127.0.0.1:9705");
  absl::StatusOr<picos::remote::NodeConfig> config = picos::remote::NodeConfigFromFlags(transports, defaults);
  if (!config.ok()) co_return config.status();
  absl::StatusOr<std::unique_ptr<picos::remote::Node>> node =
      co_await picos::remote::Node::Start(transports, std::move(config->options));
  if (!node.ok()) co_return node.status();
  PICOS_CO_RETURN_IF_ERROR(co_await picos::remote::ConnectPeers(**node, config->peers));
  picos::TaskRef service = picos::ThisScheduler().SpawnNamed("pico_service", PicoService, requests);
  PICOS_CO_RETURN_IF_ERROR(picos::RegisterTask("pico_service", service));
  std::printf("pico_service: listening on %s\n", (*node)->uris()[0].c_str());
  std::fflush(stdout);
  absl::StatusOr<picos::Value> answered = co_await service.Join();
  if (!answered.ok()) co_return answered.status();
  // The last reply is accepted, not yet written: send it before the node goes.
  PICOS_CO_RETURN_IF_ERROR(co_await (*node)->Flush());
  for (int i = 0; i < 2000 && !(*node)->peers().empty(); ++i) {
    absl::Status slept = co_await picos::Sleep(absl::Milliseconds(5));
    if (!slept.ok()) break;
  }
  std::printf("pico_service: %lld answers\n", static_cast<long long>(answered->as_int()));
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("A registered task that answers peers with the time here.");
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_requests, 0, 1000000)) return 2;
  return picos::RunMain("pico_service_task", Main, absl::GetFlag(FLAGS_requests));
}
