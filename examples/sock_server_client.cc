// pycos sock_server.py and sock_client.py in picos: a TCP server with one
// task per connection reading until the end of the stream, and client
// tasks that each connect and send a message of random length.
//
//   bazel run //examples:sock_server_client                       # both, on loopback
//   bazel run //examples:sock_server_client -- --mode=server --listen=tcp://127.0.0.1:8010
//   bazel run //examples:sock_server_client -- --mode=client --server=tcp://127.0.0.1:8010
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "core/cli/flags.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "transports/default_transports.h"
#include "transports/socket.h"

ABSL_FLAG(std::string, mode, "both", "server, client, or both (server and clients in one process)");
ABSL_FLAG(std::string, listen, "tcp://127.0.0.1:0", "server: where to listen");
ABSL_FLAG(std::string, server, "tcp://127.0.0.1:8010", "client: where to connect");
ABSL_FLAG(int, clients, 5, "client tasks (client and both modes), 1 to 10000");
ABSL_FLAG(int, connections, 0, "server mode: exit after this many connections (0: never)");

namespace {

using picos::transports::Socket;
using picos::Task;

// Reads a connection 128 bytes at a time until the client is done.
Task<absl::Status> Serve(std::shared_ptr<Socket> conn, std::shared_ptr<size_t> total) {
  size_t got = 0;
  for (int i = 0; i < 1'000'000; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(std::string data, co_await conn->Read(128, absl::Seconds(30)));
    if (data.empty()) break;
    got += data.size();
  }
  *total += got;
  std::printf("server: received %zu bytes from %s\n", got, conn->peer_address().c_str());
  co_return absl::OkStatus();
}

Task<absl::Status> Server(std::shared_ptr<picos::transports::Server> server, int connections) {
  auto total = std::make_shared<size_t>(0);
  std::vector<picos::TaskRef> handlers;
  for (int i = 0; connections == 0 || i < connections; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(Socket conn, co_await server->Accept());
    handlers.push_back(picos::ThisScheduler().Spawn(
        Serve, std::make_shared<Socket>(std::move(conn)), total));
  }
  for (picos::TaskRef& h : handlers) (void)co_await h.Join(absl::Seconds(30));
  std::printf("server: %d connections, %zu bytes in all\n", connections, *total);
  co_return absl::OkStatus();
}

Task<absl::Status> Client(std::string server, int id) {
  std::mt19937 rng(id);
  size_t n = 1 + rng() % 1000;
  PICOS_CO_ASSIGN_OR_RETURN(Socket sock, co_await Socket::Connect(picos::transports::DefaultTransports(), server, absl::Seconds(10)));
  std::string msg = "client " + std::to_string(id) + ": ";
  msg.resize(n, '.');
  PICOS_CO_RETURN_IF_ERROR(co_await sock.Write(msg, absl::Seconds(10)));
  PICOS_CO_RETURN_IF_ERROR(co_await sock.Shutdown(absl::Seconds(10)));
  std::printf("client %d: sent %zu bytes\n", id, n);
  co_return absl::OkStatus();
}

Task<absl::Status> Main() {
  std::string mode = absl::GetFlag(FLAGS_mode);
  int clients = absl::GetFlag(FLAGS_clients);
  std::string address = absl::GetFlag(FLAGS_server);
  picos::TaskRef server;
  if (mode == "server" || mode == "both") {
    PICOS_CO_ASSIGN_OR_RETURN(picos::transports::Server s, co_await picos::transports::Server::Listen(picos::transports::DefaultTransports(), absl::GetFlag(FLAGS_listen)));
    address = s.address();
    std::printf("server: listening on %s\n", address.c_str());
    std::fflush(stdout);
    int connections = mode == "both" ? clients : absl::GetFlag(FLAGS_connections);
    server = picos::ThisScheduler().Spawn(
        Server, std::make_shared<picos::transports::Server>(std::move(s)), connections);
  }
  if (mode == "client" || mode == "both") {
    std::vector<picos::TaskRef> tasks;
    for (int i = 0; i < clients; ++i) tasks.push_back(picos::ThisScheduler().Spawn(Client, address, i));
    for (picos::TaskRef& t : tasks) {
      absl::StatusOr<picos::Value> r = co_await t.Join(absl::Seconds(30));
      if (!r.ok()) std::printf("client failed: %s\n", r.status().ToString().c_str());
    }
  }
  if (server) {
    absl::StatusOr<picos::Value> r = co_await server.Join();
    if (!r.ok()) co_return r.status();
  }
  std::printf("done\n");
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_clients, 1, 10000) ||
      !picos::FlagInRange(FLAGS_connections, 0, 1'000'000)) {
    return 2;
  }
  return picos::RunMain("sock_server_client", Main);
}
