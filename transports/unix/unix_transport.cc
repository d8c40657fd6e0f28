#include "transports/unix/unix_transport.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <cstring>
#include <memory>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/io/io_internal.h"
#include "core/kernel/log.h"
#include "core/kernel/scheduler.h"
#include "core/kernel/status.h"
#include "core/io/uv_stream_internal.h"

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

// The socket address of a unix:// URI, or kInvalidArgument.
absl::StatusOr<std::pair<sockaddr_un, socklen_t>> UnixAddress(const Uri& uri) {
  sockaddr_un sun;
  std::memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  if (!uri.query.empty()) {
    // As tcp:// and tls://: a parameter nobody reads is refused, not ignored.
    return absl::InvalidArgumentError(
        absl::StrCat("unix: unknown parameter '", absl::CHexEscape(uri.query[0].first.substr(0, 32)),
                     "' (unix:// takes none)"));
  }
  const size_t max = uri.abstract_socket ? kMaxUnixPath - 1 : kMaxUnixPath;
  if (uri.path.empty() || uri.path.size() > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("Unix socket path of ", uri.path.size(), " bytes; at most ", max,
                     " fit (", uri.ToString().substr(0, 160), ")"));
  }
  if (uri.path.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("NUL byte in a Unix socket path");
  }
  socklen_t len;
  if (uri.abstract_socket) {
    std::memcpy(sun.sun_path + 1, uri.path.data(), uri.path.size());
    len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + uri.path.size());
  } else {
    std::memcpy(sun.sun_path, uri.path.data(), uri.path.size());
    len = static_cast<socklen_t>(sizeof sun);
  }
  return std::make_pair(sun, len);
}

// Wraps a socket fd in a fresh pipe handle. Closes `fd` on failure.
absl::StatusOr<UvStreamState*> Adopt(int fd, const StreamOptions& options) {
  UvStreamState* s = NewUvStreamState(ThisScheduler().uv_loop(), UvKind::kPipe, options);
  int rc = uv_pipe_open(reinterpret_cast<uv_pipe_t*>(UvHandle(s)), fd);
  if (rc < 0) {
    ::close(fd);
    CloseUvStreamState(s);
    return UvStatus(rc, "uv_pipe_open");
  }
  return s;
}

class UnixTransport final : public StreamTransport {
 public:
  std::string scheme() const override { return "unix"; }

  Task<absl::StatusOr<std::unique_ptr<Stream>>> Connect(Uri uri, absl::Duration timeout,
                                                        StreamOptions options) override {
    PICOS_CO_ASSIGN_OR_RETURN(auto addr, UnixAddress(uri));
    const internal::Deadline deadline(timeout);
    // Connecting a Unix socket never waits on the network: it succeeds,
    // fails, or finds the listener's backlog full (EAGAIN), which is
    // retried every 2 ms until the deadline. libuv's uv_pipe_connect cannot
    // reach the abstract namespace in 1.44, hence the plain socket calls.
    for (;;) {
      int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) co_return UvStatus(-errno, "socket");
      int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr.first), addr.second);
      int err = rc < 0 ? errno : 0;
      if (rc == 0) {
        PICOS_CO_ASSIGN_OR_RETURN(UvStreamState * s, Adopt(fd, options));
        co_return MakeUvStream(s, "unix");
      }
      ::close(fd);
      if (err != EAGAIN) {
        absl::Status st = UvStatus(-err, "connect");
        // No socket there (ENOENT) is a refused connection to a caller.
        if (err == ENOENT) st = absl::UnavailableError(st.message());
        PICOS_LOG(debug, "connect to {} failed: {}", uri.ToString(), st.ToString());
        co_return absl::Status(st.code(), absl::StrCat(st.message(), " (", uri.ToString(), ")"));
      }
      if (deadline.Expired()) co_return absl::DeadlineExceededError("connect timed out");
      PICOS_CO_RETURN_IF_ERROR(co_await Sleep(
          std::min(absl::Milliseconds(2), deadline.Remaining())));
    }
  }

  Task<absl::StatusOr<std::unique_ptr<Listener>>> Listen(Uri uri,
                                                         StreamOptions options) override {
    PICOS_CO_ASSIGN_OR_RETURN(auto addr, UnixAddress(uri));
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) co_return UvStatus(-errno, "socket");
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr.first), addr.second) < 0) {
      int err = errno;
      ::close(fd);
      co_return absl::Status(UvStatus(-err, "bind").code(),
                             absl::StrCat("bind ", uri.ToString(), ": ", std::strerror(err)));
    }
    std::string unlink_path = uri.abstract_socket ? "" : uri.path;
    absl::StatusOr<UvStreamState*> s = Adopt(fd, options);
    if (!s.ok()) {
      if (!unlink_path.empty()) ::unlink(unlink_path.c_str());
      co_return s.status();
    }
    co_return UvListen(ThisScheduler().uv_loop(), UvKind::kPipe, *s, "unix", uri.ToString(),
                       unlink_path, options);
  }
};

}  // namespace

void RegisterUnixTransport(TransportRegistry::Builder& builder) {
  builder.RegisterStream(std::make_unique<UnixTransport>());
}

}  // namespace picos::transports
