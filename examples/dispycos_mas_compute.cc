// The computation of dispycos_mas (pycos dispycos_mas.py's agent), a shared
// library built with picos_computation: an agent per worker that gossips
// with the others to learn the minimum and maximum of their values. Agents
// reach each other through the client, which relays their messages by
// name (a job's messages go to its reply_to; compute/export.h). It links
// only compute/export.h.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "compute/export.h"

namespace {

using picos::compute::Job;

// "<name> <value>" -> the agent. From the client it takes
//   "peers <name> ...", the other agents (its directory);
//   "round <r>": it sends "to <peer> gossip <min> <max>" for each peer, then
//     "done <r>";
//   "from <peer> gossip <min> <max>": what a peer knows, merged;
//   "report": it sends "result <min> <max>";
//   "end": it returns "<gossip received>".
// It first sends "hello <value> <pid>".
int Agent(Job& job, std::string* out) {
  std::istringstream arg{std::string(job.arg().substr(0, 128))};
  std::string name;
  long long value = 0;
  if (job.arg().size() > 128 || !(arg >> name >> value)) {
    *out = "agent wants \"<name> <value>\"";
    return 1;
  }
  long long lo = value, hi = value, received = 0;
  std::vector<std::string> peers;
  if (job.Send("hello " + std::to_string(value) + " " + std::to_string(getpid())) != Job::kOk) {
    *out = "hello not sent";
    return 1;
  }
  std::string m;
  for (;;) {
    if (job.Receive(&m, std::chrono::minutes(2)) != Job::kOk) {
      *out = "no message from the client";
      return 1;
    }
    std::istringstream in(m);
    std::string kind;
    in >> kind;
    bool sent = true;
    if (kind == "peers") {
      peers.clear();
      for (std::string p; peers.size() < 256 && in >> p;) {
        if (p != name) peers.push_back(p);
      }
    } else if (kind == "round") {
      std::string r;
      in >> r;
      for (const std::string& p : peers) {
        sent = sent && job.Send("to " + p + " gossip " + std::to_string(lo) + " " + std::to_string(hi)) == Job::kOk;
      }
      sent = sent && job.Send("done " + r) == Job::kOk;
    } else if (kind == "from") {
      std::string peer, gossip;
      long long l = 0, h = 0;
      if (in >> peer >> gossip >> l >> h && gossip == "gossip") {
        ++received;
        lo = std::min(lo, l);
        hi = std::max(hi, h);
      }
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
