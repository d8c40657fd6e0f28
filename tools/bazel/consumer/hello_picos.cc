// A program of another project, built against picos from its own Bazel
// workspace by tools/bazel/consumer_test.sh (and compiled against an
// installed picos by tools/dist/install_test.sh). It uses the kernel, the
// wire codec (a generated Cap'n Proto header) and the transports, and runs a
// long loop of sub-task awaits, which only the flags picos carries keep from
// overflowing the stack.
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>

#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/wire/value_stream.h"
#include "transports/default_transports.h"
#include "transports/socket.h"

namespace {

picos::Task<int> One() { co_return 1; }

// Answers one request: {"n": x} gets {"twice": 2x}.
picos::Task<absl::Status> Serve(picos::transports::Socket conn) {
  PICOS_CO_ASSIGN_OR_RETURN(std::optional<picos::Value> request,
                            co_await picos::ReadValue(conn.reader(), absl::Seconds(30)));
  if (!request || !(*request)["n"].is_int()) co_return absl::InvalidArgumentError("bad request");
  // Built before the co_await: g++ 12 cannot keep a braced list alive
  // across one ("array used as initializer").
  picos::Value reply = picos::Value::Map({{"twice", 2 * (*request)["n"].as_int()}});
  co_return co_await picos::WriteValue(conn, std::move(reply), absl::Seconds(30));
}

picos::Task<absl::Status> Main() {
  int64_t sum = 0;
  for (int i = 0; i < 1'000'000; ++i) sum += co_await One();
  const picos::TransportRegistry& transports = picos::transports::DefaultTransports();
  PICOS_CO_ASSIGN_OR_RETURN(picos::transports::Server server,
                            co_await picos::transports::Server::Listen(transports, "tcp://127.0.0.1:0"));
  PICOS_CO_ASSIGN_OR_RETURN(picos::transports::Socket client,
                            co_await picos::transports::Socket::Connect(transports, server.address(), absl::Seconds(30)));
  PICOS_CO_ASSIGN_OR_RETURN(picos::transports::Socket conn, co_await server.Accept(absl::Seconds(30)));
  picos::TaskRef served = picos::ThisScheduler().Spawn(Serve, std::move(conn));
  picos::Value request = picos::Value::Map({{"n", sum}});
  PICOS_CO_RETURN_IF_ERROR(co_await picos::WriteValue(client, std::move(request), absl::Seconds(30)));
  PICOS_CO_ASSIGN_OR_RETURN(std::optional<picos::Value> reply,
                            co_await picos::ReadValue(client.reader(), absl::Seconds(30)));
  PICOS_CO_ASSIGN_OR_RETURN(picos::Value served_result, co_await served.Join(absl::Seconds(30)));
  (void)served_result;
  if (!reply) co_return absl::DataLossError("no reply");
  std::printf("hello from picos: %lld sub-task awaits, reply %s\n", static_cast<long long>(sum),
              reply->DebugString().c_str());
  co_return absl::OkStatus();
}

}  // namespace

int main() { return picos::RunMain("hello_picos", Main); }
