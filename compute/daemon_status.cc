#include "compute/daemon_status.h"

#include <cmath>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/kernel/log.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/remote/node.h"
#include "core/remote/service.h"

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
  absl::StatusOr<double> up = v.Get<double>("uptime_s");
  if (!up.ok() || !std::isfinite(*up) || *up < 0) return Bad("uptime_s", "not seconds");
  s.uptime_s = *up;
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

Task<absl::StatusOr<DaemonStatus>> QueryDaemonStatus(remote::Node& node, std::string uri,
                                                     std::string service, absl::Duration timeout) {
  auto where = [&uri](const absl::Status& st) {
    return absl::Status(st.code(), absl::StrCat(uri, ": ", st.message()));
  };
  absl::Status connected = co_await node.Connect(uri);
  if (!connected.ok()) co_return where(connected);
  absl::StatusOr<remote::Service> svc = co_await remote::Service::Locate(service, Location::Peer(uri), timeout);
  if (!svc.ok()) co_return where(svc.status());
  Value::MapType request;
  request["op"] = Value("status");
  absl::StatusOr<TaskRef> asked = co_await svc->Run(Value(std::move(request)), timeout);
  if (!asked.ok()) co_return where(asked.status());
  absl::StatusOr<Value> answer = co_await asked->Join(timeout);
  if (!answer.ok()) co_return where(answer.status());
  absl::StatusOr<DaemonStatus> st = DaemonStatus::FromValue(*answer);
  if (!st.ok()) co_return where(st.status());
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

}  // namespace picos::compute
