#include "compute/daemon_status.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/kernel/log.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "core/remote/service.h"
#include "transports/default_transports.h"

namespace picos::compute {
namespace {

// Longest text field accepted in an answer (names, URIs, ids).
constexpr size_t kMaxText = 1024;

absl::Status Bad(absl::string_view field, absl::string_view why) {
  return absl::DataLossError(absl::StrCat("malformed status answer: field \"", field, "\": ", why));
}

absl::Status ReadText(const Value& v, const char* key, std::string* out) {
  const Value* f = v.Find(key);
  if (f == nullptr || !f->is_string()) return Bad(key, "missing, or not a string");
  if (f->as_string().size() > kMaxText) return Bad(key, "too long");
  *out = f->as_string();
  return absl::OkStatus();
}

absl::Status ReadInt(const Value& v, const char* key, int64_t lo, int64_t hi, int* out) {
  absl::StatusOr<int64_t> n = v.Get<int64_t>(key);
  if (!n.ok()) return Bad(key, "missing, or not an integer");
  if (*n < lo || *n > hi) return Bad(key, absl::StrCat(*n, " is outside ", lo, "..", hi));
  *out = static_cast<int>(*n);
  return absl::OkStatus();
}

absl::Status ReadBool(const Value& v, const char* key, bool* out) {
  const Value* f = v.Find(key);
  if (f == nullptr || !f->is_bool()) return Bad(key, "missing, or not a bool");
  *out = f->as_bool();
  return absl::OkStatus();
}

// A map of node URI to a worker count (0..256), as the scheduler's info
// gives demands, shares and holdings.
absl::Status ReadCounts(const Value& v, const char* key, std::map<std::string, int>* out) {
  const Value* f = v.Find(key);
  if (f == nullptr || !f->is_map()) return Bad(key, "missing, or not a map");
  if (f->as_map().size() > kMaxStatusNodes) return Bad(key, "too many nodes");
  for (const auto& [uri, n] : f->as_map()) {
    if (uri.size() > kMaxText) return Bad(key, "a node URI too long");
    if (!n.is_int() || n.as_int() < 0 || n.as_int() > 256) return Bad(key, "a count is not 0..256");
    (*out)[uri] = static_cast<int>(n.as_int());
  }
  return absl::OkStatus();
}

Value CountsValue(const std::map<std::string, int>& m) {
  Value::MapType out;
  for (const auto& [uri, n] : m) out[uri] = Value(int64_t{n});
  return Value(std::move(out));
}

absl::Status ReadUptime(const Value& v, double* out) {
  absl::StatusOr<double> up = v.Get<double>("uptime_s");
  if (!up.ok() || !std::isfinite(*up) || *up < 0) return Bad("uptime_s", "not seconds");
  *out = *up;
  return absl::OkStatus();
}

std::string Bytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? absl::StrCat(n, " B") : absl::StrFormat("%.1f %s", v, units[u]);
}

std::string Uptime(double s) {
  const int64_t t = static_cast<int64_t>(s);
  if (t < 60) return absl::StrCat(t, "s");
  if (t < 3600) return absl::StrFormat("%dm%02ds", t / 60, t % 60);
  if (t < 86400) return absl::StrFormat("%dh%02dm", t / 3600, (t / 60) % 60);
  return absl::StrFormat("%dd%02dh", t / 86400, (t / 3600) % 24);
}

void AppendJson(const Value& v, std::string* out) {
  switch (v.type()) {
    case Value::Type::kNull: out->append("null"); return;
    case Value::Type::kBool: out->append(v.as_bool() ? "true" : "false"); return;
    case Value::Type::kInt: absl::StrAppend(out, v.as_int()); return;
    case Value::Type::kUint: absl::StrAppend(out, v.as_uint()); return;
    case Value::Type::kDouble: {
      const double d = v.as_double();
      // JSON has no NaN or infinity.
      if (!std::isfinite(d)) {
        out->append("null");
      } else {
        absl::StrAppend(out, absl::StrFormat("%.17g", d));
      }
      return;
    }
    case Value::Type::kString: out->append(JsonQuote(v.as_string())); return;
    case Value::Type::kBytes: out->append(JsonQuote(absl::Base64Escape(v.as_string()))); return;
    case Value::Type::kList: {
      out->push_back('[');
      bool first = true;
      for (const Value& e : v.as_list()) {
        if (!first) out->push_back(',');
        first = false;
        AppendJson(e, out);
      }
      out->push_back(']');
      return;
    }
    case Value::Type::kMap: {
      out->push_back('{');
      bool first = true;
      for (const auto& [k, e] : v.as_map()) {
        if (!first) out->push_back(',');
        first = false;
        out->append(JsonQuote(k));
        out->push_back(':');
        AppendJson(e, out);
      }
      out->push_back('}');
      return;
    }
    case Value::Type::kTask:
    case Value::Type::kChannel: out->append(JsonQuote(v.DebugString())); return;
  }
  out->append("null");
}

}  // namespace

