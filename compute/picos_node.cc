// picos-node: the compute node daemon (dispycosnode), one per machine, and
// in worker mode (--worker_library) one of its worker processes.
//
//   picos-node --cpus=2 --listen=tcp://10.0.0.2:9706 --secret_file=secret
//       --dest_path=/var/lib/picos-node
//
// The node is a picos peer (core/remote/node_flags.h: --listen, --peer,
// --secret_file or $PICOS_REMOTE_SECRET, --node_name) that accepts files into
// --dest_path (core/remote/files.h: the client ships its computation library
// there with SendFile, into a folder named after the computation) and serves
// the remote service kNodeService (core/remote/service.h):
//
//   {"op": "start", "computation": <id>, "library": <file name>,
//    "sha256": <64 hex digits>}
//     checks the shipped file (a regular file under dest_path/<id>, ELF, its
//     SHA-256 the one given), starts --cpus worker processes (this binary,
//     with --worker_library), each a peer listening on a port of the node's
//     host (tcp) or an abstract unix socket, and answers
//     {"workers": [<uri>, ...]} once each has said it listens. A refused
//     start removes dest_path/<id>.
//   {"op": "close", "computation": <id>}
//     ends its workers (SIGTERM) and removes dest_path/<id>.
//
// A worker dlopens the library (compute/export.h) and serves kWorkerService:
// {"fn": <name>, "arg": <bytes>} runs that function and gives its result
// bytes; a name the library does not register is refused (kNotFound, with
// the names it does register). The function runs on a thread of the worker
// other than its network's, so a long job neither stops heartbeats nor
// messages. The node prints one line on stdout per
// worker event, for operators and tests:
//   listening <uri>
//   worker started <id> <index> <pid> <uri>
//   worker lost <id> <index> <pid> <how it ended>     (it died: seen at once,
//                                                       it is the node's child)
//   worker closed <id> <index> <pid>
// A worker ends with its node (PR_SET_PDEATHSIG), so a killed node leaves
// no orphan worker.
//
// Everything in a request is network input, checked: the id (1..64 of
// [A-Za-z0-9_-]), the file name (no '/', not "." or ".."), the digest (64
// hex digits); refusals are errors to the client and a log line here.
#include <dlfcn.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "compute/export.h"
#include "compute/protocol.h"
#include "core/io/process.h"
#include "core/io/thread_pool.h"
#include "core/kernel/log.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/files.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "core/remote/service.h"
#include "metrics/http_server.h"
#include "metrics/metrics.h"
#include "metrics/runtime_metrics.h"
#include "openssl/sha.h"
#include "transports/default_transports.h"

ABSL_FLAG(int, cpus, 0, "worker processes per computation: N > 0, 0 for every CPU, -N to leave N unused");
ABSL_FLAG(std::string, dest_path, "", "the folder computations' files land in (required; must exist)");
ABSL_FLAG(int64_t, max_file_size, int64_t{256} << 20, "largest file a client may ship, in bytes");
ABSL_FLAG(std::string, worker_library, "", "(internal) worker mode: the computation library to serve");
ABSL_FLAG(int, worker_parent, 0, "(internal) worker mode: the node's pid");
ABSL_FLAG(std::string, metrics_listen, "",
          "serve Prometheus metrics at /metrics on this URI (tcp://127.0.0.1:9464; loopback unless "
          "told otherwise); empty: off");
ABSL_FLAG(std::string, metrics_token_file, "",
          "file whose first line is the bearer token /metrics then requires");

namespace picos::compute {
namespace {

constexpr absl::Duration kWorkerStartTimeout = absl::Seconds(30);

struct Worker {
  std::shared_ptr<Process> process;
  int index = 0;
  bool closing = false;
};

// The node's state; one scheduler thread, no locks.
struct NodeState {
  std::string secret;
  std::string self;       // this program, to start workers with
  std::string dest_path;  // realpath
  std::string worker_listen_host;  // "" for unix sockets
  int cpus = 1;
  uint64_t max_file_size = 0;
  absl::flat_hash_map<std::string, std::vector<std::shared_ptr<Worker>>> computations;
};
NodeState* g_node = nullptr;

bool ValidId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  }
  return true;
}

