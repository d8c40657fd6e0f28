// The computation of dispycos_client4 (pycos dispycos_client4.py's
// `rtask_proc`), a shared library built with picos_computation: each job
// finds its input file among its own files (compute/export.h's
// Job::job_dir), sorts its lines, and sends the result back to the client
// as a file (Job::SendFile). It links only compute/export.h.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "compute/export.h"
#include "examples/fnv1a.h"

namespace {

using picos::compute::Job;
using picos::examples::Fnv1a;

// arg: the input file's name (shipped with the job, RunOptions::files).
// Reads the data file "salt.txt" every job shares (shipped at Schedule,
// ComputationOptions::files, in the working directory), writes
// "<input>.sorted": the salt's first line, then the input's lines sorted,
// then "fnv1a <hex of the lines above>"; sends it to the client and answers
// "<lines> <hex>".
int SortFile(Job& job, std::string* out) {
  const std::string name(job.arg());
  if (name.empty() || name.size() > 200 || name.find('/') != std::string::npos) {
    *out = "the argument is an input file's name";
    return 1;
  }
  std::string salt;
  {
    std::ifstream in("salt.txt");  // relative: the computation's folder
    if (!in || !std::getline(in, salt)) {
      *out = "cannot read the data file salt.txt";
      return 1;
    }
  }
  std::vector<std::string> lines;
  {
    std::ifstream in(job.job_dir() + "/" + name);
    if (!in) {
      *out = "cannot read " + job.job_dir() + "/" + name;
      return 1;
    }
    for (std::string l; std::getline(in, l) && lines.size() < 10'000'000;) lines.push_back(std::move(l));
  }
  std::sort(lines.begin(), lines.end());
  std::string body = salt + "\n";
  for (const std::string& l : lines) body += l + "\n";
  char hex[32];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(Fnv1a(body)));
  const std::string result = job.job_dir() + "/" + name + ".sorted";
  {
    std::ofstream o(result, std::ios::binary | std::ios::trunc);
    o << body << "fnv1a " << hex << "\n";
    if (!o) {
      *out = "cannot write " + result;
      return 1;
    }
  }
  std::string error;
  const Job::Code sent = job.SendFile(result, &error);
  if (sent != Job::kOk) {
    *out = "sending " + result + " back: " + error;
    return 1;
  }
  *out = std::to_string(lines.size()) + " " + hex;
  return 0;
}

}  // namespace

PICOS_COMPUTE_JOB(sort_file, SortFile);
