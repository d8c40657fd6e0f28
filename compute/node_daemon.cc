// The node daemon of picos-node (node_daemon.h describes its flags and
// lifecycle; compute/picos_node.cc the requests it serves).
#include "compute/node_daemon.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "compute/daemon_config.h"
#include "compute/daemon_status.h"
#include "compute/host_stats.h"
#include "compute/protocol.h"
#include "compute/sign.h"
#include "core/io/process.h"
#include "core/kernel/log.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/files.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "core/remote/service.h"
#include "discovery/discovery.h"
#include "discovery/discovery_flags.h"
#include "metrics/http_server.h"
#include "metrics/metrics.h"
#include "metrics/runtime_metrics.h"
#include "transports/default_transports.h"

extern char** environ;

ABSL_FLAG(int, cpus, 0, "worker processes per computation: N > 0, 0 for every CPU, -N to leave N unused");
ABSL_FLAG(std::string, dest_path, "", "the folder computations' files land in (required; must exist)");
ABSL_FLAG(int64_t, max_file_size, int64_t{256} << 20, "largest file a client may ship, in bytes");
ABSL_FLAG(std::string, max_computation_bytes, "0",
          "most bytes one computation's folder may hold (0: no quota); beyond it a file is refused before it is written");
ABSL_FLAG(std::string, name, "", "the node's name (the same as --node_name)");
ABSL_FLAG(std::string, serve, "0", "serve N computations, then exit (0: forever)");
ABSL_FLAG(std::string, service_start, "", "HH:MM (local time): accept new computations from then");
ABSL_FLAG(std::string, service_stop, "", "HH:MM (local time): accept no new computation from then");
ABSL_FLAG(std::string, service_end, "", "HH:MM (local time): close every computation then, each day");
ABSL_FLAG(std::string, pulse_interval, "2",
          "seconds (or 200ms, 1m, ...) between the facts the node sends each client (node_health)");
ABSL_FLAG(std::string, min_pulse_interval, "1", "shortest pulse interval a client may ask, in seconds");
ABSL_FLAG(std::string, max_pulse_interval, "100", "longest pulse interval a client may ask, in seconds");
ABSL_FLAG(std::string, zombie_period, "60",
          "seconds after which a computation whose client is gone is closed (0: never)");
ABSL_FLAG(std::vector<std::string>, trusted_signer, {},
          "Ed25519 public key file (picos-sign keygen); repeatable: only libraries signed by one of them start");
ABSL_FLAG(bool, discover, false,
          "announce this node by multicast discovery (--discovery_group, --discovery_iface, --discovery_ttl) so "
          "that clients scheduling with discovery find it; --peer works either way");
ABSL_FLAG(bool, clean, false, "end the workers of a previous run named by its pid files, remove their folders");
ABSL_FLAG(std::string, log_level, "", "trace, debug, info, warn, error or off (default $PICOS_LOG_LEVEL, else info)");
ABSL_FLAG(bool, daemon, false, "never read stdin (no console)");
ABSL_FLAG(std::string, config, "", "read flags from FILE (name=value lines) before the command line's");
ABSL_FLAG(std::string, save_config, "", "write the flags to FILE (what --config reads) and exit");
ABSL_FLAG(std::string, metrics_listen, "",
          "serve Prometheus metrics at /metrics on this URI (tcp://127.0.0.1:9464; loopback unless "
          "told otherwise); empty: off");
ABSL_FLAG(std::string, metrics_token_file, "",
          "file whose first line is the bearer token /metrics then requires");
ABSL_FLAG(std::string, log_format, "text", "text, or json (one JSON object per line, for log collectors)");
ABSL_FLAG(bool, status, false,
          "ask the running node at --connect what it runs (computations, workers, health), print it, exit");
ABSL_FLAG(std::string, connect, "tcp://127.0.0.1:9706", "with --status: the node's URI");
ABSL_FLAG(bool, json, false, "with --status: print JSON instead of a table");
ABSL_FLAG(absl::Duration, status_timeout, absl::Seconds(10), "with --status: how long to wait (1s..1h)");

namespace picos::compute {
namespace {

constexpr absl::Duration kWorkerStartTimeout = absl::Seconds(30);
// How long closing workers get after SIGTERM before SIGKILL, when the node
// closes (a second SIGINT cuts it short).
constexpr absl::Duration kWorkerCloseGrace = absl::Seconds(30);
// Bounds on a console line (it is input; config files:
// compute/daemon_config.h).
constexpr size_t kMaxConsoleLine = 1024;
constexpr char kPidFilePrefix[] = ".picos-worker-";
constexpr char kPidFileSuffix[] = ".pid";

// Messages to the daemon's task (from its own tasks and threads only: its
// handle is never given to a peer).
constexpr char kSignalMessage[] = "picos.node.signal";
constexpr char kConsoleMessage[] = "picos.node.console";
constexpr char kClientGoneMessage[] = "picos.node.client_gone";
constexpr char kWakeMessage[] = "picos.node.wake";

// The flags --config and --save_config know: every daemon flag an operator
// sets (not the worker mode's, nor --config/--save_config themselves).
constexpr const char* kConfigKeys[] = {
    "cpus",          "dest_path",     "max_file_size",      "max_computation_bytes", "listen",
    "advertise",     "peer",          "secret_file",        "node_name",             "name",
    "serve",         "service_start", "service_stop",       "service_end",           "pulse_interval",
    "min_pulse_interval", "max_pulse_interval", "zombie_period", "trusted_signer",  "clean",
    "log_level",     "daemon",        "metrics_listen",     "metrics_token_file",
    "log_format",    "discover",      "discovery_group",    "discovery_iface",       "discovery_ttl",
};

// Where a flag's value came from when a config file set it ("FILE:LINE"),
// for errors found when the values are checked.
absl::flat_hash_map<std::string, std::string>& ConfigOrigins() {
  static auto* origins = new absl::flat_hash_map<std::string, std::string>();
  return *origins;
}

struct Worker {
  std::shared_ptr<Process> process;
  int index = 0;
  bool closing = false;
  std::string uri;  // once it said where it listens
};

struct Computation {
  std::vector<std::shared_ptr<Worker>> workers;
  // To start a worker again (restart_worker).
  std::string library_path;
  std::vector<std::string> env;
  // The start's "client" (null: none), what the client calls this node
  // ("" for the node's URI) and how often it gets pulses.
  TaskRef client;
  std::string alias;
  absl::Duration pulse_interval;
  // The tasks that join the client's handle and send it pulses, or null.
  TaskRef client_watch;
  TaskRef pulse_sender;
  absl::Time client_lost = absl::InfiniteFuture();
};

// The node's flags, validated before anything starts.
struct NodeSettings {
  int cpus = 1;
  std::string dest_path;
  uint64_t max_file_size = 0;
  uint64_t max_computation_bytes = 0;  // 0: none
  int serve = 0;                       // 0: forever
  int service_start = -1, service_stop = -1, service_end = -1;  // minutes of the day, -1 unset
  // Pulses: --pulse_interval, or what a start asks kept within [min, max].
  absl::Duration pulse = absl::Seconds(2);
  absl::Duration min_pulse = absl::Seconds(1), max_pulse = absl::Seconds(100);
  absl::Duration zombie_period = absl::Seconds(60);  // zero: never
  std::vector<std::string> trusted_keys;             // raw Ed25519 public keys
  std::vector<std::string> trusted_files;
  bool clean = false;
  bool console = false;
  remote::NodeConfig config;
  bool metrics_on = false;  // --metrics_listen
  metrics::MetricsServerOptions metrics;
  // --discover: announced by multicast (discovery/discovery_flags.h).
  bool discover = false;
  discovery::DiscoveryOptions discovery;
};

// The node's state; one scheduler thread, no locks.
struct NodeState {
  NodeSettings settings;
  std::string secret;
  std::string self;  // this program, to start workers with
  std::string worker_listen_host;  // "" for unix sockets
  TaskRef main;
  absl::flat_hash_map<std::string, Computation> computations;
  absl::flat_hash_set<std::string> starting;  // ids whose start is in progress
  std::vector<std::shared_ptr<Worker>> closing_workers;  // sent SIGTERM, maybe not exited yet
  int started = 0;  // computations started, for --serve
  bool closing = false;  // no new computation
  int last_service_end_day = -1;
  std::string uri;  // the node's own, as pulses name it
  uint64_t generation = 0;  // makes each worker's unix socket name unique
  std::unique_ptr<HostStatsReader> stats;        // for "info"
  std::unique_ptr<HostStatsReader> pulse_stats;  // for pulses (their own CPU interval)
  const remote::Node* node = nullptr;  // for "status"
  std::unique_ptr<HostStatsReader> metrics_stats;  // for /metrics (its own CPU interval)
  uint64_t worker_restarts = 0;                    // restart_worker requests served
  std::string name;                    // the node's name (--node_name)
  absl::Time start_time = absl::Now();
};
NodeState* g_node = nullptr;

bool ValidId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  }
  return true;
}

