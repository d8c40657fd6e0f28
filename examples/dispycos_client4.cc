// pycos dispycos_client4.py in C++: files both ways. The client ships a
// data file every job shares (ComputationOptions::files) and, with each
// job, an input file of its own (RunOptions::files); each job (the library
// of dispycos_client4_compute.cc) sorts its input's lines and sends the
// result back to the client as a file (Job::SendFile) into --dest_path;
// the client checks every result file (content, checksum) and hears of
// each by a file_received event.
//
//   picos-node --cpus=2 --listen=tcp://127.0.0.1:9706 --dest_path=/tmp/node &
//   PICOS_REMOTE_SECRET=... dispycos_client4 --nodes=tcp://127.0.0.1:9706 --listen=tcp://127.0.0.1:0 --jobs=4 --dest_path=/tmp/results
//
// The client must listen (--listen, default tcp://127.0.0.1:0) where the
// workers can dial it: that is where the files come back.
//
// Output, for people and for its smoke test (examples/dispycos_client4_smoke_test.sh):
//   dispycos_client4: scheduled on <nodes> nodes, <workers> workers
//   dispycos_client4: job <i> sorted <lines> lines: <result file> ok
//   dispycos_client4: job <i> failed: <why>
//   dispycos_client4: <n> result files received, <n> checked, <m> failed
// Exit status 1 when a job or a check failed, 2 for a bad flag.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <set>
#include <string>
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

ABSL_FLAG(std::vector<std::string>, nodes, {}, "the picos-node URIs to run jobs on (required)");
ABSL_FLAG(int, jobs, 4, "jobs, each with an input file of its own");
ABSL_FLAG(int, lines, 1000, "lines of each input file");
ABSL_FLAG(std::string, dest_path, "", "where the result files land (default: ./<computation id>)");
ABSL_FLAG(std::string, work_dir, "", "where the input files are made (default: a new folder under /tmp)");
ABSL_FLAG(std::string, library, "examples/libdispycos_client4_compute.so",
          "the computation library (picos_computation dispycos_client4_compute)");

namespace {

using picos::Task;
using picos::TaskRef;
using picos::Value;
using picos::examples::Fnv1a;

constexpr char kSalt[] = "dispycos_client4 salt";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// What job `input`'s result file must hold: the salt, the input's lines
// sorted, and their checksum.
std::string Expected(const std::vector<std::string>& input) {
  std::vector<std::string> sorted = input;
  std::sort(sorted.begin(), sorted.end());
  std::string body = absl::StrCat(kSalt, "\n");
  for (const std::string& l : sorted) absl::StrAppend(&body, l, "\n");
  char hex[32];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(Fnv1a(body)));
  return absl::StrCat(body, "fnv1a ", hex, "\n");
}

// Counts the file_received events (the computation's status task).
Task<> CountFiles(std::shared_ptr<std::set<std::string>> received) {
  for (;;) {
    absl::StatusOr<Value> e = co_await picos::Receive();
    if (!e.ok()) co_return;
    if (e->GetOr<std::string>("type", "") == "file_received") received->insert(e->GetOr<std::string>("path", ""));
  }
}

Task<absl::Status> Client() {
  std::vector<std::string> listen = {"tcp://127.0.0.1:0"};  // the workers send the results here
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::examples::StartClientNode("dispycos_client4", std::move(listen)));
  if (node->uris().empty()) co_return absl::InvalidArgumentError("--listen: the client must listen for the results");

  // The input files, and the data file every job shares.
  std::string work = absl::GetFlag(FLAGS_work_dir);
  if (work.empty()) work = absl::StrCat("/tmp/dispycos_client4-", getpid());
  std::filesystem::create_directories(work);
  {
    std::ofstream salt(work + "/salt.txt");
    salt << kSalt << "\n";
  }
  std::mt19937 random(std::random_device{}());
  std::vector<std::vector<std::string>> inputs(absl::GetFlag(FLAGS_jobs));
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::ofstream in(absl::StrCat(work, "/input-", i, ".txt"));
    for (int l = 0; l < absl::GetFlag(FLAGS_lines); ++l) {
      inputs[i].push_back(absl::StrCat(random() % 1'000'000));
      in << inputs[i].back() << "\n";
    }
  }

  auto received = std::make_shared<std::set<std::string>>();
  TaskRef status = picos::ThisScheduler().Spawn(CountFiles, received);
  picos::compute::ComputationOptions o;
  o.library = absl::GetFlag(FLAGS_library);
  o.files = {work + "/salt.txt"};
  o.client_uri = node->uris()[0];
  o.dest_path = absl::GetFlag(FLAGS_dest_path);
  o.status_task = status;
  const std::vector<std::string> nodes = absl::GetFlag(FLAGS_nodes);
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::compute::Computation> computation,
                            co_await picos::examples::ScheduleComputation(o, nodes));
  std::printf("dispycos_client4: scheduled on %zu nodes, %zu workers\n", nodes.size(),
              computation->workers_alive());
  const std::string dest = o.dest_path.empty() ? absl::StrCat("./", computation->id()) : o.dest_path;

  std::vector<TaskRef> jobs;
  for (size_t i = 0; i < inputs.size(); ++i) {
    picos::compute::RunOptions ro;
    ro.files = {absl::StrCat(work, "/input-", i, ".txt")};
    absl::StatusOr<TaskRef> job = co_await computation->Run("sort_file", absl::StrCat("input-", i, ".txt"), ro);
    jobs.push_back(job.ok() ? *job : TaskRef());
    if (!job.ok()) std::printf("dispycos_client4: job %zu failed: %s\n", i, job.status().ToString().c_str());
  }
  int checked = 0, failed = 0;
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (!jobs[i].valid()) {
      ++failed;
      continue;
    }
    absl::StatusOr<Value> r = co_await jobs[i].Join(absl::Minutes(5));
    const std::string result = absl::StrCat(dest, "/input-", i, ".txt.sorted");
    if (!r.ok()) {
      ++failed;
      std::printf("dispycos_client4: job %zu failed: %s\n", i, r.status().ToString().c_str());
    } else if (ReadAll(result) != Expected(inputs[i])) {
      ++failed;
      std::printf("dispycos_client4: job %zu failed: %s does not hold its input sorted\n", i, result.c_str());
    } else {
      ++checked;
      std::printf("dispycos_client4: job %zu sorted %zu lines: %s ok\n", i, inputs[i].size(), result.c_str());
    }
  }
  PICOS_CO_RETURN_IF_ERROR(co_await computation->Close());
  // A file's event is sent before its job returns, but may be handled after
  // the job's result here: wait for the last ones, bounded.
  for (int i = 0; i < 200 && received->size() < static_cast<size_t>(checked); ++i) {
    absl::Status slept = co_await picos::Sleep(absl::Milliseconds(10));
    if (!slept.ok()) break;
  }
  (void)status.Terminate();
  std::printf("dispycos_client4: %zu result files received, %d checked, %d failed\n", received->size(), checked,
              failed);
  std::filesystem::remove_all(work);
  if (failed > 0) co_return absl::AbortedError(absl::StrCat(failed, " jobs failed"));
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_jobs, 1, 10'000) || !picos::FlagInRange(FLAGS_lines, 0, 1'000'000)) return 2;
  if (!picos::examples::NodesGiven("dispycos_client4", absl::GetFlag(FLAGS_nodes))) return 2;
  return picos::RunMain("dispycos_client4", Client);
}
