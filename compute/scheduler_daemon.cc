// picos-scheduler's daemon (compute/scheduler.h describes what it does,
// its requests, flags and lines).
#include <netdb.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "compute/daemon_config.h"
#include "compute/daemon_status.h"
#include "compute/host_stats.h"
#include "compute/protocol.h"
#include "compute/scheduler.h"
#include "core/io/thread_pool.h"
#include "core/kernel/log.h"
#include "core/kernel/monitor.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/net/uri.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "core/remote/service.h"
#include "transports/default_transports.h"

ABSL_FLAG(std::vector<std::string>, node, {}, "a picos-node to share (repeatable)");
ABSL_FLAG(std::string, node_dns, "",
          "HOST:PORT: every address HOST resolves to is a node (a Kubernetes headless Service), looked up again "
          "every --node_retry");
ABSL_FLAG(std::string, node_retry, "2", "seconds between tries of a node that is down");
ABSL_FLAG(int, max_clients, 64, "clients served at once (1 .. 1024)");
ABSL_FLAG(std::string, log_level, "", "trace, debug, info, warn, error or off (default $PICOS_LOG_LEVEL, else info)");
ABSL_FLAG(std::string, config, "", "read flags from FILE (name=value lines) before the command line's");
ABSL_FLAG(std::string, save_config, "", "write the flags to FILE (what --config reads) and exit");
ABSL_FLAG(bool, status, false,
          "ask the running scheduler at --connect what it serves (nodes, clients and their shares), print it, exit");
ABSL_FLAG(std::string, connect, "tcp://127.0.0.1:9705", "with --status: the scheduler's URI");
ABSL_FLAG(bool, json, false, "with --status: print JSON instead of a table");
ABSL_FLAG(absl::Duration, status_timeout, absl::Seconds(10), "with --status: how long to wait (1s..1h)");

namespace picos::compute {

std::vector<int> FairShares(int cpus, const std::vector<int>& demands) {
  std::vector<int> out(demands.size(), 0);
  // Water-filling: the smallest demands are met first; each round gives
  // every unmet client an equal part of what is left.
  std::vector<size_t> order;
  for (size_t i = 0; i < demands.size(); ++i) {
    if (demands[i] > 0) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return demands[a] < demands[b]; });
  int left = std::max(cpus, 0);
  for (size_t k = 0; k < order.size(); ++k) {
    const int unmet = static_cast<int>(order.size() - k);
    const int part = left / unmet;
    if (demands[order[k]] <= part) {
      out[order[k]] = demands[order[k]];
      left -= out[order[k]];
      continue;
    }
    // Everyone from here on wants more than an equal part: each gets it,
    // and what does not divide goes one each to the earliest clients.
    std::vector<size_t> rest(order.begin() + static_cast<std::ptrdiff_t>(k), order.end());
    std::sort(rest.begin(), rest.end());
    int extra = left - part * unmet;
    for (size_t i : rest) {
      out[i] = part + (extra > 0 ? 1 : 0);
      if (extra > 0) --extra;
    }
    break;
  }
  return out;
}

