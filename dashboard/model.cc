#include "dashboard/model.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace picos::dashboard {
namespace {

int64_t Ms(absl::Time t) { return absl::ToUnixMillis(t); }

std::string Str(const Value& event, std::string_view key) {
  const Value* v = event.Find(key);
  return v != nullptr && v->is_string() ? v->as_string() : std::string();
}

std::optional<uint64_t> Uint(const Value& event, std::string_view key) {
  const Value* v = event.Find(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_uint()) return v->as_uint();
  if (v->is_int() && v->as_int() >= 0) return static_cast<uint64_t>(v->as_int());
  return std::nullopt;
}

std::string Num(double d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", d);
  return buf;
}

}  // namespace

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  out.reserve(s.size() + 2);
  for (char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"') {
      out += "\\\"";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c >= 0x7f || c == '<' || c == '>' || c == '&') {
      // '<' '>' '&' too: the text may end up inside HTML.
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  out += '"';
  return out;
}

Model::Model(ModelLimits limits) : limits_(limits) {}

std::string Model::Cut(absl::string_view s) const {
  return std::string(s.substr(0, limits_.max_string_bytes));
}

std::string Model::Delta(absl::string_view kind, const std::string& value_json) {
  return absl::StrCat("{\"t\":\"", kind, "\",\"seq\":", ++seq_, ",\"v\":", value_json, "}");
}

Model::Node* Model::FindNode(const std::string& uri) {
  auto it = nodes_.find(uri);
  if (it != nodes_.end()) return &it->second;
  if (uri.empty() || nodes_.size() >= limits_.max_nodes) {
    if (!uri.empty()) ++dropped_;
    return nullptr;
  }
  Node& n = nodes_[uri];
  n.uri = uri;
  return &n;
}

Model::Worker* Model::FindWorker(const std::string& uri) {
  auto it = workers_.find(uri);
  if (it != workers_.end()) return &it->second;
  if (uri.empty() || workers_.size() >= limits_.max_workers) {
    if (!uri.empty()) ++dropped_;
    return nullptr;
  }
  Worker& w = workers_[uri];
  w.uri = uri;
  return &w;
}

Model::Fn* Model::FindFn(const std::string& name) {
  auto it = fns_.find(name);
  if (it != fns_.end()) return &it->second;
  if (fns_.size() >= limits_.max_functions) {
    ++dropped_;
    return nullptr;
  }
  return &fns_[name];
}

std::string Model::NodeJson(const Node& n) const {
  const compute::HostFacts& f = n.facts;
  return absl::StrCat(
      "{\"uri\":", JsonString(n.uri), ",\"state\":", JsonString(n.state),
      ",\"host\":", JsonString(f.host), ",\"platform\":", JsonString(f.platform),
      ",\"cpus\":", f.cpus, ",\"cpu_avail\":", Num(f.cpu_available_percent),
      ",\"mem_total\":", f.memory_total, ",\"mem_avail\":", f.memory_available,
      ",\"swap_total\":", f.swap_total, ",\"swap_free\":", f.swap_free,
      ",\"disk_total\":", f.disk_total, ",\"disk_free\":", f.disk_free, ",\"load\":[",
      Num(f.load[0]), ",", Num(f.load[1]), ",", Num(f.load[2]), "],\"pulse\":", n.last_pulse_ms,
      ",\"workers\":", n.workers, ",\"submitted\":", n.submitted, ",\"done\":", n.done,
      ",\"running\":", n.running, ",\"failed\":", n.failed, "}");
}

std::string Model::JobJson(const Job& j) const {
  return absl::StrCat("{\"id\":", j.id, ",\"fn\":", JsonString(j.fn),
                      ",\"worker\":", JsonString(j.worker), ",\"node\":", JsonString(j.node),
                      ",\"arg\":", JsonString(j.arg), ",\"async\":", j.async ? "true" : "false",
                      ",\"start\":", j.start_ms, ",\"end\":", j.end_ms, ",\"code\":", j.code,
                      ",\"outcome\":", JsonString(j.outcome), "}");
}

std::string Model::WorkerJson(const Worker& w) const {
  std::vector<std::string> jobs;
  for (uint64_t id : w.running) {
    auto it = running_.find(id);
    if (it != running_.end()) jobs.push_back(JobJson(it->second));
  }
  return absl::StrCat("{\"uri\":", JsonString(w.uri), ",\"node\":", JsonString(w.node),
                      ",\"state\":", JsonString(w.state), ",\"done\":", w.done, ",\"jobs\":[",
                      absl::StrJoin(jobs, ","), "]}");
}