void Say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

// The local time of day in minutes, and the day of the year.
void LocalNow(int* minute, int* yday) {
  const time_t t = time(nullptr);
  struct tm tm;
  localtime_r(&t, &tm);
  *minute = tm.tm_hour * 60 + tm.tm_min;
  *yday = tm.tm_year * 400 + tm.tm_yday;
}

std::string Hhmm(int minutes) { return absl::StrFormat("%02d:%02d", minutes / 60, minutes % 60); }

bool InServiceHours(const NodeSettings& s) {
  if (s.service_start < 0 && s.service_stop < 0) return true;
  const int from = s.service_start < 0 ? 0 : s.service_start;
  const int to = s.service_stop < 0 ? 24 * 60 : s.service_stop;
  int now, day;
  LocalNow(&now, &day);
  return from <= to ? (now >= from && now < to) : (now >= from || now < to);
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

void CloseWorkers(std::vector<std::shared_ptr<Worker>>& workers, int signum = SIGTERM) {
  for (auto& w : workers) {
    w->closing = true;
    if (!w->process->exited()) (void)w->process->Kill(signum);
  }
}

// Joins the client's handle: it ends when the client's task ends or its
// peer is lost; the daemon's task is told (the zombie period starts).
Task<> WatchClient(std::string id, TaskRef client, TaskRef main) {
  absl::StatusOr<Value> r = co_await client.Join();
  const std::string why = r.ok() ? std::string("its task ended") : std::string(r.status().message());
  (void)main.Send(Value::Map({{kClientGoneMessage, id}, {"why", why.substr(0, 200)}}));
}

// Ends the computation `id` (its workers SIGTERMed, its folder removed).
absl::Status CloseComputation(const std::string& id, absl::string_view why) {
  NodeState& n = *g_node;
  auto it = n.computations.find(id);
  if (it == n.computations.end()) return absl::NotFoundError(absl::StrCat("no computation ", id));
  CloseWorkers(it->second.workers);
  if (it->second.client_watch.valid()) (void)it->second.client_watch.Terminate();
  if (it->second.pulse_sender.valid()) (void)it->second.pulse_sender.Terminate();
  std::erase_if(n.closing_workers, [](const std::shared_ptr<Worker>& w) { return w->process->exited(); });
  for (auto& w : it->second.workers) n.closing_workers.push_back(w);
  n.computations.erase(it);
  std::error_code ec;
  std::filesystem::remove_all(std::filesystem::path(n.settings.dest_path) / id, ec);
  Say(absl::StrCat("computation closed ", id, " ", why));
  (void)n.main.Send(Value::Map({{kWakeMessage, true}}));
  if (ec) return absl::InternalError(absl::StrCat("removing the files of ", id, ": ", ec.message()));
  return absl::OkStatus();
}

void CloseAll(absl::string_view why) {
  std::vector<std::string> ids;
  for (auto& [id, c] : g_node->computations) ids.push_back(id);
  for (const std::string& id : ids) (void)CloseComputation(id, why);
}

// Writes the worker's pid file (node_daemon.h, --clean).
void WritePidFile(const std::string& id, int index, int pid) {
  const std::string path =
      absl::StrCat(g_node->settings.dest_path, "/", id, "/", kPidFilePrefix, index, kPidFileSuffix);
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    PICOS_LOG(warn, "computation {}: cannot write {}: {}", id, path, strerror(errno));
    return;
  }
  const std::string text = absl::StrCat(pid, "\n");
  if (write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    PICOS_LOG(warn, "computation {}: cannot write {}: {}", id, path, strerror(errno));
  }
  close(fd);
}

// Checks the library's signature when the node requires one.
absl::Status CheckSignature(const std::string& path, const std::string& library, const std::string& digest) {
  const NodeSettings& s = g_node->settings;
  if (s.trusted_keys.empty()) return absl::OkStatus();
  const std::string sig_path = absl::StrCat(path, kSignatureSuffix);
  struct stat sb;
  if (lstat(sig_path.c_str(), &sb) != 0 || !S_ISREG(sb.st_mode)) {
    return absl::PermissionDeniedError(
        absl::StrCat("library ", library, " is not signed (", library, kSignatureSuffix,
                     " not shipped) and this node requires a trusted signer's signature"));
  }
  absl::StatusOr<std::string> sig = ReadSignatureFile(sig_path);
  if (!sig.ok()) {
    return absl::PermissionDeniedError(absl::StrCat("library ", library, ": malformed signature file"));
  }
  for (const std::string& key : s.trusted_keys) {
    if (VerifyDigest(key, digest, *sig)) return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      absl::StrCat("library ", library, ": its signature is not a trusted signer's"));
}

// Starts worker `index` of computation `id` (this binary in worker mode,
// with the computation's library and environment), without waiting for it
// to listen (AwaitListening): a computation's workers start side by side.
absl::StatusOr<std::shared_ptr<Worker>> LaunchWorker(const std::string& id, int index,
                                                     const std::string& library_path, std::vector<std::string> env) {
  NodeState& n = *g_node;
  ProcessOptions p;
  p.program = n.self;
  const std::string listen =
      n.worker_listen_host.empty()
          ? absl::StrCat("unix://@picos-worker-", getpid(), "-", id, "-", index, "-", ++n.generation)
          : absl::StrCat("tcp://", n.worker_listen_host, ":0");
  p.args = {absl::StrCat("--worker_library=", library_path), absl::StrCat("--worker_parent=", getpid()),
            absl::StrCat("--listen=", listen), "--peer=", absl::StrCat("--node_name=worker-", id, "-", index),
            absl::StrCat("--log_format=", absl::GetFlag(FLAGS_log_format))};
  p.env = std::move(env);
  // The computation's folder: a job opens its data files by relative name
  // (compute/export.h).
  p.cwd = std::filesystem::path(library_path).parent_path().string();
  p.stdin_mode = StdioMode::kNull;
  p.stderr_mode = StdioMode::kInherit;
  absl::StatusOr<std::unique_ptr<Process>> proc = Process::Spawn(std::move(p));
  if (!proc.ok()) return proc.status();
  auto w = std::make_shared<Worker>();
  w->process = std::shared_ptr<Process>(*std::move(proc));
  w->index = index;
  WritePidFile(id, index, w->process->pid());
  ThisScheduler().Spawn(WatchWorker, w, id);
  return w;
}

