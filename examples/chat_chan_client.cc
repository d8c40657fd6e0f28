// pycos's chat_chan_client.py in C++: joins the chat room of
// chat_chan_server at the first --peer (default tcp://127.0.0.1:9705),
// sends each line of standard input to the room's channel, and prints what
// the others say, as the server's transform rewrote it. Standard input is
// read with blocking calls on a thread pool (core/io/thread_pool.h, pycos's
// AsyncThreadPool) while the receiver task keeps printing; "quit", "exit"
// or the end of input leaves the room.
//
//   PICOS_REMOTE_SECRET=... chat_chan_client --peer=tcp://127.0.0.1:9705
//
// --wait_lines=N stays, after the input ends, until N lines from others
// have arrived: what a scripted conversation (the smoke test) needs.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/time/time.h"
#include "core/cli/flags.h"
#include "core/io/thread_pool.h"
#include "core/kernel/channel.h"
#include "core/kernel/naming.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "transports/default_transports.h"

ABSL_FLAG(int, wait_lines, 0, "after the input, stay until this many lines from others arrived");
ABSL_FLAG(int, timeout_s, 30, "longest wait for the server or for --wait_lines, 1 to 3600");

namespace {

// Longest line sent (the server drops longer ones).
constexpr size_t kMaxLine = 4000;

// Prints what the room says, except this client's own lines (and anything
// before this client has its id, *own_id == 0). Ends after `wait_lines`
// lines when that is not 0, or when the room closes.
picos::Task<int64_t> Receiver(std::shared_ptr<int64_t> own_id, int wait_lines) {
  int64_t shown = 0;
  for (;;) {
    absl::StatusOr<picos::Value> msg = co_await picos::Receive();
    if (!msg.ok() || picos::IsChannelClosedMessage(*msg)) break;
    std::string text;
    int64_t from = 0;
    if (!picos::MessageReader(*msg).Get("text", &text).Get("from", &from).ok()) continue;
    if (*own_id == 0 || from == *own_id) continue;
    std::printf("  %lld %s\n", static_cast<long long>(from), text.c_str());
    std::fflush(stdout);
    if (++shown == wait_lines) break;
  }
  co_return shown;
}

picos::Task<absl::Status> Main(picos::ThreadPool* pool, int wait_lines, absl::Duration timeout) {
  const picos::TransportRegistry& transports = picos::transports::DefaultTransports();
  picos::remote::NodeFlagDefaults defaults;
  defaults.name = "chat_chan_client";
  absl::StatusOr<picos::remote::NodeConfig> config = picos::remote::NodeConfigFromFlags(transports, defaults);
  if (!config.ok()) co_return config.status();
  if (config->peers.empty()) config->peers.push_back("tcp://127.0.0.1:9705");
  const picos::Location at = picos::Location::Peer(config->peers[0]);
  absl::StatusOr<std::unique_ptr<picos::remote::Node>> node =
      co_await picos::remote::Node::Start(transports, std::move(config->options));
  if (!node.ok()) co_return node.status();
  PICOS_CO_RETURN_IF_ERROR(co_await picos::remote::ConnectPeers(**node, config->peers));

  absl::StatusOr<picos::TaskRef> server = co_await picos::LocateTask("chat_server", at, timeout);
  if (!server.ok()) co_return server.status();
  absl::StatusOr<picos::ChannelRef> inbound = co_await picos::LocateChannel("chat_channel", at, timeout);
  if (!inbound.ok()) co_return inbound.status();
  absl::StatusOr<picos::ChannelRef> room_ref = co_await picos::LocateChannel("chat_room", at, timeout);
  if (!room_ref.ok()) co_return room_ref.status();
  picos::Channel channel(*inbound);
  picos::Channel room(*room_ref);

  // Subscribed before joining: the server handles the join after the
  // subscription (one connection, in order), so once this client has its id
  // it hears everything said after.
  auto own_id = std::make_shared<int64_t>(0);
  picos::TaskRef receiver =
      picos::ThisScheduler().Spawn({.name = "receiver", .daemon = true}, Receiver, own_id, wait_lines);
  PICOS_CO_RETURN_IF_ERROR(room.Subscribe(receiver));
  PICOS_CO_RETURN_IF_ERROR(server->Send(picos::Value::Map({{"cmd", "join"}, {"who", picos::Self()}})));
  absl::StatusOr<picos::Value> id = co_await picos::Receive(timeout);
  if (!id.ok()) co_return id.status();
  if (!id->is_int() || id->as_int() <= 0) co_return absl::DataLossError("the server sent no id");
  *own_id = id->as_int();
  std::printf("client: joined as %lld\n", static_cast<long long>(*own_id));
  std::fflush(stdout);

  // A named callable (see thread_pool.h on g++ 12 and temporaries).
  auto read_line = []() -> absl::StatusOr<std::string> {
    std::string line;
    if (!std::getline(std::cin, line)) return absl::OutOfRangeError("end of input");
    return line;
  };
  for (;;) {
    absl::StatusOr<std::string> line = co_await pool->Run(read_line);
    if (!line.ok()) break;
    std::string text(absl::StripAsciiWhitespace(*line));
    const std::string lower = absl::AsciiStrToLower(text);
    if (lower == "quit" || lower == "exit") break;
    if (text.size() > kMaxLine) text.resize(kMaxLine);
    PICOS_CO_RETURN_IF_ERROR(channel.Send(picos::Value::Map({{"text", text}, {"from", *own_id}})));
  }
  if (wait_lines > 0) {
    absl::StatusOr<picos::Value> shown = co_await receiver.Join(timeout);
    if (!shown.ok()) co_return shown.status();
  }
  PICOS_CO_RETURN_IF_ERROR(server->Send(picos::Value::Map({{"cmd", "quit"}, {"who", *own_id}})));
  (void)room.Unsubscribe(receiver);
  PICOS_CO_RETURN_IF_ERROR(co_await (*node)->Close());
  std::printf("client: left\n");
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Chats through remote channels: lines of standard input to the room.");
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_wait_lines, 0, 1000000) || !picos::FlagInRange(FLAGS_timeout_s, 1, 3600)) {
    return 2;
  }
  picos::ThreadPool pool({.threads = 1, .queue_limit = 4});  // outlives the scheduler
  return picos::RunMain("chat_chan_client", Main, &pool, absl::GetFlag(FLAGS_wait_lines),
                        absl::Seconds(absl::GetFlag(FLAGS_timeout_s)));
}