absl::StatusOr<std::string> FileSha256(const std::string& path, uint64_t max_size) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  SHA256_CTX ctx;
  SHA256_Init(&ctx);
  std::vector<char> buf(1 << 16);
  uint64_t total = 0;
  while (in) {
    in.read(buf.data(), buf.size());
    const std::streamsize got = in.gcount();
    if (got <= 0) break;
    total += static_cast<uint64_t>(got);
    if (total > max_size) return absl::InvalidArgumentError("library larger than --max_file_size");
    SHA256_Update(&ctx, buf.data(), static_cast<size_t>(got));
  }
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256_Final(digest, &ctx);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), SHA256_DIGEST_LENGTH));
}

Task<> WatchWorker(std::shared_ptr<Worker> w, std::string id) {
  absl::StatusOr<ExitStatus> st = co_await w->process->Wait();
  const std::string how = st.ok() ? st->ToString() : st.status().ToString();
  if (w->closing) {
    std::printf("worker closed %s %d %d\n", id.c_str(), w->index, w->process->pid());
  } else {
    std::printf("worker lost %s %d %d %s\n", id.c_str(), w->index, w->process->pid(), how.c_str());
    PICOS_LOG(warn, "worker {} of computation {} (pid {}) lost: {}", w->index, id, w->process->pid(), how);
  }
  std::fflush(stdout);
}

void CloseWorkers(std::vector<std::shared_ptr<Worker>>& workers) {
  for (auto& w : workers) {
    w->closing = true;
    if (!w->process->exited()) (void)w->process->Kill(SIGTERM);
  }
}

Task<absl::StatusOr<Value>> Start(std::string id, std::string library, std::string sha256) {
  NodeState& n = *g_node;
  if (n.computations.contains(id)) co_return absl::AlreadyExistsError(absl::StrCat("computation ", id, " runs already"));
  const std::string path = absl::StrCat(n.dest_path, "/", id, "/", library);
  struct stat sb;
  if (lstat(path.c_str(), &sb) != 0 || !S_ISREG(sb.st_mode)) {
    co_return absl::NotFoundError(absl::StrCat("no library ", library, " shipped for computation ", id));
  }
  PICOS_CO_ASSIGN_OR_RETURN(std::string digest, FileSha256(path, n.max_file_size));
  if (digest != absl::AsciiStrToLower(sha256)) {
    co_return absl::DataLossError(absl::StrCat("library ", library, ": SHA-256 mismatch (got ", digest, ")"));
  }
  {
    std::ifstream in(path, std::ios::binary);
    char magic[4] = {};
    in.read(magic, 4);
    if (in.gcount() != 4 || std::string(magic, 4) != "\x7f" "ELF") {
      co_return absl::InvalidArgumentError(absl::StrCat("library ", library, " is not an ELF file"));
    }
  }
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, "PICOS_REMOTE_")) env.emplace_back(*e);
  }
  env.push_back(absl::StrCat(remote::kSecretEnv, "=", n.secret));
  std::vector<std::shared_ptr<Worker>> workers;
  Value::ListType uris;
  absl::Status failed;
  for (int i = 0; i < n.cpus && failed.ok(); ++i) {
    ProcessOptions p;
    p.program = n.self;
    const std::string listen =
        n.worker_listen_host.empty()
            ? absl::StrCat("unix://@picos-worker-", getpid(), "-", id, "-", i)
            : absl::StrCat("tcp://", n.worker_listen_host, ":0");
    p.args = {absl::StrCat("--worker_library=", path), absl::StrCat("--worker_parent=", getpid()),
              absl::StrCat("--listen=", listen), "--peer=", absl::StrCat("--node_name=worker-", id, "-", i)};
    p.env = env;
    p.stdin_mode = StdioMode::kNull;
    p.stderr_mode = StdioMode::kInherit;
    absl::StatusOr<std::unique_ptr<Process>> proc = Process::Spawn(std::move(p));
    if (!proc.ok()) {
      failed = proc.status();
      break;
    }
    auto w = std::make_shared<Worker>();
    w->process = std::shared_ptr<Process>(std::move(*proc));
    w->index = i;
    workers.push_back(w);
    absl::StatusOr<std::string> line = co_await w->process->out().ReadLine(4096, kWorkerStartTimeout);
    absl::string_view l = line.ok() ? absl::string_view(*line) : absl::string_view();
    if (!line.ok() || !absl::ConsumePrefix(&l, "listening ")) {
      failed = absl::InternalError(absl::StrCat("worker ", i, " did not start: ",
                                                line.ok() ? *line : line.status().ToString()));
      break;
    }
    const std::string uri(absl::StripTrailingAsciiWhitespace(l));
    uris.emplace_back(uri);
    std::printf("worker started %s %d %d %s\n", id.c_str(), i, w->process->pid(), uri.c_str());
    std::fflush(stdout);
  }
  for (auto& w : workers) ThisScheduler().Spawn(WatchWorker, w, id);
  if (!failed.ok()) {
    CloseWorkers(workers);
    PICOS_LOG(warn, "computation {}: {}", id, failed.ToString());
    co_return failed;
  }
  n.computations[id] = std::move(workers);
  Value::ListType list(std::move(uris));
  co_return Value::Map({{"workers", Value(std::move(list))}});
}