namespace {

constexpr char kSignalMessage[] = "picos.scheduler.signal";
constexpr size_t kMaxNodes = 1024;
constexpr int kMaxWorkersPerNode = 256;
constexpr absl::Duration kNodeTimeout = absl::Seconds(10);

constexpr const char* kConfigKeys[] = {"listen",     "advertise",   "peer",      "secret_file", "node_name",
                                       "node",       "node_dns",    "node_retry",  "max_clients", "log_level"};

absl::flat_hash_map<std::string, std::string>& ConfigOrigins() {
  static auto* origins = new absl::flat_hash_map<std::string, std::string>();
  return *origins;
}

struct Settings {
  std::vector<std::string> nodes;
  // --node_dns: the name and port, or empty.
  std::string dns_host;
  int dns_port = 0;
  absl::Duration retry = absl::Seconds(2);
  int max_clients = 64;
  remote::NodeConfig config;
};

struct NodeSlot {
  std::string uri;
  int cpus = 0;
  bool up = false;
  HostFacts facts;
  TaskRef keeper;
};

struct Client {
  std::string id;
  TaskRef task;
  uint64_t order = 0;
  std::map<std::string, int> demand, grant, held;
  // The most this client may hold on each node until it reports having
  // caught up with its latest grant: a grant that shrank still counts at
  // its old size until then, so no CPU is promised to two clients.
  std::map<std::string, int> peak;
  // Share updates sent (the join's reply is epoch 0).
  int64_t epoch = 0;
  TaskRef watcher;
};

// One scheduler thread, no locks.
struct State {
  Settings settings;
  // For info's "name", "uri", "uptime_s".
  std::string name;
  std::string uri;
  absl::Time start_time = absl::Now();
  std::map<std::string, NodeSlot> nodes;
  std::map<std::string, Client> clients;
  uint64_t next_order = 0;
};
State* g_state = nullptr;

void Say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

Value GrantsValue(const Client& c) {
  Value::MapType m;
  for (const auto& [uri, n] : c.grant) m[uri] = Value(int64_t{n});
  return Value(std::move(m));
}

// Up nodes `c` has said nothing about (they came after it joined): the
// client applies its allocation to them and says what it wants there.
Value NodesNew(const State& s, const Client& c) {
  Value::ListType out;
  for (const auto& [uri, n] : s.nodes) {
    if (!n.up || c.demand.contains(uri)) continue;
    out.push_back(Value::Map({{"uri", uri}, {"cpus", int64_t{n.cpus}}, {"up", true}, {"facts", n.facts.ToValue()}}));
  }
  return Value(std::move(out));
}

// Sends `c` its grant (a new epoch), and the nodes new to it.
void SendUpdate(const State& s, Client& c) {
  Value update = Value::Map({{kSharesKey, ++c.epoch}, {"shares", GrantsValue(c)}, {"nodes", NodesNew(s, c)}});
  absl::Status sent = c.task.Send(std::move(update));
  if (!sent.ok()) PICOS_LOG_LIMITED(warn, "scheduler: shares to client {}: {}", c.id, sent.ToString());
}

// Computes every node's shares again and tells each client whose grant
// changed (but `quiet`, which learns its grant from its join's reply).
void Rebalance(State& s, const std::string& quiet = "") {
  std::vector<Client*> ordered;
  for (auto& [id, c] : s.clients) ordered.push_back(&c);
  std::sort(ordered.begin(), ordered.end(), [](const Client* a, const Client* b) { return a->order < b->order; });
  absl::flat_hash_set<Client*> changed;
  for (auto& [uri, node] : s.nodes) {
    std::vector<int> demands;
    for (Client* c : ordered) {
      auto d = c->demand.find(uri);
      demands.push_back(node.up && d != c->demand.end() ? std::min(d->second, node.cpus) : 0);
    }
    const std::vector<int> target = FairShares(node.up ? node.cpus : 0, demands);
    // Shrinking first: a smaller share is the client's at once.
    for (size_t i = 0; i < ordered.size(); ++i) {
      int& g = ordered[i]->grant[uri];
      int& peak = ordered[i]->peak[uri];
      peak = std::max(peak, g);
      if (g > target[i]) {
        g = target[i];
        changed.insert(ordered[i]);
        Say(absl::StrCat("shares ", ordered[i]->id, " ", uri, " ", g));
      }
    }
    // Growing only into what nobody holds or was promised.
    int free = node.cpus;
    for (Client* c : ordered) free -= std::max({c->grant[uri], c->held[uri], c->peak[uri]});
    for (size_t i = 0; i < ordered.size() && free > 0; ++i) {
      int& g = ordered[i]->grant[uri];
      if (g >= target[i]) continue;
      const int add = std::min(target[i] - g, free);
      g += add;
      free -= add;
      ordered[i]->peak[uri] = std::max(ordered[i]->peak[uri], g);
      changed.insert(ordered[i]);
      Say(absl::StrCat("shares ", ordered[i]->id, " ", uri, " ", g));
    }
  }
  for (Client* c : changed) {
    if (c->id != quiet) SendUpdate(s, *c);
  }
}

// Joins the client's share task: its end (Close, the Computation gone) or
// its peer's loss frees its share.
Task<> WatchClient(std::string id, TaskRef task) {
  absl::Status placed = Monitor(Self(), task);
  std::string why = "its task is gone";
  if (placed.ok()) {
    absl::StatusOr<Value> msg = co_await Receive();
    if (!msg.ok()) co_return;  // terminated: the scheduler closes
    absl::StatusOr<MonitorStatus> st = MonitorStatus::FromValue(*msg);
    why = st.ok() ? MonitorOutcomeName(st->outcome) : "its task ended";
  }
  if (g_state == nullptr) co_return;
  auto it = g_state->clients.find(id);
  if (it == g_state->clients.end()) co_return;
  g_state->clients.erase(it);
  Say(absl::StrCat("client left ", id, " ", why));
  PICOS_LOG(info, "scheduler: client {} left ({}); its shares go to the others", id, why);
  Rebalance(*g_state);
}

// Reads {uri: 0..256} of known nodes; unknown URIs are ignored.
absl::StatusOr<std::map<std::string, int>> ReadCounts(const State& s, const Value& v, const char* field) {
  if (!v.is_map() || v.as_map().size() > kMaxNodes) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must be a map of node URI to 0..256"));
  }
  std::map<std::string, int> out;
  for (const auto& [uri, n] : v.as_map()) {
    if (!n.is_int() || n.as_int() < 0 || n.as_int() > kMaxWorkersPerNode) {
      return absl::InvalidArgumentError(absl::StrCat(field, " must be a map of node URI to 0..256"));
    }
    if (s.nodes.contains(uri)) out[uri] = static_cast<int>(n.as_int());
  }
  return out;
}

