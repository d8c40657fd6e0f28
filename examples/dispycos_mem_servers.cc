// pycos dispycos_mem_servers.py in C++: per-worker in-memory data answering
// requests. For each worker the client loads a different block of data
// into that process's memory (a `load` job, pycos init_mem), then starts a
// long-lived `serve` job there (RunAt, its reply_to this task) and sends it
// --requests requests (slices of the block, as messages to the job's
// handle); each answer, a message back, carries the slice's checksum
// (FNV-1a), which the client checks against its own copy. Then it ends
// each server and closes its worker with restart (pycos
// dispycos_close_server(restart=True)): a server started on the fresh
// process finds no data.
//
//   PICOS_REMOTE_SECRET=... dispycos_mem_servers --nodes=tcp://127.0.0.1:9706 --requests=5
//
// Output, for people and for its smoke test (examples/dispycos_mem_servers_smoke_test.sh):
//   dispycos_mem_servers: <worker> loaded <bytes> bytes in pid <pid>
//   dispycos_mem_servers: <worker> request <offset> <length>: <checksum> from pid <pid>: ok|WRONG
//   dispycos_mem_servers: <worker> restarted as <uri>: no data (pid <pid>)|still has data
//   dispycos_mem_servers: <n> answers, <m> wrong, <r> restarted empty
// Exit status 1 when an answer is wrong or missing, 2 for a bad flag.
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/flag.h"
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
#include "examples/fnv1a.h"

ABSL_FLAG(std::vector<std::string>, nodes, {}, "the picos-node URIs to use (required)");
ABSL_FLAG(int, requests, 5, "requests sent to each worker's server");
ABSL_FLAG(int, block_bytes, 1 << 20, "bytes of data each worker holds");
ABSL_FLAG(std::string, library, "examples/libdispycos_mem_servers_compute.so",
          "the computation library (picos_computation dispycos_mem_servers_compute)");

