#include "transports/udp_multicast/udp_multicast.h"

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "core/scheduler.h"
#include "core/task.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos {
namespace {

using ::picos::testing::IsOk;
using ::picos::testing::StatusIs;

TEST(McastUri, ParsesAndValidates) {
  ASSERT_OK_AND_ASSIGN(McastEndpoint a, ParseMcastUri("mcast://239.255.97.5:9705?iface=lo&ttl=3"));
  EXPECT_EQ(a.group.ToString(), "239.255.97.5:9705");
  EXPECT_EQ(a.iface, "lo");
  EXPECT_EQ(a.ttl, 3);
  EXPECT_TRUE(a.loop);
  ASSERT_OK_AND_ASSIGN(McastEndpoint b, ParseMcastUri("mcast://[ff05::1]:80?loop=0"));
  EXPECT_TRUE(b.group.is_v6());
  EXPECT_EQ(b.ttl, 1);
  EXPECT_FALSE(b.loop);
  ASSERT_OK_AND_ASSIGN(McastEndpoint c, ParseMcastUri(a.ToUri()));
  EXPECT_EQ(c.ToUri(), a.ToUri());
  for (const char* bad : {
           "tcp://239.255.97.5:1", "mcast://127.0.0.1:9705", "mcast://239.255.97.5:0",
           "mcast://239.255.97.5", "mcast://239.255.97.5:1?ttl=256", "mcast://239.255.97.5:1?ttl=-1",
           "mcast://239.255.97.5:1?ttl=1&ttl=2", "mcast://239.255.97.5:1?iface=",
           "mcast://239.255.97.5:1?iface=a/b", "mcast://239.255.97.5:1?color=red",
           "mcast://239.255.97.5:1?ttl", "mcast://239.255.97.5:1/path", "mcast://u@239.255.97.5:1",
           "mcast://[ff05::1:80", "mcast://239.255.97.5:1?loop=yes", "mcast://example.org:1"}) {
    EXPECT_THAT(ParseMcastUri(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
  EXPECT_THAT(ParseMcastUri(std::string(600, 'x')), StatusIs(absl::StatusCode::kInvalidArgument));
}

PICOS_CORO_TEST(UdpMulticast, TwoSocketsExchangeOnLoopback) {
  // A port of this test's own, so that parallel runs do not hear each other.
  auto probe = UdpSocket::Bind(*IpEndpoint::Parse("127.0.0.1", 0));
  CO_ASSERT_OK(probe);
  int port = (*probe)->local_address().port();
  probe->reset();
  auto ep = ParseMcastUri("mcast://239.255.97.6:" + std::to_string(port) + "?iface=lo&ttl=1");
  CO_ASSERT_OK(ep);
  auto a = OpenMulticast(*ep);
  if (!a.ok()) CO_SKIP("cannot open IPv4 multicast on lo: " << a.status());
  auto b = OpenMulticast(*ep);
  CO_ASSERT_OK(b);
  CO_ASSERT_OK(co_await (*a)->SendTo("announce a", ep->group));
  absl::StatusOr<Datagram> d = co_await (*b)->ReceiveFrom(absl::Seconds(2));
  if (!d.ok() && d.status().code() == absl::StatusCode::kDeadlineExceeded) {
    CO_SKIP("this host does not loop IPv4 multicast on lo");
  }
  CO_ASSERT_OK(d);
  EXPECT_EQ(d->data, "announce a");
  // The sender hears itself too (loop on).
  absl::StatusOr<Datagram> self = co_await (*a)->ReceiveFrom(absl::Seconds(2));
  EXPECT_EQ(self.ok() ? self->data : "", "announce a");
  CO_ASSERT_OK(co_await (*b)->SendTo("announce b", ep->group));
  d = co_await (*a)->ReceiveFrom(absl::Seconds(2));
  EXPECT_EQ(d.ok() ? d->data : "", "announce b");
}

PICOS_CORO_TEST(UdpMulticast, Ipv6OnLoopbackOrSkip) {
  auto ep = ParseMcastUri("mcast://[ff02::7069:636f]:39705?iface=lo&ttl=1");
  CO_ASSERT_OK(ep);
  auto a = OpenMulticast(*ep);
  if (!a.ok()) CO_SKIP("cannot open IPv6 multicast on lo: " << a.status());
  auto b = OpenMulticast(*ep);
  CO_ASSERT_OK(b);
  IpEndpoint to = *IpEndpoint::Parse("ff02::7069:636f%lo", ep->group.port());
  absl::Status sent = co_await (*a)->SendTo("six", to);
  if (!sent.ok()) CO_SKIP("this host cannot send IPv6 multicast on lo: " << sent);
  absl::StatusOr<Datagram> d = co_await (*b)->ReceiveFrom(absl::Seconds(2));
  CO_ASSERT_OK(d);
  EXPECT_EQ(d->data, "six");
}

PICOS_CORO_TEST(UdpMulticast, UnknownInterfaceIsNotFound) {
  auto ep = ParseMcastUri("mcast://239.255.97.7:39706?iface=nosuchif0");
  CO_ASSERT_OK(ep);
  EXPECT_THAT(OpenMulticast(*ep), StatusIs(absl::StatusCode::kNotFound));
  co_return;
}

}  // namespace
}  // namespace picos
