#include "compute/computation.h"

#include <fnmatch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "compute/export.h"
#include "compute/computation_metrics.h"
#include "compute/job_names_internal.h"
#include "compute/protocol.h"
#include "core/kernel/channel.h"
#include "core/kernel/log.h"
#include "core/kernel/monitor.h"
#include "core/kernel/naming.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/sync.h"
#include "core/kernel/system_message.h"
#include "core/kernel/value.h"
#include "core/remote/files.h"
#include "core/remote/node.h"
#include "core/remote/service.h"
#include "openssl/rand.h"
#include "openssl/sha.h"

namespace picos::compute {

const char* NodeStateName(NodeState s) {
  switch (s) {
    case NodeState::kInitialized: return "initialized";
    case NodeState::kSuspended: return "suspended";
    case NodeState::kClosed: return "closed";
    case NodeState::kLost: return "lost";
    case NodeState::kDisabled: return "disabled";
  }
  return "?";
}

const char* WorkerStateName(WorkerState s) {
  switch (s) {
    case WorkerState::kIdle: return "idle";
    case WorkerState::kBusy: return "busy";
    case WorkerState::kSuspended: return "suspended";
    case WorkerState::kRestarting: return "restarting";
    case WorkerState::kClosed: return "closed";
    case WorkerState::kLost: return "lost";
    case WorkerState::kDisabled: return "disabled";
  }
  return "?";
}

const char* JobStateName(JobState s) { return s == JobState::kWaiting ? "waiting" : "running"; }

namespace {

struct NodeEntry {
  explicit NodeEntry(remote::Service s) : service(std::move(s)) {}
  std::string uri;
  remote::Service service;
  NodeState state = NodeState::kInitialized;
  HostFacts facts;
  absl::Time facts_time;
  int workers = 0;
  TaskRef watcher;
  // Setup (compute/export.h): false until EnableNode with disable_nodes;
  // the node setup's argument.
  bool enabled = true;
  std::string setup_arg;
};

struct WorkerSlot {
  explicit WorkerSlot(remote::Service s) : service(std::move(s)) {}
  std::string uri;
  size_t node = 0;  // into State::nodes
  int index = 0;    // the node's index of the worker
  remote::Service service;
  // A restarted worker is a new generation in the same slot: what a job or
  // watcher of the old one reports later is ignored.
  uint64_t generation = 0;
  bool suspended = false;
  bool lost = false;
  bool restarting = false;  // lost or being closed, and a fresh one is coming
  bool closing = false;     // CloseWorker: takes no new job
  bool closed = false;
  int cpu_jobs = 0;
  // With kCpuJobsAheadAuto: CPU jobs of function `auto_fn` sent here ahead,
  // from how long its last one answered here ran (AutoAhead); none of any
  // other function (a long job after short ones of another is not sent to
  // a busy worker). None until one is answered.
  int auto_ahead = 0;
  std::string auto_fn;
  absl::Time last_answer = absl::InfinitePast();
  std::set<uint64_t> jobs;
  // The worker's job loop (compute/protocol.h): CPU jobs go to it as
  // messages, one round trip each (a service call costs two and a remote
  // task). It ends only with the worker, so the watcher monitors it.
  TaskRef loop;
  TaskRef watcher;
  // Setup (compute/export.h, SetUpWorker): false until EnableWorker with
  // disable_workers; the worker setup's argument; which stages ran in this
  // generation's process (set_up: all, it may take jobs); a setup request
  // on its way.
  bool enabled = true;
  std::string setup_arg;
  bool node_set_up = false;
  bool set_up = false;
  bool setting_up = false;
};

struct JobEntry {
  std::string fn;
  TaskRef task;    // the job's handle (JobHandle), what Run gave
  TaskRef driver;  // RunJob: waits for a worker, the answer, a lost worker
  bool async = false;
  JobState state = JobState::kWaiting;
  std::string worker;
  absl::Time started = absl::InfinitePast();
};

// What a job's handle (the TaskRef Run gives), its driver (RunJob) and the
// computation's job control task (JobControl) share: where the job's
// messages go and how many more its worker takes (compute/protocol.h).
struct JobLink {
  TaskRef handle;
  TaskRef driver;
  // Each run of the job on a worker (a re-run after a lost worker is the
  // next): what the worker's control messages name, so a stale one is
  // ignored.
  int64_t attempt = 0;
  // The job's inbox on its worker, once a job with a context said it
  // started; null before, and for a bytes-only function.
  TaskRef inbox;
  int64_t forwarded = 0;  // messages sent to `inbox` in this attempt
  int64_t consumed = 0;   // of those, taken by the job (its worker's credit)
  // Set (and dropped) whenever the above or `done` change; made by the first
  // to wait (ChangeEvent), as most jobs have nobody waiting: an allocation
  // fewer per job, and per change (issue 12: trivial jobs/s).
  std::shared_ptr<Event> change;
  bool done = false;
  absl::StatusOr<Value> result = absl::UnknownError("not run");

  std::shared_ptr<Event> ChangeEvent() {
    if (change == nullptr) change = std::make_shared<Event>();
    return change;
  }
  void Changed() {
    if (change != nullptr) std::exchange(change, nullptr)->Set();
  }
  // RunOptions::files: shipped to the worker's node before each attempt.
  std::vector<std::string> files;
};

// A job waiting for a worker: Dispatch picks one (`assigned`) or gives up
// (`failure`), then sets `ready`.
struct Pending {
  uint64_t job = 0;
  bool async = false;
  std::string where;
  std::string fn;  // what kCpuJobsAheadAuto decides by
  Event ready;
  int assigned = -1;
  absl::Status failure;
};

}  // namespace

struct Computation::State {
  ComputationOptions options;
  std::string id;
  std::string sha256;
  bool closed = false;
  // Every node a start was sent to (Close asks each, started or not).
  std::vector<std::pair<std::string, remote::Service>> contacted;
  std::vector<NodeEntry> nodes;
  std::vector<WorkerSlot> workers;
  std::list<std::shared_ptr<Pending>> pending;
  // Entries of `pending` that are I/O jobs or name a node or worker: with
  // none, Dispatch stops at the first CPU job no worker is free for.
  size_t pending_special = 0;
  std::map<uint64_t, JobEntry> jobs;
  // Jobs whose handle may still forward messages, by id.
  std::map<uint64_t, std::shared_ptr<JobLink>> links;
  // Takes the workers' job control messages (JobControl); spawned with the
  // first job.
  TaskRef jobctl;
  uint64_t next_job = 0;
  // Tags each CPU job sent to a job loop, so its answer is matched to it.
  int64_t next_request = 0;
  uint64_t rerun = 0;
  // Set (and dropped) whenever a job ends or a worker changes: what
  // CloseWorker and Close wait on (WaitForChange makes it; NotifyChange,
  // once per job, allocates nothing while nobody waits).
  std::shared_ptr<Event> change;
  // The client task (computation.h): each start names it; nodes send it
  // their pulses and join it, and close the computation after their zombie
  // period once it ends (Close, ~Computation) or this process is lost.
  TaskRef receiver;
  // The job name registry (compute/job_names_internal.h), spawned with the
  // receiver and handed to each worker with its job loop's start.
  TaskRef names;
  // With ComputationOptions::discover: the task that takes the node's peer
  // events (DiscoverNodes), set from the first Schedule on; jobs then wait
  // for a node to come rather than fail for want of a worker. `probed`: the
  // peers asked whether they are picos-nodes, asked once each.
  bool discovering = false;
  TaskRef discoverer;
  std::set<std::string> probed;
  bool status_failed = false;
  // With ComputationOptions::scheduler (compute/scheduler.h): the shared
  // scheduler, the task it sends share updates to (it monitors it: its end
  // is this client leaving), what this client wants on each node and what
  // it is granted, and the last error met growing into a share.
  bool shared = false;
  std::optional<remote::Service> scheduler;
  TaskRef shares_task;
  std::map<std::string, int> demand;
  std::map<std::string, int> grant;
  // Schedule's `nodes`: with a scheduler, the only nodes used (empty: all).
  std::vector<std::string> only;
  int64_t grant_epoch = -1;
  absl::Status share_error;
  // With ComputationOptions::client_uri (files jobs send back): this
  // process's FileReceiver on the dest path, and the task the workers tell
  // of each file (FileEvents).
  std::unique_ptr<remote::FileReceiver> file_receiver;
  TaskRef files_task;
};

namespace {

using State = Computation::State;

absl::Status Annotate(const absl::Status& s, absl::string_view where) {
  return absl::Status(s.code(), absl::StrCat(where, ": ", s.message()));
}

absl::StatusOr<std::string> Sha256Of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read the computation library ", path));
  SHA256_CTX ctx;
  SHA256_Init(&ctx);
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), buf.size());
    if (in.gcount() <= 0) break;
    SHA256_Update(&ctx, buf.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256_Final(d, &ctx);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(d), sizeof d));
}

// Sends the event `type` with `fields` to the status task and the
// metrics, if any.
bool Emitting(const State& s) { return s.options.status_task.valid() || s.options.metrics != nullptr; }

void EmitMap(State& s, const char* type, Value::MapType fields) {
  if (!Emitting(s)) return;
  fields["type"] = Value(type);
  fields["computation"] = Value(s.id);
  Value event(std::move(fields));
  if (s.options.metrics != nullptr) s.options.metrics->Observe(event);
  if (!s.options.status_task.valid()) return;
  absl::Status sent = s.options.status_task.Send(std::move(event));
  if (!sent.ok() && !s.status_failed) {
    s.status_failed = true;
    PICOS_LOG(warn, "compute: the status task of {} takes no event: {}", s.id, sent.ToString());
  }
}

void Put(Value::MapType&) {}
template <typename V, typename... Rest>
void Put(Value::MapType& m, const char* key, V&& value, Rest&&... rest) {
  m[key] = Value(std::forward<V>(value));
  Put(m, std::forward<Rest>(rest)...);
}

// Emit(s, "node_lost", "node", uri, "message", why): the fields as key,
// value pairs.
template <typename... KV>
void Emit(State& s, const char* type, KV&&... kv) {
  Value::MapType m;
  Put(m, std::forward<KV>(kv)...);
  EmitMap(s, type, std::move(m));
}

void NotifyChange(State& s) {
  if (s.change != nullptr) std::exchange(s.change, nullptr)->Set();
}

// Waits for the next change (a job ended, a worker changed). Suspends.
Task<absl::Status> WaitForChange(std::shared_ptr<State> s) {
  if (s->change == nullptr) s->change = std::make_shared<Event>();
  std::shared_ptr<Event> e = s->change;
  absl::Status st = co_await e->Wait();
  co_return st;
}

bool Matches(const State& s, const WorkerSlot& w, const std::string& where) {
  return where.empty() || w.uri == where || s.nodes[w.node].uri == where;
}

// Could take a job now or later (not gone for good).
bool CouldServe(const State& s, const WorkerSlot& w) {
  if (w.closed || s.nodes[w.node].state == NodeState::kLost || s.nodes[w.node].state == NodeState::kClosed) {
    return false;
  }
  if (w.restarting) return true;
  return !w.lost && !w.closing;
}

bool Usable(const State& s, const WorkerSlot& w) {
  return w.set_up && !w.lost && !w.closed && !w.closing && !w.restarting && !w.suspended &&
         s.nodes[w.node].state == NodeState::kInitialized;
}

// Gives waiting jobs workers, first come first served: a CPU job a worker
// with no CPU job, an I/O job any; the one with fewest jobs running. A job
// no worker could ever take fails.
//
// Called on every job's arrival and end, so it must not walk the whole
// queue each time: 10,000 jobs spawned at once made that quadratic, seconds
// of this thread without a turn of I/O, long enough for the nodes and
// workers to miss the client's heartbeats and drop it (issue 12, the
// "peer replaced the connection" flake of compute_jobs_test). A CPU job
// for any worker while no worker is free is passed over in O(1), and the
// walk ends once only such jobs can remain.
bool Special(const Pending& p) { return p.async || !p.where.empty(); }

// With kCpuJobsAheadAuto, a worker gets as many jobs ahead as make about
// kAutoAheadWork of its jobs, at most kAutoMostAhead: jobs much shorter than
// a round trip to the client then never wait for one (the deeper the
// queue, the fewer wakeups per job on both sides: compute_bench measured
// 2, 4 and 8 ahead, and 8 cost the least CPU per trivial job), while what
// waits on a busy worker, when another may come free first, stays about
// that much work. A job that ran kAutoAheadWork or longer gains little from
// it and gets none.
constexpr absl::Duration kAutoAheadWork = absl::Milliseconds(2);
constexpr int kAutoMostAhead = 8;

int AutoAhead(absl::Duration ran) {
  if (ran >= kAutoAheadWork) return 0;
  const int64_t n = kAutoAheadWork / std::max(ran, absl::Microseconds(1));
  return static_cast<int>(std::clamp<int64_t>(n, 1, kAutoMostAhead));
}

bool Explicit(const State& s) { return s.options.cpu_jobs_ahead >= 0; }

// CPU jobs of function `fn` worker `w` takes: one, and those sent ahead
// (they wait in its job loop's mailbox).
int PerWorker(const State& s, const WorkerSlot& w, const std::string& fn) {
  if (Explicit(s)) return 1 + s.options.cpu_jobs_ahead;
  return 1 + (w.auto_fn == fn ? w.auto_ahead : 0);
}

