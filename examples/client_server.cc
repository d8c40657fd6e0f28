// pycos client_server.py in picos: a server task receives requests from
// client tasks, each carrying the client's handle, and answers each one.
//
//   bazel run //examples:client_server -- --clients=4 --requests=5
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "core/cli/flags.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"

ABSL_FLAG(int, clients, 3, "number of client tasks, 1 to 10000");
ABSL_FLAG(int, requests, 4, "requests per client, 1 to 10000");

namespace {

using picos::Task;
using picos::TaskRef;
using picos::Value;

// Squares of larger numbers do not fit an int64_t.
constexpr int64_t kMaxN = 3'037'000'499;

// [readme:server]
// Answers {"client": handle, "n": number} with n squared until it receives
// "quit". Messages are input: a malformed one is logged and skipped, and
// MessageReader says what was wrong with it instead of aborting.
Task<int64_t> Server() {
  int64_t served = 0;
  for (;;) {
    absl::StatusOr<Value> msg = co_await picos::Receive();
    if (!msg.ok()) co_return served;
    if (*msg == Value("quit")) break;
    TaskRef client;
    int64_t n = 0;
    absl::Status read = picos::MessageReader(*msg).Get("client", &client).Get("n", &n).status();
    if (read.ok() && (n > kMaxN || n < -kMaxN)) read = absl::OutOfRangeError("n is too large");
    if (!read.ok()) {
      std::printf("server: ignoring malformed request %s: %s\n", msg->DebugString().c_str(),
                  read.ToString().c_str());
      continue;
    }
    std::printf("server: request %lld from %s\n", static_cast<long long>(n),
                client.DebugString().c_str());
    (void)client.Send(Value::Map({{"n", n}, {"square", n * n}}));
    ++served;
  }
  std::printf("server: served %lld requests\n", static_cast<long long>(served));
  co_return served;
}
// [/readme:server]

Task<absl::Status> Client(TaskRef server, int id, int requests) {
  TaskRef self = picos::Self();
  for (int i = 1; i <= requests; ++i) {
    int64_t n = id * 100 + i;
    PICOS_CO_RETURN_IF_ERROR(server.Send(Value::Map({{"client", self}, {"n", n}})));
    PICOS_CO_ASSIGN_OR_RETURN(Value reply, co_await picos::Receive(absl::Seconds(5)));
    PICOS_CO_ASSIGN_OR_RETURN(int64_t square, reply.Get<int64_t>("square"));
    if (square != n * n) co_return absl::DataLossError("wrong answer");
    std::printf("client %d: %lld squared is %lld\n", id, static_cast<long long>(n),
                static_cast<long long>(square));
  }
  co_return absl::OkStatus();
}

Task<absl::Status> Main(int clients, int requests) {
  picos::Scheduler& s = picos::ThisScheduler();
  TaskRef server = s.SpawnNamed("server", Server);
  (void)server.Send("not a request");
  std::vector<TaskRef> running;
  for (int c = 1; c <= clients; ++c) {
    running.push_back(s.SpawnNamed("client" + std::to_string(c), Client, server, c, requests));
  }
  for (const TaskRef& c : running) PICOS_CO_RETURN_IF_ERROR((co_await c.Join()).status());
  PICOS_CO_RETURN_IF_ERROR(server.Send("quit"));
  PICOS_CO_ASSIGN_OR_RETURN(Value result, co_await server.Join());
  PICOS_CO_ASSIGN_OR_RETURN(int64_t served, result.As<int64_t>());
  std::printf("done: %lld requests served to %d clients\n", static_cast<long long>(served),
              clients);
  co_return absl::OkStatus();
}

}  // namespace

// [readme:main]
int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("A server task and client tasks exchanging messages.");
  absl::ParseCommandLine(argc, argv);
  int clients = absl::GetFlag(FLAGS_clients);
  int requests = absl::GetFlag(FLAGS_requests);
  if (!picos::FlagInRange(FLAGS_clients, 1, 10000) ||
      !picos::FlagInRange(FLAGS_requests, 1, 10000)) {
    return 2;
  }
  return picos::RunMain("client_server", Main, clients, requests);
}
// [/readme:main]
