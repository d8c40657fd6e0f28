// Datagram: picos's one type for a datagram received and who sent it, what
// UdpSocket::ReceiveFrom (core/udp.h) and DatagramSocket::Receive
// (core/transport.h) give. A value type; any thread.
#ifndef PICOS_CORE_NET_DATAGRAM_H_
#define PICOS_CORE_NET_DATAGRAM_H_

#include <cstddef>
#include <string>

#include "core/net/ip_endpoint.h"

namespace picos {

// Largest UDP payload over IPv4 (65535 - 8 - 20); the bound on every datagram.
inline constexpr size_t kMaxDatagramSize = 65507;

// One datagram received, and who sent it.
struct Datagram {
  std::string data;
  IpEndpoint from;  // the sender's address and port: where a reply goes
};

}  // namespace picos

#endif  // PICOS_CORE_NET_DATAGRAM_H_
