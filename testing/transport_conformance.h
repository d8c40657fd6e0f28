// The conformance suite every stream transport plugin passes: echo of
// small and large (64 MB) data, half-close, refused and reset connections
// reported as kUnavailable (also a reset that follows data), connect and
// read timeouts, 1,000 concurrent
// connections, backpressure (a slow reader keeps the writer's queue
// bounded, measured in queued bytes), tasks killed mid-read and
// mid-write (no crash, no leak under ASan), and idle connections that hold
// no buffers (heap per connection within a bound).
//
// A plugin's test instantiates it with how to register the plugin and how
// to make a fresh listening address:
//
//   INSTANTIATE_TEST_SUITE_P(
//       Tcp, picos::testing::TransportConformanceTest,
//       ::testing::Values(picos::testing::ConformanceParam{
//           "tcp4", picos::transports::RegisterTcpTransport,
//           [] { return std::string("tcp://127.0.0.1:0"); }}),
//       picos::testing::ConformanceName);
#ifndef PICOS_TESTING_TRANSPORT_CONFORMANCE_H_
#define PICOS_TESTING_TRANSPORT_CONFORMANCE_H_

#include <gtest/gtest.h>

#include <cstddef>
#include <functional>
#include <string>

#include "core/net/transport.h"

namespace picos::testing {

struct ConformanceParam {
  // Test-name suffix: letters, digits, underscores.
  std::string name;
  // Adds the plugin under test to a registry.
  std::function<void(TransportRegistry::Builder&)> register_transport;
  // A fresh address to listen on (port 0, a new path or abstract name).
  std::function<std::string()> listen_uri;
  // Whether the peer of a Stream::Abort() reads a broken connection
  // (kUnavailable: a TCP reset, a TLS stream cut without close_notify) or,
  // where the transport has no reset (a Unix socket), an orderly end.
  bool abort_is_reset = true;
  // The most heap an idle connection (both ends, each with a task waiting
  // to read) may hold.
  size_t max_idle_connection_bytes = 16 * 1024;
};

class TransportConformanceTest : public ::testing::TestWithParam<ConformanceParam> {};

inline std::string ConformanceName(const ::testing::TestParamInfo<ConformanceParam>& info) {
  return info.param.name;
}

// A short, unique Unix socket path under /tmp (Bazel's TEST_TMPDIR is too
// long for sockaddr_un) or, with `abstract`, a unique abstract name.
std::string UniqueUnixUri(bool abstract);

}  // namespace picos::testing

#endif  // PICOS_TESTING_TRANSPORT_CONFORMANCE_H_