// Waits for the line of worker `w` (LaunchWorker) that says where it
// listens: its URI. kUnavailable if the daemon ended meanwhile (its state is
// gone: the worker ends with its Process object); on any other failure the
// caller ends the worker.
Task<absl::StatusOr<std::string>> AwaitListening(std::shared_ptr<Worker> w, std::string id) {
  absl::StatusOr<std::string> line = co_await w->process->out().ReadLine(4096, kWorkerStartTimeout);
  if (g_node == nullptr) co_return absl::UnavailableError("the node closed");
  absl::string_view l = line.ok() ? absl::string_view(*line) : absl::string_view();
  if (!line.ok() || !absl::ConsumePrefix(&l, "listening ")) {
    co_return absl::InternalError(
        absl::StrCat("worker ", w->index, " did not start: ", line.ok() ? *line : line.status().ToString()));
  }
  std::string uri(absl::StripTrailingAsciiWhitespace(l));
  w->uri = uri;
  std::printf("worker started %s %d %d %s\n", id.c_str(), w->index, w->process->pid(), uri.c_str());
  std::fflush(stdout);
  co_return uri;
}

// LaunchWorker, then AwaitListening. On failure the process, if started, is
// ended and in n.closing_workers.
struct StartedWorker {
  std::shared_ptr<Worker> worker;
  std::string uri;
};
Task<absl::StatusOr<StartedWorker>> StartWorker(std::string id, int index, std::string library_path,
                                                std::vector<std::string> env) {
  PICOS_CO_ASSIGN_OR_RETURN(std::shared_ptr<Worker> w, LaunchWorker(id, index, library_path, std::move(env)));
  absl::StatusOr<std::string> uri = co_await AwaitListening(w, id);
  if (g_node == nullptr) co_return absl::UnavailableError("the node closed");
  if (!uri.ok()) {
    std::vector<std::shared_ptr<Worker>> failed = {w};
    CloseWorkers(failed);
    g_node->closing_workers.push_back(w);
    co_return uri.status();
  }
  co_return StartedWorker{w, *std::move(uri)};
}

// Sends the client of computation `id` the host's facts every pulse
// interval while the node serves it (CloseComputation terminates it):
//   {"picos.compute": "pulse", "computation": <id>, "node": <uri>,
//    "facts": <HostFacts>}
Task<> PulseSender(std::string id) {
  for (;;) {
    if (g_node == nullptr) co_return;
    auto it = g_node->computations.find(id);
    if (it == g_node->computations.end()) co_return;
    absl::Status slept = co_await Sleep(it->second.pulse_interval);
    if (!slept.ok() || g_node == nullptr) co_return;
    it = g_node->computations.find(id);
    if (it == g_node->computations.end()) co_return;
    Value pulse = Value::Map({{"picos.compute", "pulse"},
                              {"computation", id},
                              {"node", it->second.alias.empty() ? g_node->uri : it->second.alias},
                              {"facts", g_node->pulse_stats->Read().ToValue()}});
    absl::Status sent = it->second.client.Send(std::move(pulse));
    if (!sent.ok()) PICOS_LOG_LIMITED(info, "compute node: pulse to the client of {}: {}", id, sent.ToString());
  }
}

// The pulse interval of a start that asks `asked_ms` (0: the node's own).
absl::Duration PulseIntervalFor(const NodeSettings& s, int64_t asked_ms) {
  if (asked_ms <= 0) return s.pulse;
  return std::clamp(absl::Milliseconds(asked_ms), s.min_pulse, s.max_pulse);
}

Task<absl::StatusOr<Value>> Start(std::string id, std::string library, std::string sha256, int cpus,
                                  TaskRef client, std::string alias, int64_t pulse_ms) {
  NodeState& n = *g_node;
  if (n.closing) co_return absl::UnavailableError("the node is closing");
  if (n.computations.contains(id) || n.starting.contains(id)) {
    co_return absl::AlreadyExistsError(absl::StrCat("computation ", id, " runs already"));
  }
  if (n.settings.serve > 0 && n.started >= n.settings.serve) {
    co_return absl::UnavailableError(
        absl::StrCat("this node serves no more computations (--serve=", n.settings.serve, ")"));
  }
  if (!InServiceHours(n.settings)) {
    co_return absl::UnavailableError(absl::StrCat(
        "outside this node's service hours (", Hhmm(std::max(n.settings.service_start, 0)), "-",
        Hhmm(n.settings.service_stop < 0 ? 24 * 60 : n.settings.service_stop), ")"));
  }
  const std::string path = absl::StrCat(n.settings.dest_path, "/", id, "/", library);
  struct stat sb;
  if (lstat(path.c_str(), &sb) != 0 || !S_ISREG(sb.st_mode)) {
    co_return absl::NotFoundError(absl::StrCat("no library ", library, " shipped for computation ", id));
  }
  PICOS_CO_ASSIGN_OR_RETURN(std::string digest, FileSha256(path, n.settings.max_file_size));
  if (absl::BytesToHexString(digest) != absl::AsciiStrToLower(sha256)) {
    co_return absl::DataLossError(absl::StrCat("library ", library, ": SHA-256 mismatch (got ",
                                               absl::BytesToHexString(digest), ")"));
  }
  {
    std::ifstream in(path, std::ios::binary);
    char magic[4] = {};
    in.read(magic, 4);
    if (in.gcount() != 4 || std::string(magic, 4) != "\x7f" "ELF") {
      co_return absl::InvalidArgumentError(absl::StrCat("library ", library, " is not an ELF file"));
    }
  }
  PICOS_CO_RETURN_IF_ERROR(CheckSignature(path, library, digest));
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, "PICOS_REMOTE_")) env.emplace_back(*e);
  }
  env.push_back(absl::StrCat(remote::kSecretEnv, "=", n.secret));
  n.starting.insert(id);
  ++n.started;
  const int count = cpus > 0 ? std::min(cpus, n.settings.cpus) : n.settings.cpus;
  std::vector<std::shared_ptr<Worker>> workers;
  Value::ListType uris;
  absl::Status failed;
  // All processes first, then their lines: the workers start side by side
  // (each loads the library and starts its peer), not one after another.
  for (int i = 0; i < count && failed.ok(); ++i) {
    absl::StatusOr<std::shared_ptr<Worker>> w = LaunchWorker(id, i, path, env);
    if (w.ok()) {
      workers.push_back(*std::move(w));
    } else {
      failed = w.status();
    }
  }
  for (size_t i = 0; i < workers.size() && failed.ok(); ++i) {
    absl::StatusOr<std::string> uri = co_await AwaitListening(workers[i], id);
    // The daemon ended meanwhile (its state is gone): the workers end with
    // their Process objects.
    if (g_node == nullptr) co_return absl::UnavailableError("the node closed");
    if (uri.ok()) {
      uris.emplace_back(*std::move(uri));
    } else {
      failed = uri.status();
    }
  }
  n.starting.erase(id);
  if (failed.ok() && n.closing) failed = absl::UnavailableError("the node is closing");
  if (!failed.ok()) {
    CloseWorkers(workers);
    for (auto& w : workers) n.closing_workers.push_back(w);
    --n.started;
    PICOS_LOG(warn, "computation {}: {}", id, failed.ToString());
    co_return failed;
  }
  Computation& c = n.computations[id];
  c.workers = std::move(workers);
  c.library_path = path;
  c.env = std::move(env);
  c.client = client;
  c.alias = std::move(alias);
  c.pulse_interval = PulseIntervalFor(n.settings, pulse_ms);
  // One client task, two uses (picos_node.cc): joined for the zombie
  // period, and sent the pulses.
  if (client.valid()) {
    c.client_watch = ThisScheduler().Spawn(SpawnOptions{.name = "picos.node.client_watch", .daemon = true},
                                           WatchClient, id, client, n.main);
    c.pulse_sender =
        ThisScheduler().Spawn(SpawnOptions{.name = "picos.node.pulses", .daemon = true}, PulseSender, id);
  }
  Say(absl::StrCat("computation started ", id, " ", c.workers.size()));
  Value::ListType list(std::move(uris));
  co_return Value::Map({{"workers", Value(std::move(list))},
                        {"pulse_interval_ms", absl::ToInt64Milliseconds(c.pulse_interval)}});
}

