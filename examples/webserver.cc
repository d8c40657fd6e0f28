// pycos webserver.py in picos: a minimal HTTP server answering every
// request with "Pong!", one task per connection, for ping-pong load tests
// with wrk or ab (testing/webserver_load.sh). Keeps connections alive
// (HTTP/1.1) unless the client says "Connection: close". What is not an
// HTTP/1.x request (a malformed request line or header, random bytes) gets
// "400 Bad Request" and the connection is closed. The acceptor and the
// connection tasks are daemons (pycos daemon=True): when the main task is
// done, they end with the program instead of keeping it alive.
//
//   bazel run -c opt //examples:webserver -- --listen=tcp://127.0.0.1:8080
//   bazel run //examples:webserver -- --self_test=100   # serve its own 100 requests, exit
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "core/cli/flags.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "transports/default_transports.h"
#include "transports/socket.h"

ABSL_FLAG(std::string, listen, "tcp://127.0.0.1:8080", "where to listen");
ABSL_FLAG(int, self_test, 0, "if > 0: send this many requests to itself, print a summary, exit");

namespace {

using picos::transports::Socket;
using picos::Task;

constexpr size_t kMaxHeaderLine = 8192;
constexpr int kMaxHeaderLines = 100;

const std::string kPong =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nPong!";
const std::string kBadRequest =
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

// RFC 9110 token characters: methods and header names.
bool IsToken(absl::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (!absl::ascii_isalnum(c) && !absl::StrContains("!#$%&'*+-.^_`|~", static_cast<char>(c))) {
      return false;
    }
  }
  return true;
}