void Dispatch(State& s) {
  // Some worker could take a job, now or later (with a shared scheduler a
  // share may yet come).
  bool could_any = (s.shared || s.discovering) && !s.closed;
  // CPU jobs the usable workers could take now (with kCpuJobsAheadAuto:
  // idle workers only), and with kCpuJobsAheadAuto whether a busy one may
  // take one of its function ahead. That is tried for the first CPU job for
  // any worker that waits only, so that the walk stays O(1) more: jobs
  // still start first come first served, and one that may not go ahead
  // holds back those after it until a worker is free.
  int cpu_free = 0;
  bool ahead_room = false;
  for (const WorkerSlot& w : s.workers) {
    could_any = could_any || CouldServe(s, w);
    if (!Usable(s, w)) continue;
    if (Explicit(s)) {
      cpu_free += std::max(0, 1 + s.options.cpu_jobs_ahead - w.cpu_jobs);
    } else {
      cpu_free += w.cpu_jobs == 0 ? 1 : 0;
      ahead_room = ahead_room || (w.cpu_jobs > 0 && w.cpu_jobs < 1 + w.auto_ahead);
    }
  }
  const bool waiting_is_all = !s.closed && could_any;  // a CPU job for anyone can only wait
  for (auto it = s.pending.begin(); it != s.pending.end();) {
    if (waiting_is_all && cpu_free == 0 && !ahead_room && s.pending_special == 0) break;
    Pending& p = **it;
    if (waiting_is_all && cpu_free == 0 && !ahead_room && !Special(p)) {
      ++it;
      continue;
    }
    int best = -1;
    bool could = (s.shared || s.discovering) && p.where.empty();
    if (s.closed) {
      p.failure = absl::FailedPreconditionError("the computation is closed");
    } else {
      for (size_t i = 0; i < s.workers.size(); ++i) {
        const WorkerSlot& w = s.workers[i];
        if (!Matches(s, w, p.where) || !CouldServe(s, w)) continue;
        could = true;
        if (!Usable(s, w) || (!p.async && w.cpu_jobs >= PerWorker(s, w, p.fn))) continue;
        if (best < 0) {
          best = static_cast<int>(i);
          continue;
        }
        // The least loaded: for a CPU job, fewest CPU jobs first (an idle
        // worker before one whose mailbox would hold it).
        const WorkerSlot& b = s.workers[best];
        if ((!p.async && w.cpu_jobs != b.cpu_jobs) ? w.cpu_jobs < b.cpu_jobs : w.jobs.size() < b.jobs.size()) {
          best = static_cast<int>(i);
        }
      }
      if (best < 0 && !could) {
        p.failure = absl::UnavailableError(
            p.where.empty() ? std::string("worker_lost: no worker left")
                            : absl::StrCat("worker_lost: no worker left at ", p.where));
      }
    }
    if (best < 0 && p.failure.ok()) {
      if (!Special(p) && cpu_free == 0) ahead_room = false;  // it may not go ahead: none after it either
      ++it;
      continue;
    }
    p.assigned = best;
    if (best >= 0 && !p.async) {
      if (Explicit(s) || s.workers[best].cpu_jobs == 0) --cpu_free;
      ++s.workers[best].cpu_jobs;
    }
    if (Special(p)) --s.pending_special;
    p.ready.Set();
    it = s.pending.erase(it);
  }
}

Task<> RestartWorker(std::shared_ptr<State> s, size_t w);
Task<absl::Status> SetUpWorker(std::shared_ptr<State> s, size_t w, bool announce);
Task<absl::Status> TakeWorker(std::shared_ptr<State> s, size_t w);

Task<> WatchWorker(std::shared_ptr<State> s, size_t w, uint64_t generation, TaskRef server);

// What MarkWorkerLost sends each CPU job waiting for an answer from the
// worker's job loop: {kLostKey: <slot>, "generation": <int>, "why": <text>}.
constexpr char kLostKey[] = "picos.compute.worker_lost";

void MarkWorkerLost(std::shared_ptr<State> s, size_t w, uint64_t generation, const std::string& why) {
  WorkerSlot& slot = s->workers[w];
  if (slot.generation != generation || slot.lost || slot.closed || slot.closing) return;
  slot.lost = true;
  // Its CPU jobs wait for messages from its loop, which will never come
  // (I/O jobs join their remote tasks, which end with the peer).
  for (uint64_t id : slot.jobs) {
    auto j = s->jobs.find(id);
    if (j == s->jobs.end() || j->second.async) continue;
    (void)j->second.driver.Send(Value::Map({{std::string(kLostKey), static_cast<int64_t>(w)},
                                          {"generation", static_cast<int64_t>(generation)},
                                          {"why", why}}));
  }
  PICOS_LOG(warn, "compute: worker {} lost: {}", slot.uri, why);
  Emit(*s, "worker_lost", "worker", slot.uri, "node", s->nodes[slot.node].uri, "message", why);
  const NodeState ns = s->nodes[slot.node].state;
  if (s->options.restart_workers && !s->closed && (ns == NodeState::kInitialized || ns == NodeState::kSuspended)) {
    slot.restarting = true;
    ThisScheduler().Spawn(RestartWorker, s, w);
  }
  NotifyChange(*s);
  Dispatch(*s);
}

void MarkNodeLost(std::shared_ptr<State> s, size_t n, const std::string& why) {
  NodeEntry& node = s->nodes[n];
  if (node.state == NodeState::kLost || node.state == NodeState::kClosed || s->closed) return;
  node.state = NodeState::kLost;
  PICOS_LOG(warn, "compute: node {} lost: {}", node.uri, why);
  Emit(*s, "node_lost", "node", node.uri, "message", why);
  for (size_t i = 0; i < s->workers.size(); ++i) {
    if (s->workers[i].node == n) MarkWorkerLost(s, i, s->workers[i].generation, absl::StrCat("node lost: ", why));
  }
  NotifyChange(*s);
  Dispatch(*s);
}

std::string WhyEnded(const Value& msg) {
  absl::StatusOr<MonitorStatus> st = MonitorStatus::FromValue(msg);
  if (!st.ok()) return "its service ended";
  return st->error.ok() ? "its service ended" : std::string(st->error.message());
}

// Watches a worker's job loop: it ends only with the worker (or its peer
// lost), which is then reported at once, also while no job runs there.
Task<> WatchWorker(std::shared_ptr<State> s, size_t w, uint64_t generation, TaskRef loop) {
  if (!Monitor(Self(), loop).ok()) co_return;
  absl::StatusOr<Value> msg = co_await Receive();
  if (!msg.ok()) co_return;  // terminated: the computation closed
  MarkWorkerLost(s, w, generation, WhyEnded(*msg));
}

Task<> WatchNode(std::shared_ptr<State> s, size_t n, TaskRef server) {
  if (!Monitor(Self(), server).ok()) co_return;
  absl::StatusOr<Value> msg = co_await Receive();
  if (!msg.ok()) co_return;
  MarkNodeLost(s, n, WhyEnded(*msg));
}

// Starts the job loop of the worker whose service is `svc`, handing it the
// computation's job name registry `names` (compute/protocol.h).
Task<absl::StatusOr<TaskRef>> StartLoop(remote::Service svc, absl::Duration timeout, TaskRef names) {
  Value::MapType request;
  request[kJobLoopKey] = Value(true);
  if (names.valid()) request[kNamesKey] = Value(std::move(names));
  absl::StatusOr<TaskRef> loop = co_await svc.Run(Value(std::move(request)), timeout);
  co_return loop;
}

// A worker of a start being reached: its service located, its loop started.
struct ReachedWorker {
  absl::StatusOr<remote::Service> service = absl::UnknownError("not reached");
  absl::StatusOr<TaskRef> loop = absl::UnknownError("not reached");
};

Task<> ReachWorker(std::shared_ptr<std::vector<ReachedWorker>> out, size_t i, std::string uri,
                   absl::Duration timeout, TaskRef names) {
  absl::StatusOr<remote::Service> svc = co_await remote::Service::Locate(kWorkerService, Location::Peer(uri), timeout);
  (*out)[i].service = svc;
  if (!svc.ok()) co_return;
  absl::StatusOr<TaskRef> loop = co_await StartLoop(*svc, timeout, std::move(names));
  (*out)[i].loop = loop;
}

// Puts a fresh worker `uri` in slot `w` (after a restart).
Task<absl::Status> Adopt(std::shared_ptr<State> s, size_t w, std::string uri) {
  absl::StatusOr<remote::Service> svc =
      co_await remote::Service::Locate(kWorkerService, Location::Peer(uri), s->options.timeout);
  if (!svc.ok()) co_return Annotate(svc.status(), absl::StrCat("worker ", uri));
  absl::StatusOr<TaskRef> loop = co_await StartLoop(*svc, s->options.timeout, s->names);
  if (!loop.ok()) co_return Annotate(loop.status(), absl::StrCat("worker ", uri, ": its job loop"));
  WorkerSlot& slot = s->workers[w];
  if (slot.watcher.valid()) (void)slot.watcher.Terminate();
  slot.uri = uri;
  slot.service = *svc;
  slot.loop = *loop;
  ++slot.generation;
  slot.lost = slot.restarting = slot.closing = slot.closed = false;
  slot.node_set_up = slot.set_up = slot.setting_up = false;  // a fresh process: SetUpWorker
  slot.cpu_jobs = 0;
  slot.auto_ahead = 0;
  slot.auto_fn.clear();
  slot.last_answer = absl::InfinitePast();
  slot.jobs.clear();
  SpawnOptions so;
  so.daemon = true;
  slot.watcher = ThisScheduler().Spawn(so, WatchWorker, s, w, slot.generation, *loop);
  co_return absl::OkStatus();
}

// Asks the worker's node for a fresh worker in its place.
Task<absl::StatusOr<std::string>> AskRestart(std::shared_ptr<State> s, size_t w, const char* op) {
  const WorkerSlot& slot = s->workers[w];
  remote::Service node = s->nodes[slot.node].service;
  Value req = Value::Map({{"op", op}, {"computation", s->id}, {"index", int64_t{slot.index}}});
  absl::StatusOr<TaskRef> t = co_await node.Run(std::move(req), s->options.timeout);
  if (!t.ok()) co_return t.status();
  absl::StatusOr<Value> reply = co_await t->Join(s->options.timeout);
  if (!reply.ok()) co_return reply.status();
  if (std::string(op) != "restart_worker") co_return std::string();
  absl::StatusOr<std::string> uri = reply->Get<std::string>("worker");
  if (!uri.ok() || uri->empty() || uri->size() > 1024) {
    co_return absl::DataLossError(absl::StrCat("malformed restart reply ", reply->DebugString().substr(0, 200)));
  }
  co_return *uri;
}

Task<> RestartWorker(std::shared_ptr<State> s, size_t w) {
  const std::string old = s->workers[w].uri;
  absl::StatusOr<std::string> uri = co_await AskRestart(s, w, "restart_worker");
  absl::Status adopted = uri.ok() ? absl::OkStatus() : uri.status();
  if (adopted.ok() && !s->closed) adopted = co_await Adopt(s, w, *uri);
  WorkerSlot& slot = s->workers[w];
  if (s->closed) co_return;
  if (!adopted.ok()) {
    PICOS_LOG(warn, "compute: restarting worker {}: {}", old, adopted.ToString());
    slot.restarting = false;
  } else {
    Emit(*s, "worker_restarted", "worker", slot.uri, "node", s->nodes[slot.node].uri, "old", old);
    (void)co_await SetUpWorker(s, w, false);  // a failure is its event
  }
  NotifyChange(*s);
  Dispatch(*s);
}

// Turns the nodes' pulses into node_health events.
Task<> ReceivePulses(std::shared_ptr<State> s) {
  for (;;) {
    absl::StatusOr<Value> msg = co_await Receive();
    if (!msg.ok()) co_return;
    std::string kind, computation, node;
    absl::Status read =
        MessageReader(*msg).Get("picos.compute", &kind).Get("computation", &computation).Get("node", &node).status();
    if (!read.ok() || kind != "pulse" || computation != s->id) {
      PICOS_LOG_LIMITED(warn, "compute: malformed pulse: {}", read.ok() ? "not this computation's" : read.ToString());
      continue;
    }
    absl::StatusOr<HostFacts> facts = HostFacts::FromValue((*msg)["facts"]);
    if (!facts.ok()) {
      PICOS_LOG_LIMITED(warn, "compute: pulse from {}: {}", node.substr(0, 200), facts.status().ToString());
      continue;
    }
    auto it = std::find_if(s->nodes.begin(), s->nodes.end(), [&](const NodeEntry& n) { return n.uri == node; });
    if (it == s->nodes.end() || it->state == NodeState::kLost || it->state == NodeState::kClosed) continue;
    it->facts = *facts;
    it->facts_time = absl::Now();
    Emit(*s, "node_health", "node", node, "facts", facts->ToValue());
  }
}

// How much of a job's argument job_started carries.
constexpr size_t kArgPreviewBytes = 256;

Value::MapType JobFields(const JobEntry& j, uint64_t id) {
  return {{"job", id}, {"task", j.task}, {"fn", j.fn}, {"worker", j.worker}};
}