Value DaemonStatus::ToValue() const {
  Value::ListType cs;
  for (const ComputationStatus& c : computations) {
    Value::ListType ws;
    for (const WorkerStatus& w : c.workers) {
      ws.push_back(Value::Map({{"index", int64_t{w.index}}, {"pid", int64_t{w.pid}}, {"uri", w.uri}, {"state", w.state}}));
    }
    cs.push_back(Value::Map({{"id", c.id}, {"client_lost", c.client_lost}, {"workers", Value(std::move(ws))}}));
  }
  return Value::Map({{"kind", kind},
                     {"name", name},
                     {"uri", uri},
                     {"pid", int64_t{pid}},
                     {"uptime_s", uptime_s},
                     {"facts", facts.ToValue()},
                     {"cpus", int64_t{cpus}},
                     {"peers", int64_t{peers}},
                     {"started", int64_t{started}},
                     {"serve", int64_t{serve}},
                     {"closing", closing},
                     {"in_service", in_service},
                     {"computations", Value(std::move(cs))}});
}

absl::StatusOr<DaemonStatus> DaemonStatus::FromValue(const Value& v) {
  if (!v.is_map()) return absl::DataLossError("malformed status answer: not a map");
  DaemonStatus s;
  PICOS_RETURN_IF_ERROR(ReadText(v, "kind", &s.kind));
  PICOS_RETURN_IF_ERROR(ReadText(v, "name", &s.name));
  PICOS_RETURN_IF_ERROR(ReadText(v, "uri", &s.uri));
  PICOS_RETURN_IF_ERROR(ReadInt(v, "pid", 1, int64_t{1} << 31, &s.pid));
  PICOS_RETURN_IF_ERROR(ReadUptime(v, &s.uptime_s));
  const Value* facts = v.Find("facts");
  if (facts == nullptr) return Bad("facts", "missing");
  absl::StatusOr<HostFacts> f = HostFacts::FromValue(*facts);
  if (!f.ok()) return Bad("facts", f.status().message());
  s.facts = *std::move(f);
  PICOS_RETURN_IF_ERROR(ReadInt(v, "cpus", 0, 256, &s.cpus));
  PICOS_RETURN_IF_ERROR(ReadInt(v, "peers", 0, 1 << 30, &s.peers));
  PICOS_RETURN_IF_ERROR(ReadInt(v, "started", 0, 1 << 30, &s.started));
  PICOS_RETURN_IF_ERROR(ReadInt(v, "serve", 0, 1 << 30, &s.serve));
  PICOS_RETURN_IF_ERROR(ReadBool(v, "closing", &s.closing));
  PICOS_RETURN_IF_ERROR(ReadBool(v, "in_service", &s.in_service));
  const Value* cs = v.Find("computations");
  if (cs == nullptr || !cs->is_list()) return Bad("computations", "missing, or not a list");
  if (cs->as_list().size() > kMaxStatusComputations) return Bad("computations", "too many");
  for (const Value& c : cs->as_list()) {
    if (!c.is_map()) return Bad("computations", "an entry is not a map");
    ComputationStatus cst;
    PICOS_RETURN_IF_ERROR(ReadText(c, "id", &cst.id));
    PICOS_RETURN_IF_ERROR(ReadBool(c, "client_lost", &cst.client_lost));
    const Value* ws = c.Find("workers");
    if (ws == nullptr || !ws->is_list()) return Bad("workers", "missing, or not a list");
    if (ws->as_list().size() > kMaxStatusWorkers) return Bad("workers", "too many");
    for (const Value& w : ws->as_list()) {
      if (!w.is_map()) return Bad("workers", "an entry is not a map");
      WorkerStatus wst;
      PICOS_RETURN_IF_ERROR(ReadInt(w, "index", 0, 1 << 20, &wst.index));
      PICOS_RETURN_IF_ERROR(ReadInt(w, "pid", 0, int64_t{1} << 31, &wst.pid));
      PICOS_RETURN_IF_ERROR(ReadText(w, "uri", &wst.uri));
      PICOS_RETURN_IF_ERROR(ReadText(w, "state", &wst.state));
      cst.workers.push_back(std::move(wst));
    }
    s.computations.push_back(std::move(cst));
  }
  return s;
}

