#include "compute/computation_metrics.h"

#include <chrono>
#include <map>
#include <string_view>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "compute/host_stats.h"
#include "core/kernel/log.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"

namespace picos::compute {
namespace {

// The series of one function label.
struct FnSeries {
  int64_t waiting = 0;
  int64_t running = 0;
  metrics::Counter* submitted = nullptr;
  metrics::Counter* done = nullptr;
  metrics::Counter* failed = nullptr;
  metrics::Counter* lost = nullptr;
  metrics::Counter* terminated = nullptr;
  metrics::Counter* rerun = nullptr;
  metrics::Histogram* duration = nullptr;
};

struct JobRec {
  FnSeries* fn = nullptr;
  bool running = false;
  bool async = false;
  std::string worker;
  int64_t started_ns = 0;
};

enum class WState { kDisabled, kIdle, kSuspended, kClosed, kLost };

struct WorkerRec {
  WState state = WState::kIdle;
  int cpu_jobs = 0;  // CPU jobs running there (busy when > 0)
};

struct NodeRec {
  std::string state = "initialized";
  bool has_facts = false;
  HostFacts facts;
};

// The scheduler's clock when called from a scheduler thread (a virtual one
// in simulations), else the machine's monotonic clock.
int64_t NowNs() {
  if (Scheduler* s = Scheduler::Current(); s != nullptr) return s->NowNs();
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string JobKey(const std::string& computation, uint64_t job) {
  return absl::StrCat(computation, "/", job);
}

}  // namespace

struct ComputationMetrics::State {
  Options options;
  metrics::CounterFamily* submitted = nullptr;
  metrics::CounterFamily* ended = nullptr;
  metrics::HistogramFamily* durations = nullptr;
  metrics::Counter* restarts = nullptr;
  metrics::Counter* node_setup_failures = nullptr;
  metrics::Counter* worker_setup_failures = nullptr;

  mutable absl::Mutex mu;
  std::map<std::string, std::unique_ptr<FnSeries>, std::less<>> fns ABSL_GUARDED_BY(mu);
  std::unique_ptr<FnSeries> overflow ABSL_GUARDED_BY(mu);
  std::map<std::string, JobRec, std::less<>> jobs ABSL_GUARDED_BY(mu);
  std::map<std::string, WorkerRec, std::less<>> workers ABSL_GUARDED_BY(mu);
  std::map<std::string, NodeRec, std::less<>> nodes ABSL_GUARDED_BY(mu);
  bool warned_workers = false;
  bool warned_nodes = false;

  // Last: removed from the registry (waiting for a running scrape) before
  // the maps above go.
  std::vector<metrics::CallbackHandle> handles;

  FnSeries* MakeSeries(const std::string& label) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto s = std::make_unique<FnSeries>();
    s->submitted = submitted->WithLabels({label});
    s->done = ended->WithLabels({label, "done"});
    s->failed = ended->WithLabels({label, "failed"});
    s->lost = ended->WithLabels({label, "lost"});
    s->terminated = ended->WithLabels({label, "terminated"});
    s->rerun = ended->WithLabels({label, "rerun"});
    s->duration = durations->WithLabels({label});
    FnSeries* p = s.get();
    if (label == metrics::kOverflowLabelValue) {
      overflow = std::move(s);
    } else {
      fns.emplace(label, std::move(s));
    }
    return p;
  }

  FnSeries* Fn(const std::string& fn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (auto it = fns.find(fn); it != fns.end()) return it->second.get();
    if (fns.size() < options.max_functions && fn != metrics::kOverflowLabelValue) return MakeSeries(fn);
    if (overflow == nullptr) {
      PICOS_LOG(warn, "compute metrics: more than {} functions; the others are shown as {}",
                options.max_functions, metrics::kOverflowLabelValue);
      return MakeSeries(metrics::kOverflowLabelValue);
    }
    return overflow.get();
  }

