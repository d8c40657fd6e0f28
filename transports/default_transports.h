// The one list of picos's transport plugins, and the registry built from it.
//
//   const picos::TransportRegistry& r = picos::transports::DefaultTransports();
//   auto stream = co_await r.Connect("unix://@my-service", absl::Seconds(1));
//
// Every plugin is added by an explicit Register...() call in
// default_transports.cc, so none can be dropped by the linker and the set
// is visible in one place (the gRPC plugin-registry pattern; see
// docs/style.md). A program that wants a different set builds its own
// TransportRegistry with a Builder.
#ifndef PICOS_TRANSPORTS_DEFAULT_TRANSPORTS_H_
#define PICOS_TRANSPORTS_DEFAULT_TRANSPORTS_H_

#include "core/net/transport.h"

namespace picos::transports {

// Adds every built-in transport plugin to `builder`. The tls plugin takes
// default files from the environment: PICOS_TLS_CA (CAs to trust),
// PICOS_TLS_CERT and PICOS_TLS_KEY (this side's certificate and key).
void RegisterDefaultTransports(TransportRegistry::Builder& builder);

// The process-wide registry of the built-in plugins, built on first use
// (thread-safe) and never destroyed. Any thread; does not suspend.
const TransportRegistry& DefaultTransports();

}  // namespace picos::transports

#endif  // PICOS_TRANSPORTS_DEFAULT_TRANSPORTS_H_
