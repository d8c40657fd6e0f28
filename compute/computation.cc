#include "compute/computation.h"

#include <deque>
#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "compute/protocol.h"
#include "core/kernel/log.h"
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

struct WorkerSlot {
  std::string uri;
  remote::Service service;
  bool lost = false;
};

struct Computation::State {
  ComputationOptions options;
  std::string id;
  std::string sha256;
  bool closed = false;
  std::vector<std::pair<std::string, remote::Service>> nodes;
  std::vector<WorkerSlot> workers;
  std::deque<size_t> free;  // indexes into workers
  // One unit per free worker (and, once no worker is left or the
  // computation closed, one that wakes the waiters in turn to fail).
  Semaphore free_units{0};
  // Units of lost workers, kept so that they are never given back.
  std::vector<SemaphoreUnits> lost_units;
  size_t alive = 0;
  uint64_t rerun = 0;
};

namespace {

// `s` with its message prefixed by `where`.
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

Task<absl::StatusOr<Value>> RunJob(std::shared_ptr<Computation::State> s, std::string fn, std::string arg) {
  int retries = 0;
  for (;;) {
    absl::StatusOr<SemaphoreUnits> unit = co_await s->free_units.Acquire();
    if (!unit.ok()) co_return unit.status();
    if (s->closed) co_return absl::FailedPreconditionError("the computation is closed");
    if (s->free.empty()) co_return absl::UnavailableError("worker_lost: no worker left");
    const size_t w = s->free.front();
    s->free.pop_front();
    Value request = Value::Map({{"fn", fn}, {"arg", Value::Bytes(arg)}});
    absl::StatusOr<TaskRef> started = co_await s->workers[w].service.Run(std::move(request), s->options.timeout);
    absl::StatusOr<Value> result = absl::UnknownError("not run");
    if (started.ok()) {
      result = co_await started->Join();
    } else {
      result = started.status();
    }
    if (result.ok() || result.status().code() != absl::StatusCode::kUnavailable) {
      s->free.push_back(w);
      co_return result;  // `unit` goes back as it leaves scope
    }
    // The worker is lost (its peer connection broke): never use it again.
    WorkerSlot& slot = s->workers[w];
    if (!slot.lost) {
      slot.lost = true;
      --s->alive;
      PICOS_LOG(warn, "compute: worker {} lost: {}", slot.uri, result.status().ToString());
    }
    s->lost_units.push_back(*std::move(unit));
    if (s->alive == 0) (void)s->free_units.Release();  // wakes waiters to fail
    // A job refused before it started (the worker was already gone) did not
    // run: it costs no retry.
    if (started.ok()) {
      if (s->closed || retries >= s->options.max_retries) {
        co_return absl::UnavailableError(absl::StrCat("worker_lost: ", result.status().message()));
      }
      ++retries;
      ++s->rerun;
    }
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<Computation>> Computation::Create(ComputationOptions options) {
  if (options.library.empty()) return absl::InvalidArgumentError("no computation library");
  if (options.max_retries < 0) return absl::InvalidArgumentError("max_retries must not be negative");
  if (options.timeout <= absl::ZeroDuration()) return absl::InvalidArgumentError("timeout must be positive");
  auto s = std::make_shared<State>();
  PICOS_ASSIGN_OR_RETURN(s->sha256, Sha256Of(options.library));
  unsigned char id[8];
  RAND_bytes(id, sizeof id);
  s->id = absl::StrCat("c", absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(id), sizeof id)));
  s->options = std::move(options);
  return std::unique_ptr<Computation>(new Computation(std::move(s)));
}

Computation::~Computation() = default;

Task<absl::Status> Computation::Schedule(std::vector<std::string> nodes) {
  std::shared_ptr<State> s = state_;
  if (s->closed) co_return absl::FailedPreconditionError("the computation is closed");
  const std::string library_name = std::filesystem::path(s->options.library).filename().string();
  for (const std::string& uri : nodes) {
    remote::SendFileOptions so;
    so.dir = s->id;
    so.timeout = s->options.timeout;
    absl::Status sent = co_await remote::SendFile(Location::Peer(uri), s->options.library, so);
    if (!sent.ok()) co_return Annotate(sent, absl::StrCat(uri, ": shipping the library"));
    absl::StatusOr<remote::Service> node = co_await remote::Service::Locate(kNodeService, Location::Peer(uri),
                                                                            s->options.timeout);
    if (!node.ok()) co_return Annotate(node.status(), absl::StrCat(uri, ": not a picos-node"));
    s->nodes.emplace_back(uri, *node);
    Value start = Value::Map(
        {{"op", "start"}, {"computation", s->id}, {"library", library_name}, {"sha256", s->sha256}});
    absl::StatusOr<TaskRef> task = co_await node->Run(std::move(start), s->options.timeout);
    if (!task.ok()) co_return Annotate(task.status(), uri);
    absl::StatusOr<Value> reply = co_await task->Join(s->options.timeout);
    if (!reply.ok()) co_return Annotate(reply.status(), uri);
    const Value& list = (*reply)["workers"];
    if (!list.is_list()) co_return absl::DataLossError(absl::StrCat(uri, ": malformed reply ", reply->DebugString()));
    for (const Value& w : list.as_list()) {
      absl::StatusOr<std::string> wuri = w.As<std::string>();
      if (!wuri.ok()) co_return absl::DataLossError(absl::StrCat(uri, ": malformed worker URI"));
      absl::StatusOr<remote::Service> job =
          co_await remote::Service::Locate(kWorkerService, Location::Peer(*wuri), s->options.timeout);
      if (!job.ok()) co_return Annotate(job.status(), absl::StrCat(uri, ": worker ", *wuri));
      s->workers.push_back(WorkerSlot{*wuri, *job, false});
      s->free.push_back(s->workers.size() - 1);
      ++s->alive;
      (void)s->free_units.Release();
    }
  }
  co_return absl::OkStatus();
}

Task<absl::StatusOr<TaskRef>> Computation::Run(std::string fn, std::string arg) {
  if (state_->workers.empty() || state_->closed) {
    co_return absl::FailedPreconditionError("Run needs a scheduled computation that is not closed");
  }
  co_return ThisScheduler().Spawn(RunJob, state_, std::move(fn), std::move(arg));
}

Task<absl::Status> Computation::Close() {
  std::shared_ptr<State> s = state_;
  if (s->closed) co_return absl::OkStatus();
  s->closed = true;
  (void)s->free_units.Release();  // wakes waiting jobs, in turn, to fail
  absl::Status first;
  for (auto& [uri, node] : s->nodes) {
    Value close = Value::Map({{"op", "close"}, {"computation", s->id}});
    absl::StatusOr<TaskRef> task = co_await node.Run(std::move(close), s->options.timeout);
    absl::StatusOr<Value> done = absl::UnknownError("not run");
    if (task.ok()) {
      done = co_await task->Join(s->options.timeout);
    } else {
      done = task.status();
    }
    if (!done.ok() && first.ok()) first = Annotate(done.status(), uri);
  }
  co_return first;
}

size_t Computation::workers_alive() const { return state_->alive; }
uint64_t Computation::jobs_rerun() const { return state_->rerun; }
const std::string& Computation::id() const { return state_->id; }

}  // namespace picos::compute
