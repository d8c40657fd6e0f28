// Nodes found by discovery (compute/computation.h's "Discovered nodes",
// picos-node --discover), end to end with real picos-node processes that
// announce themselves by multicast on loopback (a group port of this test's
// own): a client scheduled with no node list finds both nodes, sends
// node_discovered before node_initialized and worker_discovered before
// worker_initialized for each, runs a job that was submitted before any
// node was found and jobs on each node, and uses a third node started after
// Schedule.
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "compute/computation.h"
#include "core/remote/node.h"
#include "discovery/discovery.h"
#include "testing/compute_testutil.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos::testing {
namespace {

using namespace compute_test;  // NOLINT: the helpers of this test family

// Each run its own group port, so that other tests' announcements on this
// machine are not heard (they would be refused anyway: another secret).
std::string Group() { return absl::StrCat("239.255.97.5:", 20000 + getpid() % 20000); }

std::vector<std::string> DiscoverFlags() {
  return {"--discover", "--discovery_iface=lo", absl::StrCat("--discovery_group=", Group())};
}

// The index in `events` of the first event of `type` whose `key` is `value`;
// -1 if none.
int IndexOf(const Events& events, const std::string& type, const std::string& key, const std::string& value) {
  for (size_t i = 0; i < events.all.size(); ++i) {
    const Value& e = events.all[i];
    if (e.GetOr<std::string>("type", "") == type && e.GetOr<std::string>(key, "") == value) return static_cast<int>(i);
  }
  return -1;
}

// Every node and worker event came in pycos's order: discovered first.
void ExpectDiscoveredFirst(const Events& events) {
  for (const Value& e : events.Of("node_initialized")) {
    const std::string node = e.GetOr<std::string>("node", "");
    const int discovered = IndexOf(events, "node_discovered", "node", node);
    EXPECT_GE(discovered, 0) << node;
    EXPECT_LT(discovered, IndexOf(events, "node_initialized", "node", node)) << node;
  }
  for (const Value& e : events.Of("worker_initialized")) {
    const std::string worker = e.GetOr<std::string>("worker", "");
    const int discovered = IndexOf(events, "worker_discovered", "worker", worker);
    EXPECT_GE(discovered, 0) << worker;
    EXPECT_LT(discovered, IndexOf(events, "worker_initialized", "worker", worker)) << worker;
  }
}

Task<> ExpectSquare(compute::Computation& c, std::string where, int n) {
  absl::StatusOr<TaskRef> job = co_await c.RunAt(where, "square", std::to_string(n));
  EXPECT_OK(job.status()) << where;
  if (!job.ok()) co_return;
  absl::StatusOr<Value> r = co_await job->Join(kLong);
  EXPECT_OK(r.status()) << where;
  if (r.ok()) {
    EXPECT_EQ(*r, Value::Bytes(std::to_string(n * n))) << where;
  }
}

PICOS_CORO_TEST(ComputeDiscovery, ClientWithNoNodeListFindsNodesAlsoThoseStartedLater) {
  const std::string d1 = FreshDir("compute-discovery-1"), d2 = FreshDir("compute-discovery-2"),
                    d3 = FreshDir("compute-discovery-3");
  std::vector<NodeProcess> nodes;
  const std::vector<std::string> first_two = {d1, d2};
  for (const std::string& d : first_two) {
    absl::StatusOr<NodeProcess> n = co_await StartNode(1, d, DiscoverFlags());
    CO_ASSERT_OK(n);
    nodes.push_back(*std::move(n));
  }
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  EXPECT_OK(me.status());
  if (me.ok()) {
    discovery::DiscoveryOptions dopt;
    dopt.secret = kSecret;
    dopt.group = Group();
    dopt.iface = "lo";
    dopt.name = "compute-client";
    absl::StatusOr<std::unique_ptr<discovery::Discovery>> disc = co_await discovery::Discovery::Start(**me, dopt);
    EXPECT_OK(disc.status());
    std::shared_ptr<Events> events = StartCollector();
    compute::ComputationOptions o;
    o.library = kLibrary;
    o.status_task = events->task;
    o.discover = me->get();
    absl::StatusOr<std::unique_ptr<compute::Computation>> c = compute::Computation::Create(o);
    EXPECT_OK(c.status());
    if (disc.ok() && c.ok()) {
      std::vector<std::string> no_nodes;
      absl::Status scheduled = co_await (*c)->Schedule(no_nodes);
      EXPECT_OK(scheduled);
      // Submitted before any node is found: it waits for a worker.
      absl::StatusOr<TaskRef> early = co_await (*c)->Run("square", "12");
      EXPECT_OK(early.status());
      const bool two = co_await WaitForEvents(events, "worker_initialized", 2);
      EXPECT_TRUE(two) << "the two nodes were not found";
      if (early.ok()) {
        absl::StatusOr<Value> r = co_await early->Join(kLong);
        EXPECT_OK(r.status());
        if (r.ok()) {
          EXPECT_EQ(*r, Value::Bytes("144"));
        }
      }
      for (const NodeProcess& n : nodes) {
        EXPECT_GE(IndexOf(*events, "node_initialized", "node", n.uri), 0) << n.uri << " not used";
        co_await ExpectSquare(**c, n.uri, 7);
      }
      // A node started after Schedule is found and used too.
      absl::StatusOr<NodeProcess> late = co_await StartNode(1, d3, DiscoverFlags());
      EXPECT_OK(late.status());
      if (late.ok()) {
        const bool three = co_await WaitForEvents(events, "worker_initialized", 3);
        EXPECT_TRUE(three) << "the node started later was not found";
        EXPECT_GE(IndexOf(*events, "node_initialized", "node", late->uri), 0);
        co_await ExpectSquare(**c, late->uri, 9);
        nodes.push_back(*std::move(late));
      }
      EXPECT_EQ((*c)->nodes().size(), nodes.size());
      ExpectDiscoveredFirst(*events);
      absl::Status closed = co_await (*c)->Close();
      EXPECT_OK(closed);
      absl::Status stopped = co_await (*disc)->Stop();
      EXPECT_OK(stopped);
    }
    (void)events->task.Terminate();
    me->reset();
  }
  for (NodeProcess& n : nodes) {
    absl::Status stopped = co_await StopNode(n);
    EXPECT_OK(stopped);
  }
}

}  // namespace
}  // namespace picos::testing
