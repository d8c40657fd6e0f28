#include "core/net/ip_endpoint.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <uv.h>

#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace picos {
namespace {

absl::Status NotAnAddress(absl::string_view what, absl::string_view host) {
  // Quote an escaped prefix: `host` may come from the network.
  return absl::InvalidArgumentError(
      absl::StrCat("not ", what, ": \"", absl::CHexEscape(host.substr(0, kMaxIpLiteralLength)), "\""));
}

}  // namespace

IpEndpoint::IpEndpoint() {
  std::memset(&storage_, 0, sizeof(storage_));
  storage_.ss_family = AF_INET;
}

absl::StatusOr<IpEndpoint> IpEndpoint::Parse(absl::string_view host, int port) {
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("port ", port, " is outside 0..65535"));
  }
  if (host.empty() || host.size() > kMaxIpLiteralLength) {
    return NotAnAddress(absl::StrCat("a literal IP address of 1 to ", kMaxIpLiteralLength, " bytes"),
                        host);
  }
  const std::string h(host);  // NUL-terminated for libuv
  if (h.find('\0') != std::string::npos) return NotAnAddress("an IP address", host);
  IpEndpoint e;
  if (h.find(':') == std::string::npos) {
    // uv_inet_pton underneath: exactly four decimal numbers, each <= 255.
    if (uv_ip4_addr(h.c_str(), port, reinterpret_cast<sockaddr_in*>(&e.storage_)) != 0) {
      return NotAnAddress("an IPv4 address", host);
    }
    return e;
  }
  // uv_ip6_addr splits off a "%zone" and looks the interface up; the rest
  // goes through uv_inet_pton, which refuses anything but hex groups.
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&e.storage_);
  if (uv_ip6_addr(h.c_str(), port, in6) != 0) return NotAnAddress("an IPv6 address", host);
  if (h.find('%') != std::string::npos && in6->sin6_scope_id == 0) {
    // libuv ignores a zone it cannot find; an address scoped to an interface
    // that does not exist is a mistake worth saying.
    return NotAnAddress("an IPv6 address with a known interface", host);
  }
  return e;
}

absl::StatusOr<IpEndpoint> IpEndpoint::ParseHostPort(absl::string_view hp) {
  if (hp.size() > kMaxIpLiteralLength + 8) return NotAnAddress("address:port", hp);
  absl::string_view host, port;
  if (!hp.empty() && hp[0] == '[') {
    size_t close = hp.find(']');
    if (close == absl::string_view::npos || close + 1 >= hp.size() || hp[close + 1] != ':') {
      return NotAnAddress("[IPv6 address]:port", hp);
    }
    host = hp.substr(1, close - 1);
    port = hp.substr(close + 2);
  } else {
    size_t colon = hp.rfind(':');
    if (colon == absl::string_view::npos || hp.find(':') != colon) {
      return NotAnAddress("address:port", hp);
    }
    host = hp.substr(0, colon);
    port = hp.substr(colon + 1);
  }
  int p;
  if (port.empty() || port.size() > 5 || !absl::SimpleAtoi(port, &p)) {
    return NotAnAddress("address:port (bad port)", hp);
  }
  return Parse(host, p);
}

absl::StatusOr<IpEndpoint> IpEndpoint::FromSockaddr(const struct sockaddr* sa) {
  IpEndpoint e;
  if (sa == nullptr) return absl::InvalidArgumentError("null address");
  if (sa->sa_family == AF_INET) {
    std::memcpy(&e.storage_, sa, sizeof(sockaddr_in));
  } else if (sa->sa_family == AF_INET6) {
    std::memcpy(&e.storage_, sa, sizeof(sockaddr_in6));
  } else {
    return absl::InvalidArgumentError("not an IP address");
  }
  return e;
}

std::string IpEndpoint::host() const {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (uv_ip_name(sockaddr(), buf, sizeof(buf)) != 0) return "";
  return buf;
}

int IpEndpoint::port() const {
  if (is_v6()) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
}

IpEndpoint IpEndpoint::WithPort(uint16_t port) const {
  IpEndpoint e = *this;
  const uint16_t p = htons(port);
  if (is_v6()) {
    reinterpret_cast<sockaddr_in6*>(&e.storage_)->sin6_port = p;
  } else {
    reinterpret_cast<sockaddr_in*>(&e.storage_)->sin_port = p;
  }
  return e;
}

bool IpEndpoint::is_multicast() const {
  if (is_v6()) {
    return IN6_IS_ADDR_MULTICAST(&reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr);
  }
  uint32_t a = ntohl(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr.s_addr);
  return (a >> 28) == 0xe;
}

std::string IpEndpoint::ToString() const {
  if (is_v6()) return absl::StrCat("[", host(), "]:", port());
  return absl::StrCat(host(), ":", port());
}

}  // namespace picos
