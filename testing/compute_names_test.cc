// Jobs that find each other by name (compute/export.h's Register, Locate,
// SendTo, ReceiveFrom), end to end with two real picos-node processes on
// loopback, one worker each: a job on each node registers a name, one
// locates the other and sends it 1,000 messages that arrive in order,
// attributed to the sender, worker to worker (the client's connections
// carry almost nothing meanwhile); an unknown name, a taken name, a second
// name and a bad name are each a clear error; a name is freed when its job
// ends and taken by another job, which a sender that still knew the old
// holder reaches all the same; a job of another computation cannot see the
// names.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "compute/computation.h"
#include "core/remote/node.h"
#include "testing/compute_testutil.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos::testing {
namespace {

using namespace compute_test;  // NOLINT: the helpers of this test family

constexpr char kNamesLibrary[] = "testing/libcompute_names_lib.so";

// The "data" of the next message a job sent to this task.
Task<absl::StatusOr<std::string>> NextData() {
  absl::StatusOr<Value> m = co_await Receive(kLong);
  if (!m.ok()) co_return m.status();
  absl::StatusOr<std::string> data = m->Get<std::string>("data");
  if (!data.ok()) co_return absl::InternalError(absl::StrCat("not a job's message: ", m->DebugString()));
  co_return *data;
}

// Sends `command` to the job and gives its answer (one job asked at a time).
Task<std::string> Ask(TaskRef job, std::string command) {
  absl::Status sent = job.Send(Value(command));
  EXPECT_OK(sent);
  absl::StatusOr<std::string> answer = co_await NextData();
  EXPECT_OK(answer.status()) << command;
  co_return answer.ok() ? *answer : std::string("(none)");
}

// A "named" job at `where`, answering this task; an I/O job (any number
// per worker) unless `cpu`.
Task<TaskRef> Start(compute::Computation& c, std::string where, bool cpu) {
  compute::RunOptions ro;
  ro.where = std::move(where);
  ro.async = !cpu;
  ro.reply_to = Self();
  absl::StatusOr<TaskRef> job = co_await c.Run("named", "", ro);
  EXPECT_OK(job.status());
  co_return job.ok() ? *job : TaskRef();
}

Task<> End(TaskRef job) {
  absl::Status sent = job.Send(Value("end"));
  EXPECT_OK(sent);
  absl::StatusOr<Value> r = co_await job.Join(kLong);
  EXPECT_OK(r.status());
  if (r.ok()) {
    EXPECT_EQ(*r, Value::Bytes("ended"));
  }
}

// Messages the client's node took from its peers (the workers and nodes).
uint64_t ClientMessagesReceived(const remote::Node& me) {
  uint64_t n = 0;
  for (const remote::PeerStats& p : me.peer_stats()) n += p.messages_received;
  return n;
}

Task<absl::Status> NamesAcrossNodes(remote::Node& me, compute::Computation& c, std::string node1, std::string node2) {
  TaskRef alice = co_await Start(c, node1, true);
  TaskRef bob = co_await Start(c, node2, true);
  EXPECT_EQ(co_await Ask(alice, "register alice"), "register 0 ");
  EXPECT_EQ(co_await Ask(bob, "register bob"), "register 0 ");

  // One name per job, unique in the computation, checked.
  std::string again = co_await Ask(alice, "register alias");
  EXPECT_TRUE(absl::StartsWith(again, "register 9 ")) << again;
  EXPECT_TRUE(absl::StrContains(again, "named \"alice\" already")) << again;
  TaskRef carol = co_await Start(c, node1, false);
  std::string taken = co_await Ask(carol, "register alice");
  EXPECT_TRUE(absl::StartsWith(taken, "register 6 ")) << taken;
  EXPECT_TRUE(absl::StrContains(taken, "\"alice\" is taken")) << taken;
  std::string bad = co_await Ask(carol, absl::StrCat("register ", std::string(300, 'x')));
  EXPECT_TRUE(absl::StartsWith(bad, "register 3 ")) << bad;
  EXPECT_TRUE(absl::StrContains(bad, "1 to 256 bytes")) << bad;

  // Unknown names.
  EXPECT_EQ(co_await Ask(alice, "locate bob"), "locate 0 ");
  std::string unknown = co_await Ask(alice, "locate nobody");
  EXPECT_EQ(unknown, "locate 5 no job named \"nobody\" in this computation");
  std::string unsent = co_await Ask(alice, "sendto nobody 1");
  EXPECT_EQ(unsent, "sendto 5 0 no job named \"nobody\" in this computation");

  // 1,000 in order, alice (node 1) to bob (node 2), worker to worker: the
  // client's connections carry the two answers and little else (relayed,
  // they would carry 1,000 more).
  const uint64_t before = ClientMessagesReceived(me);
  PICOS_CO_RETURN_IF_ERROR(bob.Send(Value("recv 1000")));
  PICOS_CO_RETURN_IF_ERROR(alice.Send(Value("sendto bob 1000")));
  std::vector<std::string> answers;
  for (int i = 0; i < 2; ++i) {
    PICOS_CO_ASSIGN_OR_RETURN(std::string a, co_await NextData());
    answers.push_back(a);
  }
  std::sort(answers.begin(), answers.end());
  EXPECT_EQ(answers[0], "recv 1000 alice ok");
  EXPECT_EQ(answers[1], "sendto 0 1000 ");
  const uint64_t relayed = ClientMessagesReceived(me) - before;
  EXPECT_LT(relayed, 200u) << "the client received " << relayed << " messages while 1,000 went between the jobs";

  // bob knows alice's inbox now; alice ends and her name is freed...
  EXPECT_EQ(co_await Ask(bob, "locate alice"), "locate 0 ");
  co_await End(alice);
  std::string gone = co_await Ask(bob, "locate alice");
  EXPECT_EQ(gone, "locate 5 no job named \"alice\" in this computation");
  // ... for carol to take: bob's next message to "alice" reaches her.
  EXPECT_EQ(co_await Ask(carol, "register alice"), "register 0 ");
  EXPECT_EQ(co_await Ask(bob, "sendto alice 3"), "sendto 0 3 ");
  EXPECT_EQ(co_await Ask(carol, "recv 3"), "recv 3 bob ok");

  co_await End(bob);
  co_await End(carol);
  co_return absl::OkStatus();
}

PICOS_CORO_TEST(ComputeNames, JobsOnTwoNodesFindAndMessageEachOtherByName) {
  const std::string dest1 = FreshDir("compute-names-1"), dest2 = FreshDir("compute-names-2");
  absl::StatusOr<NodeProcess> n1 = co_await StartNode(1, dest1);
  CO_ASSERT_OK(n1);
  absl::StatusOr<NodeProcess> n2 = co_await StartNode(1, dest2);
  EXPECT_OK(n2.status());
  absl::StatusOr<std::unique_ptr<remote::Node>> me = co_await ClientNode();
  EXPECT_OK(me.status());
  if (n2.ok() && me.ok()) {
    compute::ComputationOptions o;
    o.library = kNamesLibrary;
    absl::StatusOr<std::unique_ptr<compute::Computation>> c = compute::Computation::Create(o);
    absl::StatusOr<std::unique_ptr<compute::Computation>> other = compute::Computation::Create(o);
    EXPECT_OK(c.status());
    EXPECT_OK(other.status());
    if (c.ok() && other.ok()) {
      std::vector<std::string> nodes = {n1->uri, n2->uri};
      absl::Status scheduled = co_await (*c)->Schedule(nodes);
      EXPECT_OK(scheduled);
      EXPECT_EQ((*c)->workers().size(), 2u);
      if (scheduled.ok()) {
        absl::Status ran = co_await NamesAcrossNodes(**me, **c, n1->uri, n2->uri);
        EXPECT_OK(ran);
      }
      // Names are per computation: a job of another one does not see a name
      // this one's job holds.
      TaskRef holder = co_await Start(**c, n1->uri, false);
      EXPECT_EQ(co_await Ask(holder, "register dave"), "register 0 ");
      std::vector<std::string> one = {n2->uri};
      absl::Status other_scheduled = co_await (*other)->Schedule(one);
      EXPECT_OK(other_scheduled);
      if (other_scheduled.ok()) {
        TaskRef stranger = co_await Start(**other, n2->uri, true);
        std::string unseen = co_await Ask(stranger, "locate dave");
        EXPECT_EQ(unseen, "locate 5 no job named \"dave\" in this computation");
        EXPECT_EQ(co_await Ask(stranger, "register dave"), "register 0 ");
        co_await End(stranger);
      }
      co_await End(holder);
      absl::Status closed = co_await (*other)->Close({.terminate = true});
      EXPECT_OK(closed);
      closed = co_await (*c)->Close({.terminate = true});
      EXPECT_OK(closed);
    }
    me->reset();
  }
  if (n2.ok()) {
    absl::Status stopped = co_await StopNode(*n2);
    EXPECT_OK(stopped);
  }
  absl::Status stopped = co_await StopNode(*n1);
  EXPECT_OK(stopped);
}

}  // namespace
}  // namespace picos::testing
