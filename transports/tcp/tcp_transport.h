// The tcp:// stream transport: libuv TCP over IPv4 and IPv6.
//
//   tcp://127.0.0.1:9705   tcp://[::1]:0   tcp://localhost:80
//
// Host names are resolved with uv_getaddrinfo (on libuv's thread pool, so
// the scheduler never blocks); a connect tries each address in turn within
// the one timeout. Listening on port 0 binds a free port, which
// Listener::address() reports. TCP_NODELAY is on unless
// StreamOptions::no_delay is false. Abort() sends a reset (RST).
//
//   picos::TransportRegistry::Builder b;
//   picos::transports::RegisterTcpTransport(b);
#ifndef PICOS_TRANSPORTS_TCP_TCP_TRANSPORT_H_
#define PICOS_TRANSPORTS_TCP_TCP_TRANSPORT_H_

#include "core/net/transport.h"

namespace picos::transports {

// Adds the tcp:// plugin to `builder`.
void RegisterTcpTransport(TransportRegistry::Builder& builder);

}  // namespace picos::transports

#endif  // PICOS_TRANSPORTS_TCP_TCP_TRANSPORT_H_
