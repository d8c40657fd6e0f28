#include "compute/computation.h"

#include <fnmatch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <list>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "compute/computation_metrics.h"
#include "compute/protocol.h"
#include "core/kernel/log.h"
#include "core/kernel/monitor.h"
#include "core/kernel/naming.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/sync.h"
#include "core/kernel/value.h"
#include "core/remote/files.h"
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
  std::set<uint64_t> jobs;
  // The worker's job loop (compute/protocol.h): CPU jobs go to it as
  // messages, one round trip each (a service call costs two and a remote
  // task). It ends only with the worker, so the watcher monitors it.
  TaskRef loop;
  TaskRef watcher;
};

struct JobEntry {
  std::string fn;
  TaskRef task;
  bool async = false;
  JobState state = JobState::kWaiting;
  std::string worker;
  absl::Time started = absl::InfinitePast();
};

// A job waiting for a worker: Dispatch picks one (`assigned`) or gives up
// (`failure`), then sets `ready`.
struct Pending {
  uint64_t job = 0;
  bool async = false;
  std::string where;
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
  uint64_t next_job = 0;
  // Tags each CPU job sent to a job loop, so its answer is matched to it.
  int64_t next_request = 0;
  uint64_t rerun = 0;
  // Set (and replaced) whenever a job ends or a worker changes: what
  // CloseWorker and Close wait on.
  std::shared_ptr<Event> change = std::make_shared<Event>();
  // The client task (computation.h): each start names it; nodes send it
  // their pulses and join it, and close the computation after their zombie
  // period once it ends (Close, ~Computation) or this process is lost.
  TaskRef receiver;
  bool status_failed = false;
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
void EmitMap(State& s, const char* type, Value::MapType fields) {
  if (!s.options.status_task.valid() && s.options.metrics == nullptr) return;
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
  std::shared_ptr<Event> old = std::exchange(s.change, std::make_shared<Event>());
  old->Set();
}

// Waits for the next change (a job ended, a worker changed). Suspends.
Task<absl::Status> WaitForChange(std::shared_ptr<State> s) {
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
  return !w.lost && !w.closed && !w.closing && !w.restarting && !w.suspended &&
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

void Dispatch(State& s) {
  bool could_any = false;  // some worker could take a job, now or later
  // A worker takes one CPU job and cpu_jobs_ahead more (they wait in its
  // job loop's mailbox).
  const int per_worker = 1 + s.options.cpu_jobs_ahead;
  int cpu_free = 0;  // CPU jobs the usable workers could take now
  for (const WorkerSlot& w : s.workers) {
    could_any = could_any || CouldServe(s, w);
    cpu_free += Usable(s, w) ? std::max(0, per_worker - w.cpu_jobs) : 0;
  }
  const bool waiting_is_all = !s.closed && could_any;  // a CPU job for anyone can only wait
  for (auto it = s.pending.begin(); it != s.pending.end();) {
    if (waiting_is_all && cpu_free == 0 && s.pending_special == 0) break;
    Pending& p = **it;
    if (waiting_is_all && cpu_free == 0 && !Special(p)) {
      ++it;
      continue;
    }
    int best = -1;
    bool could = false;
    if (s.closed) {
      p.failure = absl::FailedPreconditionError("the computation is closed");
    } else {
      for (size_t i = 0; i < s.workers.size(); ++i) {
        const WorkerSlot& w = s.workers[i];
        if (!Matches(s, w, p.where) || !CouldServe(s, w)) continue;
        could = true;
        if (!Usable(s, w) || (!p.async && w.cpu_jobs >= per_worker)) continue;
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
      ++it;
      continue;
    }
    p.assigned = best;
    if (best >= 0 && !p.async) {
      --cpu_free;
      ++s.workers[best].cpu_jobs;
    }
    if (Special(p)) --s.pending_special;
    p.ready.Set();
    it = s.pending.erase(it);
  }
}

Task<> RestartWorker(std::shared_ptr<State> s, size_t w);

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
    (void)j->second.task.Send(Value::Map({{std::string(kLostKey), static_cast<int64_t>(w)},
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

// Starts the job loop of the worker whose service is `svc`.
Task<absl::StatusOr<TaskRef>> StartLoop(remote::Service svc, absl::Duration timeout) {
  Value::MapType request;
  request[kJobLoopKey] = Value(true);
  absl::StatusOr<TaskRef> loop = co_await svc.Run(Value(std::move(request)), timeout);
  co_return loop;
}

// A worker of a start being reached: its service located, its loop started.
struct ReachedWorker {
  absl::StatusOr<remote::Service> service = absl::UnknownError("not reached");
  absl::StatusOr<TaskRef> loop = absl::UnknownError("not reached");
};

Task<> ReachWorker(std::shared_ptr<std::vector<ReachedWorker>> out, size_t i, std::string uri,
                   absl::Duration timeout) {
  absl::StatusOr<remote::Service> svc = co_await remote::Service::Locate(kWorkerService, Location::Peer(uri), timeout);
  (*out)[i].service = svc;
  if (!svc.ok()) co_return;
  absl::StatusOr<TaskRef> loop = co_await StartLoop(*svc, timeout);
  (*out)[i].loop = loop;
}

// Puts a fresh worker `uri` in slot `w` (after a restart).
Task<absl::Status> Adopt(std::shared_ptr<State> s, size_t w, std::string uri) {
  absl::StatusOr<remote::Service> svc =
      co_await remote::Service::Locate(kWorkerService, Location::Peer(uri), s->options.timeout);
  if (!svc.ok()) co_return Annotate(svc.status(), absl::StrCat("worker ", uri));
  absl::StatusOr<TaskRef> loop = co_await StartLoop(*svc, s->options.timeout);
  if (!loop.ok()) co_return Annotate(loop.status(), absl::StrCat("worker ", uri, ": its job loop"));
  WorkerSlot& slot = s->workers[w];
  if (slot.watcher.valid()) (void)slot.watcher.Terminate();
  slot.uri = uri;
  slot.service = *svc;
  slot.loop = *loop;
  ++slot.generation;
  slot.lost = slot.restarting = slot.closing = slot.closed = false;
  slot.cpu_jobs = 0;
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

Value::MapType JobFields(const JobEntry& j, uint64_t id) {
  return {{"job", id}, {"task", j.task}, {"fn", j.fn}, {"worker", j.worker}};
}

// The answer of the job loop to CPU job `request` sent to slot `w` of
// `generation`: its value, its error (the worker's status, read as network
// input), or kUnavailable with *lost set when MarkWorkerLost says the worker
// is gone first; *terminated when this task is terminated meanwhile.
Task<absl::StatusOr<Value>> AwaitAnswer(int64_t request, size_t w, uint64_t generation, bool* lost,
                                        bool* terminated) {
  auto mine = [request, w, generation](const Value& v) {
    if (!v.is_map()) return false;
    if (const Value* r = v.Find(kJobReplyKey); r != nullptr) return r->is_int() && r->as_int() == request;
    const Value* l = v.Find(kLostKey);
    return l != nullptr && l->is_int() && l->as_int() == static_cast<int64_t>(w) &&
           v.GetOr<int64_t>("generation", -1) == static_cast<int64_t>(generation);
  };
  absl::StatusOr<Value> m = co_await ReceiveMatching(std::move(mine));
  if (!m.ok()) {
    *terminated = true;
    co_return m.status();
  }
  if (m->Find(kLostKey) != nullptr) {
    *lost = true;
    co_return absl::UnavailableError(m->GetOr<std::string>("why", "the worker was lost"));
  }
  if (const Value* v = m->Find("value"); v != nullptr) co_return *v;
  const int64_t code = m->GetOr<int64_t>("code", static_cast<int64_t>(absl::StatusCode::kUnknown));
  const bool known = code > 0 && code <= static_cast<int64_t>(absl::StatusCode::kUnauthenticated);
  co_return absl::Status(known ? static_cast<absl::StatusCode>(code) : absl::StatusCode::kUnknown,
                         m->GetOr<std::string>("message", "(no message)").substr(0, 4096));
}

Task<absl::StatusOr<Value>> RunJob(std::shared_ptr<State> s, uint64_t id, std::string fn, std::string arg,
                                   bool async, std::string where) {
  int retries = 0;
  for (;;) {
    auto p = std::make_shared<Pending>();
    p->job = id;
    p->async = async;
    p->where = where;
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
      co_return waited;
    }
    if (p->assigned < 0) {
      if (s->options.metrics != nullptr) s->options.metrics->JobDropped(s->id, id);
      s->jobs.erase(id);
      co_return p->failure;
    }
    const size_t w = static_cast<size_t>(p->assigned);
    const uint64_t generation = s->workers[w].generation;
    const std::string worker = s->workers[w].uri;
    remote::Service service = s->workers[w].service;
    const TaskRef loop = s->workers[w].loop;
    s->workers[w].jobs.insert(id);
    JobEntry& job = s->jobs[id];
    job.state = JobState::kRunning;
    job.worker = worker;
    job.started = absl::Now();
    Value::MapType started_fields = JobFields(job, id);
    started_fields["async"] = Value(async);
    EmitMap(*s, "job_started", std::move(started_fields));
    absl::StatusOr<Value> result = absl::UnknownError("not run");
    bool started = false;     // it reached the worker: running it again costs a retry
    bool lost = false;        // the worker was lost first
    bool terminated = false;  // this task was terminated
    TaskRef remote_task;      // an I/O job's task on the worker
    if (async) {
      // Any number at once beside the CPU job: a remote task each.
      Value request = Value::Map({{"fn", fn}, {"arg", Value::Bytes(arg)}, {"async", true}});
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
      const int64_t request = ++s->next_request;
      Value::MapType m;
      m["id"] = Value(request);
      m["fn"] = Value(fn);
      m["arg"] = Value::Bytes(arg);
      m["reply_to"] = Value(Self());
      absl::Status sent = loop.Send(Value(std::move(m)));
      if (sent.ok()) {
        started = true;
        result = co_await AwaitAnswer(request, w, generation, &lost, &terminated);
      } else {
        result = sent;
        // Backpressure is the job's error; anything else: the loop is gone.
        lost = sent.code() != absl::StatusCode::kResourceExhausted;
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
      // Terminated (Close with terminate, or the caller): the worker cannot
      // stop the function; it drops the result (an I/O job's remote task is
      // ended; a CPU job's answer finds this task gone).
      if (remote_task.valid()) (void)remote_task.Terminate();
      EmitMap(*s, "job_terminated", JobFields(s->jobs[id], id));
      s->jobs.erase(id);
      co_return result;
    }
    if (!lost) {
      Value::MapType f = JobFields(s->jobs[id], id);
      f["code"] = Value(static_cast<int64_t>(code));
      f["message"] = Value(result.ok() ? std::string() : std::string(result.status().message()));
      EmitMap(*s, "job_finished", std::move(f));
      s->jobs.erase(id);
      co_return result;
    }
    // The worker is lost (its peer connection broke).
    MarkWorkerLost(s, w, generation, std::string(result.status().message()));
    // A job refused before it started (the worker was already gone) did not
    // run: it costs no retry.
    if (started) {
      if (s->closed || retries >= s->options.max_retries) {
        Value::MapType f = JobFields(s->jobs[id], id);
        f["message"] = Value(std::string(result.status().message()));
        EmitMap(*s, "job_lost", std::move(f));
        s->jobs.erase(id);
        co_return absl::UnavailableError(absl::StrCat("worker_lost: ", result.status().message()));
      }
      ++retries;
      ++s->rerun;
      Value::MapType f = JobFields(s->jobs[id], id);
      f["retry"] = Value(int64_t{retries});
      EmitMap(*s, "job_rerun", std::move(f));
    }
    JobEntry& again = s->jobs[id];
    again.state = JobState::kWaiting;
    again.worker.clear();
    again.started = absl::InfinitePast();
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

Task<absl::Status> ScheduleNode(std::shared_ptr<State> s, std::string uri, std::string library_name) {
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
  std::string reason;
  const int cpus = Allocate(s->options, uri, *facts, static_cast<int>(*node_cpus), &reason);
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
  s->nodes.push_back(std::move(entry));
  Emit(*s, "node_initialized", "node", uri, "facts", facts->ToValue(), "cpus", int64_t{cpus});
  std::vector<std::string> uris;
  for (const Value& w : list.as_list()) {
    absl::StatusOr<std::string> wuri = w.As<std::string>();
    if (!wuri.ok() || wuri->empty() || wuri->size() > 1024) {
      co_return absl::DataLossError(absl::StrCat(uri, ": malformed worker URI"));
    }
    uris.push_back(*std::move(wuri));
  }
  // Every worker is dialled and its loop started at once (a connection and
  // two round trips each), then they are taken in order.
  auto reached = std::make_shared<std::vector<ReachedWorker>>(uris.size());
  std::vector<TaskRef> reaching;
  for (size_t i = 0; i < uris.size(); ++i) {
    reaching.push_back(ThisScheduler().Spawn(ReachWorker, reached, i, uris[i], s->options.timeout));
  }
  int index = 0;
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
    Emit(*s, "worker_initialized", "worker", *wuri, "node", uri);
    Dispatch(*s);
  }
  co_return absl::OkStatus();
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
                                       std::string where) {
  if (s->workers.empty() || s->closed) {
    co_return absl::FailedPreconditionError("jobs need a scheduled computation that is not closed");
  }
  if (!where.empty()) {
    bool known = false;
    for (const WorkerSlot& w : s->workers) known = known || Matches(*s, w, where);
    if (!known) co_return absl::NotFoundError(absl::StrCat("no worker of computation ", s->id, " at ", where));
  }
  const uint64_t id = ++s->next_job;
  if (s->options.metrics != nullptr) s->options.metrics->JobQueued(s->id, id, fn);
  JobEntry& job = s->jobs[id];
  job.fn = fn;
  job.async = async;
  job.task = ThisScheduler().Spawn(RunJob, s, id, std::move(fn), std::move(arg), async, std::move(where));
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

}  // namespace

absl::StatusOr<std::unique_ptr<Computation>> Computation::Create(ComputationOptions options) {
  if (options.library.empty()) return absl::InvalidArgumentError("no computation library");
  if (options.max_retries < 0) return absl::InvalidArgumentError("max_retries must not be negative");
  if (options.timeout <= absl::ZeroDuration()) return absl::InvalidArgumentError("timeout must be positive");
  if (options.cpu_jobs_ahead < 0 || options.cpu_jobs_ahead > 8) {
    return absl::InvalidArgumentError("cpu_jobs_ahead must be 0..8");
  }
  if (options.pulse_interval < absl::ZeroDuration() || options.pulse_interval > absl::Hours(24)) {
    return absl::InvalidArgumentError("pulse_interval must be 0 (the node's) up to 24h");
  }
  for (size_t i = 0; i < options.allocation.size(); ++i) {
    const AllocationRule& r = options.allocation[i];
    if (r.host.empty() || r.platform.empty() || r.cpus < -256 || r.cpus > 256) {
      return absl::InvalidArgumentError(
          absl::StrCat("allocation rule ", i, ": host and platform patterns must not be empty, cpus -256..256"));
    }
  }
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
  for (const std::string& uri : nodes) {
    if (FindNode(*s, uri) != nullptr) continue;  // scheduled there already
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

absl::Status Computation::SuspendWorker(const std::string& uri) { return SetWorkerSuspended(*state_, uri, true); }
absl::Status Computation::ResumeWorker(const std::string& uri) { return SetWorkerSuspended(*state_, uri, false); }
absl::Status Computation::SuspendNode(const std::string& uri) { return SetNodeSuspended(*state_, uri, true); }
absl::Status Computation::ResumeNode(const std::string& uri) { return SetNodeSuspended(*state_, uri, false); }

Task<absl::Status> Computation::CloseWorker(std::string uri, bool restart, bool terminate) {
  std::shared_ptr<State> s = state_;
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
    for (uint64_t id : found->jobs) (void)s->jobs[id].task.Terminate();
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
    if (result.ok()) Emit(*s, "worker_restarted", "worker", s->workers[w].uri, "node", node, "old", uri);
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

Task<absl::Status> Computation::Close(CloseOptions options) {
  std::shared_ptr<State> s = state_;
  if (s->closed) co_return absl::OkStatus();
  s->closed = true;
  Dispatch(*s);  // waiting jobs fail
  for (auto& [id, job] : s->jobs) {
    if (job.state == JobState::kRunning && (options.terminate || (job.async && !options.await_io))) {
      (void)job.task.Terminate();
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
    if (entry != nullptr && entry->state == NodeState::kLost) continue;
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
