// What the dashboard knows of a computation, built from its status events
// (compute/computation.h) and kept bounded: the nodes, their workers, the
// jobs running, a ring of finished jobs (the job stream), per-function
// progress and a ring of recent events. Each event gives the small JSON
// deltas a page applies (dashboard/web/app.js); StateJson is the whole
// state, what a page loads once before its deltas.
//
//   picos::dashboard::Model model;
//   std::vector<std::string> deltas;
//   model.Apply(event, absl::Now(), &deltas);   // event: a status event Value
//   for (const std::string& d : deltas) ... send d to every page ...
//
// Every delta is {"t": kind, "seq": n, "v": {...}} with kind one of "node",
// "worker", "job" (a job started or ended), "fn" (a function's progress),
// "event" (a line of the recent events) and "computation"; `seq` counts
// deltas from 1, and StateJson's "seq" is the last one it includes, so a
// page that buffered deltas while loading the state skips the ones it has.
//
// States: a node is "disabled" from node_discovered (disable_nodes) until
// its node_initialized, then "initialized", "suspended", "closed" (also by
// CloseNode) or "lost"; a worker is "disabled" from worker_discovered until
// worker_initialized (it runs but takes no job: counted among its node's
// workers), then "idle", "busy", "suspended", "closed" or "lost". A
// worker_setup_failed is a line of the recent events with the stage and
// the hook's message (the worker_closed that follows closes the worker).
//
// Limits (ModelLimits): past max_nodes / max_workers / max_running_jobs /
// max_functions new ones are not tracked (counted in "dropped"); strings
// from the events are cut to max_string_bytes, a job's argument to
// arg_preview_bytes; the finished-job and event rings keep the newest.
// Times are wall-clock milliseconds since the Unix epoch.
//
// Threads: not thread-safe; the dashboard uses it from its scheduler's
// thread only.
#ifndef PICOS_DASHBOARD_MODEL_H_
#define PICOS_DASHBOARD_MODEL_H_

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "compute/host_stats.h"
#include "core/kernel/handles.h"
#include "core/kernel/value.h"

namespace picos::dashboard {

struct ModelLimits {
  size_t max_nodes = 1024;
  size_t max_workers = 8192;
  size_t max_running_jobs = 65536;
  size_t max_functions = 256;
  size_t finished_jobs = 2000;  // the job stream's ring
  size_t events = 200;          // the recent events' ring
  size_t arg_preview_bytes = 64;
  size_t max_string_bytes = 256;
  // The window a function's rate is measured over.
  absl::Duration rate_window = absl::Seconds(60);
};

class Model {
 public:
  explicit Model(ModelLimits limits = {});

  // Applies one status event (a map with "type"; others are ignored, as
  // are unknown types and fields of the wrong type), appending the deltas
  // it gives to `deltas`.
  void Apply(const Value& event, absl::Time now, std::vector<std::string>* deltas);
  // Jobs submitted and not yet on a worker, by function (what
  // Computation::jobs() says is waiting): a "fn" delta for each function
  // whose count changed.
  void SetWaiting(const absl::flat_hash_map<std::string, uint64_t>& waiting, absl::Time now,
                  std::vector<std::string>* deltas);

  // The whole state as one JSON object: "seq", "now", "computation",
  // "nodes", "workers", "running", "finished", "fns", "events", "dropped".
  std::string StateJson(absl::Time now) const;

  // The task of a running job (to terminate it), if the job is running.
  std::optional<TaskRef> RunningJob(uint64_t id) const;
  bool HasNode(const std::string& uri) const { return nodes_.contains(uri); }
  bool HasWorker(const std::string& uri) const { return workers_.contains(uri); }

  size_t nodes() const { return nodes_.size(); }
  size_t workers() const { return workers_.size(); }
  size_t running_jobs() const { return running_.size(); }
  size_t finished_jobs() const { return finished_.size(); }
  uint64_t seq() const { return seq_; }
  const ModelLimits& limits() const { return limits_; }

 private:
  struct Node {
    std::string uri;
    std::string state = "initialized";
    compute::HostFacts facts;
    int64_t last_pulse_ms = 0;
    uint64_t workers = 0;  // alive
    uint64_t submitted = 0, done = 0, failed = 0, running = 0;
  };
  struct Job {
    uint64_t id = 0;
    std::string fn, worker, node, arg;
    TaskRef task;
    bool async = false;
    int64_t start_ms = 0, end_ms = 0;
    int code = 0;          // absl::StatusCode; -1 terminated, -2 lost
    std::string outcome;   // "running", "done", "failed", "terminated", "lost"
  };
  struct Worker {
    std::string uri, node;
    std::string state = "new";  // until worker_initialized (or _discovered)
    uint64_t done = 0;
    std::vector<uint64_t> running;  // job ids
  };
  struct Fn {
    uint64_t started = 0, done = 0, failed = 0, running = 0, waiting = 0;
    std::deque<int64_t> ends;  // end times within the rate window (bounded)
  };

  std::string Delta(absl::string_view kind, const std::string& value_json);
  std::string NodeJson(const Node& n) const;
  std::string WorkerJson(const Worker& w) const;
  std::string JobJson(const Job& j) const;
  std::string FnJson(const std::string& name, const Fn& f, int64_t now_ms) const;
  void AddEvent(int64_t now_ms, const std::string& type, const std::string& text,
                std::vector<std::string>* deltas);
  Node* FindNode(const std::string& uri);
  Worker* FindWorker(const std::string& uri);
  Fn* FindFn(const std::string& name);
  std::string Cut(absl::string_view s) const;
  void JobEnded(uint64_t id, int code, const std::string& outcome, int64_t now_ms,
                std::vector<std::string>* deltas);

  ModelLimits limits_;
  uint64_t seq_ = 0;
  uint64_t dropped_ = 0;
  std::string computation_state_ = "starting";
  std::string computation_id_;
  std::map<std::string, Node> nodes_;
  std::map<std::string, Worker> workers_;
  std::map<uint64_t, Job> running_;
  std::map<std::string, Fn> fns_;
  std::deque<Job> finished_;
  struct EventLine {
    int64_t time_ms;
    std::string type, text;
  };
  std::deque<EventLine> events_;
};

// `s` as a JSON string literal, quotes included. Bytes outside printable
// ASCII are escaped as \u00XX (a byte each), so any input gives valid JSON.
std::string JsonString(absl::string_view s);

}  // namespace picos::dashboard

#endif  // PICOS_DASHBOARD_MODEL_H_
