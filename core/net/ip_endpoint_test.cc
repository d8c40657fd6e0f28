#include "core/net/ip_endpoint.h"

#include <net/if.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"

namespace picos {
namespace {

using ::picos::testing::StatusIs;
using ::testing::HasSubstr;

TEST(IpEndpoint, ParsesLiteralAddresses) {
  ASSERT_OK_AND_ASSIGN(IpEndpoint a, IpEndpoint::Parse("127.0.0.1", 9705));
  EXPECT_FALSE(a.is_v6());
  EXPECT_EQ(a.ToString(), "127.0.0.1:9705");
  ASSERT_OK_AND_ASSIGN(IpEndpoint b, IpEndpoint::ParseHostPort("[::1]:80"));
  EXPECT_TRUE(b.is_v6());
  EXPECT_EQ(b.host(), "::1");
  EXPECT_EQ(b.port(), 80);
  ASSERT_OK_AND_ASSIGN(IpEndpoint c, IpEndpoint::ParseHostPort("239.255.97.5:1"));
  EXPECT_TRUE(c.is_multicast());
  EXPECT_FALSE(a.is_multicast());
  EXPECT_TRUE(IpEndpoint::Parse("ff05::1", 1)->is_multicast());
  // IPv4 written inside IPv6, and the canonical form uv_ip_name gives back.
  ASSERT_OK_AND_ASSIGN(IpEndpoint d, IpEndpoint::Parse("0:0:0:0:0:ffff:7f00:1", 1));
  EXPECT_EQ(d.ToString(), "[::ffff:127.0.0.1]:1");
  for (const char* bad : {"", "localhost:1", "1.2.3:4", "1.2.3.4", "1.2.3.4:65536", "[::1:5",
                          "::1:5", "1.2.3.4:-1", "[::1]:x", "256.1.1.1:3"}) {
    EXPECT_THAT(IpEndpoint::ParseHostPort(bad), StatusIs(absl::StatusCode::kInvalidArgument))
        << bad;
  }
  EXPECT_THAT(IpEndpoint::Parse("127.0.0.1", 70000), StatusIs(absl::StatusCode::kInvalidArgument));
}

// Issue 9: "[zz::zz]" read as an IPv6 address. Only hex groups are IPv6.
TEST(IpEndpoint, RefusesWhatIsNotAnAddress) {
  for (const char* bad :
       {"zz::zz", "::g", "1::2::3", "12345::1", "1.2.3.4.5", "1.2.3", "01.2.3.4x", "1.2.3.256",
        "example.org", "::1%", "fe80::1%no-such-interface-here", " 1.2.3.4", "1.2.3.4 ",
        "[::1]"}) {
    EXPECT_THAT(IpEndpoint::Parse(bad, 1), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not")))
        << bad;
  }
  EXPECT_THAT(IpEndpoint::Parse(std::string("1.2.3.4\0", 8), 1),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(IpEndpoint::Parse(std::string(200, '1'), 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("64 bytes")));
}

TEST(IpEndpoint, ZoneNamesAnInterface) {
  if (if_nametoindex("lo") == 0) GTEST_SKIP() << "no loopback interface named lo";
  ASSERT_OK_AND_ASSIGN(IpEndpoint a, IpEndpoint::Parse("fe80::1%lo", 5));
  EXPECT_TRUE(a.is_v6());
  EXPECT_EQ(a.host(), "fe80::1");
}

TEST(IpEndpoint, WithPortAndFromSockaddrKeepTheAddress) {
  ASSERT_OK_AND_ASSIGN(IpEndpoint a, IpEndpoint::Parse("::1", 0));
  EXPECT_EQ(a.WithPort(9705).ToString(), "[::1]:9705");
  ASSERT_OK_AND_ASSIGN(IpEndpoint b, IpEndpoint::FromSockaddr(a.WithPort(7).sockaddr()));
  EXPECT_EQ(b, a.WithPort(7));
  EXPECT_EQ(IpEndpoint().ToString(), "0.0.0.0:0");
  EXPECT_THAT(IpEndpoint::FromSockaddr(nullptr), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace picos