bool ValidId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  }
  return true;
}

Value Info(const State& s) {
  Value::ListType nodes;
  for (const auto& [uri, n] : s.nodes) {
    nodes.push_back(Value::Map({{"uri", uri}, {"cpus", int64_t{n.cpus}}, {"up", n.up}, {"facts", n.facts.ToValue()}}));
  }
  Value::ListType clients;
  for (const auto& [id, c] : s.clients) {
    auto counts = [](const std::map<std::string, int>& m) {
      Value::MapType out;
      for (const auto& [uri, n] : m) out[uri] = Value(int64_t{n});
      return Value(std::move(out));
    };
    clients.push_back(Value::Map(
        {{"computation", id}, {"demand", counts(c.demand)}, {"shares", counts(c.grant)}, {"held", counts(c.held)}}));
  }
  return Value::Map({{"kind", "scheduler"},
                     {"name", s.name},
                     {"uri", s.uri},
                     {"pid", int64_t{getpid()}},
                     {"uptime_s", absl::ToDoubleSeconds(absl::Now() - s.start_time)},
                     {"max_clients", int64_t{s.settings.max_clients}},
                     {"nodes", Value(std::move(nodes))},
                     {"clients", Value(std::move(clients))}});
}

Task<absl::StatusOr<Value>> Request(Value arg) {
  if (g_state == nullptr) co_return absl::UnavailableError("the scheduler is closing");
  State& s = *g_state;
  std::string op;
  absl::Status read = MessageReader(arg).Get("op", &op).status();
  if (!read.ok()) {
    PICOS_LOG_LIMITED(warn, "scheduler: malformed request: {}", read.ToString());
    co_return absl::InvalidArgumentError("malformed request: needs op");
  }
  if (op == "info") co_return Info(s);
  std::string id;
  read = MessageReader(arg).Get("computation", &id).status();
  if (!read.ok() || !ValidId(id)) {
    PICOS_LOG_LIMITED(warn, "scheduler: malformed {} request", op.substr(0, 32));
    co_return absl::InvalidArgumentError("malformed request: needs computation (1..64 of [A-Za-z0-9_-])");
  }
  if (op == "join") {
    const Value& task = arg["client"];
    absl::StatusOr<std::map<std::string, int>> demand = ReadCounts(s, arg["demand"], "demand");
    if (!task.is_task() || !demand.ok()) {
      PICOS_LOG_LIMITED(warn, "scheduler: malformed join of {}", id);
      co_return absl::InvalidArgumentError(
          "malformed join: needs client (a task) and demand (a map of node URI to 0..256)");
    }
    if (s.clients.contains(id)) co_return absl::AlreadyExistsError(absl::StrCat("computation ", id, " joined already"));
    if (static_cast<int>(s.clients.size()) >= s.settings.max_clients) {
      PICOS_LOG(warn, "scheduler: join of {} refused: {} clients already (--max_clients)", id, s.clients.size());
      co_return absl::ResourceExhaustedError(
          absl::StrCat("this scheduler serves ", s.settings.max_clients, " clients at once (--max_clients)"));
    }
    Client& c = s.clients[id];
    c.id = id;
    c.epoch = 0;
    c.task = task.as_task();
    c.order = ++s.next_order;
    c.demand = *std::move(demand);
    c.watcher = ThisScheduler().Spawn(SpawnOptions{.name = "picos.scheduler.client", .daemon = true}, WatchClient, id,
                                      c.task);
    Say(absl::StrCat("client joined ", id));
    Rebalance(s, id);
    co_return Value::Map({{"shares", GrantsValue(s.clients[id])}});
  }
  if (op == "held") {
    auto it = s.clients.find(id);
    if (it == s.clients.end()) co_return absl::NotFoundError(absl::StrCat("computation ", id, " has not joined"));
    absl::StatusOr<std::map<std::string, int>> held = ReadCounts(s, arg["held"], "held");
    int64_t epoch = -1;
    absl::Status read_epoch = MessageReader(arg).Get("epoch", &epoch).status();
    absl::StatusOr<std::map<std::string, int>> demand = std::map<std::string, int>();
    if (arg.is_map() && arg.as_map().contains("demand")) demand = ReadCounts(s, arg["demand"], "demand");
    if (!held.ok() || !read_epoch.ok() || !demand.ok()) {
      PICOS_LOG_LIMITED(warn, "scheduler: malformed held of {}", id);
      co_return absl::InvalidArgumentError(
          "malformed held: needs held (a map of node URI to 0..256) and epoch; demand, if given, likewise a map");
    }
    Client& c = it->second;
    for (const auto& [uri, n] : *held) c.held[uri] = n;
    for (const auto& [uri, n] : *demand) c.demand[uri] = n;
    // Caught up with the latest grant: what it may hold is that grant.
    if (epoch == c.epoch) c.peak = c.grant;
    Rebalance(s);
    co_return Value(true);
  }
  PICOS_LOG_LIMITED(warn, "scheduler: unknown op {}", op.substr(0, 32));
  co_return absl::InvalidArgumentError(absl::StrCat("unknown op ", op.substr(0, 32)));
}