absl::Status Close(const std::string& id) {
  NodeState& n = *g_node;
  auto it = n.computations.find(id);
  if (it == n.computations.end()) return absl::NotFoundError(absl::StrCat("no computation ", id));
  CloseWorkers(it->second);
  n.computations.erase(it);
  std::error_code ec;
  std::filesystem::remove_all(std::filesystem::path(n.dest_path) / id, ec);
  if (ec) return absl::InternalError(absl::StrCat("removing the files of ", id, ": ", ec.message()));
  return absl::OkStatus();
}

Task<absl::StatusOr<Value>> NodeRequest(Value arg) {
  std::string op, id;
  absl::Status read = MessageReader(arg).Get("op", &op).Get("computation", &id).status();
  if (!read.ok() || !ValidId(id)) {
    PICOS_LOG_LIMITED(warn, "compute node: malformed request: {}", read.ToString());
    co_return absl::InvalidArgumentError("malformed request: needs op and computation (1..64 of [A-Za-z0-9_-])");
  }
  if (op == "close") {
    absl::Status s = Close(id);
    if (!s.ok()) co_return s;
    co_return Value(true);
  }
  if (op != "start") co_return absl::InvalidArgumentError(absl::StrCat("unknown op ", op.substr(0, 32)));
  std::string library, sha256;
  read = MessageReader(arg).Get("library", &library).Get("sha256", &sha256).status();
  if (!read.ok() || library.empty() || library.size() > 255 || library == "." || library == ".." ||
      absl::StrContains(library, '/') || absl::StrContains(library, '\0') || sha256.size() != 64) {
    PICOS_LOG_LIMITED(warn, "compute node: malformed start request for {}", id);
    co_return absl::InvalidArgumentError("malformed start: needs library (a file name) and sha256 (64 hex digits)");
  }
  absl::StatusOr<Value> r = co_await Start(id, library, sha256);
  if (!r.ok()) {
    PICOS_LOG(warn, "compute node: start of {} refused: {}", id, r.status().ToString());
    // What was shipped for a computation that did not start goes (never the
    // files of one that runs: a second start of it is refused above).
    if (!g_node->computations.contains(id)) {
      std::error_code ec;
      std::filesystem::remove_all(std::filesystem::path(g_node->dest_path) / id, ec);
    }
  }
  co_return r;
}

// The node's flags, validated before anything starts (a bad value is a
// one-line error and exit status 2).
struct NodeSettings {
  int cpus = 1;
  std::string dest_path;
  uint64_t max_file_size = 0;
  remote::NodeConfig config;
  bool metrics_on = false;  // --metrics_listen
  metrics::MetricsServerOptions metrics;
};

absl::StatusOr<NodeSettings> NodeSettingsFromFlags() {
  NodeSettings n;
  const int cpus = absl::GetFlag(FLAGS_cpus);
  const int have = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (cpus > 256 || (cpus < 0 && have + cpus < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--cpus=", cpus, ": 1..256, 0 for every CPU (", have, "), or -N leaving at least one"));
  }
  n.cpus = cpus > 0 ? cpus : have + cpus;
  std::error_code ec;
  const std::string dest = absl::GetFlag(FLAGS_dest_path);
  if (dest.empty() || !std::filesystem::is_directory(dest, ec)) {
    return absl::InvalidArgumentError(absl::StrCat("--dest_path=", dest, ": not a directory"));
  }
  n.dest_path = std::filesystem::canonical(dest, ec).string();
  if (ec) return absl::InvalidArgumentError(absl::StrCat("--dest_path=", dest, ": ", ec.message()));
  const int64_t max_file = absl::GetFlag(FLAGS_max_file_size);
  if (max_file <= 0) return absl::InvalidArgumentError(absl::StrCat("--max_file_size=", max_file, ": must be positive"));
  n.max_file_size = static_cast<uint64_t>(max_file);
  remote::NodeFlagDefaults defaults;
  defaults.name = "picos-node";
  defaults.listen.push_back("tcp://127.0.0.1:9706");
  PICOS_ASSIGN_OR_RETURN(n.config, remote::NodeConfigFromFlags(transports::DefaultTransports(), defaults));
  n.metrics.listen = absl::GetFlag(FLAGS_metrics_listen);
  n.metrics_on = !n.metrics.listen.empty();
  const std::string token_file = absl::GetFlag(FLAGS_metrics_token_file);
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    if (!in || !std::getline(in, n.metrics.bearer_token)) {
      return absl::InvalidArgumentError(absl::StrCat("--metrics_token_file=", token_file, ": cannot read it"));
    }
    absl::Status token = metrics::ValidateBearerToken(n.metrics.bearer_token);
    if (!token.ok() || n.metrics.bearer_token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--metrics_token_file=", token_file, ": ",
                                                     token.ok() ? "empty" : token.message()));
    }
  }
  return n;
}