  // The job's record, made (waiting) if the queueing was not seen; null
  // beyond max_jobs.
  JobRec* Job(const std::string& key, const std::string& fn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (auto it = jobs.find(key); it != jobs.end()) return &it->second;
    if (jobs.size() >= options.max_jobs) return nullptr;
    JobRec& j = jobs[key];
    j.fn = Fn(fn);
    ++j.fn->waiting;
    return &j;
  }

  // The worker's record; made only by the events that start one.
  WorkerRec* Worker(const std::string& uri, bool make) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (auto it = workers.find(uri); it != workers.end()) return &it->second;
    if (!make) return nullptr;
    if (workers.size() >= options.max_workers) {
      if (!warned_workers) PICOS_LOG(warn, "compute metrics: more than {} workers; later ones not shown", options.max_workers);
      warned_workers = true;
      return nullptr;
    }
    return &workers[uri];
  }

  // The node's record; made only by node_initialized.
  NodeRec* Node(const std::string& uri, bool make) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (auto it = nodes.find(uri); it != nodes.end()) return &it->second;
    if (!make) return nullptr;
    if (nodes.size() >= options.max_nodes) {
      if (!warned_nodes) PICOS_LOG(warn, "compute metrics: more than {} nodes; later ones not shown", options.max_nodes);
      warned_nodes = true;
      return nullptr;
    }
    return &nodes[uri];
  }

  // The job stops running (it ended, or waits again).
  void StopRunning(JobRec& j) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (!j.running) return;
    j.running = false;
    --j.fn->running;
    if (!j.async) {
      if (auto it = workers.find(j.worker); it != workers.end() && it->second.cpu_jobs > 0) {
        --it->second.cpu_jobs;
      }
    }
  }

  // The job ended: out of the gauges and the map.
  void End(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto it = jobs.find(key);
    if (it == jobs.end()) return;
    JobRec& j = it->second;
    if (j.running) {
      StopRunning(j);
    } else {
      --j.fn->waiting;
    }
    jobs.erase(it);
  }
};

ComputationMetrics::ComputationMetrics(std::unique_ptr<State> state) : state_(std::move(state)) {}
ComputationMetrics::~ComputationMetrics() = default;

absl::StatusOr<std::unique_ptr<ComputationMetrics>> ComputationMetrics::Register(metrics::Registry& registry) {
  return Register(registry, Options());
}

