// The computation library of testing/compute_names_test.cc: a job that
// registers a name, finds other jobs by name and messages them directly
// (compute/export.h's names), driven by commands from the client. Links
// only compute/export.h.
#include <chrono>
#include <deque>
#include <sstream>
#include <string>

#include "compute/export.h"

namespace {

using picos::compute::Job;

std::string Code(Job::Code c, const std::string& why) { return std::to_string(static_cast<int>(c)) + " " + why; }

// Takes commands from the client (messages whose sender has no name) and
// answers each to reply_to:
//   "register <name>"    -> "register <code> <why>"
//   "locate <name>"      -> "locate <code> <why>"
//   "sendto <name> <n>"  -> sends "0" .. "<n-1>" to <name>, then
//                           "sendto <code> <sent> <why>"
//   "recv <n>"           -> takes n messages from other jobs (those that
//                           came before the command first), then
//                           "recv <n> <sender> ok" if they were "0" .. "<n-1>"
//                           in order from one named sender, else "recv ... bad"
//   "end"                -> returns "ended".
int Named(Job& job, std::string* out) {
  std::string from, m;
  // Messages from other jobs that came before a recv: {sender, bytes}.
  std::deque<std::pair<std::string, std::string>> early;
  for (;;) {
    if (job.ReceiveFrom(&from, &m, std::chrono::seconds(60)) != Job::kOk) {
      *out = "no command from the client";
      return 1;
    }
    if (!from.empty()) {
      if (early.size() < 100000) early.emplace_back(from, m);
      continue;
    }
    std::istringstream in(m);
    std::string cmd, name;
    in >> cmd;
    std::string why;
    if (cmd == "register") {
      in >> name;
      const Job::Code c = job.Register(name, &why);
      job.Send("register " + Code(c, why));
    } else if (cmd == "locate") {
      in >> name;
      const Job::Code c = job.Locate(name, &why);
      job.Send("locate " + Code(c, why));
    } else if (cmd == "sendto") {
      int n = 0;
      in >> name >> n;
      Job::Code c = Job::kOk;
      int sent = 0;
      for (; sent < n && c == Job::kOk; ++sent) c = job.SendTo(name, std::to_string(sent), &why);
      if (c != Job::kOk) --sent;
      job.Send("sendto " + std::to_string(static_cast<int>(c)) + " " + std::to_string(sent) + " " + why);
    } else if (cmd == "recv") {
      int n = 0;
      in >> n;
      std::string first;
      bool ok = true;
      int got = 0;
      for (; got < n; ++got) {
        if (!early.empty()) {
          from = early.front().first;
          m = early.front().second;
          early.pop_front();
        } else if (job.ReceiveFrom(&from, &m, std::chrono::seconds(60)) != Job::kOk) {
          break;
        }
        if (got == 0) first = from;
        ok = ok && !from.empty() && from == first && m == std::to_string(got);
      }
      job.Send("recv " + std::to_string(got) + " " + first + (ok && got == n ? " ok" : " bad"));
    } else if (cmd == "end") {
      *out = "ended";
      return 0;
    } else {
      job.Send("unknown " + m);
    }
  }
}

}  // namespace

PICOS_COMPUTE_JOB(named, Named);
