#include "transports/default_transports.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "core/kernel/log.h"
#include "transports/tcp/tcp_transport.h"
#include "transports/tls/tls_transport.h"
#include "transports/udp_multicast/udp_multicast.h"
#include "transports/unix/unix_transport.h"

namespace picos::transports {

namespace {

// TLS files from the environment, so that any picos program speaks TLS by
// configuration, as pycos programs do with certfile/keyfile. A URI's own
// ca=, cert=, key= still win.
TlsConfig TlsDefaultsFromEnvironment() {
  TlsConfig config;
  auto read = [](const char* name, std::string* out) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return;
    if (std::strlen(v) > 1024) {
      PICOS_LOG(error, "{} is longer than 1024 bytes: ignored", name);
      return;
    }
    *out = v;
  };
  read("PICOS_TLS_CA", &config.ca_file);
  read("PICOS_TLS_CERT", &config.cert_file);
  read("PICOS_TLS_KEY", &config.key_file);
  return config;
}

// The plain stream transports TLS runs over. Leaked on purpose, as
// DefaultTransports() is: every registry with a tls plugin wraps this one,
// and plugins may be used by threads still running at exit.
const TransportRegistry& PlainStreamTransports() {
  static const TransportRegistry* registry = [] {
    TransportRegistry::Builder builder;
    RegisterTcpTransport(builder);
    RegisterUnixTransport(builder);
    return std::move(builder).Build().release();
  }();
  return *registry;
}

}  // namespace

void RegisterDefaultTransports(TransportRegistry::Builder& builder) {
  RegisterTcpTransport(builder);
  RegisterUnixTransport(builder);
  // Certificates and CAs come with each tls:// URI (see tls_transport.h), or
  // from PICOS_TLS_CA / PICOS_TLS_CERT / PICOS_TLS_KEY.
  RegisterTlsTransport(builder, PlainStreamTransports(), TlsDefaultsFromEnvironment());
  RegisterUdpMulticastTransport(builder);
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

}  // namespace picos::transports
