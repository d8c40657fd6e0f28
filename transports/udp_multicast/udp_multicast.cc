#include "transports/udp_multicast/udp_multicast.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/kernel/status.h"

namespace picos::transports {
namespace {

constexpr size_t kMaxIfaceLength = 46;  // an IPv6 literal; names are shorter (IFNAMSIZ)
// More than the three known parameters are errors anyway; the bound keeps
// the error path cheap on hostile input.
constexpr size_t kMaxParams = 8;
constexpr absl::string_view kScheme = "mcast";

absl::Status Bad(absl::string_view what, absl::string_view uri) {
  // Quote a bounded, escaped prefix: the text may be hostile and huge.
  return absl::InvalidArgumentError(
      absl::StrCat("mcast URI: ", what, " in \"", absl::CHexEscape(uri.substr(0, 80)), "\""));
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
  absl::StatusOr<Uri> parsed = ParseUri(uri);
  // ParseUri's message already quotes the text.
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("mcast URI: ", parsed.status().message()));
  }
  return McastEndpointFromUri(*parsed);
}

absl::StatusOr<McastEndpoint> McastEndpointFromUri(const Uri& uri) {
  // For messages only: the text is bounded by Bad().
  const std::string text = uri.ToString();
  if (uri.scheme != kScheme) return Bad("scheme is not mcast://", text);
  // ParseUri has already refused paths, user parts and fragments in host
  // form; path form (no port) is unix:// only, so this is a missing port.
  if (uri.port < 0 || !uri.path.empty() || uri.abstract_socket) return Bad("missing :port", text);
  absl::StatusOr<IpEndpoint> group = IpEndpoint::Parse(uri.host, uri.port);
  if (!group.ok()) {
    return Bad(absl::StrCat("the group must be a literal address (", group.status().message(), ")"),
               text);
  }
  if (!group->is_multicast()) return Bad("the group is not a multicast address", text);
  // Port 0 binds a free port, as tcp:// and UdpSocket::Bind do (issue 8).
  McastEndpoint ep;
  ep.group = *group;
  if (uri.query.size() > kMaxParams) return Bad("too many parameters", text);
  bool seen_iface = false, seen_ttl = false, seen_loop = false;
  for (const auto& [key, value] : uri.query) {
    if (key == "iface") {
      if (seen_iface) return Bad("iface given twice", text);
      seen_iface = true;
      if (!ValidIface(value)) return Bad("bad iface", text);
      ep.iface = value;
    } else if (key == "ttl") {
      if (seen_ttl) return Bad("ttl given twice", text);
      seen_ttl = true;
      if (value.empty() || value.size() > 3 || !absl::SimpleAtoi(value, &ep.ttl) || ep.ttl < 0 ||
          ep.ttl > 255) {
        return Bad("ttl must be 0..255", text);
      }
    } else if (key == "loop") {
      if (seen_loop) return Bad("loop given twice", text);
      seen_loop = true;
      if (value != "0" && value != "1") return Bad("loop must be 0 or 1", text);
      ep.loop = value == "1";
    } else {
      return Bad(absl::StrCat("unknown parameter '", absl::CHexEscape(key.substr(0, 32)), "'"), text);
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

namespace {

absl::Status Closed() { return absl::FailedPreconditionError("the mcast socket is closed"); }

// A DatagramSocket over one multicast UdpSocket. Scheduler thread only, as
// the UdpSocket it owns.
class McastSocket final : public DatagramSocket {
 public:
  // `ep.group` carries the port actually bound (port 0 asked for a free one).
  McastSocket(McastEndpoint ep, std::unique_ptr<UdpSocket> udp)
      : ep_(std::move(ep)), udp_(std::move(udp)) {}

  Task<absl::Status> SendTo(std::string data, IpEndpoint to, absl::Duration timeout) override {
    if (udp_->closed()) co_return Closed();
    if (to.port() == 0) {
      co_return absl::InvalidArgumentError(
          absl::StrCat("mcast: destination ", to.ToString(), " has no port"));
    }
    if (to.is_v6() != ep_.group.is_v6()) {
      co_return absl::InvalidArgumentError(
          absl::StrCat("mcast: an ", ep_.group.is_v6() ? "IPv6" : "IPv4", " socket needs an ",
                       ep_.group.is_v6() ? "IPv6" : "IPv4", " destination, not ", to.ToString()));
    }
    co_return co_await udp_->SendTo(std::move(data), to, timeout);
  }

  Task<absl::Status> Send(std::string data, absl::Duration timeout) override {
    if (udp_->closed()) co_return Closed();
    co_return co_await udp_->SendTo(std::move(data), ep_.group, timeout);
  }

  Task<absl::StatusOr<Datagram>> ReceiveFrom(absl::Duration timeout) override {
    co_return co_await udp_->ReceiveFrom(timeout);
  }

  absl::Status JoinGroup(const IpEndpoint& group, absl::string_view iface) override {
    return Membership(group, iface, true);
  }
  absl::Status LeaveGroup(const IpEndpoint& group, absl::string_view iface) override {
    return Membership(group, iface, false);
  }

  void Close() override { udp_->Close(); }

  IpEndpoint local_address() const override { return udp_->local_address(); }
  std::string address() const override { return ep_.ToUri(); }

 private:
  absl::Status Membership(const IpEndpoint& group, absl::string_view iface, bool join) {
    if (udp_->closed()) return Closed();
    if (!iface.empty() && !ValidIface(iface)) {
      return absl::InvalidArgumentError(
          absl::StrCat("mcast: bad interface \"", absl::CHexEscape(iface.substr(0, 64)), "\""));
    }
    // Without an iface the socket's own, not the system's choice: on
    // loopback the system would choose the default route's interface.
    return join ? udp_->JoinGroup(group, iface.empty() ? ep_.iface : iface)
                : udp_->LeaveGroup(group, iface.empty() ? ep_.iface : iface);
  }

  const McastEndpoint ep_;
  std::unique_ptr<UdpSocket> udp_;
};

class McastTransport final : public DatagramTransport {
 public:
  std::string scheme() const override { return std::string(kScheme); }

  Task<absl::StatusOr<std::unique_ptr<DatagramSocket>>> Bind(Uri uri) override {
    // Nothing here suspends: groups are literal addresses (no resolution).
    absl::StatusOr<McastEndpoint> ep = McastEndpointFromUri(uri);
    if (!ep.ok()) co_return ep.status();
    absl::StatusOr<std::unique_ptr<UdpSocket>> udp = OpenMulticast(*ep);
    if (!udp.ok()) co_return udp.status();
    // Port 0 asked for a free port: the group is sent to on the one bound.
    ep->group = ep->group.WithPort(static_cast<uint16_t>((*udp)->local_address().port()));
    co_return std::unique_ptr<DatagramSocket>(
        std::make_unique<McastSocket>(std::move(*ep), std::move(*udp)));
  }
};

}  // namespace

void RegisterUdpMulticastTransport(TransportRegistry::Builder& builder) {
  builder.RegisterDatagram(std::make_unique<McastTransport>());
}

}  // namespace picos::transports
