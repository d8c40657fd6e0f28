// A compute client in a process of its own, for tests that kill it
// (testing/compute_node_test.cc: the zombie period): schedules the library
// on the node, prints "scheduled <computation id>" and waits until killed.
//
//   PICOS_REMOTE_SECRET=... compute_client_helper NODE_URI LIBRARY
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "compute/computation.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/node.h"
#include "transports/default_transports.h"

namespace {

picos::Task<absl::Status> Main(std::string uri, std::string library) {
  picos::remote::NodeOptions o;
  PICOS_CO_ASSIGN_OR_RETURN(o.secret, picos::remote::LoadSecret(""));
  o.name = "compute-client-helper";
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::remote::Node> node,
                            co_await picos::remote::Node::Start(picos::transports::DefaultTransports(), std::move(o)));
  picos::compute::ComputationOptions co;
  co.library = library;
  PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::compute::Computation> c, picos::compute::Computation::Create(co));
  std::vector<std::string> nodes = {uri};
  PICOS_CO_RETURN_IF_ERROR(co_await c->Schedule(nodes));
  std::printf("scheduled %s\n", c->id().c_str());
  std::fflush(stdout);
  for (;;) {
    absl::StatusOr<picos::Value> msg = co_await picos::Receive();
    if (!msg.ok()) break;
  }
  co_return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: compute_client_helper NODE_URI LIBRARY\n");
    return 2;
  }
  return picos::RunMain("compute_client_helper", Main, std::string(argv[1]), std::string(argv[2]));
}
