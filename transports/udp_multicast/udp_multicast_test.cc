#include "transports/udp_multicast/udp_multicast.h"

#include <memory>
#include <string>

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/kernel/task.h"
#include "core/net/transport.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"
#include "transports/default_transports.h"

namespace picos::transports {
namespace {

using ::picos::testing::IsOk;
using ::picos::testing::StatusIs;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// How long the first datagram of an exchange may take before the test
// decides the host does not loop multicast back and skips: generous, so that
// a loaded machine does not skip a host that can.
constexpr absl::Duration kLoopProbe = absl::Seconds(10);
// Every other wait the tests do not measure: only a hang reaches it.
constexpr absl::Duration kPatience = absl::Minutes(1);

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
  // Port 0: any free port, as tcp:// and UdpSocket take it (issue 8).
  ASSERT_OK_AND_ASSIGN(McastEndpoint d, ParseMcastUri("mcast://239.255.97.5:0?iface=lo"));
  EXPECT_EQ(d.group.port(), 0);
  for (const char* bad : {
           "tcp://239.255.97.5:1", "mcast://127.0.0.1:9705", "mcast://[zz::ff]:1",
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
  absl::StatusOr<Datagram> d = co_await (*b)->ReceiveFrom(kLoopProbe);
  if (!d.ok() && d.status().code() == absl::StatusCode::kDeadlineExceeded) {
    CO_SKIP("this host does not loop IPv4 multicast on lo");
  }
  CO_ASSERT_OK(d);
  EXPECT_EQ(d->data, "announce a");
  // The sender hears itself too (loop on).
  absl::StatusOr<Datagram> self = co_await (*a)->ReceiveFrom(kPatience);
  EXPECT_EQ(self.ok() ? self->data : "", "announce a");
  CO_ASSERT_OK(co_await (*b)->SendTo("announce b", ep->group));
  d = co_await (*a)->ReceiveFrom(kPatience);
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
  absl::StatusOr<Datagram> d = co_await (*b)->ReceiveFrom(kPatience);
  CO_ASSERT_OK(d);
  EXPECT_EQ(d->data, "six");
}

PICOS_CORO_TEST(UdpMulticast, UnknownInterfaceIsNotFound) {
  auto ep = ParseMcastUri("mcast://239.255.97.7:39706?iface=nosuchif0");
  CO_ASSERT_OK(ep);
  EXPECT_THAT(OpenMulticast(*ep), StatusIs(absl::StatusCode::kNotFound));
  co_return;
}


// --- The mcast:// DatagramTransport, through DefaultTransports() ---

// A free UDP port of this test's own, so that parallel runs (other test
// binaries, other checkouts on this host) do not hear each other's groups.
absl::StatusOr<int> FreePort() {
  PICOS_ASSIGN_OR_RETURN(IpEndpoint any, IpEndpoint::Parse("127.0.0.1", 0));
  PICOS_ASSIGN_OR_RETURN(std::unique_ptr<UdpSocket> probe, UdpSocket::Bind(any));
  return probe->local_address().port();
}

// The next datagram whose payload is `want`, skipping a bounded number of
// others (the socket's own sends come back too, loop being on).
Task<absl::StatusOr<Datagram>> ReceiveMatching(DatagramSocket& s, std::string want,
                                               absl::Duration timeout) {
  for (int i = 0; i < 16; ++i) {
    absl::StatusOr<Datagram> m = co_await s.ReceiveFrom(timeout);
    if (!m.ok() || m->data == want) co_return m;
  }
  co_return absl::NotFoundError(absl::StrCat("no datagram '", want, "' among 16"));
}

TEST(McastTransport, IsRegisteredByDefault) {
  const TransportRegistry& r = DefaultTransports();
  EXPECT_THAT(r.datagram_schemes(), Contains("mcast"));
  EXPECT_OK(r.DatagramFor("MCAST"));
  EXPECT_THAT(r.StreamFor("mcast"), StatusIs(absl::StatusCode::kInvalidArgument));
}

Task<> ExchangeThroughRegistry(std::string group, std::string iface) {
  absl::StatusOr<int> port = FreePort();
  CO_ASSERT_OK(port);
  const std::string uri = absl::StrCat("mcast://", group, ":", *port, "?iface=", iface, "&ttl=1");
  const TransportRegistry& r = DefaultTransports();
  absl::StatusOr<std::unique_ptr<DatagramSocket>> a = co_await r.Bind(uri);
  if (!a.ok()) CO_SKIP("cannot open IPv4 multicast on " << iface << ": " << a.status());
  absl::StatusOr<std::unique_ptr<DatagramSocket>> b = co_await r.Bind(uri);
  CO_ASSERT_OK(b);
  EXPECT_THAT((*a)->address(), StartsWith(absl::StrCat("mcast://", group, ":", *port)));

  // Send: to the group.
  CO_ASSERT_OK(co_await (*a)->Send("from a"));
  absl::StatusOr<Datagram> m = co_await ReceiveMatching(**b, "from a", kLoopProbe);
  if (!m.ok() && m.status().code() == absl::StatusCode::kDeadlineExceeded) {
    CO_SKIP("this host does not loop IPv4 multicast on " << iface << " (docs/pitfalls.md)");
  }
  CO_ASSERT_OK(m);
  EXPECT_EQ(m->from.ToString(), absl::StrCat("127.0.0.1:", *port));
  // The sender hears itself (loop on by default).
  m = co_await ReceiveMatching(**a, "from a", kPatience);
  CO_ASSERT_OK(m);

  // An explicit `to`: another socket's local_address() works as is.
  CO_ASSERT_OK(co_await (*b)->SendTo("from b", (*a)->local_address(), kPatience));
  m = co_await ReceiveMatching(**a, "from b", kPatience);
  CO_ASSERT_OK(m);
  EXPECT_EQ(m->data, "from b");
  m = co_await ReceiveMatching(**b, "from b", kPatience);  // b's own copy
  CO_ASSERT_OK(m);

  // Nothing more: ReceiveFrom times out.
  absl::Time start = absl::Now();
  EXPECT_THAT(co_await (*a)->ReceiveFrom(absl::Milliseconds(30)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(25));
}

PICOS_CORO_TEST(McastTransport, TwoSocketsExchangeByInterfaceAddress) {
  co_await ExchangeThroughRegistry("239.255.97.8", "127.0.0.1");
}

PICOS_CORO_TEST(McastTransport, TwoSocketsExchangeByInterfaceName) {
  co_await ExchangeThroughRegistry("239.255.97.9", "lo");
}

PICOS_CORO_TEST(McastTransport, MalformedUrisAreInvalidArguments) {
  const TransportRegistry& r = DefaultTransports();
  for (const char* bad : {
           "mcast://239.255.97.10:39707?color=red",     // unknown parameter
           "mcast://239.255.97.10:39707?ttl=256",       // ttl out of range
           "mcast://239.255.97.10:39707?ttl=-1",
           "mcast://239.255.97.10:39707?ttl=1&ttl=1",   // repeated
           "mcast://239.255.97.10:39707?loop=yes",
           "mcast://239.255.97.10:39707?iface=",
           "mcast://239.255.97.10:39707?iface=a%2Fb",   // decoded, then refused
           "mcast://127.0.0.1:39707?iface=lo",          // not a multicast group
           "mcast://239.255.97.10?iface=lo",            // missing port
           "mcast://239.255.97.10:65536",
           "mcast://example.org:39707",                 // not a literal group
           "mcast://239.255.97.10:39707/path",
           "mcast://[ff05::1:39707",
       }) {
    absl::StatusOr<std::unique_ptr<DatagramSocket>> s = co_await r.Bind(bad);
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
  std::string many = "mcast://239.255.97.10:39707?";
  for (int i = 0; i < 9; ++i) absl::StrAppend(&many, i ? "&" : "", "ttl=1");
  absl::StatusOr<std::unique_ptr<DatagramSocket>> s = co_await r.Bind(many);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("too many")));
  s = co_await r.Bind(std::string(3000, 'm'));
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument));
  s = co_await r.Bind("mcast://239.255.97.10:39707?iface=nosuchif0");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kNotFound));
}

