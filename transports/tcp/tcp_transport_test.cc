// tcp:// passes the transport conformance suite over IPv4 and IPv6 loopback.
#include "transports/tcp/tcp_transport.h"

#include <string>

#include "testing/transport_conformance.h"

namespace picos::transports {
namespace {

using ::picos::testing::ConformanceName;
using ::picos::testing::ConformanceParam;
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

}  // namespace
}  // namespace picos::transports