// A worker's job control message for job `job` (compute/protocol.h): that
// it started (its inbox) or how many messages it took. Network input: a
// malformed one is logged and dropped, a stale one (another attempt, or
// another job) ignored.
void ApplyControl(JobLink& link, uint64_t job, const Value& msg) {
  uint64_t id = 0;
  int64_t attempt = 0, consumed = -1;
  TaskRef inbox;
  absl::Status read = MessageReader(msg)
                          .Get(kJobCtlKey, &id)
                          .Get("attempt", &attempt)
                          .Optional("inbox", &inbox)
                          .Optional("consumed", &consumed)
                          .status();
  if (!read.ok()) {
    PICOS_LOG_LIMITED(warn, "compute: malformed job control message: {}", read.ToString());
    return;
  }
  if (id != job || attempt != link.attempt) return;
  if (inbox.valid()) link.inbox = inbox;
  if (consumed > link.consumed && consumed <= link.forwarded) link.consumed = consumed;
  link.Changed();
}

// The answer of the job loop to CPU job `request` sent to slot `w` of
// `generation`: its value, its error (the worker's status, read as network
// input), or kUnavailable with *lost set when MarkWorkerLost says the worker
// is gone first; *terminated when this task is terminated meanwhile.
// The job's control messages (ApplyControl) come here too, and are applied
// to `link` meanwhile. *run_us: how long the worker says the job ran
// (kJobRunTimeKey), -1 if it does not say.
Task<absl::StatusOr<Value>> AwaitAnswer(int64_t request, size_t w, uint64_t generation, bool* lost,
                                        bool* terminated, int64_t* run_us, std::shared_ptr<JobLink> link,
                                        uint64_t job, absl::Duration timeout = absl::InfiniteDuration()) {
  absl::StatusOr<Value> m = absl::UnknownError("no answer");
  for (;;) {
    auto mine = [request, w, generation](const Value& v) {
      if (!v.is_map()) return false;
      if (v.Find(kJobCtlKey) != nullptr) return true;
      if (const Value* r = v.Find(kJobReplyKey); r != nullptr) return r->is_int() && r->as_int() == request;
      const Value* l = v.Find(kLostKey);
      return l != nullptr && l->is_int() && l->as_int() == static_cast<int64_t>(w) &&
             v.GetOr<int64_t>("generation", -1) == static_cast<int64_t>(generation);
    };
    m = co_await ReceiveMatching(std::move(mine), timeout);
    if (!m.ok() || m->Find(kJobCtlKey) == nullptr) break;
    ApplyControl(*link, job, *m);
  }
  if (!m.ok()) {
    *terminated = true;
    co_return m.status();
  }
  if (m->Find(kLostKey) != nullptr) {
    *lost = true;
    co_return absl::UnavailableError(m->GetOr<std::string>("why", "the worker was lost"));
  }
  *run_us = m->GetOr<int64_t>(kJobRunTimeKey, -1);
  // Moved out, not copied: a job's result may be large.
  if (Value::MapType& fields = m->as_map(); fields.find("value") != fields.end()) {
    co_return std::move(fields.find("value")->second);
  }
  const int64_t code = m->GetOr<int64_t>("code", static_cast<int64_t>(absl::StatusCode::kUnknown));
  const bool known = code > 0 && code <= static_cast<int64_t>(absl::StatusCode::kUnauthenticated);
  co_return absl::Status(known ? static_cast<absl::StatusCode>(code) : absl::StatusCode::kUnknown,
                         m->GetOr<std::string>("message", "(no message)").substr(0, 4096));
}

Task<> JobControl(std::shared_ptr<State> s);
void AddFileFields(const State& s, Value::MapType& m);
Task<absl::Status> ShipJobFiles(std::shared_ptr<State> s, size_t w, uint64_t job, std::shared_ptr<JobLink> link);

// What an attempt gives: the job's end, or nothing when it runs again.
using AttemptEnd = std::optional<absl::StatusOr<Value>>;
AttemptEnd Final(absl::StatusOr<Value> r) { return AttemptEnd(std::move(r)); }

// One attempt of job `id` on worker `w`, Dispatch's choice: sends it,
// awaits its end, and says whether it ends the job (with its status
// events) or the job runs again (its worker lost; *retries counts those
// that cost a retry). A coroutine of its own so that the big frame of a
// job's run exists only while it runs: 20,000 jobs spawned at once wait in
// RunJob's small one (issue 12: 3.6 KB a waiting job made the
// client's heap growth a tenth of its time). `fn`, `arg` and `reply_to`
// are the caller's, which awaits this.
Task<AttemptEnd> RunAttempt(std::shared_ptr<State> s, uint64_t id, const std::string& fn, const std::string& arg,
                            bool async, const TaskRef& reply_to, std::shared_ptr<JobLink> link, size_t w,
                            int* retries) {
  const uint64_t generation = s->workers[w].generation;
  remote::Service service = s->workers[w].service;
  const TaskRef loop = s->workers[w].loop;
  s->workers[w].jobs.insert(id);
  JobEntry& job = s->jobs[id];
  job.state = JobState::kRunning;
  job.worker = s->workers[w].uri;
  job.started = absl::Now();
  if (Emitting(*s)) {  // not built for nobody: this is every job's path
    Value::MapType started_fields = JobFields(job, id);
    started_fields["async"] = Value(async);
    // A preview for dashboards (dashboard/model.h): the job's argument may be large.
    started_fields["arg"] = Value::Bytes(arg.substr(0, kArgPreviewBytes));
    EmitMap(*s, "job_started", std::move(started_fields));
  }
  absl::StatusOr<Value> result = absl::UnknownError("not run");
  bool started = false;     // it reached the worker: running it again costs a retry
  bool lost = false;        // the worker was lost first
  bool terminated = false;  // this task was terminated
  TaskRef remote_task;      // an I/O job's task on the worker
  int64_t request = 0;      // a CPU job's tag
  // Job messaging (compute/protocol.h): who the job's Send reaches, where
  // its worker says it started and how many messages it took.
  Value::MapType m;
  m["job"] = Value(id);
  m["attempt"] = Value(link->attempt);
  if (reply_to.valid()) m["to"] = Value(reply_to);
  m["fn"] = Value(fn);
  m["arg"] = Value::Bytes(arg);
  AddFileFields(*s, m);
  // The job's own files first (RunOptions::files): not shipped is its error.
  absl::Status shipped;
  if (!link->files.empty()) shipped = co_await ShipJobFiles(s, w, id, link);
  if (!shipped.ok()) {
    result = shipped;
  } else if (async) {
    // Any number at once beside the CPU job: a remote task each.
    m["async"] = Value(true);
    m["owner"] = Value(Self());
    // This task waits in Join: the computation's control task takes the
    // job's control messages (a CPU job's come to this task, reply_to).
    if (!s->jobctl.valid()) {
      s->jobctl =
          ThisScheduler().Spawn(SpawnOptions{.name = "picos.compute.jobctl", .daemon = true}, JobControl, s);
    }
    m["ctl"] = Value(s->jobctl);
    Value request = Value(std::move(m));
    absl::StatusOr<TaskRef> t = co_await service.Run(std::move(request), s->options.timeout);
    if (t.ok()) {
      started = true;
      remote_task = *t;
      result = co_await t->Join();
    } else {
      result = t.status();
    }
    const absl::StatusCode c = result.ok() ? absl::StatusCode::kOk : result.status().code();
    terminated = c == absl::StatusCode::kCancelled;
    lost = c == absl::StatusCode::kUnavailable;
  } else {
    // A message to the worker's job loop, its answer a message back.
    request = ++s->next_request;
    m["id"] = Value(request);
    m["reply_to"] = Value(Self());
    const absl::Time sent_at = absl::Now();
    absl::Status sent = loop.Send(Value(std::move(m)));
    if (sent.ok()) {
      started = true;
      int64_t run_us = -1;
      result = co_await AwaitAnswer(request, w, generation, &lost, &terminated, &run_us, link, id);
      WorkerSlot& slot = s->workers[w];
      if (!lost && !terminated && slot.generation == generation) {
        // How long it ran: as the worker says, else (a worker that does
        // not) about, from when it could start it (sent, or the answer
        // before, whichever is later) to its answer, a round trip more.
        // Decides whether jobs go to this worker ahead.
        const absl::Time now = absl::Now();
        const absl::Duration ran =
            run_us >= 0 ? absl::Microseconds(run_us) : now - std::max(sent_at, slot.last_answer);
        slot.auto_ahead = AutoAhead(ran);
        if (slot.auto_fn != fn) slot.auto_fn = fn;
        slot.last_answer = now;
      }
    } else {
      result = sent;
      // Backpressure is the job's error; anything else: the loop is gone.
      lost = sent.code() != absl::StatusCode::kResourceExhausted;
    }
  }
  if (terminated && link->inbox.valid() && !lost) {
    // Terminated (Close or CloseWorker with terminate, or the caller,
    // through the job's handle): a job with a context is cancelled (its
    // Receive gives kCancelled) and waited for, up to the timeout, before
    // it leaves its worker's jobs, so a last message it sends goes out
    // before Close or CloseWorker may end its worker (compute/export.h).
    absl::Status told = link->inbox.Send(Value::Map({{std::string(kJobCancelKey), true}}));
    if (told.ok() && remote_task.valid()) {
      (void)co_await remote_task.Join(s->options.timeout);
    } else if (told.ok() && request != 0) {
      bool lost_again = false, terminated_again = false;
      int64_t run_us = -1;
      (void)co_await AwaitAnswer(request, w, generation, &lost_again, &terminated_again, &run_us, link, id,
                                 s->options.timeout);
    }
  }
  WorkerSlot& slot = s->workers[w];
  if (slot.generation == generation) {
    slot.jobs.erase(id);
    if (!async) --slot.cpu_jobs;
  }
  NotifyChange(*s);
  Dispatch(*s);
  const absl::StatusCode code = result.ok() ? absl::StatusCode::kOk : result.status().code();
  if (terminated) {
    // A bytes-only function cannot be stopped: it runs to its end and its
    // result is dropped (an I/O job's remote task is ended; a CPU job's
    // answer finds this task gone). A job with a context whose start was
    // not yet heard of is cancelled by its worker when this task ends.
    if (remote_task.valid()) (void)remote_task.Terminate();
    EmitMap(*s, "job_terminated", JobFields(s->jobs[id], id));
    s->jobs.erase(id);
    NotifyChange(*s);  // Close may wait for it (and waited above)
    co_return Final(std::move(result));
  }
  if (!lost) {
    if (Emitting(*s)) {
      Value::MapType f = JobFields(s->jobs[id], id);
      f["code"] = Value(static_cast<int64_t>(code));
      f["message"] = Value(result.ok() ? std::string() : std::string(result.status().message()));
      EmitMap(*s, "job_finished", std::move(f));
    }
    s->jobs.erase(id);
    co_return Final(std::move(result));
  }
  // The worker is lost (its peer connection broke).
  MarkWorkerLost(s, w, generation, std::string(result.status().message()));
  // A job refused before it started (the worker was already gone) did not
  // run: it costs no retry.
  if (started) {
    if (s->closed || *retries >= s->options.max_retries) {
      Value::MapType f = JobFields(s->jobs[id], id);
      f["message"] = Value(std::string(result.status().message()));
      EmitMap(*s, "job_lost", std::move(f));
      s->jobs.erase(id);
      co_return Final(absl::UnavailableError(absl::StrCat("worker_lost: ", result.status().message())));
    }
    ++*retries;
    ++s->rerun;
    Value::MapType f = JobFields(s->jobs[id], id);
    f["retry"] = Value(int64_t{*retries});
    EmitMap(*s, "job_rerun", std::move(f));
  }
  JobEntry& again = s->jobs[id];
  again.state = JobState::kWaiting;
  again.worker.clear();
  again.started = absl::InfinitePast();
  co_return std::nullopt;
}

// A job's driver: runs it, an attempt at a time (RunAttempt) until one ends
// it, then hands its result to the job's handle, which ends with it. One
// frame, small, while the job waits for a worker (see RunAttempt).
Task<absl::StatusOr<Value>> RunJob(std::shared_ptr<State> s, uint64_t id, std::string fn, std::string arg,
                                   bool async, std::string where, TaskRef reply_to, std::shared_ptr<JobLink> link) {
  int retries = 0;
  AttemptEnd end;
  while (!end.has_value()) {
    // A new attempt: messages go to the inbox its worker will name (the
    // handle, finding none, waits: nothing to wake).
    ++link->attempt;
    link->inbox = TaskRef();
    link->forwarded = link->consumed = 0;
    auto p = std::make_shared<Pending>();
    p->job = id;
    p->async = async;
    p->where = where;
    if (!async && s->options.cpu_jobs_ahead < 0) p->fn = fn;
    s->pending.push_back(p);
    if (Special(*p)) ++s->pending_special;
    Dispatch(*s);
    absl::Status waited = co_await p->ready.Wait();
    if (!waited.ok()) {  // terminated while waiting
      if (s->pending.remove(p) > 0 && Special(*p)) --s->pending_special;
      if (p->assigned >= 0 && !async) --s->workers[p->assigned].cpu_jobs;
      EmitMap(*s, "job_terminated", JobFields(s->jobs[id], id));
      s->jobs.erase(id);
      Dispatch(*s);
      NotifyChange(*s);
      end = Final(std::move(waited));
      break;
    }
    if (p->assigned < 0) {
      if (s->options.metrics != nullptr) s->options.metrics->JobDropped(s->id, id);
      s->jobs.erase(id);
      end = Final(p->failure);
      break;
    }
    end = co_await RunAttempt(s, id, fn, arg, async, reply_to, link, static_cast<size_t>(p->assigned), &retries);
  }
  link->done = true;
  link->result = *std::move(end);
  link->Changed();
  (void)link->handle.Throw(absl::AbortedError("picos.compute: the job ended"));
  s->links.erase(id);
  co_return link->result;
}

