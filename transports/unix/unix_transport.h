// The unix:// stream transport: Unix-domain stream sockets, in the file
// system or in Linux's abstract namespace.
//
//   unix:///tmp/picos.sock    a socket file (removed when the listener closes)
//   unix://@picos-node-1      an abstract name: no file, gone with the socket
//
// A path longer than kMaxUnixPath bytes is kInvalidArgument: libuv 1.44
// would silently truncate it and bind somewhere else (docs/pitfalls.md).
// Listening on a path whose socket file exists is kAlreadyExists (a stale
// file from a crashed process must be removed by its owner).
//
//   picos::TransportRegistry::Builder b;
//   picos::transports::RegisterUnixTransport(b);
#ifndef PICOS_TRANSPORTS_UNIX_UNIX_TRANSPORT_H_
#define PICOS_TRANSPORTS_UNIX_UNIX_TRANSPORT_H_

#include <cstddef>

#include "core/net/transport.h"

namespace picos::transports {

// Longest socket path (sizeof(sockaddr_un::sun_path) less the NUL); for an
// abstract name, one less (its leading NUL).
inline constexpr size_t kMaxUnixPath = 107;

// Adds the unix:// plugin to `builder`.
void RegisterUnixTransport(TransportRegistry::Builder& builder);

}  // namespace picos::transports

#endif  // PICOS_TRANSPORTS_UNIX_UNIX_TRANSPORT_H_