absl::StatusOr<std::unique_ptr<ComputationMetrics>> ComputationMetrics::Register(metrics::Registry& registry,
                                                                                 Options options) {
  if (options.max_functions == 0 || options.max_nodes == 0 || options.max_workers == 0 || options.max_jobs == 0) {
    return absl::InvalidArgumentError("compute metrics: every bound must be at least 1");
  }
  auto st = std::make_unique<State>();
  State* s = st.get();
  // One series per function and state, and those of the functions beyond
  // the bound (kOverflowLabelValue; for the families labelled by function
  // alone that is the family's own overflow series, which logs once).
  const size_t fn_series = (options.max_functions + 1) * 5;
  PICOS_ASSIGN_OR_RETURN(s->submitted,
                         registry.AddCounter({.name = "picos_compute_jobs_submitted_total",
                                              .help = "Jobs spawned, by function.",
                                              .label_names = {"function"},
                                              .max_series = options.max_functions + 1}));
  PICOS_ASSIGN_OR_RETURN(
      s->ended, registry.AddCounter({.name = "picos_compute_jobs_total",
                                     .help = "Jobs that ended (done, failed, lost, terminated) and jobs "
                                             "run again after their worker was lost (rerun), by function.",
                                     .label_names = {"function", "state"},
                                     .max_series = fn_series}));
  PICOS_ASSIGN_OR_RETURN(
      s->durations,
      registry.AddHistogram({.name = "picos_compute_job_duration_seconds",
                             .help = "Time from a job's start on its worker to its result, by function.",
                             .label_names = {"function"},
                             .max_series = options.max_functions + 1},
                            options.duration_buckets));
  PICOS_ASSIGN_OR_RETURN(metrics::CounterFamily * restarts,
                         registry.AddCounter("picos_compute_worker_restarts_total",
                                             "Workers started again in place of a lost or closed one."));
  s->restarts = restarts->Get();
  PICOS_ASSIGN_OR_RETURN(
      metrics::CounterFamily * setup_failures,
      registry.AddCounter({.name = "picos_compute_worker_setup_failures_total",
                           .help = "Workers whose setup hook failed (then closed, never given a job), by the "
                                   "hook: node or worker setup.",
                           .label_names = {"stage"},
                           .max_series = 2}));
  s->node_setup_failures = setup_failures->WithLabels({"node"});
  s->worker_setup_failures = setup_failures->WithLabels({"worker"});
  s->options = std::move(options);

  auto add = [&](metrics::FamilyOptions o, metrics::SampleCallback cb) -> absl::Status {
    PICOS_ASSIGN_OR_RETURN(metrics::CallbackHandle h,
                           registry.AddCallback(std::move(o), metrics::Type::kGauge, std::move(cb)));
    s->handles.push_back(std::move(h));
    return absl::OkStatus();
  };
  PICOS_RETURN_IF_ERROR(add({.name = "picos_compute_jobs",
                             .help = "Jobs waiting for a worker and running now, by function.",
                             .label_names = {"function", "state"},
                             .max_series = (s->options.max_functions + 1) * 2},
                            [s]() {
                              absl::MutexLock lock(&s->mu);
                              std::vector<metrics::Sample> out;
                              auto one = [&](const std::string& fn, const FnSeries& f) {
                                out.push_back({{fn, "waiting"}, double(f.waiting)});
                                out.push_back({{fn, "running"}, double(f.running)});
                              };
                              for (const auto& [fn, f] : s->fns) one(fn, *f);
                              if (s->overflow != nullptr) one(metrics::kOverflowLabelValue, *s->overflow);
                              return out;
                            }));
  PICOS_RETURN_IF_ERROR(add({.name = "picos_compute_workers",
                             .help = "Workers by state (busy: running a CPU job).",
                             .label_names = {"state"}},
                            [s]() {
                              absl::MutexLock lock(&s->mu);
                              double disabled = 0, idle = 0, busy = 0, suspended = 0, closed = 0, lost = 0;
                              for (const auto& [uri, w] : s->workers) {
                                switch (w.state) {
                                  case WState::kDisabled: disabled += 1; break;
                                  case WState::kIdle: (w.cpu_jobs > 0 ? busy : idle) += 1; break;
                                  case WState::kSuspended: suspended += 1; break;
                                  case WState::kClosed: closed += 1; break;
                                  case WState::kLost: lost += 1; break;
                                }
                              }
                              return std::vector<metrics::Sample>{{{"disabled"}, disabled},
                                                                  {{"idle"}, idle},
                                                                  {{"busy"}, busy},
                                                                  {{"suspended"}, suspended},
                                                                  {{"closed"}, closed},
                                                                  {{"lost"}, lost}};
                            }));
  PICOS_RETURN_IF_ERROR(add({.name = "picos_compute_nodes", .help = "Nodes by state.", .label_names = {"state"}},
                            [s]() {
                              absl::MutexLock lock(&s->mu);
                              std::map<std::string, double> by = {
                                  {"disabled", 0}, {"initialized", 0}, {"suspended", 0}, {"closed", 0}, {"lost", 0}};
                              for (const auto& [uri, n] : s->nodes) by[n.state] += 1;
                              std::vector<metrics::Sample> out;
                              for (const auto& [state, count] : by) out.push_back({{state}, count});
                              return out;
                            }));
  // The latest facts of each node in use.
  struct FactDef {
    const char* name;
    const char* help;
    double (*read)(const HostFacts&);
  };
  const FactDef facts[] = {
      {"picos_compute_node_cpu_available_percent", "Idle share of the node's CPUs, 0..100.",
       [](const HostFacts& f) { return f.cpu_available_percent; }},
      {"picos_compute_node_memory_total_bytes", "The node's memory.",
       [](const HostFacts& f) { return double(f.memory_total); }},
      {"picos_compute_node_memory_available_bytes", "The node's available memory (MemAvailable).",
       [](const HostFacts& f) { return double(f.memory_available); }},
      {"picos_compute_node_swap_total_bytes", "The node's swap.",
       [](const HostFacts& f) { return double(f.swap_total); }},
      {"picos_compute_node_swap_free_bytes", "The node's free swap.",
       [](const HostFacts& f) { return double(f.swap_free); }},
      {"picos_compute_node_disk_total_bytes", "Size of the file system of the node's --dest_path.",
       [](const HostFacts& f) { return double(f.disk_total); }},
      {"picos_compute_node_disk_free_bytes", "Bytes still free for the node's computations' files.",
       [](const HostFacts& f) { return double(f.disk_free); }},
  };
  for (const FactDef& d : facts) {
    auto read = d.read;
    PICOS_RETURN_IF_ERROR(add({.name = d.name, .help = d.help, .label_names = {"node"}, .max_series = s->options.max_nodes},
                              [s, read]() {
                                absl::MutexLock lock(&s->mu);
                                std::vector<metrics::Sample> out;
                                for (const auto& [uri, n] : s->nodes) {
                                  if (n.has_facts && n.state != "closed" && n.state != "lost") {
                                    out.push_back({{uri}, read(n.facts)});
                                  }
                                }
                                return out;
                              }));
  }
  PICOS_RETURN_IF_ERROR(add({.name = "picos_compute_node_load",
                             .help = "The node's load average over 1, 5 and 15 minutes.",
                             .label_names = {"node", "minutes"},
                             .max_series = s->options.max_nodes * 3},
                            [s]() {
                              absl::MutexLock lock(&s->mu);
                              std::vector<metrics::Sample> out;
                              for (const auto& [uri, n] : s->nodes) {
                                if (n.has_facts && n.state != "closed" && n.state != "lost") {
                                  out.push_back({{uri, "1"}, n.facts.load[0]});
                                  out.push_back({{uri, "5"}, n.facts.load[1]});
                                  out.push_back({{uri, "15"}, n.facts.load[2]});
                                }
                              }
                              return out;
                            }));
  return std::unique_ptr<ComputationMetrics>(new ComputationMetrics(std::move(st)));
}

