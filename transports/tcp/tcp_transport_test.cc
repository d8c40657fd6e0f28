// tcp:// passes the transport conformance suite over IPv4 and IPv6 loopback.
#include "transports/tcp/tcp_transport.h"

#include <string>

#include "core/kernel/scheduler.h"
#include "gmock/gmock.h"
#include "testing/coro_test.h"
#include "testing/transport_conformance.h"

namespace picos::transports {
namespace {

using ::picos::testing::ConformanceName;
using ::picos::testing::ConformanceParam;
using ::picos::testing::RunCoroTest;
using ::picos::testing::StatusIs;
using ::picos::testing::TransportConformanceTest;

INSTANTIATE_TEST_SUITE_P(
    Tcp, TransportConformanceTest,
    ::testing::Values(
        ConformanceParam{"ipv4", RegisterTcpTransport,
                         [] { return std::string("tcp://127.0.0.1:0"); }},
        ConformanceParam{"ipv6", RegisterTcpTransport,
                         [] { return std::string("tcp://[::1]:0"); }},
        ConformanceParam{"name", RegisterTcpTransport,
                         [] { return std::string("tcp://localhost:0"); }}),
    ConformanceName);

std::unique_ptr<const TransportRegistry> TcpOnly() {
  TransportRegistry::Builder b;
  RegisterTcpTransport(b);
  return std::move(b).Build();
}

// Issue 9: tcp:// ignored unknown query parameters while tls:// refused them.
TEST(TcpTransport, RefusesUnknownParameters) {
  auto reg = TcpOnly();
  RunCoroTest([&]() -> Task<> {
    absl::StatusOr<std::unique_ptr<Listener>> l = co_await reg->Listen("tcp://127.0.0.1:0?nodelay=0");
    EXPECT_THAT(l, StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("'nodelay'")));
    absl::StatusOr<std::unique_ptr<Stream>> c =
        co_await reg->Connect("tcp://127.0.0.1:1?ca=x.pem", absl::Seconds(1));
    EXPECT_THAT(c, StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("'ca'")));
  });
}

// Issue 9: "[zz::zz]" parsed as an IPv6 address; it is refused before any
// resolution is tried.
TEST(TcpTransport, RefusesBracketedNonAddresses) {
  auto reg = TcpOnly();
  RunCoroTest([&]() -> Task<> {
    absl::StatusOr<std::unique_ptr<Stream>> c =
        co_await reg->Connect("tcp://[zz::zz]:80", absl::Seconds(1));
    EXPECT_THAT(c, StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("IPv6")));
  });
}

}  // namespace
}  // namespace picos::transports