// Keeps node `uri` known: asks it for its facts and CPUs, watches its
// service, and when it is lost (or never came) tries again every
// --node_retry.
Task<> KeepNode(std::string uri) {
  for (;;) {
    if (g_state == nullptr) co_return;
    absl::StatusOr<remote::Service> svc = co_await remote::Service::Locate(kNodeService, Location::Peer(uri), kNodeTimeout);
    absl::StatusOr<Value> info = absl::UnavailableError("not asked");
    if (!svc.ok()) info = svc.status();
    if (svc.ok()) {
      Value::MapType request;
      request["op"] = Value("info");
      absl::StatusOr<TaskRef> t = co_await svc->Run(Value(std::move(request)), kNodeTimeout);
      if (t.ok()) {
        info = co_await t->Join(kNodeTimeout);
      } else {
        info = t.status();
      }
    }
    if (g_state == nullptr) co_return;
    absl::StatusOr<HostFacts> facts = absl::UnavailableError("no info");
    int64_t cpus = 0;
    if (info.ok()) {
      facts = HostFacts::FromValue((*info)["facts"]);
      cpus = info->GetOr<int64_t>("cpus", 0);
    }
    if (!info.ok() || !facts.ok() || cpus < 1 || cpus > kMaxWorkersPerNode) {
      PICOS_LOG_LIMITED(info, "scheduler: node {} not reached: {}", uri,
                        !info.ok() ? info.status().ToString() : std::string("malformed info reply"));
      absl::Status slept = co_await Sleep(g_state->settings.retry);
      if (!slept.ok()) co_return;
      continue;
    }
    NodeSlot& node = g_state->nodes[uri];
    node.cpus = static_cast<int>(cpus);
    node.facts = *facts;
    node.up = true;
    Say(absl::StrCat("node up ", uri, " ", cpus));
    Rebalance(*g_state);
    // Clients that joined before it came: they say what they want there.
    for (auto& [id, c] : g_state->clients) {
      if (!c.demand.contains(uri)) SendUpdate(*g_state, c);
    }
    std::string why = "its service ended";
    if (Monitor(Self(), svc->server()).ok()) {
      absl::StatusOr<Value> msg = co_await Receive();
      if (!msg.ok()) co_return;  // terminated
      absl::StatusOr<MonitorStatus> st = MonitorStatus::FromValue(*msg);
      if (st.ok() && !st->error.ok()) why = std::string(st->error.message()).substr(0, 200);
    }
    if (g_state == nullptr) co_return;
    NodeSlot& lost = g_state->nodes[uri];
    lost.up = false;
    Say(absl::StrCat("node lost ", uri, " ", why));
    PICOS_LOG(warn, "scheduler: node {} lost: {}", uri, why);
    for (auto& [id, c] : g_state->clients) c.held[uri] = c.peak[uri] = 0;  // its workers are gone with it
    Rebalance(*g_state);
    absl::Status slept = co_await Sleep(g_state->settings.retry);
    if (!slept.ok()) co_return;
  }
}