// "close_worker" and "restart_worker": ends worker `index` of `id` (if it
// still runs) and, for a restart, starts a fresh one in its place.
Task<absl::StatusOr<Value>> CloseOrRestartWorker(std::string id, int64_t index, bool restart) {
  NodeState& n = *g_node;
  auto it = n.computations.find(id);
  if (it == n.computations.end()) co_return absl::NotFoundError(absl::StrCat("no computation ", id));
  if (index < 0 || index >= static_cast<int64_t>(it->second.workers.size())) {
    co_return absl::InvalidArgumentError(absl::StrCat("no worker ", index, " in computation ", id));
  }
  std::shared_ptr<Worker> old = it->second.workers[index];
  std::vector<std::shared_ptr<Worker>> ending = {old};
  CloseWorkers(ending);
  if (std::find(n.closing_workers.begin(), n.closing_workers.end(), old) == n.closing_workers.end()) {
    n.closing_workers.push_back(old);
  }
  if (!restart) co_return Value(true);
  if (n.closing) co_return absl::UnavailableError("the node is closing");
  PICOS_CO_ASSIGN_OR_RETURN(
      StartedWorker w, co_await StartWorker(id, static_cast<int>(index), it->second.library_path, it->second.env));
  // The computation may have closed (or the node) while the worker started.
  if (g_node == nullptr) co_return absl::UnavailableError("the node closed");
  auto again = n.computations.find(id);
  if (again == n.computations.end() || index >= static_cast<int64_t>(again->second.workers.size()) ||
      n.closing) {
    std::vector<std::shared_ptr<Worker>> late = {w.worker};
    CloseWorkers(late);
    n.closing_workers.push_back(w.worker);
    co_return absl::AbortedError(absl::StrCat("computation ", id, " closed meanwhile"));
  }
  again->second.workers[index] = w.worker;
  ++g_node->worker_restarts;
  co_return Value::Map({{"worker", w.uri}});
}

// "add_worker": one more worker for computation `id` (a shared
// picos-scheduler grew its client's share, compute/scheduler.h): the slot of
// a closed worker is used again, else a new index; never more than --cpus
// workers running at once. {"worker": <uri>, "index": <int>}.
Task<absl::StatusOr<Value>> AddWorker(std::string id) {
  NodeState& n = *g_node;
  if (n.closing) co_return absl::UnavailableError("the node is closing");
  auto it = n.computations.find(id);
  if (it == n.computations.end()) co_return absl::NotFoundError(absl::StrCat("no computation ", id));
  int running = 0;
  int64_t index = -1;
  for (const auto& w : it->second.workers) {
    if (!w->closing) {
      ++running;
    } else if (index < 0) {
      index = w->index;
    }
  }
  if (running >= n.settings.cpus) {
    co_return absl::ResourceExhaustedError(
        absl::StrCat("computation ", id, " has ", running, " workers here, the most this node gives (--cpus)"));
  }
  if (index >= 0) {
    absl::StatusOr<Value> r = co_await CloseOrRestartWorker(id, index, true);
    if (!r.ok()) co_return r.status();
    r->as_map()["index"] = Value(index);
    co_return r;
  }
  index = static_cast<int64_t>(it->second.workers.size());
  PICOS_CO_ASSIGN_OR_RETURN(
      StartedWorker w, co_await StartWorker(id, static_cast<int>(index), it->second.library_path, it->second.env));
  if (g_node == nullptr) co_return absl::UnavailableError("the node closed");
  auto again = n.computations.find(id);
  if (again == n.computations.end() || n.closing) {
    std::vector<std::shared_ptr<Worker>> late = {w.worker};
    CloseWorkers(late);
    n.closing_workers.push_back(w.worker);
    co_return absl::AbortedError(absl::StrCat("computation ", id, " closed meanwhile"));
  }
  // Two adds at once both chose the same new index: the later one appends.
  w.worker->index = static_cast<int>(again->second.workers.size());
  again->second.workers.push_back(w.worker);
  co_return Value::Map({{"worker", w.uri}, {"index", int64_t{w.worker->index}}});
}

// What "status" answers (compute/daemon_status.h).
DaemonStatus StatusOf(NodeState& n) {
  DaemonStatus s;
  s.kind = "node";
  s.name = n.name;
  s.uri = n.uri;
  s.pid = static_cast<int>(getpid());
  s.uptime_s = absl::ToDoubleSeconds(absl::Now() - n.start_time);
  s.facts = n.stats->Read();
  s.cpus = n.settings.cpus;
  s.peers = n.node != nullptr ? static_cast<int>(n.node->peers().size()) : 0;
  s.started = n.started;
  s.serve = n.settings.serve;
  s.closing = n.closing;
  s.in_service = InServiceHours(n.settings);
  for (const auto& [id, c] : n.computations) {
    if (s.computations.size() == kMaxStatusComputations) break;
    ComputationStatus cs;
    cs.id = id;
    cs.client_lost = c.client_lost != absl::InfiniteFuture();
    for (const auto& w : c.workers) {
      if (cs.workers.size() == kMaxStatusWorkers) break;
      cs.workers.push_back({w->index, w->process->pid(), w->uri, w->process->exited() ? "ended" : "running"});
    }
    s.computations.push_back(std::move(cs));
  }
  std::sort(s.computations.begin(), s.computations.end(),
            [](const ComputationStatus& a, const ComputationStatus& b) { return a.id < b.id; });
  return s;
}

