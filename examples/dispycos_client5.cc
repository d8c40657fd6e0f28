// pycos dispycos_client5.py in C++: a job that drives an external program
// through pipes. The job (dispycos_client5_compute.cc) starts the program on
// its worker (`sed -u` uppercasing each line, or `sort`: --program=upper or
// sort), writes each message the client sends to the job's handle to the
// program's stdin, and sends each line the program prints back to the
// client (RunOptions::reply_to, this task) as it comes; "end" closes the
// program's stdin, and the job's result is how the program exited.
//
//   PICOS_REMOTE_SECRET=... dispycos_client5 --nodes=tcp://127.0.0.1:9706 --program=upper --lines=10
//
// Output, for people and for its smoke test (examples/dispycos_client5_smoke_test.sh):
//   dispycos_client5: sent: <line>
//   dispycos_client5: got: <line>
//   dispycos_client5: <program> ended (<exit status>): <n> lines in, <m> out: ok|WRONG
// Exit status 1 when the output is not what the program should print, 2
// for a bad flag.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <memory>
#include <random>
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

ABSL_FLAG(std::vector<std::string>, nodes, {}, "the picos-node URIs to run the job on (required)");
ABSL_FLAG(std::string, program, "upper", "what the job runs: upper (sed -u, line by line) or sort");
ABSL_FLAG(int, lines, 10, "lines streamed to the program");
ABSL_FLAG(std::string, library, "examples/libdispycos_client5_compute.so",
          "the computation library (picos_computation dispycos_client5_compute)");

namespace {

using picos::Task;
using picos::TaskRef;
using picos::Value;

constexpr absl::Duration kLong = absl::Minutes(2);  // only a hang reaches it

Task<absl::Status> Client() {
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::examples::StartClientNode("dispycos_client5"));
  picos::compute::ComputationOptions o;
  o.library = absl::GetFlag(FLAGS_library);
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::compute::Computation> computation,
                            co_await picos::examples::ScheduleComputation(o, absl::GetFlag(FLAGS_nodes)));

  const std::string program = absl::GetFlag(FLAGS_program);
  picos::compute::RunOptions ro;
  ro.reply_to = picos::Self();
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef job, co_await computation->Run("pipe", program, ro));

  // The input: words in a random order, one line each, streamed as they
  // are made.
  static const char* const kWords[] = {"pear", "apple", "fig", "plum", "kiwi", "lime", "date", "peach"};
  std::mt19937 random(std::random_device{}());
  std::vector<std::string> in;
  for (int i = 0; i < absl::GetFlag(FLAGS_lines); ++i) {
    in.push_back(absl::StrCat(kWords[random() % 8], " ", random() % 1000));
    std::printf("dispycos_client5: sent: %s\n", in.back().c_str());
    PICOS_CO_RETURN_IF_ERROR(job.Send(Value(in.back())));
  }
  PICOS_CO_RETURN_IF_ERROR(job.Send(Value("end")));  // closes its stdin

  // What it should print: each line uppercased, or the lines sorted.
  std::vector<std::string> want = in;
  if (program == "sort") {
    std::sort(want.begin(), want.end());
  } else {
    for (std::string& l : want) {
      for (char& c : l) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
  }
  std::vector<std::string> got;
  for (size_t i = 0; i < want.size(); ++i) {
    absl::StatusOr<Value> m = co_await picos::Receive(kLong);
    if (!m.ok()) break;
    got.push_back(m->GetOr<std::string>("data", ""));
    std::printf("dispycos_client5: got: %s\n", got.back().c_str());
  }
  absl::StatusOr<Value> ended = co_await job.Join(kLong);
  const std::string how = ended.ok() ? ended->As<std::string>().value_or("?") : ended.status().ToString();
  const bool ok = ended.ok() && how == "exit 0" && got == want;
  std::printf("dispycos_client5: %s ended (%s): %zu lines in, %zu out: %s\n", program.c_str(), how.c_str(), in.size(),
              got.size(), ok ? "ok" : "WRONG");
  std::fflush(stdout);
  PICOS_CO_RETURN_IF_ERROR(co_await computation->Close());
  if (!ok) co_return absl::AbortedError("the program's output is not what it should be");
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_lines, 1, 10'000)) return 2;
  const std::string program = absl::GetFlag(FLAGS_program);
  if (program != "upper" && program != "sort") {
    std::fprintf(stderr, "dispycos_client5: --program=%s: upper or sort\n", program.c_str());
    return 2;
  }
  if (!picos::examples::NodesGiven("dispycos_client5", absl::GetFlag(FLAGS_nodes))) return 2;
  return picos::RunMain("dispycos_client5", Client);
}
