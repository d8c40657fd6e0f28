#include "core/net/uri.h"

#include <gtest/gtest.h>

#include "gmock/gmock.h"

#include "testing/status_matchers.h"

namespace picos {
namespace {

using ::picos::testing::IsOk;
using ::picos::testing::StatusIs;
using ::testing::HasSubstr;

TEST(UriTest, ParsesHostForms) {
  ASSERT_OK_AND_ASSIGN(Uri a, ParseUri("tcp://127.0.0.1:9705"));
  EXPECT_EQ(a.scheme, "tcp");
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 9705);
  ASSERT_OK_AND_ASSIGN(Uri b, ParseUri("TLS://[::1]:0/"));
  EXPECT_EQ(b.scheme, "tls");
  EXPECT_EQ(b.host, "::1");
  EXPECT_EQ(b.port, 0);
  EXPECT_EQ(b.ToString(), "tls://[::1]:0");
  ASSERT_OK_AND_ASSIGN(Uri c, ParseUri("mcast://239.1.2.3:9706?iface=lo&ttl=1"));
  EXPECT_EQ(c.Param("iface"), "lo");
  EXPECT_EQ(c.Param("ttl"), "1");
  EXPECT_EQ(c.Param("nope"), std::nullopt);
  EXPECT_EQ(ParseUri(c.ToString()).value(), c);
  ASSERT_OK_AND_ASSIGN(Uri d, ParseUri("tcp://example.org:80"));
  EXPECT_EQ(d.host, "example.org");
}

TEST(UriTest, ParsesUnixForms) {
  ASSERT_OK_AND_ASSIGN(Uri a, ParseUri("unix:///tmp/picos.sock"));
  EXPECT_EQ(a.path, "/tmp/picos.sock");
  EXPECT_FALSE(a.abstract_socket);
  EXPECT_EQ(a.port, -1);
  EXPECT_EQ(a.ToString(), "unix:///tmp/picos.sock");
  ASSERT_OK_AND_ASSIGN(Uri b, ParseUri("unix://@picos-test"));
  EXPECT_TRUE(b.abstract_socket);
  EXPECT_EQ(b.path, "picos-test");
  EXPECT_EQ(b.ToString(), "unix://@picos-test");
}

TEST(UriTest, RejectsMalformed) {
  for (const char* bad :
       {"", "tcp", "tcp:/x:1", "://x:1", "1tcp://x:1", "tcp://:1", "tcp://x", "tcp://x:",
        "tcp://x:65536", "tcp://x:-1", "tcp://x:1a", "tcp://::1:80", "tcp://[::1:80",
        "tcp://[::1]80", "tcp://[]:80", "tcp://user@x:1", "tcp://x:1/path", "tcp://x:1#frag",
        "tcp://x y:1", "tcp://x\n:1", "unix://", "unix://relative", "unix:///", "unix://@",
        "mcast://g:1?=v", "mcast://g:1?a=%zz", "mcast://g:1?a=%4", "mcast://g:1?&",
        "tcp://x:123456"}) {
    EXPECT_THAT(ParseUri(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
  EXPECT_THAT(ParseUri(std::string(5000, 'a')), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseUri(std::string("tcp://a\0b:1", 11)),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// Issue 9: "[zz::zz]" parsed as an IPv6 address. A bracketed host, and a
// host of digits and dots, go through IpEndpoint::Parse like every literal.
TEST(UriTest, LiteralHostsAreRealAddresses) {
  for (const char* bad : {"tcp://[zz::zz]:80", "tls://[::g]:1", "tcp://[1::2::3]:1",
                          "tcp://[fe80::1%no-such-interface-here]:1", "tcp://1.2.3.256:80",
                          "tcp://1.2.3:80", "mcast://239.1.1.1.1:1"}) {
    EXPECT_THAT(ParseUri(bad), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not an IP")))
        << bad;
  }
  for (const char* good : {"tcp://[::ffff:1.2.3.4]:80", "tcp://[::]:0", "tcp://1.2.3.4:1",
                           "tcp://a1.example:1", "tcp://1.2.3.4.example:1"}) {
    EXPECT_OK(ParseUri(good)) << good;
  }
}

}  // namespace
}  // namespace picos
