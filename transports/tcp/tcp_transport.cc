#include "transports/tcp/tcp_transport.h"

#include <netdb.h>
#include <uv.h>

#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/io/io_internal.h"
#include "core/io/uv_request_internal.h"
#include "core/io/uv_stream_internal.h"
#include "core/kernel/log.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"

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

// The addresses of `host`:`port`: literals at once, names through
// uv_getaddrinfo on libuv's pool (cancelled there if the wait ends first).
// Suspends for names.
Task<absl::StatusOr<std::vector<sockaddr_storage>>> Resolve(std::string host, int port,
                                                            bool passive,
                                                            internal::Deadline deadline) {
  std::vector<sockaddr_storage> out(1);
  std::memset(&out[0], 0, sizeof out[0]);
  if (uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(&out[0])) == 0 ||
      uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&out[0])) == 0) {
    co_return out;
  }
  out.clear();
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
    if (a->ai_family != AF_INET && a->ai_family != AF_INET6) continue;
    sockaddr_storage ss;
    std::memset(&ss, 0, sizeof ss);
    std::memcpy(&ss, a->ai_addr, a->ai_addrlen);
    out.push_back(ss);
  }
  if (out.empty()) co_return absl::UnavailableError(absl::StrCat("no address for ", host));
  co_return out;
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
    if (uri.port <= 0) {
      co_return absl::InvalidArgumentError(absl::StrCat("connect needs a port: ", uri.ToString()));
    }
    const internal::Deadline deadline(timeout);
    PICOS_CO_ASSIGN_OR_RETURN(std::vector<sockaddr_storage> addrs,
                              co_await Resolve(uri.host, uri.port, false, deadline));
    absl::Status last;
    for (const sockaddr_storage& addr : addrs) {
      CloseUnlessReleased guard{
          NewUvStreamState(ThisScheduler().uv_loop(), UvKind::kTcp, options)};
      last = co_await UvTcpConnect(guard.s, reinterpret_cast<const sockaddr*>(&addr), deadline);
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
    if (uri.port < 0) co_return absl::InvalidArgumentError("listen needs a port");
    const internal::Deadline deadline(absl::Seconds(30));
    PICOS_CO_ASSIGN_OR_RETURN(std::vector<sockaddr_storage> addrs,
                              co_await Resolve(uri.host, uri.port, true, deadline));
    uv_loop_t* loop = ThisScheduler().uv_loop();
    UvStreamState* s = NewUvStreamState(loop, UvKind::kTcp, options);
    int rc = uv_tcp_bind(reinterpret_cast<uv_tcp_t*>(UvHandle(s)),
                         reinterpret_cast<const sockaddr*>(&addrs[0]), 0);
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
