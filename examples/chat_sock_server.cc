// pycos chat_sock_server.py in picos: a line-based chat server. Each client
// gets a task; a line it sends goes to every other client as "name: line";
// joins and leaves are announced ("*** alice joined, 2 online").
//
//   bazel run //examples:chat_sock_server -- --listen=tcp://127.0.0.1:8010
//   bazel run //examples:chat_sock_client -- --server=tcp://127.0.0.1:8010 --name=alice
//
// One slow member must not stall the room: a broadcast never waits on a
// socket. Each member has a writer task fed through its mailbox, and the
// bytes waiting for it are counted; a member with more than --max_queue_kb
// waiting (it does not read, or reads too slowly) is disconnected, and the
// room is told. What clients send is shown with control bytes escaped, so a
// client cannot drive the server's terminal (or the other members') with
// escape sequences.
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "core/cli/flags.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "transports/default_transports.h"
#include "transports/socket.h"

ABSL_FLAG(std::string, listen, "tcp://127.0.0.1:0", "where to listen");
ABSL_FLAG(int, max_clients, 0, "exit once this many clients came and left (0: never)");
ABSL_FLAG(bool, quiet, false, "print only joins, leaves and disconnections, not what is said");
ABSL_FLAG(int, max_queue_kb, 256,
          "disconnect a member once this many KiB wait to be written to it, 1 to 65536");

namespace {

using picos::transports::Socket;
using picos::Task;

constexpr size_t kMaxName = 64;
constexpr size_t kMaxLine = 4096;
constexpr int64_t kMaxLinesPerMember = 100'000'000;

struct Member {
  std::string name;  // printable (Printable())
  std::shared_ptr<Socket> sock;
  picos::TaskRef writer;  // writes what the room sends this member
  size_t queued = 0;      // bytes sent to the writer, not yet written
  bool gone = false;      // removed from the room
};

struct Room {
  std::map<int, std::shared_ptr<Member>> members;
  size_t max_queue = 0;
  bool quiet = false;
  int left = 0;
  picos::TaskRef acceptor;
};

// `text` with every byte outside printable ASCII written as \xNN: what a
// client sends reaches a terminal only as text.
std::string Printable(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppendFormat(&out, "\\x%02x", c);
    }
  }
  return out;
}

size_t Broadcast(Room& room, int except, const std::string& line);

// Takes `m` out of the room: closes its socket (its reader and writer tasks
// wake and end) and tells the others why.
void Remove(Room& room, int id, const std::string& why) {
  auto it = room.members.find(id);
  if (it == room.members.end()) return;
  std::shared_ptr<Member> m = it->second;
  room.members.erase(it);
  m->gone = true;
  (void)m->writer.Terminate();
  m->sock->Close();
  Broadcast(room, -1, absl::StrCat("*** ", m->name, " ", why, ", ", room.members.size(), " online\n"));
}

// Queues `line` for every member but `except`, without waiting on any of
// them; a member whose queue would pass the bound is disconnected instead.
// Gives the longest queue left. Does not suspend.
size_t Broadcast(Room& room, int except, const std::string& line) {
  if (except < 0 || !room.quiet) {
    std::printf("server: %s", line.c_str());
    std::fflush(stdout);
  }
  std::vector<std::pair<int, size_t>> laggards;
  size_t longest = 0;
  for (auto& [id, m] : room.members) {
    if (id == except) continue;
    if (m->queued + line.size() > room.max_queue) {
      laggards.emplace_back(id, m->queued);
      continue;
    }
    m->queued += line.size();
    longest = std::max(longest, m->queued);
    (void)m->writer.Send(picos::Value(line));
  }
  // Each removal announces itself, which may find another laggard: at most
  // one level per member.
  for (auto [id, queued] : laggards) {
    Remove(room, id, absl::StrCat("was too slow (", queued / 1024, " KiB waiting) and was disconnected"));
  }
  return longest;
}

// Writes what the room sends `m`, in order, until the member is removed
// (Remove terminates this task) or its socket fails.
Task<> Writer(std::shared_ptr<Member> m) {
  for (;;) {
    absl::StatusOr<picos::Value> msg = co_await picos::Receive();
    if (!msg.ok() || !msg->is_string()) co_return;  // terminated
    std::string line = msg->as_string();
    absl::Status st = co_await m->sock->Write(line, absl::Seconds(60));
    m->queued -= line.size();
    if (!st.ok()) {
      m->sock->Close();  // its reader sees the end and takes it out of the room
      co_return;
    }
  }
}

Task<absl::Status> MemberTask(std::shared_ptr<Room> room, int id, std::shared_ptr<Socket> sock) {
  absl::StatusOr<std::string> name = co_await sock->ReadLine(kMaxName, absl::Seconds(30));
  if (!name.ok() || name->empty()) co_return absl::OkStatus();
  auto m = std::make_shared<Member>();
  m->name = Printable(absl::StripTrailingAsciiWhitespace(*name));
  m->sock = sock;
  m->writer = picos::ThisScheduler().Spawn(Writer, m);
  room->members[id] = m;
  Broadcast(*room, -1, absl::StrCat("*** ", m->name, " joined, ", room->members.size(), " online\n"));
  std::string why = "left";
  for (int64_t i = 0;; ++i) {
    if (i == kMaxLinesPerMember) {
      why = absl::StrCat("reached the limit of ", kMaxLinesPerMember, " lines and was disconnected");
      break;
    }
    absl::StatusOr<std::string> line = co_await sock->ReadLine(kMaxLine);
    if (m->gone) break;
    if (!line.ok() && line.status().code() == absl::StatusCode::kResourceExhausted) {
      why = absl::StrCat("sent a line over ", kMaxLine, " bytes and was disconnected");
      break;
    }
    if (!line.ok() || line->empty()) break;  // gone
    size_t longest = Broadcast(
        *room, id, absl::StrCat(m->name, ": ", Printable(absl::StripTrailingAsciiWhitespace(*line)), "\n"));
    // Lines already read ahead from this member come without a suspension,
    // so the writers would not run until all are queued: once a queue
    // builds up, give them a turn (and the loop its I/O) per line. A member
    // that reads is kept up with; one that does not still fills its queue
    // and is cut, after a bounded delay to the room rather than a stall.
    if (longest > room->max_queue / 4) co_await picos::Yield();
  }
  Remove(*room, id, why);
  int max = absl::GetFlag(FLAGS_max_clients);
  if (max > 0 && ++room->left >= max) (void)room->acceptor.Terminate();
  co_return absl::OkStatus();
}

Task<absl::Status> AcceptLoop(std::shared_ptr<picos::transports::Server> server, std::shared_ptr<Room> room) {
  for (int id = 0; id < 1'000'000'000; ++id) {
    absl::StatusOr<Socket> conn = co_await server->Accept();
    if (!conn.ok()) co_return conn.status();
    picos::ThisScheduler().Spawn(MemberTask, room, id, std::make_shared<Socket>(std::move(*conn)));
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
  room->max_queue = static_cast<size_t>(absl::GetFlag(FLAGS_max_queue_kb)) * 1024;
  room->quiet = absl::GetFlag(FLAGS_quiet);
  room->acceptor = picos::ThisScheduler().Spawn(AcceptLoop, shared, room);
  (void)co_await room->acceptor.Join();
  std::printf("server: %d clients came and left\n", room->left);
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_max_clients, 0, 100000) ||
      !picos::FlagInRange(FLAGS_max_queue_kb, 1, 65536)) {
    return 2;
  }
  return picos::RunMain("chat_sock_server", Main);
}