// What Close and CloseWorker with terminate throw into a job's handle.
constexpr char kClosedWithTerminate[] = "the job was cancelled: closed with terminate";

void LogDroppedJobMessage(const Value& m) {
  PICOS_LOG_LIMITED(warn, "compute: a message for a job that is not bytes or a string (or over {} bytes) is dropped: {}",
                    kJobMessageMaxBytes, m.DebugString().substr(0, 120));
}

// The job's handle, the TaskRef Run gives (computation.h): forwards the
// messages sent to it to the job's inbox on its worker, in order, holding
// them while the job has not started or its worker has no room
// (kJobMailboxLimit not yet taken); its bounded mailbox holds the rest. Ends
// with the job's result. Terminated (or thrown into) first, it cancels the
// job through its driver.
// Forwards one message `m` of the job's handle to the job's inbox, first
// waiting for the inbox and for credit. Not OK when the handle is
// interrupted (terminated, thrown into, or the job ended). A coroutine of
// its own so that the handle's frame, one per job, stays small: this one
// lives only while a message is on its way.
Task<absl::Status> ForwardToJob(std::shared_ptr<JobLink> link, Value m) {
  if ((!m.is_bytes() && !m.is_string()) || m.as_string().size() > kJobMessageMaxBytes) {
    LogDroppedJobMessage(m);
    co_return absl::OkStatus();
  }
  while (!link->done && (!link->inbox.valid() || link->forwarded - link->consumed >= int64_t{kJobMailboxLimit})) {
    std::shared_ptr<Event> e = link->ChangeEvent();
    absl::Status waited = co_await e->Wait();
    if (!waited.ok()) co_return waited;
  }
  if (link->done) co_return absl::OkStatus();
  ++link->forwarded;
  const TaskRef inbox = link->inbox;
  Value::MapType forward;
  forward[kJobDataKey] = Value::Bytes(m.as_string());
  absl::Status sent = co_await SendWhenRoom(inbox, Value(std::move(forward)), absl::Seconds(60));
  if (sent.ok() || sent.code() == absl::StatusCode::kCancelled || sent.code() == absl::StatusCode::kAborted) {
    co_return sent;
  }
  // Its worker is lost: the message is lost with it (the job may run again
  // elsewhere, with the messages sent from then on).
  PICOS_LOG_LIMITED(warn, "compute: a message for a job not forwarded: {}", sent.ToString());
  co_return absl::OkStatus();
}

Task<absl::StatusOr<Value>> JobHandle(std::shared_ptr<JobLink> link) {
  absl::Status why;  // what interrupted it
  for (;;) {
    absl::StatusOr<Value> m = co_await Receive();
    if (!m.ok()) {
      why = m.status();
      break;
    }
    why = co_await ForwardToJob(link, *std::move(m));
    if (!why.ok() || link->done) break;
  }
  if (link->done) co_return link->result;
  (void)link->driver.Throw(absl::CancelledError("the job's handle was terminated"));
  if (why.code() == absl::StatusCode::kCancelled && why.message() == kClosedWithTerminate) {
    // Close or CloseWorker with terminate threw this (a Terminate would end
    // the task at its next wait): the job's end is waited for, so its last
    // message reaches reply_to before this handle ends (computation.h).
    while (!link->done) {
      std::shared_ptr<Event> e = link->ChangeEvent();
      absl::Status waited = co_await e->Wait();
      if (!waited.ok() && !link->done) break;
    }
    co_return absl::CancelledError(kClosedWithTerminate);
  }
  co_return absl::CancelledError("the job was terminated");
}

// The computation's job control task: the workers' messages that a job
// with a context started (its inbox) and how many messages it took
// (compute/protocol.h). Network input: malformed or stale ones are dropped.
Task<> JobControl(std::shared_ptr<State> s) {
  for (;;) {
    absl::StatusOr<Value> msg = co_await Receive();
    if (!msg.ok()) co_return;
    const uint64_t job = msg->GetOr<uint64_t>(kJobCtlKey, 0);
    auto it = s->links.find(job);
    if (it == s->links.end()) {
      if (!msg->is_map() || msg->Find(kJobCtlKey) == nullptr) {
        PICOS_LOG_LIMITED(warn, "compute: malformed job control message: {}", msg->DebugString().substr(0, 120));
      }
      continue;  // ended
    }
    ApplyControl(*it->second, job, *msg);
  }
}

// The host part of a URI ("tcp://10.0.0.2:9706" -> "10.0.0.2").
std::string HostOf(absl::string_view uri) {
  const size_t scheme = uri.find("://");
  if (scheme != absl::string_view::npos) uri.remove_prefix(scheme + 3);
  if (absl::ConsumePrefix(&uri, "[")) return std::string(uri.substr(0, uri.find(']')));
  return std::string(uri.substr(0, uri.rfind(':')));
}

bool Glob(const std::string& pattern, const std::string& text) {
  return fnmatch(pattern.c_str(), text.c_str(), 0) == 0;
}

// Workers to start on a node (0: skip it, `reason` says why).
int Allocate(const ComputationOptions& o, const std::string& uri, const HostFacts& facts, int node_cpus,
             std::string* reason) {
  if (o.allocate) {
    const int n = o.allocate(uri, facts);
    if (n == 0) {
      *reason = "the allocation function skipped it";
      return 0;
    }
    if (n > 0) return std::min(n, node_cpus);
  }
  const std::string addr = HostOf(uri);
  for (size_t i = 0; i < o.allocation.size(); ++i) {
    const AllocationRule& r = o.allocation[i];
    if (!Glob(r.host, facts.host) && !Glob(r.host, addr)) continue;
    if (!Glob(r.platform, facts.platform)) continue;
    if (facts.memory_available < r.min_memory) {
      *reason = absl::StrCat("rule ", i, ": ", facts.memory_available, " bytes of memory available, below ",
                             r.min_memory);
      return 0;
    }
    if (facts.disk_free < r.min_disk) {
      *reason = absl::StrCat("rule ", i, ": ", facts.disk_free, " bytes of disk free, below ", r.min_disk);
      return 0;
    }
    const int n = r.cpus == 0 ? node_cpus : r.cpus > 0 ? std::min(r.cpus, node_cpus) : node_cpus + r.cpus;
    if (n < 1) *reason = absl::StrCat("rule ", i, " leaves no CPU of ", node_cpus);
    return std::max(n, 0);
  }
  return node_cpus;
}

// Starts the computation on node `uri`: `fixed_cpus` workers (a shared
// scheduler's grant), or with -1 as many as the allocation gives.
Task<absl::Status> ShipDataFiles(std::shared_ptr<State> s, std::string uri, remote::Service node);

Task<absl::Status> ScheduleNode(std::shared_ptr<State> s, std::string uri, std::string library_name,
                                int fixed_cpus = -1) {
  absl::StatusOr<remote::Service> node =
      co_await remote::Service::Locate(kNodeService, Location::Peer(uri), s->options.timeout);
  if (!node.ok()) co_return Annotate(node.status(), absl::StrCat(uri, ": not a picos-node"));
  Value::MapType info_request;
  info_request["op"] = Value("info");
  absl::StatusOr<TaskRef> asked = co_await node->Run(Value(std::move(info_request)), s->options.timeout);
  if (!asked.ok()) co_return Annotate(asked.status(), absl::StrCat(uri, ": info"));
  absl::StatusOr<Value> info = co_await asked->Join(s->options.timeout);
  if (!info.ok()) co_return Annotate(info.status(), absl::StrCat(uri, ": info"));
  absl::StatusOr<HostFacts> facts = HostFacts::FromValue((*info)["facts"]);
  absl::StatusOr<int64_t> node_cpus = info->Get<int64_t>("cpus");
  if (!facts.ok() || !node_cpus.ok() || *node_cpus < 1 || *node_cpus > 256) {
    co_return absl::DataLossError(absl::StrCat(uri, ": malformed info reply"));
  }
  Emit(*s, "node_discovered", "node", uri, "facts", facts->ToValue(), "cpus", *node_cpus);
  std::string reason;
  const int cpus = fixed_cpus >= 0 ? std::min(fixed_cpus, static_cast<int>(*node_cpus))
                                   : Allocate(s->options, uri, *facts, static_cast<int>(*node_cpus), &reason);
  if (cpus == 0) {
    PICOS_LOG(info, "compute: node {} not used: {}", uri, reason);
    Emit(*s, "node_ignored", "node", uri, "reason", reason);
    co_return absl::OkStatus();
  }
  remote::SendFileOptions so;
  so.dir = s->id;
  so.timeout = s->options.timeout;
  absl::Status sent = co_await remote::SendFile(Location::Peer(uri), s->options.library, so);
  if (!sent.ok()) co_return Annotate(sent, absl::StrCat(uri, ": shipping the library"));
  if (!s->options.signature.empty()) {
    sent = co_await remote::SendFile(Location::Peer(uri), s->options.signature, so);
    if (!sent.ok()) co_return Annotate(sent, absl::StrCat(uri, ": shipping the signature"));
  }
  sent = co_await ShipDataFiles(s, uri, *node);
  if (!sent.ok()) co_return sent;
  s->contacted.emplace_back(uri, *node);
  Value start = Value::Map({{"op", "start"},
                            {"computation", s->id},
                            {"library", library_name},
                            {"sha256", s->sha256},
                            {"cpus", int64_t{cpus}},
                            {"client", s->receiver},
                            {"node", uri}});
  if (s->options.pulse_interval > absl::ZeroDuration()) {
    start.as_map()["pulse_interval_ms"] =
        Value(std::max<int64_t>(1, absl::ToInt64Milliseconds(s->options.pulse_interval)));
  }
  absl::StatusOr<TaskRef> task = co_await node->Run(std::move(start), s->options.timeout);
  if (!task.ok()) co_return Annotate(task.status(), uri);
  absl::StatusOr<Value> reply = co_await task->Join(s->options.timeout);
  if (!reply.ok()) co_return Annotate(reply.status(), uri);
  const Value& list = (*reply)["workers"];
  if (!list.is_list() || list.as_list().size() > 256) {
    co_return absl::DataLossError(absl::StrCat(uri, ": malformed reply ", reply->DebugString().substr(0, 200)));
  }
  const size_t n = s->nodes.size();
  NodeEntry entry(*node);
  entry.uri = uri;
  entry.facts = *facts;
  entry.facts_time = absl::Now();
  SpawnOptions daemon;
  daemon.daemon = true;
  entry.watcher = ThisScheduler().Spawn(daemon, WatchNode, s, n, node->server());
  entry.enabled = !s->options.disable_nodes;
  entry.setup_arg = s->options.node_setup_arg;
  if (!entry.enabled) entry.state = NodeState::kDisabled;
  s->nodes.push_back(std::move(entry));
  // (node_discovered went out with its facts, above; a disabled node waits
  // for EnableNode to be initialized.)
  if (!s->options.disable_nodes) {
    Emit(*s, "node_initialized", "node", uri, "facts", facts->ToValue(), "cpus", int64_t{cpus});
  }
  std::vector<std::string> uris;
  for (const Value& w : list.as_list()) {
    absl::StatusOr<std::string> wuri = w.As<std::string>();
    if (!wuri.ok() || wuri->empty() || wuri->size() > 1024) {
      co_return absl::DataLossError(absl::StrCat(uri, ": malformed worker URI"));
    }
    uris.push_back(*std::move(wuri));
    Emit(*s, "worker_discovered", "worker", uris.back(), "node", uri);
  }
  // Every worker is dialled and its loop started at once (a connection and
  // two round trips each), then they are taken in order.
  auto reached = std::make_shared<std::vector<ReachedWorker>>(uris.size());
  std::vector<TaskRef> reaching;
  for (size_t i = 0; i < uris.size(); ++i) {
    reaching.push_back(ThisScheduler().Spawn(ReachWorker, reached, i, uris[i], s->options.timeout, s->names));
  }
  int index = 0;
  std::vector<TaskRef> taking;  // TakeWorker of each
  for (size_t i = 0; i < uris.size(); ++i) {
    absl::StatusOr<Value> joined = co_await reaching[i].Join();
    if (!joined.ok()) co_return Annotate(joined.status(), absl::StrCat(uri, ": worker ", uris[i]));
    const std::string* wuri = &uris[i];
    absl::StatusOr<remote::Service>& job = (*reached)[i].service;
    if (!job.ok()) co_return Annotate(job.status(), absl::StrCat(uri, ": worker ", *wuri));
    absl::StatusOr<TaskRef>& loop = (*reached)[i].loop;
    if (!loop.ok()) co_return Annotate(loop.status(), absl::StrCat(uri, ": worker ", *wuri, ": its job loop"));
    const size_t slot = s->workers.size();
    WorkerSlot ws(*job);
    ws.loop = *loop;
    ws.uri = *wuri;
    ws.node = n;
    ws.index = index++;
    ws.watcher = ThisScheduler().Spawn(daemon, WatchWorker, s, slot, uint64_t{0}, *loop);
    s->workers.push_back(std::move(ws));
    ++s->nodes[n].workers;
    taking.push_back(ThisScheduler().Spawn(TakeWorker, s, slot));
  }
  // The workers' setups run at once; a failure is its worker's event.
  for (TaskRef& t : taking) (void)co_await t.Join();
  co_return absl::OkStatus();
}

