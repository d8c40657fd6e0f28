// pycos pipe_grep.py in picos: a chain of two programs, `grep -i error | wc -l`,
// fed line by line by a writer task while a reader task reads the result
// line by line from the last program.
//
//   bazel run //examples:pipe_grep -- --file=/var/log/syslog
// Without --file it feeds generated log lines, every 7th an error. A file
// is read up to --max_bytes (an endless one, such as /dev/zero, included):
// past that the run ends with an error that says so.
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/cli/flags.h"
#include "core/io/file.h"
#include "core/io/io.h"
#include "core/io/process.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"

ABSL_FLAG(std::string, file, "", "log file to search (default: generated lines)");
ABSL_FLAG(int64_t, lines, 1000, "generated lines when no --file, 1 to 1000000");
ABSL_FLAG(int64_t, max_bytes, int64_t{64} << 20, "read at most this much of --file, 1 to 1 TiB");

namespace {

constexpr size_t kMaxLine = 64 * 1024;

// Writes every line of the input to the first program, then closes its
// stdin. At most `max_bytes` of the file are read.
picos::Task<absl::Status> Writer(picos::Process* first, std::string path, int64_t lines,
                                 int64_t max_bytes) {
  if (path.empty()) {
    for (int64_t i = 0; i < lines; ++i) {
      std::string line = i % 7 == 0 ? absl::StrCat("line ", i, ": ERROR disk full\n")
                                    : absl::StrCat("line ", i, ": all good\n");
      PICOS_CO_RETURN_IF_ERROR(co_await first->in().Write(std::move(line), absl::Seconds(30)));
    }
  } else {
    PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::File> f, co_await picos::File::Open(path));
    picos::BufferedReader in(f.get());
    int64_t read = 0;
    // Each round takes at least one byte or ends: bounded by max_bytes.
    for (int64_t i = 0; i <= max_bytes; ++i) {
      absl::StatusOr<std::string> line = co_await in.ReadLine(kMaxLine);
      if (!line.ok() && line.status().code() == absl::StatusCode::kResourceExhausted) {
        line = co_await in.Read(kMaxLine);  // an over-long line goes through in pieces
      }
      if (!line.ok()) co_return line.status();
      if (line->empty()) break;
      read += static_cast<int64_t>(line->size());
      if (read > max_bytes) {
        co_return absl::ResourceExhaustedError(absl::StrCat(
            path, " is larger than --max_bytes=", max_bytes, " bytes; stopped reading it"));
      }
      PICOS_CO_RETURN_IF_ERROR(co_await first->in().Write(*std::move(line), absl::Seconds(30)));
    }
  }
  co_return first->CloseStdin();
}

// Reads the last program's output line by line.
picos::Task<absl::Status> Reader(picos::Process* last) {
  for (int i = 0; i < 1000; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(std::string line, co_await last->out().ReadLine(kMaxLine, absl::Seconds(30)));
    if (line.empty()) break;
    std::printf("matching lines: %s\n", std::string(absl::StripAsciiWhitespace(line)).c_str());
  }
  co_return absl::OkStatus();
}

picos::Task<absl::Status> Main(std::string path, int64_t lines, int64_t max_bytes) {
  PICOS_CO_ASSIGN_OR_RETURN(
      std::unique_ptr<picos::Pipeline> chain,
      picos::Pipeline::Spawn({{.program = "grep", .args = {"-i", "error"}},
                              {.program = "wc", .args = {"-l"}}}));
  picos::Scheduler& s = picos::ThisScheduler();
  picos::TaskRef writer = s.Spawn(Writer, &chain->first(), path, lines, max_bytes);
  picos::TaskRef reader = s.Spawn(Reader, &chain->last());
  // Both tasks use `chain`: neither may outlive it. If the writer fails,
  // the reader would wait for output that never comes; end it, and join it
  // before `chain` goes either way.
  absl::StatusOr<picos::Value> w = co_await writer.Join();
  if (!w.ok()) (void)reader.Terminate();
  absl::StatusOr<picos::Value> r = co_await reader.Join();
  PICOS_CO_RETURN_IF_ERROR(w.status());
  PICOS_CO_RETURN_IF_ERROR(r.status());
  PICOS_CO_ASSIGN_OR_RETURN(std::vector<picos::ExitStatus> st, co_await chain->Wait(absl::Seconds(30)));
  // grep exits 1 when nothing matched: not an error here.
  std::printf("grep: %s, wc: %s\n", st[0].ToString().c_str(), st[1].ToString().c_str());
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Counts error lines through grep | wc (pycos pipe_grep.py).");
  absl::ParseCommandLine(argc, argv);
  const int64_t lines = absl::GetFlag(FLAGS_lines);
  if (!picos::FlagInRange(FLAGS_lines, 1, 1'000'000) ||
      !picos::FlagInRange(FLAGS_max_bytes, int64_t{1}, int64_t{1} << 40)) {
    return 2;
  }
  return picos::RunMain("pipe_grep", Main, absl::GetFlag(FLAGS_file), lines,
                        absl::GetFlag(FLAGS_max_bytes));
}
