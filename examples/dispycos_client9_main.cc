// pycos dispycos_client9_node.py and dispycos_client9_server.py in C++, one
// source built twice (examples/BUILD sets DISPYCOS_CLIENT9_PER_WORKER):
//  * dispycos_client9_node: node setup, every worker of a node loading the
//    node's data. The computation's nodes are disabled at Schedule
//    (ComputationOptions::disable_nodes); as each one's node_discovered
//    event arrives the client makes it data of its own and enables it
//    (EnableNode) with that data as the setup argument.
//  * dispycos_client9_server: worker setup, each worker loading its own
//    data. The workers are disabled (disable_workers); as each one's
//    worker_discovered event arrives it gets data of its own (EnableWorker).
// The library's setup hook loads the data into memory
// (examples/dispycos_client9_compute.cc); lookups then run on every worker
// and the client checks each answer (examples/dispycos_client9.h has the
// output).
//
//   picos-node --cpus=2 --listen=tcp://127.0.0.1:9706 --dest_path=/tmp/node &
//   PICOS_REMOTE_SECRET=... dispycos_client9_node --nodes=tcp://127.0.0.1:9706
//
// Exit status 1 when an answer is wrong or the events stopped, 2 for a bad
// flag.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "core/cli/flags.h"
#include "core/kernel/scheduler.h"
#include "core/remote/node_flags.h"
#include "examples/dispycos_client9.h"
#include "examples/dispycos_client_lib.h"

#ifndef DISPYCOS_CLIENT9_PER_WORKER
#error "examples/BUILD defines DISPYCOS_CLIENT9_PER_WORKER (0: per node, 1: per worker)"
#endif

namespace {

constexpr bool kPerWorker = DISPYCOS_CLIENT9_PER_WORKER != 0;
constexpr const char* kName = kPerWorker ? "dispycos_client9_server" : "dispycos_client9_node";

}  // namespace

ABSL_FLAG(std::vector<std::string>, nodes, {}, "the picos-node URIs to run jobs on (required)");
ABSL_FLAG(int, keys, 4,
          kPerWorker ? "keys in each worker's data, each looked up once on each worker"
                     : "keys in each node's data, each looked up once on each worker");
ABSL_FLAG(std::string, library, "examples/libdispycos_client9_compute.so",
          "the computation library (picos_computation dispycos_client9_compute)");

namespace {

picos::Task<absl::Status> Client() {
  picos::examples::Client9Options o;
  o.name = kName;
  o.per_worker = kPerWorker;
  o.nodes = absl::GetFlag(FLAGS_nodes);
  o.keys = absl::GetFlag(FLAGS_keys);
  o.library = absl::GetFlag(FLAGS_library);
  co_return co_await picos::examples::RunClient9(std::move(o));
}

}  // namespace

int main(int argc, char** argv) {
  picos::remote::ParseCommandLine(argc, argv);
  if (!picos::FlagInRange(FLAGS_keys, 1, 1000)) return 2;
  if (!picos::examples::NodesGiven(kName, absl::GetFlag(FLAGS_nodes))) return 2;
  return picos::RunMain(kName, Client);
}
