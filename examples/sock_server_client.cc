// pycos sock_server.py and sock_client.py in picos: a TCP server with one
// task per connection reading until the end of the stream, and client
// tasks that each connect and send a message of random length.
//
//   bazel run //examples:sock_server_client                       # both, on loopback
//   bazel run //examples:sock_server_client -- --mode=server --listen=tcp://127.0.0.1:8010
//   bazel run //examples:sock_server_client -- --mode=client --server=tcp://127.0.0.1:8010
//
// A connection is read to its end however long it is, up to --max_bytes
// (then it is closed, and the server says so). The server keeps no state
// per finished connection, so it can run forever; --rounds repeats the
// clients and, from 5 rounds on, prints how much heap each connection left
// behind. The exit status is not 0 when a flag is wrong (2) or when a
// client or a connection failed (1).
#include <malloc.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "core/cli/flags.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/sync.h"
#include "core/kernel/task.h"
#include "transports/default_transports.h"
#include "transports/socket.h"

#if defined(__SANITIZE_ADDRESS__)
// From compiler-rt's <sanitizer/allocator_interface.h>, which g++ 12 does not
// ship (its libasan exports the function all the same).
extern "C" size_t __sanitizer_get_current_allocated_bytes();
#endif

ABSL_FLAG(std::string, mode, "both", "server, client, or both (server and clients in one process)");
ABSL_FLAG(std::string, listen, "tcp://127.0.0.1:0", "server: where to listen");
ABSL_FLAG(std::string, server, "tcp://127.0.0.1:8010", "client: where to connect");
ABSL_FLAG(int, clients, 5, "client tasks at once (client and both modes), 1 to 10000");
ABSL_FLAG(int, rounds, 1, "client and both modes: run the clients this many times, 1 to 100000");
ABSL_FLAG(int64_t, bytes, 0, "bytes each client sends, 0 for a random 1 to 1000; up to 4 GiB");
ABSL_FLAG(int, connections, 0, "server mode: exit after this many connections (0: never)");
ABSL_FLAG(int64_t, max_bytes, int64_t{1} << 30, "server: close a connection that sends more");

