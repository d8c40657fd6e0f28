// pycos webserver.py in picos: a minimal HTTP server answering every
// request with "Pong!", one task per connection, for ping-pong load tests
// with wrk or ab (testing/webserver_load.sh). Keeps connections alive
// (HTTP/1.1) unless the client says "Connection: close". The acceptor and
// the connection tasks are daemons (pycos daemon=True): when the main task
// is done, they end with the program instead of keeping it alive.
//
//   bazel run -c opt //examples:webserver -- --listen=tcp://127.0.0.1:8080
//   bazel run //examples:webserver -- --self_test=100   # serve its own 100 requests, exit
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "core/cli/flags.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "transports/default_transports.h"
#include "transports/socket.h"

ABSL_FLAG(std::string, listen, "tcp://127.0.0.1:8080", "where to listen");
ABSL_FLAG(int, self_test, 0, "if > 0: send this many requests to itself, print a summary, exit");

namespace {

using picos::Socket;
using picos::Task;

constexpr size_t kMaxHeaderLine = 8192;
constexpr int kMaxHeaderLines = 100;

const std::string kPong =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nPong!";

// Serves requests on one connection until the client closes it, asks to,
// or sends something that is not a bounded HTTP request.
Task<absl::Status> Serve(std::shared_ptr<Socket> conn) {
  for (int request = 0; request < 10'000'000; ++request) {
    bool close = false;
    bool got_request_line = false;
    for (int i = 0; i < kMaxHeaderLines; ++i) {
      absl::StatusOr<std::string> line = co_await conn->ReadLine(kMaxHeaderLine, absl::Seconds(60));
      if (!line.ok() || line->empty()) co_return absl::OkStatus();  // gone, idle, or garbage
      if (*line == "\r\n" || *line == "\n") break;
      if (!got_request_line) {
        got_request_line = true;
        if (absl::StrContains(*line, "HTTP/1.0")) close = true;
        continue;
      }
      std::string lower = absl::AsciiStrToLower(*line);
      if (absl::StartsWith(lower, "connection:")) close = absl::StrContains(lower, "close");
    }
    absl::Status st = co_await conn->WriteAll(
        close ? std::string(kPong).insert(17, "Connection: close\r\n") : kPong, absl::Seconds(30));
    if (!st.ok() || close) co_return absl::OkStatus();
  }
  co_return absl::OkStatus();
}

Task<absl::Status> AcceptLoop(std::shared_ptr<picos::Server> server) {
  for (int64_t i = 0; i < (int64_t{1} << 40); ++i) {
    absl::StatusOr<Socket> conn = co_await server->Accept();
    if (!conn.ok()) co_return conn.status();
    picos::ThisScheduler().Spawn({.daemon = true}, Serve,
                                 std::make_shared<Socket>(std::move(*conn)));
  }
  co_return absl::OkStatus();
}

Task<absl::Status> SelfTest(std::string address, int requests) {
  PICOS_CO_ASSIGN_OR_RETURN(Socket sock, co_await Socket::Connect(picos::DefaultTransports(), address, absl::Seconds(10)));
  int pongs = 0;
  for (int i = 0; i < requests; ++i) {
    PICOS_CO_RETURN_IF_ERROR(co_await sock.WriteAll("GET / HTTP/1.1\r\nHost: x\r\n\r\n", absl::Seconds(10)));
    for (int h = 0; h < kMaxHeaderLines; ++h) {
      PICOS_CO_ASSIGN_OR_RETURN(std::string line, co_await sock.ReadLine(kMaxHeaderLine, absl::Seconds(10)));
      if (line == "\r\n") break;
    }
    PICOS_CO_ASSIGN_OR_RETURN(std::string body, co_await sock.ReadExactly(5, absl::Seconds(10)));
    if (body == "Pong!") ++pongs;
  }
  // A client that sends garbage gets closed, not crashed on.
  PICOS_CO_ASSIGN_OR_RETURN(Socket bad, co_await Socket::Connect(picos::DefaultTransports(), address, absl::Seconds(10)));
  PICOS_CO_RETURN_IF_ERROR(co_await bad.WriteAll(std::string(20000, 'x'), absl::Seconds(10)));
  absl::StatusOr<std::string> rest = co_await bad.Read(100, absl::Seconds(10));
  std::printf("garbage client: %s\n", rest.ok() && rest->empty() ? "closed" : "not closed");
  std::printf("self test: %d of %d requests answered Pong!\n", pongs, requests);
  co_return absl::OkStatus();
}

Task<absl::Status> Main() {
  PICOS_CO_ASSIGN_OR_RETURN(picos::Server server,
                            co_await picos::Server::Listen(picos::DefaultTransports(), absl::GetFlag(FLAGS_listen)));
  auto shared = std::make_shared<picos::Server>(std::move(server));
  std::printf("webserver: listening on %s\n", shared->address().c_str());
  std::fflush(stdout);
  picos::TaskRef acceptor =
      picos::ThisScheduler().Spawn({.name = "acceptor", .daemon = true}, AcceptLoop, shared);
  int n = absl::GetFlag(FLAGS_self_test);
  if (n <= 0) {
    absl::StatusOr<picos::Value> r = co_await acceptor.Join();
    co_return r.status();
  }
  // The acceptor and any connection still open are daemons: they end when
  // this task does.
  co_return co_await SelfTest(shared->address(), n);
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_self_test, 0, 1'000'000)) return 2;
  return picos::RunMain("webserver", Main);
}