std::string Model::FnJson(const std::string& name, const Fn& f, int64_t now_ms) const {
  // Rate: jobs ended within the window (or since the first end, when that
  // is shorter) per second; ETA: what is left at that rate.
  const int64_t window_ms = absl::ToInt64Milliseconds(limits_.rate_window);
  size_t recent = 0;
  for (int64_t t : f.ends) recent += t >= now_ms - window_ms ? 1 : 0;
  double rate = 0;
  if (recent > 0) {
    const int64_t since = std::max<int64_t>(now_ms - window_ms, f.ends.front());
    const double secs = std::max<double>(1.0, (now_ms - since) / 1000.0);
    rate = recent / secs;
  }
  const uint64_t total = f.done + f.failed + f.running + f.waiting;
  const uint64_t left = f.running + f.waiting;
  const double eta = rate > 0 ? left / rate : -1;
  return absl::StrCat("{\"fn\":", JsonString(name), ",\"total\":", total, ",\"done\":", f.done,
                      ",\"failed\":", f.failed, ",\"running\":", f.running,
                      ",\"waiting\":", f.waiting, ",\"rate\":", Num(rate), ",\"eta\":", Num(eta),
                      "}");
}

void Model::AddEvent(int64_t now_ms, const std::string& type, const std::string& text,
                     std::vector<std::string>* deltas) {
  events_.push_back(EventLine{now_ms, type, Cut(text)});
  while (events_.size() > limits_.events) events_.pop_front();
  deltas->push_back(Delta("event", absl::StrCat("{\"time\":", now_ms, ",\"type\":",
                                                JsonString(type), ",\"text\":",
                                                JsonString(events_.back().text), "}")));
}

void Model::JobEnded(uint64_t id, int code, const std::string& outcome, int64_t now_ms,
                     std::vector<std::string>* deltas) {
  auto it = running_.find(id);
  if (it == running_.end()) return;
  Job job = std::move(it->second);
  running_.erase(it);
  job.end_ms = now_ms;
  job.code = code;
  job.outcome = outcome;
  job.task = TaskRef();
  const bool ok = outcome == "done";
  if (Worker* w = FindWorker(job.worker)) {
    w->running.erase(std::remove(w->running.begin(), w->running.end(), id), w->running.end());
    if (ok) ++w->done;
    if (w->state == "busy" && w->running.empty()) w->state = "idle";
  }
  if (Node* n = FindNode(job.node)) {
    if (n->running > 0) --n->running;
    ++(ok ? n->done : n->failed);
    deltas->push_back(Delta("node", NodeJson(*n)));
  }
  if (Fn* f = FindFn(job.fn)) {
    if (f->running > 0) --f->running;
    ++(ok ? f->done : f->failed);
    f->ends.push_back(now_ms);
    const int64_t window_ms = absl::ToInt64Milliseconds(limits_.rate_window);
    while (!f->ends.empty() &&
           (f->ends.front() < now_ms - window_ms || f->ends.size() > limits_.finished_jobs)) {
      f->ends.pop_front();
    }
    deltas->push_back(Delta("fn", FnJson(job.fn, *f, now_ms)));
  }
  deltas->push_back(Delta("job", JobJson(job)));
  if (auto w = workers_.find(job.worker); w != workers_.end()) {
    deltas->push_back(Delta("worker", WorkerJson(w->second)));
  }
  finished_.push_back(std::move(job));
  while (finished_.size() > limits_.finished_jobs) finished_.pop_front();
}

