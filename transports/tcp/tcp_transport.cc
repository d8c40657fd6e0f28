#include "transports/tcp/tcp_transport.h"

#include <netdb.h>
#include <uv.h>

#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/io/io_internal.h"
#include "core/io/uv_request_internal.h"
#include "core/io/uv_stream_internal.h"
#include "core/kernel/log.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/net/ip_endpoint.h"

namespace picos::transports {
namespace {

using internal::CloseUvStreamState;
using internal::MakeUvStream;
using internal::NewUvStreamState;
using internal::UvHandle;
using internal::UvKind;
using internal::UvListen;
using internal::UvStreamState;
using internal::UvTcpConnect;

// The addresses of `host`:`port`: literals at once (IpEndpoint::Parse, the
// one literal parser), names through uv_getaddrinfo on libuv's pool
// (cancelled there if the wait ends first). Suspends for names.
Task<absl::StatusOr<std::vector<IpEndpoint>>> Resolve(std::string host, int port, bool passive,
                                                      internal::Deadline deadline) {
  if (absl::StatusOr<IpEndpoint> literal = IpEndpoint::Parse(host, port); literal.ok()) {
    co_return std::vector<IpEndpoint>{*literal};
  }
  std::vector<IpEndpoint> out;
  addrinfo hints;
  std::memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : AI_ADDRCONFIG;
  std::string service = absl::StrCat(port);
  internal::UvRequest<uv_getaddrinfo_t> op;
  PICOS_CO_RETURN_IF_ERROR(op.Started(uv_getaddrinfo(ThisScheduler().uv_loop(), op.req(),
                                                     op.callback(), host.c_str(),
                                                     service.c_str(), &hints),
                                      "resolve"));
  PICOS_CO_RETURN_IF_ERROR(co_await op.Wait(deadline));
  if (op.result() < 0) {
    absl::Status st = UvStatus(static_cast<int>(op.result()), "resolve");
    // An unknown host is a peer that is not there.
    co_return absl::UnavailableError(absl::StrCat("cannot resolve \"", host, "\": ", st.message()));
  }
  for (addrinfo* a = op.req()->addrinfo; a != nullptr && out.size() < 16; a = a->ai_next) {
    absl::StatusOr<IpEndpoint> ip = IpEndpoint::FromSockaddr(a->ai_addr);
    if (ip.ok()) out.push_back(*ip);  // IPv4 and IPv6 only
  }
  if (out.empty()) co_return absl::UnavailableError(absl::StrCat("no address for ", host));
  co_return out;
}

// tcp:// takes no query parameters. One given is refused, as tls:// refuses
// one it does not know (issue 9): a typo such as ?nodelay=0 must not pass
// for a setting that took effect.
absl::Status NoParameters(const Uri& uri) {
  if (uri.query.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("tcp: unknown parameter '", absl::CHexEscape(uri.query[0].first.substr(0, 32)),
                   "' (tcp:// takes none)"));
}

// Closes a handle that never became a Stream, on every way out of a frame.
struct CloseUnlessReleased {
  UvStreamState* s;
  ~CloseUnlessReleased() {
    if (s != nullptr) CloseUvStreamState(s);
  }
};

class TcpTransport final : public StreamTransport {
 public:
  std::string scheme() const override { return "tcp"; }

  Task<absl::StatusOr<std::unique_ptr<Stream>>> Connect(Uri uri, absl::Duration timeout,
                                                        StreamOptions options) override {
    PICOS_CO_RETURN_IF_ERROR(NoParameters(uri));
    if (uri.port <= 0) {
      co_return absl::InvalidArgumentError(absl::StrCat("connect needs a port: ", uri.ToString()));
    }
    const internal::Deadline deadline(timeout);
    PICOS_CO_ASSIGN_OR_RETURN(std::vector<IpEndpoint> addrs,
                              co_await Resolve(uri.host, uri.port, false, deadline));
    absl::Status last;
    for (const IpEndpoint& addr : addrs) {
      CloseUnlessReleased guard{
          NewUvStreamState(ThisScheduler().uv_loop(), UvKind::kTcp, options)};
      last = co_await UvTcpConnect(guard.s, addr.sockaddr(), deadline);
      if (last.ok()) {
        if (options.no_delay) uv_tcp_nodelay(reinterpret_cast<uv_tcp_t*>(UvHandle(guard.s)), 1);
        co_return MakeUvStream(std::exchange(guard.s, nullptr), "tcp");
      }
      if (last.code() != absl::StatusCode::kUnavailable) break;  // timeout, cancel
    }
    PICOS_LOG(debug, "connect to {} failed: {}", uri.ToString(), last.ToString());
    co_return absl::Status(last.code(), absl::StrCat(last.message(), " (", uri.ToString(), ")"));
  }

  Task<absl::StatusOr<std::unique_ptr<Listener>>> Listen(Uri uri,
                                                         StreamOptions options) override {
    PICOS_CO_RETURN_IF_ERROR(NoParameters(uri));
    if (uri.port < 0) co_return absl::InvalidArgumentError("listen needs a port");
    const internal::Deadline deadline(absl::Seconds(30));
    PICOS_CO_ASSIGN_OR_RETURN(std::vector<IpEndpoint> addrs,
                              co_await Resolve(uri.host, uri.port, true, deadline));
    uv_loop_t* loop = ThisScheduler().uv_loop();
    UvStreamState* s = NewUvStreamState(loop, UvKind::kTcp, options);
    int rc = uv_tcp_bind(reinterpret_cast<uv_tcp_t*>(UvHandle(s)), addrs[0].sockaddr(), 0);
    if (rc < 0) {
      CloseUvStreamState(s);
      co_return UvStatus(rc, "bind");
    }
    co_return UvListen(loop, UvKind::kTcp, s, "tcp", "", "", options);
  }
};

}  // namespace

void RegisterTcpTransport(TransportRegistry::Builder& builder) {
  builder.RegisterStream(std::make_unique<TcpTransport>());
}

}  // namespace picos::transports