Task<absl::Status> NodeMain(NodeSettings settings) {
  const TransportRegistry& t = transports::DefaultTransports();
  NodeState n;
  n.cpus = settings.cpus;
  n.dest_path = settings.dest_path;
  n.max_file_size = settings.max_file_size;
  std::error_code ec;
  n.self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  if (ec) co_return absl::InternalError(absl::StrCat("/proc/self/exe: ", ec.message()));
  remote::NodeConfig config = std::move(settings.config);
  n.secret = config.options.secret;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<remote::Node> node,
                            co_await remote::Node::Start(t, std::move(config.options)));
  absl::string_view first = node->uris()[0];
  if (absl::ConsumePrefix(&first, "tcp://")) {
    n.worker_listen_host = std::string(first.substr(0, first.rfind(':')));
  }
  g_node = &n;
  remote::FileReceiverOptions ro;
  ro.dir = n.dest_path;
  ro.max_file_size = n.max_file_size;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<remote::FileReceiver> rx, remote::FileReceiver::Enable(ro));
  PICOS_CO_ASSIGN_OR_RETURN(remote::RegisteredService svc, remote::RegisterService(kNodeService, NodeRequest));
  std::printf("listening %s\n", node->uris()[0].c_str());
  std::fflush(stdout);
  PICOS_CO_RETURN_IF_ERROR(co_await remote::ConnectPeers(*node, config.peers));
  // --metrics_listen: the scheduler's and the node's figures at /metrics.
  metrics::Registry metrics_registry;
  std::unique_ptr<metrics::SchedulerMetrics> scheduler_metrics;
  std::unique_ptr<metrics::NodeMetrics> node_metrics;
  std::unique_ptr<metrics::MetricsServer> metrics_server;
  if (settings.metrics_on) {
    PICOS_CO_ASSIGN_OR_RETURN(scheduler_metrics,
                              metrics::SchedulerMetrics::Register(metrics_registry, ThisScheduler()));
    PICOS_CO_ASSIGN_OR_RETURN(node_metrics, metrics::NodeMetrics::Register(metrics_registry, *node));
    PICOS_CO_ASSIGN_OR_RETURN(metrics_server,
                              co_await metrics::MetricsServer::Start(t, metrics_registry, settings.metrics));
    std::printf("metrics %s\n", metrics_server->address().c_str());
    std::fflush(stdout);
  }
  // Serves until killed (SIGTERM); the workers end with it (PR_SET_PDEATHSIG).
  for (;;) {
    absl::StatusOr<Value> msg = co_await Receive();
    if (!msg.ok()) break;
  }
  for (auto& [id, workers] : n.computations) CloseWorkers(workers);
  co_return absl::OkStatus();
}

// The worker's functions, from its library.
absl::flat_hash_map<std::string, PicosComputeFn>* g_functions = nullptr;
// Jobs run on a thread of their own, never on the scheduler's: a job that
// computes for minutes does not stop its worker answering heartbeats (it
// would look dead to its client) nor receiving messages.
ThreadPool* g_job_thread = nullptr;
std::string* g_function_names = nullptr;

void AppendTo(void* ctx, const char* data, size_t n) { static_cast<std::string*>(ctx)->append(data, n); }

