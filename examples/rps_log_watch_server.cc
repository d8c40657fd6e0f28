// pycos's rps_log_watch_server.py in C++: the remote service "log_watch"
// (core/remote/service.h). Each task it starts for a client runs the
// pipeline `tail -n BACKLOG -F FILE | grep --line-buffered -i PATTERN` on
// this peer (core/io/process.h) and streams every matching line to the
// client's task, until the client terminates it (Service::Close); the
// pipeline's processes end with the task. Ends after --watchers tasks have
// ended and its clients have left.
//
//   PICOS_REMOTE_SECRET=... rps_log_watch_server --listen=tcp://10.0.0.2:9705 --file=/var/log/syslog
//
// The node flags (--listen, --secret_file or $PICOS_REMOTE_SECRET, ...) are
// core/remote/node_flags.h's. It announces its --listen URIs by discovery
// (discovery/discovery.h; --discovery_group, --discovery_iface,
// --discovery_ttl or $PICOS_DISCOVERY_*, --discovery_group= for none), so
// clients on the LAN find it (pycos's discover_peers): listen on an address
// they can reach, not 0.0.0.0, which would be announced as is.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "core/cli/flags.h"
#include "core/io/process.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "core/remote/service.h"
#include "discovery/discovery.h"
#include "discovery/discovery_flags.h"
#include "transports/default_transports.h"

ABSL_FLAG(std::string, file, "", "the log file to watch (required)");
ABSL_FLAG(std::string, pattern, "error", "lines matching it (grep -i) are streamed");
ABSL_FLAG(int, backlog, 10, "lines already in the file to start with (tail -n), 0 to 10000");
ABSL_FLAG(int, watchers, 1, "watch tasks to serve before ending");

namespace {

constexpr size_t kMaxLine = 64 * 1024;
constexpr size_t kMaxPattern = 1024;

struct Watch {
  std::string file, pattern, host;
  int backlog = 10;
  picos::TaskRef main;  // told when a watch task ends
};

// Tells Main that a watch task ended, however it ended (returned, or
// destroyed at a wait after Terminate).
class EndedGuard {
 public:
  explicit EndedGuard(picos::TaskRef main) : main_(std::move(main)) {}
  EndedGuard(const EndedGuard&) = delete;
  EndedGuard& operator=(const EndedGuard&) = delete;
  ~EndedGuard() { (void)main_.Send(picos::Value("ended")); }

 private:
  picos::TaskRef main_;
};

// Sends `line` to the client; while its peer's queue is full, waits a
// little (a slow client holds the log back, memory stays bounded).
picos::Task<absl::Status> SendLine(picos::TaskRef client, picos::Value msg) {
  for (int i = 0;; ++i) {
    absl::Status s = client.Send(msg);
    if (!absl::IsResourceExhausted(s) || i == 1000) co_return s;
    PICOS_CO_RETURN_IF_ERROR(co_await picos::Sleep(absl::Milliseconds(10)));
  }
}

// One watch task (`req` passed the admission check: {"client": task}).
picos::Task<absl::StatusOr<picos::Value>> LogWatch(std::shared_ptr<const Watch> w, picos::Value req) {
  EndedGuard ended(w->main);
  picos::TaskRef client = req["client"].as_task();
  picos::ProcessOptions tail{.program = "tail", .args = {"-n", absl::StrCat(w->backlog), "-F", w->file}};
  tail.stderr_mode = picos::StdioMode::kNull;  // "file truncated" and the like
  picos::ProcessOptions grep{.program = "grep", .args = {"--line-buffered", "-i", "-e", w->pattern}};
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::Pipeline> chain, picos::Pipeline::Spawn({tail, grep}));
  std::printf("server: watching %s for '%s' for %s\n", w->file.c_str(), w->pattern.c_str(),
              client.DebugString().c_str());
  std::fflush(stdout);
  int64_t sent = 0;
  for (;;) {
    absl::StatusOr<std::string> line = co_await chain->last().out().ReadLine(kMaxLine);
    if (!line.ok() && absl::IsResourceExhausted(line.status())) {
      line = co_await chain->last().out().Read(kMaxLine);  // an over-long line goes in pieces
    }
    if (!line.ok()) {
      // Terminated by the client (kCancelled): what it asked for.
      std::printf("server: watch for %s ended after %lld lines: %s\n", client.DebugString().c_str(),
                  static_cast<long long>(sent), line.status().ToString().c_str());
      std::fflush(stdout);
      co_return line.status();
    }
    if (line->empty()) co_return absl::UnavailableError("the pipeline ended");  // tail or grep died
    picos::Value msg = picos::Value::Map(
        {{"host", w->host}, {"line", std::string(absl::StripTrailingAsciiWhitespace(*line))}});
    PICOS_CO_RETURN_IF_ERROR(co_await SendLine(client, std::move(msg)));
    ++sent;
  }
}