NodeEntry* FindNode(State& s, const std::string& uri);

// A peer of the client's node (ComputationOptions::discover): used as a
// node if it answers as a picos-node, quietly passed over if it serves no
// kNodeService (a worker, another client, a scheduler). Each peer is asked
// once; one whose start fails is logged and not used.
Task<> ProbeNode(std::shared_ptr<State> s, std::string uri, std::string library_name) {
  absl::StatusOr<remote::Service> node =
      co_await remote::Service::Locate(kNodeService, Location::Peer(uri), s->options.timeout);
  if (!node.ok()) {
    PICOS_LOG(debug, "compute: peer {} is not a picos-node: {}", uri, node.status().ToString());
    co_return;
  }
  if (s->closed || FindNode(*s, uri) != nullptr) co_return;
  absl::Status st = co_await ScheduleNode(s, uri, library_name);
  if (!st.ok()) {
    PICOS_LOG(warn, "compute: discovered node {} not used: {}", uri, st.ToString());
  }
  NotifyChange(*s);
  Dispatch(*s);
}

// The peer URI of a peers() entry or a peer event ("name@uri").
std::string PeerUri(const std::string& peer) {
  const size_t at = peer.find('@');
  return at == std::string::npos ? peer : peer.substr(at + 1);
}

// Takes the client node's peer events (ComputationOptions::discover): every
// peer connected now and each that joins later is probed (ProbeNode). Ends
// when terminated (Close) or when the node's channel closes.
Task<> DiscoverNodes(std::shared_ptr<State> s, remote::Node* node, std::string library_name) {
  absl::Status subscribed = Channel(node->peer_events()).Subscribe(Self());
  if (!subscribed.ok()) {
    PICOS_LOG(warn, "compute: cannot follow the node's peers: {}", subscribed.ToString());
    co_return;
  }
  auto probe = [&s, &library_name](const std::string& uri) {
    if (uri.empty() || s->closed || s->probed.size() >= 4096 || !s->probed.insert(uri).second) return;
    ThisScheduler().Spawn(SpawnOptions{.name = "picos.compute.probe", .daemon = true}, ProbeNode, s, uri,
                          library_name);
  };
  for (const std::string& p : node->peers()) probe(PeerUri(p));
  for (;;) {
    absl::StatusOr<Value> m = co_await Receive();
    if (!m.ok()) co_return;
    const Value* p = SystemMessagePayload(*m, remote::kPeerEventMessage);
    if (p == nullptr || !p->is_map()) continue;
    const std::string event = p->GetOr<std::string>("event", "");
    const std::string uri = p->GetOr<std::string>("uri", "");
    if (event == "joined") {
      probe(uri);
    } else if (event == "lost" || event == "left") {
      // Asked again if it comes back (a node restarted is a new peer); one
      // in use is already reported lost by its watcher.
      if (FindNode(*s, uri) == nullptr) s->probed.erase(uri);
    }
  }
}

size_t Alive(const State& s) {
  size_t n = 0;
  for (const WorkerSlot& w : s.workers) n += (!w.lost && !w.closed) || w.restarting ? 1 : 0;
  return n;
}

size_t NodesInUse(const State& s) {
  size_t n = 0;
  for (const NodeEntry& e : s.nodes) {
    n += e.state == NodeState::kInitialized || e.state == NodeState::kSuspended ? 1 : 0;
  }
  return n;
}

Task<absl::StatusOr<TaskRef>> SpawnJob(std::shared_ptr<State> s, std::string fn, std::string arg, bool async,
                                       std::string where, TaskRef reply_to = TaskRef(),
                                       // Not `= {}`: g++ 12 and a braced list in a co_await expression.
                                       std::vector<std::string> files = std::vector<std::string>()) {
  if ((s->workers.empty() && !s->shared && !s->discovering) || s->closed) {
    co_return absl::FailedPreconditionError("jobs need a scheduled computation that is not closed");
  }
  if (!where.empty()) {
    bool known = false;
    for (const WorkerSlot& w : s->workers) known = known || Matches(*s, w, where);
    if (!known) co_return absl::NotFoundError(absl::StrCat("no worker of computation ", s->id, " at ", where));
  }
  const uint64_t id = ++s->next_job;
  auto link = std::make_shared<JobLink>();
  link->files = std::move(files);
  s->links[id] = link;
  if (s->options.metrics != nullptr) s->options.metrics->JobQueued(s->id, id, fn);
  JobEntry& job = s->jobs[id];
  job.fn = fn;
  job.async = async;
  // The handle first: the driver hands it the result, even at once.
  link->handle = ThisScheduler().Spawn(
      SpawnOptions{.name = "picos.compute.job", .mailbox_limit = static_cast<uint32_t>(kJobMailboxLimit)}, JobHandle,
      link);
  link->driver = ThisScheduler().Spawn(RunJob, s, id, std::move(fn), std::move(arg), async, std::move(where),
                                       std::move(reply_to), link);
  job.task = link->handle;
  job.driver = link->driver;
  co_return job.task;
}

WorkerSlot* FindWorker(State& s, const std::string& uri) {
  for (WorkerSlot& w : s.workers) {
    if (w.uri == uri) return &w;
  }
  return nullptr;
}

NodeEntry* FindNode(State& s, const std::string& uri) {
  for (NodeEntry& n : s.nodes) {
    if (n.uri == uri) return &n;
  }
  return nullptr;
}

absl::Status SetWorkerSuspended(State& s, const std::string& uri, bool suspended) {
  WorkerSlot* w = FindWorker(s, uri);
  if (w == nullptr) return absl::NotFoundError(absl::StrCat("no worker ", uri));
  if (w->lost || w->closed || w->closing || s.closed) {
    return absl::FailedPreconditionError(absl::StrCat("worker ", uri, " is lost or closed"));
  }
  if (w->suspended == suspended) return absl::OkStatus();
  w->suspended = suspended;
  Emit(s, suspended ? "worker_suspended" : "worker_resumed", "worker", uri, "node", s.nodes[w->node].uri);
  Dispatch(s);
  return absl::OkStatus();
}

absl::Status SetNodeSuspended(State& s, const std::string& uri, bool suspended) {
  NodeEntry* n = FindNode(s, uri);
  if (n == nullptr) return absl::NotFoundError(absl::StrCat("no node ", uri));
  if (n->state == NodeState::kLost || n->state == NodeState::kClosed || s.closed) {
    return absl::FailedPreconditionError(absl::StrCat("node ", uri, " is lost or closed"));
  }
  if (!n->enabled) return absl::FailedPreconditionError(absl::StrCat("node ", uri, " is disabled: EnableNode first"));
  const NodeState want = suspended ? NodeState::kSuspended : NodeState::kInitialized;
  if (n->state == want) return absl::OkStatus();
  n->state = want;
  Emit(s, suspended ? "node_suspended" : "node_resumed", "node", uri);
  Dispatch(s);
  return absl::OkStatus();
}

bool AnyRunning(const State& s, bool cpu, bool io) {
  for (const auto& [id, j] : s.jobs) {
    if (j.state == JobState::kRunning && ((j.async && io) || (!j.async && cpu))) return true;
  }
  return false;
}


// --- Setup hooks (compute/export.h; computation.h "Setup hooks") ---

// Runs, in worker `w`'s process, the setup stages due: its node's (once the
// node is enabled) and its own (once it is enabled too), in one request
// (compute/picos_node.cc RunSetup). Once both ran the worker takes jobs
// (worker_initialized with `announce`). A hook that fails, or a setup that
// does not answer within the timeout, gives worker_setup_failed and the
// worker is closed (never given a job); a worker lost meanwhile is its
// watcher's to report. Suspends.
Task<absl::Status> SetUpWorker(std::shared_ptr<State> s, size_t w, bool announce) {
  // One request at a time per worker (EnableWorker during EnableNode).
  while (s->workers[w].setting_up) {
    absl::Status waited = co_await WaitForChange(s);
    if (!waited.ok()) co_return waited;
  }
  const WorkerSlot& slot = s->workers[w];
  const NodeEntry& node = s->nodes[slot.node];
  if (s->closed || slot.set_up || slot.lost || slot.closed || slot.closing || !node.enabled) co_return absl::OkStatus();
  const bool node_stage = !slot.node_set_up;
  const bool worker_stage = slot.enabled;
  if (!node_stage && !worker_stage) co_return absl::OkStatus();
  Value::MapType req;
  req["setup"] = Value(true);
  if (node_stage) req["node"] = Value::Bytes(node.setup_arg);
  if (worker_stage) req["worker"] = Value::Bytes(slot.setup_arg);
  const uint64_t generation = slot.generation;
  const std::string uri = slot.uri;
  const std::string node_uri = node.uri;
  remote::Service service = slot.service;
  s->workers[w].setting_up = true;
  absl::StatusOr<TaskRef> t = co_await service.Run(Value(std::move(req)), s->options.timeout);
  absl::StatusOr<Value> r = absl::UnknownError("not run");
  if (t.ok()) {
    r = co_await t->Join(s->options.timeout);
  } else {
    r = t.status();
  }
  WorkerSlot& again = s->workers[w];
  if (again.generation != generation) co_return absl::AbortedError(absl::StrCat("worker ", uri, " changed meanwhile"));
  again.setting_up = false;
  NotifyChange(*s);
  if (r.ok()) {
    if (node_stage) again.node_set_up = true;
    if (worker_stage) {
      again.set_up = true;
      if (announce) Emit(*s, "worker_initialized", "worker", uri, "node", node_uri);
    }
    Dispatch(*s);
    co_return absl::OkStatus();
  }
  if (r.status().code() == absl::StatusCode::kUnavailable || again.lost || again.closed || again.closing) {
    co_return Annotate(r.status(), uri);  // lost (or closed) meanwhile: reported as such
  }
  const std::string why(r.status().message());
  const bool node_failed = node_stage && !absl::StartsWith(why, "worker setup");
  PICOS_LOG(warn, "compute: worker {} failed its setup: {}", uri, why);
  Emit(*s, "worker_setup_failed", "worker", uri, "node", node_uri, "stage", node_failed ? "node" : "worker", "message",
       why);
  // Never given a job: its node ends it.
  again.closing = true;
  again.restarting = false;
  absl::StatusOr<std::string> closed = co_await AskRestart(s, w, "close_worker");
  if (!closed.ok()) PICOS_LOG(warn, "compute: closing worker {} after its setup failed: {}", uri, closed.status().ToString());
  WorkerSlot& gone = s->workers[w];
  if (gone.generation == generation && !gone.closed) {
    gone.closed = true;
    if (gone.watcher.valid()) (void)gone.watcher.Terminate();
    Emit(*s, "worker_closed", "worker", uri, "node", node_uri);
  }
  NotifyChange(*s);
  Dispatch(*s);
  co_return absl::AbortedError(absl::StrCat(uri, ": ", why));
}

// A worker just added to slot `w` (Schedule, a share that grew): enabled
// or not as the options say, set up if its node and it are enabled, else
// left waiting (its worker_discovered went out when its node started it).
// Suspends.
Task<absl::Status> TakeWorker(std::shared_ptr<State> s, size_t w) {
  WorkerSlot& slot = s->workers[w];
  slot.enabled = !s->options.disable_workers;
  slot.setup_arg = s->options.worker_setup_arg;
  if (!slot.enabled || !s->nodes[slot.node].enabled) co_return absl::OkStatus();
  co_return co_await SetUpWorker(s, w, true);
}

// Runs SetUpWorker on each of `slots` at once; OK if any is set up after
// (or none was to be), else the first failure.
Task<absl::Status> SetUpWorkers(std::shared_ptr<State> s, std::vector<size_t> slots) {
  std::vector<TaskRef> running;
  for (size_t w : slots) running.push_back(ThisScheduler().Spawn(SetUpWorker, s, w, true));
  absl::Status first;
  bool any = slots.empty();
  for (size_t i = 0; i < running.size(); ++i) {
    absl::StatusOr<Value> done = co_await running[i].Join();
    const WorkerSlot& slot = s->workers[slots[i]];
    any = any || slot.set_up || (done.ok() && !slot.enabled && slot.node_set_up);
    if (!done.ok() && first.ok()) first = done.status();
  }
  co_return any ? absl::OkStatus() : first;
}

// The workers of node `n` that may still serve (not lost, closed or closing).
std::vector<size_t> OpenWorkersOf(const State& s, size_t n) {
  std::vector<size_t> out;
  for (size_t i = 0; i < s.workers.size(); ++i) {
    const WorkerSlot& w = s.workers[i];
    if (w.node == n && !w.closed && !w.closing && !w.lost && !w.restarting) out.push_back(i);
  }
  return out;
}

// --- A shared scheduler (compute/scheduler.h) ---

Task<absl::Status> CloseWorkerIn(std::shared_ptr<State> s, std::string uri, bool restart, bool terminate);