Task<absl::StatusOr<Value>> AskDaemon(remote::Node& node, std::string uri, std::string service, std::string op,
                                      absl::Duration timeout) {
  auto where = [&uri](const absl::Status& st) {
    return absl::Status(st.code(), absl::StrCat(uri, ": ", st.message()));
  };
  absl::Status connected = co_await node.Connect(uri);
  if (!connected.ok()) co_return where(connected);
  absl::StatusOr<remote::Service> svc = co_await remote::Service::Locate(service, Location::Peer(uri), timeout);
  if (!svc.ok()) co_return where(svc.status());
  Value::MapType request;
  request["op"] = Value(std::move(op));
  absl::StatusOr<TaskRef> asked = co_await svc->Run(Value(std::move(request)), timeout);
  if (!asked.ok()) co_return where(asked.status());
  absl::StatusOr<Value> answer = co_await asked->Join(timeout);
  if (!answer.ok()) co_return where(answer.status());
  co_return answer;
}

Task<absl::StatusOr<DaemonStatus>> QueryDaemonStatus(remote::Node& node, std::string uri,
                                                     std::string service, absl::Duration timeout) {
  absl::StatusOr<Value> answer = co_await AskDaemon(node, uri, std::move(service), "status", timeout);
  if (!answer.ok()) co_return answer.status();
  absl::StatusOr<DaemonStatus> st = DaemonStatus::FromValue(*answer);
  if (!st.ok()) co_return absl::Status(st.status().code(), absl::StrCat(uri, ": ", st.status().message()));
  co_return st;
}

