// pycos's rps_node_server.py in C++: the remote service "rps_node"
// (core/remote/service.h) runs a program that a client uploaded to this
// peer (core/remote/files.h), after a challenge-response. Each task it starts
// for a client:
//   1. sends the client a random nonce: {"challenge": <32 bytes>};
//   2. waits (--answer_timeout) for {"answer": HMAC-SHA512(phrase, nonce)},
//      the phrase being one both sides were given (--phrase_file or
//      $RPS_NODE_PHRASE); a wrong or late answer ends the task with
//      kPermissionDenied (kDeadlineExceeded) and runs nothing;
//   3. runs the uploaded file as a child process (core/io/process.h) in the
//      upload directory, with the request's arguments, no shell, a minimal
//      environment, stdin empty, stdout and stderr each captured up to
//      --max_output bytes (at most 4 MiB: both fit in one reply, under the
//      node's 16 MiB frame) and the whole run bounded by --run_timeout (the
//      child is killed beyond either, and the task fails with
//      kResourceExhausted or kDeadlineExceeded);
//   4. returns {"stdout", "stderr", "code", "signal"}, what the client joins.
// A request names the file by its name alone: anything that is not a
// regular file (a symlink included) directly in the upload directory is
// refused before any task starts. Ends after --runs tasks have ended (the
// program run, or the challenge failed; a request refused before a task
// started does not count) and its clients have left.
//
//   RPS_NODE_PHRASE=... PICOS_REMOTE_SECRET=... rps_node_server
//       --listen=tcp://0.0.0.0:9705 --dir=/var/lib/rps_node
//
// The node flags (--listen, --secret_file or $PICOS_REMOTE_SECRET, ...) are
// core/remote/node_flags.h's.
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/cli/flags.h"
#include "core/io/process.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/files.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "core/remote/service.h"
#include "transports/default_transports.h"

ABSL_FLAG(std::string, dir, "", "the directory uploaded files land in and are run from (required; must exist)");
ABSL_FLAG(std::string, phrase_file, "", "the file holding the shared phrase (first line); else $RPS_NODE_PHRASE");
ABSL_FLAG(int, runs, 1, "tasks to serve (program run, or challenge failed) before ending");
ABSL_FLAG(absl::Duration, run_timeout, absl::Seconds(30), "longest run of an uploaded program");
ABSL_FLAG(absl::Duration, answer_timeout, absl::Seconds(10), "longest wait for the client's answer");
ABSL_FLAG(int, max_output, 64 * 1024, "most bytes of stdout (and of stderr) returned, 1024 to 4194304");

namespace {

constexpr size_t kNonceSize = 32;
constexpr size_t kMaxArgs = 16;
constexpr size_t kMaxArgSize = 1024;
constexpr size_t kMaxFileName = 255;

struct Config {
  std::string dir;  // as FileReceiver resolved it
  std::string phrase;
  absl::Duration run_timeout, answer_timeout;
  size_t max_output = 0;
  picos::TaskRef main;  // told when a task ends
};

std::string Answer(const std::string& phrase, const std::string& nonce) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha512(), phrase.data(), phrase.size(), reinterpret_cast<const uint8_t*>(nonce.data()), nonce.size(),
       mac, &n);
  return std::string(reinterpret_cast<const char*>(mac), n);
}

// Tells Main that a task ended, however it ended.
class EndedGuard {
 public:
  explicit EndedGuard(picos::TaskRef main) : main_(std::move(main)) {}
  EndedGuard(const EndedGuard&) = delete;
  EndedGuard& operator=(const EndedGuard&) = delete;
  ~EndedGuard() { (void)main_.Send(picos::Value("ended")); }

 private:
  picos::TaskRef main_;
};

