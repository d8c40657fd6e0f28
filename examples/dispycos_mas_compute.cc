// The computation of dispycos_mas (pycos dispycos_mas.py's agent), a shared
// library built with picos_computation: an agent per worker that finds the
// other agents by name and gossips with them directly, worker to worker
// (compute/export.h's Register, Locate, SendTo, ReceiveFrom), to learn the
// minimum and maximum of their values. It links only compute/export.h.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "compute/export.h"

namespace {

using picos::compute::Job;

// "<n> <i> <value>" -> agent i of n, named "agent<i>". It registers its
// name, locates the n - 1 others (they start at about the same time, so it
// asks again every 50 ms, for up to a minute), and sends the client (its
// reply_to) "hello <value> <pid>". From the client (a sender with no name)
// it then takes
//   "round <r>": it sends "gossip <r> <min> <max>" to every other agent by
//     name, then waits for the n - 1 gossips of round r (some may have come
//     before the command) and sends the client "done <r>";
//   "report": it sends "result <min> <max>";
//   "end": it returns "<gossip received>".
// Gossip from another agent (a sender with a name) is merged whenever it
// comes.
int Agent(Job& job, std::string* out) {
  std::istringstream arg{std::string(job.arg().substr(0, 128))};
  int n = 0, me = 0;
  long long value = 0;
  if (job.arg().size() > 128 || !(arg >> n >> me >> value) || n < 1 || n > 256 || me < 0 || me >= n) {
    *out = "agent wants \"<agents> <index> <value>\" with 1 <= agents <= 256";
    return 1;
  }
  const std::string name = "agent" + std::to_string(me);
  std::string why;
  if (job.Register(name, &why) != Job::kOk) {
    *out = "cannot register " + name + ": " + why;
    return 1;
  }
  std::vector<std::string> peers;
  for (int i = 0; i < n; ++i) {
    if (i == me) continue;
    const std::string peer = "agent" + std::to_string(i);
    Job::Code c = job.Locate(peer, &why);
    for (int tries = 0; c == Job::kNotFound && tries < 1200; ++tries) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      c = job.Locate(peer, &why);
    }
    if (c != Job::kOk) {
      *out = "cannot locate " + peer + ": " + why;
      return 1;
    }
    peers.push_back(peer);
  }
  long long lo = value, hi = value, received = 0;
  std::map<long long, int> gossips;  // round -> gossip received for it
  if (job.Send("hello " + std::to_string(value) + " " + std::to_string(getpid())) != Job::kOk) {
    *out = "hello not sent";
    return 1;
  }
  std::string from, m;
  // The next message; gossip is merged here, whichever wait it comes in.
  auto next = [&]() -> bool {
    if (job.ReceiveFrom(&from, &m, std::chrono::minutes(2)) != Job::kOk) return false;
    if (from.empty()) return true;
    std::istringstream in(m);
    std::string kind;
    long long r = 0, l = 0, h = 0;
    if (in >> kind >> r >> l >> h && kind == "gossip") {
      ++received;
      ++gossips[r];
      lo = std::min(lo, l);
      hi = std::max(hi, h);
    }
    return true;
  };
  for (;;) {
    if (!next()) {
      *out = "no message from the client";
      return 1;
    }
    if (!from.empty()) continue;  // gossip, merged
    std::istringstream in(m);
    std::string kind;
    in >> kind;
    bool sent = true;
    if (kind == "round") {
      long long r = 0;
      in >> r;
      const std::string gossip = "gossip " + std::to_string(r) + " " + std::to_string(lo) + " " + std::to_string(hi);
      for (const std::string& p : peers) {
        if (job.SendTo(p, gossip, &why) != Job::kOk) {
          *out = "gossip to " + p + " not sent: " + why;
          return 1;
        }
      }
      while (gossips[r] < static_cast<int>(peers.size())) {
        if (!next()) {
          *out = "round " + std::to_string(r) + ": the other agents' gossip did not come";
          return 1;
        }
      }
      sent = job.Send("done " + std::to_string(r)) == Job::kOk;
    } else if (kind == "report") {
      sent = job.Send("result " + std::to_string(lo) + " " + std::to_string(hi)) == Job::kOk;
    } else if (kind == "end") {
      break;
    }
    if (!sent) {
      *out = "a message to the client could not be sent";
      return 1;
    }
  }
  *out = std::to_string(received);
  return 0;
}

}  // namespace

PICOS_COMPUTE_JOB(agent, Agent);