std::string FormatStatusTable(const DaemonStatus& s) {
  std::string out;
  const HostFacts& f = s.facts;
  absl::StrAppend(&out, s.kind, " ", s.name.empty() ? "(unnamed)" : s.name, " at ", s.uri, ", pid ", s.pid,
                  ", up ", Uptime(s.uptime_s), ", host ", f.host, " (", f.platform, ")\n");
  absl::StrAppend(&out, absl::StrFormat("health: cpu %.0f%% idle of %d, mem %s of %s free, disk %s of %s free, "
                                        "swap %s of %s free, load %.2f %.2f %.2f\n",
                                        f.cpu_available_percent, f.cpus, Bytes(f.memory_available),
                                        Bytes(f.memory_total), Bytes(f.disk_free), Bytes(f.disk_total),
                                        Bytes(f.swap_free), Bytes(f.swap_total), f.load[0], f.load[1], f.load[2]));
  const size_t n = s.computations.size();
  absl::StrAppend(&out, "serving: ", n, n == 1 ? " computation (" : " computations (", s.started, " started",
                  s.serve > 0 ? absl::StrCat(" of ", s.serve) : std::string(", no limit"), "), ", s.cpus,
                  s.cpus == 1 ? " worker each, " : " workers each, ", s.peers, s.peers == 1 ? " peer" : " peers",
                  s.closing ? ", closing" : (s.in_service ? ", in service" : ", out of service hours"), "\n");
  if (n == 0) return out;
  size_t id_width = 11;
  for (const ComputationStatus& c : s.computations) id_width = std::max(id_width, c.id.size());
  absl::StrAppend(&out, absl::StrFormat("%-*s  %-6s  %-8s  %-8s  %s\n", static_cast<int>(id_width), "COMPUTATION",
                                        "WORKER", "PID", "STATE", "URI"));
  for (const ComputationStatus& c : s.computations) {
    if (c.workers.empty()) {
      absl::StrAppend(&out, absl::StrFormat("%-*s  %-6s  %-8s  %-8s  %s\n", static_cast<int>(id_width), c.id, "-",
                                            "-", c.client_lost ? "orphan" : "-", ""));
    }
    for (const WorkerStatus& w : c.workers) {
      absl::StrAppend(&out, absl::StrFormat("%-*s  %-6d  %-8d  %-8s  %s%s\n", static_cast<int>(id_width), c.id,
                                            w.index, w.pid, w.state, w.uri,
                                            c.client_lost ? "  (client lost)" : ""));
    }
  }
  return out;
}

std::string ValueToJson(const Value& v) {
  std::string out;
  AppendJson(v, &out);
  return out;
}

std::string FormatStatusJson(const DaemonStatus& status) { return ValueToJson(status.ToValue()) + "\n"; }

Value SchedulerStatus::ToValue() const {
  Value::ListType ns;
  for (const SchedulerNodeStatus& n : nodes) {
    ns.push_back(Value::Map({{"uri", n.uri}, {"cpus", int64_t{n.cpus}}, {"up", n.up}, {"facts", n.facts.ToValue()}}));
  }
  Value::ListType cs;
  for (const SchedulerClientStatus& c : clients) {
    cs.push_back(Value::Map({{"computation", c.computation},
                             {"demand", CountsValue(c.demand)},
                             {"shares", CountsValue(c.shares)},
                             {"held", CountsValue(c.held)}}));
  }
  return Value::Map({{"kind", kind},
                     {"name", name},
                     {"uri", uri},
                     {"pid", int64_t{pid}},
                     {"uptime_s", uptime_s},
                     {"max_clients", int64_t{max_clients}},
                     {"nodes", Value(std::move(ns))},
                     {"clients", Value(std::move(cs))}});
}