// The request: {"client": task, "file": name, "args": [string, ...]}. It
// came from the network: every field is checked before a task starts, and
// the file must be a regular file directly in the upload directory.
absl::Status Admit(const Config& c, const picos::Value& req) {
  picos::TaskRef client;
  std::string file;
  PICOS_RETURN_IF_ERROR(picos::MessageReader(req).Get("client", &client).Get("file", &file).status());
  if (!client.valid()) return absl::InvalidArgumentError("a null client task");
  if (file.empty() || file.size() > kMaxFileName || file == "." || file == ".." || absl::StrContains(file, '/') ||
      absl::StrContains(file, '\0')) {
    return absl::InvalidArgumentError("\"file\" must be the name of an uploaded file, without a directory");
  }
  const picos::Value* args = req.Find("args");
  if (args != nullptr) {
    if (!args->is_list() || args->as_list().size() > kMaxArgs) {
      return absl::InvalidArgumentError(absl::StrCat("\"args\" must be a list of at most ", kMaxArgs, " strings"));
    }
    for (const picos::Value& a : args->as_list()) {
      if (!a.is_string() || a.as_string().size() > kMaxArgSize || absl::StrContains(a.as_string(), '\0')) {
        return absl::InvalidArgumentError(
            absl::StrCat("each of \"args\" must be a string of at most ", kMaxArgSize, " bytes"));
      }
    }
  }
  struct stat st;
  const std::string path = absl::StrCat(c.dir, "/", file);
  if (lstat(path.c_str(), &st) != 0) return absl::NotFoundError(absl::StrCat("no uploaded file ", file));
  if (!S_ISREG(st.st_mode)) return absl::PermissionDeniedError(absl::StrCat(file, " is not a regular file"));
  return absl::OkStatus();
}

// One task of the service (`req` passed Admit).
picos::Task<absl::StatusOr<picos::Value>> RunUploaded(std::shared_ptr<const Config> c, picos::Value req) {
  EndedGuard ended(c->main);
  picos::TaskRef client = req["client"].as_task();
  const std::string file = req["file"].as_string();
  std::string nonce(kNonceSize, '\0');
  if (RAND_bytes(reinterpret_cast<uint8_t*>(nonce.data()), nonce.size()) != 1) {
    co_return absl::InternalError("RAND_bytes failed: no nonce");
  }
  PICOS_CO_RETURN_IF_ERROR(client.Send(picos::Value::Map({{"challenge", picos::Value::Bytes(nonce)}})));
  absl::StatusOr<picos::Value> reply = co_await picos::Receive(c->answer_timeout);
  if (!reply.ok()) {
    std::printf("server: no answer to the challenge for %s: %s\n", file.c_str(), reply.status().ToString().c_str());
    std::fflush(stdout);
    co_return reply.status();
  }
  const picos::Value* answer = reply->Find("answer");
  const std::string expected = Answer(c->phrase, nonce);
  if (answer == nullptr || !answer->is_bytes() || answer->as_string().size() != expected.size() ||
      CRYPTO_memcmp(answer->as_string().data(), expected.data(), expected.size()) != 0) {
    std::printf("server: refused to run %s: wrong answer to the challenge\n", file.c_str());
    std::fflush(stdout);
    co_return absl::PermissionDeniedError("wrong answer to the challenge");
  }
  picos::ProcessOptions o;
  o.program = absl::StrCat(c->dir, "/", file);
  if (const picos::Value* args = req.Find("args"); args != nullptr) {
    for (const picos::Value& a : args->as_list()) o.args.push_back(a.as_string());
  }
  o.cwd = c->dir;
  o.env = std::vector<std::string>{"PATH=/usr/bin:/bin", "LANG=C"};
  // The buffers hold a little more than is kept, so that too much output
  // is seen as such rather than as a held-back child.
  o.read_buffer_limit = c->max_output + 1;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::Process> p, picos::Process::Spawn(std::move(o)));
  std::printf("server: running %s (pid %d) for %s\n", file.c_str(), p->pid(), client.DebugString().c_str());
  std::fflush(stdout);
  absl::StatusOr<picos::ProcessOutput> out = co_await p->Communicate("", c->max_output, c->run_timeout);
  if (!out.ok()) {
    // Too much output or too long: the child is killed with its Process.
    std::printf("server: %s failed: %s\n", file.c_str(), out.status().ToString().c_str());
    std::fflush(stdout);
    co_return out.status();
  }
  std::printf("server: %s ended: %s\n", file.c_str(), out->status.ToString().c_str());
  std::fflush(stdout);
  co_return picos::Value::Map({{"stdout", out->out},
                               {"stderr", out->err},
                               {"code", out->status.code},
                               {"signal", static_cast<int64_t>(out->status.signal)}});
}