absl::Status AdmitJob(const Value& arg) {
  std::string fn, bytes;
  absl::Status read = MessageReader(arg).Get("fn", &fn).Get("arg", &bytes).status();
  if (!read.ok()) return absl::InvalidArgumentError(absl::StrCat("malformed job: ", read.message()));
  if (!g_functions->contains(fn)) {
    PICOS_LOG_LIMITED(warn, "worker: job for unknown function {}", fn.substr(0, 64));
    return absl::NotFoundError(absl::StrCat("no function '", fn.substr(0, 64),
                                            "' in the computation library (it registers: ", *g_function_names, ")"));
  }
  return absl::OkStatus();
}

Task<absl::StatusOr<Value>> RunJob(Value arg) {
  std::string fn, bytes;
  PICOS_CO_RETURN_IF_ERROR(MessageReader(arg).Get("fn", &fn).Get("arg", &bytes).status());
  auto it = g_functions->find(fn);
  if (it == g_functions->end()) co_return absl::NotFoundError(absl::StrCat("no function ", fn));
  PicosComputeFn call = it->second;
  auto job = [call, fn, bytes = std::move(bytes)]() -> absl::StatusOr<std::string> {
    std::string out;
    const int rc = call(bytes.data(), bytes.size(), &out, &AppendTo);
    if (rc != 0) return absl::AbortedError(absl::StrCat(fn, ": ", out));
    return out;
  };
  absl::StatusOr<std::string> out = co_await g_job_thread->Run(job);
  if (!out.ok()) co_return out.status();
  co_return Value::Bytes(*std::move(out));
}

Task<absl::Status> WorkerMain() {
  // Ends with its node, whatever kills the node.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != absl::GetFlag(FLAGS_worker_parent)) co_return absl::AbortedError("the node is gone");
  const std::string library = absl::GetFlag(FLAGS_worker_library);
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) co_return absl::InvalidArgumentError(absl::StrCat("dlopen ", library, ": ", dlerror()));
  auto table_fn = reinterpret_cast<PicosComputeTableFn>(dlsym(handle, kComputeTableSymbol));
  if (table_fn == nullptr) {
    co_return absl::InvalidArgumentError(absl::StrCat(library, " has no ", kComputeTableSymbol,
                                                      ": not built with picos_computation?"));
  }
  size_t count = 0;
  const PicosComputeEntry* table = table_fn(&count);
  absl::flat_hash_map<std::string, PicosComputeFn> functions;
  std::vector<std::string> names;
  for (size_t i = 0; i < count && i < kMaxComputeFunctions; ++i) {
    if (table[i].name == nullptr || table[i].fn == nullptr) continue;
    functions.emplace(table[i].name, table[i].fn);
    names.emplace_back(table[i].name);
  }
  std::string joined = absl::StrJoin(names, ", ");
  g_functions = &functions;
  g_function_names = &joined;
  ThreadPool::Options po;
  po.threads = 1;
  ThreadPool job_thread(po);
  g_job_thread = &job_thread;
  const TransportRegistry& t = transports::DefaultTransports();
  remote::NodeFlagDefaults defaults;
  defaults.name = "picos-worker";
  PICOS_CO_ASSIGN_OR_RETURN(remote::NodeConfig config, remote::NodeConfigFromFlags(t, defaults));
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<remote::Node> node,
                            co_await remote::Node::Start(t, std::move(config.options)));
  remote::ServiceOptions so;
  so.admit = AdmitJob;
  PICOS_CO_ASSIGN_OR_RETURN(remote::RegisteredService svc, remote::RegisterService(kWorkerService, RunJob, so));
  std::printf("listening %s\n", node->uris()[0].c_str());
  std::fflush(stdout);
  for (;;) {
    absl::StatusOr<Value> msg = co_await Receive();
    if (!msg.ok()) break;
  }
  co_return absl::OkStatus();
}

}  // namespace
}  // namespace picos::compute

int main(int argc, char** argv) {
  picos::remote::ParseCommandLine(argc, argv);
  if (!absl::GetFlag(FLAGS_worker_library).empty()) {
    return picos::RunMain("picos-node worker", picos::compute::WorkerMain);
  }
  absl::StatusOr<picos::compute::NodeSettings> settings = picos::compute::NodeSettingsFromFlags();
  if (!settings.ok()) {
    std::fprintf(stderr, "picos-node: %s\n", std::string(settings.status().message()).c_str());
    return 2;
  }
  return picos::RunMain("picos-node", picos::compute::NodeMain, *std::move(settings));
}
