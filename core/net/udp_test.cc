#include "core/net/udp.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/task.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/coro_test.h"
#include "testing/status_matchers.h"

namespace picos {
namespace {

using ::picos::testing::IsOk;
using ::picos::testing::StatusIs;

// GTEST_SKIP() for coroutine bodies (GTEST_SKIP() uses `return`).
constexpr char kGroup4[] = "239.255.97.5";
constexpr char kGroup6[] = "ff02::7069:636f";  // link-local scope: lo is one link

// Whether this host delivers multicast sent on `lo` back to a member on
// `lo`, tried with plain blocking sockets: "" if it does, else why not.
// Tests skip (with the reason) where it does not, rather than pass silently.
std::string MulticastProbe(bool v6) {
  int family = v6 ? AF_INET6 : AF_INET;
  int rx = socket(family, SOCK_DGRAM, 0);
  int tx = socket(family, SOCK_DGRAM, 0);
  struct Closer {
    int a, b;
    ~Closer() {
      if (a >= 0) close(a);
      if (b >= 0) close(b);
    }
  } closer{rx, tx};
  if (rx < 0 || tx < 0) return absl::StrCat("no ", v6 ? "IPv6" : "IPv4", " UDP sockets");
  timeval tv{0, 500000};
  setsockopt(rx, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_storage ss;
  std::memset(&ss, 0, sizeof(ss));
  socklen_t len;
  unsigned lo = if_nametoindex("lo");
  if (lo == 0) return "no interface named lo";
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_any;
    len = sizeof(*a);
    if (bind(rx, reinterpret_cast<sockaddr*>(&ss), len) != 0) return "cannot bind [::]:0";
    ipv6_mreq m{};
    inet_pton(AF_INET6, kGroup6, &m.ipv6mr_multiaddr);
    m.ipv6mr_interface = lo;
    if (setsockopt(rx, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &m, sizeof(m)) != 0) {
      return absl::StrCat("cannot join ", kGroup6, " on lo: ", strerror(errno));
    }
    setsockopt(tx, IPPROTO_IPV6, IPV6_MULTICAST_IF, &lo, sizeof(lo));
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    len = sizeof(*a);
    if (bind(rx, reinterpret_cast<sockaddr*>(&ss), len) != 0) return "cannot bind 0.0.0.0:0";
    ip_mreq m{};
    inet_pton(AF_INET, kGroup4, &m.imr_multiaddr);
    inet_pton(AF_INET, "127.0.0.1", &m.imr_interface);
    if (setsockopt(rx, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof(m)) != 0) {
      return absl::StrCat("cannot join ", kGroup4, " on lo: ", strerror(errno));
    }
    in_addr ifa;
    inet_pton(AF_INET, "127.0.0.1", &ifa);
    setsockopt(tx, IPPROTO_IP, IP_MULTICAST_IF, &ifa, sizeof(ifa));
  }
  len = sizeof(ss);
  getsockname(rx, reinterpret_cast<sockaddr*>(&ss), &len);
  if (v6) {
    inet_pton(AF_INET6, kGroup6, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr);
    reinterpret_cast<sockaddr_in6*>(&ss)->sin6_scope_id = lo;
  } else {
    inet_pton(AF_INET, kGroup4, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr);
  }
  if (sendto(tx, "probe", 5, 0, reinterpret_cast<sockaddr*>(&ss), len) != 5) {
    return absl::StrCat("cannot send multicast on lo: ", strerror(errno));
  }
  char buf[16];
  if (recv(rx, buf, sizeof(buf), 0) != 5) return "multicast sent on lo does not come back on lo";
  return "";
}

Task<> Echo(UdpSocket* s, int n) {
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<Datagram> d = co_await s->ReceiveFrom(absl::Seconds(10));
    if (!d.ok()) co_return;
    (void)co_await s->SendTo(absl::StrCat("echo:", d->data), d->from);
  }
}

Task<> RoundTrip(const char* host) {
  auto server = UdpSocket::Bind(*IpEndpoint::Parse(host, 0));
  CO_ASSERT_OK(server);
  auto client = UdpSocket::Bind(*IpEndpoint::Parse(host, 0));
  CO_ASSERT_OK(client);
  IpEndpoint server_addr = (*server)->local_address();
  EXPECT_NE(server_addr.port(), 0);
  TaskRef echo = ThisScheduler().Spawn(Echo, server->get(), 3);
  for (int i = 0; i < 3; ++i) {
    CO_ASSERT_OK(co_await (*client)->SendTo(absl::StrCat("ping", i), server_addr));
    absl::StatusOr<Datagram> d = co_await (*client)->ReceiveFrom(absl::Seconds(10));
    CO_ASSERT_OK(d);
    EXPECT_EQ(d->data, absl::StrCat("echo:ping", i));
    EXPECT_EQ(d->from, server_addr);
  }
  EXPECT_THAT(co_await echo.Join(absl::Seconds(10)), IsOk());
}

PICOS_CORO_TEST(Udp, RoundTripIpv4) { co_await RoundTrip("127.0.0.1"); }

PICOS_CORO_TEST(Udp, RoundTripIpv6) {
  auto probe = UdpSocket::Bind(*IpEndpoint::Parse("::1", 0));
  if (!probe.ok()) {
    CO_SKIP("no IPv6 loopback on this host: " << probe.status());
  }
  co_await RoundTrip("::1");
}

// On the simulated clock: an open socket with nothing to read does not hold
// time still, and the timeout is exact.
PICOS_SIM_TEST(Udp, ReceiveTimesOut) {
  auto s = UdpSocket::Bind(*IpEndpoint::Parse("127.0.0.1", 0));
  CO_ASSERT_OK(s);
  const int64_t start = ThisScheduler().NowNs();
  EXPECT_THAT(co_await (*s)->ReceiveFrom(absl::Milliseconds(30)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(ThisScheduler().NowNs() - start, 30'000'000);
}

PICOS_CORO_TEST(Udp, BoundsDatagramsAndTheQueue) {
  auto rx = UdpSocket::Bind(*IpEndpoint::Parse("127.0.0.1", 0),
                            UdpOptions{.max_datagram = 10, .queue_limit = 3});
  CO_ASSERT_OK(rx);
  auto tx = UdpSocket::Bind(*IpEndpoint::Parse("127.0.0.1", 0));
  CO_ASSERT_OK(tx);
  IpEndpoint to = (*rx)->local_address();
  EXPECT_THAT(co_await (*tx)->SendTo(std::string(kMaxDatagramSize + 1, 'x'), to),
              StatusIs(absl::StatusCode::kInvalidArgument));
  CO_ASSERT_OK(co_await (*tx)->SendTo(std::string(20, 'x'), to));  // too big for rx
  for (int i = 0; i < 6; ++i) CO_ASSERT_OK(co_await (*tx)->SendTo(absl::StrCat("d", i), to));
  for (int i = 0; i < 100 && (*rx)->queued() + (*rx)->dropped() < 7; ++i) {
    CO_ASSERT_OK(co_await Sleep(absl::Milliseconds(2)));
  }
  EXPECT_EQ((*rx)->queued(), 3u);
  EXPECT_EQ((*rx)->dropped(), 4u);
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<Datagram> d = co_await (*rx)->ReceiveFrom(absl::Seconds(1));
    EXPECT_EQ(d.ok() ? d->data : "", absl::StrCat("d", i));
  }
  EXPECT_THAT(UdpSocket::Bind(*IpEndpoint::Parse("127.0.0.1", 0), UdpOptions{.max_datagram = 0}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // Empty datagrams are datagrams.
  CO_ASSERT_OK(co_await (*tx)->SendTo("", to));
  absl::StatusOr<Datagram> empty = co_await (*rx)->ReceiveFrom(absl::Seconds(5));
  CO_ASSERT_OK(empty);
  EXPECT_EQ(empty->data, "");
}

Task<> MulticastExchange(bool v6) {
  const std::string group = v6 ? kGroup6 : kGroup4;
  const std::string any = v6 ? "::" : "0.0.0.0";
  // Two members of the group, each also sending to it.
  auto a = UdpSocket::Bind(*IpEndpoint::Parse(any, 0), UdpOptions{.reuse_address = true});
  CO_ASSERT_OK(a);
  IpEndpoint a_addr = (*a)->local_address();
  auto b = UdpSocket::Bind(*IpEndpoint::Parse(any, a_addr.port()), UdpOptions{.reuse_address = true});
  CO_ASSERT_OK(b);
  IpEndpoint to = *IpEndpoint::Parse(v6 ? group + "%lo" : group, a_addr.port());
  for (UdpSocket* s : {a->get(), b->get()}) {
    CO_ASSERT_OK(s->JoinGroup(*IpEndpoint::Parse(group, 0), "lo"));
    CO_ASSERT_OK(s->SetMulticastInterface("lo"));
    CO_ASSERT_OK(s->SetMulticastLoop(true));
    CO_ASSERT_OK(s->SetMulticastTtl(1));
  }
  CO_ASSERT_OK(co_await (*a)->SendTo("hello from a", to));
  // Both members get it (a through multicast loop).
  for (UdpSocket* s : {a->get(), b->get()}) {
    absl::StatusOr<Datagram> d = co_await s->ReceiveFrom(absl::Seconds(5));
    CO_ASSERT_OK(d);
    EXPECT_EQ(d->data, "hello from a");
    EXPECT_EQ(d->from.port(), a_addr.port());
  }
  CO_ASSERT_OK(co_await (*b)->SendTo("hello from b", to));
  absl::StatusOr<Datagram> d = co_await (*a)->ReceiveFrom(absl::Seconds(5));
  CO_ASSERT_OK(d);
  EXPECT_EQ(d->data, "hello from b");
  CO_ASSERT_OK((*a)->LeaveGroup(*IpEndpoint::Parse(group, 0), "lo"));
  EXPECT_THAT((*a)->JoinGroup(*IpEndpoint::Parse(v6 ? "::1" : "127.0.0.1", 0), "lo"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT((*a)->SetMulticastInterface("no-such-iface0"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT((*a)->SetMulticastTtl(256), StatusIs(absl::StatusCode::kInvalidArgument));
}

PICOS_CORO_TEST(Udp, MulticastOnLoopbackIpv4) {
  std::string why = MulticastProbe(false);
  if (!why.empty()) {
    CO_SKIP("IPv4 multicast on lo unavailable: " << why);
  }
  co_await MulticastExchange(false);
}

PICOS_CORO_TEST(Udp, MulticastOnLoopbackIpv6) {
  std::string why = MulticastProbe(true);
  if (!why.empty()) {
    CO_SKIP("IPv6 multicast on lo unavailable: " << why);
  }
  co_await MulticastExchange(true);
}

Task<> ReceiveOnce(UdpSocket* s, std::shared_ptr<absl::Status> out) {
  absl::StatusOr<Datagram> d = co_await s->ReceiveFrom(absl::Seconds(5));
  *out = d.status();
}

PICOS_CORO_TEST(Udp, CloseWakesTheReceiverAndFailsLaterCalls) {
  auto s = UdpSocket::Bind(*IpEndpoint::Parse("127.0.0.1", 0));
  CO_ASSERT_OK(s);
  IpEndpoint self = (*s)->local_address();
  auto result = std::make_shared<absl::Status>(absl::OkStatus());
  TaskRef t = ThisScheduler().Spawn(ReceiveOnce, s->get(), result);
  CO_ASSERT_OK(co_await Sleep(absl::Milliseconds(5)));
  (*s)->Close();
  (*s)->Close();  // idempotent
  EXPECT_TRUE((*s)->closed());
  (void)co_await t.Join(absl::Seconds(5));
  EXPECT_THAT(*result, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(co_await (*s)->SendTo("x", self), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(co_await (*s)->ReceiveFrom(absl::Milliseconds(1)),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT((*s)->SetMulticastTtl(1), StatusIs(absl::StatusCode::kFailedPrecondition));
  // Destroyed after its handle finished closing, and before: neither leaks.
  CO_ASSERT_OK(co_await Sleep(absl::Milliseconds(2)));
  s->reset();
  auto s2 = UdpSocket::Bind(*IpEndpoint::Parse("127.0.0.1", 0));
  CO_ASSERT_OK(s2);
  (*s2)->Close();
  s2->reset();
}

Task<> ReceiveForever(std::shared_ptr<int> port) {
  auto s = UdpSocket::Bind(*IpEndpoint::Parse("127.0.0.1", 0));
  if (!s.ok()) co_return;
  *port = (*s)->local_address().port();
  for (int i = 0; i < 10; ++i) (void)co_await (*s)->ReceiveFrom();
}

PICOS_CORO_TEST(Udp, TerminatedReceiverClosesItsSocket) {
  auto port = std::make_shared<int>(0);
  TaskRef t = ThisScheduler().Spawn(ReceiveForever, port);
  CO_ASSERT_OK(co_await Sleep(absl::Milliseconds(5)));
  CO_ASSERT_TRUE(*port != 0);
  CO_ASSERT_OK(t.Terminate());
  (void)co_await t.Join(absl::Seconds(5));
  EXPECT_EQ(t.state(), TaskState::kDone);
  CO_ASSERT_OK(co_await Sleep(absl::Milliseconds(5)));
  // The port is free again.
  auto again = UdpSocket::Bind(*IpEndpoint::Parse("127.0.0.1", *port));
  EXPECT_THAT(again, IsOk());
}

}  // namespace
}  // namespace picos
