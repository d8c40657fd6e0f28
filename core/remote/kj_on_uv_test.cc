#include "core/remote/kj_on_uv_internal.h"

#include <capnp/rpc-twoparty.h>
#include <capnp/rpc.h>
#include <sys/socket.h>
#include <uv.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/io/uv_stream_internal.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/remote/kj_on_uv_test.capnp.h"
#include "testing/coro_test.h"

namespace picos::internal {
namespace {

using ::picos::testing::StatusIs;

std::pair<std::unique_ptr<Stream>, std::unique_ptr<Stream>> StreamPair() {
  int fds[2];
  PICOS_ASSERT(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  std::unique_ptr<Stream> ends[2];
  for (int i = 0; i < 2; ++i) {
    UvStreamState* s = NewUvStreamState(ThisScheduler().uv_loop(), UvKind::kPipe, StreamOptions());
    PICOS_ASSERT(uv_pipe_open(reinterpret_cast<uv_pipe_t*>(UvHandle(s)), fds[i]) == 0);
    ends[i] = MakeUvStream(s, "unix");
  }
  return {std::move(ends[0]), std::move(ends[1])};
}

PICOS_CORO_TEST(KjOnUv, TimerWaitsItsWholeDelay) {
  KjOnUv kj(ThisScheduler());
  const absl::Time start = absl::Now();
  absl::StatusOr<int> seven =
      co_await AwaitKj(kj.AfterDelay(absl::Milliseconds(45)).then([] { return 7; }));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(45));
  CO_ASSERT_OK(seven);
  EXPECT_EQ(*seven, 7);
  EXPECT_GT(kj.turns(), 0u);
}

// n, n+1, ... up to `limit`, one kj turn (evalLater) per step.
kj::Promise<int> CountUp(int n, int limit) {
  if (n == limit) return n;
  return kj::evalLater([n, limit] { return CountUp(n + 1, limit); });
}

PICOS_CORO_TEST(KjOnUv, KjAndPicosTasksShareTheThread) {
  KjOnUv kj(ThisScheduler());
  // A long chain of kj turns while a picos task keeps sleeping and waking:
  // neither loop starves the other.
  int picos_wakes = 0;
  TaskRef ticker = ThisScheduler().Spawn([&picos_wakes]() -> Task<> {
    for (int i = 0; i < 5; ++i) {
      absl::Status s = co_await Sleep(absl::Milliseconds(1));
      if (!s.ok()) co_return;
      ++picos_wakes;
    }
  });
  absl::StatusOr<int> n = co_await AwaitKj(CountUp(0, 20000));
  CO_ASSERT_OK(n);
  EXPECT_EQ(*n, 20000);
  EXPECT_GE(kj.turns(), 20000u);
  (void)co_await ticker.Join(absl::Seconds(60));
  EXPECT_EQ(picos_wakes, 5);
}

PICOS_CORO_TEST(KjOnUv, RejectionIsAStatus) {
  KjOnUv kj(ThisScheduler());
  kj::Promise<int> gone = KJ_EXCEPTION(DISCONNECTED, "the peer went away");
  absl::StatusOr<int> r = co_await AwaitKj(kj::mv(gone));
  EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kUnavailable));
  kj::Promise<void> busy = KJ_EXCEPTION(OVERLOADED, "too much");
  absl::Status v = co_await AwaitKjVoid(kj::mv(busy));
  EXPECT_THAT(v, StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST(KjOnUvDeathTest, PromiseWaitAbortsLoudlyInsteadOfReenteringUvRun) {
  EXPECT_DEATH(
      {
        Scheduler s;
        KjOnUv kj(s);
        auto paf = kj::newPromiseAndFulfiller<void>();
        paf.promise.wait(kj.wait_scope());
      },
      "not reentrant");
}

PICOS_CORO_TEST(KjOnUv, StreamCarriesBytesBothWaysAndEnds) {
  KjOnUv kj(ThisScheduler());
  auto ends = StreamPair();
  KjStream a(std::move(ends.first));
  KjStream b(std::move(ends.second));
  absl::Status w = co_await AwaitKjVoid(a.write("hello, kj", 9));
  CO_ASSERT_OK(w);
  char buf[16] = {};
  absl::StatusOr<size_t> n = co_await AwaitKj(b.tryRead(buf, 9, sizeof buf));
  CO_ASSERT_OK(n);
  EXPECT_EQ(std::string(buf, *n), "hello, kj");
  a.shutdownWrite();
  absl::StatusOr<size_t> end = co_await AwaitKj(b.tryRead(buf, 1, sizeof buf));
  CO_ASSERT_OK(end);
  EXPECT_EQ(*end, 0u);
}

class AdderImpl final : public test::Adder::Server {
 protected:
  kj::Promise<void> add(AddContext context) override {
    context.getResults().setSum(context.getParams().getA() + context.getParams().getB());
    return kj::READY_NOW;
  }
};

PICOS_CORO_TEST(KjOnUv, CapnpRpcOverPicosStreams) {
  KjOnUv kj(ThisScheduler());
  auto ends = StreamPair();
  KjStream client_io(std::move(ends.first));
  KjStream server_io(std::move(ends.second));
  {
    capnp::TwoPartyVatNetwork server_net(server_io, capnp::rpc::twoparty::Side::SERVER);
    capnp::TwoPartyVatNetwork client_net(client_io, capnp::rpc::twoparty::Side::CLIENT);
    auto server = capnp::makeRpcServer(server_net, kj::heap<AdderImpl>());
    auto client = capnp::makeRpcClient(client_net);
    capnp::MallocMessageBuilder vat_id_message;
    auto vat_id = vat_id_message.initRoot<capnp::rpc::twoparty::VatId>();
    vat_id.setSide(capnp::rpc::twoparty::Side::SERVER);
    test::Adder::Client adder = client.bootstrap(vat_id).castAs<test::Adder>();
    for (int64_t i = 0; i < 100; ++i) {
      auto req = adder.addRequest();
      req.setA(i);
      req.setB(1000);
      absl::StatusOr<int64_t> sum =
          co_await AwaitKj(req.send().then([](capnp::Response<test::Adder::AddResults>&& r) {
            return r.getSum();
          }));
      CO_ASSERT_OK(sum);
      EXPECT_EQ(*sum, i + 1000);
    }
  }
  // The networks are gone; what they left queued drains before kj goes.
  absl::Status s = co_await Sleep(absl::Milliseconds(5));
  EXPECT_OK(s);
}

}  // namespace
}  // namespace picos::internal
