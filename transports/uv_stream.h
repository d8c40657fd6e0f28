// Streams and listeners over libuv stream handles (uv_tcp_t, uv_pipe_t):
// the machinery the tcp and unix plugins share. Not a public API: users
// reach it through the TransportRegistry (core/transport.h).
//
// Safety rule (core/io_internal.h): libuv handles and requests never point
// into a coroutine frame. Each stream's state is a reference-counted heap
// object: the open handle holds one reference (dropped in its close
// callback), every operation in progress another (a guard in the frame,
// dropped when the frame ends or is destroyed because its task was killed),
// every libuv request one more. A callback arriving after the task is gone
// finds live state and a stale wait token, and does no harm.
//
// Threads: the scheduler's thread only, from its tasks.
#ifndef PICOS_TRANSPORTS_UV_STREAM_H_
#define PICOS_TRANSPORTS_UV_STREAM_H_

#include <sys/socket.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/transport.h"

struct uv_loop_s;
struct uv_stream_s;

namespace picos::transports {

enum class UvKind { kTcp, kPipe };

struct UvStreamState;
struct UvListenerState;

// A fresh, unconnected handle of `kind` on `loop`, wrapped in state with one
// reference (the handle's). Scheduler thread.
UvStreamState* NewUvStreamState(uv_loop_s* loop, UvKind kind, const StreamOptions& options);
// The libuv handle inside.
uv_stream_s* UvHandle(UvStreamState* s);
// Closes the handle of a state that never became a Stream (a failed
// connect); frees it once nothing refers to it.
void CloseUvStreamState(UvStreamState* s);

// Connects the TCP handle of `s` to `addr`, waiting up to `timeout`.
// Suspends. On error the caller still owns `s` (and closes it).
Task<absl::Status> UvTcpConnect(UvStreamState* s, const struct sockaddr* addr,
                                absl::Duration timeout);

// Wraps a connected state as a Stream that owns it. `scheme` names the
// addresses it reports ("tcp", "unix").
std::unique_ptr<Stream> MakeUvStream(UvStreamState* s, std::string scheme);

// Starts listening on a bound handle `server` (a uv_tcp_t or uv_pipe_t
// that was just bound, owned by the result from now on; freed with
// free()-style ownership through the close callback). `address` is what
// Listener::address() reports; `unlink_path`, if not empty, is removed when
// the listener closes (a file-system Unix socket).
absl::StatusOr<std::unique_ptr<Listener>> UvListen(uv_loop_s* loop, UvKind kind,
                                                   UvStreamState* server, std::string scheme,
                                                   std::string address, std::string unlink_path,
                                                   const StreamOptions& options);

// "tcp://127.0.0.1:9705" / "tcp://[::1]:9705" from a socket address.
std::string SockaddrToUri(const std::string& scheme, const struct sockaddr* sa);

}  // namespace picos::transports

#endif  // PICOS_TRANSPORTS_UV_STREAM_H_
