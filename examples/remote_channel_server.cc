// pycos's remote_channel_server.py in C++: registers the channel "2clients"
// so that peers can locate it; a receiver task of this process subscribes
// to it only after --subscribe_delay_ms, so a client's Deliver(msg, n=2)
// waits until both the client and this receiver are subscribed. Ends once
// --clients senders have sent their last message (a null "msg").
//
//   PICOS_REMOTE_SECRET=... remote_channel_server --listen=tcp://127.0.0.1:9705
//
// The node's flags (--listen, default tcp://127.0.0.1:9705; --secret_file,
// else $PICOS_REMOTE_SECRET; --peer, --advertise, --node_name) are
// core/remote/node_flags.h's. Run remote_channel_client against the URI it
// prints.
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
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

ABSL_FLAG(int, clients, 1, "senders whose last message ends the server, 1 to 10000");
ABSL_FLAG(int, subscribe_delay_ms, 1000, "how long the local receiver waits before subscribing");

namespace {

// Subscribes to `channel` after `delay`, then prints every message until
// `clients` senders have sent a null "msg". Messages are input: one that is
// not {"msg": string or null, "sender": task} is reported and skipped.
picos::Task<int64_t> Receiver(picos::Channel channel, absl::Duration delay, int clients) {
  absl::Status slept = co_await picos::Sleep(delay);
  if (!slept.ok()) co_return int64_t{0};
  absl::Status subscribed = channel.Subscribe(picos::Self());
  if (!subscribed.ok()) {
    std::printf("server: cannot subscribe: %s\n", subscribed.ToString().c_str());
    co_return int64_t{0};
  }
  std::printf("server: receiver subscribed\n");
  std::fflush(stdout);
  int64_t received = 0;
  while (clients > 0) {
    absl::StatusOr<picos::Value> msg = co_await picos::Receive();
    if (!msg.ok()) break;
    picos::TaskRef sender;
    picos::Value text;
    absl::Status read = picos::MessageReader(*msg).Get("sender", &sender).Get("msg", &text).status();
    if (!read.ok() || !(text.is_null() || text.is_string())) {
      std::printf("server: ignoring malformed message %s\n", msg->DebugString().c_str());
      continue;
    }
    if (text.is_null()) {
      std::printf("server: %s is done\n", sender.DebugString().c_str());
      --clients;
      continue;
    }
    ++received;
    std::printf("server: received '%s' from %s\n", text.as_string().c_str(), sender.DebugString().c_str());
    std::fflush(stdout);
  }
  (void)channel.Unsubscribe(picos::Self());
  co_return received;
}

picos::Task<absl::Status> Main(int clients, int delay_ms) {
  const picos::TransportRegistry& transports = picos::transports::DefaultTransports();
  picos::remote::NodeFlagDefaults defaults;
  defaults.name = "remote_channel_server";
  defaults.listen.push_back("tcp://127.0.0.1:9705");
  absl::StatusOr<picos::remote::NodeConfig> config = picos::remote::NodeConfigFromFlags(transports, defaults);
  if (!config.ok()) co_return config.status();
  absl::StatusOr<std::unique_ptr<picos::remote::Node>> node =
      co_await picos::remote::Node::Start(transports, std::move(config->options));
  if (!node.ok()) co_return node.status();
  PICOS_CO_RETURN_IF_ERROR(co_await picos::remote::ConnectPeers(**node, config->peers));

  picos::Channel channel = picos::Channel::Create("2clients");
  PICOS_CO_RETURN_IF_ERROR(picos::RegisterChannel(channel));
  picos::TaskRef receiver = picos::ThisScheduler().SpawnNamed("receiver", Receiver, channel,
                                                              absl::Milliseconds(delay_ms), clients);
  std::printf("server: listening on %s\n", (*node)->uris()[0].c_str());
  std::fflush(stdout);
  absl::StatusOr<picos::Value> received = co_await receiver.Join();
  if (!received.ok()) co_return received.status();
  // The clients leave by themselves once their last message went out.
  for (int i = 0; i < 2000 && !(*node)->peers().empty(); ++i) {
    absl::Status slept = co_await picos::Sleep(absl::Milliseconds(5));
    if (!slept.ok()) break;
  }
  (void)picos::UnregisterChannel(channel.name());
  (void)channel.Close();
  std::printf("server: %lld messages from %d clients\n", static_cast<long long>(received->as_int()), clients);
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("A channel that peers in other processes locate, subscribe to and deliver on.");
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_clients, 1, 10000) || !picos::FlagInRange(FLAGS_subscribe_delay_ms, 0, 600000)) {
    return 2;
  }
  return picos::RunMain("remote_channel_server", Main, absl::GetFlag(FLAGS_clients),
                        absl::GetFlag(FLAGS_subscribe_delay_ms));
}
