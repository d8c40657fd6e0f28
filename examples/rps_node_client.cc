// pycos's rps_node_client.py in C++: sends a program file (--script) to the
// peer given with --peer (core/remote/files.h SendFile), locates the service
// "rps_node" there (rps_node_server), asks it to run the file with --arg
// arguments, answers the service task's challenge with
// HMAC-SHA512(phrase, nonce) (the phrase from --phrase_file or
// $RPS_NODE_PHRASE), joins the task and prints the program's exit status,
// stdout and stderr. Exits 0 when the program ran (whatever its exit code),
// non-zero when it could not (a wrong phrase: PERMISSION_DENIED).
//
//   RPS_NODE_PHRASE=... PICOS_REMOTE_SECRET=... rps_node_client
//       --peer=tcp://10.0.0.2:9705 --script=./node_update.sh --arg=1
#include <openssl/hmac.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/kernel/naming.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/files.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "core/remote/service.h"
#include "transports/default_transports.h"

ABSL_FLAG(std::string, script, "", "the program file to send and run (required)");
ABSL_FLAG(std::vector<std::string>, arg, {}, "its arguments, comma-separated");
ABSL_FLAG(std::string, phrase_file, "", "the file holding the shared phrase (first line); else $RPS_NODE_PHRASE");
ABSL_FLAG(std::string, run_name, "",
          "the name to ask the server to run; default: the script's (another shows the server's refusals)");
ABSL_FLAG(absl::Duration, wait, absl::Seconds(60), "longest wait for the challenge, and for the result");

namespace {

constexpr size_t kMaxNonce = 1024;

std::string Answer(const std::string& phrase, const std::string& nonce) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha512(), phrase.data(), phrase.size(), reinterpret_cast<const uint8_t*>(nonce.data()), nonce.size(),
       mac, &n);
  return std::string(reinterpret_cast<const char*>(mac), n);
}

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

picos::Task<absl::Status> Main(std::string script, std::string run_name, std::vector<std::string> args,
                               std::string phrase, absl::Duration wait) {
  const picos::TransportRegistry& transports = picos::transports::DefaultTransports();
  picos::remote::NodeFlagDefaults defaults;
  defaults.name = "rps_node_client";
  PICOS_CO_ASSIGN_OR_RETURN(picos::remote::NodeConfig config,
                            picos::remote::NodeConfigFromFlags(transports, defaults));
  if (config.peers.empty()) config.peers.push_back("tcp://127.0.0.1:9705");
  const std::string peer = config.peers[0];
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::remote::Node::Start(transports, std::move(config.options)));
  PICOS_CO_RETURN_IF_ERROR(co_await picos::remote::ConnectPeers(*node, config.peers));
  picos::remote::SendFileOptions so;
  so.overwrite = true;
  PICOS_CO_RETURN_IF_ERROR(co_await picos::remote::SendFile(picos::Location::Peer(peer), script, so));
  std::printf("client: sent %s to %s\n", script.c_str(), peer.c_str());
  PICOS_CO_ASSIGN_OR_RETURN(
      picos::remote::Service service,
      co_await picos::remote::Service::Locate("rps_node", picos::Location::Peer(peer), absl::Seconds(10)));
  picos::Value::ListType arg_list;
  for (const std::string& a : args) arg_list.push_back(picos::Value(a));
  picos::Value req = picos::Value::Map(
      {{"client", picos::Self()}, {"file", run_name}, {"args", picos::Value(std::move(arg_list))}});
  absl::StatusOr<picos::TaskRef> run = co_await service.Run(std::move(req));
  if (!run.ok()) {
    std::printf("client: %s was refused: %s\n", run_name.c_str(), run.status().ToString().c_str());
    co_return run.status();
  }
  picos::TaskRef task = *run;
  // The challenge: a nonce from the task just started (messages are
  // input: checked before use).
  PICOS_CO_ASSIGN_OR_RETURN(picos::Value challenge, co_await picos::Receive(wait));
  const picos::Value* nonce = challenge.Find("challenge");
  if (nonce == nullptr || !nonce->is_bytes() || nonce->as_string().empty() || nonce->as_string().size() > kMaxNonce) {
    (void)task.Terminate();
    co_return absl::InvalidArgumentError(absl::StrCat("not a challenge: ", challenge.DebugString()));
  }
  PICOS_CO_RETURN_IF_ERROR(
      task.Send(picos::Value::Map({{"answer", picos::Value::Bytes(Answer(phrase, nonce->as_string()))}})));
  absl::StatusOr<picos::Value> result = co_await task.Join(wait);
  if (!result.ok()) {
    std::printf("client: %s was not run: %s\n", run_name.c_str(), result.status().ToString().c_str());
    co_return result.status();
  }
  std::string out, err;
  int64_t code = 0, signal = 0;
  PICOS_CO_RETURN_IF_ERROR(picos::MessageReader(*result)
                               .Get("stdout", &out)
                               .Get("stderr", &err)
                               .Get("code", &code)
                               .Get("signal", &signal)
                               .status());
  std::printf("client: %s exit code %lld, signal %lld\n", run_name.c_str(), static_cast<long long>(code),
              static_cast<long long>(signal));
  std::printf("client: stdout:\n%s", out.c_str());
  if (!out.empty() && out.back() != '\n') std::printf("\n");
  std::printf("client: stderr:\n%s", err.c_str());
  if (!err.empty() && err.back() != '\n') std::printf("\n");
  std::printf("done\n");
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Sends a program to a peer and runs it there with the rps_node service (pycos rps_node_client.py).");
  picos::remote::ParseCommandLine(argc, argv);
  std::string script = absl::GetFlag(FLAGS_script);
  if (script.empty()) {
    std::fprintf(stderr, "rps_node_client: --script: the program file to send is required\n");
    return 2;
  }
  absl::StatusOr<std::string> phrase = picos::remote::LoadSecret(absl::GetFlag(FLAGS_phrase_file), "RPS_NODE_PHRASE");
  if (!phrase.ok()) {
    std::fprintf(stderr, "rps_node_client: the phrase (--phrase_file or $RPS_NODE_PHRASE): %s\n",
                 phrase.status().ToString().c_str());
    return 2;
  }
  absl::Duration wait = absl::GetFlag(FLAGS_wait);
  if (wait <= absl::ZeroDuration()) {
    std::fprintf(stderr, "rps_node_client: --wait must be positive\n");
    return 2;
  }
  std::string run_name = absl::GetFlag(FLAGS_run_name);
  if (run_name.empty()) run_name = BaseName(script);
  return picos::RunMain("rps_node_client", Main, std::move(script), std::move(run_name), absl::GetFlag(FLAGS_arg),
                        *std::move(phrase), wait);
}