picos::Task<absl::Status> Main(int runs, std::shared_ptr<Config> c) {
  const picos::TransportRegistry& transports = picos::transports::DefaultTransports();
  picos::remote::NodeFlagDefaults defaults;
  defaults.name = "rps_node_server";
  defaults.listen.push_back("tcp://127.0.0.1:9705");
  PICOS_CO_ASSIGN_OR_RETURN(picos::remote::NodeConfig config,
                            picos::remote::NodeConfigFromFlags(transports, defaults));
  c->main = picos::Self();
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::remote::Node::Start(transports, std::move(config.options)));
  PICOS_CO_RETURN_IF_ERROR(co_await picos::remote::ConnectPeers(*node, config.peers));
  picos::remote::FileReceiverOptions ro;
  ro.dir = c->dir;
  ro.max_file_size = uint64_t{16} << 20;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::FileReceiver> rx,
                            picos::remote::FileReceiver::Enable(std::move(ro)));
  c->dir = rx->dir();
  picos::remote::ServiceOptions options;
  std::shared_ptr<const Config> cc = c;
  options.admit = [cc](const picos::Value& req) {
    absl::Status ok = Admit(*cc, req);
    if (!ok.ok()) {
      std::printf("server: refused request: %s\n", ok.ToString().c_str());
      std::fflush(stdout);
    }
    return ok;
  };
  options.max_running = 16;  // each may run a process
  PICOS_CO_ASSIGN_OR_RETURN(
      picos::remote::RegisteredService service,
      picos::remote::RegisterService(
          "rps_node", [cc](picos::Value req) { return RunUploaded(cc, std::move(req)); }, std::move(options)));
  std::printf("server: listening on %s\n", node->uris()[0].c_str());
  std::fflush(stdout);
  for (int ended = 0; ended < runs;) {
    PICOS_CO_ASSIGN_OR_RETURN(picos::Value m, co_await picos::Receive());
    if (m == picos::Value("ended")) ++ended;
  }
  // The clients join their tasks' results, then leave.
  for (int i = 0; i < 2000 && !node->peers().empty(); ++i) {
    PICOS_CO_RETURN_IF_ERROR(co_await picos::Sleep(absl::Milliseconds(5)));
  }
  service.Unregister();
  std::printf("server: %d runs ended, %zu files received\n", runs, rx->files_received());
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Runs programs that clients upload, after a challenge-response (pycos rps_node_server.py).");
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_runs, 1, 10000) || !picos::FlagInRange(FLAGS_max_output, 1024, 4 << 20)) return 2;
  auto c = std::make_shared<Config>();
  c->dir = absl::GetFlag(FLAGS_dir);
  if (c->dir.empty()) {
    std::fprintf(stderr, "rps_node_server: --dir: the upload directory is required\n");
    return 2;
  }
  absl::StatusOr<std::string> phrase = picos::remote::LoadSecret(absl::GetFlag(FLAGS_phrase_file), "RPS_NODE_PHRASE");
  if (!phrase.ok()) {
    std::fprintf(stderr, "rps_node_server: the phrase (--phrase_file or $RPS_NODE_PHRASE): %s\n",
                 phrase.status().ToString().c_str());
    return 2;
  }
  c->phrase = *std::move(phrase);
  c->run_timeout = absl::GetFlag(FLAGS_run_timeout);
  c->answer_timeout = absl::GetFlag(FLAGS_answer_timeout);
  if (c->run_timeout <= absl::ZeroDuration() || c->answer_timeout <= absl::ZeroDuration()) {
    std::fprintf(stderr, "rps_node_server: --run_timeout and --answer_timeout must be positive\n");
    return 2;
  }
  c->max_output = static_cast<size_t>(absl::GetFlag(FLAGS_max_output));
  return picos::RunMain("rps_node_server", Main, absl::GetFlag(FLAGS_runs), c);
}
