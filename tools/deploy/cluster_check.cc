// picos-cluster-check: the client a deployment runs first (the Slurm batch
// script runs it on the job's first node): it connects to every picos-node
// given with --peer (or $PICOS_REMOTE_PEERS), with the cluster's secret
// (--secret_file or $PICOS_REMOTE_SECRET), finds the compute node service
// on each, and prints one line per node:
//
//   node <uri> up: <name>@<uri>
//   cluster: 3 of 3 nodes up
//
// A node not up within --wait (dialled again with backoff meanwhile: the
// nodes may still be starting) is "node <uri> down: <why>", and the exit
// status is 1; bad flags exit 2.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "compute/protocol.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "core/remote/node_flags.h"
#include "core/remote/service.h"
#include "transports/default_transports.h"

ABSL_FLAG(absl::Duration, wait, absl::Seconds(60),
          "how long to keep dialling a node that is not up yet (1s..1h)");

namespace {

using picos::Task;

// The node at `uri` up, within `deadline`: connected, and its compute node
// service found.
Task<absl::Status> Reach(picos::remote::Node* node, std::string uri, absl::Time deadline) {
  absl::Duration backoff = absl::Milliseconds(100);
  absl::Status last;
  for (int attempt = 0; attempt < 100000; ++attempt) {  // bounded by the deadline
    last = co_await node->Connect(uri);
    if (last.ok()) {
      absl::StatusOr<picos::remote::Service> svc = co_await picos::remote::Service::Locate(
          picos::compute::kNodeService, picos::Location::Peer(uri), absl::Seconds(10));
      if (svc.ok()) co_return absl::OkStatus();
      last = svc.status();
    }
    // A wrong secret will not get better by waiting.
    if (last.code() == absl::StatusCode::kUnauthenticated) co_return last;
    if (absl::Now() + backoff > deadline) break;
    absl::Status slept = co_await picos::Sleep(backoff);
    if (!slept.ok()) co_return slept;
    backoff = std::min(backoff * 2, absl::Seconds(1));
  }
  co_return last;
}

Task<absl::Status> Main() {
  const picos::TransportRegistry& t = picos::transports::DefaultTransports();
  picos::remote::NodeFlagDefaults defaults;
  defaults.name = "picos-cluster-check";
  absl::StatusOr<picos::remote::NodeConfig> config = picos::remote::NodeConfigFromFlags(t, defaults);
  if (!config.ok()) {
    std::fprintf(stderr, "picos-cluster-check: %s\n", std::string(config.status().message()).c_str());
    std::exit(2);
  }
  if (config->peers.empty()) {
    std::fprintf(stderr, "picos-cluster-check: no nodes: give --peer or PICOS_REMOTE_PEERS\n");
    std::exit(2);
  }
  const absl::Time deadline = absl::Now() + absl::GetFlag(FLAGS_wait);
  std::vector<std::string> peers = config->peers;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::remote::Node::Start(t, std::move(config->options)));
  int up = 0;
  for (const std::string& uri : peers) {
    absl::Status s = co_await Reach(node.get(), uri, deadline);
    if (!s.ok()) {
      std::printf("node %s down: %s\n", uri.c_str(), s.ToString().c_str());
      continue;
    }
    ++up;
    std::string who = uri;
    for (const std::string& p : node->peers()) {
      if (absl::EndsWith(p, "@" + uri)) who = p;
    }
    std::printf("node %s up: %s\n", uri.c_str(), who.c_str());
  }
  std::printf("cluster: %d of %zu nodes up\n", up, peers.size());
  std::fflush(stdout);
  (void)co_await node->Close();
  if (up != static_cast<int>(peers.size())) co_return absl::UnavailableError("some nodes are down");
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  picos::remote::ParseCommandLine(argc, argv);
  absl::Duration wait = absl::GetFlag(FLAGS_wait);
  if (wait < absl::Seconds(1) || wait > absl::Hours(1)) {
    std::fprintf(stderr, "picos-cluster-check: --wait must be in 1s..1h\n");
    return 2;
  }
  return picos::RunMain("picos-cluster-check", Main);
}