namespace {

using picos::transports::Socket;
using picos::Task;

constexpr size_t kChunk = 64 * 1024;

// Bytes of heap in use now: what a leak makes grow, byte by byte (page-
// grained RSS would hide small leaks). Under AddressSanitizer its own
// allocator counts them (freed blocks sit in its quarantine, outside this
// figure).
int64_t HeapBytes() {
#if defined(__SANITIZE_ADDRESS__)
  return static_cast<int64_t>(__sanitizer_get_current_allocated_bytes());
#else
  struct mallinfo2 m = mallinfo2();
  return static_cast<int64_t>(m.uordblks + m.hblkhd);
#endif
}

// What the server knows across connections: counts, not one entry per
// connection, so that a server that runs forever stays the same size.
struct ServerState {
  int64_t connections = 0;
  int64_t failed = 0;
  int64_t bytes = 0;
  int active = 0;
  picos::Event idle;  // set while no connection is being served
};

// Reads a connection to its end, at most `max_bytes`.
Task<> Serve(std::shared_ptr<Socket> conn, std::shared_ptr<ServerState> state, int64_t max_bytes) {
  int64_t got = 0;
  absl::Status st;
  // Each read gives at least one byte or the end: bounded by max_bytes.
  for (int64_t i = 0; i <= max_bytes; ++i) {
    absl::StatusOr<std::string> data = co_await conn->Read(kChunk, absl::Seconds(30));
    if (!data.ok()) {
      st = data.status();
      break;
    }
    if (data->empty()) break;
    got += static_cast<int64_t>(data->size());
    if (got > max_bytes) {
      st = absl::ResourceExhaustedError(absl::StrCat("more than --max_bytes=", max_bytes, " bytes"));
      break;
    }
  }
  state->bytes += got;
  if (st.ok()) {
    std::printf("server: received %lld bytes from %s\n", static_cast<long long>(got),
                conn->peer_address().c_str());
  } else {
    ++state->failed;
    std::printf("server: closing %s after %lld bytes: %s\n", conn->peer_address().c_str(),
                static_cast<long long>(got), st.ToString().c_str());
  }
  if (--state->active == 0) state->idle.Set();
}

Task<absl::Status> RunServer(std::shared_ptr<picos::transports::Server> server, int connections) {
  auto state = std::make_shared<ServerState>();
  state->idle.Set();
  const int64_t max_bytes = absl::GetFlag(FLAGS_max_bytes);
  // connections == 0: serve until the process is stopped.
  for (int64_t i = 0; connections == 0 || i < connections; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(Socket conn, co_await server->Accept());
    ++state->connections;
    ++state->active;
    state->idle.Clear();
    picos::ThisScheduler().Spawn(Serve, std::make_shared<Socket>(std::move(conn)), state, max_bytes);
  }
  PICOS_CO_RETURN_IF_ERROR(co_await state->idle.Wait(absl::Seconds(60)));
  std::printf("server: %lld connections, %lld bytes in all\n",
              static_cast<long long>(state->connections), static_cast<long long>(state->bytes));
  if (state->failed > 0) {
    co_return absl::DataLossError(absl::StrCat(state->failed, " connections failed"));
  }
  co_return absl::OkStatus();
}

Task<absl::Status> Client(std::string server, int id, int64_t bytes) {
  std::mt19937 rng(id);
  const int64_t n = bytes > 0 ? bytes : 1 + static_cast<int64_t>(rng() % 1000);
  PICOS_CO_ASSIGN_OR_RETURN(Socket sock, co_await Socket::Connect(picos::transports::DefaultTransports(), server,
                                                                  absl::Seconds(10)));
  std::string head = "client " + std::to_string(id) + ": ";
  // In chunks: a large message is never held whole.
  for (int64_t sent = 0; sent < n;) {
    size_t len = static_cast<size_t>(std::min<int64_t>(n - sent, int64_t{1} << 20));
    std::string chunk = sent == 0 ? head.substr(0, len) : std::string();
    chunk.resize(len, '.');
    PICOS_CO_RETURN_IF_ERROR(co_await sock.Write(std::move(chunk), absl::Seconds(30)));
    sent += static_cast<int64_t>(len);
  }
  PICOS_CO_RETURN_IF_ERROR(co_await sock.Shutdown(absl::Seconds(30)));
  std::printf("client %d: sent %lld bytes\n", id, static_cast<long long>(n));
  co_return absl::OkStatus();
}

Task<absl::Status> Main() {
  const std::string mode = absl::GetFlag(FLAGS_mode);
  const int clients = absl::GetFlag(FLAGS_clients);
  const int rounds = absl::GetFlag(FLAGS_rounds);
  std::string address = absl::GetFlag(FLAGS_server);
  std::shared_ptr<picos::transports::Server> listener;
  picos::TaskRef server;
  if (mode == "server" || mode == "both") {
    PICOS_CO_ASSIGN_OR_RETURN(picos::transports::Server s, co_await picos::transports::Server::Listen(
                                                   picos::transports::DefaultTransports(), absl::GetFlag(FLAGS_listen)));
    address = s.address();
    std::printf("server: listening on %s\n", address.c_str());
    std::fflush(stdout);
    int connections = mode == "both" ? clients * rounds : absl::GetFlag(FLAGS_connections);
    listener = std::make_shared<picos::transports::Server>(std::move(s));
    server = picos::ThisScheduler().Spawn(RunServer, listener, connections);
  }
  int failed = 0;
  int64_t heap_mark = 0;
  int64_t heap_growth = 0;
  int64_t connections_after_mark = 0;
  if (mode == "client" || mode == "both") {
    for (int round = 0; round < rounds; ++round) {
      std::vector<picos::TaskRef> tasks;
      for (int i = 0; i < clients; ++i) {
        tasks.push_back(picos::ThisScheduler().Spawn(Client, address, i, absl::GetFlag(FLAGS_bytes)));
      }
      for (picos::TaskRef& t : tasks) {
        absl::StatusOr<picos::Value> r = co_await t.Join(absl::Seconds(60));
        if (!r.ok()) {
          ++failed;
          std::printf("client failed: %s\n", r.status().ToString().c_str());
        }
      }
      // The heap is measured from the end of the first fifth of the rounds,
      // once every pool and table has reached its working size.
      // Both ends are taken at the same point of a round, so the
      // connections still closing weigh the same in each.
      if (rounds >= 5 && round == rounds / 5 - 1) heap_mark = HeapBytes();
      if (rounds >= 5 && round >= rounds / 5) connections_after_mark += clients;
      if (rounds >= 5 && round == rounds - 1) heap_growth = HeapBytes() - heap_mark;
    }
  }
  if (failed > 0) {
    // Connections that never came would keep the server waiting.
    if (listener) listener->Close();
    if (server) (void)server.Terminate();
    co_return absl::UnavailableError(
        absl::StrCat(failed, " of ", clients * rounds, " client connections failed"));
  }
  if (server) {
    absl::StatusOr<picos::Value> r = co_await server.Join();
    if (!r.ok()) co_return r.status();
  }
  if (connections_after_mark > 0) {
    std::printf("memory growth per connection: %lld bytes (over %lld connections)\n",
                static_cast<long long>(heap_growth / connections_after_mark),
                static_cast<long long>(connections_after_mark));
  }
  std::printf("done\n");
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (!picos::FlagOneOf(FLAGS_mode, {"server", "client", "both"}) ||
      !picos::FlagInRange(FLAGS_clients, 1, 10000) ||
      !picos::FlagInRange(FLAGS_rounds, 1, 100000) ||
      !picos::FlagInRange(FLAGS_bytes, int64_t{0}, int64_t{1} << 32) ||
      !picos::FlagInRange(FLAGS_connections, 0, 1'000'000) ||
      !picos::FlagInRange(FLAGS_max_bytes, int64_t{1}, int64_t{1} << 40)) {
    return 2;
  }
  return picos::RunMain("sock_server_client", Main);
}
