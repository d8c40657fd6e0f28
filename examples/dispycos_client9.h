// What dispycos_client9_node and dispycos_client9_server share (pycos
// dispycos_client9_node.py / dispycos_client9_server.py): a computation
// whose nodes (or workers) are disabled at Schedule and enabled one by one
// with data of their own, which the library's setup hook loads into the
// worker processes' memory (examples/dispycos_client9_compute.cc); jobs
// then answer lookups from that memory and the client checks each answer.
//
// Output, for people and for the smoke tests:
//   <name>: enabled <node|worker> <uri> with <k> keys
//   <name>: worker <uri> initialized
//   <name>: <key> on <worker uri>: <answer> right|WRONG (want <want>)
//   <name>: <r> answers right, <w> wrong, <n> workers on <m> nodes
// Each worker gets `keys` lookups of its data and one of a key that is
// only in another node's (worker's) data, whose right answer is "no key".
#ifndef PICOS_EXAMPLES_DISPYCOS_CLIENT9_H_
#define PICOS_EXAMPLES_DISPYCOS_CLIENT9_H_

#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "compute/computation.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "examples/dispycos_client_lib.h"

namespace picos::examples {

struct Client9Options {
  const char* name;         // "dispycos_client9_node"
  bool per_worker = false;  // data per worker (disable_workers), else per node
  std::vector<std::string> nodes;
  int keys = 4;             // lookups per worker
  std::string library;
};

// A lookup's answer: its bytes, or the message of its failure without the
// function's name (a missing key is kAborted "lookup: no key ...").
inline std::string Client9Answer(const absl::StatusOr<Value>& r) {
  if (r.ok()) return r->is_bytes() ? r->as_string() : r->DebugString();
  absl::string_view m = r.status().message();
  absl::ConsumePrefix(&m, "lookup: ");
  return std::string(m);
}

inline Task<absl::Status> RunClient9(Client9Options opt) {
  // How long the client waits for the next event: only a hang reaches it.
  constexpr absl::Duration kEventWait = absl::Minutes(2);
  const char* const name = opt.name;
  const char* const what = opt.per_worker ? "worker" : "node";
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<remote::Node> node, co_await StartClientNode(name));
  compute::ComputationOptions o;
  o.library = opt.library;
  o.status_task = Self();  // this task: the events queue in its mailbox
  o.disable_nodes = !opt.per_worker;
  o.disable_workers = opt.per_worker;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<compute::Computation> c, co_await ScheduleComputation(o, opt.nodes));
  const size_t workers = c->workers().size();
  const size_t nodes = c->nodes().size();
  if (workers == 0) {
    (void)co_await c->Close();
    co_return absl::FailedPreconditionError("no worker");
  }

  // Each node's (worker's) data: random values, kept here to check the
  // answers, which can only come from the worker's memory.
  std::mt19937_64 rng(std::random_device{}());
  std::map<std::string, std::map<std::string, std::string>> data;  // by node or worker URI
  std::vector<std::string> order;                                   // enabled, in order
  struct Expect {
    std::string key, want, worker;
  };
  absl::flat_hash_map<TaskRef, Expect> pending;
  int right = 0, wrong = 0;
  const int64_t total = static_cast<int64_t>(workers) * (opt.keys + 1);
  absl::Status outcome;
  for (int64_t n = 0; right + wrong < total && n < 1000 + 20 * total; ++n) {
    absl::StatusOr<Value> event = co_await Receive(kEventWait);
    if (!event.ok()) {
      outcome = absl::DeadlineExceededError(absl::StrCat("no status event: ", event.status().ToString()));
      break;
    }
    const std::string type = event->GetOr<std::string>("type", "");
    if (type == (opt.per_worker ? "worker_discovered" : "node_discovered")) {
      const std::string uri = event->GetOr<std::string>(what, "");
      const std::string tag = absl::StrCat(what, order.size());
      std::string text;
      for (int k = 0; k < opt.keys; ++k) {
        const std::string key = absl::StrCat(tag, "-key", k);
        data[uri][key] = std::to_string(rng() % 1000000);
        absl::StrAppend(&text, key, "=", data[uri][key], "\n");
      }
      order.push_back(uri);
      absl::Status enabled;
      if (opt.per_worker) {
        enabled = co_await c->EnableWorker(uri, text);
      } else {
        enabled = co_await c->EnableNode(uri, text);
      }
      if (!enabled.ok()) {
        outcome = enabled;
        break;
      }
      std::printf("%s: enabled %s %s with %d keys\n", name, what, uri.c_str(), opt.keys);
    } else if (type == "worker_initialized") {
      const std::string worker = event->GetOr<std::string>("worker", "");
      const std::string owner = opt.per_worker ? worker : event->GetOr<std::string>("node", "");
      std::printf("%s: worker %s initialized\n", name, worker.c_str());
      std::vector<Expect> asks;
      for (const auto& kv : data[owner]) asks.push_back({kv.first, kv.second + " " + what, worker});
      // A key of another node's (worker's) data, or of none with one only.
      std::string foreign = "nobody-key0";
      for (const auto& kv : data) {
        if (kv.first != owner && !kv.second.empty()) foreign = kv.second.begin()->first;
      }
      asks.push_back({foreign, "no key " + foreign, worker});
      for (Expect& e : asks) {
        absl::StatusOr<TaskRef> job = co_await c->RunAt(worker, "lookup", e.key);
        if (!job.ok()) {
          ++wrong;
          std::printf("%s: %s on %s not run: %s\n", name, e.key.c_str(), worker.c_str(), job.status().ToString().c_str());
          continue;
        }
        pending[*job] = std::move(e);
      }
    } else if (type == "job_finished") {
      const Value* task = event->Find("task");
      if (task == nullptr || !task->is_task()) continue;
      auto it = pending.find(task->as_task());
      if (it == pending.end()) continue;
      const Expect e = it->second;
      pending.erase(it);
      absl::StatusOr<Value> r = co_await task->as_task().Join(kEventWait);  // ended: at once
      const std::string got = Client9Answer(r);
      const bool ok = got == e.want;
      (ok ? right : wrong)++;
      std::printf("%s: %s on %s: %s %s%s\n", name, e.key.c_str(), e.worker.c_str(), got.c_str(),
                  ok ? "right" : "WRONG", ok ? "" : absl::StrCat(" (want ", e.want, ")").c_str());
    }
  }
  if (outcome.ok() && right + wrong < total) outcome = absl::InternalError("too many status events");
  std::printf("%s: %d answers right, %d wrong, %zu workers on %zu nodes\n", name, right, wrong, workers, nodes);
  std::fflush(stdout);
  absl::Status closed = co_await c->Close();
  PICOS_CO_RETURN_IF_ERROR(outcome);
  PICOS_CO_RETURN_IF_ERROR(closed);
  if (wrong > 0) co_return absl::DataLossError(absl::StrCat(wrong, " answers wrong"));
  co_return absl::OkStatus();
}

}  // namespace picos::examples

#endif  // PICOS_EXAMPLES_DISPYCOS_CLIENT9_H_
