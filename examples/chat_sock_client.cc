// pycos chat_sock_client.py in picos: sends the lines of standard input to a
// chat server (chat_sock_server) and prints what others say.
//
//   bazel run //examples:chat_sock_client -- --server=tcp://127.0.0.1:8010 --name=alice
//
// --wait_online=N holds the input back until N clients are in the room, and
// --wait_lines=N stays until N lines from others arrived: what a scripted
// conversation (the smoke test) needs to be deterministic. --repeat and
// --quiet turn it into a flood and a counting listener (the slow-member
// test, examples/chat_sock_abuse_test.sh).
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/cli/flags.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "transports/default_transports.h"
#include "transports/socket.h"

ABSL_FLAG(std::string, server, "tcp://127.0.0.1:8010", "chat server address");
ABSL_FLAG(std::string, name, "anonymous", "your name in the room");
ABSL_FLAG(int, wait_online, 0, "send input only once this many are online");
ABSL_FLAG(int, wait_lines, 0, "after the input, stay until this many lines from others arrived");
ABSL_FLAG(int, timeout_s, 20, "give up waiting after this many seconds");
ABSL_FLAG(int, repeat, 1, "send the input this many times, 1 to 1000000");
ABSL_FLAG(bool, quiet, false, "print only the room's announcements and a count of lines");

namespace {

// A line from the server: a name and a line, each escaped (up to 4 bytes
// per byte a client sent).
constexpr size_t kMaxLine = 32 * 1024;

using picos::transports::Socket;
using picos::Task;

Task<absl::Status> Main(std::vector<std::string> input) {
  absl::Duration timeout = absl::Seconds(absl::GetFlag(FLAGS_timeout_s));
  PICOS_CO_ASSIGN_OR_RETURN(Socket sock,
                            co_await Socket::Connect(picos::transports::DefaultTransports(), absl::GetFlag(FLAGS_server), timeout));
  PICOS_CO_RETURN_IF_ERROR(co_await sock.Write(absl::GetFlag(FLAGS_name) + "\n", timeout));
  std::string online = absl::StrCat(", ", absl::GetFlag(FLAGS_wait_online), " online");
  bool ready = absl::GetFlag(FLAGS_wait_online) == 0;
  int others = 0;
  bool sent = false;
  const bool quiet = absl::GetFlag(FLAGS_quiet);
  // Each round reads one line: the lines awaited plus the room's news.
  for (int i = 0; i < absl::GetFlag(FLAGS_wait_lines) + 10'000; ++i) {
    if (ready && !sent) {
      for (int r = 0; r < absl::GetFlag(FLAGS_repeat); ++r) {
        for (const std::string& line : input) {
          PICOS_CO_RETURN_IF_ERROR(co_await sock.Write(line + "\n", timeout));
        }
      }
      sent = true;
    }
    if (sent && others >= absl::GetFlag(FLAGS_wait_lines)) break;
    PICOS_CO_ASSIGN_OR_RETURN(std::string line, co_await sock.ReadLine(kMaxLine, timeout));
    if (line.empty()) break;  // the server went away
    bool news = absl::StartsWith(line, "*** ");
    if (!quiet || news) {
      std::printf("%s", line.c_str());
      std::fflush(stdout);
    }
    if (news) {
      if (absl::StrContains(line, online)) ready = true;
    } else {
      ++others;
    }
  }
  if (quiet) std::printf("received %d lines from others\n", others);
  PICOS_CO_RETURN_IF_ERROR(co_await sock.Shutdown(timeout));
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_wait_online, 0, 1000) ||
      !picos::FlagInRange(FLAGS_wait_lines, 0, 10'000'000) ||
      !picos::FlagInRange(FLAGS_timeout_s, 1, 3600) ||
      !picos::FlagInRange(FLAGS_repeat, 1, 1'000'000)) {
    return 2;
  }
  // Standard input is read up front (bounded): the chat itself is the
  // asynchronous part this example shows.
  std::vector<std::string> input;
  std::string line;
  while (input.size() < 1000 && std::getline(std::cin, line)) input.push_back(line.substr(0, 4000));
  return picos::RunMain("chat_sock_client", Main, std::move(input));
}
