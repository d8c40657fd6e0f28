// IpEndpoint: picos's one type for an IP address and port, and its one
// parser of literal addresses.
//
//   PICOS_ASSIGN_OR_RETURN(picos::IpEndpoint a, picos::IpEndpoint::Parse("::1", 9705));
//   a.ToString();   // "[::1]:9705"
//   PICOS_ASSIGN_OR_RETURN(picos::IpEndpoint b, picos::IpEndpoint::ParseHostPort("127.0.0.1:0"));
//
// Every place that reads a literal address calls Parse: URIs (an IPv6 host
// in brackets), the tcp transport before it resolves a name, UDP sockets and
// multicast groups, TLS when it decides whether a server name is an address.
// So "[zz::zz]" is refused the same way everywhere. Parsing and formatting
// are libuv's (uv_ip4_addr / uv_ip6_addr, which are strict, and uv_ip_name).
//
// A value type: copy it freely, use it on any thread. Nothing here suspends.
#ifndef PICOS_CORE_NET_IP_ENDPOINT_H_
#define PICOS_CORE_NET_IP_ENDPOINT_H_

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace picos {

// Longest host ParseUri or Parse accepts as a literal address, in bytes (an
// IPv6 address with a zone is at most 45 + 1 + 15).
inline constexpr size_t kMaxIpLiteralLength = 64;

// A numeric IPv4 or IPv6 address and a port. No name resolution: hosts are
// literal addresses ("127.0.0.1", "::1", "fe80::1%eth0").
class IpEndpoint {
 public:
  IpEndpoint();  // 0.0.0.0:0

  // `host` as a literal IPv4 address (four decimal numbers) or IPv6 address
  // (without brackets, with an optional %zone naming an existing
  // interface), and `port` in [0, 65535]. kInvalidArgument otherwise, naming
  // what is wrong.
  static absl::StatusOr<IpEndpoint> Parse(absl::string_view host, int port);
  // "127.0.0.1:9705" or "[::1]:9705".
  static absl::StatusOr<IpEndpoint> ParseHostPort(absl::string_view host_port);
  // From a socket address of family AF_INET or AF_INET6.
  static absl::StatusOr<IpEndpoint> FromSockaddr(const struct sockaddr* sa);

  bool is_v6() const { return storage_.ss_family == AF_INET6; }
  int family() const { return storage_.ss_family; }
  std::string host() const;  // the address alone, without brackets
  int port() const;
  bool is_multicast() const;
  // The same address with another port.
  IpEndpoint WithPort(uint16_t port) const;
  // "127.0.0.1:9705", "[::1]:9705".
  std::string ToString() const;
  const struct sockaddr* sockaddr() const {
    return reinterpret_cast<const struct sockaddr*>(&storage_);
  }

  bool operator==(const IpEndpoint& other) const { return ToString() == other.ToString(); }

 private:
  struct sockaddr_storage storage_;
};

}  // namespace picos

#endif  // PICOS_CORE_NET_IP_ENDPOINT_H_
