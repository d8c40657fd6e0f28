// pycos udp.py in picos: client tasks send datagrams to a server task that
// receives them with ReceiveFrom, all on one scheduler over loopback.
//
//   bazel run //examples:udp -- --clients=50
#include <cstdio>
#include <memory>
#include <set>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "core/cli/flags.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/net/udp.h"

ABSL_FLAG(int64_t, clients, 50, "number of client tasks, 1 to 1000");

namespace {

picos::Task<absl::Status> Server(picos::UdpSocket* sock, int64_t expected) {
  std::set<std::string> senders;
  for (int64_t i = 0; i < expected; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(picos::Datagram d, co_await sock->ReceiveFrom(absl::Seconds(10)));
    senders.insert(d.from.ToString());
    if (i < 3) std::printf("server received '%s' from %s\n", d.data.c_str(), d.from.ToString().c_str());
  }
  std::printf("server received %lld datagrams from %zu clients\n", static_cast<long long>(expected),
              senders.size());
  co_return absl::OkStatus();
}

picos::Task<absl::Status> Client(int64_t i, picos::IpEndpoint server) {
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::UdpSocket> sock,
                            picos::UdpSocket::Bind(*picos::IpEndpoint::Parse("127.0.0.1", 0)));
  co_return co_await sock->SendTo(absl::StrCat("greetings from client ", i), server);
}

picos::Task<absl::Status> Main(int64_t clients) {
  PICOS_CO_ASSIGN_OR_RETURN(
      std::unique_ptr<picos::UdpSocket> sock,
      picos::UdpSocket::Bind(*picos::IpEndpoint::Parse("127.0.0.1", 0), {.queue_limit = 4096}));
  picos::Scheduler& s = picos::ThisScheduler();
  picos::TaskRef server = s.Spawn(Server, sock.get(), clients);
  for (int64_t i = 0; i < clients; ++i) s.Spawn(Client, i, sock->local_address());
  PICOS_CO_ASSIGN_OR_RETURN(picos::Value v, co_await server.Join(absl::Seconds(30)));
  (void)v;
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Client tasks send UDP datagrams to a server task (pycos udp.py).");
  absl::ParseCommandLine(argc, argv);
  const int64_t clients = absl::GetFlag(FLAGS_clients);
  if (!picos::FlagInRange(FLAGS_clients, 1, 1000)) return 2;
  return picos::RunMain("udp", Main, clients);
}
