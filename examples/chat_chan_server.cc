// pycos's chat_chan_server.py in C++: a chat room made of a registered
// server task ("chat_server") and registered channels, with the channel
// transform that pycos 4.12 silently drops on current Pythons working:
// shouting (a line with letters, all upper case) is dropped, "joined"
// becomes "joined :-)", "bye" becomes "left :-(", and any other line
// "says: <line>".
//
//   PICOS_REMOTE_SECRET=... chat_chan_server --listen=tcp://127.0.0.1:9705
//
// Clients send {"text": line, "from": id} to "chat_channel" and subscribe
// to "chat_room". Two channels where pycos has one because a picos
// transform belongs to a subscription, not to a channel: "chat_room" is
// subscribed to "chat_channel" with the transform, so every line goes
// through it once, here, whoever sends it and whoever reads it. The server
// task gives each client its id ({"cmd": "join", "who": task} → id) and
// announces arrivals and departures ({"cmd": "quit", "who": id}) on
// "chat_channel", so they are transformed too. Ends after --clients quits.
//
// The node's flags (--listen, default tcp://127.0.0.1:9705; --secret_file,
// else $PICOS_REMOTE_SECRET; --peer, --advertise, --node_name) are
// core/remote/node_flags.h's.
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/cli/flags.h"
#include "core/kernel/channel.h"
#include "core/kernel/naming.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "transports/default_transports.h"

ABSL_FLAG(int, clients, 2, "client departures that end the server, 1 to 10000");

namespace {

// Longest line passed on: lines are input from any peer.
constexpr size_t kMaxText = 4000;

// Python's str.isupper() on ASCII: some letters, none lower case.
bool IsShouting(const std::string& s) {
  bool letters = false;
  for (char c : s) {
    if (absl::ascii_islower(c)) return false;
    if (absl::ascii_isupper(c)) letters = true;
  }
  return letters;
}

// The room's transform (pycos txfm_msgs): nullopt drops the message. What
// arrives is whatever a peer sent to the channel, so anything but
// {"text": string, "from": int} is dropped too.
std::optional<picos::Value> Transform(const picos::Value& msg) {
  std::string text;
  int64_t from = 0;
  if (!picos::MessageReader(msg).Get("text", &text).Get("from", &from).ok()) return std::nullopt;
  if (text.size() > kMaxText || IsShouting(text)) return std::nullopt;
  if (text == "joined") {
    text += " :-)";
  } else if (text == "bye") {
    text = "left :-(";
  } else {
    text = absl::StrCat("says: ", text);
  }
  return picos::Value::Map({{"text", text}, {"from", from}});
}

// Hands out ids and announces arrivals and departures; ends after
// `clients` departures. Requests are input: a malformed one is skipped.
picos::Task<int64_t> ChatServer(picos::Channel channel, int clients) {
  int64_t next_id = 1;
  while (clients > 0) {
    absl::StatusOr<picos::Value> msg = co_await picos::Receive();
    if (!msg.ok()) break;
    std::string cmd;
    picos::Value who;
    absl::Status read = picos::MessageReader(*msg).Get("cmd", &cmd).Get("who", &who).status();
    if (read.ok() && cmd == "join" && who.is_task()) {
      const int64_t id = next_id++;
      (void)channel.Send(picos::Value::Map({{"text", "joined"}, {"from", id}}));
      (void)who.as_task().Send(picos::Value(id));
      std::printf("chat_server: client %lld joined\n", static_cast<long long>(id));
    } else if (read.ok() && cmd == "quit" && who.is_int()) {
      (void)channel.Send(picos::Value::Map({{"text", "bye"}, {"from", who.as_int()}}));
      std::printf("chat_server: client %lld left\n", static_cast<long long>(who.as_int()));
      --clients;
    } else {
      std::printf("chat_server: ignoring %s\n", msg->DebugString().c_str());
    }
    std::fflush(stdout);
  }
  co_return next_id - 1;
}

picos::Task<absl::Status> Main(int clients) {
  const picos::TransportRegistry& transports = picos::transports::DefaultTransports();
  picos::remote::NodeFlagDefaults defaults;
  defaults.name = "chat_chan_server";
  defaults.listen.push_back("tcp://127.0.0.1:9705");
  absl::StatusOr<picos::remote::NodeConfig> config = picos::remote::NodeConfigFromFlags(transports, defaults);
  if (!config.ok()) co_return config.status();
  absl::StatusOr<std::unique_ptr<picos::remote::Node>> node =
      co_await picos::remote::Node::Start(transports, std::move(config->options));
  if (!node.ok()) co_return node.status();
  PICOS_CO_RETURN_IF_ERROR(co_await picos::remote::ConnectPeers(**node, config->peers));

  picos::Channel inbound = picos::Channel::Create("chat_channel");
  picos::Channel room = picos::Channel::Create("chat_room");
  PICOS_CO_RETURN_IF_ERROR(inbound.Subscribe(room, Transform));
  PICOS_CO_RETURN_IF_ERROR(picos::RegisterChannel(inbound));
  PICOS_CO_RETURN_IF_ERROR(picos::RegisterChannel(room));
  picos::TaskRef server = picos::ThisScheduler().SpawnNamed("chat_server", ChatServer, inbound, clients);
  PICOS_CO_RETURN_IF_ERROR(picos::RegisterTask("chat_server", server));
  std::printf("chat_server: listening on %s\n", (*node)->uris()[0].c_str());
  std::fflush(stdout);
  absl::StatusOr<picos::Value> joined = co_await server.Join();
  if (!joined.ok()) co_return joined.status();
  PICOS_CO_RETURN_IF_ERROR(co_await (*node)->Flush());
  for (int i = 0; i < 2000 && !(*node)->peers().empty(); ++i) {
    absl::Status slept = co_await picos::Sleep(absl::Milliseconds(5));
    if (!slept.ok()) break;
  }
  (void)room.Close();
  (void)inbound.Close();
  std::printf("chat_server: %lld clients came and went\n", static_cast<long long>(joined->as_int()));
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("A chat room over registered remote channels, with a transform.");
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_clients, 1, 10000)) return 2;
  return picos::RunMain("chat_chan_server", Main, absl::GetFlag(FLAGS_clients));
}
