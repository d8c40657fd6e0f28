// The computation library of testing/compute_files_test.cc: jobs that read
// the files shipped to their worker's folder and send files back to the
// client (compute/export.h's Job::dir, job_dir, SendFile). It links only
// compute/export.h.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "compute/export.h"

namespace {

using picos::compute::Job;

// Splits `s` at '\n'.
std::vector<std::string> Lines(std::string_view s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t nl = s.find('\n', start);
    out.emplace_back(s.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start));
    if (nl == std::string_view::npos) return out;
    start = nl + 1;
  }
}

bool ReadAll(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

// A bytes-only function: the file `arg`, opened by its relative name (the
// worker's working directory is the computation's folder).
int ReadFile(std::string_view arg, std::string* out) {
  if (!ReadAll(std::string(arg), out)) {
    *out = "cannot open " + std::string(arg);
    return 1;
  }
  return 0;
}
PICOS_COMPUTE_FUNCTION(read_file, ReadFile);

// The file `arg` of the job's own folder (RunOptions::files), and that the
// folder is Job::dir()/jobs/<id> and the working directory is Job::dir().
int ReadJobFile(Job& job, std::string* out) {
  char cwd[4096];
  if (getcwd(cwd, sizeof cwd) == nullptr || std::string_view(cwd) != job.dir()) {
    *out = "working directory is not Job::dir()";
    return 1;
  }
  if (job.job_dir() != std::string(job.dir()) + "/jobs/" + std::to_string(job.id())) {
    *out = "job_dir() is not dir()/jobs/<id>";
    return 1;
  }
  if (!ReadAll(job.job_dir() + "/" + std::string(job.arg()), out)) {
    *out = "cannot open " + job.job_dir() + "/" + std::string(job.arg());
    return 1;
  }
  return 0;
}
PICOS_COMPUTE_JOB(read_job_file, ReadJobFile);

// A symlink `name` in the computation's folder to `target`: arg
// "<name>\n<target>".
int MakeSymlink(std::string_view arg, std::string* out) {
  std::vector<std::string> f = Lines(arg);
  if (f.size() != 2 || symlink(f[1].c_str(), f[0].c_str()) != 0) {
    *out = "symlink failed";
    return 1;
  }
  return 0;
}
PICOS_COMPUTE_FUNCTION(make_symlink, MakeSymlink);

// Makes the file <job_dir>/<name> (arg "<name>\n<size>\n<mode, octal>\n
// <mtime, seconds>\n<subdir>"): `size` bytes of a known pattern, that mode
// and mtime; sends it to the client into `subdir`; answers
// "<code> <message>" (the code Job::SendFile gave).
int MakeAndSend(Job& job, std::string* out) {
  std::vector<std::string> f = Lines(job.arg());
  if (f.size() != 5) {
    *out = "arg: name, size, mode, mtime, subdir";
    return 1;
  }
  const std::string dir = job.job_dir();
  mkdir((std::string(job.dir()) + "/jobs").c_str(), 0755);
  mkdir(dir.c_str(), 0755);
  const std::string path = dir + "/" + f[0];
  {
    std::ofstream o(path, std::ios::binary | std::ios::trunc);
    const long size = std::stol(f[1]);
    for (long i = 0; i < size; ++i) o.put(static_cast<char>('a' + i % 26));
    if (!o) {
      *out = "cannot write " + path;
      return 1;
    }
  }
  const mode_t mode = static_cast<mode_t>(std::stoul(f[2], nullptr, 8));
  struct timespec times[2] = {{std::stol(f[3]), 0}, {std::stol(f[3]), 0}};
  if (chmod(path.c_str(), mode) != 0 || utimensat(AT_FDCWD, path.c_str(), times, 0) != 0) {
    *out = "chmod/utimensat failed";
    return 1;
  }
  std::string error;
  const Job::Code code = job.SendFile(path, &error, f[4]);
  *out = std::to_string(static_cast<int>(code)) + " " + error;
  return 0;
}
PICOS_COMPUTE_JOB(make_and_send, MakeAndSend);

// Sends the file `arg` as it is (relative: to Job::dir()); answers
// "<code> <message>".
int SendPath(Job& job, std::string* out) {
  std::string error;
  const Job::Code code = job.SendFile(job.arg(), &error);
  *out = std::to_string(static_cast<int>(code)) + " " + error;
  return 0;
}
PICOS_COMPUTE_JOB(send_path, SendPath);

}  // namespace
