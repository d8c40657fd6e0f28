// pycos pipe_csum.py in picos: checksum a file through a child process's
// pipes, two ways that must agree:
//  1. Process::Communicate(): the whole file in, the checksum out;
//  2. a writer task that streams the file, read asynchronously chunk by
//     chunk, into the child's stdin, while this task waits for its output.
//
//   bazel run //examples:pipe_csum -- --file=/etc/services --program=md5sum
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_split.h"
#include "core/io/file.h"
#include "core/io/process.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"

ABSL_FLAG(std::string, file, "", "file to checksum (default: this program)");
ABSL_FLAG(std::string, program, "sha1sum", "checksum program: sha1sum, md5sum or sha256sum");

namespace {

constexpr size_t kMaxFile = size_t{256} << 20;

// The first word of a *sum program's output: the checksum.
std::string FirstWord(const std::string& out) {
  std::vector<std::string> words = absl::StrSplit(out, absl::ByAnyChar(" \n"), absl::SkipEmpty());
  return words.empty() ? "" : words[0];
}

picos::Task<absl::StatusOr<std::string>> ByCommunicate(std::string program, std::string path) {
  PICOS_CO_ASSIGN_OR_RETURN(std::string data, co_await picos::File::ReadFile(path, kMaxFile));
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::Process> p,
                            picos::Process::Spawn({.program = program}));
  PICOS_CO_ASSIGN_OR_RETURN(picos::ProcessOutput out,
                            co_await p->Communicate(std::move(data), 4096, absl::Seconds(60)));
  if (!out.status.success()) {
    co_return absl::InternalError(program + " failed: " + out.status.ToString() + ": " + out.err);
  }
  co_return FirstWord(out.out);
}

// Streams the file into the child's stdin, then closes it.
picos::Task<absl::Status> Feed(picos::Process* p, std::string path) {
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::File> f, co_await picos::File::Open(path));
  for (size_t total = 0; total <= kMaxFile;) {
    PICOS_CO_ASSIGN_OR_RETURN(std::string chunk, co_await f->Read(64 * 1024));
    if (chunk.empty()) break;
    total += chunk.size();
    PICOS_CO_RETURN_IF_ERROR(co_await p->in().Write(std::move(chunk), absl::Seconds(60)));
  }
  co_return p->CloseStdin();
}

picos::Task<absl::StatusOr<std::string>> ByWriterTask(std::string program, std::string path) {
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::Process> p,
                            picos::Process::Spawn({.program = program}));
  picos::TaskRef feeder = picos::ThisScheduler().Spawn(Feed, p.get(), path);
  PICOS_CO_ASSIGN_OR_RETURN(std::string line, co_await p->out().ReadLine(4096, absl::Seconds(60)));
  PICOS_CO_ASSIGN_OR_RETURN(picos::Value fed, co_await feeder.Join(absl::Seconds(60)));
  (void)fed;
  PICOS_CO_ASSIGN_OR_RETURN(picos::ExitStatus st, co_await p->Wait(absl::Seconds(60)));
  if (!st.success()) co_return absl::InternalError(program + " failed: " + st.ToString());
  co_return FirstWord(line);
}

picos::Task<absl::Status> Main(std::string program, std::string path) {
  PICOS_CO_ASSIGN_OR_RETURN(std::string a, co_await ByCommunicate(program, path));
  std::printf("%s (communicate): %s\n", program.c_str(), a.c_str());
  PICOS_CO_ASSIGN_OR_RETURN(std::string b, co_await ByWriterTask(program, path));
  std::printf("%s (writer task): %s\n", program.c_str(), b.c_str());
  if (a.empty() || a != b) co_return absl::InternalError("checksums differ");
  std::printf("checksums match\n");
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Checksums a file through a child process's pipes (pycos pipe_csum.py).");
  absl::ParseCommandLine(argc, argv);
  std::string path = absl::GetFlag(FLAGS_file);
  if (path.empty()) path = argv[0];
  const std::string program = absl::GetFlag(FLAGS_program);
  if (program != "sha1sum" && program != "md5sum" && program != "sha256sum") {
    std::fprintf(stderr, "pipe_csum: --program must be sha1sum, md5sum or sha256sum\n");
    return 2;
  }
  return picos::RunMain("pipe_csum", Main, program, path);
}