Task<absl::StatusOr<Value>> NodeRequest(Value arg) {
  if (g_node == nullptr) co_return absl::UnavailableError("the node closed");
  if (arg.is_map() && arg.GetOr<std::string>("op", "") == "info") {
    // Anyone with the cluster secret may ask: the host's facts, and how
    // many workers a computation gets here at most.
    co_return Value::Map({{"facts", g_node->stats->Read().ToValue()}, {"cpus", g_node->settings.cpus}});
  }
  if (arg.is_map() && arg.GetOr<std::string>("op", "") == "status") {
    // Anyone with the cluster secret may ask (picos-node --status): what
    // the node runs and its health (compute/daemon_status.h).
    co_return StatusOf(*g_node).ToValue();
  }
  std::string op, id;
  absl::Status read = MessageReader(arg).Get("op", &op).Get("computation", &id).status();
  if (!read.ok() || !ValidId(id)) {
    PICOS_LOG_LIMITED(warn, "compute node: malformed request: {}", read.ToString());
    co_return absl::InvalidArgumentError("malformed request: needs op and computation (1..64 of [A-Za-z0-9_-])");
  }
  if (op == "close") {
    absl::Status s = CloseComputation(id, "client");
    if (s.code() == absl::StatusCode::kNotFound && !g_node->starting.contains(id)) {
      // Files shipped for a start that never came (a client whose data
      // file was refused closes it): they go too.
      std::error_code ec;
      std::filesystem::remove_all(std::filesystem::path(g_node->settings.dest_path) / id, ec);
    }
    if (!s.ok()) co_return s;
    co_return Value(true);
  }
  if (op == "close_worker" || op == "restart_worker") {
    int64_t index = -1;
    absl::Status r = MessageReader(arg).Get("index", &index).status();
    if (!r.ok()) {
      PICOS_LOG_LIMITED(warn, "compute node: malformed {} request: {}", op, r.ToString());
      co_return absl::InvalidArgumentError(absl::StrCat("malformed ", op, ": needs index"));
    }
    co_return co_await CloseOrRestartWorker(id, index, op == "restart_worker");
  }
  if (op == "add_worker") co_return co_await AddWorker(id);
  if (op != "start") co_return absl::InvalidArgumentError(absl::StrCat("unknown op ", op.substr(0, 32)));
  std::string library, sha256;
  int64_t cpus = 0;
  std::string alias;
  int64_t pulse_ms = 0;
  read = MessageReader(arg)
             .Get("library", &library)
             .Get("sha256", &sha256)
             .Optional("cpus", &cpus)
             .Optional("node", &alias)
             .Optional("pulse_interval_ms", &pulse_ms)
             .status();
  // "client" (optional): the computation's client task (picos_node.cc): it
  // gets the pulses, and its end or its peer's loss starts the zombie
  // period.
  const Value& client = arg["client"];
  if (!read.ok() || library.empty() || library.size() > 255 || library == "." || library == ".." ||
      absl::StrContains(library, '/') || absl::StrContains(library, '\0') || sha256.size() != 64 || cpus < 0 ||
      cpus > 256 || alias.size() > 1024 || pulse_ms < 0 || pulse_ms > int64_t{86400} * 1000 ||
      !(client.is_null() || client.is_task())) {
    PICOS_LOG_LIMITED(warn, "compute node: malformed start request for {}", id);
    co_return absl::InvalidArgumentError(
        "malformed start: needs library (a file name) and sha256 (64 hex digits); cpus 0..256, node at most 1024 "
        "bytes, pulse_interval_ms 0..86400000, client, if given, a task");
  }
  TaskRef client_task = client.is_task() ? client.as_task() : TaskRef();
  absl::StatusOr<Value> r =
      co_await Start(id, library, sha256, static_cast<int>(cpus), client_task, std::move(alias), pulse_ms);
  if (!r.ok()) {
    PICOS_LOG(warn, "compute node: start of {} refused: {}", id, r.status().ToString());
    // What was shipped for a computation that did not start goes (never the
    // files of one that runs: a second start of it is refused above).
    if (g_node != nullptr && !g_node->computations.contains(id) && !g_node->starting.contains(id)) {
      std::error_code ec;
      std::filesystem::remove_all(std::filesystem::path(g_node->settings.dest_path) / id, ec);
    }
  }
  co_return r;
}

// Bytes of the regular files under `dir` (not following symlinks),
// counting at most `limit` entries.
uint64_t FolderBytes(const std::filesystem::path& dir) {
  uint64_t total = 0;
  std::error_code ec;
  std::filesystem::recursive_directory_iterator it(dir, std::filesystem::directory_options::none, ec);
  for (int seen = 0; !ec && it != std::filesystem::recursive_directory_iterator() && seen < 100000; ++seen) {
    std::error_code fe;
    if (it->is_regular_file(fe) && !it->is_symlink(fe)) total += it->file_size(fe);
    it.increment(ec);
  }
  return total;
}

// FileReceiverOptions::admit: the per-computation quota.
absl::Status AdmitFile(const std::vector<std::string>& dir, const std::string& name, uint64_t size) {
  if (g_node == nullptr) return absl::UnavailableError("the node closed");
  const uint64_t quota = g_node->settings.max_computation_bytes;
  if (quota == 0) return absl::OkStatus();
  const std::string top = dir.empty() ? std::string() : dir[0];
  const uint64_t used = top.empty() ? 0 : FolderBytes(std::filesystem::path(g_node->settings.dest_path) / top);
  if (used + size > quota) {
    return absl::ResourceExhaustedError(absl::StrCat("'", name, "' (", size, " bytes) would take computation ",
                                                     top, " beyond its quota: ", used, " of ", quota,
                                                     " bytes used (--max_computation_bytes)"));
  }
  return absl::OkStatus();
}

// --- Flags ---

absl::StatusOr<int> ParseHhmm(const std::string& flag, const std::string& v) {
  if (v.empty()) return -1;
  std::vector<std::string> parts = absl::StrSplit(v, ':');
  int h = -1, m = -1;
  if (parts.size() != 2 || parts[0].size() < 1 || parts[0].size() > 2 || parts[1].size() != 2 ||
      !absl::SimpleAtoi(parts[0], &h) || !absl::SimpleAtoi(parts[1], &m) || h < 0 || h > 23 || m < 0 || m > 59) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, "=", v, ": a time of day HH:MM (00:00 .. 23:59)"));
  }
  return h * 60 + m;
}

// Seconds (a decimal number, or a duration such as 200ms or 1m) in
// [lo, hi], or exactly 0 when zero_ok (compute/daemon_config.h).
absl::StatusOr<absl::Duration> ParseSeconds(const std::string& flag, const std::string& v, double lo, double hi,
                                            bool zero_ok) {
  return ParseSecondsFlag(flag, v, lo, hi, zero_ok);
}

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
  const std::string quota = absl::GetFlag(FLAGS_max_computation_bytes);
  if (!absl::SimpleAtoi(quota, &n.max_computation_bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_computation_bytes=", quota, ": a number of bytes (0 for no quota)"));
  }
  const std::string serve = absl::GetFlag(FLAGS_serve);
  if (!absl::SimpleAtoi(serve, &n.serve) || n.serve < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--serve=", serve, ": a count of computations, 0 for no end"));
  }
  PICOS_ASSIGN_OR_RETURN(n.service_start, ParseHhmm("service_start", absl::GetFlag(FLAGS_service_start)));
  PICOS_ASSIGN_OR_RETURN(n.service_stop, ParseHhmm("service_stop", absl::GetFlag(FLAGS_service_stop)));
  PICOS_ASSIGN_OR_RETURN(n.service_end, ParseHhmm("service_end", absl::GetFlag(FLAGS_service_end)));
  if (n.service_start >= 0 && n.service_start == n.service_stop) {
    return absl::InvalidArgumentError(absl::StrCat("--service_stop=", absl::GetFlag(FLAGS_service_stop),
                                                   ": the same time as --service_start (no service at all)"));
  }
  PICOS_ASSIGN_OR_RETURN(
      n.min_pulse, ParseSeconds("min_pulse_interval", absl::GetFlag(FLAGS_min_pulse_interval), 0.1, 3600, false));
  PICOS_ASSIGN_OR_RETURN(
      n.max_pulse, ParseSeconds("max_pulse_interval", absl::GetFlag(FLAGS_max_pulse_interval), 0.1, 3600, false));
  if (n.min_pulse > n.max_pulse) {
    return absl::InvalidArgumentError(absl::StrCat("--max_pulse_interval=", absl::GetFlag(FLAGS_max_pulse_interval),
                                                   ": less than --min_pulse_interval=",
                                                   absl::GetFlag(FLAGS_min_pulse_interval)));
  }
  PICOS_ASSIGN_OR_RETURN(n.pulse,
                         ParseSeconds("pulse_interval", absl::GetFlag(FLAGS_pulse_interval), 0.1, 3600, false));
  if (n.pulse < n.min_pulse || n.pulse > n.max_pulse) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--pulse_interval=", absl::GetFlag(FLAGS_pulse_interval), ": outside --min_pulse_interval=",
        absl::GetFlag(FLAGS_min_pulse_interval), " .. --max_pulse_interval=", absl::GetFlag(FLAGS_max_pulse_interval)));
  }
  PICOS_ASSIGN_OR_RETURN(n.zombie_period,
                         ParseSeconds("zombie_period", absl::GetFlag(FLAGS_zombie_period), 0.1, 86400, true));
  for (const std::string& f : absl::GetFlag(FLAGS_trusted_signer)) {
    if (f.empty()) continue;
    if (n.trusted_keys.size() == 64) return absl::InvalidArgumentError("--trusted_signer: more than 64 keys");
    absl::StatusOr<std::string> key = ReadPublicKeyFile(f);
    if (!key.ok()) return absl::InvalidArgumentError(absl::StrCat("--trusted_signer=", f, ": ", key.status().message()));
    n.trusted_keys.push_back(*std::move(key));
    n.trusted_files.push_back(f);
  }
  PICOS_RETURN_IF_ERROR(ApplyLogLevelFlag(absl::GetFlag(FLAGS_log_level)));
  n.clean = absl::GetFlag(FLAGS_clean);
  n.console = !absl::GetFlag(FLAGS_daemon) && isatty(STDIN_FILENO) == 1;
  remote::NodeFlagValues values = remote::NodeFlagValuesFromCommandLine();
  const std::string name = absl::GetFlag(FLAGS_name);
  if (!name.empty()) {
    if (!values.node_name.empty() && values.node_name != name) {
      return absl::InvalidArgumentError(
          absl::StrCat("--name=", name, ": --node_name=", values.node_name, " says otherwise (one is enough)"));
    }
    values.node_name = name;
  }
  remote::NodeFlagDefaults defaults;
  defaults.name = "picos-node";
  defaults.listen.push_back("tcp://127.0.0.1:9706");
  PICOS_ASSIGN_OR_RETURN(n.config, remote::NodeConfigFromValues(values, transports::DefaultTransports(), defaults));
  n.discover = absl::GetFlag(FLAGS_discover);
  if (n.discover) {
    PICOS_ASSIGN_OR_RETURN(n.discovery, discovery::DiscoveryOptionsFromFlags(n.config));
  }
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

