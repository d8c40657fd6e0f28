// pycos's remote_channel_client.py in C++: locates the channel "2clients"
// at the first --peer (the URI remote_channel_server printed; default
// tcp://127.0.0.1:9705) and subscribes this task to it; a sender task then
// Deliver()s --count messages with n=2, so each waits until two
// subscribers (this task and the server's receiver) are there, and prints
// how many received it. Every subscriber prints what it receives; a null
// "msg" from the sender ends this task.
//
// The sender is known by its handle: the handles inside the messages come
// back from the server's channel as this process's own task, equal to it.
//
//   PICOS_REMOTE_SECRET=... remote_channel_client --peer=tcp://127.0.0.1:9705 --count=10
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
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

ABSL_FLAG(int, count, 10, "messages to deliver, 0 to 100000");
ABSL_FLAG(int, timeout_s, 30, "longest wait for a delivery or a message, 1 to 3600");

namespace {

// Delivers `count` messages on `channel`, each to at least 2 subscribers,
// then sends the null message that ends the receivers.
picos::Task<absl::Status> Sender(picos::Channel channel, int count, absl::Duration timeout) {
  for (int i = 0; i < count; ++i) {
    picos::Value msg = picos::Value::Map({{"msg", absl::StrCat("message ", i)}, {"sender", picos::Self()}});
    absl::StatusOr<size_t> n = co_await channel.Deliver(std::move(msg), 2, timeout);
    if (!n.ok()) co_return n.status();
    std::printf("client: delivered to %zu\n", *n);
    std::fflush(stdout);
  }
  PICOS_CO_RETURN_IF_ERROR(channel.Send(picos::Value::Map({{"msg", picos::Value()}, {"sender", picos::Self()}})));
  // Stays until the receiver has its last message: a handle of an ended
  // task comes back from a peer as an ended handle, not as this task, and
  // the receiver knows the last message by its sender.
  absl::StatusOr<picos::Value> done = co_await picos::Receive(timeout);
  co_return done.status();
}

picos::Task<absl::Status> Main(int count, absl::Duration timeout) {
  const picos::TransportRegistry& transports = picos::transports::DefaultTransports();
  picos::remote::NodeFlagDefaults defaults;
  defaults.name = "remote_channel_client";
  absl::StatusOr<picos::remote::NodeConfig> config = picos::remote::NodeConfigFromFlags(transports, defaults);
  if (!config.ok()) co_return config.status();
  if (config->peers.empty()) config->peers.push_back("tcp://127.0.0.1:9705");
  const std::string peer = config->peers[0];
  absl::StatusOr<std::unique_ptr<picos::remote::Node>> node =
      co_await picos::remote::Node::Start(transports, std::move(config->options));
  if (!node.ok()) co_return node.status();
  PICOS_CO_RETURN_IF_ERROR(co_await picos::remote::ConnectPeers(**node, config->peers));

  absl::StatusOr<picos::ChannelRef> found =
      co_await picos::LocateChannel("2clients", picos::Location::Peer(peer), timeout);
  if (!found.ok()) co_return found.status();
  picos::Channel channel(*found);
  std::printf("client: found %s\n", found->DebugString().c_str());
  PICOS_CO_RETURN_IF_ERROR(channel.Subscribe(picos::Self()));
  picos::TaskRef sender = picos::ThisScheduler().SpawnNamed("sender", Sender, channel, count, timeout);
  // Bounded: the sender's messages and its last one, plus a few strays.
  bool ended = false;
  for (int i = 0; i < count + 100 && !ended; ++i) {
    absl::StatusOr<picos::Value> msg = co_await picos::Receive(timeout);
    if (!msg.ok()) co_return msg.status();
    picos::TaskRef from;
    picos::Value text;
    absl::Status read = picos::MessageReader(*msg).Get("sender", &from).Get("msg", &text).status();
    if (!read.ok() || !(text.is_null() || text.is_string())) {
      std::printf("client: ignoring malformed message %s\n", msg->DebugString().c_str());
      continue;
    }
    if (text.is_null()) {
      ended = from == sender;
      continue;
    }
    // The sender's handle came back through the server: it is this
    // process's own task again, not a proxy of it.
    std::printf("client: received '%s' from %s%s\n", text.as_string().c_str(), from.DebugString().c_str(),
                from == sender ? " (this process's sender)" : "");
    std::fflush(stdout);
  }
  if (!ended) co_return absl::DataLossError("too many messages without the sender's last one");
  PICOS_CO_RETURN_IF_ERROR(channel.Unsubscribe(picos::Self()));
  PICOS_CO_RETURN_IF_ERROR(sender.Send(picos::Value("done")));
  absl::StatusOr<picos::Value> sent = co_await sender.Join();
  if (!sent.ok()) co_return sent.status();
  PICOS_CO_RETURN_IF_ERROR(co_await (*node)->Close());
  std::printf("client: done\n");
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Locates a channel on another peer, subscribes to it and delivers on it.");
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_count, 0, 100000) || !picos::FlagInRange(FLAGS_timeout_s, 1, 3600)) return 2;
  return picos::RunMain("remote_channel_client", Main, absl::GetFlag(FLAGS_count),
                        absl::Seconds(absl::GetFlag(FLAGS_timeout_s)));
}