namespace {

using picos::Task;
using picos::TaskRef;
using picos::Value;

constexpr absl::Duration kLong = absl::Minutes(2);  // only a hang reaches it

// The next message of a job (reply_to is this task): its data.
Task<absl::StatusOr<std::string>> NextAnswer() {
  absl::StatusOr<Value> m = co_await picos::Receive(kLong);
  if (!m.ok()) co_return m.status();
  co_return m->Get<std::string>("data");
}

Task<absl::Status> Client() {
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::examples::StartClientNode("dispycos_mem_servers"));
  picos::compute::ComputationOptions o;
  o.library = absl::GetFlag(FLAGS_library);
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::compute::Computation> computation,
                            co_await picos::examples::ScheduleComputation(o, absl::GetFlag(FLAGS_nodes)));

  std::mt19937 random(std::random_device{}());
  const int block = absl::GetFlag(FLAGS_block_bytes), requests = absl::GetFlag(FLAGS_requests);
  int answers = 0, wrong = 0, empty = 0;
  const std::vector<picos::compute::WorkerInfo> workers = computation->workers();
  for (size_t w = 0; w < workers.size(); ++w) {
    const std::string& uri = workers[w].uri;
    // init_mem: this worker's block, different from the others'.
    std::string data(static_cast<size_t>(block), '\0');
    for (char& c : data) c = static_cast<char>(random());
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef load, co_await computation->RunAt(uri, "load", data));
    PICOS_CO_ASSIGN_OR_RETURN(Value loaded, co_await load.Join(kLong));
    long long bytes = 0;
    int load_pid = 0;
    char tail = 0;
    const std::string l = loaded.As<std::string>().value_or("");
    if (l.size() > 64 || std::sscanf(l.c_str(), "%lld %d%c", &bytes, &load_pid, &tail) != 2) {
      co_return absl::DataLossError(absl::StrCat(uri, ": malformed load answer"));
    }
    std::printf("dispycos_mem_servers: %s loaded %lld bytes in pid %d\n", uri.c_str(), bytes, load_pid);
    // The server, and its requests: slices of the block.
    picos::compute::RunOptions ro;
    ro.where = uri;
    ro.reply_to = picos::Self();
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef server, co_await computation->Run("serve", "", ro));
    std::uniform_int_distribution<int> offset(0, block - 1);
    std::map<std::string, uint64_t> want;
    for (int r = 0; r < requests; ++r) {
      const int off = offset(random);
      std::uniform_int_distribution<int> length(0, block - off);
      const int len = length(random);
      const std::string request = absl::StrCat(off, " ", len);
      want[request] = picos::examples::Fnv1a(std::string_view(data).substr(off, len));
      PICOS_CO_RETURN_IF_ERROR(server.Send(Value(request)));
    }
    for (int r = 0; r < requests; ++r) {
      PICOS_CO_ASSIGN_OR_RETURN(std::string a, co_await NextAnswer());
      long long off = 0, len = 0;
      unsigned long long sum = 0;
      int pid = 0;
      const bool parsed =
          a.size() < 128 && std::sscanf(a.c_str(), "%lld %lld %llx %d%c", &off, &len, &sum, &pid, &tail) == 4;
      const auto it = want.find(absl::StrCat(off, " ", len));
      const bool ok = parsed && it != want.end() && it->second == sum;
      ++answers;
      wrong += ok ? 0 : 1;
      std::printf("dispycos_mem_servers: %s request %lld %lld: %016llx from pid %d: %s\n", uri.c_str(), off, len, sum,
                  pid, ok ? "ok" : "WRONG");
    }
    PICOS_CO_RETURN_IF_ERROR(server.Send(Value("end")));
    PICOS_CO_ASSIGN_OR_RETURN(Value served, co_await server.Join(kLong));
    if (!(served == Value::Bytes(std::to_string(requests)))) ++wrong;

    // pycos dispycos_close_server(restart=True): a fresh process in its
    // place, whose memory holds nothing of the block.
    PICOS_CO_RETURN_IF_ERROR(co_await computation->CloseWorker(uri, /*restart=*/true));
    const std::string fresh = computation->workers()[w].uri;
    picos::compute::RunOptions again = ro;
    again.where = fresh;
    PICOS_CO_ASSIGN_OR_RETURN(TaskRef probe, co_await computation->Run("serve", "", again));
    PICOS_CO_RETURN_IF_ERROR(probe.Send(Value("0 1")));
    PICOS_CO_ASSIGN_OR_RETURN(std::string a, co_await NextAnswer());
    PICOS_CO_RETURN_IF_ERROR(probe.Send(Value("end")));
    PICOS_CO_ASSIGN_OR_RETURN(Value probed, co_await probe.Join(kLong));
    (void)probed;
    int pid = 0;
    const bool none = a.size() < 64 && std::sscanf(a.c_str(), "none %d%c", &pid, &tail) == 1;
    empty += none ? 1 : 0;
    if (none) {
      std::printf("dispycos_mem_servers: %s restarted as %s: no data (pid %d)\n", uri.c_str(), fresh.c_str(), pid);
    } else {
      std::printf("dispycos_mem_servers: %s restarted as %s: still has data\n", uri.c_str(), fresh.c_str());
    }
  }
  std::printf("dispycos_mem_servers: %d answers, %d wrong, %d restarted empty\n", answers, wrong, empty);
  std::fflush(stdout);
  PICOS_CO_RETURN_IF_ERROR(co_await computation->Close());
  if (wrong > 0 || answers < requests * static_cast<int>(workers.size()) ||
      empty < static_cast<int>(workers.size())) {
    co_return absl::AbortedError("an answer is wrong or missing");
  }
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_requests, 1, 10'000) || !picos::FlagInRange(FLAGS_block_bytes, 1, 8 << 20)) return 2;
  if (!picos::examples::NodesGiven("dispycos_mem_servers", absl::GetFlag(FLAGS_nodes))) return 2;
  return picos::RunMain("dispycos_mem_servers", Client);
}
