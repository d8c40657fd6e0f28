// The udp_multicast transport plugin: datagram endpoints addressed by
//
//   mcast://group:port?iface=NAME_OR_ADDRESS&ttl=N&loop=0|1
//   mcast://239.255.97.5:9705?iface=lo&ttl=1
//   mcast://239.255.97.5:9705?iface=127.0.0.1
//   mcast://[ff02::7069:636f]:9705?iface=lo
//   mcast://239.255.97.5:0?iface=lo      any free port (address() tells which)
//
// Binding one gives a socket bound to the group's port, a member of the
// group on `iface`, sending out of `iface` (IP_MULTICAST_IF /
// IPV6_MULTICAST_IF: without it nothing arrives on loopback, see
// docs/pitfalls.md), with multicast loop on (this host's sockets, the
// sender's own included, hear what it sends) unless loop=0, and the TTL /
// hop limit `ttl` (default 1: this link only). The group must be a literal
// multicast address and the port 0..65535, 0 binding a free port as tcp://
// and UdpSocket do; every parameter is validated and bounded; unknown or
// repeated parameters are errors, not ignored.
//
// Through the registry (the usual way; the plugin is in DefaultTransports()):
//
//   PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::DatagramSocket> s,
//       co_await picos::transports::DefaultTransports().Bind("mcast://239.255.97.5:9705?iface=lo"));
//   PICOS_CO_RETURN_IF_ERROR(co_await s->Send("hello"));   // to the group
//   PICOS_CO_ASSIGN_OR_RETURN(picos::Datagram d, co_await s->ReceiveFrom(absl::Seconds(1)));
//   // d.data == "hello" (loop is on: the sender hears itself too),
//   // d.from == the sender's IpEndpoint (127.0.0.1:9705)
//
// An IPv4 socket is bound to the group's address, so it hears that group on
// that port and nothing else: not unicast sent to its port (a reply to
// `from` reaches a member only if it also has a unicast socket there), nor
// other groups it joins with JoinGroup (which exists for IPv6 sockets, bound
// to the wildcard address, and for symmetry). SendTo may still name any
// address of the socket's family: SendTo(data, 10.0.0.7:9705) sends unicast.
// JoinGroup / LeaveGroup without an interface use the socket's own.
//
// Or directly on a UdpSocket (core/net/udp.h), for its extra knobs:
//
//   PICOS_ASSIGN_OR_RETURN(picos::transports::McastEndpoint ep,
//       picos::transports::ParseMcastUri("mcast://239.255.97.5:9705?iface=lo"));
//   PICOS_ASSIGN_OR_RETURN(std::unique_ptr<picos::UdpSocket> s,
//                          picos::transports::OpenMulticast(ep));
//
// Threads and status codes as in core/net/transport.h: a socket belongs to the
// scheduler of the task that bound it.
#ifndef PICOS_TRANSPORTS_UDP_MULTICAST_UDP_MULTICAST_H_
#define PICOS_TRANSPORTS_UDP_MULTICAST_UDP_MULTICAST_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/net/ip_endpoint.h"
#include "core/net/transport.h"
#include "core/net/udp.h"
#include "core/net/uri.h"

namespace picos::transports {

// Longest mcast:// URI accepted.
inline constexpr size_t kMaxMcastUriLength = 512;

// A parsed, validated mcast:// URI.
struct McastEndpoint {
  IpEndpoint group;    // a multicast address and a port (0: any free port)
  std::string iface;   // interface name or address; empty: the system's choice
  int ttl = 1;         // 0..255
  bool loop = true;

  // Back to the URI form; ParseMcastUri(ToUri()) gives the same endpoint.
  std::string ToUri() const;
};

// Parses (picos::ParseUri) and validates `uri`. kInvalidArgument with what
// is wrong. Pure: any thread, does not suspend.
absl::StatusOr<McastEndpoint> ParseMcastUri(absl::string_view uri);

// Validates an already parsed URI: scheme "mcast", a literal multicast
// group, a port, and only the parameters above. kInvalidArgument with what
// is wrong. Pure.
absl::StatusOr<McastEndpoint> McastEndpointFromUri(const Uri& uri);

// Opens a socket for `ep` (see the top of this file); with port 0 its
// local_address() has the port chosen. Scheduler thread; does not suspend.
// kNotFound if the interface does not exist.
absl::StatusOr<std::unique_ptr<UdpSocket>> OpenMulticast(const McastEndpoint& ep,
                                                         UdpOptions options = {});

// Adds the mcast:// datagram plugin to `builder`.
void RegisterUdpMulticastTransport(TransportRegistry::Builder& builder);

}  // namespace picos::transports

#endif  // PICOS_TRANSPORTS_UDP_MULTICAST_UDP_MULTICAST_H_
