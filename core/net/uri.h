// Transport addresses: the URIs that name an endpoint of a picos transport.
//
//   tcp://host:port            tcp://127.0.0.1:9705, tcp://[::1]:0, tcp://example.org:80
//   tls://host:port            TLS over TCP
//   unix:///path               a Unix-domain socket in the file system
//   unix://@name               a Unix-domain socket in Linux's abstract namespace
//   mcast://group:port?iface=lo&ttl=1   UDP multicast
//
//   PICOS_ASSIGN_OR_RETURN(picos::Uri uri, picos::ParseUri("tcp://[::1]:9705"));
//   // uri.scheme == "tcp", uri.host == "::1", uri.port == 9705
//
// Parsing is strict and bounded: anything a parser might read two ways (user
// information, fragments, control characters, a port outside 0..65535, more
// than kMaxUriLength bytes) is kInvalidArgument with a message that says
// what is wrong. Whether a well-formed URI is usable (a known scheme, a path
// that fits a sockaddr_un) is for the transport to say. Pure functions: any
// thread, never suspend.
#ifndef PICOS_CORE_NET_URI_H_
#define PICOS_CORE_NET_URI_H_

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace picos {

// Longest URI ParseUri accepts, in bytes.
inline constexpr size_t kMaxUriLength = 2048;

// A parsed transport URI. Two shapes: host form (`scheme://host:port?query`,
// every scheme but unix) and path form (`unix:///path`, `unix://@name`).
struct Uri {
  // Lower case: "tcp", "tls", "unix", "mcast", ...
  std::string scheme;
  // Host form: a name or a literal address, IPv6 without its brackets. Empty
  // in path form.
  std::string host;
  // Host form: 0..65535 (0 asks for any free port when listening). -1 in
  // path form.
  int port = -1;
  // Path form: the file-system path (starting with '/'), or the name in the
  // abstract namespace (without the '@') when `abstract_socket` is set.
  std::string path;
  bool abstract_socket = false;
  // Query parameters in order, percent-decoded.
  std::vector<std::pair<std::string, std::string>> query;

  // The value of the first query parameter `key`, if any.
  std::optional<std::string> Param(absl::string_view key) const;
  // Back to text: "tcp://[::1]:9705", "unix:///tmp/s", "unix://@name".
  // ParseUri(u.ToString()) gives u again.
  std::string ToString() const;
  // "host:port" with IPv6 in brackets (host form only).
  std::string HostPort() const;

  bool operator==(const Uri& other) const = default;
};

// Parses `text` (see the forms above). kInvalidArgument if malformed.
absl::StatusOr<Uri> ParseUri(absl::string_view text);

}  // namespace picos

#endif  // PICOS_CORE_NET_URI_H_