absl::Status Admit(const picos::Value& req) {
  picos::TaskRef client;
  PICOS_RETURN_IF_ERROR(picos::MessageReader(req).Get("client", &client).status());
  if (!client.valid()) return absl::InvalidArgumentError("a null client task");
  return absl::OkStatus();
}

picos::Task<absl::Status> Main(int watchers, std::shared_ptr<Watch> w) {
  const picos::TransportRegistry& transports = picos::transports::DefaultTransports();
  picos::remote::NodeFlagDefaults defaults;
  defaults.name = "rps_log_watch_server";
  defaults.listen.push_back("tcp://127.0.0.1:9705");
  PICOS_CO_ASSIGN_OR_RETURN(picos::remote::NodeConfig config,
                            picos::remote::NodeConfigFromFlags(transports, defaults));
  w->host = config.options.name;
  w->main = picos::Self();
  PICOS_CO_ASSIGN_OR_RETURN(picos::discovery::DiscoveryOptions discovery_options,
                            picos::discovery::DiscoveryOptionsFromFlags(config));
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::remote::Node::Start(transports, std::move(config.options)));
  picos::remote::ServiceOptions options;
  options.admit = Admit;
  options.max_running = 64;  // each runs two processes
  std::shared_ptr<const Watch> cw = w;
  PICOS_CO_ASSIGN_OR_RETURN(
      picos::remote::RegisteredService service,
      picos::remote::RegisterService(
          "log_watch", [cw](picos::Value req) { return LogWatch(cw, std::move(req)); }, std::move(options)));
  // Announced only once the service can be found: a client that hears us
  // locates it at once.
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::discovery::Discovery> discovery,
                            co_await picos::discovery::Discovery::Start(*node, std::move(discovery_options)));
  std::printf("server: listening on %s\n", node->uris()[0].c_str());
  std::fflush(stdout);
  for (int ended = 0; ended < watchers;) {
    PICOS_CO_ASSIGN_OR_RETURN(picos::Value m, co_await picos::Receive());
    if (m == picos::Value("ended")) ++ended;
  }
  // Its clients leave once they have closed their watches. Other servers
  // heard on the group (discovery->known(), "name@uri" as node->peers()
  // names them) are connected too, but are nobody's clients: not waited for.
  const auto clients_connected = [&node, &discovery] {
    const std::vector<std::string> servers = discovery->known();
    for (const std::string& p : node->peers()) {
      if (std::find(servers.begin(), servers.end(), p) == servers.end()) return true;
    }
    return false;
  };
  for (int i = 0; i < 2000 && clients_connected(); ++i) {
    PICOS_CO_RETURN_IF_ERROR(co_await picos::Sleep(absl::Milliseconds(5)));
  }
  service.Unregister();
  (void)co_await discovery->Stop();  // a goodbye: clients stop dialling us
  std::printf("server: %d watchers ended\n", watchers);
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Streams the lines of a log file that match a pattern to remote clients (pycos rps_log_watch_server.py).");
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_backlog, 0, 10000) || !picos::FlagInRange(FLAGS_watchers, 1, 10000)) return 2;
  auto w = std::make_shared<Watch>();
  w->file = absl::GetFlag(FLAGS_file);
  w->pattern = absl::GetFlag(FLAGS_pattern);
  w->backlog = absl::GetFlag(FLAGS_backlog);
  // Flags are input: tail and grep get them as single arguments (no shell),
  // and a pattern cannot pass for an option (grep -e).
  if (w->file.empty() || absl::StrContains(w->file, '\n')) {
    std::fprintf(stderr, "rps_log_watch_server: --file: a file to watch is required\n");
    return 2;
  }
  if (w->pattern.empty() || w->pattern.size() > kMaxPattern || absl::StrContains(w->pattern, '\n')) {
    std::fprintf(stderr, "rps_log_watch_server: --pattern: 1 to %zu bytes on one line\n", kMaxPattern);
    return 2;
  }
  return picos::RunMain("rps_log_watch_server", Main, absl::GetFlag(FLAGS_watchers), w);
}
