// pycos dispycos_mas.py in C++: a multi-agent system, one agent per worker,
// the agents finding each other by name and gossiping the minimum and
// maximum of their values. As in pycos, the agents locate each other by
// name and message each other directly: each agent is a job that registers
// "agent<i>" in the computation's scope, locates the others
// (compute/export.h's Register and Locate) and sends them its gossip worker
// to worker (SendTo); the client relays nothing. It starts the agents,
// starts each gossip round and waits until every agent says "done" (it got
// the round's gossip from every other agent), then asks each what it
// learnt, which must be the minimum and maximum of all the values.
//
//   PICOS_REMOTE_SECRET=... dispycos_mas --nodes=tcp://127.0.0.1:9706 --rounds=2
//
// Output, for people and for its smoke test (examples/dispycos_mas_smoke_test.sh):
//   dispycos_mas: <agent> on <worker> (pid <pid>) starts with <value>
//   dispycos_mas: <agent> knows min <m> max <M>: ok|WRONG
//   dispycos_mas: <n> agents, <g> gossip messages agent to agent; all agree: yes|no
// Exit status 1 when an agent is wrong or missing, 2 for a bad flag.
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "compute/computation.h"
#include "core/cli/flags.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "examples/dispycos_client_lib.h"

ABSL_FLAG(std::vector<std::string>, nodes, {}, "the picos-node URIs to run the agents on (required)");
ABSL_FLAG(int, rounds, 2, "gossip rounds");
ABSL_FLAG(std::string, library, "examples/libdispycos_mas_compute.so",
          "the computation library (picos_computation dispycos_mas_compute)");

namespace {

using picos::Task;
using picos::TaskRef;
using picos::Value;

constexpr absl::Duration kLong = absl::Minutes(2);  // only a hang reaches it

struct AgentInfo {
  std::string name, worker;
  TaskRef job;
  long long value = 0;
};

// The next agent message, as (agent index, text); kDataLoss for one from a
// job that is not an agent.
Task<absl::StatusOr<std::pair<size_t, std::string>>> NextFromAgent(const std::map<uint64_t, size_t>* by_job) {
  absl::StatusOr<Value> m = co_await picos::Receive(kLong);
  if (!m.ok()) co_return m.status();
  const auto it = by_job->find(m->GetOr<uint64_t>("job", 0));
  if (it == by_job->end()) co_return absl::DataLossError(absl::StrCat("not an agent's: ", m->DebugString()));
  co_return std::make_pair(it->second, m->GetOr<std::string>("data", ""));
}

Task<absl::Status> Client() {
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::examples::StartClientNode("dispycos_mas"));
  picos::compute::ComputationOptions o;
  o.library = absl::GetFlag(FLAGS_library);
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::compute::Computation> computation,
                            co_await picos::examples::ScheduleComputation(o, absl::GetFlag(FLAGS_nodes)));

  // One agent per worker, each with a value of its own.
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<long long> values(0, 1'000'000);
  std::vector<AgentInfo> agents;
  std::map<uint64_t, size_t> by_job;  // a job's id (its messages' "job") -> its agent
  const std::vector<picos::compute::WorkerInfo> workers = computation->workers();
  for (const picos::compute::WorkerInfo& w : workers) {
    AgentInfo a;
    a.name = absl::StrCat("agent", agents.size());
    a.worker = w.uri;
    a.value = values(random);
    picos::compute::RunOptions ro;
    ro.where = w.uri;
    ro.reply_to = picos::Self();
    PICOS_CO_ASSIGN_OR_RETURN(
        a.job, co_await computation->Run("agent", absl::StrCat(workers.size(), " ", agents.size(), " ", a.value), ro));
    for (const picos::compute::JobInfo& j : computation->jobs()) {
      if (j.task == a.job) by_job[j.id] = agents.size();
    }
    agents.push_back(std::move(a));
  }
  long long lo = agents.empty() ? 0 : agents[0].value, hi = lo;
  for (const AgentInfo& a : agents) lo = std::min(lo, a.value), hi = std::max(hi, a.value);

  // Each says hello once it registered its name and located the others.
  for (size_t n = 0; n < agents.size(); ++n) {
    PICOS_CO_ASSIGN_OR_RETURN(auto m, co_await NextFromAgent(&by_job));
    std::istringstream in(m.second);
    std::string hello;
    long long v = 0;
    int pid = 0;
    if (!(in >> hello >> v >> pid) || hello != "hello" || v != agents[m.first].value) {
      co_return absl::DataLossError(absl::StrCat("a bad hello: ", m.second));
    }
    std::printf("dispycos_mas: %s on %s (pid %d) starts with %lld\n", agents[m.first].name.c_str(),
                agents[m.first].worker.c_str(), pid, v);
  }

  // Rounds of gossip, agent to agent: the client only starts each and
  // waits for every agent's "done".
  for (int r = 0; r < absl::GetFlag(FLAGS_rounds); ++r) {
    for (const AgentInfo& a : agents) PICOS_CO_RETURN_IF_ERROR(a.job.Send(Value(absl::StrCat("round ", r))));
    for (size_t done = 0; done < agents.size(); ++done) {
      PICOS_CO_ASSIGN_OR_RETURN(auto m, co_await NextFromAgent(&by_job));
      if (m.second != absl::StrCat("done ", r)) co_return absl::DataLossError(absl::StrCat("not done: ", m.second));
    }
  }

  // What each learnt.
  for (const AgentInfo& a : agents) PICOS_CO_RETURN_IF_ERROR(a.job.Send(Value("report")));
  int agree = 0;
  for (size_t n = 0; n < agents.size(); ++n) {
    PICOS_CO_ASSIGN_OR_RETURN(auto m, co_await NextFromAgent(&by_job));
    std::istringstream in(m.second);
    std::string result;
    long long l = 0, h = 0;
    const bool ok = (in >> result >> l >> h) && result == "result" && l == lo && h == hi;
    agree += ok ? 1 : 0;
    std::printf("dispycos_mas: %s knows min %lld max %lld: %s\n", agents[m.first].name.c_str(), l, h,
                ok ? "ok" : "WRONG");
  }
  // Each returns how much gossip it received from the others.
  long long gossip = 0;
  for (const AgentInfo& a : agents) {
    PICOS_CO_RETURN_IF_ERROR(a.job.Send(Value("end")));
    absl::StatusOr<Value> received = co_await a.job.Join(kLong);
    if (!received.ok()) co_return received.status();
    const std::string text = received->is_bytes() || received->is_string() ? received->as_string() : "";
    long long n = 0;
    if (!absl::SimpleAtoi(text, &n)) co_return absl::DataLossError(absl::StrCat("a bad result: ", text));
    gossip += n;
  }
  const bool all = !agents.empty() && agree == static_cast<int>(agents.size());
  std::printf("dispycos_mas: %zu agents, %lld gossip messages agent to agent; all agree: %s\n", agents.size(), gossip,
              all ? "yes" : "no");
  std::fflush(stdout);
  PICOS_CO_RETURN_IF_ERROR(co_await computation->Close());
  if (!all) co_return absl::AbortedError("an agent is wrong or missing");
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_rounds, 1, 100)) return 2;
  if (!picos::examples::NodesGiven("dispycos_mas", absl::GetFlag(FLAGS_nodes))) return 2;
  return picos::RunMain("dispycos_mas", Client);
}
