// The udp_multicast transport plugin: datagram endpoints addressed by
//
//   mcast://group:port?iface=NAME_OR_ADDRESS&ttl=N&loop=0|1
//   mcast://239.255.97.5:9705?iface=lo&ttl=1
//   mcast://[ff02::7069:636f]:9705?iface=lo
//
// Opening one gives a UdpSocket bound to the group's port, a member of the
// group on `iface`, sending out of `iface` (IP_MULTICAST_IF /
// IPV6_MULTICAST_IF: without it nothing arrives on loopback, see
// notes/pitfalls.md), with multicast loop on (other processes of this host
// hear it) unless loop=0, and the TTL / hop limit `ttl` (default 1: this
// link only). Every parameter is validated and bounded; unknown or repeated
// parameters are errors, not ignored.
//
//   PICOS_ASSIGN_OR_RETURN(picos::McastEndpoint ep,
//                          picos::ParseMcastUri("mcast://239.255.97.5:9705?iface=lo"));
//   PICOS_ASSIGN_OR_RETURN(std::unique_ptr<picos::UdpSocket> s, picos::OpenMulticast(ep));
//   co_await s->SendTo("hello", ep.group);      // every member hears it
//
// TODO(transports): once core/transport.h publishes the datagram transport
// interface and its registry, adapt OpenMulticast to it and add
// RegisterUdpMulticastTransport() to transports/default_transports.cc; the
// URI parsing moves onto picos::ParseUri (core/uri.h) then.
#ifndef PICOS_TRANSPORTS_UDP_MULTICAST_UDP_MULTICAST_H_
#define PICOS_TRANSPORTS_UDP_MULTICAST_UDP_MULTICAST_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/udp.h"

namespace picos {

// Longest mcast:// URI accepted.
inline constexpr size_t kMaxMcastUriLength = 512;

// A parsed, validated mcast:// URI.
struct McastEndpoint {
  IpEndpoint group;    // a multicast address and a port in 1..65535
  std::string iface;   // interface name or address; empty: the system's choice
  int ttl = 1;         // 0..255
  bool loop = true;

  // Back to the URI form; ParseMcastUri(ToUri()) gives the same endpoint.
  std::string ToUri() const;
};

// Parses and validates `uri`. kInvalidArgument with what is wrong. Pure:
// any thread, does not suspend.
absl::StatusOr<McastEndpoint> ParseMcastUri(absl::string_view uri);

// Opens a socket for `ep` (see the top of this file). Scheduler thread;
// does not suspend. kNotFound if the interface does not exist.
absl::StatusOr<std::unique_ptr<UdpSocket>> OpenMulticast(const McastEndpoint& ep,
                                                         UdpOptions options = {});

}  // namespace picos

#endif  // PICOS_TRANSPORTS_UDP_MULTICAST_UDP_MULTICAST_H_