// `status` names the config line that set the flag it is about, if any.
absl::Status WithConfigOrigin(const absl::Status& status) {
  return compute::WithConfigOrigin(status, ConfigOrigins());
}

absl::Status SaveConfig(const std::string& path) { return SaveConfigFile(path, "picos-node", kConfigKeys); }

// --- Signals and console ---

// Reads console lines from stdin (a terminal) and sends them to the
// daemon's task, until end of file.
void ConsoleThread(TaskRef main) {
  char buf[kMaxConsoleLine];
  while (std::fgets(buf, sizeof buf, stdin) != nullptr) {
    std::string line(absl::StripAsciiWhitespace(buf));
    if (!line.empty()) (void)main.Send(Value::Map({{kConsoleMessage, line}}));
  }
}

void PrintStatus(const remote::Node& node) {
  const NodeState& n = *g_node;
  const NodeSettings& s = n.settings;
  Say(absl::StrCat("status: ", n.computations.size(), " computations, ", s.cpus, " workers each, ", n.started,
                   " started", s.serve > 0 ? absl::StrCat(" of ", s.serve) : std::string(), ", peers ",
                   node.peers().size(), ", pulse interval ", absl::FormatDuration(s.pulse), " (",
                   absl::FormatDuration(s.min_pulse), "..", absl::FormatDuration(s.max_pulse), ")", ", zombie period ", absl::FormatDuration(s.zombie_period),
                   InServiceHours(s) ? ", in service" : ", out of service hours"));
  for (const auto& [id, c] : n.computations) {
    std::vector<std::string> pids;
    for (const auto& w : c.workers) pids.push_back(absl::StrCat(w->process->pid(), w->process->exited() ? "(ended)" : ""));
    Say(absl::StrCat("status: computation ", id, " workers ", absl::StrJoin(pids, ","),
                     c.client_lost == absl::InfiniteFuture() ? "" : " (client lost)"));
  }
}

// --- --clean ---

// Whether /proc/<pid>/cmdline is picos-node in worker mode serving a
// library in `folder` (never kill anything else).
bool IsOurWorker(int pid, const std::string& folder) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/cmdline"), std::ios::binary);
  if (!in) return false;
  std::string cmd(64 << 10, '\0');
  in.read(cmd.data(), static_cast<std::streamsize>(cmd.size()));
  cmd.resize(static_cast<size_t>(in.gcount()));
  std::vector<std::string> args = absl::StrSplit(cmd, '\0');
  if (args.empty() || std::filesystem::path(args[0]).filename() != "picos-node") return false;
  const std::string want = absl::StrCat("--worker_library=", folder, "/");
  for (const std::string& a : args) {
    if (absl::StartsWith(a, want) && a.find('/', want.size()) == std::string::npos) return true;
  }
  return false;
}

// The folders of `dest` holding pid files (a previous run's computations).
void Clean(const std::string& dest, bool kill_workers) {
  std::error_code ec;
  std::vector<std::filesystem::path> folders;
  int seen = 0;
  for (std::filesystem::directory_iterator it(dest, ec), end; !ec && it != end && seen < 100000;
       it.increment(ec), ++seen) {
    std::error_code fe;
    if (!it->is_directory(fe) || it->is_symlink(fe)) continue;
    bool has_pid_file = false;
    int files = 0;
    for (std::filesystem::directory_iterator f(it->path(), fe), fend; !fe && f != fend && files < 10000;
         f.increment(fe), ++files) {
      const std::string name = f->path().filename().string();
      if (!absl::StartsWith(name, kPidFilePrefix) || !absl::EndsWith(name, kPidFileSuffix)) continue;
      has_pid_file = true;
      if (!kill_workers) break;
      std::ifstream in(f->path());
      std::string text(32, '\0');
      in.read(text.data(), static_cast<std::streamsize>(text.size()));
      text.resize(static_cast<size_t>(in.gcount()));
      int pid = 0;
      if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &pid) || pid <= 1) {
        Say(absl::StrCat("clean: ", f->path().string(), ": not a pid: left alone"));
        continue;
      }
      if (!IsOurWorker(pid, it->path().string())) {
        Say(absl::StrCat("clean: pid ", pid, " of ", f->path().string(), " is not its worker: left alone"));
        continue;
      }
      if (kill(pid, SIGKILL) == 0) {
        Say(absl::StrCat("clean: killed worker ", pid, " of ", it->path().filename().string()));
      } else {
        Say(absl::StrCat("clean: could not kill worker ", pid, ": ", strerror(errno)));
      }
    }
    if (has_pid_file) folders.push_back(it->path());
  }
  for (const auto& f : folders) {
    if (!kill_workers) {
      PICOS_LOG(warn, "{} holds files of a previous run's computation: --clean removes them", f.string());
      continue;
    }
    std::error_code re;
    std::filesystem::remove_all(f, re);
    Say(absl::StrCat("clean: removed ", f.filename().string(), re ? absl::StrCat(" (", re.message(), ")") : ""));
  }
}

// --- The daemon ---

bool AllClosed(const NodeState& n) {
  for (const auto& w : n.closing_workers) {
    if (!w->process->exited()) return false;
  }
  return true;
}

// The next zombie deadline's distance (at most a second, for the service
// hours' check).
absl::Duration NextWait(const NodeState& n) {
  absl::Duration wait = absl::Seconds(1);
  if (n.settings.zombie_period == absl::ZeroDuration()) return wait;
  const absl::Time now = absl::Now();
  for (const auto& [id, c] : n.computations) {
    if (c.client_lost == absl::InfiniteFuture()) continue;
    wait = std::min(wait, c.client_lost + n.settings.zombie_period - now);
  }
  return std::max(wait, absl::Milliseconds(1));
}