// Workers of node `n` that count against the share: alive, restarting or
// still closing (their jobs run).
int Held(const State& s, size_t n) {
  int held = 0;
  for (const WorkerSlot& w : s.workers) held += w.node == n && !w.closed && (!w.lost || w.restarting) ? 1 : 0;
  return held;
}

// One more worker on node `n` (the node's add_worker), taken into use.
Task<absl::Status> AddWorker(std::shared_ptr<State> s, size_t n) {
  remote::Service node = s->nodes[n].service;
  const std::string uri = s->nodes[n].uri;
  Value::MapType req;
  req["op"] = Value("add_worker");
  req["computation"] = Value(s->id);
  absl::StatusOr<TaskRef> t = co_await node.Run(Value(std::move(req)), s->options.timeout);
  if (!t.ok()) co_return Annotate(t.status(), absl::StrCat(uri, ": add_worker"));
  absl::StatusOr<Value> reply = co_await t->Join(s->options.timeout);
  if (!reply.ok()) co_return Annotate(reply.status(), absl::StrCat(uri, ": add_worker"));
  std::string wuri;
  int64_t index = -1;
  absl::Status read = MessageReader(*reply).Get("worker", &wuri).Get("index", &index).status();
  if (!read.ok() || wuri.empty() || wuri.size() > 1024 || index < 0 || index > 4096) {
    co_return absl::DataLossError(absl::StrCat(uri, ": malformed add_worker reply"));
  }
  Emit(*s, "worker_discovered", "worker", wuri, "node", uri);
  auto reached = std::make_shared<std::vector<ReachedWorker>>(1);
  TaskRef reaching = ThisScheduler().Spawn(ReachWorker, reached, size_t{0}, wuri, s->options.timeout, s->names);
  absl::StatusOr<Value> joined = co_await reaching.Join();
  if (!joined.ok()) co_return Annotate(joined.status(), absl::StrCat(uri, ": worker ", wuri));
  if (!(*reached)[0].service.ok()) co_return Annotate((*reached)[0].service.status(), absl::StrCat(uri, ": worker ", wuri));
  if (!(*reached)[0].loop.ok()) co_return Annotate((*reached)[0].loop.status(), absl::StrCat(uri, ": worker ", wuri));
  if (s->closed) co_return absl::FailedPreconditionError("the computation is closed");
  const size_t slot = s->workers.size();
  WorkerSlot ws(*(*reached)[0].service);
  ws.loop = *(*reached)[0].loop;
  ws.uri = wuri;
  ws.node = n;
  ws.index = static_cast<int>(index);
  SpawnOptions daemon;
  daemon.daemon = true;
  ws.watcher = ThisScheduler().Spawn(daemon, WatchWorker, s, slot, uint64_t{0}, ws.loop);
  s->workers.push_back(std::move(ws));
  ++s->nodes[n].workers;
  (void)co_await TakeWorker(s, slot);  // a setup failure is its event
  NotifyChange(*s);
  Dispatch(*s);
  co_return absl::OkStatus();
}

// Applies the allocation to a node the scheduler describes ({"uri", "cpus",
// "up", "facts"}, network input): what this client wants there, 0 to skip
// it (node_ignored). kDataLoss for a malformed description.
absl::Status AddDemand(State& s, const Value& n) {
  std::string uri;
  int64_t cpus = 0;
  bool up = false;
  absl::Status read = MessageReader(n).Get("uri", &uri).Get("cpus", &cpus).Get("up", &up).status();
  if (!read.ok() || uri.empty() || uri.size() > 1024 || cpus < 0 || cpus > 256) {
    return absl::DataLossError("malformed node");
  }
  absl::StatusOr<HostFacts> facts = HostFacts::FromValue(n["facts"]);
  if (!up || !facts.ok() || cpus < 1 || s.demand.contains(uri)) return absl::OkStatus();
  if (!s.only.empty() && std::find(s.only.begin(), s.only.end(), uri) == s.only.end()) {
    s.demand[uri] = 0;
    return absl::OkStatus();
  }
  std::string reason;
  const int want = Allocate(s.options, uri, *facts, static_cast<int>(cpus), &reason);
  if (want == 0) {
    PICOS_LOG(info, "compute: node {} not used: {}", uri, reason);
    Emit(s, "node_ignored", "node", uri, "reason", reason);
  }
  s.demand[uri] = want;
  return absl::OkStatus();
}

// Tells the scheduler what this client holds on each node.
Task<absl::Status> ReportHeld(std::shared_ptr<State> s) {
  Value::MapType held;
  for (const auto& [uri, want] : s->grant) {
    NodeEntry* e = FindNode(*s, uri);
    held[uri] = Value(int64_t{e == nullptr ? 0 : Held(*s, static_cast<size_t>(e - s->nodes.data()))});
  }
  Value::MapType demand;
  for (const auto& [uri, want] : s->demand) demand[uri] = Value(int64_t{want});
  Value::MapType req;
  req["op"] = Value("held");
  req["computation"] = Value(s->id);
  req["held"] = Value(std::move(held));
  req["epoch"] = Value(s->grant_epoch);
  req["demand"] = Value(std::move(demand));
  absl::StatusOr<TaskRef> t = co_await s->scheduler->Run(Value(std::move(req)), s->options.timeout);
  if (!t.ok()) co_return t.status();
  absl::StatusOr<Value> done = co_await t->Join(s->options.timeout);
  co_return done.status();
}

// Brings the workers on each node to the grant: a share that shrank closes
// workers, idle ones first, each after its running jobs (CloseWorker
// without restart); one that grew starts the computation on a node not
// used yet, or adds workers. Then reports what it holds.
Task<> Reconcile(std::shared_ptr<State> s) {
  const std::string library_name = std::filesystem::path(s->options.library).filename().string();
  std::vector<TaskRef> closing;
  const std::map<std::string, int> grant = s->grant;
  for (const auto& [uri, want] : grant) {
    if (s->closed) break;
    NodeEntry* e = FindNode(*s, uri);
    if (e == nullptr) {
      auto d = s->demand.find(uri);  // (not operator[]: no demand is not a demand of 0)
      const int wanted = d == s->demand.end() ? 0 : std::min(want, d->second);
      if (wanted <= 0) continue;
      absl::Status st = co_await ScheduleNode(s, uri, library_name, wanted);
      if (!st.ok()) {
        PICOS_LOG(warn, "compute: starting on {} within the share: {}", uri, st.ToString());
        s->share_error = st;
      }
      continue;
    }
    if (e->state == NodeState::kLost || e->state == NodeState::kClosed) {
      // A node lost is not used again (as without a scheduler): its share
      // goes back to the others.
      s->demand[uri] = 0;
      continue;
    }
    const size_t n = static_cast<size_t>(e - s->nodes.data());
    std::vector<size_t> open;  // alive and not closing
    for (size_t i = 0; i < s->workers.size(); ++i) {
      const WorkerSlot& w = s->workers[i];
      if (w.node == n && !w.closed && !w.closing && (!w.lost || w.restarting)) open.push_back(i);
    }
    const int have = static_cast<int>(open.size());
    if (have > want) {
      std::stable_sort(open.begin(), open.end(),
                       [&](size_t a, size_t b) { return s->workers[a].jobs.size() < s->workers[b].jobs.size(); });
      for (int k = 0; k < have - want; ++k) {
        closing.push_back(ThisScheduler().Spawn(CloseWorkerIn, s, s->workers[open[k]].uri, false, false));
      }
    }
    for (int k = have; k < want && !s->closed; ++k) {
      absl::Status st = co_await AddWorker(s, n);
      if (!st.ok()) {
        PICOS_LOG(warn, "compute: growing into the share on {}: {}", uri, st.ToString());
        s->share_error = st;
        break;
      }
    }
  }
  for (TaskRef& t : closing) (void)co_await t.Join();
  if (s->closed) co_return;
  absl::Status reported = co_await ReportHeld(s);
  if (!reported.ok()) PICOS_LOG(warn, "compute: telling the scheduler what {} holds: {}", s->id, reported.ToString());
}

// The share task: the scheduler sends it each change of this client's
// grant ({kSharesKey: <epoch>, "shares": {uri: n}}; network input, checked)
// and monitors it. Ends with Close or the Computation.
Task<> ReceiveShares(std::shared_ptr<State> s) {
  for (;;) {
    absl::StatusOr<Value> msg = co_await Receive();
    if (!msg.ok()) co_return;
    int64_t epoch = -1;
    absl::Status read = MessageReader(*msg).Get(kSharesKey, &epoch).status();
    const Value& shares = (*msg)["shares"];
    bool good = read.ok() && shares.is_map() && shares.as_map().size() <= 1024;
    std::map<std::string, int> grant;
    if (good) {
      for (const auto& [uri, n] : shares.as_map()) {
        if (!n.is_int() || n.as_int() < 0 || n.as_int() > 256) {
          good = false;
          break;
        }
        grant[uri] = static_cast<int>(n.as_int());
      }
    }
    const Value& fresh = (*msg)["nodes"];
    good = good && (fresh.is_null() || (fresh.is_list() && fresh.as_list().size() <= 1024));
    if (!good) {
      PICOS_LOG_LIMITED(warn, "compute: malformed share update for {}", s->id);
      continue;
    }
    if (epoch < s->grant_epoch) continue;  // an older one overtaken
    s->grant_epoch = epoch;
    for (const auto& [uri, n] : grant) s->grant[uri] = n;
    // Nodes that came after this client joined: what it wants there goes
    // back with what it holds (ReportHeld).
    if (fresh.is_list()) {
      for (const Value& n : fresh.as_list()) (void)AddDemand(*s, n);
    }
    co_await Reconcile(s);
    NotifyChange(*s);
  }
}

// Schedule with ComputationOptions::scheduler: asks the scheduler for the
// nodes and their facts, applies the allocation to each (the demand),
// joins, and grows into the grant; waits (up to the timeout) for a first
// worker.
Task<absl::Status> ScheduleShared(std::shared_ptr<State> s, std::vector<std::string> only) {
  const std::string where = absl::StrCat("scheduler ", s->options.scheduler);
  if (!s->scheduler.has_value()) {
    absl::StatusOr<remote::Service> svc =
        co_await remote::Service::Locate(kSchedulerService, Location::Peer(s->options.scheduler), s->options.timeout);
    if (!svc.ok()) co_return Annotate(svc.status(), absl::StrCat(where, ": not a picos-scheduler"));
    s->scheduler = *svc;
  }
  if (s->shares_task.valid()) co_return absl::AlreadyExistsError("scheduled already through the scheduler");
  Value::MapType info_request;
  info_request["op"] = Value("info");
  absl::StatusOr<TaskRef> asked = co_await s->scheduler->Run(Value(std::move(info_request)), s->options.timeout);
  if (!asked.ok()) co_return Annotate(asked.status(), absl::StrCat(where, ": info"));
  absl::StatusOr<Value> info = co_await asked->Join(s->options.timeout);
  if (!info.ok()) co_return Annotate(info.status(), absl::StrCat(where, ": info"));
  const Value& nodes = (*info)["nodes"];
  if (!nodes.is_list() || nodes.as_list().size() > 1024) {
    co_return absl::DataLossError(absl::StrCat(where, ": malformed info reply"));
  }
  s->only = std::move(only);
  for (const Value& n : nodes.as_list()) {
    absl::Status added = AddDemand(*s, n);
    if (!added.ok()) co_return absl::DataLossError(absl::StrCat(where, ": malformed node in its info reply"));
  }
  Value::MapType demand;
  for (const auto& [uri, want] : s->demand) demand[uri] = Value(int64_t{want});
  s->shared = true;
  s->shares_task =
      ThisScheduler().Spawn(SpawnOptions{.name = "picos.compute.shares", .daemon = true}, ReceiveShares, s);
  Value::MapType join;
  join["op"] = Value("join");
  join["computation"] = Value(s->id);
  join["client"] = Value(s->shares_task);
  join["demand"] = Value(std::move(demand));
  absl::StatusOr<TaskRef> joining = co_await s->scheduler->Run(Value(std::move(join)), s->options.timeout);
  absl::StatusOr<Value> joined = absl::UnknownError("not joined");
  if (joining.ok()) {
    joined = co_await joining->Join(s->options.timeout);
  } else {
    joined = joining.status();
  }
  if (!joined.ok()) {
    (void)s->shares_task.Terminate();
    s->shares_task = TaskRef();
    s->shared = false;
    co_return Annotate(joined.status(), absl::StrCat(where, ": join"));
  }
  // The grant goes through the share task like every later change, so
  // that one task alone starts and closes workers.
  Value first = Value::Map({{std::string(kSharesKey), int64_t{0}}, {"shares", (*joined)["shares"]}});
  (void)s->shares_task.Send(std::move(first));
  const int steps = static_cast<int>(s->options.timeout / absl::Milliseconds(20)) + 1;
  for (int i = 0; i < steps && Alive(*s) == 0 && !s->closed; ++i) {
    absl::Status slept = co_await Sleep(absl::Milliseconds(20));
    if (!slept.ok()) co_return slept;
  }
  if (Alive(*s) == 0) {
    co_return s->share_error.ok()
                  ? absl::DeadlineExceededError(absl::StrCat(where, ": no share of any node within ",
                                                             absl::FormatDuration(s->options.timeout)))
                  : s->share_error;
  }
  co_return absl::OkStatus();
}
// --- Files (computation.h "Files") ---

