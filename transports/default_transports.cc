#include "transports/default_transports.h"

#include "transports/tcp/tcp_transport.h"
#include "transports/tls/tls_transport.h"
#include "transports/udp_multicast/udp_multicast.h"
#include "transports/unix/unix_transport.h"

namespace picos {

void RegisterDefaultTransports(TransportRegistry::Builder& builder) {
  transports::RegisterTcpTransport(builder);
  transports::RegisterUnixTransport(builder);
  // Certificates and CAs come with each tls:// URI (see tls_transport.h).
  tls::RegisterTlsTransport(builder);
  transports::RegisterUdpMulticastTransport(builder);
}

const TransportRegistry& DefaultTransports() {
  // Leaked on purpose: plugins may be used by threads still running at exit.
  static const TransportRegistry* registry = [] {
    TransportRegistry::Builder builder;
    RegisterDefaultTransports(builder);
    return std::move(builder).Build().release();
  }();
  return *registry;
}

}  // namespace picos
