// UDP sockets for tasks (pycos's AsyncSocket with SOCK_DGRAM: sendto and
// recvfrom), with IP multicast for discovery.
//
//   PICOS_CO_ASSIGN_OR_RETURN(picos::IpEndpoint any, picos::IpEndpoint::Parse("127.0.0.1", 0));
//   PICOS_CO_ASSIGN_OR_RETURN(std::unique_ptr<picos::UdpSocket> s, picos::UdpSocket::Bind(any));
//   PICOS_CO_RETURN_IF_ERROR(co_await s->SendTo("ping", server));
//   PICOS_CO_ASSIGN_OR_RETURN(picos::Datagram d, co_await s->ReceiveFrom(absl::Seconds(1)));
//   // d.data == "pong", d.from == server
//
// Threads: a UdpSocket belongs to the scheduler of the task that bound it;
// use and destroy it on that scheduler's thread (from its tasks), before the
// scheduler ends. Calls returning Task<...> suspend the task; the others do
// not. Datagrams are received in the background from the moment the socket
// is bound, into a queue of at most `queue_limit` datagrams: when the task
// does not keep up, newer datagrams are dropped and counted (UDP may drop
// them anyway), never buffered without bound.
#ifndef PICOS_CORE_NET_UDP_H_
#define PICOS_CORE_NET_UDP_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/kernel/task.h"
#include "core/net/datagram.h"
#include "core/net/ip_endpoint.h"

namespace picos {

namespace internal {
struct UdpState;
}  // namespace internal

struct UdpOptions {
  // SO_REUSEADDR: several sockets may bind the same address and port (what
  // multicast listeners on one host need).
  bool reuse_address = false;
  // IPv6 sockets: receive IPv6 only, not IPv4-mapped traffic.
  bool ipv6_only = false;
  // Larger datagrams are dropped (and counted). At most kMaxDatagramSize.
  size_t max_datagram = kMaxDatagramSize;
  // Most datagrams queued for ReceiveFrom; more are dropped. 1 to 65536.
  size_t queue_limit = 1024;
};

class UdpSocket {
 public:
  // Binds a socket to `local` (port 0: any free port) and starts receiving.
  // Scheduler thread; does not suspend. kInvalidArgument for bad options,
  // kFailedPrecondition off a scheduler's thread, and the bind error (an
  // address in use is kUnavailable or kAlreadyExists, per errno).
  static absl::StatusOr<std::unique_ptr<UdpSocket>> Bind(const IpEndpoint& local,
                                                         UdpOptions options = {});

  // Closes the socket (as Close()) and frees it; sends still in progress
  // are cancelled.
  ~UdpSocket();
  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;

  // The address bound, with the port the system chose for port 0.
  IpEndpoint local_address() const;

  // Sends one datagram (at most kMaxDatagramSize bytes, else
  // kInvalidArgument). Suspends the task until the system took it.
  Task<absl::Status> SendTo(std::string data, IpEndpoint to,
                            absl::Duration timeout = absl::InfiniteDuration());

  // The next datagram, waiting up to `timeout` (kDeadlineExceeded).
  // Suspends the task.
  Task<absl::StatusOr<Datagram>> ReceiveFrom(absl::Duration timeout = absl::InfiniteDuration());

  // Closes the socket now: receiving stops, queued datagrams are discarded,
  // sends in progress are cancelled, and a task waiting in ReceiveFrom
  // returns kFailedPrecondition. Every later call that uses the socket
  // (SendTo, ReceiveFrom, the multicast options) is kFailedPrecondition.
  // Idempotent; does not suspend. The object stays valid until destroyed,
  // so a task woken by Close() may still touch it safely.
  void Close();
  bool closed() const;

  // Datagrams dropped because the queue was full or they were too large.
  uint64_t dropped() const;
  // Datagrams waiting in the queue.
  size_t queued() const;

  // --- Multicast and broadcast. None suspends. ---

  // Joins `group` (a multicast address of the socket's family) on the
  // interface `iface`: a name ("lo", "eth0") or, for IPv4, one of its
  // addresses ("127.0.0.1"); empty: the system's choice.
  absl::Status JoinGroup(const IpEndpoint& group, absl::string_view iface);
  absl::Status LeaveGroup(const IpEndpoint& group, absl::string_view iface);
  // Sends multicast out of `iface` (IP_MULTICAST_IF / IPV6_MULTICAST_IF).
  // Without it datagrams follow the default route, and on loopback nothing
  // arrives (docs/pitfalls.md).
  absl::Status SetMulticastInterface(absl::string_view iface);
  // Whether this host's own sockets receive what it sends to a group.
  absl::Status SetMulticastLoop(bool on);
  // Hops a multicast datagram may travel (IPv4 TTL / IPv6 hop limit), 0..255.
  absl::Status SetMulticastTtl(int ttl);
  absl::Status SetBroadcast(bool on);

 private:
  UdpSocket() = default;
  internal::UdpState* state_ = nullptr;  // freed in the handle's close callback
};

// An interface's IPv4 address ("127.0.0.1" for "lo") when `iface` is a name,
// or `iface` itself when it is an IPv4 address. kNotFound if there is none.
absl::StatusOr<std::string> InterfaceIpv4Address(absl::string_view iface);

// An interface's index for IPv6 from its name or one of its IPv6 addresses.
// kNotFound if there is none.
absl::StatusOr<unsigned> InterfaceIndex(absl::string_view iface);

}  // namespace picos

#endif  // PICOS_CORE_NET_UDP_H_