void Model::Apply(const Value& event, absl::Time now, std::vector<std::string>* deltas) {
  if (!event.is_map()) return;
  const std::string type = Str(event, "type");
  const int64_t now_ms = Ms(now);
  const std::string node_uri = Cut(Str(event, "node"));
  const std::string worker_uri = Cut(Str(event, "worker"));
  if (std::string id = Str(event, "computation"); !id.empty()) computation_id_ = Cut(id);

  auto node_facts = [&](Node* n) {
    if (n == nullptr) return;
    if (const Value* f = event.Find("facts"); f != nullptr) {
      absl::StatusOr<compute::HostFacts> facts = compute::HostFacts::FromValue(*f);
      if (facts.ok()) {
        n->facts = std::move(*facts);
        n->facts.host = Cut(n->facts.host);
        n->facts.platform = Cut(n->facts.platform);
      }
    }
    n->last_pulse_ms = now_ms;
  };
  auto node_state = [&](const char* state, bool log) {
    Node* n = FindNode(node_uri);
    if (n == nullptr) return;
    n->state = state;
    deltas->push_back(Delta("node", NodeJson(*n)));
    if (log) {
      std::string text = absl::StrCat("node ", node_uri, " ", state);
      if (std::string m = Str(event, "message"); !m.empty()) absl::StrAppend(&text, ": ", m);
      AddEvent(now_ms, type, text, deltas);
    }
  };
  auto worker_state = [&](const char* state) {
    Worker* w = FindWorker(worker_uri);
    if (w == nullptr) return;
    auto is_alive = [](const std::string& s) { return s != "new" && s != "lost" && s != "closed"; };
    const bool was_alive = is_alive(w->state);
    w->state = state;
    if (w->node.empty()) w->node = node_uri;
    const bool alive = is_alive(w->state);
    if (Node* n = FindNode(w->node); n != nullptr && was_alive != alive) {
      if (alive) {
        ++n->workers;
      } else if (n->workers > 0) {
        --n->workers;
      }
      deltas->push_back(Delta("node", NodeJson(*n)));
    }
    deltas->push_back(Delta("worker", WorkerJson(*w)));
    std::string text = absl::StrCat("worker ", worker_uri, " ", state);
    if (std::string m = Str(event, "message"); !m.empty()) absl::StrAppend(&text, ": ", m);
    AddEvent(now_ms, type, text, deltas);
  };

  if (type == "computation_scheduled" || type == "computation_closed") {
    computation_state_ = type == "computation_scheduled" ? "scheduled" : "closed";
    deltas->push_back(Delta("computation", absl::StrCat("{\"id\":", JsonString(computation_id_),
                                                        ",\"state\":",
                                                        JsonString(computation_state_), "}")));
    AddEvent(now_ms, type, absl::StrCat("computation ", computation_state_), deltas);
  } else if (type == "node_initialized" || type == "node_health" || type == "node_discovered") {
    Node* n = FindNode(node_uri);
    if (n == nullptr) return;
    node_facts(n);
    // node_initialized also ends the wait of a node discovered disabled.
    if (type == "node_initialized") n->state = "initialized";
    if (type == "node_discovered") n->state = "disabled";
    deltas->push_back(Delta("node", NodeJson(*n)));
    if (type == "node_initialized") AddEvent(now_ms, type, "node " + node_uri + " initialized", deltas);
    if (type == "node_discovered") {
      AddEvent(now_ms, type, "node " + node_uri + " disabled: waits for EnableNode", deltas);
    }
  } else if (type == "node_ignored") {
    AddEvent(now_ms, type, absl::StrCat("node ", node_uri, " ignored: ", Str(event, "reason")),
             deltas);
  } else if (type == "node_suspended") {
    node_state("suspended", true);
  } else if (type == "node_resumed") {
    node_state("initialized", true);
  } else if (type == "node_closed") {
    node_state("closed", true);
  } else if (type == "node_lost") {
    node_state("lost", true);
  } else if (type == "worker_initialized") {
    Worker* w = FindWorker(worker_uri);
    if (w == nullptr) return;
    w->node = node_uri;
    worker_state("idle");
  } else if (type == "worker_discovered") {
    Worker* w = FindWorker(worker_uri);
    if (w == nullptr) return;
    w->node = node_uri;
    worker_state("disabled");
  } else if (type == "worker_setup_failed") {
    // The hook's failure: the worker_closed that follows closes the worker.
    const char* stage = Str(event, "stage") == "node" ? "node" : "worker";
    AddEvent(now_ms, type,
             absl::StrCat("worker ", worker_uri, " ", stage, " setup failed: ", Str(event, "message")),
             deltas);
  } else if (type == "worker_suspended") {
    worker_state("suspended");
  } else if (type == "worker_resumed") {
    Worker* w = FindWorker(worker_uri);
    worker_state(w != nullptr && !w->running.empty() ? "busy" : "idle");
  } else if (type == "worker_closed") {
    worker_state("closed");
  } else if (type == "worker_lost") {
    worker_state("lost");
  } else if (type == "worker_restarted") {
    AddEvent(now_ms, type,
             absl::StrCat("worker ", Str(event, "old"), " restarted as ", worker_uri), deltas);
  } else if (type == "job_started") {
    std::optional<uint64_t> id = Uint(event, "job");
    if (!id || running_.contains(*id)) return;
    if (running_.size() >= limits_.max_running_jobs) {
      ++dropped_;
      return;
    }
    Job& j = running_[*id];
    j.id = *id;
    j.fn = Cut(Str(event, "fn"));
    j.worker = worker_uri;
    j.start_ms = now_ms;
    j.outcome = "running";
    if (const Value* t = event.Find("task"); t != nullptr && t->is_task()) j.task = t->as_task();
    if (const Value* a = event.Find("async"); a != nullptr && a->is_bool()) j.async = a->as_bool();
    if (const Value* a = event.Find("arg"); a != nullptr && (a->is_bytes() || a->is_string())) {
      j.arg = a->as_string().substr(0, limits_.arg_preview_bytes);
    }
    if (Worker* w = FindWorker(worker_uri)) {
      j.node = w->node;
      w->running.push_back(*id);
      if (!j.async && w->state == "idle") w->state = "busy";
    }
    if (Node* n = FindNode(j.node)) {
      ++n->submitted;
      ++n->running;
      deltas->push_back(Delta("node", NodeJson(*n)));
    }
    if (Fn* f = FindFn(j.fn)) {
      ++f->started;
      ++f->running;
      if (f->waiting > 0) --f->waiting;
      deltas->push_back(Delta("fn", FnJson(j.fn, *f, now_ms)));
    }
    deltas->push_back(Delta("job", JobJson(j)));
    if (auto w = workers_.find(worker_uri); w != workers_.end()) {
      deltas->push_back(Delta("worker", WorkerJson(w->second)));
    }
  } else if (type == "job_finished") {
    std::optional<uint64_t> id = Uint(event, "job");
    if (!id) return;
    const Value* c = event.Find("code");
    const int code = c != nullptr && c->is_int() ? static_cast<int>(c->as_int()) : 2;
    JobEnded(*id, code, code == 0 ? "done" : "failed", now_ms, deltas);
    if (code != 0) {
      AddEvent(now_ms, type,
               absl::StrCat("job ", *id, " (", Str(event, "fn"), ") failed: ", Str(event, "message")),
               deltas);
    }
  } else if (type == "job_terminated") {
    std::optional<uint64_t> id = Uint(event, "job");
    if (!id) return;
    JobEnded(*id, -1, "terminated", now_ms, deltas);
    AddEvent(now_ms, type, absl::StrCat("job ", *id, " (", Str(event, "fn"), ") terminated"),
             deltas);
  } else if (type == "job_lost") {
    std::optional<uint64_t> id = Uint(event, "job");
    if (!id) return;
    JobEnded(*id, -2, "lost", now_ms, deltas);
    AddEvent(now_ms, type, absl::StrCat("job ", *id, " lost: ", Str(event, "message")), deltas);
  } else if (type == "job_rerun") {
    // The job runs again: it ends here as lost on its old worker and starts
    // again with job_started.
    std::optional<uint64_t> id = Uint(event, "job");
    if (!id) return;
    JobEnded(*id, -2, "lost", now_ms, deltas);
    if (Fn* f = FindFn(Cut(Str(event, "fn"))); f != nullptr && f->failed > 0) {
      --f->failed;  // not a failure of the function: it runs again
      ++f->waiting;
    }
    AddEvent(now_ms, type, absl::StrCat("job ", *id, " re-run (its worker ", worker_uri, " was lost)"),
             deltas);
  }
}

