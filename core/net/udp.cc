#include "core/net/udp.h"

#include <netinet/in.h>
#include <net/if.h>
#include <uv.h>

#include <cstring>
#include <deque>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/io/io_internal.h"
#include "core/io/uv_request_internal.h"
#include "core/kernel/log.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"

namespace picos {
namespace internal {

// The socket's handle, its queue of received datagrams and the waiting
// task. Owned by the UdpSocket; freed in the handle's close callback, after
// libuv has called back every pending send.
struct UdpState {
  uv_udp_t handle;
  UdpOptions options;
  std::deque<Datagram> queue;
  uint64_t dropped = 0;
  WaitSlot receiver;
  std::unique_ptr<char[]> scratch;  // 64 KiB: any UDP datagram fits
  bool closed = false;         // Close() was called: uv_close is under way or done
  bool handle_closed = false;  // the close callback ran
  bool owner_gone = false;     // the UdpSocket was destroyed
};

}  // namespace internal

namespace {

using internal::UdpState;

constexpr size_t kScratchSize = 64 * 1024;

// A datagram in flight: its bytes live with the request, whatever happens to
// the task that sent it.
struct SendPayload {
  explicit SendPayload(std::string d) : data(std::move(d)) {}
  std::string data;
};

void OnReceive(uv_udp_t* handle, ssize_t nread, const uv_buf_t* buf, const struct sockaddr* addr,
               unsigned flags) {
  auto* s = static_cast<UdpState*>(handle->data);
  if (nread == 0 && addr == nullptr) return;  // nothing more to read now
  if (nread < 0) {
    PICOS_LOG(debug, "udp receive error: {}", uv_strerror(static_cast<int>(nread)));
    return;
  }
  if ((flags & UV_UDP_PARTIAL) || static_cast<size_t>(nread) > s->options.max_datagram ||
      s->queue.size() >= s->options.queue_limit) {
    ++s->dropped;
    return;
  }
  absl::StatusOr<IpEndpoint> from = IpEndpoint::FromSockaddr(addr);
  if (!from.ok()) {
    ++s->dropped;
    return;
  }
  s->queue.push_back(Datagram{std::string(buf->base, static_cast<size_t>(nread)), *from});
  s->receiver.Notify();
}

absl::Status ClosedError() { return absl::FailedPreconditionError("the UDP socket is closed"); }

bool IsIpv4Literal(absl::string_view s) {
  absl::StatusOr<IpEndpoint> e = IpEndpoint::Parse(s, 0);
  return e.ok() && !e->is_v6();
}

}  // namespace

// --- interfaces ---

absl::StatusOr<std::string> InterfaceIpv4Address(absl::string_view iface) {
  if (IsIpv4Literal(iface)) return std::string(iface);
  uv_interface_address_t* addrs = nullptr;
  int count = 0;
  PICOS_RETURN_IF_ERROR(UvStatus(uv_interface_addresses(&addrs, &count), "list interfaces"));
  std::string found;
  for (int i = 0; i < count && found.empty(); ++i) {
    if (iface == addrs[i].name && addrs[i].address.address4.sin_family == AF_INET) {
      char buf[INET_ADDRSTRLEN] = {0};
      uv_ip4_name(&addrs[i].address.address4, buf, sizeof(buf));
      found = buf;
    }
  }
  uv_free_interface_addresses(addrs, count);
  if (found.empty()) {
    return absl::NotFoundError(absl::StrCat("no interface with an IPv4 address named ", iface));
  }
  return found;
}

absl::StatusOr<unsigned> InterfaceIndex(absl::string_view iface) {
  if (iface.empty() || iface.size() >= 64) return absl::InvalidArgumentError("bad interface name");
  std::string name(iface);
  absl::StatusOr<IpEndpoint> literal = IpEndpoint::Parse(iface, 0);
  if (literal.ok() && literal->is_v6()) {
    const in6_addr want = reinterpret_cast<const sockaddr_in6*>(literal->sockaddr())->sin6_addr;
    uv_interface_address_t* addrs = nullptr;
    int count = 0;
    PICOS_RETURN_IF_ERROR(UvStatus(uv_interface_addresses(&addrs, &count), "list interfaces"));
    name.clear();
    for (int i = 0; i < count && name.empty(); ++i) {
      if (addrs[i].address.address6.sin6_family == AF_INET6 &&
          std::memcmp(&addrs[i].address.address6.sin6_addr, &want, sizeof(want)) == 0) {
        name = addrs[i].name;
      }
    }
    uv_free_interface_addresses(addrs, count);
    if (name.empty()) return absl::NotFoundError(absl::StrCat("no interface has address ", iface));
  }
  unsigned index = if_nametoindex(name.c_str());
  if (index == 0) return absl::NotFoundError(absl::StrCat("no interface named ", iface));
  return index;
}

// --- UdpSocket ---

absl::StatusOr<std::unique_ptr<UdpSocket>> UdpSocket::Bind(const IpEndpoint& local,
                                                           UdpOptions options) {
  Scheduler* sched = Scheduler::Current();
  if (sched == nullptr) return absl::FailedPreconditionError("UdpSocket::Bind outside a scheduler");
  if (options.max_datagram == 0 || options.max_datagram > kMaxDatagramSize) {
    return absl::InvalidArgumentError(absl::StrCat("max_datagram outside [1, ", kMaxDatagramSize, "]"));
  }
  if (options.queue_limit == 0 || options.queue_limit > 65536) {
    return absl::InvalidArgumentError("queue_limit outside [1, 65536]");
  }
  auto* s = new UdpState;
  s->options = options;
  s->scratch = std::make_unique<char[]>(kScratchSize);
  PICOS_ASSERT(uv_udp_init_ex(sched->uv_loop(), &s->handle, local.family()) == 0);
  s->handle.data = s;
  std::unique_ptr<UdpSocket> sock(new UdpSocket());
  sock->state_ = s;  // from here the destructor closes the handle
  unsigned flags = 0;
  if (options.reuse_address) flags |= UV_UDP_REUSEADDR;
  if (options.ipv6_only && local.is_v6()) flags |= UV_UDP_IPV6ONLY;
  PICOS_RETURN_IF_ERROR(
      UvStatus(uv_udp_bind(&s->handle, local.sockaddr(), flags),
               absl::StrCat("bind udp ", local.ToString()).c_str()));
  PICOS_RETURN_IF_ERROR(UvStatus(
      uv_udp_recv_start(
          &s->handle,
          [](uv_handle_t* h, size_t, uv_buf_t* b) {
            auto* st = static_cast<UdpState*>(h->data);
            *b = uv_buf_init(st->scratch.get(), kScratchSize);
          },
          OnReceive),
      "udp receive"));
  return sock;
}

UdpSocket::~UdpSocket() {
  if (state_ == nullptr) return;
  state_->owner_gone = true;
  if (!state_->closed) {
    Close();  // its close callback frees the state
  } else if (state_->handle_closed) {
    delete state_;
  }  // else: closing; the close callback frees it
  state_ = nullptr;
}

void UdpSocket::Close() {
  if (state_ == nullptr || state_->closed) return;
  state_->closed = true;
  state_->queue.clear();
  state_->receiver.Notify();
  uv_close(reinterpret_cast<uv_handle_t*>(&state_->handle), [](uv_handle_t* h) {
    auto* s = static_cast<UdpState*>(h->data);
    if (s->owner_gone) {
      delete s;
    } else {
      s->handle_closed = true;
    }
  });
}

bool UdpSocket::closed() const { return state_ == nullptr || state_->closed; }

IpEndpoint UdpSocket::local_address() const {
  if (closed()) return IpEndpoint();
  sockaddr_storage ss;
  int len = sizeof(ss);
  if (uv_udp_getsockname(&state_->handle, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return IpEndpoint();
  }
  return IpEndpoint::FromSockaddr(reinterpret_cast<sockaddr*>(&ss)).value_or(IpEndpoint());
}

Task<absl::Status> UdpSocket::SendTo(std::string data, IpEndpoint to, absl::Duration timeout) {
  if (closed()) co_return ClosedError();
  if (data.size() > kMaxDatagramSize) {
    co_return absl::InvalidArgumentError(
        absl::StrCat("datagram of ", data.size(), " bytes; at most ", kMaxDatagramSize));
  }
  internal::UvRequest<uv_udp_send_t, SendPayload> op(std::move(data));
  uv_buf_t b = uv_buf_init(op.payload().data.data(), static_cast<unsigned>(op.payload().data.size()));
  const std::string what = absl::StrCat("send to ", to.ToString());
  PICOS_CO_RETURN_IF_ERROR(op.Started(
      uv_udp_send(op.req(), &state_->handle, &b, 1, to.sockaddr(), op.callback()), what.c_str()));
  const internal::Deadline deadline(timeout);
  PICOS_CO_RETURN_IF_ERROR(co_await op.Wait(deadline));
  co_return UvStatus(static_cast<int>(op.result()), what.c_str());
}

Task<absl::StatusOr<Datagram>> UdpSocket::ReceiveFrom(absl::Duration timeout) {
  UdpState* s = state_;
  const internal::Deadline deadline(timeout);
  for (;;) {  // each wake follows a datagram or the close

    if (s->closed) co_return ClosedError();
    if (!s->queue.empty()) {
      Datagram d = std::move(s->queue.front());
      s->queue.pop_front();
      co_return d;
    }
    PICOS_CO_RETURN_IF_ERROR(co_await s->receiver.Wait(deadline));
  }
}

uint64_t UdpSocket::dropped() const { return state_->dropped; }
size_t UdpSocket::queued() const { return state_->queue.size(); }

namespace {

absl::Status Membership(uv_udp_t* h, const IpEndpoint& group, absl::string_view iface, bool join) {
  if (!group.is_multicast()) {
    return absl::InvalidArgumentError(absl::StrCat(group.host(), " is not a multicast address"));
  }
  const char* what = join ? "join multicast group" : "leave multicast group";
  if (!group.is_v6()) {
    std::string addr;
    if (!iface.empty()) {
      absl::StatusOr<std::string> a = InterfaceIpv4Address(iface);
      if (!a.ok()) return a.status();
      addr = *a;
    }
    return UvStatus(uv_udp_set_membership(h, group.host().c_str(), iface.empty() ? nullptr : addr.c_str(),
                                          join ? UV_JOIN_GROUP : UV_LEAVE_GROUP),
                    what);
  }
  // IPv6 by interface index, set directly: libuv would want a scoped address.
  ipv6_mreq mreq;
  std::memset(&mreq, 0, sizeof(mreq));
  mreq.ipv6mr_multiaddr = reinterpret_cast<const sockaddr_in6*>(group.sockaddr())->sin6_addr;
  if (!iface.empty()) {
    absl::StatusOr<unsigned> index = InterfaceIndex(iface);
    if (!index.ok()) return index.status();
    mreq.ipv6mr_interface = *index;
  }
  uv_os_fd_t fd;
  PICOS_RETURN_IF_ERROR(UvStatus(uv_fileno(reinterpret_cast<uv_handle_t*>(h), &fd), what));
  if (setsockopt(fd, IPPROTO_IPV6, join ? IPV6_ADD_MEMBERSHIP : IPV6_DROP_MEMBERSHIP, &mreq,
                 sizeof(mreq)) != 0) {
    return absl::ErrnoToStatus(errno, what);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status UdpSocket::JoinGroup(const IpEndpoint& group, absl::string_view iface) {
  if (closed()) return ClosedError();
  return Membership(&state_->handle, group, iface, true);
}

absl::Status UdpSocket::LeaveGroup(const IpEndpoint& group, absl::string_view iface) {
  if (closed()) return ClosedError();
  return Membership(&state_->handle, group, iface, false);
}

absl::Status UdpSocket::SetMulticastInterface(absl::string_view iface) {
  if (closed()) return ClosedError();
  IpEndpoint local = local_address();
  if (!local.is_v6()) {
    PICOS_ASSIGN_OR_RETURN(std::string addr, InterfaceIpv4Address(iface));
    return UvStatus(uv_udp_set_multicast_interface(&state_->handle, addr.c_str()),
                    "set multicast interface");
  }
  PICOS_ASSIGN_OR_RETURN(unsigned index, InterfaceIndex(iface));
  uv_os_fd_t fd;
  PICOS_RETURN_IF_ERROR(UvStatus(uv_fileno(reinterpret_cast<uv_handle_t*>(&state_->handle), &fd),
                                 "set multicast interface"));
  if (setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &index, sizeof(index)) != 0) {
    return absl::ErrnoToStatus(errno, "set multicast interface");
  }
  return absl::OkStatus();
}

absl::Status UdpSocket::SetMulticastLoop(bool on) {
  if (closed()) return ClosedError();
  return UvStatus(uv_udp_set_multicast_loop(&state_->handle, on ? 1 : 0), "set multicast loop");
}

absl::Status UdpSocket::SetMulticastTtl(int ttl) {
  if (closed()) return ClosedError();
  if (ttl < 0 || ttl > 255) return absl::InvalidArgumentError(absl::StrCat("bad ttl ", ttl));
  if (ttl == 0) {
    // libuv rejects 0 though the kernel allows it (this host only).
    uv_os_fd_t fd;
    PICOS_RETURN_IF_ERROR(
        UvStatus(uv_fileno(reinterpret_cast<uv_handle_t*>(&state_->handle), &fd), "set ttl"));
    int v = 0;
    bool v6 = local_address().is_v6();
    if (setsockopt(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_MULTICAST_HOPS : IP_MULTICAST_TTL,
                   &v, sizeof(v)) != 0) {
      return absl::ErrnoToStatus(errno, "set ttl");
    }
    return absl::OkStatus();
  }
  return UvStatus(uv_udp_set_multicast_ttl(&state_->handle, ttl), "set multicast ttl");
}

absl::Status UdpSocket::SetBroadcast(bool on) {
  if (closed()) return ClosedError();
  return UvStatus(uv_udp_set_broadcast(&state_->handle, on ? 1 : 0), "set broadcast");
}

}  // namespace picos