void CloseZombies(NodeState& n) {
  if (n.settings.zombie_period == absl::ZeroDuration()) return;
  const absl::Time now = absl::Now();
  std::vector<std::string> due;
  for (const auto& [id, c] : n.computations) {
    if (c.client_lost != absl::InfiniteFuture() && c.client_lost + n.settings.zombie_period <= now) due.push_back(id);
  }
  for (const std::string& id : due) {
    PICOS_LOG(warn, "computation {}: its client is gone for the zombie period: closed", id);
    (void)CloseComputation(id, "zombie");
  }
}

void CheckServiceEnd(NodeState& n) {
  if (n.settings.service_end < 0) return;
  int minute, day;
  LocalNow(&minute, &day);
  if (minute != n.settings.service_end || day == n.last_service_end_day) return;
  n.last_service_end_day = day;
  CloseAll("service_end");
}

enum class Ending { kRunning, kClose, kTerminate };

// What a message to the daemon's task asks.
Ending Handle(NodeState& n, const remote::Node& node, const Value& msg, int* sigints) {
  if (msg[kSignalMessage].is_int()) {
    const int sig = static_cast<int>(msg[kSignalMessage].as_int());
    if (sig == SIGINT && ++*sigints >= 2) {
      Say("signal SIGINT: terminating");
      return Ending::kTerminate;
    }
    Say(absl::StrCat("signal ", DaemonSignalName(sig), ": closing",
                     sig == SIGINT ? " (SIGINT again terminates)" : ""));
    return Ending::kClose;
  }
  if (msg[kConsoleMessage].is_string()) {
    const std::string& cmd = msg[kConsoleMessage].as_string();
    if (cmd == "status") {
      PrintStatus(node);
    } else if (cmd == "close") {
      CloseAll("console");
    } else if (cmd == "quit" || cmd == "exit") {
      Say("console: closing");
      return Ending::kClose;
    } else if (cmd == "terminate") {
      Say("console: terminating");
      return Ending::kTerminate;
    } else {
      Say(absl::StrCat("console: unknown command '", cmd.substr(0, 64), "' (status, close, quit, terminate)"));
    }
    return Ending::kRunning;
  }
  if (msg[kClientGoneMessage].is_string()) {
    const std::string& id = msg[kClientGoneMessage].as_string();
    auto it = n.computations.find(id);
    if (it != n.computations.end() && it->second.client_lost == absl::InfiniteFuture()) {
      it->second.client_lost = absl::Now();
      const std::string why = msg["why"].is_string() ? msg["why"].as_string() : "";
      Say(absl::StrCat("client lost ", id, " ", why));
      PICOS_LOG(warn, "computation {}: client gone ({}); closed after the zombie period ({}) unless closed before",
                id, why, absl::FormatDuration(n.settings.zombie_period));
    }
  }
  return Ending::kRunning;
}

// --metrics_listen: the node's own figures beside the runtime's, read from
// `n` at each scrape (on the node's thread: the server runs there).
absl::StatusOr<std::vector<metrics::CallbackHandle>> RegisterNodeDaemonMetrics(metrics::Registry& registry,
                                                                               NodeState& n) {
  std::vector<metrics::CallbackHandle> handles;
  NodeState* np = &n;
  n.metrics_stats = std::make_unique<HostStatsReader>(n.settings.dest_path);
  (void)n.metrics_stats->Read();  // the first scrape's CPU figure covers the time since
  // One read of the host's facts serves every family of a scrape: the
  // first family's callback reads, the others reuse it.
  auto facts = std::make_shared<HostFacts>();
  auto one = [](double v) { return std::vector<metrics::Sample>{{{}, v}}; };
  struct Def {
    const char* name;
    const char* help;
    metrics::Type type;
    std::function<std::vector<metrics::Sample>()> read;
  };
  const Def defs[] = {
      {"picos_node_computations", "Computations this node runs now.", metrics::Type::kGauge,
       [np, one] { return one(static_cast<double>(np->computations.size())); }},
      {"picos_node_workers", "Worker processes of this node running now.", metrics::Type::kGauge,
       [np, one] {
         double running = 0;
         for (const auto& [id, c] : np->computations) {
           for (const auto& w : c.workers) running += w->process->exited() ? 0 : 1;
         }
         return one(running);
       }},
      {"picos_node_worker_restarts_total", "Workers this node started again in place of another (restart_worker).",
       metrics::Type::kCounter, [np, one] { return one(static_cast<double>(np->worker_restarts)); }},
      {"picos_node_computations_started_total", "Computations this node started.", metrics::Type::kCounter,
       [np, one] { return one(static_cast<double>(np->started)); }},
      {"picos_node_cpu_available_percent", "Idle share of the host's CPUs since the last scrape, 0..100.",
       metrics::Type::kGauge,
       [np, facts, one] {
         *facts = np->metrics_stats->Read();
         return one(facts->cpu_available_percent);
       }},
      {"picos_node_memory_total_bytes", "The host's memory.", metrics::Type::kGauge,
       [facts, one] { return one(static_cast<double>(facts->memory_total)); }},
      {"picos_node_memory_available_bytes", "The host's available memory (MemAvailable).", metrics::Type::kGauge,
       [facts, one] { return one(static_cast<double>(facts->memory_available)); }},
      {"picos_node_swap_total_bytes", "The host's swap.", metrics::Type::kGauge,
       [facts, one] { return one(static_cast<double>(facts->swap_total)); }},
      {"picos_node_swap_free_bytes", "The host's free swap.", metrics::Type::kGauge,
       [facts, one] { return one(static_cast<double>(facts->swap_free)); }},
      {"picos_node_disk_total_bytes", "Size of the file system of --dest_path.", metrics::Type::kGauge,
       [facts, one] { return one(static_cast<double>(facts->disk_total)); }},
      {"picos_node_disk_free_bytes", "Bytes still free under --dest_path.", metrics::Type::kGauge,
       [facts, one] { return one(static_cast<double>(facts->disk_free)); }},
  };
  for (const Def& d : defs) {
    PICOS_ASSIGN_OR_RETURN(metrics::CallbackHandle h,
                           registry.AddCallback({.name = d.name, .help = d.help}, d.type, d.read));
    handles.push_back(std::move(h));
  }
  PICOS_ASSIGN_OR_RETURN(
      metrics::CallbackHandle load,
      registry.AddCallback({.name = "picos_node_load", .help = "The host's load average.", .label_names = {"minutes"}},
                           metrics::Type::kGauge, [facts]() -> std::vector<metrics::Sample> {
                             return {{{"1"}, facts->load[0]}, {{"5"}, facts->load[1]}, {{"15"}, facts->load[2]}};
                           }));
  handles.push_back(std::move(load));
  return handles;
}

