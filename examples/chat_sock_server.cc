// pycos chat_sock_server.py in picos: a line-based chat server. Each client
// gets a task; a line it sends goes to every other client as "name: line";
// joins and leaves are announced ("*** alice joined, 2 online").
//
//   bazel run //examples:chat_sock_server -- --listen=tcp://127.0.0.1:8010
//   bazel run //examples:chat_sock_client -- --server=tcp://127.0.0.1:8010 --name=alice
#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/cli/flags.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "transports/default_transports.h"
#include "transports/socket.h"

ABSL_FLAG(std::string, listen, "tcp://127.0.0.1:0", "where to listen");
ABSL_FLAG(int, max_clients, 0, "exit once this many clients came and left (0: never)");

namespace {

using picos::transports::Socket;
using picos::Task;

struct Room {
  std::map<int, std::shared_ptr<Socket>> members;
  int left = 0;
  picos::TaskRef acceptor;
};

// Sends `line` to every member but `except`. A member that cannot keep up
// within a second is skipped: one slow reader must not stall the room.
Task<> Broadcast(std::shared_ptr<Room> room, int except, std::string line) {
  std::printf("server: %s", line.c_str());
  std::fflush(stdout);
  auto members = room->members;  // a member may leave while we write
  for (auto& [id, sock] : members) {
    if (id == except) continue;
    (void)co_await sock->Write(line, absl::Seconds(1));
  }
}

Task<absl::Status> Member(std::shared_ptr<Room> room, int id, std::shared_ptr<Socket> sock) {
  absl::StatusOr<std::string> name = co_await sock->ReadLine(64, absl::Seconds(30));
  if (!name.ok() || name->empty()) co_return absl::OkStatus();
  std::string who(absl::StripTrailingAsciiWhitespace(*name));
  room->members[id] = sock;
  co_await Broadcast(room, -1, absl::StrCat("*** ", who, " joined, ", room->members.size(), " online\n"));
  for (int i = 0; i < 1'000'000; ++i) {
    absl::StatusOr<std::string> line = co_await sock->ReadLine(4096);
    if (!line.ok() || line->empty()) break;  // gone, or sent a line too long
    std::string text(absl::StripTrailingAsciiWhitespace(*line));
    co_await Broadcast(room, id, absl::StrCat(who, ": ", text, "\n"));
  }
  room->members.erase(id);
  co_await Broadcast(room, -1, absl::StrCat("*** ", who, " left, ", room->members.size(), " online\n"));
  int max = absl::GetFlag(FLAGS_max_clients);
  if (max > 0 && ++room->left >= max) (void)room->acceptor.Terminate();
  co_return absl::OkStatus();
}

Task<absl::Status> AcceptLoop(std::shared_ptr<picos::transports::Server> server, std::shared_ptr<Room> room) {
  for (int id = 0; id < 1'000'000; ++id) {
    absl::StatusOr<Socket> conn = co_await server->Accept();
    if (!conn.ok()) co_return conn.status();
    picos::ThisScheduler().Spawn(Member, room, id, std::make_shared<Socket>(std::move(*conn)));
  }
  co_return absl::OkStatus();
}

Task<absl::Status> Main() {
  PICOS_CO_ASSIGN_OR_RETURN(picos::transports::Server server,
                            co_await picos::transports::Server::Listen(picos::transports::DefaultTransports(), absl::GetFlag(FLAGS_listen)));
  auto shared = std::make_shared<picos::transports::Server>(std::move(server));
  std::printf("server: listening on %s\n", shared->address().c_str());
  std::fflush(stdout);
  auto room = std::make_shared<Room>();
  room->acceptor = picos::ThisScheduler().Spawn(AcceptLoop, shared, room);
  (void)co_await room->acceptor.Join();
  std::printf("server: %d clients came and left\n", room->left);
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_max_clients, 0, 100000)) return 2;
  return picos::RunMain("chat_sock_server", Main);
}