// ComputationOptions' files fields, at Create: every data file a regular
// file, names distinct from each other and from the library's and
// signature's (all land in one folder on each node).
absl::Status CheckFileOptions(const ComputationOptions& o) {
  if (o.files.size() > kMaxDataFiles) {
    return absl::InvalidArgumentError(absl::StrCat("files: at most ", kMaxDataFiles, " data files"));
  }
  std::set<std::string> names = {std::filesystem::path(o.library).filename().string()};
  if (!o.signature.empty()) names.insert(std::filesystem::path(o.signature).filename().string());
  for (const std::string& f : o.files) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(f, ec)) {
      return absl::NotFoundError(absl::StrCat("data file ", f, ": not a regular file"));
    }
    if (!names.insert(std::filesystem::path(f).filename().string()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("data file ", f, ": its name is taken by another file of the computation"));
    }
  }
  if (o.client_uri.size() > 1024) return absl::InvalidArgumentError("client_uri: at most 1024 bytes");
  if (!o.dest_path.empty() && o.client_uri.empty()) {
    return absl::InvalidArgumentError("dest_path without client_uri: the computation would take no files");
  }
  if (o.max_file_size == 0) return absl::InvalidArgumentError("max_file_size must be positive");
  return absl::OkStatus();
}

// The task the workers tell of each file a job sent here
// (compute/protocol.h): a file_received event each. Network input: a
// malformed message, or a name or subdirectory the receiver could not have
// written, is logged and dropped.
Task<> FileEvents(std::shared_ptr<State> s) {
  for (;;) {
    absl::StatusOr<Value> msg = co_await Receive();
    if (!msg.ok()) co_return;
    uint64_t job = 0;
    std::string name, dir, worker;
    int64_t size = 0;
    absl::Status read = MessageReader(*msg)
                            .Get(kJobFileKey, &job)
                            .Get("name", &name)
                            .Get("dir", &dir)
                            .Get("size", &size)
                            .Optional("worker", &worker)
                            .status();
    bool ok = read.ok() && !name.empty() && name.size() <= 255 && name != "." && name != ".." &&
              !absl::StrContains(name, '/') && !absl::StrContains(name, '\0') && dir.size() <= 4096 &&
              !absl::StartsWith(dir, "/") && !absl::StrContains(dir, '\0') && worker.size() <= 1024;
    for (absl::string_view part : absl::StrSplit(dir, '/')) ok = ok && part != "..";
    if (!ok || s->file_receiver == nullptr) {
      PICOS_LOG_LIMITED(warn, "compute: malformed file message: {}", msg->DebugString().substr(0, 120));
      continue;
    }
    std::filesystem::path path(s->file_receiver->dir());
    if (!dir.empty()) path /= dir;
    path /= name;
    Emit(*s, "file_received", "job", job, "path", path.lexically_normal().string(), "size", size, "worker", worker);
  }
}

// With client_uri: this process's FileReceiver on dest_path (created when
// missing) and the task told of each file. Once per computation.
absl::Status EnableFileReceiver(const std::shared_ptr<State>& s) {
  if (s->options.client_uri.empty() || s->file_receiver != nullptr) return absl::OkStatus();
  const std::string dest = s->options.dest_path.empty()
                               ? (std::filesystem::current_path() / s->id).string()
                               : s->options.dest_path;
  std::error_code ec;
  std::filesystem::create_directories(dest, ec);
  if (ec) return absl::InternalError(absl::StrCat("dest_path ", dest, ": ", ec.message()));
  remote::FileReceiverOptions ro;
  ro.dir = dest;
  ro.max_file_size = s->options.max_file_size;
  absl::StatusOr<std::unique_ptr<remote::FileReceiver>> rx = remote::FileReceiver::Enable(std::move(ro));
  if (!rx.ok()) {
    return Annotate(rx.status(), "taking files from jobs (client_uri; one computation per process at a time)");
  }
  s->file_receiver = *std::move(rx);
  s->files_task = ThisScheduler().Spawn(SpawnOptions{.name = "picos.compute.files", .daemon = true}, FileEvents, s);
  return absl::OkStatus();
}

void DisableFileReceiver(State& s) {
  if (s.files_task.valid()) (void)s.files_task.Terminate();
  s.file_receiver.reset();
}

// What a job message carries so that the job's SendFile reaches this client
// (compute/protocol.h).
void AddFileFields(const State& s, Value::MapType& m) {
  if (s.file_receiver == nullptr) return;
  m["files_to"] = Value(s.options.client_uri);
  m["files_task"] = Value(s.files_task);
}

// Ships `path` to the computation's folder on `node` (its subdirectory
// `dir`), the refusal naming the file and the node.
Task<absl::Status> ShipFile(std::shared_ptr<State> s, std::string node, std::string path, std::string dir,
                            bool overwrite) {
  remote::SendFileOptions so;
  so.dir = dir.empty() ? s->id : absl::StrCat(s->id, "/", dir);
  so.overwrite = overwrite;
  so.timeout = s->options.timeout;
  Location at = Location::Peer(node);
  absl::Status sent = co_await remote::SendFile(std::move(at), path, so);
  if (!sent.ok()) co_return Annotate(sent, absl::StrCat(node, ": shipping ", path));
  co_return absl::OkStatus();
}

// ComputationOptions::files to `uri`, before its start. A refusal also
// asks the node to close the computation, which removes what was shipped.
Task<absl::Status> ShipDataFiles(std::shared_ptr<State> s, std::string uri, remote::Service node) {
  for (const std::string& f : s->options.files) {
    std::string no_dir;
    absl::Status sent = co_await ShipFile(s, uri, f, std::move(no_dir), false);
    if (sent.ok()) continue;
    PICOS_LOG(warn, "compute: {}", sent.ToString());
    Value close = Value::Map({{"op", "close"}, {"computation", s->id}});
    absl::StatusOr<TaskRef> task = co_await node.Run(std::move(close), s->options.timeout);
    if (task.ok()) (void)co_await task->Join(s->options.timeout);
    co_return sent;
  }
  co_return absl::OkStatus();
}

// RunOptions::files to jobs/<job> on the node of worker `w`, replacing
// those of an earlier attempt.
Task<absl::Status> ShipJobFiles(std::shared_ptr<State> s, size_t w, uint64_t job, std::shared_ptr<JobLink> link) {
  const std::string node = s->nodes[s->workers[w].node].uri;
  for (const std::string& f : link->files) {
    std::string dir = absl::StrCat("jobs/", job);
    absl::Status sent = co_await ShipFile(s, node, f, std::move(dir), true);
    if (!sent.ok()) co_return sent;
  }
  co_return absl::OkStatus();
}
}  // namespace

absl::StatusOr<std::unique_ptr<Computation>> Computation::Create(ComputationOptions options) {
  if (options.library.empty()) return absl::InvalidArgumentError("no computation library");
  if (options.max_retries < 0) return absl::InvalidArgumentError("max_retries must not be negative");
  if (options.timeout <= absl::ZeroDuration()) return absl::InvalidArgumentError("timeout must be positive");
  if (options.cpu_jobs_ahead < kCpuJobsAheadAuto || options.cpu_jobs_ahead > 8) {
    return absl::InvalidArgumentError("cpu_jobs_ahead must be 0..8, or kCpuJobsAheadAuto");
  }
  if (options.pulse_interval < absl::ZeroDuration() || options.pulse_interval > absl::Hours(24)) {
    return absl::InvalidArgumentError("pulse_interval must be 0 (the node's) up to 24h");
  }
  if (options.node_setup_arg.size() > kJobMessageMaxBytes || options.worker_setup_arg.size() > kJobMessageMaxBytes) {
    return absl::InvalidArgumentError(absl::StrCat("setup arguments are at most ", kJobMessageMaxBytes, " bytes"));
  }
  for (size_t i = 0; i < options.allocation.size(); ++i) {
    const AllocationRule& r = options.allocation[i];
    if (r.host.empty() || r.platform.empty() || r.cpus < -256 || r.cpus > 256) {
      return absl::InvalidArgumentError(
          absl::StrCat("allocation rule ", i, ": host and platform patterns must not be empty, cpus -256..256"));
    }
  }
  PICOS_RETURN_IF_ERROR(CheckFileOptions(options));
  auto s = std::make_shared<State>();
  PICOS_ASSIGN_OR_RETURN(s->sha256, Sha256Of(options.library));
  if (!options.signature.empty()) {
    const std::string want = std::filesystem::path(options.library).filename().string() + ".sig";
    if (std::filesystem::path(options.signature).filename() != want) {
      return absl::InvalidArgumentError(absl::StrCat("the signature file must be named ", want));
    }
    if (!std::ifstream(options.signature)) {
      return absl::NotFoundError(absl::StrCat("cannot read the signature ", options.signature));
    }
  }
  unsigned char id[8];
  RAND_bytes(id, sizeof id);
  s->id = absl::StrCat("c", absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(id), sizeof id)));
  s->options = std::move(options);
  return std::unique_ptr<Computation>(new Computation(std::move(s)));
}

Computation::~Computation() {
  State& s = *state_;
  // Jobs still waiting would wait forever: they fail. Helpers end.
  s.closed = true;
  Dispatch(s);
  if (s.receiver.valid()) (void)s.receiver.Terminate();
  if (s.names.valid()) (void)s.names.Terminate();
  if (s.discoverer.valid()) (void)s.discoverer.Terminate();
  if (s.shares_task.valid()) (void)s.shares_task.Terminate();
  if (s.jobctl.valid()) (void)s.jobctl.Terminate();
  DisableFileReceiver(s);
  for (NodeEntry& n : s.nodes) {
    if (n.watcher.valid()) (void)n.watcher.Terminate();
  }
  for (WorkerSlot& w : s.workers) {
    if (w.watcher.valid()) (void)w.watcher.Terminate();
  }
}

Task<absl::Status> Computation::Schedule(std::vector<std::string> nodes) {
  std::shared_ptr<State> s = state_;
  if (s->closed) co_return absl::FailedPreconditionError("the computation is closed");
  const std::string library_name = std::filesystem::path(s->options.library).filename().string();
  if (!s->receiver.valid()) {
    s->receiver =
        ThisScheduler().Spawn(SpawnOptions{.name = "picos.compute.client", .daemon = true}, ReceivePulses, s);
  }
  if (absl::Status files = EnableFileReceiver(s); !files.ok()) co_return files;
  if (!s->names.valid()) {
    s->names = ThisScheduler().Spawn(SpawnOptions{.name = "picos.compute.names", .daemon = true},
                                     internal::JobNameRegistry, s->id);
  }
  if (s->options.discover != nullptr && !s->discoverer.valid() && s->options.scheduler.empty()) {
    s->discovering = true;
    s->discoverer = ThisScheduler().Spawn(SpawnOptions{.name = "picos.compute.discover", .daemon = true},
                                          DiscoverNodes, s, s->options.discover, library_name);
  }
  if (!s->options.scheduler.empty()) {
    absl::Status st = co_await ScheduleShared(s, std::move(nodes));
    if (!st.ok()) co_return st;
  }
  for (const std::string& uri : s->options.scheduler.empty() ? nodes : std::vector<std::string>()) {
    if (FindNode(*s, uri) != nullptr) continue;  // scheduled there already
    // Found by discovery too: whichever asks first starts it.
    if (s->discovering && !s->probed.insert(uri).second) continue;
    absl::Status st = co_await ScheduleNode(s, uri, library_name);
    if (!st.ok()) co_return st;
  }
  Emit(*s, "computation_scheduled", "nodes", static_cast<int64_t>(NodesInUse(*s)), "workers",
       static_cast<int64_t>(Alive(*s)));
  co_return absl::OkStatus();
}

Task<absl::StatusOr<TaskRef>> Computation::Run(std::string fn, std::string arg) {
  co_return co_await SpawnJob(state_, std::move(fn), std::move(arg), false, "");
}
Task<absl::StatusOr<TaskRef>> Computation::RunAt(std::string where, std::string fn, std::string arg) {
  co_return co_await SpawnJob(state_, std::move(fn), std::move(arg), false, std::move(where));
}
Task<absl::StatusOr<TaskRef>> Computation::RunAsync(std::string fn, std::string arg) {
  co_return co_await SpawnJob(state_, std::move(fn), std::move(arg), true, "");
}
Task<absl::StatusOr<TaskRef>> Computation::RunAsyncAt(std::string where, std::string fn, std::string arg) {
  co_return co_await SpawnJob(state_, std::move(fn), std::move(arg), true, std::move(where));
}
Task<absl::StatusOr<TaskRef>> Computation::Run(std::string fn, std::string arg, RunOptions options) {
  if (options.files.size() > kMaxDataFiles) {
    co_return absl::InvalidArgumentError(absl::StrCat("RunOptions::files: at most ", kMaxDataFiles, " files"));
  }
  co_return co_await SpawnJob(state_, std::move(fn), std::move(arg), options.async, std::move(options.where),
                              std::move(options.reply_to), std::move(options.files));
}