absl::StatusOr<SchedulerStatus> SchedulerStatus::FromValue(const Value& v) {
  if (!v.is_map()) return absl::DataLossError("malformed status answer: not a map");
  SchedulerStatus s;
  PICOS_RETURN_IF_ERROR(ReadText(v, "kind", &s.kind));
  if (s.kind != "scheduler") return Bad("kind", absl::StrCat("\"", s.kind.substr(0, 32), "\", not a scheduler"));
  PICOS_RETURN_IF_ERROR(ReadText(v, "name", &s.name));
  PICOS_RETURN_IF_ERROR(ReadText(v, "uri", &s.uri));
  PICOS_RETURN_IF_ERROR(ReadInt(v, "pid", 1, int64_t{1} << 31, &s.pid));
  PICOS_RETURN_IF_ERROR(ReadUptime(v, &s.uptime_s));
  PICOS_RETURN_IF_ERROR(ReadInt(v, "max_clients", 1, 1 << 20, &s.max_clients));
  const Value* ns = v.Find("nodes");
  if (ns == nullptr || !ns->is_list()) return Bad("nodes", "missing, or not a list");
  if (ns->as_list().size() > kMaxStatusNodes) return Bad("nodes", "too many");
  for (const Value& n : ns->as_list()) {
    if (!n.is_map()) return Bad("nodes", "an entry is not a map");
    SchedulerNodeStatus nst;
    PICOS_RETURN_IF_ERROR(ReadText(n, "uri", &nst.uri));
    PICOS_RETURN_IF_ERROR(ReadInt(n, "cpus", 0, 256, &nst.cpus));
    PICOS_RETURN_IF_ERROR(ReadBool(n, "up", &nst.up));
    const Value* facts = n.Find("facts");
    if (facts == nullptr) return Bad("facts", "missing");
    // A node never reached yet has no facts (all zero): only an up node's
    // must be whole.
    absl::StatusOr<HostFacts> f = HostFacts::FromValue(*facts);
    if (f.ok()) {
      nst.facts = *std::move(f);
    } else if (nst.up) {
      return Bad("facts", f.status().message());
    }
    s.nodes.push_back(std::move(nst));
  }
  const Value* cs = v.Find("clients");
  if (cs == nullptr || !cs->is_list()) return Bad("clients", "missing, or not a list");
  if (cs->as_list().size() > kMaxStatusComputations) return Bad("clients", "too many");
  for (const Value& c : cs->as_list()) {
    if (!c.is_map()) return Bad("clients", "an entry is not a map");
    SchedulerClientStatus cst;
    PICOS_RETURN_IF_ERROR(ReadText(c, "computation", &cst.computation));
    PICOS_RETURN_IF_ERROR(ReadCounts(c, "demand", &cst.demand));
    PICOS_RETURN_IF_ERROR(ReadCounts(c, "shares", &cst.shares));
    PICOS_RETURN_IF_ERROR(ReadCounts(c, "held", &cst.held));
    s.clients.push_back(std::move(cst));
  }
  return s;
}

std::string FormatSchedulerTable(const SchedulerStatus& s) {
  std::string out;
  absl::StrAppend(&out, s.kind, " ", s.name.empty() ? "(unnamed)" : s.name, " at ", s.uri, ", pid ", s.pid, ", up ",
                  Uptime(s.uptime_s), "\n");
  int up = 0, cpus = 0;
  for (const SchedulerNodeStatus& n : s.nodes) {
    if (!n.up) continue;
    ++up;
    cpus += n.cpus;
  }
  absl::StrAppend(&out, "serving: ", s.clients.size(), s.clients.size() == 1 ? " client" : " clients", " (at most ",
                  s.max_clients, "), ", up, " of ", s.nodes.size(), s.nodes.size() == 1 ? " node" : " nodes",
                  " up, ", cpus, cpus == 1 ? " CPU\n" : " CPUs\n");
  size_t uri_width = 4;
  for (const SchedulerNodeStatus& n : s.nodes) uri_width = std::max(uri_width, n.uri.size());
  const int uw = static_cast<int>(uri_width);
  if (!s.nodes.empty()) {
    absl::StrAppend(&out, absl::StrFormat("%-*s  %-5s  %-4s  %-8s  %-8s  %s\n", uw, "NODE", "STATE", "CPUS",
                                          "CPU IDLE", "MEM FREE", "HOST"));
    for (const SchedulerNodeStatus& n : s.nodes) {
      if (!n.up && n.facts.cpus == 0) {
        absl::StrAppend(&out, absl::StrFormat("%-*s  %-5s  %-4s  %-8s  %-8s  %s\n", uw, n.uri, "down", "-", "-", "-",
                                              "-"));
        continue;
      }
      absl::StrAppend(&out, absl::StrFormat("%-*s  %-5s  %-4d  %-8s  %-8s  %s\n", uw, n.uri, n.up ? "up" : "down",
                                            n.cpus, absl::StrFormat("%.0f%%", n.facts.cpu_available_percent),
                                            Bytes(n.facts.memory_available), n.facts.host));
    }
  }
  if (s.clients.empty()) return out;
  size_t id_width = 6;
  for (const SchedulerClientStatus& c : s.clients) id_width = std::max(id_width, c.computation.size());
  const int iw = static_cast<int>(id_width);
  absl::StrAppend(&out, absl::StrFormat("%-*s  %-*s  %-6s  %-5s  %s\n", iw, "CLIENT", uw, "NODE", "DEMAND", "SHARE",
                                        "HELD"));
  for (const SchedulerClientStatus& c : s.clients) {
    // Every node it wants, was granted or holds workers on, in URI order.
    std::map<std::string, bool> on;
    for (const auto* m : {&c.demand, &c.shares, &c.held}) {
      for (const auto& [uri, n] : *m) on[uri] = on[uri] || n > 0;
    }
    auto count = [](const std::map<std::string, int>& m, const std::string& uri) {
      auto it = m.find(uri);
      return it == m.end() ? 0 : it->second;
    };
    bool any = false;
    for (const auto& [uri, some] : on) {
      if (!some) continue;
      any = true;
      absl::StrAppend(&out, absl::StrFormat("%-*s  %-*s  %-6d  %-5d  %d\n", iw, c.computation, uw, uri,
                                            count(c.demand, uri), count(c.shares, uri), count(c.held, uri)));
    }
    if (!any) absl::StrAppend(&out, absl::StrFormat("%-*s  %-*s  %-6s  %-5s  %s\n", iw, c.computation, uw, "-", "-",
                                                    "-", "-"));
  }
  return out;
}