// The addresses `host` resolves to (getaddrinfo, on a pool thread: it
// blocks), as tcp:// URIs with `port`; at most kMaxNodes.
absl::StatusOr<std::vector<std::string>> Resolve(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (rc != 0) return absl::UnavailableError(absl::StrCat("--node_dns ", host, ": ", gai_strerror(rc)));
  std::vector<std::string> out;
  for (addrinfo* a = found; a != nullptr && out.size() < kMaxNodes; a = a->ai_next) {
    char text[NI_MAXHOST] = {};
    if (getnameinfo(a->ai_addr, a->ai_addrlen, text, sizeof text, nullptr, 0, NI_NUMERICHOST) != 0) continue;
    const std::string ip = text;
    std::string uri = absl::StrContains(ip, ':') ? absl::StrCat("tcp://[", ip, "]:", port)
                                                : absl::StrCat("tcp://", ip, ":", port);
    if (std::find(out.begin(), out.end(), uri) == out.end()) out.push_back(std::move(uri));
  }
  freeaddrinfo(found);
  return out;
}

// --node_dns: looks the name up every --node_retry and keeps every new
// address as a node (a node pod that went keeps being retried, as any node).
Task<> WatchDns(std::shared_ptr<ThreadPool> pool) {
  for (;;) {
    if (g_state == nullptr) co_return;
    const std::string host = g_state->settings.dns_host;
    const int port = g_state->settings.dns_port;
    auto lookup = [host, port] { return Resolve(host, port); };
    absl::StatusOr<std::vector<std::string>> uris = co_await pool->Run(lookup);
    if (g_state == nullptr) co_return;
    if (!uris.ok()) {
      PICOS_LOG_LIMITED(info, "scheduler: {}", uris.status().ToString());
    } else {
      for (const std::string& uri : *uris) {
        if (g_state->nodes.contains(uri) || g_state->nodes.size() >= kMaxNodes) continue;
        NodeSlot& n = g_state->nodes[uri];
        n.uri = uri;
        n.keeper = ThisScheduler().Spawn(SpawnOptions{.name = "picos.scheduler.node", .daemon = true}, KeepNode, uri);
      }
    }
    absl::Status slept = co_await Sleep(g_state->settings.retry);
    if (!slept.ok()) co_return;
  }
}

Task<absl::Status> SchedulerMain(Settings settings) {
  const TransportRegistry& t = transports::DefaultTransports();
  State s;
  s.settings = std::move(settings);
  remote::NodeConfig config = std::move(s.settings.config);
  s.name = config.options.name;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<remote::Node> node,
                            co_await remote::Node::Start(t, std::move(config.options)));
  s.uri = node->uris()[0];
  g_state = &s;
  remote::ServiceOptions so;
  so.max_running = 1024;
  PICOS_CO_ASSIGN_OR_RETURN(remote::RegisteredService svc, remote::RegisterService(kSchedulerService, Request, so));
  std::thread(ForwardDaemonSignals, Self(), kSignalMessage).detach();
  Say(absl::StrCat("listening ", node->uris()[0]));
  PICOS_CO_RETURN_IF_ERROR(co_await remote::ConnectPeers(*node, config.peers));
  for (const std::string& uri : s.settings.nodes) {
    NodeSlot& n = s.nodes[uri];
    n.uri = uri;
    n.keeper = ThisScheduler().Spawn(SpawnOptions{.name = "picos.scheduler.node", .daemon = true}, KeepNode, uri);
  }
  std::shared_ptr<ThreadPool> dns_pool;
  TaskRef dns;
  if (!s.settings.dns_host.empty()) {
    ThreadPool::Options po;
    po.threads = 1;
    dns_pool = std::make_shared<ThreadPool>(po);
    dns = ThisScheduler().Spawn(SpawnOptions{.name = "picos.scheduler.dns", .daemon = true}, WatchDns, dns_pool);
  }
  for (;;) {
    absl::StatusOr<Value> msg = co_await Receive();
    if (!msg.ok()) break;
    if (msg->is_map() && (*msg)[kSignalMessage].is_int()) {
      Say(absl::StrCat("signal ", DaemonSignalName(static_cast<int>((*msg)[kSignalMessage].as_int())), ": closing"));
      break;
    }
  }
  if (dns.valid()) (void)dns.Terminate();
  for (auto& [uri, n] : s.nodes) (void)n.keeper.Terminate();
  for (auto& [id, c] : s.clients) (void)c.watcher.Terminate();
  svc.Unregister();
  g_state = nullptr;
  absl::Status bye = co_await node->Close(absl::Seconds(5));
  if (!bye.ok()) PICOS_LOG(warn, "goodbye to peers: {}", bye.ToString());
  Say("scheduler closed");
  co_return absl::OkStatus();
}