// `line` without its "\r\n" (or "\n"); false if it holds another control byte.
bool StripEol(absl::string_view line, absl::string_view* out) {
  if (!absl::ConsumeSuffix(&line, "\n")) return false;
  absl::ConsumeSuffix(&line, "\r");
  for (unsigned char c : line) {
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  *out = line;
  return true;
}

// "GET /path HTTP/1.1": a method, a target and a version, one space apart.
// Sets *http10 for an HTTP/1.0 request.
bool ValidRequestLine(absl::string_view line, bool* http10) {
  absl::string_view text;
  if (!StripEol(line, &text)) return false;
  std::vector<absl::string_view> parts = absl::StrSplit(text, ' ');
  if (parts.size() != 3 || !IsToken(parts[0]) || parts[1].empty()) return false;
  if (parts[1][0] != '/' && parts[1] != "*" && !absl::StrContains(parts[1], "://")) return false;
  if (parts[2] != "HTTP/1.1" && parts[2] != "HTTP/1.0") return false;
  *http10 = parts[2] == "HTTP/1.0";
  return true;
}

// "Name: value".
bool ValidHeader(absl::string_view line) {
  absl::string_view text;
  if (!StripEol(line, &text)) return false;
  size_t colon = text.find(':');
  return colon != absl::string_view::npos && IsToken(text.substr(0, colon));
}

// Serves requests on one connection until the client closes it, asks to,
// or sends something that is not a bounded HTTP/1.x request (answered 400).
Task<absl::Status> Serve(std::shared_ptr<Socket> conn) {
  for (int request = 0; request < 10'000'000; ++request) {
    bool close = false;
    bool got_request_line = false;
    bool bad = false;
    bool ended = false;  // the blank line after the headers
    for (int i = 0; i < kMaxHeaderLines && !bad; ++i) {
      absl::StatusOr<std::string> line = co_await conn->ReadLine(kMaxHeaderLine, absl::Seconds(60));
      if (!line.ok() && line.status().code() == absl::StatusCode::kResourceExhausted) {
        bad = true;  // a line past the bound
        break;
      }
      if (!line.ok() || line->empty()) co_return absl::OkStatus();  // gone or idle
      if (*line == "\r\n" || *line == "\n") {
        bad = !got_request_line;
        ended = true;
        break;
      }
      if (!got_request_line) {
        got_request_line = true;
        bad = !ValidRequestLine(*line, &close);
        continue;
      }
      if (!ValidHeader(*line)) {
        bad = true;
        break;
      }
      std::string lower = absl::AsciiStrToLower(*line);
      if (absl::StartsWith(lower, "connection:")) close = absl::StrContains(lower, "close");
    }
    if (bad || !ended) {
      // Answer, then close gently: half-close and drop what the client
      // still sends for a moment, so that the close is not a reset that
      // destroys the answer before the client reads it.
      (void)co_await conn->Write(kBadRequest, absl::Seconds(10));
      (void)co_await conn->Shutdown(absl::Seconds(10));
      for (int i = 0; i < 16; ++i) {
        absl::StatusOr<std::string> rest = co_await conn->Read(64 * 1024, absl::Seconds(1));
        if (!rest.ok() || rest->empty()) break;
      }
      co_return absl::OkStatus();
    }
    absl::Status st = co_await conn->Write(
        close ? std::string(kPong).insert(17, "Connection: close\r\n") : kPong, absl::Seconds(30));
    if (!st.ok() || close) co_return absl::OkStatus();
  }
  co_return absl::OkStatus();
}

Task<absl::Status> AcceptLoop(std::shared_ptr<picos::transports::Server> server) {
  for (int64_t i = 0; i < (int64_t{1} << 40); ++i) {
    absl::StatusOr<Socket> conn = co_await server->Accept();
    if (!conn.ok()) co_return conn.status();
    picos::ThisScheduler().Spawn({.daemon = true}, Serve,
                                 std::make_shared<Socket>(std::move(*conn)));
  }
  co_return absl::OkStatus();
}

Task<absl::Status> SelfTest(std::string address, int requests) {
  PICOS_CO_ASSIGN_OR_RETURN(Socket sock, co_await Socket::Connect(picos::transports::DefaultTransports(), address, absl::Seconds(10)));
  int pongs = 0;
  for (int i = 0; i < requests; ++i) {
    PICOS_CO_RETURN_IF_ERROR(co_await sock.Write("GET / HTTP/1.1\r\nHost: x\r\n\r\n", absl::Seconds(10)));
    for (int h = 0; h < kMaxHeaderLines; ++h) {
      PICOS_CO_ASSIGN_OR_RETURN(std::string line, co_await sock.ReadLine(kMaxHeaderLine, absl::Seconds(10)));
      if (line == "\r\n") break;
    }
    PICOS_CO_ASSIGN_OR_RETURN(std::string body, co_await sock.ReadExactly(5, absl::Seconds(10)));
    if (body == "Pong!") ++pongs;
  }
  // Random bytes (with line ends, so that they look like lines) are not a
  // request: none may be answered 200.
  std::mt19937 rng(2024);
  int random_ok = 0;
  const int kRandom = 20;
  for (int i = 0; i < kRandom; ++i) {
    std::string junk(100, '\0');
    for (char& c : junk) c = static_cast<char>(rng() % 4 == 0 ? '\n' : rng());
    PICOS_CO_ASSIGN_OR_RETURN(Socket s, co_await Socket::Connect(picos::transports::DefaultTransports(), address,
                                                                 absl::Seconds(10)));
    PICOS_CO_RETURN_IF_ERROR(co_await s.Write(junk + "\r\n\r\n", absl::Seconds(10)));
    absl::StatusOr<std::string> status_line = co_await s.ReadLine(kMaxHeaderLine, absl::Seconds(10));
    if (status_line.ok() && absl::StartsWith(*status_line, "HTTP/1.1 200")) ++random_ok;
  }
  std::printf("random requests: %d of %d answered 200 OK\n", random_ok, kRandom);
  // A request line with a header that is not one.
  PICOS_CO_ASSIGN_OR_RETURN(Socket h, co_await Socket::Connect(picos::transports::DefaultTransports(), address,
                                                               absl::Seconds(10)));
  PICOS_CO_RETURN_IF_ERROR(co_await h.Write("GET / HTTP/1.1\r\nno colon here\r\n\r\n",
                                               absl::Seconds(10)));
  PICOS_CO_ASSIGN_OR_RETURN(std::string answer, co_await h.ReadLine(kMaxHeaderLine, absl::Seconds(10)));
  std::printf("bad header: %s", answer.c_str());
  // A client that sends garbage gets closed, not crashed on.
  PICOS_CO_ASSIGN_OR_RETURN(Socket bad, co_await Socket::Connect(picos::transports::DefaultTransports(), address, absl::Seconds(10)));
  PICOS_CO_RETURN_IF_ERROR(co_await bad.Write(std::string(20000, 'x'), absl::Seconds(10)));
  absl::StatusOr<std::string> answer_line = co_await bad.ReadLine(kMaxHeaderLine, absl::Seconds(10));
  bool closed = false;
  for (int i = 0; i < 100 && !closed; ++i) {
    absl::StatusOr<std::string> rest = co_await bad.Read(1024, absl::Seconds(10));
    closed = !rest.ok() || rest->empty();
  }
  std::printf("garbage client: answered %s, %s\n",
              answer_line.ok() ? std::string(absl::StripTrailingAsciiWhitespace(*answer_line)).c_str()
                               : answer_line.status().ToString().c_str(),
              closed ? "then closed" : "not closed");
  std::printf("self test: %d of %d requests answered Pong!\n", pongs, requests);
  co_return absl::OkStatus();
}

Task<absl::Status> Main() {
  PICOS_CO_ASSIGN_OR_RETURN(picos::transports::Server server,
                            co_await picos::transports::Server::Listen(picos::transports::DefaultTransports(), absl::GetFlag(FLAGS_listen)));
  auto shared = std::make_shared<picos::transports::Server>(std::move(server));
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