std::string FormatSchedulerJson(const SchedulerStatus& status) { return ValueToJson(status.ToValue()) + "\n"; }

namespace {

Task<absl::Status> AskAndPrint(StatusCommand command) {
  const TransportRegistry& t = transports::DefaultTransports();
  remote::NodeFlagValues values = remote::NodeFlagValuesFromCommandLine();
  values.listen.clear();  // a client only
  values.listen_set = true;
  values.peers.clear();
  values.peers_set = true;
  remote::NodeFlagDefaults defaults;
  defaults.name = absl::StrCat(command.program, "-status");
  absl::StatusOr<remote::NodeConfig> config = remote::NodeConfigFromValues(values, t, defaults);
  if (!config.ok()) co_return config.status();
  config->options.connect_timeout = command.timeout;
  config->options.handshake_timeout = command.timeout;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<remote::Node> node,
                            co_await remote::Node::Start(t, std::move(config->options)));
  absl::StatusOr<Value> answer = co_await AskDaemon(*node, command.uri, command.service, command.op, command.timeout);
  if (!answer.ok()) co_return answer.status();
  absl::StatusOr<std::string> out = command.format(*answer, command.json);
  if (!out.ok()) co_return absl::Status(out.status().code(), absl::StrCat(command.uri, ": ", out.status().message()));
  std::fwrite(out->data(), 1, out->size(), stdout);
  std::fflush(stdout);
  (void)co_await node->Close(absl::Seconds(2));
  co_return absl::OkStatus();
}

}  // namespace

int RunStatusCommand(StatusCommand command) {
  const char* program = command.program.c_str();
  if (command.timeout < absl::Seconds(1) || command.timeout > absl::Hours(1)) {
    std::fprintf(stderr, "%s: --status_timeout=%s: 1s..1h\n", program, absl::FormatDuration(command.timeout).c_str());
    return 2;
  }
  if (command.uri.empty() || command.uri.size() > 1024) {
    std::fprintf(stderr, "%s: --connect: the daemon's URI (tcp://host:port)\n", program);
    return 2;
  }
  // The answer, or one line saying why not: the remote layer's own lines
  // (a refused handshake, a failed dial) only with --log_level.
  const std::string& level = command.log_level;
  if (level.empty()) {
    Log().set_level(spdlog::level::off);
  } else if (spdlog::level::from_str(level) != spdlog::level::off || level == "off") {
    Log().set_level(spdlog::level::from_str(level));
  }
  const std::string name = absl::StrCat(command.program, " --status");
  return RunMain(name.c_str(), AskAndPrint, std::move(command));
}

}  // namespace picos::compute