absl::StatusOr<Settings> SettingsFromFlags() {
  Settings out;
  const TransportRegistry& t = transports::DefaultTransports();
  for (const std::string& raw : absl::GetFlag(FLAGS_node)) {
    if (raw.empty()) continue;
    if (out.nodes.size() >= kMaxNodes) return absl::InvalidArgumentError(absl::StrCat("--node: more than ", kMaxNodes));
    std::string uri = absl::StrContains(raw, "://") ? raw : absl::StrCat("tcp://", raw);
    absl::StatusOr<Uri> parsed = ParseUri(uri);
    if (!parsed.ok() || !t.StreamFor(parsed->scheme).ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--node=", raw, ": not a node URI (tcp://HOST:PORT, ...)"));
    }
    if (std::find(out.nodes.begin(), out.nodes.end(), uri) == out.nodes.end()) out.nodes.push_back(uri);
  }
  const std::string dns = absl::GetFlag(FLAGS_node_dns);
  if (!dns.empty()) {
    const size_t colon = dns.rfind(':');
    if (colon == std::string::npos || colon == 0 || dns.size() > 255 ||
        !absl::SimpleAtoi(dns.substr(colon + 1), &out.dns_port) || out.dns_port < 1 || out.dns_port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("--node_dns=", dns, ": HOST:PORT (a port 1 .. 65535)"));
    }
    out.dns_host = dns.substr(0, colon);
  }
  PICOS_ASSIGN_OR_RETURN(out.retry, ParseSecondsFlag("node_retry", absl::GetFlag(FLAGS_node_retry), 0.1, 3600, false));
  out.max_clients = absl::GetFlag(FLAGS_max_clients);
  if (out.max_clients < 1 || out.max_clients > 1024) {
    return absl::InvalidArgumentError(absl::StrCat("--max_clients=", out.max_clients, ": 1 .. 1024"));
  }
  PICOS_RETURN_IF_ERROR(ApplyLogLevelFlag(absl::GetFlag(FLAGS_log_level)));
  remote::NodeFlagDefaults defaults;
  defaults.name = "picos-scheduler";
  defaults.listen.push_back("tcp://127.0.0.1:9705");
  PICOS_ASSIGN_OR_RETURN(out.config, remote::NodeConfigFromFlags(t, defaults));
  return out;
}

}  // namespace

std::vector<std::string> PrepareSchedulerCommandLine(int argc, char** argv) {
  return PrepareDaemonCommandLine(argc, argv, "picos-scheduler", "node", kConfigKeys, &ConfigOrigins());
}

int SchedulerDaemonMain() {
  if (absl::GetFlag(FLAGS_status)) {
    StatusCommand c;
    c.program = "picos-scheduler";
    c.service = kSchedulerService;
    c.op = "info";
    c.uri = absl::GetFlag(FLAGS_connect);
    c.json = absl::GetFlag(FLAGS_json);
    c.timeout = absl::GetFlag(FLAGS_status_timeout);
    c.log_level = absl::GetFlag(FLAGS_log_level);
    c.format = [](const Value& answer, bool json) -> absl::StatusOr<std::string> {
      PICOS_ASSIGN_OR_RETURN(SchedulerStatus st, SchedulerStatus::FromValue(answer));
      return json ? FormatSchedulerJson(st) : FormatSchedulerTable(st);
    };
    return RunStatusCommand(std::move(c));
  }
  absl::StatusOr<Settings> settings = SettingsFromFlags();
  if (!settings.ok()) {
    std::fprintf(stderr, "picos-scheduler: %s\n",
                 std::string(WithConfigOrigin(settings.status(), ConfigOrigins()).message()).c_str());
    return 2;
  }
  const std::string save = absl::GetFlag(FLAGS_save_config);
  if (!save.empty()) {
    absl::Status s = SaveConfigFile(save, "picos-scheduler", kConfigKeys);
    if (!s.ok()) {
      std::fprintf(stderr, "picos-scheduler: %s\n", std::string(s.message()).c_str());
      return 2;
    }
    std::printf("saved the flags to %s\n", save.c_str());
    return 0;
  }
  const sigset_t set = DaemonSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return RunMain("picos-scheduler", SchedulerMain, *std::move(settings));
}

}  // namespace picos::compute