void ComputationMetrics::JobQueued(const std::string& computation, uint64_t job, const std::string& fn) {
  State& s = *state_;
  absl::MutexLock lock(&s.mu);
  s.Fn(fn)->submitted->Increment();
  (void)s.Job(JobKey(computation, job), fn);
}

void ComputationMetrics::JobDropped(const std::string& computation, uint64_t job) {
  State& s = *state_;
  absl::MutexLock lock(&s.mu);
  const std::string key = JobKey(computation, job);
  auto it = s.jobs.find(key);
  if (it == s.jobs.end()) return;
  it->second.fn->failed->Increment();
  s.End(key);
}

void ComputationMetrics::Observe(const Value& event) {
  if (!event.is_map()) return;
  const std::string type = event.GetOr<std::string>("type", "");
  const std::string computation = event.GetOr<std::string>("computation", "");
  State& s = *state_;
  const int64_t now = NowNs();
  absl::MutexLock lock(&s.mu);
  if (type.rfind("job_", 0) == 0) {
    const Value* id = event.Find("job");
    if (id == nullptr || !(id->is_uint() || id->is_int())) return;
    const uint64_t job = id->is_uint() ? id->as_uint() : static_cast<uint64_t>(id->as_int());
    const std::string key = JobKey(computation, job);
    const std::string fn = event.GetOr<std::string>("fn", "");
    if (type == "job_started") {
      JobRec* j = s.Job(key, fn);
      if (j == nullptr) return;
      // Started again without an event between (its worker refused it
      // before it ran: no rerun): it was never back to waiting.
      if (j->running) {
        s.StopRunning(*j);
      } else {
        --j->fn->waiting;
      }
      ++j->fn->running;
      j->running = true;
      j->async = event.GetOr<bool>("async", false);
      j->worker = event.GetOr<std::string>("worker", "");
      j->started_ns = now;
      if (!j->async) {
        if (auto it = s.workers.find(j->worker); it != s.workers.end()) ++it->second.cpu_jobs;
      }
      return;
    }
    auto it = s.jobs.find(key);
    FnSeries* f = it != s.jobs.end() ? it->second.fn : s.Fn(fn);
    if (type == "job_finished") {
      const bool ok = event.GetOr<int64_t>("code", -1) == 0;
      (ok ? f->done : f->failed)->Increment();
      if (it != s.jobs.end() && it->second.running) {
        f->duration->Observe(static_cast<double>(now - it->second.started_ns) / 1e9);
      }
      s.End(key);
    } else if (type == "job_lost") {
      f->lost->Increment();
      s.End(key);
    } else if (type == "job_terminated") {
      f->terminated->Increment();
      s.End(key);
    } else if (type == "job_rerun") {
      f->rerun->Increment();
      if (it != s.jobs.end() && it->second.running) {
        s.StopRunning(it->second);
        ++f->waiting;
      }
    }
    return;
  }
  if (type.rfind("worker_", 0) == 0) {
    const std::string uri = event.GetOr<std::string>("worker", "");
    if (type == "worker_restarted") {
      s.restarts->Increment();
      s.workers.erase(event.GetOr<std::string>("old", ""));
    }
    if (type == "worker_setup_failed") {
      // Counted even for a worker not tracked; the worker_closed that
      // follows closes it.
      (event.GetOr<std::string>("stage", "") == "node" ? s.node_setup_failures : s.worker_setup_failures)
          ->Increment();
      return;
    }
    WorkerRec* w = s.Worker(uri, type == "worker_initialized" || type == "worker_restarted" ||
                                     type == "worker_discovered");
    if (w == nullptr) return;
    if (type == "worker_discovered") {
      w->state = WState::kDisabled;
    } else if (type == "worker_initialized" || type == "worker_resumed" || type == "worker_restarted") {
      w->state = WState::kIdle;
    } else if (type == "worker_suspended") {
      w->state = WState::kSuspended;
    } else if (type == "worker_closed") {
      w->state = WState::kClosed;
    } else if (type == "worker_lost") {
      w->state = WState::kLost;
    }
    return;
  }
  if (type.rfind("node_", 0) == 0 && type != "node_ignored") {
    NodeRec* n = s.Node(event.GetOr<std::string>("node", ""),
                        type == "node_initialized" || type == "node_discovered");
    if (n == nullptr) return;
    if (type == "node_initialized" || type == "node_health" || type == "node_discovered") {
      if (const Value* f = event.Find("facts"); f != nullptr) {
        absl::StatusOr<HostFacts> facts = HostFacts::FromValue(*f);
        if (facts.ok()) {
          n->facts = *std::move(facts);
          n->has_facts = true;
        }
      }
      if (type == "node_initialized") n->state = "initialized";
      if (type == "node_discovered") n->state = "disabled";
    } else if (type == "node_suspended") {
      n->state = "suspended";
    } else if (type == "node_resumed") {
      n->state = "initialized";
    } else if (type == "node_closed") {
      n->state = "closed";
    } else if (type == "node_lost") {
      n->state = "lost";
    }
  }
}

}  // namespace picos::compute
