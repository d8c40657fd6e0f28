// tcp:// passes the transport conformance suite over IPv4 and IPv6 loopback.
#include "transports/tcp/tcp_transport.h"

#include <string>

#include "testing/transport_conformance.h"

namespace picos::testing {
namespace {

INSTANTIATE_TEST_SUITE_P(
    Tcp, TransportConformanceTest,
    ::testing::Values(
        ConformanceParam{"ipv4", transports::RegisterTcpTransport,
                         [] { return std::string("tcp://127.0.0.1:0"); }},
        ConformanceParam{"ipv6", transports::RegisterTcpTransport,
                         [] { return std::string("tcp://[::1]:0"); }},
        ConformanceParam{"name", transports::RegisterTcpTransport,
                         [] { return std::string("tcp://localhost:0"); }}),
    ConformanceName);

}  // namespace
}  // namespace picos::testing