Task<absl::Status> NodeMain(NodeSettings settings) {
  const TransportRegistry& t = transports::DefaultTransports();
  NodeState n;
  n.main = Self();
  std::error_code ec;
  n.self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  if (ec) co_return absl::InternalError(absl::StrCat("/proc/self/exe: ", ec.message()));
  n.settings = std::move(settings);
  n.stats = std::make_unique<HostStatsReader>(n.settings.dest_path);
  n.pulse_stats = std::make_unique<HostStatsReader>(n.settings.dest_path);
  (void)n.pulse_stats->Read();  // the first pulse's CPU figure covers its interval
  remote::NodeConfig config = std::move(n.settings.config);
  n.secret = config.options.secret;
  const std::string node_name = config.options.name;
  Clean(n.settings.dest_path, n.settings.clean);
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<remote::Node> node,
                            co_await remote::Node::Start(t, std::move(config.options)));
  absl::string_view first = node->uris()[0];
  if (absl::ConsumePrefix(&first, "tcp://")) {
    n.worker_listen_host = std::string(first.substr(0, first.rfind(':')));
  }
  n.uri = node->uris()[0];
  n.node = node.get();
  n.name = node_name;
  g_node = &n;
  remote::FileReceiverOptions ro;
  ro.dir = n.settings.dest_path;
  ro.max_file_size = n.settings.max_file_size;
  ro.admit = AdmitFile;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<remote::FileReceiver> rx, remote::FileReceiver::Enable(ro));
  PICOS_CO_ASSIGN_OR_RETURN(remote::RegisteredService svc, remote::RegisterService(kNodeService, NodeRequest));
  std::thread(ForwardDaemonSignals, n.main, kSignalMessage).detach();
  if (n.settings.console) std::thread(ConsoleThread, n.main).detach();
  Say(absl::StrCat("listening ", node->uris()[0]));
  PICOS_CO_RETURN_IF_ERROR(co_await remote::ConnectPeers(*node, config.peers));
  // --discover: announced on the group (and its --peer list retried by
  // discovery until they answer); clients following discovery find it.
  std::unique_ptr<discovery::Discovery> announcer;
  if (n.settings.discover) {
    PICOS_CO_ASSIGN_OR_RETURN(announcer, co_await discovery::Discovery::Start(*node, std::move(n.settings.discovery)));
    Say(absl::StrCat("discovery ", announcer->group_uri().empty() ? "static peers only" : announcer->group_uri()));
  }
  // --metrics_listen: the scheduler's and the node's figures at /metrics.
  metrics::Registry metrics_registry;
  std::unique_ptr<metrics::SchedulerMetrics> scheduler_metrics;
  std::unique_ptr<metrics::NodeMetrics> node_metrics;
  std::unique_ptr<metrics::MetricsServer> metrics_server;
  std::vector<metrics::CallbackHandle> daemon_metrics;
  if (n.settings.metrics_on) {
    PICOS_CO_ASSIGN_OR_RETURN(daemon_metrics, RegisterNodeDaemonMetrics(metrics_registry, n));
    PICOS_CO_ASSIGN_OR_RETURN(scheduler_metrics,
                              metrics::SchedulerMetrics::Register(metrics_registry, ThisScheduler()));
    PICOS_CO_ASSIGN_OR_RETURN(node_metrics, metrics::NodeMetrics::Register(metrics_registry, *node));
    PICOS_CO_ASSIGN_OR_RETURN(metrics_server,
                              co_await metrics::MetricsServer::Start(t, metrics_registry, n.settings.metrics));
    Say(absl::StrCat("metrics ", metrics_server->address()));
  }
  int sigints = 0;
  Ending ending = Ending::kRunning;
  while (ending == Ending::kRunning) {
    if (n.settings.serve > 0 && n.started >= n.settings.serve && n.computations.empty() && n.starting.empty()) {
      Say(absl::StrCat("served ", n.started, " computations (--serve): closing"));
      ending = Ending::kClose;
      break;
    }
    absl::StatusOr<Value> msg = co_await Receive(NextWait(n));
    if (msg.ok()) {
      ending = Handle(n, *node, *msg, &sigints);
    } else if (msg.status().code() != absl::StatusCode::kDeadlineExceeded) {
      break;  // terminated
    }
    CloseZombies(n);
    CheckServiceEnd(n);
  }
  n.closing = true;
  if (ending == Ending::kClose) {
    CloseAll("node closing");
    // Each worker gets kWorkerCloseGrace after SIGTERM, then SIGKILL; a
    // second SIGINT meanwhile terminates. Bounded by count.
    const int steps = static_cast<int>(kWorkerCloseGrace / absl::Milliseconds(10));
    // Starts in progress see `closing` and give up; their workers are waited
    // for too.
    for (int i = 0; i < 2 * steps && !(AllClosed(n) && n.starting.empty()) && ending == Ending::kClose; ++i) {
      if (i == steps) CloseWorkers(n.closing_workers, SIGKILL);
      absl::StatusOr<Value> msg = co_await Receive(absl::Milliseconds(10));
      if (msg.ok() && Handle(n, *node, *msg, &sigints) == Ending::kTerminate) ending = Ending::kTerminate;
    }
  }
  if (ending == Ending::kTerminate) {
    for (auto& [id, c] : n.computations) CloseWorkers(c.workers, SIGKILL);
    CloseWorkers(n.closing_workers, SIGKILL);
    for (auto& [id, c] : n.computations) {
      std::filesystem::remove_all(std::filesystem::path(n.settings.dest_path) / id, ec);
    }
    Say("node terminated");
    g_node = nullptr;
    co_return absl::CancelledError("terminated (SIGINT twice, or the console's terminate)");
  }
  if (announcer != nullptr) {
    absl::Status gone = co_await announcer->Stop();
    if (!gone.ok()) PICOS_LOG(warn, "discovery goodbye: {}", gone.ToString());
    announcer.reset();
  }
  absl::Status bye = co_await node->Close(absl::Seconds(5));
  if (!bye.ok()) PICOS_LOG(warn, "goodbye to peers: {}", bye.ToString());
  Say("node closed");
  g_node = nullptr;
  co_return absl::OkStatus();
}

// --status: asks the node at --connect what it runs and prints it
// (compute/daemon_status.h's RunStatusCommand).
int StatusCommandMain() {
  StatusCommand c;
  c.program = "picos-node";
  c.service = kNodeService;
  c.op = "status";
  c.uri = absl::GetFlag(FLAGS_connect);
  c.json = absl::GetFlag(FLAGS_json);
  c.timeout = absl::GetFlag(FLAGS_status_timeout);
  c.log_level = absl::GetFlag(FLAGS_log_level);
  c.format = [](const Value& answer, bool json) -> absl::StatusOr<std::string> {
    PICOS_ASSIGN_OR_RETURN(DaemonStatus st, DaemonStatus::FromValue(answer));
    return json ? FormatStatusJson(st) : FormatStatusTable(st);
  };
  return RunStatusCommand(std::move(c));
}

}  // namespace

std::vector<std::string> PrepareNodeCommandLine(int argc, char** argv) {
  return PrepareDaemonCommandLine(argc, argv, "picos-node", "trusted_signer", kConfigKeys, &ConfigOrigins());
}

bool ApplyLogFormatFlag() {
  LogFormat format = LogFormat::kText;
  const std::string log_format = absl::GetFlag(FLAGS_log_format);
  if (!ParseLogFormat(log_format, &format)) {
    std::fprintf(stderr, "picos-node: --log_format=%s: text or json\n", log_format.substr(0, 64).c_str());
    return false;
  }
  // Text is the logger's own format: set only JSON, so that a node that
  // logs nothing never builds the logger (spdlog's pages are a few hundred
  // KB of an idle node's RSS).
  if (format == LogFormat::kJson) SetLogFormat(format);
  return true;
}

int NodeDaemonMain() {
  if (absl::GetFlag(FLAGS_status)) return StatusCommandMain();
  absl::StatusOr<NodeSettings> settings = NodeSettingsFromFlags();
  if (!settings.ok()) {
    std::fprintf(stderr, "picos-node: %s\n", std::string(WithConfigOrigin(settings.status()).message()).c_str());
    return 2;
  }
  const std::string save = absl::GetFlag(FLAGS_save_config);
  if (!save.empty()) {
    absl::Status s = SaveConfig(save);
    if (!s.ok()) {
      std::fprintf(stderr, "picos-node: %s\n", std::string(s.message()).c_str());
      return 2;
    }
    std::printf("saved the flags to %s\n", save.c_str());
    return 0;
  }
  // Blocked here, before any thread starts, so that every thread inherits
  // the mask and only the signal thread's sigwait takes them.
  const sigset_t set = DaemonSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return RunMain("picos-node", NodeMain, *std::move(settings));
}

}  // namespace picos::compute