void Model::SetWaiting(const absl::flat_hash_map<std::string, uint64_t>& waiting, absl::Time now,
                       std::vector<std::string>* deltas) {
  const int64_t now_ms = Ms(now);
  for (auto& [name, f] : fns_) {
    auto it = waiting.find(name);
    const uint64_t w = it == waiting.end() ? 0 : it->second;
    if (w != f.waiting) {
      f.waiting = w;
      deltas->push_back(Delta("fn", FnJson(name, f, now_ms)));
    }
  }
  for (const auto& [name, w] : waiting) {
    if (fns_.contains(name) || w == 0) continue;
    if (Fn* f = FindFn(Cut(name))) {
      f->waiting = w;
      deltas->push_back(Delta("fn", FnJson(Cut(name), *f, now_ms)));
    }
  }
}

std::string Model::StateJson(absl::Time now) const {
  const int64_t now_ms = Ms(now);
  std::vector<std::string> nodes, workers, running, finished, fns, events;
  for (const auto& [uri, n] : nodes_) nodes.push_back(NodeJson(n));
  for (const auto& [uri, w] : workers_) workers.push_back(WorkerJson(w));
  for (const auto& [id, j] : running_) running.push_back(JobJson(j));
  for (const Job& j : finished_) finished.push_back(JobJson(j));
  for (const auto& [name, f] : fns_) fns.push_back(FnJson(name, f, now_ms));
  for (const EventLine& e : events_) {
    events.push_back(absl::StrCat("{\"time\":", e.time_ms, ",\"type\":", JsonString(e.type),
                                  ",\"text\":", JsonString(e.text), "}"));
  }
  return absl::StrCat(
      "{\"seq\":", seq_, ",\"now\":", now_ms, ",\"computation\":{\"id\":",
      JsonString(computation_id_), ",\"state\":", JsonString(computation_state_),
      "},\"nodes\":[", absl::StrJoin(nodes, ","), "],\"workers\":[", absl::StrJoin(workers, ","),
      "],\"running\":[", absl::StrJoin(running, ","), "],\"finished\":[",
      absl::StrJoin(finished, ","), "],\"fns\":[", absl::StrJoin(fns, ","), "],\"events\":[",
      absl::StrJoin(events, ","), "],\"dropped\":", dropped_, "}");
}

std::optional<TaskRef> Model::RunningJob(uint64_t id) const {
  auto it = running_.find(id);
  if (it == running_.end() || !it->second.task) return std::nullopt;
  return it->second.task;
}

}  // namespace picos::dashboard