PICOS_CORO_TEST(McastTransport, BadDestinationsGroupsAndClose) {
  absl::StatusOr<int> port = FreePort();
  CO_ASSERT_OK(port);
  absl::StatusOr<std::unique_ptr<DatagramSocket>> s = co_await DefaultTransports().Bind(
      absl::StrCat("mcast://239.255.97.10:", *port, "?iface=127.0.0.1"));
  if (!s.ok()) CO_SKIP("cannot open IPv4 multicast on lo: " << s.status());
  DatagramSocket& sock = **s;
  for (const char* bad : {"127.0.0.1:0", "[::1]:9", "[ff05::1]:9"}) {
    absl::Status st = co_await sock.SendTo("x", *IpEndpoint::ParseHostPort(bad));
    EXPECT_THAT(st, StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
  absl::Status big = co_await sock.Send(std::string(kMaxDatagramSize + 1, 'x'));
  EXPECT_THAT(big, StatusIs(absl::StatusCode::kInvalidArgument));

  // Groups by address; the socket's own interface when none is named.
  IpEndpoint other = *IpEndpoint::Parse("239.255.97.11", 0);
  EXPECT_OK(sock.JoinGroup(other));
  EXPECT_OK(sock.LeaveGroup(other));
  EXPECT_OK(sock.JoinGroup(other, "127.0.0.1"));
  EXPECT_OK(sock.LeaveGroup(other, "lo"));
  EXPECT_THAT(sock.JoinGroup(*IpEndpoint::Parse("127.0.0.1", 0)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(sock.JoinGroup(other, "a/b"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(sock.JoinGroup(other, "nosuchif0"), StatusIs(absl::StatusCode::kNotFound));

  // Close wakes a waiting receiver; later calls are kFailedPrecondition.
  auto woke = std::make_shared<absl::Status>(absl::OkStatus());
  auto receive = [](DatagramSocket* s, std::shared_ptr<absl::Status> out) -> Task<> {
    absl::StatusOr<Datagram> m = co_await s->ReceiveFrom(kPatience);
    *out = m.status();
  };
  TaskRef t = ThisScheduler().Spawn(receive, &sock, woke);
  CO_ASSERT_OK(co_await Sleep(absl::Milliseconds(5)));
  sock.Close();
  sock.Close();
  (void)co_await t.Join(kPatience);
  EXPECT_THAT(*woke, StatusIs(absl::StatusCode::kFailedPrecondition));
  absl::Status after = co_await sock.Send("late");
  EXPECT_THAT(after, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(sock.JoinGroup(other), StatusIs(absl::StatusCode::kFailedPrecondition));
}

// Issue 8: mcast:// refused port 0 where tcp:// and UdpSocket take it. The
// socket binds a free port, reports it, and sends to the group on it.
PICOS_CORO_TEST(McastTransport, PortZeroBindsAFreePort) {
  const TransportRegistry& r = DefaultTransports();
  absl::StatusOr<std::unique_ptr<DatagramSocket>> a =
      co_await r.Bind("mcast://239.255.97.12:0?iface=127.0.0.1");
  if (!a.ok() && a.status().code() != absl::StatusCode::kInvalidArgument) {
    CO_SKIP("cannot open IPv4 multicast on lo: " << a.status());
  }
  CO_ASSERT_OK(a);
  const int port = (*a)->local_address().port();
  EXPECT_GT(port, 0);
  EXPECT_THAT((*a)->address(), StartsWith(absl::StrCat("mcast://239.255.97.12:", port, "?")));
  // Another member on the reported address hears what the first sends.
  absl::StatusOr<std::unique_ptr<DatagramSocket>> b = co_await r.Bind((*a)->address());
  CO_ASSERT_OK(b);
  EXPECT_EQ((*b)->local_address().port(), port);
  CO_ASSERT_OK(co_await (*a)->Send("to a free port"));
  absl::StatusOr<Datagram> m = co_await ReceiveMatching(**b, "to a free port", kLoopProbe);
  if (!m.ok() && m.status().code() == absl::StatusCode::kDeadlineExceeded) {
    CO_SKIP("this host does not loop IPv4 multicast on lo (pitfalls.md)");
  }
  CO_ASSERT_OK(m);
  EXPECT_EQ(m->from.port(), port);
}

}  // namespace
}  // namespace picos::transports