Task<absl::Status> Computation::SendFile(std::string where, std::string path, FileOptions options) {
  std::shared_ptr<State> s = state_;
  if (s->closed) co_return absl::FailedPreconditionError("the computation is closed");
  if (absl::StartsWith(options.dir, "/")) {
    co_return absl::InvalidArgumentError(absl::StrCat("SendFile ", path, ": dir ", options.dir,
                                                      " is absolute (a subdirectory of the computation's folder)"));
  }
  std::string node;
  if (NodeEntry* n = FindNode(*s, where); n != nullptr) {
    node = n->uri;
  } else if (WorkerSlot* w = FindWorker(*s, where); w != nullptr) {
    node = s->nodes[w->node].uri;
  } else {
    co_return absl::NotFoundError(absl::StrCat("SendFile: computation ", s->id, " uses no node or worker ", where));
  }
  co_return co_await ShipFile(s, node, std::move(path), std::move(options.dir), options.overwrite);
}

absl::Status Computation::SuspendWorker(const std::string& uri) { return SetWorkerSuspended(*state_, uri, true); }
absl::Status Computation::ResumeWorker(const std::string& uri) { return SetWorkerSuspended(*state_, uri, false); }
absl::Status Computation::SuspendNode(const std::string& uri) { return SetNodeSuspended(*state_, uri, true); }
absl::Status Computation::ResumeNode(const std::string& uri) { return SetNodeSuspended(*state_, uri, false); }

namespace {
// Computation::CloseWorker, for the computation's own tasks too (a share
// that shrank).
Task<absl::Status> CloseWorkerIn(std::shared_ptr<State> s, std::string uri, bool restart, bool terminate) {
  if (s->closed) co_return absl::FailedPreconditionError("the computation is closed");
  WorkerSlot* found = FindWorker(*s, uri);
  if (found == nullptr) co_return absl::NotFoundError(absl::StrCat("no worker ", uri));
  if (found->lost || found->closed || found->closing || found->restarting) {
    co_return absl::FailedPreconditionError(absl::StrCat("worker ", uri, " is lost, closed or restarting"));
  }
  const size_t w = static_cast<size_t>(found - s->workers.data());
  const uint64_t generation = found->generation;
  found->closing = true;
  found->restarting = restart;
  Dispatch(*s);
  if (terminate) {
    for (uint64_t id : found->jobs) (void)s->jobs[id].task.Throw(absl::CancelledError(kClosedWithTerminate));
  }
  for (;;) {
    const WorkerSlot& slot = s->workers[w];
    if (slot.generation != generation || slot.jobs.empty()) break;
    absl::Status waited = co_await WaitForChange(s);
    if (!waited.ok()) co_return waited;
  }
  if (s->workers[w].generation != generation) co_return absl::AbortedError("the worker changed meanwhile");
  const std::string node = s->nodes[s->workers[w].node].uri;
  absl::StatusOr<std::string> fresh = co_await AskRestart(s, w, restart ? "restart_worker" : "close_worker");
  Emit(*s, "worker_closed", "worker", uri, "node", node);
  absl::Status result = fresh.ok() ? absl::OkStatus() : fresh.status();
  if (restart && result.ok() && !s->closed) {
    result = co_await Adopt(s, w, *fresh);
    if (result.ok()) {
      Emit(*s, "worker_restarted", "worker", s->workers[w].uri, "node", node, "old", uri);
      result = co_await SetUpWorker(s, w, false);
    }
  }
  if (!result.ok() || !restart) {
    WorkerSlot& again = s->workers[w];
    again.closed = true;
    again.restarting = false;
    if (again.watcher.valid()) (void)again.watcher.Terminate();
  }
  NotifyChange(*s);
  Dispatch(*s);
  co_return result.ok() ? result : Annotate(result, uri);
}
}  // namespace

Task<absl::Status> Computation::CloseWorker(std::string uri, bool restart, bool terminate) {
  co_return co_await CloseWorkerIn(state_, std::move(uri), restart, terminate);
}

Task<absl::Status> Computation::EnableNode(std::string uri, std::string setup_arg) {
  std::shared_ptr<State> s = state_;
  if (s->closed) co_return absl::FailedPreconditionError("the computation is closed");
  if (setup_arg.size() > kJobMessageMaxBytes) co_return absl::InvalidArgumentError("setup_arg is too large");
  NodeEntry* node = FindNode(*s, uri);
  if (node == nullptr) co_return absl::NotFoundError(absl::StrCat("no node ", uri));
  if (node->state == NodeState::kLost || node->state == NodeState::kClosed) {
    co_return absl::FailedPreconditionError(absl::StrCat("node ", uri, " is lost or closed"));
  }
  if (node->enabled) co_return absl::FailedPreconditionError(absl::StrCat("node ", uri, " is enabled already"));
  node->enabled = true;
  node->setup_arg = std::move(setup_arg);
  node->state = NodeState::kInitialized;
  const size_t n = static_cast<size_t>(node - s->nodes.data());
  Emit(*s, "node_initialized", "node", uri, "facts", node->facts.ToValue(), "cpus", int64_t{node->workers});
  absl::Status st = co_await SetUpWorkers(s, OpenWorkersOf(*s, n));
  co_return st;
}

Task<absl::Status> Computation::EnableWorker(std::string uri, std::string setup_arg) {
  std::shared_ptr<State> s = state_;
  if (s->closed) co_return absl::FailedPreconditionError("the computation is closed");
  if (setup_arg.size() > kJobMessageMaxBytes) co_return absl::InvalidArgumentError("setup_arg is too large");
  WorkerSlot* found = FindWorker(*s, uri);
  if (found == nullptr) co_return absl::NotFoundError(absl::StrCat("no worker ", uri));
  if (found->lost || found->closed || found->closing) {
    co_return absl::FailedPreconditionError(absl::StrCat("worker ", uri, " is lost or closed"));
  }
  if (found->enabled) co_return absl::FailedPreconditionError(absl::StrCat("worker ", uri, " is enabled already"));
  if (!s->nodes[found->node].enabled) {
    co_return absl::FailedPreconditionError(
        absl::StrCat("the node of worker ", uri, " is disabled: EnableNode ", s->nodes[found->node].uri, " first"));
  }
  found->enabled = true;
  found->setup_arg = std::move(setup_arg);
  const size_t w = static_cast<size_t>(found - s->workers.data());
  absl::Status st = co_await SetUpWorker(s, w, true);
  co_return st;
}

namespace {
// CloseNode and RestartNode: checks `uri`, then closes (restarting, with
// `restart`) each of its workers at once. The node's index, or the error.
Task<absl::StatusOr<size_t>> CloseWorkersOf(std::shared_ptr<State> s, std::string uri, bool restart, bool terminate) {
  if (s->closed) co_return absl::FailedPreconditionError("the computation is closed");
  NodeEntry* node = FindNode(*s, uri);
  if (node == nullptr) co_return absl::NotFoundError(absl::StrCat("no node ", uri));
  if (node->state == NodeState::kLost || node->state == NodeState::kClosed) {
    co_return absl::FailedPreconditionError(absl::StrCat("node ", uri, " is lost or closed"));
  }
  if (restart && !node->enabled) {
    co_return absl::FailedPreconditionError(absl::StrCat("node ", uri, " is disabled: EnableNode first"));
  }
  const size_t n = static_cast<size_t>(node - s->nodes.data());
  std::vector<TaskRef> closing;
  for (size_t w : OpenWorkersOf(*s, n)) {
    closing.push_back(ThisScheduler().Spawn(CloseWorkerIn, s, s->workers[w].uri, restart, terminate));
  }
  absl::Status first;
  for (TaskRef& t : closing) {
    absl::StatusOr<Value> done = co_await t.Join();
    if (!done.ok() && first.ok()) first = done.status();
  }
  if (!first.ok()) co_return first;
  co_return n;
}
}  // namespace

Task<absl::Status> Computation::CloseNode(std::string uri, bool terminate) {
  std::shared_ptr<State> s = state_;
  absl::StatusOr<size_t> n = co_await CloseWorkersOf(s, uri, false, terminate);
  if (!n.ok()) co_return n.status();
  // The node removes the computation: its workers (all closed by now) and
  // its files.
  NodeEntry& node = s->nodes[*n];
  remote::Service service = node.service;
  Value close = Value::Map({{"op", "close"}, {"computation", s->id}});
  absl::StatusOr<TaskRef> task = co_await service.Run(std::move(close), s->options.timeout);
  absl::StatusOr<Value> done = absl::UnknownError("not run");
  if (task.ok()) {
    done = co_await task->Join(s->options.timeout);
  } else {
    done = task.status();
  }
  NodeEntry& again = s->nodes[*n];
  if (again.state != NodeState::kLost && again.state != NodeState::kClosed) {
    if (again.watcher.valid()) (void)again.watcher.Terminate();
    again.state = NodeState::kClosed;
    Emit(*s, "node_closed", "node", uri);
  }
  NotifyChange(*s);
  Dispatch(*s);  // jobs only it could take fail
  co_return done.ok() ? absl::OkStatus() : Annotate(done.status(), uri);
}

Task<absl::Status> Computation::RestartNode(std::string uri, std::string setup_arg, bool terminate) {
  std::shared_ptr<State> s = state_;
  if (setup_arg.size() > kJobMessageMaxBytes) co_return absl::InvalidArgumentError("setup_arg is too large");
  NodeEntry* node = FindNode(*s, uri);
  // The argument first: each worker's fresh process runs the node setup
  // with it (CloseWorkersOf refuses a node lost, closed or disabled).
  if (node != nullptr && node->enabled && node->state != NodeState::kLost && node->state != NodeState::kClosed) {
    node->setup_arg = std::move(setup_arg);
  }
  absl::StatusOr<size_t> n = co_await CloseWorkersOf(s, uri, true, terminate);
  co_return n.status();
}

Task<absl::Status> Computation::Close(CloseOptions options) {
  std::shared_ptr<State> s = state_;
  if (s->closed) co_return absl::OkStatus();
  s->closed = true;
  Dispatch(*s);  // waiting jobs fail
  for (auto& [id, job] : s->jobs) {
    if (job.state == JobState::kRunning && (options.terminate || (job.async && !options.await_io))) {
      (void)job.task.Throw(absl::CancelledError(kClosedWithTerminate));
    }
  }
  while (AnyRunning(*s, true, true)) {
    absl::Status waited = co_await WaitForChange(s);
    if (!waited.ok()) co_return waited;
  }
  for (WorkerSlot& w : s->workers) {
    if (w.watcher.valid()) (void)w.watcher.Terminate();
    if (w.closed || (w.lost && !w.restarting)) continue;
    w.closed = true;
    Emit(*s, "worker_closed", "worker", w.uri, "node", s->nodes[w.node].uri);
  }
  absl::Status first;
  for (auto& [uri, node] : s->contacted) {
    NodeEntry* entry = FindNode(*s, uri);
    if (entry != nullptr && (entry->state == NodeState::kLost || entry->state == NodeState::kClosed)) continue;
    Value close = Value::Map({{"op", "close"}, {"computation", s->id}});
    absl::StatusOr<TaskRef> task = co_await node.Run(std::move(close), s->options.timeout);
    absl::StatusOr<Value> done = absl::UnknownError("not run");
    if (task.ok()) {
      done = co_await task->Join(s->options.timeout);
    } else {
      done = task.status();
    }
    if (!done.ok() && first.ok()) first = Annotate(done.status(), uri);
    entry = FindNode(*s, uri);
    if (entry != nullptr) {
      if (entry->watcher.valid()) (void)entry->watcher.Terminate();
      entry->state = NodeState::kClosed;
      Emit(*s, "node_closed", "node", uri);
    }
  }
  if (s->receiver.valid()) (void)s->receiver.Terminate();
  if (s->names.valid()) (void)s->names.Terminate();
  if (s->discoverer.valid()) (void)s->discoverer.Terminate();
  s->discovering = false;
  // Leaving the shared scheduler: it monitors this task.
  if (s->shares_task.valid()) (void)s->shares_task.Terminate();
  if (s->jobctl.valid()) (void)s->jobctl.Terminate();
  DisableFileReceiver(*s);
  Emit(*s, "computation_closed");
  co_return first;
}

std::vector<NodeInfo> Computation::nodes() const {
  std::vector<NodeInfo> out;
  for (const NodeEntry& n : state_->nodes) out.push_back(NodeInfo{n.uri, n.state, n.facts, n.facts_time, n.workers});
  return out;
}

std::vector<WorkerInfo> Computation::workers() const {
  const State& s = *state_;
  std::vector<WorkerInfo> out;
  for (const WorkerSlot& w : s.workers) {
    WorkerInfo i;
    i.uri = w.uri;
    i.node = s.nodes[w.node].uri;
    i.state = w.closed        ? WorkerState::kClosed
              : w.restarting  ? WorkerState::kRestarting
              : w.lost        ? WorkerState::kLost
              : !w.set_up     ? WorkerState::kDisabled
              : w.suspended || w.closing || s.nodes[w.node].state == NodeState::kSuspended
                  ? WorkerState::kSuspended
              : w.cpu_jobs > 0 ? WorkerState::kBusy
                               : WorkerState::kIdle;
    i.jobs.assign(w.jobs.begin(), w.jobs.end());
    out.push_back(std::move(i));
  }
  return out;
}

std::vector<JobInfo> Computation::jobs() const {
  std::vector<JobInfo> out;
  for (const auto& [id, j] : state_->jobs) {
    out.push_back(JobInfo{id, j.fn, j.task, j.async, j.state, j.worker, j.started});
  }
  return out;
}

size_t Computation::workers_alive() const { return Alive(*state_); }
uint64_t Computation::jobs_rerun() const { return state_->rerun; }
const std::string& Computation::id() const { return state_->id; }

}  // namespace picos::compute
