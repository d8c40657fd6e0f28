// The node's start request with its client task (compute/node_daemon.h,
// compute/picos_node.cc): one handle that the node both sends its pulses to
// and joins. A start's pulse_interval_ms is kept within the node's
// --min/--max_pulse_interval (the reply says the interval used; none asked:
// --pulse_interval); the pulses reach that task, naming the node as the
// start's "node" said; once the task ends the node closes that computation
// after its zombie period, and only that one. A real picos-node, raw
// requests from this client.
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "compute/computation.h"
#include "compute/protocol.h"
#include "core/remote/files.h"
#include "core/remote/service.h"
#include "openssl/sha.h"
#include "testing/compute_testutil.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos::testing {
namespace {

using ::testing::HasSubstr;
using namespace compute_test;  // NOLINT: the helpers of this test family

std::string Sha256Hex(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), d);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(d), sizeof d));
}

// Runs one request on the node's service and gives its answer.
Task<absl::StatusOr<Value>> Ask(remote::Service& svc, Value request) {
  PICOS_CO_ASSIGN_OR_RETURN(TaskRef t, co_await svc.Run(std::move(request), kLong));
  co_return co_await t.Join(kLong);
}

// Ships the library for computation `id` and starts it with `client`,
// asking `pulse_ms` (0: ask nothing).
Task<absl::StatusOr<Value>> StartWith(remote::Service& svc, NodeProcess& node, std::string id, TaskRef client,
                                      int64_t pulse_ms) {
  remote::SendFileOptions so;
  so.dir = id;
  so.timeout = kLong;
  PICOS_CO_RETURN_IF_ERROR(co_await remote::SendFile(Location::Peer(node.uri), kLibrary, so));
  Value start = Value::Map({{"op", "start"},
                            {"computation", id},
                            {"library", std::filesystem::path(kLibrary).filename().string()},
                            {"sha256", Sha256Hex(kLibrary)},
                            {"client", client},
                            {"node", absl::StrCat("alias-", id)}});
  if (pulse_ms != 0) start.as_map()["pulse_interval_ms"] = Value(pulse_ms);
  co_return co_await Ask(svc, std::move(start));
}

size_t PulsesOf(const Events& e, const std::string& id) {
  size_t n = 0;
  for (const Value& v : e.all) {
    n += v.GetOr<std::string>("picos.compute", "") == "pulse" && v.GetOr<std::string>("computation", "") == id &&
                 v.GetOr<std::string>("node", "") == absl::StrCat("alias-", id) && v["facts"].is_map()
             ? 1
             : 0;
  }
  return n;
}

Task<absl::Status> Body(NodeProcess& node) {
  PICOS_CO_ASSIGN_OR_RETURN(remote::Service svc, co_await remote::Service::Locate(
                                                      compute::kNodeService, Location::Peer(node.uri), kLong));
  std::shared_ptr<Events> fast = StartCollector();
  std::shared_ptr<Events> slow = StartCollector();
  std::shared_ptr<Events> plain = StartCollector();
  // Asked below the minimum: the minimum; above the maximum: the maximum;
  // nothing asked: --pulse_interval.
  absl::StatusOr<Value> r = co_await StartWith(svc, node, "cfast", fast->task, 10);
  EXPECT_OK(r.status());
  if (r.ok()) { EXPECT_EQ(r->GetOr<int64_t>("pulse_interval_ms", 0), 200); }
  r = co_await StartWith(svc, node, "cslow", slow->task, 100000);
  EXPECT_OK(r.status());
  if (r.ok()) { EXPECT_EQ(r->GetOr<int64_t>("pulse_interval_ms", 0), 600); }
  r = co_await StartWith(svc, node, "cplain", plain->task, 0);
  EXPECT_OK(r.status());
  if (r.ok()) { EXPECT_EQ(r->GetOr<int64_t>("pulse_interval_ms", 0), 400); }
  // A pulse interval out of the request's bounds is refused.
  const std::string zeros(64, '0');
  const std::vector<int64_t> bads = {-1, int64_t{86400} * 1000 + 1};
  for (int64_t bad : bads) {
    // Built before the co_await: g++ 12 cannot keep an initializer list's
    // array in a coroutine frame.
    Value request = Value::Map({{"op", "start"}, {"computation", "cbad"}, {"library", "l.so"},
                                {"sha256", zeros}, {"pulse_interval_ms", bad}});
    absl::StatusOr<Value> refused = co_await Ask(svc, std::move(request));
    EXPECT_THAT(refused.status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(std::string("pulse_interval_ms"))));
  }
  // The client task gets the pulses, naming the node by its alias.
  const bool pulsed =
      co_await WaitUntil([&] { return PulsesOf(*fast, "cfast") >= 3 && PulsesOf(*plain, "cplain") >= 1; });
  EXPECT_TRUE(pulsed);
  // The same task ending starts that computation's zombie period; it alone
  // closes.
  (void)fast->task.Terminate();
  absl::StatusOr<std::string> lost = co_await NodeLine(node, "client lost ");
  EXPECT_OK(lost.status());
  if (lost.ok()) { EXPECT_THAT(*lost, HasSubstr(std::string("client lost cfast"))); }
  absl::StatusOr<std::string> closed = co_await NodeLine(node, "computation closed ");
  EXPECT_OK(closed.status());
  if (closed.ok()) { EXPECT_EQ(*closed, "computation closed cfast zombie"); }
  const std::vector<std::string> others = {"cslow", "cplain"};
  for (const std::string& id : others) {
    Value close = Value::Map({{"op", "close"}, {"computation", id}});
    absl::StatusOr<Value> done = co_await Ask(svc, std::move(close));
    EXPECT_OK(done.status());
  }
  (void)slow->task.Terminate();
  (void)plain->task.Terminate();
  co_return svc.Close();
}

PICOS_CORO_TEST(ComputePulse, ClientTaskGetsPulsesWithinBoundsAndIsJoined) {
  const std::string dest = FreshDir("compute-pulse-dest");
  std::vector<std::string> flags = {"--min_pulse_interval=0.2", "--max_pulse_interval=600ms",
                                    "--pulse_interval=0.4", "--zombie_period=0.5"};
  absl::StatusOr<NodeProcess> node = co_await StartNode(1, dest, std::move(flags));
  CO_ASSERT_OK(node);
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  if (me.ok()) {
    absl::Status body = co_await Body(*node);
    EXPECT_OK(body);
    me->reset();
  }
  EXPECT_OK(me.status());
  absl::Status stopped = co_await StopNode(*node);
  EXPECT_OK(stopped);
}

// ComputationOptions::pulse_interval: what Schedule asks of each node; one
// beyond what a start may ask (24h) or negative is refused at once.
PICOS_CORO_TEST(ComputePulse, ComputationRefusesAPulseIntervalOutOfRange) {
  const std::vector<absl::Duration> bad = {absl::Milliseconds(-1), absl::Hours(25)};
  for (absl::Duration d : bad) {
    compute::ComputationOptions o;
    o.library = kLibrary;
    o.pulse_interval = d;
    absl::StatusOr<std::unique_ptr<compute::Computation>> c = compute::Computation::Create(o);
    EXPECT_THAT(c.status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(std::string("pulse_interval"))));
  }
  compute::ComputationOptions ok;
  ok.library = kLibrary;
  ok.pulse_interval = absl::Milliseconds(300);
  absl::StatusOr<std::unique_ptr<compute::Computation>> c = compute::Computation::Create(ok);
  EXPECT_OK(c.status());
  co_return;
}

}  // namespace
}  // namespace picos::testing
