// The second process of the remote-layer tests (testing/remote_test.cc): a
// peer that listens on --listen, registers an "echo" task, prints
// "listening <uri>" on stdout, and ends once the echo task has received
// "quit" and its peers have gone (or after --lifetime, whatever happens, so
// that it never outlives a test). The secret comes from --secret_file or
// $PICOS_REMOTE_SECRET: never a default.
//
// The echo task answers {"reply_to": handle, "n": k} with
// {"n": k, "you": handle, "me": its own handle}, sent to that handle, and
// returns how many it answered. A "sink" task counts every other message
// it receives and answers {"count_to": handle} with that count (an int)
// sent to the handle; it ends with the echo task.
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/kernel/naming.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "transports/default_transports.h"

ABSL_FLAG(std::string, listen, "tcp://127.0.0.1:0", "URI to listen on");
ABSL_FLAG(std::string, secret_file, "", "file holding the shared secret (else $PICOS_REMOTE_SECRET)");
ABSL_FLAG(absl::Duration, lifetime, absl::Seconds(120), "ends the process after this long, whatever happens");

namespace {

picos::Task<int64_t> Echo() {
  int64_t answered = 0;
  for (;;) {
    absl::StatusOr<picos::Value> msg = co_await picos::Receive();
    if (!msg.ok()) co_return answered;
    if (*msg == picos::Value("quit")) co_return answered;
    picos::TaskRef reply_to;
    int64_t n = 0;
    absl::Status read = picos::MessageReader(*msg).Get("reply_to", &reply_to).Get("n", &n).status();
    if (!read.ok()) {
      std::fprintf(stderr, "echo: malformed message: %s\n", read.ToString().c_str());
      continue;
    }
    // A flood's replies wait for room rather than be dropped when the
    // peer's queue is full (kResourceExhausted): the reconnect tests count
    // every one.
    picos::Value reply = picos::Value::Map({{"n", n}, {"you", reply_to}, {"me", picos::Self()}});
    absl::Status sent = co_await picos::SendWhenRoom(reply_to, std::move(reply), absl::Seconds(60));
    if (!sent.ok()) std::fprintf(stderr, "echo: reply %lld: %s\n", static_cast<long long>(n), sent.ToString().c_str());
    ++answered;
  }
}

picos::Task<int64_t> Sink() {
  int64_t count = 0;
  for (;;) {
    absl::StatusOr<picos::Value> msg = co_await picos::Receive();
    if (!msg.ok()) co_return count;
    if (const picos::Value* to = msg->Find("count_to"); to != nullptr && to->is_task()) {
      (void)to->as_task().Send(picos::Value(count));
      continue;
    }
    ++count;
  }
}

picos::Task<absl::Status> Serve() {
  const absl::Time give_up = absl::Now() + absl::GetFlag(FLAGS_lifetime);
  absl::StatusOr<std::string> secret = picos::remote::LoadSecret(absl::GetFlag(FLAGS_secret_file));
  if (!secret.ok()) co_return secret.status();
  picos::remote::NodeOptions o;
  o.secret = *secret;
  o.listen = {absl::GetFlag(FLAGS_listen)};
  o.name = "echo-server";
  absl::StatusOr<std::unique_ptr<picos::remote::Node>> node =
      co_await picos::remote::Node::Start(picos::transports::DefaultTransports(), std::move(o));
  if (!node.ok()) co_return node.status();
  picos::TaskRef echo = picos::ThisScheduler().SpawnNamed("echo", Echo);
  PICOS_CO_RETURN_IF_ERROR(picos::RegisterTask("echo", echo));
  picos::TaskRef sink = picos::ThisScheduler().SpawnNamed("sink", Sink);
  PICOS_CO_RETURN_IF_ERROR(picos::RegisterTask("sink", sink));
  std::printf("listening %s\n", (*node)->uris()[0].c_str());
  std::fflush(stdout);
  absl::StatusOr<picos::Value> answered = co_await echo.Join(give_up - absl::Now());
  (void)sink.Terminate();
  if (!answered.ok()) {
    (void)echo.Terminate();
    co_return answered.status();
  }
  std::printf("answered %lld\n", static_cast<long long>(answered->as_int()));
  std::fflush(stdout);
  // Until the peers have gone: the replies to their joins are still on
  // their way out.
  while (!(*node)->peers().empty() && absl::Now() < give_up) {
    absl::Status slept = co_await picos::Sleep(absl::Milliseconds(5));
    if (!slept.ok()) break;
  }
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return picos::RunMain("remote_peer_server", Serve);
}
