#include "transports/udp_multicast/udp_multicast.h"

#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/status.h"

namespace picos {
namespace {

constexpr size_t kMaxIfaceLength = 46;  // an IPv6 literal; names are shorter (IFNAMSIZ)

absl::Status Bad(absl::string_view what, absl::string_view uri) {
  return absl::InvalidArgumentError(absl::StrCat("mcast URI: ", what, " in '", uri.substr(0, 80), "'"));
}

bool ValidIface(absl::string_view s) {
  if (s.empty() || s.size() > kMaxIfaceLength) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '-' && c != '_' && c != ':') return false;
  }
  return true;
}

}  // namespace

std::string McastEndpoint::ToUri() const {
  std::string out = absl::StrCat("mcast://", group.ToString(), "?ttl=", ttl);
  if (!iface.empty()) absl::StrAppend(&out, "&iface=", iface);
  if (!loop) absl::StrAppend(&out, "&loop=0");
  return out;
}

absl::StatusOr<McastEndpoint> ParseMcastUri(absl::string_view uri) {
  if (uri.size() > kMaxMcastUriLength) return Bad("too long", uri);
  constexpr absl::string_view kScheme = "mcast://";
  if (!absl::StartsWithIgnoreCase(uri, kScheme)) return Bad("scheme is not mcast://", uri);
  absl::string_view rest = uri.substr(kScheme.size());
  absl::string_view query;
  if (size_t q = rest.find('?'); q != absl::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  if (rest.find_first_of("/#@") != absl::string_view::npos) {
    return Bad("no path, fragment or user part allowed", uri);
  }
  absl::StatusOr<IpEndpoint> group = IpEndpoint::ParseHostPort(rest);
  if (!group.ok()) return Bad(absl::StrCat("bad group:port (", group.status().message(), ")"), uri);
  if (!group->is_multicast()) return Bad("the group is not a multicast address", uri);
  if (group->port() == 0) return Bad("port 0 (the group's port must be given)", uri);
  McastEndpoint ep;
  ep.group = *group;
  bool seen_iface = false, seen_ttl = false, seen_loop = false;
  if (!query.empty()) {
    std::vector<absl::string_view> params = absl::StrSplit(query, '&');
    if (params.size() > 8) return Bad("too many parameters", uri);
    for (absl::string_view p : params) {
      size_t eq = p.find('=');
      if (eq == absl::string_view::npos) return Bad(absl::StrCat("parameter without value: ", p), uri);
      absl::string_view key = p.substr(0, eq), value = p.substr(eq + 1);
      if (key == "iface") {
        if (seen_iface) return Bad("iface given twice", uri);
        seen_iface = true;
        if (!ValidIface(value)) return Bad("bad iface", uri);
        ep.iface = std::string(value);
      } else if (key == "ttl") {
        if (seen_ttl) return Bad("ttl given twice", uri);
        seen_ttl = true;
        if (value.size() > 3 || !absl::SimpleAtoi(value, &ep.ttl) || ep.ttl < 0 || ep.ttl > 255) {
          return Bad("ttl must be 0..255", uri);
        }
      } else if (key == "loop") {
        if (seen_loop) return Bad("loop given twice", uri);
        seen_loop = true;
        if (value != "0" && value != "1") return Bad("loop must be 0 or 1", uri);
        ep.loop = value == "1";
      } else {
        return Bad(absl::StrCat("unknown parameter '", key.substr(0, 32), "'"), uri);
      }
    }
  }
  return ep;
}

absl::StatusOr<std::unique_ptr<UdpSocket>> OpenMulticast(const McastEndpoint& ep,
                                                         UdpOptions options) {
  // IPv4: bound to the group's address (Linux), the socket hears that group
  // on that port and nothing else sent to the port. IPv6 link-local groups
  // cannot be bound without a scope, so IPv6 binds the wildcard address.
  // Several listeners on one host share the port.
  options.reuse_address = true;
  if (ep.group.is_v6()) options.ipv6_only = true;
  PICOS_ASSIGN_OR_RETURN(IpEndpoint bind_to,
                         IpEndpoint::Parse(ep.group.is_v6() ? "::" : ep.group.host(), ep.group.port()));
  PICOS_ASSIGN_OR_RETURN(std::unique_ptr<UdpSocket> s, UdpSocket::Bind(bind_to, options));
  PICOS_RETURN_IF_ERROR(s->JoinGroup(ep.group, ep.iface));
  if (!ep.iface.empty()) PICOS_RETURN_IF_ERROR(s->SetMulticastInterface(ep.iface));
  PICOS_RETURN_IF_ERROR(s->SetMulticastLoop(ep.loop));
  PICOS_RETURN_IF_ERROR(s->SetMulticastTtl(ep.ttl));
  return s;
}

}  // namespace picos
